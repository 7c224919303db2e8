"""Tests for the ``bayescale`` command line (bayescale.cli), run in-process through ``main``."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import stat
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
from bayescale._stages import STAGE_PREFIX
from bayescale.errors import BayescaleError, ConvergenceWarning, StaleFitError
from bayescale.inference import Fit
from bayescale.laws import get_law, list_laws
from bayescale.spec import bundled_specs, load_spec
from bayescale.testing import fit_from_draws, synthetic_runs

TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36}
SMALL = ["--chains", "2", "--warmup", "200", "--draws", "200"]
VARS = ["E", "A", "B", "alpha", "beta", "sigma"]
REPO = Path(bayescale.__file__).resolve().parent.parent


def run(argv: list[str], stages: bool = False) -> tuple[int, str, str]:
    """``main(argv)`` with stdout and stderr captured (usable from module-scoped fixtures).

    The progress lines (``[  3.1s] sampling ...``) are dropped from stderr unless ``stages``, so the
    tests of warnings and errors read what they test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    text = err.getvalue()
    if not stages:
        text = "".join(line for line in text.splitlines(keepends=True) if not re.match(STAGE_PREFIX, line))
    return code, out.getvalue(), text


def write_runs(path: Path, **kwargs) -> Path:
    kwargs.setdefault("N", (1e7, 3e7, 1e8, 3e8))
    synthetic_runs("chinchilla", TRUTH, **kwargs).to_csv(path, index=False)
    return path


def assert_one_error_line(code: int, err: str, *needles: str) -> str:
    """Exit status 2 and exactly one ``bayescale: error:`` line on stderr containing each needle
    (after the progress lines of the stages that ran before the error)."""
    assert code == 2
    lines = [line for line in err.splitlines() if not re.match(STAGE_PREFIX, line)]
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
        r"^nuts: 2 chains x 200 draws, \d+\.\d s, max r-hat \d\.\d{3}, min ESS \d+ \(bulk\) / \d+ \(tail\), \d+ divergences"
        r"(; chain \d stuck after warmup and re-stepped, .*)?$",  # a chain given a healthy one's step says so
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
    code, out, err = run(
        ["fit", "multiplicative", runs, "-o", tmp_path / "m.nc", "--method", "laplace", "--draws", "100"]
    )
    assert code == 0, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: the runs cannot separate all parameters"), err
    assert "N_exponent" in lines[0]
    assert re.search(r"^laplace: 4 chains x 100 draws, [\d.]+ s \(Laplace approximation", out, re.M), out
    assert (tmp_path / "m.nc").is_file()


def test_fit_psis_reports_pareto_k_and_round_trips(tmp_path: Path) -> None:
    runs = write_runs(tmp_path / "runs.csv")
    code, out, err = run(["fit", "chinchilla", runs, "-o", tmp_path / "p.nc", "--method", "psis", "--draws", "100"])
    assert code == 0, err
    m = re.search(
        r"^psis: 4 chains x 100 draws, [\d.]+ s \(Laplace \+ importance sampling: Pareto k (-?[\d.]+), reliable at 0.7 or below\)",
        out,
        re.M,
    )
    assert m, out
    back = Fit.load(tmp_path / "p.nc")
    assert back.method == "psis" and back.diagnostics()["pareto_k"] == pytest.approx(float(m.group(1)), abs=0.005)


# ------------------------------------------------------------- summary


def test_summary_table(nuts_fit: dict, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["summary", str(nuts_fit["path"])]) == 0
    captured = capsys.readouterr()
    table = Fit.load(nuts_fit["path"]).summary()
    for var in VARS:
        row = next(line for line in captured.out.splitlines() if line.split()[:1] == [var])
        assert row.split()[1] == f"{table.loc[var, 'mean']:.4g}"
        assert row.split()[-1] == f"{table.loc[var, 'r_hat']:.3f}"
    assert re.search(r"^nuts: 2 chains x 200 draws, .* divergences(; .*re-stepped.*)?$", captured.out, re.M)
    for line in captured.err.splitlines():
        assert line.startswith("warning: ")


def test_summary_json(nuts_fit: dict, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["summary", str(nuts_fit["path"]), "--format", "json", "--ci-prob", "0.8"]) == 0
    doc = json.loads(capsys.readouterr().out)
    fit = Fit.load(nuts_fit["path"])
    assert doc["spec"] == "chinchilla" and doc["spec_id"] == fit.spec.id and doc["method"] == "nuts"
    # Law parameters and sigma, then any extras the spec adds (e.g. the extrapolation drift).
    assert list(doc["summary"]) == fit.var_names + fit.identified_names
    assert list(doc["summary"])[: len(VARS)] == VARS
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


