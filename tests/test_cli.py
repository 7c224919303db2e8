"""Tests for the ``bayescale`` command line (bayescale.cli), run in-process through ``main``."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayescale
from bayescale import cli
from bayescale.errors import BayescaleError, ConvergenceWarning, StaleFitError
from bayescale.inference import Fit
from bayescale.laws import get_law, list_laws
from bayescale.spec import bundled_specs, load_spec
from bayescale.testing import synthetic_runs

TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36}
SMALL = ["--chains", "2", "--warmup", "200", "--draws", "200"]
VARS = ["E", "A", "B", "alpha", "beta", "sigma"]
REPO = Path(bayescale.__file__).resolve().parent.parent


def run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` with stdout and stderr captured (usable from module-scoped fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def write_runs(path: Path, **kwargs) -> Path:
    kwargs.setdefault("N", (1e7, 3e7, 1e8, 3e8))
    synthetic_runs("chinchilla", TRUTH, **kwargs).to_csv(path, index=False)
    return path


def assert_one_error_line(code: int, err: str, *needles: str) -> str:
    """Exit status 2 and exactly one ``bayescale: error:`` line on stderr containing each needle."""
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bayescale: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def nuts_fit(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One small NUTS fit through ``bayescale fit`` shared by the tests that read it."""
    d = tmp_path_factory.mktemp("cli_fit")
    runs = write_runs(d / "runs.csv")
    path = d / "fit.nc"
    code, out, err = run(["fit", "chinchilla", runs, "-o", path, "--seed", "3", *SMALL])
    return {"dir": d, "runs": runs, "path": path, "code": code, "out": out, "err": err}


# ----------------------------------------------------------------- fit


def test_fit_prints_summary_and_diagnostics_and_writes_netcdf(nuts_fit: dict) -> None:
    assert nuts_fit["code"] == 0, nuts_fit["err"]
    out = nuts_fit["out"]
    assert out.startswith("spec 'chinchilla' (id ")
    assert "L = E + A / N^alpha + B / D^beta; 12 runs" in out
    header = next(line for line in out.splitlines() if line.startswith("variable"))
    assert header.split() == ["variable", "mean", "sd", "5%", "median", "95%", "ess_bulk", "ess_tail", "r_hat"]
    for var in VARS:
        assert re.search(rf"^{var}\s+\S+", out, re.M), var
    assert re.search(
        r"^nuts: 2 chains x 200 draws, \d+\.\d s, max r-hat \d\.\d{3}, min ESS \d+ \(bulk\) / \d+ \(tail\), \d+ divergences$",
        out,
        re.M,
    ), out
    assert f"wrote {nuts_fit['path']}" in out
    fit = Fit.load(nuts_fit["path"])
    assert fit.method == "nuts" and fit.seed == 3
    assert fit.posterior.sizes["chain"] == 2 and fit.posterior.sizes["draw"] == 200
    # The table shows the saved fit's numbers.
    table = fit.summary()
    row = next(line for line in out.splitlines() if line.startswith("beta "))
    assert row.split()[4] == f"{table.loc['beta', 'median']:.4g}"
    # Warnings, if any, are one readable line each, not a Python warnings traceback.
    for line in nuts_fit["err"].splitlines():
        assert line.startswith("warning: "), nuts_fit["err"]
    assert "ConvergenceWarning" not in nuts_fit["err"] and "warnings.warn" not in nuts_fit["err"]


def test_bayescale_warnings_become_one_line_on_stderr(capsys: pytest.CaptureFixture) -> None:
    def noisy() -> int:
        warnings.warn("r-hat above 1.01:\nthe chains disagree", ConvergenceWarning, stacklevel=2)
        return 7

    # pytest turns warnings into errors: this passes only if the CLI consumed the warning.
    assert cli._with_readable_warnings(noisy) == 7
    captured = capsys.readouterr()
    assert captured.err == "warning: r-hat above 1.01: the chains disagree\n"
    assert captured.out == ""


def test_other_warnings_are_not_swallowed() -> None:
    def other() -> None:
        warnings.warn("something else", RuntimeWarning, stacklevel=2)

    with pytest.warns(RuntimeWarning, match="something else"):
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            cli._with_readable_warnings(other)


def test_fit_identifiability_warning_is_one_line(tmp_path: Path) -> None:
    runs = write_runs(tmp_path / "runs.csv")
    code, out, err = run(["fit", "multiplicative", runs, "-o", tmp_path / "m.nc", "--method", "laplace", "--draws", "100"])
    assert code == 0, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: the runs cannot separate all parameters"), err
    assert "N_exponent" in lines[0]
    assert re.search(r"^laplace: 4 chains x 100 draws, [\d.]+ s \(Laplace approximation", out, re.M), out
    assert (tmp_path / "m.nc").is_file()


# ------------------------------------------------------------- summary


