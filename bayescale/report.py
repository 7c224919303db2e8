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
import datetime
import html
import io
import json
import math
import os
import re
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_write_bytes
from .errors import BayescaleError

#: Resolution of the embedded figures.
REPORT_DPI = 96
#: Multiples of the largest run's compute in the extrapolation table.
EXTRAPOLATION_SCALES = (1.0, 10.0, 100.0, 1000.0)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Nothing may be fetched, run or submitted: only inline styles and data: images.
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

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
footer { margin-top: 3rem; color: #6a737d; font-size: .82rem; border-top: 1px solid #d8dee4; padding-top: .6rem; }
"""


# ------------------------------------------------------------------ content blocks


@dataclass(frozen=True)
class _Heading:
    text: str
    anchor: str = ""
    level: int = 2


@dataclass(frozen=True)
class _Para:
    text: str
    cls: str = ""


@dataclass(frozen=True)
class _List:
    items: tuple[str, ...]
    cls: str = ""


@dataclass(frozen=True)
class _Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()
    collapsed: str = ""  # when set, the table is folded under this summary line
    cls: str = ""


@dataclass(frozen=True)
class _Pre:
    text: str
    summary: str = ""


@dataclass(frozen=True)
class _Figure:
    key: str
    title: str
    caption: str
    png: bytes


# ------------------------------------------------------------------ progress


class _Progress:
    """One-line progress on stderr, only when stderr is a terminal (quiet in logs and tests)."""

    def __init__(self, total: int, label: str, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total, self.label, self.i, self.width = total, label, 0, 0

    def step(self, what: str) -> None:
        self.i += 1
        if self.enabled:
            text = f"\r{self.label} [{min(self.i, self.total)}/{self.total}] {what}"
            self.width = max(self.width, len(text))
            self.stream.write(text.ljust(self.width))
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


# ------------------------------------------------------------------ formatting


def _num(x: Any, digits: int = 4) -> str:
    """A number in ``digits`` significant figures; missing or NaN as ``-``."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "-" if x is None else str(x)
    if not math.isfinite(v):
        return "-"
    return f"{v:.{digits}g}"


def _fixed(x: Any, decimals: int = 4) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "-"
    return f"{v:.{decimals}f}" if math.isfinite(v) else "-"


def _interval(lo: Any, hi: Any, decimals: int = 4) -> str:
    return f"{_fixed(lo, decimals)} - {_fixed(hi, decimals)}"


def _short(text: Any, limit: int = 80) -> str:
    s = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG image from its header.

    Raises
    ------
    BayescaleError
        If ``data`` is not a PNG.

    Examples
    --------
    >>> png_size(b"\\x89PNG\\r\\n\\x1a\\n" + b"\\x00\\x00\\x00\\rIHDR" + (640).to_bytes(4, "big") + (480).to_bytes(4, "big"))
    (640, 480)
    """
    if len(data) < 24 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise BayescaleError("not a PNG image (bad signature or header)")
    return struct.unpack(">II", data[16:24])


def figure_png(fig: Any, *, dpi: int = REPORT_DPI) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed afterwards."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    finally:
        plt.close(fig)
    return buf.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename (mode 0644:
    a report is meant to be shared)."""
    atomic_write_bytes(path, data)


# ------------------------------------------------------------------ content


def _attrs(fit: Any) -> dict[str, Any]:
    return dict(getattr(fit.idata, "attrs", {}) or {})


def _versions(attrs: dict[str, Any]) -> str:
    raw = attrs.get("versions")
    if not raw:
        return "-"
    try:
        v = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (TypeError, ValueError):
        return str(raw)
    return ", ".join(f"{k} {v[k]}" for k in sorted(v))


def _provenance(fit: Any, now: datetime.datetime) -> list[Any]:
    import matplotlib

    from . import __version__

    a = _attrs(fit)
    spec = fit.spec
    chains, draws = fit.posterior.sizes.get("chain", 1), fit.posterior.sizes.get("draw", 1)
    secs = a.get("sampling_seconds")
    sampling = f"{chains} chains x {draws} draws"
    if secs is not None and math.isfinite(float(secs)):
        sampling += f" in {float(secs):.1f} s"
    device = " / ".join(str(a[k]) for k in ("device", "chain_method", "dtype") if a.get(k))
    rows = [
        ("spec", f"{spec.name} (id {a.get('spec_id', spec.id)})"),
        ("description", spec.description or "-"),
        ("law", f"{spec.law.name}: {spec.law.formula}"),
        ("likelihood", spec.likelihood.family),
        ("spec file", a.get("spec_path") or "-"),
        ("runs", f"{len(fit.runs)} runs, hash {a.get('runs_hash', '-')}"),
        ("method", str(a.get("method", fit.method))),
        ("seed", str(a.get("seed", fit.seed))),
        ("sampling", sampling + (f" ({device})" if device else "")),
        ("versions", _versions(a)),
        ("report written", f"{now.strftime('%Y-%m-%d %H:%M:%S')} UTC by bayescale {__version__} (matplotlib {matplotlib.__version__})"),
    ]
    return [
        _Heading("Provenance", "provenance"),
        _Table(("item", "value"), tuple((k, str(v)) for k, v in rows), cls="kv"),
        _Pre(spec.to_toml(), summary="The spec (TOML)"),
    ]


def _summary(fit: Any) -> list[Any]:
    s = fit.summary()
    cols = list(s.columns)
    header = ("variable", *cols)
    rows = []
    for name, r in s.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if c.startswith("ess"):
                cells.append(_num(round(float(v)) if math.isfinite(float(v)) else v, 6))
            elif c == "r_hat":
                cells.append(_fixed(v, 3))
            else:
                cells.append(_num(v, 4))
        rows.append((str(name), *cells))
    out: list[Any] = [
        _Heading("Posterior summary", "summary"),
        _Para(f"Law {fit.spec.law.name}: {fit.spec.law.formula}. Mean, sd, median and 90% equal-tailed interval of each parameter."),
        _Table(header, tuple(rows), numeric=(False,) + (True,) * len(cols)),
    ]
    out += _extrapolation(fit)
    return out


def _extrapolation(fit: Any) -> list[Any]:
    """Loss along the compute-optimal frontier at multiples of the largest run's compute."""
    from .frontier import band_table, frontier

    if "C" not in fit.runs or not {"N", "D"} <= set(fit.spec.columns):
        return []
    cmax = float(fit.runs["C"].max())
    budgets = np.array([k * cmax for k in EXTRAPOLATION_SCALES])
    fr = frontier(fit, budgets, ci_probs=[0.9])
    n_opt = fr["N_opt_median"].to_numpy(float)
    bands = band_table(fit.predict({"N": n_opt, "D": budgets / (6.0 * n_opt)}), ci_probs=[0.9])
    rows = []
    for k, (_, f), (_, b) in zip(EXTRAPOLATION_SCALES, fr.iterrows(), bands.iterrows()):
        rows.append(
            (
                f"{k:g}x",
                _num(f["C"], 3),
                f"{_num(f['N_opt_median'], 3)} ({_num(f['N_opt_lo90'], 3)} - {_num(f['N_opt_hi90'], 3)})",
                f"{_num(f['D_opt_median'], 3)} ({_num(f['D_opt_lo90'], 3)} - {_num(f['D_opt_hi90'], 3)})",
                _num(f["tokens_per_param_median"], 3),
                _fixed(b["median"]),
                _interval(b["lo90"], b["hi90"]),
            )
        )
    return [
        _Heading("Extrapolation along the compute-optimal frontier", "extrapolation", level=3),
        _Para(
            "Compute-optimal model size N and tokens D (posterior median and 90% interval) at multiples of the "
            "largest run's compute, and the law's loss at the median allocation (without run-to-run noise"
            + (", with the spec's extrapolation drift" if fit.spec.extrapolation is not None else "")
            + ")."
        ),
        _Table(
            ("compute", "C (FLOPs)", "N_opt (90%)", "D_opt (90%)", "tokens/param", "loss median", "loss 90%"),
            tuple(rows),
            numeric=(False,) + (True,) * 6,
        ),
    ]


def _diagnostics(fit: Any, pit: Any, loo: Any) -> list[Any]:
    from .checks import coverage, design_warnings

    d = fit.diagnostics()
    out: list[Any] = [_Heading("Diagnostics", "diagnostics")]
    facts = f"Method {d['method']}, {d['chains']} chains x {d['draws']} draws"
    if "max_r_hat" in d:
        facts += (
            f"; max r-hat {d['max_r_hat']:.3f}, min bulk ESS {d['min_ess_bulk']:.0f}, min tail ESS {d['min_ess_tail']:.0f}, "
            f"{d['divergences']} divergent transitions, {d['max_tree_depth_hits']} draws at the maximum tree depth."
        )
    else:
        facts += "."
    out.append(_Para(facts))
    if d.get("note"):
        out.append(_Para(str(d["note"])))
    out.append(_Heading("Sampling problems", "problems", level=3))
    if d["problems"]:
        out.append(_List(tuple(str(p) for p in d["problems"]), cls="problem"))
    elif "max_r_hat" in d:
        out.append(_Para("No sampling problems: r-hat, effective sample sizes, divergences and tree depth are all within their limits.", cls="ok"))
    else:
        out.append(_Para("No MCMC statistics to check for this method."))
    out.append(_Heading("Design warnings", "design", level=3))
    warnings_ = design_warnings(fit)
    if warnings_:
        out.append(_List(tuple(str(w) for w in warnings_), cls="warn"))
    else:
        out.append(_Para("No design warnings: the runs vary what the law needs them to vary.", cls="ok"))
    out.append(_Heading("Leave-one-out predictive checks", "loo", level=3))
    if loo is not None:
        out.append(_Para(f"PSIS-LOO: {loo}.", cls="warn" if loo.flagged else ""))
    if pit is not None:
        cov = coverage(np.asarray(pit, dtype=float))
        out.append(
            _Para(
                "LOO-PIT coverage of central intervals (nominal: empirical): "
                + ", ".join(f"{100 * k:g}%: {v:.2f}" for k, v in cov.items())
                + "."
            )
        )
    return out


def _decision_blocks(decision: Any, fig: _Figure | None) -> list[Any]:
    t = decision.table
    pct = f"{100 * decision.ci_prob:g}%"
    header = ["option", "N", "D", "C", "median", f"{pct} interval"]
    if decision.threshold is not None:
        header.append(f"P(loss <= {decision.threshold:g})")
    header += ["VaR", "CVaR", f"risk ({decision.risk_label})", "P(best)", ""]
    rows = []
    for name, r in t.iterrows():
        cells = [str(name), *(_num(r.get(c), 3) for c in ("N", "D", "C")), _fixed(r["median"]), _interval(r["lo"], r["hi"])]
        if decision.threshold is not None:
            cells.append(_fixed(r["p_below"], 2))
        cells += [_fixed(r["var"]), _fixed(r["cvar"]), _fixed(r["risk"]), _fixed(r["p_best"], 2), "best" if str(name) == str(decision.best) else ""]
        rows.append(tuple(cells))
    out: list[Any] = [
        _Heading("Decision", "decision"),
        _Para(decision.verdict(), cls="verdict"),
        _Table(tuple(header), tuple(rows), numeric=(False,) + (True,) * (len(header) - 2) + (False,)),
    ]
    if decision.expected_utility:
        out.append(_Para("Expected utility: " + ", ".join(f"{k}: {_num(v)}" for k, v in decision.expected_utility.items()) + "."))
    if fig is not None:
        out.append(fig)
    return out


def _validation_blocks(validation: Any, fig: _Figure | None) -> list[Any]:
    t = validation.table
    cov_rows = tuple((f"{100 * k:g}%", _fixed(v, 2)) for k, v in validation.coverage.items())
    rows = []
    for _, r in t.iterrows():
        rows.append(
            (
                str(r["run_id"]),
                _num(r["C"], 3),
                _fixed(r["observed"]),
                _fixed(r["median"]),
                _interval(r["lo90"], r["hi90"]),
                _fixed(r.get("z"), 2),
                str(r["band"]),
                "yes" if bool(r.get("surprise", False)) else "",
            )
        )
    out: list[Any] = [
        _Heading("Leave-largest-out validation", "validation"),
        _Para(validation.summary()),
        _Table(("central interval", "empirical coverage"), cov_rows, numeric=(False, True)),
        _Table(("run", "C", "observed", "median", "90% interval", "z", "band", "surprise"), tuple(rows), numeric=(False, True, True, True, True, True, False, False)),
    ]
    if fig is not None:
        out.append(fig)
    return out


def _runs_blocks(fit: Any) -> list[Any]:
    runs = fit.runs
    extra = [c for c in ("seed", "arch", "notes", "source") if c in runs.columns]
    header = ("run_id", "N", "D", "C", "loss", *extra)
    rows = []
    for _, r in runs.iterrows():
        rows.append((str(r["run_id"]), *(_num(r.get(c), 4) for c in ("N", "D", "C", "loss")), *(_short(r[c]) for c in extra)))
    return [
        _Heading("Runs", "runs"),
        _Table(header, tuple(rows), numeric=(False, True, True, True, True) + (False,) * len(extra), collapsed=f"The {len(runs)} runs the fit used"),
    ]


# Figures: key, title, caption, and a function of (fit, context) returning a Figure.
_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("law_C", "Loss against compute", "Runs coloured by tokens per parameter; the law's posterior median and 50%/90% bands along the compute-optimal frontier, 1000x beyond the largest run (shaded: extrapolation)."),
    ("law_N", "Loss against model size", "One band per tokens-per-parameter ratio of the runs, in the runs' colours, extended to 1000x the largest run's compute."),
    ("law_D", "Loss against training tokens", "As above, against the number of training tokens."),
    ("frontier", "Compute-optimal allocation", "N_opt(C) and D_opt(C): per posterior draw, the split of each budget C = 6ND that minimises the law's loss; median and 50%/90% bands, runs for reference."),
    ("ppc", "Posterior predictive check", "Each run's observed loss against its replicated losses (law plus observation noise); right: as a ratio to the replicated median, to show systematic misfit."),
    ("loo_pit", "LOO-PIT calibration", "Leave-one-out probability integral transform of each run: uniform when the predictive intervals are calibrated (grey: the range of a uniform sample of this size)."),
    ("posteriors", "Posteriors against priors", "Posterior densities (median, 90% HDI) with the spec's prior densities dashed; a posterior that looks like its prior was not informed by the runs."),
    ("pair", "Pair plot", "Joint posterior of the law's parameters with correlations; the A-alpha and B-beta ridges show what the runs cannot separate."),
    ("trace", "Trace and rank plots", "Per chain: density and rank histogram of each parameter. Chains that agree have overlapping densities and flat rank bars."),
)