def test_summary_json_of_an_average_leaves_every_members_table_out(
    nuts_fit: dict, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A law average sampled by NUTS gives each member's diagnostics their own per-parameter table; the
    JSON once kept those and crashed on them (``Object of type DataFrame is not JSON serializable``)."""
    fit = Fit.load(nuts_fit["path"])
    own = fit.diagnostics()
    members = {"members": {"chinchilla": own, "kaplan": {**own, "members": {"inner": own}}}}
    monkeypatch.setattr(Fit, "diagnostics", lambda self: {**own, **members})
    monkeypatch.setattr("bayescale.cli.fitting.load_fit", lambda path: fit)
    assert cli.main(["summary", str(nuts_fit["path"]), "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)["diagnostics"]
    assert "table" not in d and "table" not in d["members"]["kaplan"]["members"]["inner"]
    assert d["members"]["chinchilla"]["max_r_hat"] == pytest.approx(own["max_r_hat"])


def test_summary_bad_ci_prob(nuts_fit: dict, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["summary", str(nuts_fit["path"]), "--ci-prob", "1.5"])
    assert_one_error_line(code, capsys.readouterr().err, "--ci-prob", "1.5")


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


def test_a_fit_that_cannot_be_trusted_says_so_wherever_it_is_used(fixed_fit: dict, tmp_path: Path) -> None:
    """Three runs for a five-parameter law: predict, optimal and suggest warn (and say so in JSON), decide's verdict says
    it, and the runs table's own fit is quiet about it."""
    runs = pd.read_csv(fixed_fit["runs"]).iloc[:3]
    path = tmp_path / "few.nc"
    fit_from_draws("chinchilla", runs, fixed_draws()).save(path)
    said = "3 runs for 5 law parameters (E, A, B, alpha, beta)"
    code, out, err = run(["predict", path, "--at", "N=7e9,D=1.4e12", "--format", "json"])
    assert code == 0 and f"warning: the fit: {said}" in err and any(said in p for p in json.loads(out)["problems"])
    code, out, err = run(["optimal", path, "--budget", "1e22"])
    assert code == 0 and f"warning: the fit: {said}" in err
    code, out, err = run(["decide", path, "--option", "a:N=1e9,D=2e10", "--option", "b:N=2e9,D=1e10"])
    assert code == 0 and f"Caution, the fit has a problem: {said}" in out
    code, out, err = run(["suggest", path, "--target", "C=1e23", "--budget-flops", "1e21", "--tolerance", "-1"])
    assert_one_error_line(code, err, "--tolerance must be a finite number >= 0, got -1.0")
    code, out, err = run(["predict", fixed_fit["path"], "--at", "N=1e9,D=2e10", "--format", "json"])
    assert code == 0 and "warning: the fit" not in err and json.loads(out)["problems"] == []


def test_runs_at_one_size_or_one_point_are_said_wherever_the_fit_is_used(fixed_fit: dict, tmp_path: Path) -> None:
    """Six runs at one (N, D), or at one N: the law's dependence on what the runs do not vary is the priors'.
    predict says so, and loo no longer calls the estimate reliable."""
    runs = pd.read_csv(fixed_fit["runs"])
    at_one_point = runs.iloc[:6].assign(N=1e8, D=2e9, C=np.nan, run_id=[f"r{i}" for i in range(6)])
    at_one_size = runs.iloc[:6].assign(N=1e8, C=np.nan, run_id=[f"r{i}" for i in range(6)])
    for name, table, said in (
        ("point", at_one_point, "every run sits at one point (N=1e+08, D=2e+09): how the loss changes with N and D"),
        ("size", at_one_size, "every run sits at one N=1e+08: how the loss changes with N comes from the priors"),
    ):
        path = tmp_path / f"{name}.nc"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_from_draws("chinchilla", table, fixed_draws()).save(path)
        code, out, err = run(["predict", path, "--at", "N=7e9,D=1.4e12", "--format", "json"])
        assert code == 0 and f"warning: the fit: {said}" in err and any(said in p for p in json.loads(out)["problems"])
        code, out, err = run(["loo", path])
        assert code == 0 and said in err and "the LOO estimate is reliable" not in out
    code, out, err = run(["loo", fixed_fit["path"], "--format", "json"])
    assert code == 0 and json.loads(out)["problems"] == []


def test_predict_and_optimal_say_how_far_beyond_the_runs_they_go(fixed_fit: dict) -> None:
    """As decide's verdict does: a point over 1000x beyond the largest run's compute, or below the smallest's."""
    cmax = float(pd.read_csv(fixed_fit["runs"]).eval("6 * N * D").max())
    far = f"N={1e4 * cmax / 6 / 1e12:.3g},D=1e12"
    code, out, err = run(["predict", fixed_fit["path"], "--at", far, "--format", "json"])
    said = f"{far} extrapolates up to 1e+04x the compute of the largest run"
    doc = json.loads(out)  # a caution about the points, not a problem of the fit
    assert code == 0 and f"warning: {said}" in err and doc["problems"] == [] and said in doc["cautions"][0]
    code, out, err = run(["optimal", fixed_fit["path"], "--budget", "1e5", "--budget", "1e22"])
    assert code == 0 and "warning: C=1e+05 extrapolates down to 1/" in err and "C=1e+22" not in err
    assert "only a run there can confirm" in err
    # With no N within the tolerance, the line says the least excess and what to do (the library's warning).
    code, out, err = run(["optimal", fixed_fit["path"], "--budget", "1e5", "--tolerance", "1e-6"])
    assert "the least expected excess is" in out and "add runs that pin the law's exponents" in out


def test_predict_without_unique_tokens_reads_one_epoch(tmp_path: Path) -> None:
    """The data-constrained law reads U; a point without it is one epoch (U = D), as a runs table's blank U is."""
    runs = synthetic_runs("chinchilla", TRUTH, seed=0).assign(U=lambda t: t["D"] / 4)
    draws = {k: np.full((2, 50), v) for k, v in TRUTH.items()} | {"R_D": np.full((2, 50), 15.0)}
    fit_from_draws("data_constrained", runs, draws | {"sigma": np.full((2, 50), 0.01)}).save(tmp_path / "dc.nc")
    one_epoch = [
        run(["predict", tmp_path / "dc.nc", "--at", at, "--format", "json"])
        for at in ("N=1e9,D=2e10", "N=1e9,D=2e10,U=2e10")
    ]
    assert [code for code, _, _ in one_epoch] == [0, 0], one_epoch
    assert json.loads(one_epoch[0][1])["points"][0]["median"] == json.loads(one_epoch[1][1])["points"][0]["median"]
    code, _, err = run(["predict", tmp_path / "dc.nc", "--at", "N=1e9,D=2e10,U=4e10"])
    assert_one_error_line(code, err, "'U' (unique tokens) must be > 0 and <= D")


def test_optimal_with_unique_tokens_repeats_them_and_says_when_the_runs_repeat_data(tmp_path: Path) -> None:
    """On runs that repeat data, ``optimal`` said nothing of it and trained every budget on fresh tokens: a
    user with fewer unique tokens got an allocation and a loss band their data cannot reach."""
    runs = synthetic_runs("chinchilla", TRUTH, seed=0).assign(U=lambda t: t["D"] / 4)
    draws = {k: np.full((2, 50), v) for k, v in TRUTH.items()} | {"R_D": np.full((2, 50), 15.0)}
    fit_from_draws("data_constrained", runs, draws | {"sigma": np.full((2, 50), 0.01)}).save(tmp_path / "dc.nc")
    budget = ["--budget", "1e23", "--format", "json"]
    code, out, err = run(["optimal", tmp_path / "dc.nc", *budget])
    assert code == 0 and f"{len(runs)} of your {len(runs)} runs repeat data" in err and "--unique-tokens" in err
    fresh = json.loads(out)["budgets"][0]
    code, out, err = run(["optimal", tmp_path / "dc.nc", *budget, "--unique-tokens", "1e10"])
    assert code == 0 and "repeat data" not in err
    scarce = json.loads(out)["budgets"][0]
    assert json.loads(out)["unique_tokens"] == 1e10
    # 1e10 unique tokens cannot feed the fresh optimum's D: the loss is higher, the model larger
    assert fresh["D_opt"]["median"] > 1e11 and scarce["loss_opt"]["median"] > fresh["loss_opt"]["median"] + 0.01
    assert scarce["N_opt"]["median"] > fresh["N_opt"]["median"]
    chinchilla = fit_from_draws(
        "chinchilla", runs, {k: np.full((2, 50), v) for k, v in TRUTH.items()} | {"sigma": np.full((2, 50), 0.01)}
    )
    chinchilla.save(tmp_path / "ch.nc")
    code, _, err = run(["optimal", tmp_path / "ch.nc", *budget, "--unique-tokens", "1e10"])
    assert code == 0 and "changes nothing here: the law (chinchilla) does not read U" in err
    code, _, err = run(["optimal", tmp_path / "ch.nc", *budget, "--unique-tokens", "0"])
    assert_one_error_line(code, err, "--unique-tokens")


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
        ("N=7e9", ["'N=7e9'", "; D missing"]),
        ("N=7e9,D=1e12,X=3", ["'N=7e9,D=1e12,X=3'", ": X is not an input"]),
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


def test_an_output_that_would_replace_an_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = write_runs(tmp_path / "runs.csv")
    before = runs.read_bytes()
    code = cli.main(["fit", "chinchilla", str(runs), "-o", str(runs), "--method", "laplace"])
    assert_one_error_line(code, capsys.readouterr().err, "cannot write the fit", "it is the runs table", "fit.nc")
    assert runs.read_bytes() == before  # nothing the user wrote is lost
    code = cli.main(["compare", str(runs), "--at", "C=1e23", "--report", str(tmp_path / "runs.csv" / "c.html")])
    assert_one_error_line(code, capsys.readouterr().err, "cannot write the report", "is a file, not a folder")


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
    # The CLI's list of fit methods (kept apart so that --help imports no JAX) is the library's.
    from bayescale.cli._common import METHODS
    from bayescale.inference import METHODS as FIT_METHODS

    assert METHODS == FIT_METHODS
    # An unknown option is said with its command's usage; one before the command, with the top-level usage.
    assert cli.main(["fit", "chinchilla", "r.csv", "-o", "f.nc", "--methd", "laplace"]) == 2
    err = capsys.readouterr().err
    assert "usage: bayescale fit" in err and "bayescale fit: error: unrecognized arguments: --methd laplace" in err
    assert cli.main(["-q", "laws"]) == 2
    assert "unrecognized arguments: -q (a command's options go after it" in capsys.readouterr().err


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["--help"]) == 0
    assert cli.main(["--version"]) == 0
    out = capsys.readouterr().out
    assert "fit" in out and "predict" in out and f"bayescale {bayescale.__version__}" in out


def test_python_m_bayescale_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "bayescale", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: bayescale")
    for command in (
        "fit",
        "summary",
        "predict",
        "decide",
        "optimal",
        "check",
        "validate",
        "loo",
        "demo",
        "laws",
        "specs",
        "check-spec",
    ):
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
        if hasattr(spec, "members"):  # a law average lists its laws
            laws = ", ".join(m.law.name for m in spec.members)
            assert re.search(rf"^{name}\s+average of {laws}\s+{spec.family}\s+{spec.id}", out, re.M), name
            continue
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
    bad.write_text(
        (REPO / "models" / "chinchilla.toml")
        .read_text()
        .replace('law]\nname = "chinchilla"', 'law]\nname = "chinchila"')
    )
    code = cli.main(["check-spec", str(bad)])
    assert_one_error_line(code, capsys.readouterr().err, "'chinchila'", "registered laws")
    (tmp_path / "broken.toml").write_text("name = \n")
    code = cli.main(["check-spec", str(tmp_path / "broken.toml")])
    assert_one_error_line(code, capsys.readouterr().err, "broken.toml", "not valid TOML")


