"""The HTML and Markdown reports: sections, embedded PNGs, no external references, escaping,
atomic writes, the command-line entry, and a render in headless Chromium when installed."""

from __future__ import annotations

import base64
import dataclasses
import gc
import html
import io
import os
import re
import shutil
import subprocess
import weakref
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

import bayescale as bs
from bayescale import checks, report
from bayescale.cli import report as report_cli
from bayescale.errors import BayescaleError
from bayescale.frontier import frontier
from bayescale.report._answer import _headline, answer_warnings
from bayescale.report._content import _fresh_tokens_note
from bayescale.report._elements import _Para
from bayescale.testing import fit_from_draws, synthetic_runs

TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36}
EVIL_RUN = "<script>alert(1)</script>"
EVIL_NOTE = '<img src="https://example.com/x.png" onerror="alert(2)"> & | *stars*'
EVIL_OPTION = "<i>big</i>"
SECTIONS = ("answer", "provenance", "summary", "diagnostics", "plots", "decision", "validation", "runs")
N_FIGURES = 11  # 9 of the fit, the decision's and the validation's
ALLOWED_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "header",
    "h1",
    "h2",
    "h3",
    "p",
    "nav",
    "a",
    "main",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "details",
    "summary",
    "pre",
    "ul",
    "li",
    "figure",
    "img",
    "figcaption",
    "footer",
    "section",
}