def test_summary_table(nuts_fit: dict, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["summary", str(nuts_fit["path"])]) == 0
    captured = capsys.readouterr()
    table = Fit.load(nuts_fit["path"]).summary()
    for var in VARS:
        row = next(line for line in captured.out.splitlines() if line.split()[:1] == [var])
        assert row.split()[1] == f"{table.loc[var, 'mean']:.4g}"
        assert row.split()[-1] == f"{table.loc[var, 'r_hat']:.3f}"
    assert re.search(r"^nuts: 2 chains x 200 draws, .* divergences$", captured.out, re.M)
    for line in captured.err.splitlines():
        assert line.startswith("warning: ")


def test_summary_json(nuts_fit: dict, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["summary", str(nuts_fit["path"]), "--format", "json", "--ci-prob", "0.8"]) == 0
    doc = json.loads(capsys.readouterr().out)
    fit = Fit.load(nuts_fit["path"])
    assert doc["spec"] == "chinchilla" and doc["spec_id"] == fit.spec.id and doc["method"] == "nuts"
    assert list(doc["summary"]) == VARS
    assert set(doc["summary"]["E"]) == {"mean", "sd", "10%", "median", "90%", "ess_bulk", "ess_tail", "r_hat"}
    table = fit.summary(ci_prob=0.8)
    assert doc["summary"]["alpha"]["90%"] == pytest.approx(table.loc["alpha", "90%"])
    diag = fit.diagnostics()
    d = doc["diagnostics"]
    assert d["max_r_hat"] == pytest.approx(diag["max_r_hat"])
    assert d["min_ess_bulk"] == pytest.approx(diag["min_ess_bulk"])
    assert d["divergences"] == diag["divergences"]
    assert d["problems"] == diag["problems"] and isinstance(d["problems"], list)
    assert d["chains"] == 2 and d["draws"] == 200


def test_summary_bad_ci_prob(nuts_fit: dict, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["summary", str(nuts_fit["path"]), "--ci-prob", "1.5"])
    assert_one_error_line(code, capsys.readouterr().err, "ci_prob", "1.5")


def test_summary_of_a_file_that_is_not_a_fit(nuts_fit: dict, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["summary", str(nuts_fit["runs"])])
    assert_one_error_line(code, capsys.readouterr().err, "runs.csv", "not a bayescale fit")


# ------------------------------------------------------------- predict


def test_predict_table_and_json(nuts_fit: dict, capsys: pytest.CaptureFixture) -> None:
    path = str(nuts_fit["path"])
    assert cli.main(["predict", path, "--at", "N=7e9,D=1.4e12", "--at", "N=1e9, C=1e21", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ci_prob"] == 0.9 and doc["noise"] is False
    p0, p1 = doc["points"]
    assert p0["N"] == 7e9 and p0["D"] == 1.4e12 and p0["C"] == pytest.approx(6 * 7e9 * 1.4e12)
    assert p1["D"] == pytest.approx(1e21 / (6 * 1e9))
    fit = Fit.load(path)
    draws = fit.predict({"N": 7e9, "D": 1.4e12}).values.reshape(-1)
    assert p0["median"] == pytest.approx(np.median(draws))
    assert p0["lower"] == pytest.approx(np.quantile(draws, 0.05))
    assert p0["upper"] == pytest.approx(np.quantile(draws, 0.95))
    for p in (p0, p1):
        assert p["lower"] < p["median"] < p["upper"]

    assert cli.main(["predict", path, "--at", "N=7e9,D=1.4e12"]) == 0
    out = capsys.readouterr().out
    assert "predicting the law's loss" in out
    assert re.search(r"median loss\s+90% interval", out)
    assert f"{p0['median']:.4f}" in out and f"[{p0['lower']:.4f}, {p0['upper']:.4f}]" in out


def test_predict_noise_widens_the_band(nuts_fit: dict, capsys: pytest.CaptureFixture) -> None:
    path = str(nuts_fit["path"])
    widths = []
    for extra in ([], ["--noise"]):
        assert cli.main(["predict", path, "--at", "N=1e8,D=2e9", "--format", "json", *extra]) == 0
        p = json.loads(capsys.readouterr().out)["points"][0]
        widths.append(p["upper"] - p["lower"])
    assert widths[1] > widths[0]


@pytest.mark.parametrize(
    ("at", "needles"),
    [
        ("N7e9", ["'N7e9'", "NAME=VALUE"]),
        ("N=abc,D=1e12", ["'N=abc,D=1e12'", "'abc' is not a number"]),
        ("N=-1,D=1e12", ["'N=-1,D=1e12'", "> 0"]),
        ("N=1e9,N=2e9,D=1e12", ["N is given twice"]),
        ("", ["empty"]),
        ("N=7e9", ["'N=7e9'", "['D'] missing"]),
        ("N=7e9,D=1e12,X=3", ["'N=7e9,D=1e12,X=3'", "['X']"]),
    ],
)
def test_predict_bad_at(nuts_fit: dict, capsys: pytest.CaptureFixture, at: str, needles: list[str]) -> None:
    code = cli.main(["predict", str(nuts_fit["path"]), "--at", at])
    captured = capsys.readouterr()
    assert_one_error_line(code, captured.err, "--at", *needles)
    assert captured.out == ""


def test_parse_point() -> None:
    assert cli.parse_point("N=7e9,D=1.4e12") == {"N": 7e9, "D": 1.4e12}
    assert cli.parse_point(" C = 1e21 ") == {"C": 1e21}
    for bad in ("N=", "=1", "N=1,,D=2", "N=inf", "N=nan", "1N=2"):
        with pytest.raises(BayescaleError, match=re.escape(repr(bad))):
            cli.parse_point(bad)


def test_band_table_with_points_giving_different_inputs() -> None:
    rows = [
        {"C": 1e22, "median": 2.1, "lower": 2.0, "upper": 2.2},
        {"N": 1e9, "D": 2e10, "C": 1.2e20, "median": 2.5, "lower": 2.4, "upper": 2.6},
    ]
    lines = cli._band_text(rows, 0.5).splitlines()
    assert lines[0].split() == ["C", "N", "D", "median", "loss", "50%", "interval"]
    assert lines[1].split() == ["1e+22", "-", "-", "2.1000", "[2.0000,", "2.2000]"]
    assert lines[2].split() == ["1.2e+20", "1e+09", "2e+10", "2.5000", "[2.4000,", "2.6000]"]


# --------------------------------------------------------------- errors


def test_fit_missing_runs_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["fit", "chinchilla", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "f.nc")])
    assert_one_error_line(code, capsys.readouterr().err, "nope.csv", "not found")
    assert not (tmp_path / "f.nc").exists()