# ------------------------------------------------------------------ demo


def test_demo_without_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(cli, "_data_dir", lambda: tmp_path)
    code = cli.main(["demo", "--out", str(tmp_path / "out")])
    assert_one_error_line(code, capsys.readouterr().err, str(tmp_path / cli.DEMO_RUNS), "missing")


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
    write_runs(data / cli.DEMO_RUNS)
    monkeypatch.setattr(cli, "_data_dir", lambda: data)
    code, out, err = run(["demo", "--out", tmp_path / "out", "--method", "laplace", "--draws", "200"], stages=True)
    assert code == 0, err
    assert out.startswith(f"demo: fitting bundled spec 'chinchilla' to 12 runs from {cli.DEMO_RUNS}")
    assert "synthetic placeholder" in out  # the synthetic source column is announced
    _check_demo_output(out, pd.read_csv(data / cli.DEMO_RUNS), tmp_path / "out" / "demo_fit.nc")
    # The demo's D = 20 N is reconciled with the fit's own compute-optimal split.
    assert "Chinchilla's rule of thumb" in out and "tokens per parameter (posterior medians" in out
    # Progress: one line per stage on stderr, with the seconds since the start; none on stdout.
    stages = [line for line in err.splitlines() if re.match(STAGE_PREFIX, line)]
    assert [s.split("] ", 1)[1].split(" ")[0] for s in stages] == ["loading", "fitting:", "writing", "extrapolating"]
    assert "MAP and Laplace approximation, 4 x 200 draws on 12 runs" in stages[1]
    seconds = [float(s[1:].split("s]")[0]) for s in stages]
    assert seconds == sorted(seconds) and seconds[0] < 1.0
    assert not re.search(STAGE_PREFIX, out, re.M)


def test_progress_goes_to_stderr_and_quiet_silences_it(fixed_fit: dict) -> None:
    argv = ["predict", fixed_fit["path"], "--at", "N=1e9,D=2e10", "--at", "N=1e10,D=2e11", "--format", "json"]
    code, out, err = run(argv, stages=True)
    assert code == 0 and err.splitlines()[0].endswith(f"] loading the fit {fixed_fit['path']}"), err
    assert re.match(STAGE_PREFIX + "predicting the loss at 2 points$", err.splitlines()[1]), err
    code_q, out_q, err_q = run([*argv, "-q"], stages=True)
    assert code_q == 0 and err_q == ""
    assert out_q == out and len(json.loads(out)["points"]) == 2  # the answer is the same, and still JSON


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


# ---------------------------------------------------- fits from fixed draws

# decide, optimal, check and loo read a saved fit; a fit made from fixed draws
# (no sampling) makes their answers computable by hand.

OPTIONS = ["--option", "7B:N=7e9,D=1.4e12", "--option", "13B:N=13e9,D=7e11"]


def fixed_draws(
    *, spread: float = 0.02, sigma: float = 0.01, seed: int = 0, shape: tuple[int, int] = (2, 300)
) -> dict[str, np.ndarray]:
    """Chinchilla parameters scattered around TRUTH, and sigma, shaped (chain, draw)."""
    rng = np.random.default_rng(seed)
    draws = {k: v * np.exp(spread * rng.standard_normal(shape)) for k, v in TRUTH.items()}
    draws["sigma"] = sigma * np.exp(0.1 * rng.standard_normal(shape))
    return draws


def law_loss(d: dict[str, np.ndarray], N: float, D: float) -> np.ndarray:
    """The Chinchilla law per draw, by hand (flattened chain-major, as the CLI's draws are)."""
    return d["E"] + d["A"] / N ** d["alpha"] + d["B"] / D ** d["beta"]


def cvar(x: np.ndarray, q: float) -> float:
    x = np.sort(x)
    return float(np.mean(x[math.floor(q * x.size) :]))


