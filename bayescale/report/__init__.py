"""Reports: one self-contained HTML file (or Markdown beside PNG files) of a fit.

:func:`write_html` writes everything a reader needs to judge a fit, in one file that
opens anywhere offline and can be attached to a planning document: provenance (spec,
its id and TOML, data hash, seed, method, versions, date), the posterior summary, the
sampling diagnostics and design warnings in plain words, the plots (images embedded
as base64 PNG), and optionally a decision and a leave-largest-out validation.

The HTML has inline CSS only, no scripts and no external references of any kind (a
Content-Security-Policy forbids them too). Every piece of user text (run ids, notes,
spec names and descriptions, option names) is escaped with :func:`html.escape`.
Files are written atomically (a temporary file, then a rename).

Examples
--------
>>> from bayescale.report import write_html                    # doctest: +SKIP
>>> write_html(fit, "report.html", decision=dec, validation=val)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import os
import re
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from .._io import atomic_write_bytes
from ..errors import BayescaleError
from ._compare import comparison_blocks
from ._content import EXTRAPOLATION_SCALES as EXTRAPOLATION_SCALES
from ._content import _blocks, _n_steps
from ._elements import PNG_SIGNATURE as PNG_SIGNATURE
from ._elements import REPORT_DPI as REPORT_DPI
from ._elements import _Answer, _Figure, _Heading, _List, _Para, _Pre, _Progress, _Table, figure_png, png_size

if TYPE_CHECKING:  # annotations only: no import at run time
    from ..inference import Fit

#: Nothing may be fetched, run or submitted: only inline styles and data: images.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)

CSS = """
:root { color-scheme: light; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1d232a; background: #fff; margin: 0 auto; padding: 1.5rem 2rem 3rem; max-width: 1100px; }
h1 { font-size: 1.7rem; margin: 0 0 .3rem; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 .6rem; padding-bottom: .25rem; border-bottom: 2px solid #d8dee4; }
h3 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
p.lead { color: #4a5560; margin-top: 0; }
nav { background: #f5f7f9; border: 1px solid #d8dee4; border-radius: 6px; padding: .5rem 1rem; margin: 1rem 0; }
nav a { margin-right: 1rem; color: #0b5cad; text-decoration: none; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .88rem; }
th, td { border: 1px solid #d8dee4; padding: .25rem .55rem; text-align: left; vertical-align: top; }
th { background: #f0f3f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { width: 12rem; }
pre { background: #f5f7f9; border: 1px solid #d8dee4; border-radius: 4px; padding: .6rem .8rem; overflow-x: auto;
      font-size: .82rem; white-space: pre-wrap; word-break: break-word; }
details { margin: .4rem 0 1rem; }
summary { cursor: pointer; color: #0b5cad; }
figure { margin: 1.2rem 0 1.8rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e7eb; }
figcaption { color: #4a5560; font-size: .88rem; margin-top: .3rem; }
ul.problem li, p.problem { color: #8a1c1c; }
ul.warn li, p.warn { color: #7a4d00; }
p.ok { color: #1f6f3a; }
p.verdict { font-size: 1.02rem; background: #f5f7f9; border-left: 4px solid #0b5cad; padding: .5rem .8rem; }
section.answer { background: #eaf3fc; border: 1px solid #b6d4f2; border-left: 6px solid #0b5cad;
                 border-radius: 6px; padding: .7rem 1.1rem; margin: .8rem 0 1rem; }
section.answer h2 { margin: 0 0 .3rem; padding: 0; border: 0; font-size: 1.1rem; }
section.answer p.headline { font-size: 1.12rem; font-weight: 600; margin: .2rem 0 .4rem; }
section.answer p, section.answer ul { margin: .25rem 0; }
footer { margin-top: 3rem; color: #6a737d; font-size: .82rem; border-top: 1px solid #d8dee4; padding-top: .6rem; }
"""


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename (with the
    mode ``open`` would give it: a report is meant to be shared)."""
    atomic_write_bytes(path, data)


# ------------------------------------------------------------------ HTML


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_table(t: _Table) -> str:
    num = t.numeric or (False,) * len(t.header)
    head = "".join(f"<th>{_e(h)}</th>" for h in t.header)
    body = []
    for row in t.rows:
        cells = "".join(f'<td class="num">{_e(c)}</td>' if n else f"<td>{_e(c)}</td>" for c, n in zip(row, num))
        body.append(f"<tr>{cells}</tr>")
    cls = f' class="{_e(t.cls)}"' if t.cls else ""
    table = f"<table{cls}><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>"
    if t.collapsed:
        return f"<details><summary>{_e(t.collapsed)}</summary>\n{table}\n</details>"
    return table


def _html_answer(b: _Answer) -> str:
    """The summary box: the headline first, so it is on the first screen whatever follows."""
    if b.warnings:
        doubts = '<ul class="problem">' + "".join(f"<li>{_e(w)}</li>" for w in b.warnings) + "</ul>"
    else:
        doubts = '<p class="ok">No warnings: sampling, misfit, design and leave-one-out checks found nothing.</p>'
    return (
        '<section class="answer" id="answer"><h2>The answer</h2>'
        f'<p class="headline">{_e(b.headline)}</p><p>{_e(b.fitted)}</p>{doubts}</section>'
    )


def _html_block(b: Any) -> str:
    if isinstance(b, _Answer):
        return _html_answer(b)
    if isinstance(b, _Heading):
        anchor = f' id="{_e(b.anchor)}"' if b.anchor else ""
        return f"<h{b.level}{anchor}>{_e(b.text)}</h{b.level}>"
    if isinstance(b, _Para):
        cls = f' class="{_e(b.cls)}"' if b.cls else ""
        return f"<p{cls}>{_e(b.text)}</p>"
    if isinstance(b, _List):
        cls = f' class="{_e(b.cls)}"' if b.cls else ""
        return f"<ul{cls}>" + "".join(f"<li>{_e(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, _Table):
        return _html_table(b)
    if isinstance(b, _Pre):
        pre = f"<pre>{_e(b.text)}</pre>"
        return f"<details><summary>{_e(b.summary)}</summary>\n{pre}\n</details>" if b.summary else pre
    if isinstance(b, _Figure):
        w, h = png_size(b.png)
        data = base64.b64encode(b.png).decode("ascii")
        return (
            f'<figure id="fig-{_e(b.key)}"><h3>{_e(b.title)}</h3>'
            f'<img alt="{_e(b.title)}" width="{w}" height="{h}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(b.caption)}</figcaption></figure>"
        )
    raise TypeError(f"unknown report block {type(b).__name__}")


def render_html(title: str, blocks: Sequence[Any]) -> str:
    """The report page: inline CSS, a Content-Security-Policy that forbids scripts and any fetch, no scripts."""
    nav = " ".join(
        f'<a href="#{_e(b.anchor)}">{_e(b.text)}</a>'
        for b in blocks
        if isinstance(b, _Heading) and b.level == 2 and b.anchor
    )
    # The answer box goes above the navigation: the first screen shows the answer, the links come after.
    top = "\n".join(_html_block(b) for b in blocks if isinstance(b, _Answer))
    body = "\n".join(_html_block(b) for b in blocks if not isinstance(b, _Answer))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CONTENT_SECURITY_POLICY)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{_e(title)}</h1>"
        '<p class="lead">A Bayesian scaling-law fit: what the runs say, how sure it is, and how far to trust the extrapolation.</p>'
        f"</header>\n{top}\n<nav>{nav}</nav>\n<main>\n{body}\n</main>\n"
        f"<footer>Written by bayescale {_e(__version__)}. This file is self-contained: no scripts, no external resources.</footer>\n"
        "</body>\n</html>\n"
    )


# ------------------------------------------------------------------ Markdown


_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
_MD_BULLET = re.compile(r"^(\s*)([#>+\-])(?=\s|$)", re.MULTILINE)
_MD_ORDERED = re.compile(r"^(\s*\d+)([.)])(?=\s|$)", re.MULTILINE)


def _md(text: Any, *, block: bool = True) -> str:
    """User text for Markdown: HTML-escaped (so tags render as text) and Markdown-escaped.

    ``block`` also escapes what would start a heading, quote or list at the start of a line.
    """
    s = html.escape(str(text), quote=False)
    s = _MD_INLINE.sub(r"\\\1", s)
    if block:
        s = _MD_BULLET.sub(lambda m: m.group(1) + "\\" + m.group(2), s)
        s = _MD_ORDERED.sub(lambda m: m.group(1) + "\\" + m.group(2), s)
    return s


def _md_cell(text: Any) -> str:
    return _md(str(text).replace("\r", " ").replace("\n", " "), block=False)


def _md_table(t: _Table) -> str:
    num = t.numeric or (False,) * len(t.header)
    lines = ["| " + " | ".join(_md_cell(h) or " " for h in t.header) + " |"]
    lines.append("|" + "|".join("---:" if n else "---" for n in num) + "|")
    for row in t.rows:
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    table = "\n".join(lines)
    return f"**{_md(t.collapsed)}**\n\n{table}" if t.collapsed else table


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render_markdown(title: str, blocks: Sequence[Any], image_dir: str) -> tuple[str, dict[str, bytes]]:
    """The Markdown report and its images (relative file name -> PNG bytes)."""
    parts = [f"# {_md(title)}"]
    images: dict[str, bytes] = {}
    for b in blocks:
        if isinstance(b, _Answer):
            doubts = "\n".join(f"- {_md(w)}" for w in b.warnings) or "No warnings."
            parts.append(f"## The answer\n\n**{_md(b.headline)}**\n\n{_md(b.fitted)}\n\n{doubts}")
        elif isinstance(b, _Heading):
            parts.append(f"{'#' * b.level} {_md(b.text)}")
        elif isinstance(b, _Para):
            parts.append(_md(b.text))
        elif isinstance(b, _List):
            parts.append("\n".join(f"- {_md(i)}" for i in b.items))
        elif isinstance(b, _Table):
            parts.append(_md_table(b))
        elif isinstance(b, _Pre):
            fence = _fence(b.text)
            head = f"**{_md(b.summary)}**\n\n" if b.summary else ""
            parts.append(f"{head}{fence}\n{b.text.rstrip()}\n{fence}")
        elif isinstance(b, _Figure):
            name = f"{image_dir}/{b.key}.png"
            images[name] = b.png
            parts.append(f"### {_md(b.title)}\n\n![{_md(b.title)}]({name})\n\n*{_md(b.caption)}*")
        else:
            raise TypeError(f"unknown report block {type(b).__name__}")
    parts.append(f"---\n\nWritten by bayescale {_md(__version__)}.")
    return "\n\n".join(parts) + "\n", images


# ------------------------------------------------------------------ public API


#: The last report's inputs (weak references to its fit, decision and validation, None where not given; its title
#: and seed) and its title and blocks, for the next report only: the same report written in the other format right
#: after (notebook 03 writes both) reuses them instead of drawing every figure again (most of a report's time).
#: Dropped once used, or when its fit is freed.
_LAST_REPORT: list[tuple[tuple[Any, ...], tuple[Any, ...], tuple[str, list[Any]]]] = []


def _same_inputs(refs: tuple[Any, ...], objects: tuple[Any, ...]) -> bool:
    """Whether the kept references name exactly ``objects`` (a dead reference names nothing)."""
    return all((r is None) if o is None else (r is not None and r() is o) for r, o in zip(refs, objects, strict=True))


def _report_blocks(fit: Fit, progress: _Progress, **options: Any) -> tuple[str, list[Any]]:
    """:func:`_blocks` of ``fit``, reused when the last report had the same fit, decision, validation and options."""
    objects = (fit, options["decision"], options["validation"])
    rest = (options["title"], options["decision_seed"])
    last = _LAST_REPORT[:1]  # one read: another thread may clear it
    _LAST_REPORT.clear()
    for refs, kept_rest, made in last:
        if kept_rest == rest and _same_inputs(refs, objects):
            return made
    made = _blocks(fit, progress=progress, **options)
    try:
        # The fit's reference drops the blocks (megabytes of figures) as soon as the fit is freed.
        refs = (weakref.ref(fit, lambda _: _LAST_REPORT.clear()),) + tuple(
            weakref.ref(o) if o is not None else None for o in objects[1:]
        )
    except TypeError:  # an object without weak references: nothing kept
        return made
    _LAST_REPORT[:] = [(refs, rest, made)]
    return made


def _validate_fit(fit: Fit) -> None:
    if not (hasattr(fit, "idata") and hasattr(fit, "spec") and hasattr(fit, "runs")):
        raise BayescaleError(f"fit must be a bayescale Fit, got {type(fit).__name__}")


def write_html(
    fit: Fit,
    path: str | os.PathLike,
    *,
    decision: Any = None,
    validation: Any = None,
    title: str | None = None,
    decision_seed: int = 0,
) -> Path:
    """Write the report of a fit as one self-contained HTML file.

    Sections: title and provenance (spec name and id, the spec TOML, runs hash, number
    of runs, seed, method, versions, date); the posterior summary and the extrapolation
    along the compute-optimal frontier; diagnostics (sampling problems and design
    warnings in plain words, PSIS-LOO, LOO-PIT coverage); the plots; the decision's
    verdict and table when given; the leave-largest-out results when given; the runs.

    Images are embedded as base64 PNG ``data:`` URIs; the CSS is inline; there are no
    scripts and no external references, and a Content-Security-Policy forbids both.
    User text is escaped. The file is written atomically.

    Parameters
    ----------
    fit : Fit
    path : path
        Where to write the HTML (folders are created).
    decision : Decision, optional
        From :func:`bayescale.decide` with this fit (its loss densities are re-drawn from
        the fit when they reproduce the decision's table).
    validation : Validation, optional
        From :func:`bayescale.leave_largest_out`.
    title : str, optional
    decision_seed : int
        The ``seed`` given to :func:`bayescale.decide`, so its draws can be re-drawn.

    Returns
    -------
    pathlib.Path
        The file written.

    Examples
    --------
    >>> write_html(fit, "out/report.html", decision=bs.decide(options, fit=fit, threshold=2.2))  # doctest: +SKIP
    """
    _validate_fit(fit)
    path = Path(path)
    progress = _Progress(_n_steps(decision, validation), "report")
    try:
        title, blocks = _report_blocks(
            fit, progress, decision=decision, validation=validation, title=title, decision_seed=decision_seed
        )
        _atomic_write(path, render_html(title, blocks).encode("utf-8"))
    finally:
        progress.close()
    return path


def write_markdown(
    fit: Fit,
    path: str | os.PathLike,
    *,
    decision: Any = None,
    validation: Any = None,
    title: str | None = None,
    decision_seed: int = 0,
) -> Path:
    """Write the report as Markdown, with its figures as PNG files beside it.

    The same sections as :func:`write_html`, with Markdown tables. The figures go to
    the folder ``<name>_files/`` next to the file and are linked relatively, so the
    folder and the file move together. User text is HTML- and Markdown-escaped. Each
    file is written atomically (images first). Written right after :func:`write_html` of the
    same fit and options (or right before it), the two share one drawing of the figures: the
    fit, decision and validation must not be changed in between.

    Parameters
    ----------
    fit : Fit
    path : path
        The ``.md`` file to write.
    decision, validation, title, decision_seed
        As for :func:`write_html`.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> write_markdown(fit, "out/report.md")                     # doctest: +SKIP
    """
    _validate_fit(fit)
    path = Path(path)
    image_dir = f"{path.stem}_files"
    if (path.parent / image_dir).exists() and not (path.parent / image_dir).is_dir():
        raise BayescaleError(
            f"{str(path.parent / image_dir)!r} is a file, but the Markdown report keeps its figures in a folder of "
            "that name beside it: move the file, or name the report otherwise"
        )
    progress = _Progress(_n_steps(decision, validation), "report")
    try:
        title, blocks = _report_blocks(
            fit, progress, decision=decision, validation=validation, title=title, decision_seed=decision_seed
        )
        text, images = render_markdown(title, blocks, image_dir)
        for name, png in images.items():
            _atomic_write(path.parent / name, png)
        _atomic_write(path, text.encode("utf-8"))
    finally:
        progress.close()
    return path


def write_comparison_html(cmp: Any, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Write the report of a recipe comparison (:func:`bayescale.compare`) as one self-contained
    HTML file, atomically: the verdict and its doubts, the recipes' table, both compute-optimal
    curves with their bands and the crossing, the multiplier against compute, and how the recipes
    were fitted."""
    if not hasattr(cmp, "verdict") or not hasattr(cmp, "recipes"):
        raise BayescaleError(
            f"write_comparison_html takes what bayescale.compare returns, got {type(cmp).__name__}; a fit's report is "
            "write_html"
        )
    default, blocks = comparison_blocks(cmp)
    path = Path(path)
    _atomic_write(path, render_html(title or default, blocks).encode("utf-8"))
    return path


__all__ = ["figure_png", "png_size", "render_html", "render_markdown", "write_html", "write_markdown"]
__all__ += ["write_comparison_html"]