def _draws(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((6, 2, 50))
    return {
        "E": 1.8 + 0.02 * z[0],
        "A": 480.0 * np.exp(0.3 * z[1]),
        "alpha": 0.35 + 0.01 * z[1] + 0.003 * z[2],
        "B": 2000.0 * np.exp(0.3 * z[3]),
        "beta": 0.36 + 0.01 * z[3] + 0.003 * z[4],
        "sigma": 0.01 * np.exp(0.1 * z[5]),
        "drift": 0.01 * rng.standard_normal((2, 50)),
    }


@pytest.fixture(scope="module")
def material():
    runs = synthetic_runs("chinchilla", TRUTH, seed=1)
    runs.loc[0, "run_id"] = EVIL_RUN
    runs["notes"] = EVIL_NOTE
    fit = fit_from_draws("chinchilla", runs, _draws())
    dec = bs.decide({EVIL_OPTION: {"N": 2e10, "D": 4e11}, "small": {"N": 5e9, "D": 1e11}}, fit=fit, threshold=2.2)
    train, test = runs.iloc[:12].reset_index(drop=True), runs.iloc[12:].reset_index(drop=True)
    table = checks.predictive_table(fit, test)
    val = checks.Validation(
        table=table,
        coverage=checks.coverage(table["pit"].to_numpy()),
        mean_log_pred_density=float(table["log_pred_density"].mean()),
        median_abs_rel_error=float(np.median(np.abs(table["rel_error"]))),
        cut=float(train["C"].max()),
        n_train=len(train),
        fit=None,
    )
    return {"runs": runs, "fit": fit, "decision": dec, "validation": val}


@pytest.fixture(scope="module")
def reports(material, tmp_path_factory):
    """The report of ``material`` as HTML and as Markdown, one after the other (the second reuses the first's
    figures, as a user writing both gets)."""
    options = {"decision": material["decision"], "validation": material["validation"], "title": "Pilot <b>runs</b>"}
    html_path = tmp_path_factory.mktemp("html") / "sub" / "report.html"
    assert report.write_html(material["fit"], html_path, **options) == html_path
    md_path = tmp_path_factory.mktemp("md") / "report.md"
    assert report.write_markdown(material["fit"], md_path, **options) == md_path
    plt.close("all")
    return html_path, md_path


@pytest.fixture(scope="module")
def html_report(reports):
    return reports[0]


@pytest.fixture(scope="module")
def md_report(reports):
    return reports[1]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(text: str) -> _Tags:
    p = _Tags()
    p.feed(text)
    p.close()
    return p


def _images(text: str) -> list[tuple[dict, bytes]]:
    out = []
    for tag, attrs in _parse(text).tags:
        if tag == "img":
            src = attrs["src"]
            prefix = "data:image/png;base64,"
            assert src.startswith(prefix), src[:60]
            out.append((attrs, base64.b64decode(src[len(prefix) :], validate=True)))
    return out


# ------------------------------------------------------------------ HTML


def test_html_has_every_section_and_the_provenance(html_report, material):
    text = html_report.read_text(encoding="utf-8")
    fit = material["fit"]
    for section in SECTIONS:
        assert f'id="{section}"' in text, section
    attrs = fit.idata.attrs
    assert attrs["runs_hash"] in text and attrs["spec_id"] in text
    assert html.escape(fit.spec.to_toml()) in text  # the spec TOML, verbatim and escaped
    assert f"{len(material['runs'])} runs" in text
    assert "Pilot &lt;b&gt;runs&lt;/b&gt;" in text  # the title is user text too
    assert html.escape(material["decision"].verdict()) in text
    assert html.escape(material["validation"].summary()) in text
    # The posterior summary table has a row per variable.
    for v in fit.var_names:
        assert f"<td>{v}</td>" in text


def test_html_images_are_valid_pngs_with_their_sizes(html_report):
    from PIL import Image

    imgs = _images(html_report.read_text(encoding="utf-8"))
    assert len(imgs) == N_FIGURES
    for attrs, data in imgs:
        assert data[:8] == report.PNG_SIGNATURE and len(data) > 1000
        w, h = report.png_size(data)
        assert (int(attrs["width"]), int(attrs["height"])) == (w, h)
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # decodes every row: a truncated or corrupt PNG fails here
            assert im.size == (w, h) and w > 200 and h > 100
            assert np.asarray(im.convert("L")).std() > 0  # not a blank image
        assert attrs.get("alt")


def test_html_is_self_contained_and_has_no_scripts(html_report):
    text = html_report.read_text(encoding="utf-8")
    parsed = _parse(text)
    tags = {t for t, _ in parsed.tags}
    assert tags <= ALLOWED_TAGS, tags - ALLOWED_TAGS
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", text, re.IGNORECASE)
    for tag, attrs in parsed.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        if "href" in attrs:
            assert attrs["href"].startswith("#"), attrs
        if "src" in attrs:
            assert attrs["src"].startswith("data:image/png;base64,")
    style = text[text.index("<style>") : text.index("</style>")]
    assert "url(" not in style and "@import" not in style
    assert any(
        t == "meta" and a.get("http-equiv") == "Content-Security-Policy" and "default-src 'none'" in a["content"]
        for t, a in parsed.tags
    )


def test_html_escapes_user_text(html_report):
    text = html_report.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert html.escape(EVIL_NOTE) in text
    assert "&lt;i&gt;big&lt;/i&gt;" in text
    assert EVIL_RUN not in text and "<i>big</i>" not in text and 'onerror="alert(2)"' not in text
    visible = "".join(_parse(text).text)
    assert EVIL_RUN in visible and EVIL_OPTION in visible  # shown as text


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "r.html"
    path.write_text("old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(report.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        report._atomic_write(path, b"new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]  # no temporary file left behind
    monkeypatch.undo()
    report._atomic_write(path, b"new")
    assert path.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_write_html_rejects_a_non_fit(tmp_path):
    with pytest.raises(BayescaleError, match="Fit"):
        report.write_html({"not": "a fit"}, tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_is_quiet_unless_on_a_terminal():
    quiet = _Stream(tty=False)
    p = report._Progress(3, "report", stream=quiet)
    p.step("one")
    p.close()
    assert quiet.getvalue() == ""
    loud = _Stream(tty=True)
    p = report._Progress(3, "report", stream=loud)
    p.step("figure: law")
    assert "report [1/3] figure: law" in loud.getvalue()
    p.close()
    assert loud.getvalue().endswith("\r")  # the line is cleared at the end


def test_png_size_rejects_non_png():
    with pytest.raises(BayescaleError, match="PNG"):
        report.png_size(b"GIF89a" + b"\0" * 30)


# ------------------------------------------------------------------ Markdown


def test_markdown_tables_and_relative_images(md_report, material):
    text = md_report.read_text(encoding="utf-8")
    for heading in (
        "## Provenance",
        "## Posterior summary",
        "## Diagnostics",
        "## Plots",
        "## Decision",
        "### Does the law fit the runs?",
        "## Leave-largest-out validation",
        "## Runs",
    ):
        assert heading in text
    assert "| variable | mean |" in text and "|---|---:|" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == N_FIGURES
    for link in links:
        assert not link.startswith(("/", "http")) and link.startswith("report_files/")
        data = (md_report.parent / link).read_bytes()
        assert data[:8] == report.PNG_SIGNATURE and report.png_size(data)[0] > 200
    assert material["fit"].idata.attrs["runs_hash"] in text


def test_the_same_report_in_the_other_format_reuses_its_figures_and_keeps_no_fit_alive(material, tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(report, "_LAST_REPORT", [])
    monkeypatch.setattr(report, "_blocks", lambda fit, **options: made.append(options) or ("t", [_Para("drawn")]))
    fit = fit_from_draws("chinchilla", material["fit"].runs, _draws())
    report.write_markdown(fit, tmp_path / "r.md")
    report.write_html(fit, tmp_path / "r.html")
    assert len(made) == 1 and "drawn" in (tmp_path / "r.html").read_text(encoding="utf-8")
    report.write_html(fit, tmp_path / "r.html")
    assert len(made) == 2  # for the next report only
    for options in ({"title": "another"}, {"decision_seed": 1}, {"decision": material["decision"]}, {}):
        report.write_html(fit, tmp_path / "r.html", **options)
    assert len(made) == 6  # another title, seed, decision or none: drawn anew
    report.write_html(material["fit"], tmp_path / "r.html")
    assert len(made) == 7  # another fit
    # A decision made for one report and dropped is not mistaken for "no decision" by the next.
    report.write_html(fit, tmp_path / "r.html", decision=dataclasses.replace(material["decision"]))
    gc.collect()
    report.write_html(fit, tmp_path / "r.html")
    assert len(made) == 9
    report.write_html(fit, tmp_path / "r.html", title="kept")
    kept = weakref.ref(fit)
    del fit
    gc.collect()
    assert kept() is None and report._LAST_REPORT == [], "a kept report must not keep its fit, nor outlive it"


def test_markdown_report_refuses_a_file_where_its_figures_folder_goes(material, tmp_path):
    (tmp_path / "r_files").write_text("the user's own file")
    with pytest.raises(bs.BayescaleError, match=r"r_files' is a file, but the Markdown report keeps its figures"):
        report.write_markdown(material["fit"], tmp_path / "r.md")
    assert (tmp_path / "r_files").read_text() == "the user's own file" and not (tmp_path / "r.md").exists()


def test_markdown_escapes_user_text(md_report):
    text = md_report.read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "<img" not in text and "<i>" not in text
    assert text.startswith("# Pilot ") and "<b>" not in text  # the title is user text too
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert r"\| \*stars\*" in text  # a pipe cannot break the runs table, stars cannot turn bold
    # Every runs-table row has as many cells as the header.
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(r"| run\_id |"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    header, rows = lines[start], lines[start + 2 : end]
    n = len(re.split(r"(?<!\\)\|", header))
    assert len(rows) == 15 and all(len(re.split(r"(?<!\\)\|", r)) == n for r in rows)
    assert rows[0].startswith("| &lt;script&gt;alert(1)&lt;/script&gt; |")


# ------------------------------------------------------------------ command line


def test_report_main_usage_errors(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert report_cli.report_main([str(tmp_path / "missing.nc"), "-o", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    assert report_cli.report_main([str(tmp_path / "missing.nc"), "-o", str(out), "--decision", "7B=N=7e9"]) == 2
    assert "--decision '7B=N=7e9'" in capsys.readouterr().err
    assert report_cli.report_main([str(tmp_path / "missing.nc"), "-o", str(out), "--threshold", "2.1"]) == 2
    assert "--decision" in capsys.readouterr().err
    assert report_cli.report_main(["--help"]) == 0
    assert "bayescale report" in capsys.readouterr().out
    assert report_cli.report_main([]) == 2
    assert not out.exists()


@pytest.mark.slow
def test_report_main_writes_html_from_a_saved_fit(material, tmp_path, capsys):
    nc = material["fit"].save(tmp_path / "fit.nc")
    out = tmp_path / "report.html"
    rc = report_cli.report_main(
        [
            str(nc),
            "-o",
            str(out),
            "--decision",
            "small:N=5e9,D=1e11",
            "--decision",
            "big:N=2e10,D=4e11",
            "--threshold",
            "2.2",
            "--title",
            "CLI",
        ]
    )
    plt.close("all")
    assert rc == 0, capsys.readouterr().err
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert 'id="decision"' in text and 'id="validation"' not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script" not in text.lower()
    assert len(_images(text)) == N_FIGURES - 1


# ------------------------------------------------------------------ Chromium


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_renders_in_headless_chromium(html_report, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip(
            "no Chromium on PATH (chromium, chromium-browser or google-chrome): install it to render the report"
        )
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    url = html_report.resolve().as_uri()
    shot = tmp_path / "shot.png"
    env = {**os.environ, "HOME": str(tmp_path)}
    res = subprocess.run(
        [exe, *flags, f"--screenshot={shot}", "--window-size=1200,3000", url],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert shot.is_file() and shot.stat().st_size > 0, res.stderr[-2000:]
    # Console errors and blocked loads (the CSP reports any attempt to fetch or run something).
    log = res.stderr
    # A page without scripts logs nothing to the console; the CSP logs any blocked load or script.
    for bad in (":CONSOLE", "Refused to", "Uncaught", "Content Security Policy", "net::ERR_"):
        assert bad not in log, [ln for ln in log.splitlines() if bad in ln][:5]
    from PIL import Image

    with Image.open(shot) as im:
        px = np.asarray(im.convert("RGB"), dtype=float)
    assert px.shape[:2] == (3000, 1200)
    assert px.std() > 0
    assert (px.min(axis=2) < 200).mean() > 0.02  # text and figures, not a blank page
    dom = subprocess.run(
        [exe, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180, env=env, check=False
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = _parse(dom.stdout)
    imgs = [a for t, a in parsed.tags if t == "img"]
    assert len(imgs) == N_FIGURES and all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    assert not [t for t, _ in parsed.tags if t == "script"]
    assert EVIL_RUN in "".join(parsed.text)  # the run id survived as text in the live DOM


# ------------------------------------------------------------------ the answer first


def test_the_answer_box_opens_the_report(html_report, md_report, material):
    text = html_report.read_text(encoding="utf-8")
    body = text[text.index("<body>") :]
    # The box comes right after the title, before the navigation and every section.
    assert body.index('id="answer"') < body.index("<nav>") < body.index('id="provenance"')
    box = text[text.index('<section class="answer"') : text.index("</section>")]
    assert f'<p class="headline">{html.escape(material["decision"].verdict())}</p>' in box
    assert f"Law chinchilla ({material['fit'].spec.law.formula}) fitted to 15 runs" in html.unescape(box)
    # Its warnings are answer_warnings', one item each (the extension point of later sections).
    fit = material["fit"]
    warned = answer_warnings(
        fit, psis=checks.loo(fit), decision=material["decision"], validation=material["validation"]
    )
    assert any(w.startswith("Influential runs") for w in warned)  # the fixed draws are wider than the data allow
    for w in warned:
        assert f"<li>{html.escape(w)}</li>" in box
    assert box.count("<li>") == len(warned) and ("No warnings" in box) == (not warned)
    md = md_report.read_text(encoding="utf-8")
    assert md.index("## The answer") < md.index("## Provenance")


def test_answer_warnings_say_what_is_wrong_in_words(material):
    fit = material["fit"]
    base = answer_warnings(fit)
    quick = answer_warnings(dataclasses.replace(fit, method="laplace"))
    assert len(quick) == len(base) + 1 and "refit with NUTS" in quick[-1]
    held_out = answer_warnings(fit, validation=material["validation"])
    surprises = int(material["validation"].table["surprise"].sum())
    assert any(w.startswith("Leave-largest-out:") for w in held_out) == (surprises > 0)
    for w in held_out:
        assert "['" not in w and "\\u" not in w


def test_report_prose_has_no_python_reprs(html_report, md_report):
    for path in (html_report, md_report):
        visible = "".join(_parse(path.read_text(encoding="utf-8")).text)
        assert "['" not in visible and '["' not in visible and "\\u" not in visible, path


def _headline_rect(exe: str, page, tmp_path) -> list[float]:
    """top, bottom of the answer's headline and the viewport's width, height, as Chromium lays the page out."""
    env = {**os.environ, "HOME": str(tmp_path)}
    res = subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,800",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    m = re.search(r'data-probe="([^"]+)"', res.stdout)
    assert m, res.stderr[-2000:]
    return [float(x) for x in m.group(1).split(",")]


def test_the_answer_is_on_the_first_screen_at_1280_by_800(html_report, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium on PATH (chromium, chromium-browser or google-chrome): cannot lay the report out")
    # The report forbids scripts (its Content-Security-Policy); a copy without the policy and with one
    # measuring script reports where the browser put the headline.
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html_report.read_text(encoding="utf-8"))
    probe = (
        "<script>const r = document.querySelector('#answer p.headline').getBoundingClientRect();"
        "document.body.setAttribute('data-probe', [r.top, r.bottom, window.innerWidth, window.innerHeight].join(','));"
        "</script></body>"
    )
    page = tmp_path / "probe.html"
    page.write_text(text.replace("</body>", probe), encoding="utf-8")
    top, bottom, width, height = _headline_rect(exe, page, tmp_path)
    assert width == 1280 and 500 < height <= 800
    assert 0 < top < bottom <= height, (top, bottom, height)  # the whole headline, without scrolling


def test_the_frontier_says_it_trains_on_fresh_tokens_when_the_runs_repeat_data():
    """A new user's repeated-data sweep: the report's 1000x frontier loss assumed fresh tokens, unsaid."""
    runs = synthetic_runs("chinchilla", TRUTH, seed=1)
    assert _fresh_tokens_note(fit_from_draws("chinchilla", runs, _draws())) == ""
    repeated = runs.assign(U=lambda t: np.where(t.index < 3, t["D"] / 4, t["D"]))
    note = _fresh_tokens_note(fit_from_draws("chinchilla", repeated, _draws()))
    assert "3 of the runs repeat data" in note and "--unique-tokens" in note


def test_the_frontier_table_and_headline_read_the_optimal_loss_that_optimal_prints(md_report, material):
    """The report's frontier losses were `predict` at the median allocation (1.867, 1.616-2.212 at 1000x on
    the pilots) where `optimal` gives each draw's own optimum (1.842, 1.584-2.194): one quantity, one band."""
    fit = material["fit"]
    cmax = float(fit.runs["C"].max())
    expected = frontier(fit, [1000 * cmax], ci_probs=[0.9]).iloc[0]
    row = next(line for line in md_report.read_text(encoding="utf-8").splitlines() if line.startswith("| 1000x |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[-2] == f"{expected['loss_opt_median']:.4f}"
    assert cells[-1] == f"{expected['loss_opt_lo90']:.4f} - {expected['loss_opt_hi90']:.4f}"
    headline = _headline(fit, None, (1000, expected))
    assert f"reaches loss {expected['loss_opt_median']:.3f}, 90% interval {expected['loss_opt_lo90']:.3f}-" in headline