@pytest.fixture(scope="module")
def fixed_fit(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("cli_fixed")
    runs = write_runs(d / "runs.csv")
    draws = fixed_draws()
    path = d / "fixed.nc"
    fit_from_draws("chinchilla", runs, draws).save(path)
    new = synthetic_runs("chinchilla", TRUTH, N=(1e9,), seed=5)
    new["run_id"] = ["new0", "new1", "new2"]
    new.loc[2, "loss"] *= 1.3  # a planted surprise
    new.to_csv(d / "new.csv", index=False)
    new.iloc[:2].to_csv(d / "new_ok.csv", index=False)
    return {
        "dir": d,
        "runs": runs,
        "path": path,
        "new": d / "new.csv",
        "new_ok": d / "new_ok.csv",
        "draws": {k: v.reshape(-1) for k, v in draws.items()},
    }


def test_summary_of_a_fit_without_sampler_statistics(fixed_fit: dict) -> None:
    code, out, err = run(["summary", fixed_fit["path"]])
    assert code == 0, err
    assert re.search(
        r"^fixed: 2 chains x 300 draws \(no MCMC diagnostics: no sampler statistics in this result\)$", out, re.M
    ), out


# --------------------------------------------------------------- decide


def test_parse_option() -> None:
    assert cli.parse_option("7B:N=7e9,D=1.4e12") == ("7B", {"N": 7e9, "D": 1.4e12})
    assert cli.parse_option(" big run : C=1e22") == ("big run", {"C": 1e22})
    for bad, needle in (
        ("N=7e9", "no option name"),
        (":N=7e9", "no option name"),
        ("a=b:N=1", "may not contain"),
        ("a:", "empty"),
        ("a:N", "NAME=VALUE"),
    ):
        with pytest.raises(BayescaleError, match=re.escape(f"--option {bad!r}")) as info:
            cli.parse_option(bad)
        assert needle in str(info.value)


def test_decide_json_computed_by_hand(fixed_fit: dict) -> None:
    code, out, err = run(
        ["decide", fixed_fit["path"], *OPTIONS, "--threshold", "2.1", "--no-noise", "--format", "json"]
    )
    assert code == 0, err
    doc = json.loads(out)
    d = fixed_fit["draws"]
    L = {"7B": law_loss(d, 7e9, 1.4e12), "13B": law_loss(d, 13e9, 7e11)}
    assert doc["risk"] == "cvar90" and doc["ci_prob"] == 0.9 and doc["threshold"] == 2.1
    assert doc["evpi"] is None and doc["expected_utility"] is None
    assert list(doc["options"]) == ["7B", "13B"]
    for name, x in L.items():
        o = doc["options"][name]
        assert o["median"] == pytest.approx(np.median(x), rel=1e-9)
        assert o["lo"] == pytest.approx(np.quantile(x, 0.05), rel=1e-9)
        assert o["hi"] == pytest.approx(np.quantile(x, 0.95), rel=1e-9)
        assert o["p_below"] == pytest.approx(np.mean(x <= 2.1))
        assert o["var"] == pytest.approx(np.quantile(x, 0.9), rel=1e-9)
        assert o["cvar"] == pytest.approx(cvar(x, 0.9), rel=1e-9)
        assert o["risk"] == o["cvar"]
    assert doc["options"]["7B"]["p_best"] == pytest.approx(np.mean(L["7B"] < L["13B"]))
    assert doc["options"]["13B"]["p_best"] == pytest.approx(np.mean(L["13B"] < L["7B"]))
    assert doc["options"]["13B"]["N"] == 13e9 and doc["options"]["13B"]["C"] == pytest.approx(6 * 13e9 * 7e11)
    assert doc["best"] == min(L, key=lambda n: cvar(L[n], 0.9))
    assert doc["verdict"].startswith(f"Best by cvar90 of loss: {doc['best']} ")


def test_decide_with_noise_is_the_api_decision(fixed_fit: dict) -> None:
    from bayescale.decisions import decide

    argv = [
        "decide",
        fixed_fit["path"],
        *OPTIONS,
        "--threshold",
        "2.1",
        "--risk",
        "quantile:0.8",
        "--ci-prob",
        "0.8",
        "--seed",
        "3",
        "--format",
        "json",
    ]
    code, out, err = run(argv)
    assert code == 0, err
    doc = json.loads(out)
    options = {"7B": {"N": 7e9, "D": 1.4e12}, "13B": {"N": 13e9, "D": 7e11}}
    expected = decide(options, fit=Fit.load(fixed_fit["path"]), threshold=2.1, risk="quantile:0.8", ci_prob=0.8, seed=3)
    assert doc == json.loads(json.dumps(cli._jsonable(expected.to_dict())))
    assert doc["risk"] == "q80"
    # Seed-to-seed noise widens the band over the law's own.
    code, out, _ = run([*argv, "--no-noise"])
    law_only = json.loads(out)["options"]["7B"]
    assert doc["options"]["7B"]["hi"] - doc["options"]["7B"]["lo"] > law_only["hi"] - law_only["lo"]


def test_decide_table(fixed_fit: dict) -> None:
    argv = [
        "decide",
        fixed_fit["path"],
        "--option",
        "7B:N=7e9,D=1.4e12",
        "--option",
        "13B:N=13e9,C=5e22",
        "--risk",
        "mean",
        "--no-noise",
    ]
    code, out, err = run(argv)
    assert code == 0, err
    code, js, _ = run([*argv, "--format", "json"])
    doc = json.loads(js)
    lines = out.splitlines()
    assert lines[0].startswith("spec 'chinchilla' (id ")
    assert lines[1] == "comparing the law's loss (no observation noise); risk measure mean"
    header = next(line for line in lines if line.startswith("option"))
    for col in ("N", "D", "C", "median", "90% interval", "VaR 90%", "CVaR 90%", "mean", "P(best)"):
        assert f" {col} " in f"{header} ", col
    assert "P(loss<=" not in header  # no --threshold
    for name, o in doc["options"].items():
        row = next(line for line in lines if line.split()[:1] == [name])
        assert f"{o['median']:.4f}  [{o['lo']:.4f}, {o['hi']:.4f}]" in row
        cells = row.removesuffix("<- best").split()
        assert cells[-4:] == [f"{o['var']:.4f}", f"{o['cvar']:.4f}", f"{o['mean']:.4f}", f"{o['p_best']:.2f}"]
        assert row.endswith("<- best") == (name == doc["best"])
    row13 = next(line for line in lines if line.startswith("13B"))
    assert row13.split()[1:4] == ["1.3e+10", "6.41e+11", "5e+22"]  # D = C / (6N) filled in
    assert lines[-1] == doc["verdict"]
    assert "Best by mean of loss" in lines[-1]


def test_decide_utility_and_evpi(fixed_fit: dict) -> None:
    V, P, thr = 1e6, 1e-17, 2.1
    argv = [
        "decide",
        fixed_fit["path"],
        *OPTIONS,
        "--threshold",
        str(thr),
        "--value",
        str(V),
        "--price-per-flop",
        str(P),
        "--no-noise",
    ]
    code, out, err = run([*argv, "--format", "json"])
    assert code == 0, err
    doc = json.loads(out)
    d = fixed_fit["draws"]
    C = {"7B": 6 * 7e9 * 1.4e12, "13B": 6 * 13e9 * 7e11}
    U = {
        "7B": V * (law_loss(d, 7e9, 1.4e12) <= thr) - P * C["7B"],
        "13B": V * (law_loss(d, 13e9, 7e11) <= thr) - P * C["13B"],
    }
    for name, u in U.items():
        assert doc["expected_utility"][name] == pytest.approx(u.mean())
    assert doc["evpi"] == pytest.approx(np.maximum(U["7B"], U["13B"]).mean() - max(u.mean() for u in U.values()))
    assert doc["evpi"] >= 0
    code, out, err = run(argv)
    assert code == 0, err
    assert "E[utility]" in out and f"P(loss<={thr:g})" in out
    assert f"Expected value of perfect information: {doc['evpi']:.4g}." in out


def test_decide_options_without_N_and_D_show_dashes(tmp_path: Path) -> None:
    runs = write_runs(tmp_path / "runs.csv")
    rng = np.random.default_rng(1)
    draws = {
        "E": 1.8 * np.exp(0.02 * rng.standard_normal(200)),
        "a": np.full(200, 30.0),
        "b": np.full(200, -0.05),
        "sigma": np.full(200, 0.01),
    }
    fit_from_draws("power", runs, draws).save(tmp_path / "power.nc")
    code, out, err = run(
        ["decide", tmp_path / "power.nc", "--option", "small:C=1e20", "--option", "big:C=1e21", "--no-noise"]
    )
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("big "))
    assert row.split()[1:4] == ["-", "-", "1e+21"]
    assert row.endswith("<- best")  # b < 0: more compute, lower loss in every draw


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--option", "N=7e9,D=1e12"], ["--option 'N=7e9,D=1e12'", "no option name"]),
        (["--option", ":N=7e9,D=1e12"], ["no option name"]),
        (["--option", "a:N=7e9,D=1e12", "--option", "a:N=1e9,D=1e10"], ["'a:N=1e9,D=1e10'", "'a' is given twice"]),
        (["--option", "a:N=7e9,D=1e12", "--risk", "cvar:1.5"], ["'cvar:1.5'", "cvar:Q"]),
        (["--option", "a:N=7e9,D=1e12", "--risk", "worst"], ["'worst'", "'mean'"]),
        (["--option", "a:N=7e9"], ["--option 'a:N=7e9'", "; D missing"]),
        (["--option", "a:N=7e9,D=1e12,X=2"], [": X is not an input", "not an input of law 'chinchilla'"]),
        (["--option", "a:N=abc,D=1e12"], ["--option 'a:N=abc,D=1e12'", "'abc' is not a number"]),
        (["--option", "a:"], ["--option 'a:'", "empty"]),
        (["--option", "a:N=1e9,D=1e10", "--value", "5"], ["--value needs --threshold"]),
        (["--option", "a:N=1e9,D=1e10", "--price-per-flop", "1"], ["--price-per-flop needs --value"]),
        (["--option", "a:N=1e9,D=1e10", "--threshold", "-1"], ["--threshold", "> 0"]),
        (
            ["--option", "a:N=1e9,D=1e10", "--threshold", "2", "--value", "1", "--price-per-flop", "-1"],
            ["--price-per-flop", ">= 0"],
        ),
        (["--option", "a:N=1e9,D=1e10", "--ci-prob", "1"], ["--ci-prob", "(0, 1)"]),
    ],
)
def test_decide_bad_input(fixed_fit: dict, extra: list[str], needles: list[str]) -> None:
    code, out, err = run(["decide", fixed_fit["path"], *extra])
    assert_one_error_line(code, err, *needles)
    assert out == ""


def test_decide_missing_fit(tmp_path: Path) -> None:
    code, out, err = run(["decide", tmp_path / "nope.nc", *OPTIONS])
    assert_one_error_line(code, err, "nope.nc")
    assert out == ""


# -------------------------------------------------------------- optimal


def test_optimal_json_computed_by_hand(fixed_fit: dict) -> None:
    from bayescale.decisions import near_optimal_range

    budgets = [5.76e23, 1e25]
    code, out, err = run(
        [
            "optimal",
            fixed_fit["path"],
            *(a for c in budgets for a in ("--budget", str(c))),
            "--ci-prob",
            "0.8",
            "--format",
            "json",
        ]
    )
    assert code == 0, err
    doc = json.loads(out)
    d = fixed_fit["draws"]
    al, be, A, B = d["alpha"], d["beta"], d["A"], d["B"]
    assert doc["method"] == "closed form" and doc["ci_prob"] == 0.8 and doc["tolerance"] == 0.005
    assert [e["C"] for e in doc["budgets"]] == budgets
    fit = Fit.load(fixed_fit["path"])
    for e in doc["budgets"]:
        C = e["C"]
        N = (al * A / (be * B)) ** (1 / (al + be)) * (C / 6) ** (be / (al + be))
        D = C / (6 * N)
        hand = {"N_opt": N, "D_opt": D, "tokens_per_param": D / N, "loss_opt": law_loss(d, N, D)}
        for var, x in hand.items():
            assert e[var]["median"] == pytest.approx(np.median(x), rel=1e-6), var
            assert e[var]["lower"] == pytest.approx(np.quantile(x, 0.1), rel=1e-6), var
            assert e[var]["upper"] == pytest.approx(np.quantile(x, 0.9), rel=1e-6), var
        assert e["at_bound"] == 0
        lo, hi = e["near_optimal_N"]
        assert (lo, hi) == pytest.approx(near_optimal_range(fit, C))
        assert lo < e["N_opt"]["median"] < hi
    (ex,) = doc["exponents"]  # closed form: one answer for every budget
    assert ex["method"] == "closed form"
    assert ex["a"]["median"] == pytest.approx(np.median(be / (al + be)))
    assert ex["b"]["lower"] == pytest.approx(np.quantile(al / (al + be), 0.1))