def _figures(fit: Any, pit: Any, progress: _Progress) -> list[_Figure]:
    from . import plots

    makers: dict[str, Callable[[], Any]] = {
        "law_C": lambda: plots.plot_law(fit, "C"),
        "law_N": lambda: plots.plot_law(fit, "N"),
        "law_D": lambda: plots.plot_law(fit, "D"),
        "frontier": lambda: plots.plot_frontier(fit),
        "ppc": lambda: plots.plot_ppc(fit),
        "loo_pit": lambda: plots.plot_loo_pit(fit, pit),
        "posteriors": lambda: plots.plot_posteriors(fit),
        "pair": lambda: plots.plot_pair(fit),
        "trace": lambda: plots.plot_trace(fit),
    }
    has_nd = {"N", "D"} <= set(fit.spec.columns)
    out = []
    for key, title, caption in _FIGURES:
        progress.step(f"figure: {title.lower()}")
        if key == "frontier" and not has_nd:
            continue
        if key == "loo_pit" and pit is None:
            continue
        if key == "pair" and len(fit.spec.law.params) < 2:
            continue
        out.append(_Figure(key, title, caption, figure_png(makers[key]())))
    return out


def _blocks(fit: Any, *, decision: Any, validation: Any, title: str | None, progress: _Progress, decision_seed: int = 0) -> tuple[str, list[Any]]:
    from . import checks, plots

    now = datetime.datetime.now(datetime.UTC)
    title = title or f"bayescale report: {fit.spec.name} on {len(fit.runs)} runs"
    progress.step("leave-one-out checks")
    try:
        loo = checks.loo(fit)
        pit = checks.loo_pit(fit)
    except BayescaleError:
        loo = pit = None
    blocks: list[Any] = []
    progress.step("provenance and summary")
    blocks += _provenance(fit, now)
    blocks += _summary(fit)
    blocks += _diagnostics(fit, pit, loo)
    blocks.append(_Heading("Plots", "plots"))
    blocks += _figures(fit, pit, progress)
    if decision is not None:
        progress.step("figure: decision")
        fig = _Figure("decision", "Loss of each option", "Posterior loss of each option with the threshold (red, dashed), the median, the interval and CVaR.", figure_png(plots.plot_decision(decision, fit, seed=decision_seed)))
        blocks += _decision_blocks(decision, fig)
    if validation is not None:
        progress.step("figure: leave-largest-out")
        fig = _Figure("holdout", "Held-out runs against their predicted bands", "Each held-out run's observed loss against the 90% predictive interval of the fit without it.", figure_png(plots.plot_holdout(validation)))
        blocks += _validation_blocks(validation, fig)
    blocks += _runs_blocks(fit)
    return title, blocks