def test_fit_unknown_spec(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = write_runs(tmp_path / "runs.csv")
    code = cli.main(["fit", "no_such_spec", str(runs), "-o", str(tmp_path / "f.nc")])
    assert_one_error_line(code, capsys.readouterr().err, "'no_such_spec'", "chinchilla")


def test_fit_negative_loss_names_column_and_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    frame = synthetic_runs("chinchilla", TRUTH, N=(1e7, 3e7))
    frame.loc[2, "loss"] = -1.0
    bad_id = frame.loc[2, "run_id"]
    frame.to_csv(tmp_path / "runs.csv", index=False)
    code = cli.main(["fit", "chinchilla", str(tmp_path / "runs.csv"), "-o", str(tmp_path / "f.nc")])
    assert_one_error_line(code, capsys.readouterr().err, "'loss'", bad_id, "> 0")


def test_fit_output_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = write_runs(tmp_path / "runs.csv")
    code = cli.main(["fit", "chinchilla", str(runs), "-o", str(tmp_path)])
    assert_one_error_line(code, capsys.readouterr().err, "cannot write the fit", "folder")


def test_fit_bad_sampler_override(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = write_runs(tmp_path / "runs.csv")
    code = cli.main(["fit", "chinchilla", str(runs), "-o", str(tmp_path / "f.nc"), "--chains", "0"])
    assert_one_error_line(code, capsys.readouterr().err, "chains", "0")


def test_stale_fit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = tmp_path / "my_spec.toml"
    shutil.copy(REPO / "models" / "chinchilla.toml", spec)
    runs = write_runs(tmp_path / "runs.csv")
    path = tmp_path / "fit.nc"
    code, _, err = run(["fit", spec, runs, "-o", path, "--method", "laplace", "--draws", "50"])
    assert code == 0, err
    assert cli.main(["summary", str(path)]) == 0  # sampler overrides do not make a fit stale
    capsys.readouterr()

    text = spec.read_text()
    edited = text.replace('E = {dist = "LogNormal", loc = 0.5', 'E = {dist = "LogNormal", loc = 0.7')
    assert edited != text
    spec.write_text(edited)
    with pytest.raises(StaleFitError) as info:
        Fit.load(path)
    for argv in (["summary", str(path)], ["predict", str(path), "--at", "N=7e9,D=1.4e12"]):
        code = cli.main(argv)
        captured = capsys.readouterr()
        line = assert_one_error_line(code, captured.err, "priors")
        assert line == f"bayescale: error: {cli._one_line(info.value)}"
        assert captured.out == ""


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture) -> None:
    assert cli.main([]) == 2
    assert cli.main(["fit", "chinchilla"]) == 2
    assert cli.main(["summary", "x.nc", "--format", "xml"]) == 2
    assert cli.main(["fit", "chinchilla", "r.csv", "-o", "f.nc", "--method", "hmc"]) == 2
    assert "usage: bayescale" in capsys.readouterr().err


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["--help"]) == 0
    assert cli.main(["--version"]) == 0
    out = capsys.readouterr().out
    assert "fit" in out and "predict" in out and f"bayescale {bayescale.__version__}" in out