def test_optimal_table(fixed_fit: dict) -> None:
    argv = ["optimal", fixed_fit["path"], "--budget", "5.76e23", "--tolerance", "0.01"]
    code, out, err = run(argv)
    assert code == 0, err
    assert (
        err == "warning: C=5.76e+23 extrapolates up to 1.33e+04x the compute of the largest run; the bands assume the "
        "law holds that far, which no pilot can confirm.\n"
    )
    doc = json.loads(run([*argv, "--format", "json"])[1])
    e, ex = doc["budgets"][0], doc["exponents"][0]
    assert "compute-optimal allocation (closed form); median [90% interval] over the posterior" in out
    row = next(line for line in out.splitlines() if line.startswith("5.76e+23 "))
    n = e["N_opt"]
    assert f"{n['median']:.3g} [{n['lower']:.3g}, {n['upper']:.3g}]" in row
    lo = e["loss_opt"]
    assert row.endswith(f"{lo['median']:.4f} [{lo['lower']:.4f}, {lo['upper']:.4f}]")
    a = ex["a"]
    assert f"N_opt ~ C^a, a = {a['median']:.4f} [{a['lower']:.4f}, {a['upper']:.4f}]" in out
    lo_n, hi_n = e["near_optimal_N"]
    assert f"at C = 5.76e+23: any N in [{lo_n:.3g}, {hi_n:.3g}] is within 1% of optimal" in out


def test_optimal_warns_when_the_optimum_is_on_the_search_edge(tmp_path: Path) -> None:
    runs = write_runs(tmp_path / "runs.csv")
    k = 200
    draws = {
        "E": np.full(k, 1.8),
        "a": np.full(k, 50.0),
        "b": np.full(k, -0.3),
        "c": np.full(k, -0.2),
        "d": np.zeros(k),
        "sigma": np.full(k, 0.01),
    }
    fit_from_draws("multiplicative", runs, draws).save(tmp_path / "m.nc")
    code, out, err = run(["optimal", tmp_path / "m.nc", "--budget", "1e22"])
    assert code == 0, err
    assert "compute-optimal allocation (numerical)" in out
    lines = err.splitlines()
    # (draws fixed by hand, not fitted: the misfit check rightly says they do not follow the runs)
    edge = [line for line in lines if "the optimum of 100% of posterior draws lies on the edge" in line]
    assert len(edge) == 1 and edge[0].startswith("warning: at C = 1e+22"), err
    assert all(line.startswith("warning: ") for line in lines), err


def test_optimal_bad_input(fixed_fit: dict, tmp_path: Path) -> None:
    path = str(fixed_fit["path"])
    for extra, needles in (
        (["--budget", "-1"], ["--budget", "> 0"]),
        (["--budget", "1e22", "--budget", "inf"], ["--budget", "inf"]),
        (["--budget", "1e22", "--tolerance", "0"], ["--tolerance", "(0, 1)"]),
        (["--budget", "1e22", "--ci-prob", "1.5"], ["--ci-prob", "1.5"]),
    ):
        code, out, err = run(["optimal", path, *extra])
        assert_one_error_line(code, err, *needles)
        assert out == ""
    runs = write_runs(tmp_path / "runs.csv")
    draws = {"E": np.full(50, 1.8), "a": np.full(50, 30.0), "b": np.full(50, -0.05), "sigma": np.full(50, 0.01)}
    fit_from_draws("power", runs, draws).save(tmp_path / "power.nc")
    code, out, err = run(["optimal", tmp_path / "power.nc", "--budget", "1e22"])
    assert_one_error_line(code, err, "law 'power'", "reads C, so")
    # suggest refuses a compute-optimal target the same way (it planned at a "target's tokens/param")
    for target in ("C=1e22", "nopt:C=1e22"):
        code, out, err = run(["suggest", tmp_path / "power.nc", "--target", target, "--budget-flops", "1e20"])
        last = err.strip().splitlines()[-1]  # after the warning about these fixed draws' misfit
        assert code == 2 and last.startswith("bayescale: error: target") and "law 'power' reads C, so" in last
    spread = {k: v * np.exp(0.01 * np.random.default_rng(0).standard_normal(50)) for k, v in draws.items()}
    fit_from_draws("power", runs, spread).save(tmp_path / "power.nc")  # a point target is planned
    code, out, err = run(["suggest", tmp_path / "power.nc", "--target", "N=1e9,D=2e10", "--budget-flops", "1e20"])
    assert code == 0, err
    assert cli.main(["optimal", path]) == 2  # --budget is required (a usage error)


# ---------------------------------------------------------------- check


def test_check_flags_the_planted_surprise(fixed_fit: dict) -> None:
    from scipy import stats

    from bayescale.checks import predictive_table

    code, out, err = run(["check", fixed_fit["path"], fixed_fit["new"], "--format", "json"])
    assert code == 0, err
    doc = json.loads(out)
    assert doc["n_new"] == 3 and doc["surprises"] == 1 and doc["shifts"] is None and doc["updated_fit"] is None
    assert isinstance(doc["problems"], list) and isinstance(doc["cautions"], list)
    assert [r["run_id"] for r in doc["runs"]] == ["new0", "new1", "new2"]
    assert [r["surprise"] for r in doc["runs"]] == [False, False, True]
    d = fixed_fit["draws"]
    new = pd.read_csv(fixed_fit["new"])
    api = predictive_table(Fit.load(fixed_fit["path"]), new, seed=0)
    for r, (_, row), (_, ref) in zip(doc["runs"], new.iterrows(), api.iterrows()):
        # PIT by hand: the Student-t (df 4) CDF of the observed log loss, averaged over draws.
        mu = np.log(law_loss(d, row["N"], row["D"]))
        pit = float(np.mean(stats.t.cdf((np.log(row["loss"]) - mu) / d["sigma"], df=4)))
        assert r["pit"] == pytest.approx(pit, rel=1e-6, abs=1e-12)
        assert r["p_value"] == pytest.approx(min(1.0, 2 * min(pit, 1 - pit)), rel=1e-6, abs=1e-12)
        assert r["observed"] == pytest.approx(row["loss"])
        for col in ("median", "lo90", "hi90", "z"):
            assert r[col] == pytest.approx(ref[col]), col
        assert r["band"] == ref["band"]

    code, out, err = run(["check", fixed_fit["path"], fixed_fit["new"]])
    assert code == 0, err  # surprises are information, not an error
    lines = out.splitlines()
    assert lines[1] == "3 new runs against the predictive distribution of a new run's measured loss"
    header = next(line for line in lines if line.startswith("run_id"))
    for col in ("observed", "median", "90% interval", "z", "p-value", "band"):
        assert col in header
    for r in doc["runs"]:
        row = next(line for line in lines if line.startswith(r["run_id"] + " "))
        assert (
            " ".join(row.split()[4:10])
            == f"{r['observed']:.4f} {r['median']:.4f} [{r['lo90']:.4f}, {r['hi90']:.4f}] {r['z']:+.2f} {r['p_value']:.3f}"
        )
        assert row.endswith("SURPRISE") == r["surprise"]
        assert r["band"] in row
    width = np.median([(r["hi90"] - r["lo90"]) / r["median"] for r in doc["runs"]])
    assert (
        lines[-1]
        == f"1 surprise among 3 new runs (outside the 90% predictive band; the bands' median width {100 * width:.2g}% of the prediction)"
    )


def test_check_without_surprises(fixed_fit: dict) -> None:
    code, out, err = run(["check", fixed_fit["path"], fixed_fit["new_ok"]])
    assert code == 0, err
    assert "SURPRISE" not in out
    assert out.splitlines()[-1].startswith(
        "no surprises: all 2 new runs inside the 90% predictive band; the bands' median"
    )


def test_check_bad_input(fixed_fit: dict, tmp_path: Path) -> None:
    path = str(fixed_fit["path"])
    cases = (
        ([fixed_fit["runs"]], ["repeat runs of the fit", "syn000"]),
        ([fixed_fit["new"], "-o", tmp_path / "u.nc"], ["--output", "needs --update"]),
        ([fixed_fit["new"], "--budget", "0"], ["--budget", "> 0"]),
        ([tmp_path / "nope.csv"], ["nope.csv", "not found"]),
    )
    for extra, needles in cases:
        code, out, err = run(["check", path, *extra])
        assert_one_error_line(code, err, *needles)
        assert out == ""
    assert not (tmp_path / "u.nc").exists()