def _n_steps(decision: Any, validation: Any) -> int:
    return 2 + len(_FIGURES) + (decision is not None) + (validation is not None)


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


def _html_block(b: Any) -> str:
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
    nav = " ".join(f'<a href="#{_e(b.anchor)}">{_e(b.text)}</a>' for b in blocks if isinstance(b, _Heading) and b.level == 2 and b.anchor)
    body = "\n".join(_html_block(b) for b in blocks)
    from . import __version__

    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CONTENT_SECURITY_POLICY)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{_e(title)}</h1>"
        '<p class="lead">A Bayesian scaling-law fit: what the runs say, how sure it is, and how far to trust the extrapolation.</p>'
        f"</header>\n<nav>{nav}</nav>\n<main>\n{body}\n</main>\n"
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
    from . import __version__

    parts = [f"# {_md(title)}"]
    images: dict[str, bytes] = {}
    for b in blocks:
        if isinstance(b, _Heading):
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


def _check_fit(fit: Any) -> None:
    if not (hasattr(fit, "idata") and hasattr(fit, "spec") and hasattr(fit, "runs")):
        raise BayescaleError(f"fit must be a bayescale Fit, got {type(fit).__name__}")


def write_html(fit: Any, path: str | os.PathLike, *, decision: Any = None, validation: Any = None, title: str | None = None, decision_seed: int = 0) -> Path:
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
    _check_fit(fit)
    path = Path(path)
    progress = _Progress(_n_steps(decision, validation), "report")
    try:
        title, blocks = _blocks(fit, decision=decision, validation=validation, title=title, progress=progress, decision_seed=decision_seed)
        _atomic_write(path, render_html(title, blocks).encode("utf-8"))
    finally:
        progress.close()
    return path


def write_markdown(fit: Any, path: str | os.PathLike, *, decision: Any = None, validation: Any = None, title: str | None = None, decision_seed: int = 0) -> Path:
    """Write the report as Markdown, with its figures as PNG files beside it.

    The same sections as :func:`write_html`, with Markdown tables. The figures go to
    the folder ``<name>_files/`` next to the file and are linked relatively, so the
    folder and the file move together. User text is HTML- and Markdown-escaped. Each
    file is written atomically (images first).

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
    _check_fit(fit)
    path = Path(path)
    image_dir = f"{path.stem}_files"
    progress = _Progress(_n_steps(decision, validation), "report")
    try:
        title, blocks = _blocks(fit, decision=decision, validation=validation, title=title, progress=progress, decision_seed=decision_seed)
        text, images = render_markdown(title, blocks, image_dir)
        for name, png in images.items():
            _atomic_write(path.parent / name, png)
        _atomic_write(path, text.encode("utf-8"))
    finally:
        progress.close()
    return path


__all__ = ["figure_png", "png_size", "render_html", "render_markdown", "write_html", "write_markdown"]