def test_python_m_bayescale_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "bayescale", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: bayescale")
    for command in ("fit", "summary", "predict", "demo", "laws", "specs", "check-spec"):
        assert command in proc.stdout


# ------------------------------------------------------- laws, specs, check-spec


def test_laws(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["laws"]) == 0
    out = capsys.readouterr().out
    for name in list_laws():
        law = get_law(name)
        assert f"{name}: {law.formula}" in out
        assert f"params: {', '.join(law.params)}" in out
    assert "S (column C)" in out


def test_specs(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["specs"]) == 0
    out = capsys.readouterr().out
    assert bundled_specs()
    for name in bundled_specs():
        spec = load_spec(name)
        assert re.search(rf"^{name}\s+{spec.law.name}\s+{spec.likelihood.family}\s+{spec.id}", out, re.M), name


def test_check_spec_prints_canonical_toml(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["check-spec", "chinchilla"]) == 0
    out = capsys.readouterr().out
    first, _, toml_text = out.partition("\n")
    spec = load_spec("chinchilla")
    assert first.startswith(f"# spec 'chinchilla' is valid; id {spec.id}")
    assert load_spec(tomllib.loads(toml_text)).id == spec.id


def test_check_spec_invalid(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((REPO / "models" / "chinchilla.toml").read_text().replace('law]\nname = "chinchilla"', 'law]\nname = "chinchila"'))
    code = cli.main(["check-spec", str(bad)])
    assert_one_error_line(code, capsys.readouterr().err, "'chinchila'", "registered laws")
    (tmp_path / "broken.toml").write_text("name = \n")
    code = cli.main(["check-spec", str(tmp_path / "broken.toml")])
    assert_one_error_line(code, capsys.readouterr().err, "broken.toml", "not valid TOML")


# ------------------------------------------------------------------ demo


def test_demo_without_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(cli, "_data_dir", lambda: tmp_path)
    code = cli.main(["demo", "--out", str(tmp_path / "out")])
    assert_one_error_line(code, capsys.readouterr().err, str(tmp_path / "demo_runs.csv"), "missing")


def _check_demo_output(out: str, runs: pd.DataFrame, fit_path: Path) -> None:
    assert "extrapolation along D = 20 N" in out
    cmax = runs["C"].max() if "C" in runs else (6 * runs["N"] * runs["D"]).max()
    medians = []
    for k in (10, 100, 1000):
        row = next(line for line in out.splitlines() if line.startswith(f"{k}x "))
        cells = row.split()
        n, d, c = float(cells[1]), float(cells[2]), float(cells[3])
        assert c == pytest.approx(k * cmax, rel=5e-3)
        assert d == pytest.approx(20 * n, rel=5e-3)
        lo, hi = (float(x) for x in re.search(r"\[([\d.]+), ([\d.]+)\]", row).groups())
        med = float(cells[4])
        assert lo < med < hi
        medians.append(med)
    assert medians[0] > medians[1] > medians[2]  # more compute, lower loss
    assert fit_path.is_file()
    assert Fit.load(fit_path).spec.name == "chinchilla"


def test_demo_on_small_synthetic_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_runs(data / "demo_runs.csv")
    monkeypatch.setattr(cli, "_data_dir", lambda: data)
    code, out, err = run(["demo", "--out", tmp_path / "out", "--method", "laplace", "--draws", "200"])
    assert code == 0, err
    assert out.startswith("demo: fitting bundled spec 'chinchilla' to 12 runs from demo_runs.csv")
    assert "synthetic placeholder" in out  # the synthetic source column is announced
    _check_demo_output(out, pd.read_csv(data / "demo_runs.csv"), tmp_path / "out" / "demo_fit.nc")


@pytest.mark.slow
def test_demo_on_bundled_data(tmp_path: Path) -> None:
    csv = cli._data_dir() / cli.DEMO_RUNS
    if not csv.is_file():
        pytest.skip(f"{csv} is absent (the demo's bundled runs table)")
    code, out, err = run(["demo", "--out", tmp_path / "out"])
    assert code == 0, err
    for line in err.splitlines():
        assert line.startswith("warning: "), err
    runs = bayescale.load_runs(csv)
    assert out.startswith(f"demo: fitting bundled spec 'chinchilla' to {len(runs)} runs")
    assert re.search(r"^nuts: 4 chains x 1000 draws, .* divergences$", out, re.M), out
    _check_demo_output(out, runs, tmp_path / "out" / "demo_fit.nc")
    assert math.isfinite(Fit.load(tmp_path / "out" / "demo_fit.nc").diagnostics()["max_r_hat"])