@pytest.mark.slow  # a refit (12 s on 2 cores) for one sentence: the CI budget is tight
def test_check_update_without_output_says_the_refit_is_not_kept(fixed_fit: dict) -> None:
    code, out, err = run(["check", fixed_fit["path"], fixed_fit["new_ok"], "--update", "--method", "laplace", "-q"])
    assert code == 0, err
    assert "the refit is not saved: give -o FIT.nc with --update to keep it" in out


@pytest.mark.slow
def test_check_update_refits_and_shows_shifts(fixed_fit: dict, tmp_path: Path) -> None:
    out_path = tmp_path / "updated.nc"
    code, out, err = run(["check", fixed_fit["path"], fixed_fit["new"], "--update", "--budget", "1e22", "-o", out_path])
    assert code == 0, err
    for line in err.splitlines():
        assert line.startswith("warning: "), err
    assert "refit with the new runs (15 runs): how the posterior moved" in out
    header = next(line for line in out.splitlines() if line.startswith("quantity"))
    assert header.split() == [
        "quantity",
        "median",
        "before",
        "median",
        "after",
        "sd",
        "before",
        "sd",
        "after",
        "sd",
        "after/before",
    ]
    for q in ("E", "A", "B", "alpha", "beta", "N_opt@C=1e+22", "law_loss_opt@C=1e+22"):
        assert re.search(rf"^{re.escape(q)}\s+\S+", out, re.M), q
    assert re.search(r"^nuts: 4 chains x 1000 draws, ", out, re.M), out
    assert f"wrote {out_path}" in out
    assert out.splitlines()[-2].startswith("1 surprise among 3 new runs (outside the 90% predictive band; the bands'")
    assert out.splitlines()[-1].startswith("- the refit takes in the runs flagged as surprises ('new2')")
    updated = Fit.load(out_path)
    assert len(updated.runs) == 15 and {"new0", "new1", "new2"} <= set(updated.runs["run_id"])


# ------------------------------------------------------------- validate


@pytest.mark.slow  # two Laplace fits: ~10 s each on 2 cores, mostly JAX compilation
def test_validate_laplace(tmp_path: Path) -> None:
    runs = write_runs(tmp_path / "runs.csv")
    argv = [
        "validate",
        "chinchilla",
        runs,
        "--holdout-top",
        "0.25",
        "--method",
        "laplace",
        "--draws",
        "200",
        "--seed",
        "1",
    ]
    code, out, err = run([*argv, "--format", "json"])
    assert code == 0, err
    doc = json.loads(out)
    table = pd.read_csv(runs).sort_values("C", kind="stable")
    held = table["run_id"].iloc[-3:].tolist()  # round(0.25 * 12) runs with the most compute
    assert doc["n_train"] == 9 and doc["n_test"] == 3
    assert doc["cut"] == pytest.approx(table["C"].iloc[-4])
    assert sorted(r["run_id"] for r in doc["runs"]) == sorted(held)
    assert doc["method"] == "laplace" and doc["holdout_top"] == 0.25 and doc["seed"] == 1
    pit = np.array([r["pit"] for r in doc["runs"]])
    for p, v in doc["coverage"].items():
        assert v == pytest.approx(np.mean(np.abs(2 * pit - 1) <= float(p)))
    assert doc["surprises"] == sum(r["surprise"] for r in doc["runs"])
    assert doc["diagnostics"]["method"] == "laplace"
    # what the fit warned on stderr is in the JSON too
    assert doc["warnings"] == [
        line.removeprefix("warning: ") for line in err.splitlines() if line.startswith("warning: ")
    ]
    assert doc["mean_log_pred_density"] == pytest.approx(np.mean([r["log_pred_density"] for r in doc["runs"]]))
    assert doc["median_abs_rel_error"] == pytest.approx(np.median([abs(r["rel_error"]) for r in doc["runs"]]))

    code, out, err = run(argv)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("leave-largest-out: spec 'chinchilla' (id ")
    assert lines[0].endswith("12 runs, the top 25% by compute held out")
    # Validation.summary(), from the same seeded fit as the JSON.
    cov = ", ".join(f"{100 * float(k):g}%: {v:.2f}" for k, v in doc["coverage"].items())
    summary = next(line for line in lines if line.startswith("fit on "))
    assert summary.startswith(f"fit on 9 runs with C <= {doc['cut']:.3g}, held out 3: coverage {cov}; ")
    assert summary.endswith(
        f"surprises {doc['surprises']} (only 3 held-out runs: the coverages say little; hold out more, or add runs)"
    )
    assert re.search(r"^90%\s+\d\.\d\d$", out, re.M)
    for run_id in held:
        assert any(line.startswith(run_id + " ") for line in lines), run_id
    assert lines[-1].startswith("laplace: 4 chains x 200 draws")


@pytest.mark.slow
def test_validate_nuts(tmp_path: Path) -> None:
    runs = write_runs(tmp_path / "runs.csv")
    code, out, err = run(["validate", "chinchilla", runs, *SMALL])
    assert code == 0, err
    for line in err.splitlines():
        assert line.startswith("warning: "), err
    assert re.search(r"^fit on 10 runs with C <= \S+, held out 2: coverage 50%: ", out, re.M), out
    assert re.search(r"^nuts: 2 chains x 200 draws, .* divergences(; .*re-stepped.*)?$", out, re.M), out


def test_validate_bad_input(tmp_path: Path) -> None:
    runs = write_runs(tmp_path / "runs.csv", N=(1e7, 3e7))  # 6 runs
    for extra, needles in (
        (["chinchilla", runs, "--holdout-top", "1"], ["--holdout-top", "(0, 1)"]),
        (["chinchilla", runs, "--holdout-top", "0.6"], ["at least 3 training runs"]),
        (["no_such_spec", runs], ["'no_such_spec'"]),
        (["chinchilla", tmp_path / "nope.csv"], ["nope.csv"]),
    ):
        code, out, err = run(["validate", *extra, "--method", "laplace"])
        assert_one_error_line(code, err, *needles)
        assert out == ""


# ------------------------------------------------------------------ loo


def test_loo(fixed_fit: dict) -> None:
    from bayescale.checks import loo, loo_pit

    code, out, err = run(["loo", fixed_fit["path"], "--format", "json"])
    assert code == 0, err
    doc = json.loads(out)
    fit = Fit.load(fixed_fit["path"])
    res, pit = loo(fit), loo_pit(fit)
    assert (
        doc["elpd_loo"] == pytest.approx(res.elpd)
        and doc["se"] == pytest.approx(res.se)
        and doc["p_loo"] == pytest.approx(res.p_loo)
    )
    assert doc["flagged"] == [] and doc["pareto_k_bad"] == 0.7
    assert [r["run_id"] for r in doc["runs"]] == fit.runs["run_id"].tolist()
    assert [r["loo_pit"] for r in doc["runs"]] == pytest.approx(pit.tolist())
    p = pit.to_numpy()
    assert doc["loo_pit_coverage"] == pytest.approx(
        {str(q): float(np.mean(np.abs(2 * p - 1) <= q)) for q in (0.5, 0.8, 0.9, 0.95)}
    )

    code, out, err = run(["loo", fixed_fit["path"]])
    assert code == 0, err
    assert f"PSIS-LOO: elpd_loo {res.elpd:.2f} (SE {res.se:.2f}), p_loo {res.p_loo:.2f}" in out
    assert "all Pareto k <= 0.7: the LOO estimate is reliable" in out
    assert not any(line.startswith("syn0") for line in out.splitlines())
    code, out, err = run(["loo", fixed_fit["path"], "--all-runs"])
    rows = [line for line in out.splitlines() if line.startswith("syn0")]
    assert len(rows) == 12
    assert rows[0].split()[1:3] == [f"{res.pareto_k.iloc[0]:.2f}", f"{pit.iloc[0]:.3f}"]


def test_loo_names_influential_runs(tmp_path: Path) -> None:
    # A Normal likelihood with draws far wider than the data allow: every run's
    # importance ratios are heavy-tailed, so PSIS flags them.
    runs = write_runs(tmp_path / "runs.csv")
    fit_from_draws("chinchilla_normal", runs, fixed_draws(sigma=0.005)).save(tmp_path / "wide.nc")
    code, out, err = run(["loo", tmp_path / "wide.nc", "--format", "json"])
    assert code == 0, err
    flagged = json.loads(out)["flagged"]
    assert flagged
    code, out, err = run(["loo", tmp_path / "wide.nc"])
    assert code == 0, err
    named = ", ".join(flagged[:-1]) + " and " + flagged[-1] if len(flagged) > 1 else flagged[0]
    if len(flagged) > 8:  # join_names counts the rest
        named = f"{', '.join(flagged[:8])} and {len(flagged) - 8} more"
    assert f"with Pareto k > 0.7 (influential; LOO is unreliable for them): {named}" in out
    rows = [line for line in out.splitlines() if line.endswith("k > 0.7")]
    assert [r.split()[0] for r in rows] == flagged


def test_loo_of_a_file_that_is_not_a_fit(fixed_fit: dict) -> None:
    code, out, err = run(["loo", fixed_fit["runs"]])
    assert_one_error_line(code, err, "runs.csv", "not a bayescale fit")
    assert out == ""


# ------------------------------------------------------ implausible input (issue 19)


def test_decide_option_with_c_far_from_6nd_is_refused(fixed_fit: dict) -> None:
    code, out, err = run(
        ["decide", fixed_fit["path"], "--option", "honest:N=5e6,D=1e8", "--option", "fakeC:N=5e6,D=1e8,C=1"]
    )
    assert_one_error_line(code, err, "--option 'fakeC:N=5e6,D=1e8,C=1'", "not consistent with C = 6 N D", "two of")
    assert out == ""


def test_predict_at_c_far_from_6nd_is_refused(fixed_fit: dict) -> None:
    code, out, err = run(["predict", fixed_fit["path"], "--at", "N=5e6,D=1e8,C=1"])
    assert_one_error_line(code, err, "--at 'N=5e6,D=1e8,C=1'", "not consistent with C = 6 N D")


def test_predict_at_implausible_size_is_refused(fixed_fit: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        code, out, err = run(["predict", fixed_fit["path"], "--at", "N=1e300,D=1e300"])
    assert_one_error_line(code, err, "--at 'N=1e300,D=1e300'", "'N' must be in [1, 1e+15]")
    assert out == ""


def test_check_with_implausible_new_run_is_refused(fixed_fit: dict, tmp_path: Path) -> None:
    new = pd.read_csv(fixed_fit["new_ok"])
    new.loc[1, "loss"] = 1e300
    new.to_csv(tmp_path / "bad.csv", index=False)
    code, out, err = run(["check", fixed_fit["path"], tmp_path / "bad.csv"])
    assert_one_error_line(code, err, "'loss' must be <= 20", "new1")
    assert out == ""


def test_fit_with_implausible_run_is_refused_before_fitting(tmp_path: Path) -> None:
    runs = pd.read_csv(write_runs(tmp_path / "runs.csv"))
    runs.loc[3, "N"] = 1e300
    runs.drop(columns="C").to_csv(tmp_path / "bad.csv", index=False)
    code, out, err = run(["fit", "chinchilla", tmp_path / "bad.csv", "-o", tmp_path / "f.nc", "--method", "laplace"])
    assert_one_error_line(code, err, "'N' must be in [1, 1e+15]", runs.loc[3, "run_id"])
    assert not (tmp_path / "f.nc").exists()


def test_report_to_a_pdf_is_refused_before_reading_the_fit(fixed_fit: dict, tmp_path: Path) -> None:
    code, out, err = run(["report", fixed_fit["path"], "-o", tmp_path / "r.pdf"])
    assert_one_error_line(code, err, "r.pdf", "HTML (.html) or Markdown (.md), not '.pdf'")
    code, out, err = run(["report", fixed_fit["path"], "-o", tmp_path / "r.html", "--format", "md"])
    assert_one_error_line(code, err, "names a html file but --format is md")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["fit", "report", "check"])
def test_unwritable_output_is_refused_before_the_work(fixed_fit: dict, tmp_path: Path, command: str) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    target = blocker / ("out.html" if command == "report" else "out.nc")
    argv = {
        "fit": ["fit", "chinchilla", fixed_fit["runs"], "-o", target],
        "report": ["report", fixed_fit["path"], "-o", target],
        "check": ["check", fixed_fit["path"], fixed_fit["new_ok"], "--update", "-o", target],
    }[command]
    code, out, err = run(argv)
    assert_one_error_line(
        code, err, f"cannot write the {'report' if command == 'report' else 'fit'} to {str(target)!r}"
    )
    assert out == "" and ".tmp" not in err


def test_a_fit_to_a_csv_or_over_a_read_only_file_is_refused_before_the_work(fixed_fit: dict, tmp_path: Path) -> None:
    code, out, err = run(["fit", "chinchilla", fixed_fit["runs"], "-o", tmp_path / "x.csv", "--method", "laplace"])
    assert_one_error_line(code, err, "fits are written as netCDF, not .csv")
    locked = tmp_path / "locked.nc"
    locked.write_bytes(b"the user's")
    locked.chmod(0o444)
    code, out, err = run(["fit", "chinchilla", fixed_fit["runs"], "-o", locked, "--method", "laplace"])
    assert_one_error_line(code, err, "the file is read-only")
    assert out == "" and locked.read_bytes() == b"the user's"
    pipe = tmp_path / "pipe.nc"  # renamed over, a pipe (or /dev/null) became a plain file
    os.mkfifo(pipe)
    code, out, err = run(["fit", "chinchilla", fixed_fit["runs"], "-o", pipe, "--method", "laplace"])
    assert_one_error_line(code, err, "is not a regular file (a folder, device or pipe)")
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)


def test_report_decision_with_c_far_from_6nd_is_refused(fixed_fit: dict, tmp_path: Path) -> None:
    code, out, err = run(
        ["report", fixed_fit["path"], "-o", tmp_path / "r.html", "--decision", "fakeC:N=5e6,D=1e8,C=1"]
    )
    assert_one_error_line(code, err, "--decision 'fakeC:N=5e6,D=1e8,C=1'", "not consistent with C = 6 N D")
    assert not (tmp_path / "r.html").exists()
    # The same check as decide's --option: a law input missing, named with the flag and the text given.
    code, out, err = run(["report", fixed_fit["path"], "-o", tmp_path / "r.html", "--decision", "7B:N=7e9"])
    assert_one_error_line(code, err, "--decision '7B:N=7e9'", "law 'chinchilla' needs N and D; D missing")
    assert "optimal" not in err  # the hint below is for a budget alone
    # A budget alone: how to split it is what `optimal` answers, so the error points there.
    code, out, err = run(["predict", fixed_fit["path"], "--at", "C=1e20"])
    assert_one_error_line(code, err, "N and D missing", "bayescale optimal FIT --budget 1e+20")


def test_loo_on_a_laplace_fit_blames_the_approximation(tmp_path: Path) -> None:
    runs = write_runs(tmp_path / "runs.csv")
    code, out, err = run(["fit", "chinchilla", runs, "-o", tmp_path / "lap.nc", "--method", "laplace"])
    assert code == 0, err
    code, out, err = run(["loo", tmp_path / "lap.nc", "--format", "json"])
    assert code == 0, err
    doc = json.loads(out)
    assert doc["method"] == "laplace" and doc["flagged"]  # the Gaussian's tails: every run flagged
    assert "reflect the approximation" in doc["note"]
    code, out, err = run(["loo", tmp_path / "lap.nc"])
    assert code == 0, err
    assert "from a Laplace approximation" in out and "reflect the approximation" in out and "--method nuts" in out


def test_loo_method_note() -> None:
    from bayescale.checks import approximation_note

    assert "Laplace approximation" in approximation_note("laplace", 3) and "0.7" in approximation_note("psis", 1)
    assert "--method nuts" in approximation_note("psis", 1, refit="--method nuts")
    assert approximation_note("nuts", 3) is None and approximation_note("laplace", 0) is None


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["optimal", "{fit}", "--budget", "1e300"], "--budget"),
        (["optimal", "{fit}", "--budget", "1"], "--budget"),
        (["check", "{fit}", "{new}", "--budget", "1e300"], "--budget"),
        (["suggest", "{fit}", "--target", "N=1e9,D=1e10", "--budget-flops", "1e300"], "--budget-flops"),
    ],
)
def test_implausible_flop_budgets_are_refused(fixed_fit: dict, argv: list[str], flag: str) -> None:
    argv = [a.format(fit=fixed_fit["path"], new=fixed_fit["new_ok"]) for a in argv]
    code, out, err = run(argv)
    assert_one_error_line(code, err, f"{flag} must be in [6, 6e+32] FLOPs")
    assert out == ""


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("N,D\n1e6,abc\n2e6,4e7\n", "D must be a finite number > 0; rows 0 (0-based) are not"),
        ("N,D\n1e20,1e21\n", "'N' must be in [1, 1e+15]"),
        ("N,D,C\n1e6,2e7,1\n", "not consistent with C = 6 N D"),
    ],
)
@pytest.mark.parametrize("flag", ["--candidates", "--pending"])
def test_suggest_checks_candidate_and_pending_files(fixed_fit: dict, tmp_path: Path, content, said, flag) -> None:
    path = tmp_path / "points.csv"
    path.write_text(content)
    code, out, err = run(
        ["suggest", fixed_fit["path"], "--target", "N=5e6,D=1e8", "--budget-flops", "1e15", flag, path, "-q"]
    )
    assert_one_error_line(code, err, said)
    assert "Traceback" not in err and out == ""


def test_suggest_empty_files_and_blank_flops(fixed_fit: dict, tmp_path: Path) -> None:
    empty, blank = tmp_path / "empty.csv", tmp_path / "blank.csv"
    empty.write_text("N,D\n")
    blank.write_text("N,D,C\n1e6,2e7,\n2e6,4e7,4.8e14\n")  # a blank C is derived, as in a runs table
    argv = ["suggest", fixed_fit["path"], "--target", "N=5e6,D=1e8", "--budget-flops", "1e15", "-q"]
    code, out, err = run(argv + ["--candidates", empty])
    assert_one_error_line(code, err, "--candidates", "has no rows")  # planning over nothing is not planning
    code, out, err = run(argv + ["--candidates", blank, "--pending", empty])  # no runs pending: fine
    assert code == 0, err


def test_predict_where_the_law_overflows_says_so_without_numpy_warnings(fixed_fit: dict, tmp_path: Path) -> None:
    draws = fixed_draws(shape=(1, 50))
    draws["alpha"][0, :10] = -25.0  # draws whose size term explodes at large N
    fit_from_draws("chinchilla", fixed_fit["runs"], draws).save(tmp_path / "wild.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        code, out, err = run(["predict", tmp_path / "wild.nc", "--at", "N=1e15,D=1e17"])
    assert_one_error_line(code, err, "the loss at N=1e+15, D=1e+17 is not a finite number > 0 for 20%")
    assert "nan" not in out


# ------------------------------------------------------------- prose, not Python


REPR_TELLS = ("['", '["', "\\u", "\\x")


def test_a_typical_session_prints_words_not_python_reprs(fixed_fit: dict, tmp_path: Path) -> None:
    """Lists of names read as words (``7B and 13B``, ``'p03'``), and an invisible character in a
    run id is shown as ``<U+202E>``, not as a Python escape: in answers, warnings and errors alike."""
    fit = fixed_fit["path"]
    far = ["--option", "7B:N=7e12,D=1.4e15", "--option", "13B:N=1.3e13,D=7e14"]  # > 1000x: a caution
    sessions = [
        ["summary", fit],
        ["predict", fit, "--at", "N=7e9,D=1.4e12"],
        ["decide", fit, *far, "--threshold", "2.1"],
        ["optimal", fit, "--budget", "5.76e23"],
        ["check", fit, fixed_fit["new"]],
        ["loo", fit],
        ["predict", fit, "--at", "N=7e9,D=1e12,X=3"],  # errors name the user's items
        ["predict", fit, "--at", "N=7e9"],
        ["check", fit, fixed_fit["runs"]],
    ]
    bad = pd.read_csv(fixed_fit["runs"])
    bad.loc[2, "run_id"] = "p\u202e03"
    bad.loc[2, "loss"] = -1.0
    bad.to_csv(tmp_path / "bad.csv", index=False)
    sessions.append(["fit", "chinchilla", tmp_path / "bad.csv", "-o", tmp_path / "x.nc"])
    texts = {}
    for argv in sessions:
        code, out, err = run(argv, stages=True)
        texts[" ".join(map(str, argv[:1] + argv[2:]))] = (code, out + err)
    assert "7B and 13B extrapolate" in texts[f"decide {' '.join(far)} --threshold 2.1"][1]
    assert "'p<U+202E>03'" in texts[f"fit {tmp_path / 'bad.csv'} -o {tmp_path / 'x.nc'}"][1]
    assert "\u202e" not in "".join(t for _, t in texts.values())  # never printed raw: it would reverse the line
    for what, (_, text) in texts.items():
        assert not [t for t in REPR_TELLS if t in text], (what, text[-1500:])


def test_summary_says_each_finding_once_where_stdout_and_stderr_are_one_stream(tmp_path: Path, capsys) -> None:
    """`summary` prints its findings on stdout (kept by `summary > file`) and warns of them on stderr;
    where both streams are one (a terminal, `2>&1`) the warning repeated every line: now said once."""
    runs = synthetic_runs("chinchilla", TRUTH, N=(1e8, 1e9), tokens_per_param=(10, 40), sigma=0.01, seed=3)
    draws = {k: np.full(40, v) for k, v in TRUTH.items()} | {"sigma": np.full(40, 0.01)}
    path = fit_from_draws("chinchilla", runs, draws).save(tmp_path / "four.nc")
    problem = "4 runs for 5 law parameters"
    with warnings.catch_warnings():  # numpy's, on these constant draws' sensitivity: not an error here
        warnings.simplefilter("ignore", RuntimeWarning)
        # One file behind both streams, as `summary > log 2>&1` gives the command.
        # Two descriptors on one file, as `2>&1` gives.
        with open(tmp_path / "both.txt", "w", encoding="utf-8") as out, open(os.dup(out.fileno()), "w") as err:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                assert cli.main(["summary", str(path)]) == 0
        both = (tmp_path / "both.txt").read_text(encoding="utf-8")
        assert both.count(problem) == 1, both
        assert cli.main(["summary", str(path)]) == 0  # apart: capsys keeps the streams apart
    apart = capsys.readouterr()
    assert apart.out.count(problem) == 1 and f"warning: {problem}" in apart.err


def test_ctrl_c_is_one_line_and_replaces_no_file(tmp_path: Path, monkeypatch, capsys) -> None:
    """Ctrl-C exits 130 with one line; and once it was pressed, no file is replaced, even where a library
    swallowed the exception (XLA's garbage-collection hook did, and the fit went on to overwrite its output)."""
    import argparse

    from bayescale import _io

    def interrupted(args):
        raise KeyboardInterrupt

    assert cli._run(argparse.Namespace(func=interrupted)) == 130
    assert capsys.readouterr().err.strip() == cli.INTERRUPTED
    kept = tmp_path / "fit.nc"
    kept.write_text("the user's file")
    monkeypatch.setattr(_io, "_interrupted", True)
    assert cli._run(argparse.Namespace(func=lambda args: 0)) == 130  # swallowed, the command ran on: still 130
    assert capsys.readouterr().err.strip() == cli.INTERRUPTED
    with pytest.raises(KeyboardInterrupt):
        _io.atomic_write(kept, lambda tmp: Path(tmp).write_text("a fit finished after the interrupt"))
    assert kept.read_text() == "the user's file" and [p.name for p in tmp_path.iterdir()] == ["fit.nc"]


def test_summary_and_decide_name_their_options_in_errors(fixed_fit: dict, capsys) -> None:
    path = str(fixed_fit["path"])
    assert cli.main(["summary", path, "--ci-prob", "0"]) == 2
    assert "--ci-prob must be in (0, 1)" in capsys.readouterr().err
    assert cli.main(["decide", path, "--option", "a:N=1e9,D=2e10", "--threshold", "2.5", "--value", "-5"]) == 2
    assert "--value must be a finite number >= 0" in capsys.readouterr().err
