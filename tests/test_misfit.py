"""Misfit diagnostics: seeded false-alarm and detection rates, words, bad input."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale._neighbours import neighbour_graph, neighbour_test
from bayescale.cli import main
from bayescale.misfit import Misfit, misfit, warn_if_misfit
from bayescale.report import render_markdown
from bayescale.report._content import _misfit_blocks
from bayescale.testing import fit_from_draws, synthetic_runs

ROOT = Path(__file__).resolve().parents[1]
TRUTH = {"E": 1.8, "A": 480, "B": 2000, "alpha": 0.35, "beta": 0.36}
GRID15 = dict(N=(1e7, 3e7, 1e8, 3e8, 1e9), tokens_per_param=(5, 20, 80))
GRID40 = dict(N=tuple(np.geomspace(1e7, 3e9, 8)), tokens_per_param=(5, 10, 20, 40, 80))


def _hinge(v: np.ndarray) -> np.ndarray:
    mid = 0.5 * (v.min() + v.max())
    return np.clip((v - mid) / (v.max() - mid), 0, 1) ** 1.5


def runs(seed: int, *, grid=GRID15, sigma=0.01, df=None, bend=None, b=0.02):
    """Chinchilla-law runs; ``bend`` lowers the loss by up to ``b`` (relative) at the high end of
    tokens per parameter ("D/N", smoothly from the middle of the range), or in the top fifth of the
    runs by compute ("C": a new regime at scale)."""
    r = synthetic_runs("chinchilla", TRUTH, seed=seed, sigma=sigma, df=df, **grid).drop(columns=["loss_true"])
    if bend is not None:
        if bend == "D/N":
            r["loss"] = r["loss"] * np.exp(-b * _hinge(np.log((r.D / r.N).to_numpy())))
        else:  # the top fifth by compute
            r["loss"] = r["loss"] * np.exp(-b * (r.C.rank(method="first") > 0.8 * len(r)).to_numpy())
    return r


def laplace(r, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bs.fit("chinchilla", r, seed=seed, method="laplace")


@pytest.fixture(scope="module")
def bent():
    """The 8 largest of 40 runs 2% below the law, fitted once for the tests that read that fit, with
    every warning bs.fit gave (recorded as pytest.warns records them) for the test that asserts it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = bs.fit("chinchilla", runs(3, grid=GRID40, sigma=0.003, bend="C", b=0.02), seed=0, method="laplace")
    return fit, caught


@pytest.mark.slow  # a statistical study: 24 fits of runs the law made: `make test-all`
def test_false_alarm_rate_on_data_from_the_law():
    # Normal and Student-t (df 4) noise, 15 runs; measured 1/40 (Normal) and 2/40 (t) with laplace fits.
    fired = [misfit(laplace(runs(s, df=None if s % 2 else 4.0), s)).misfits for s in range(24)]
    assert sum(fired) <= 3, f"false alarms in {sum(fired)}/24 well-specified fits"


@pytest.mark.slow  # a statistical study: 10 fits of 40 bent runs: `make test-all`
def test_detects_a_bend_at_high_tokens_per_parameter():
    # 40 runs, 0.5% noise, loss 2% lower at the highest D/N: measured 36/40 with laplace fits.
    results = [misfit(laplace(runs(s, grid=GRID40, sigma=0.005, bend="D/N"), s)) for s in range(100, 110)]
    assert sum(m.misfits for m in results) >= 6
    for m in results:
        for f in m.findings:
            if f.fires:
                assert f.input in ("D/N", "D", "N", "N, D"), f.message  # D and N groups see the same grid pattern


def test_words_name_the_largest_runs_and_the_direction(bent):
    m = misfit(bent[0])
    assert m.misfits and m.severity == "severe"
    largest = next(f for f in m.findings if f.kind == "largest")
    assert largest.fires and largest.effect < 0 and largest.upper < 0
    assert "over-predicts" in largest.message and "below" in largest.message and "unreliable" in largest.message
    assert m.messages[0] == largest.message
    up = misfit(laplace(runs(3, grid=GRID40, sigma=0.003, bend="C", b=-0.02)))
    f = next(f for f in up.findings if f.kind == "largest")
    assert f.fires and f.effect > 0 and "under-predicts" in f.message and "above" in f.message


def test_words_name_tokens_per_parameter():
    m = misfit(laplace(runs(1, grid=GRID40, sigma=0.003, bend="D/N", b=0.04)))
    fired = [f for f in m.findings if f.fires]
    assert any(f.input == "D/N" for f in fired)
    curv = next(f for f in m.findings if f.kind == "curvature" and f.input == "D/N")
    assert curv.fires and curv.effect < 0 and "tokens per parameter" in curv.message and "below" in curv.message


def test_result_is_fast_deterministic_and_json_ready():
    fit = laplace(runs(0))
    a, b = misfit(fit), misfit(fit)
    assert isinstance(a, Misfit) and a.to_dict() == b.to_dict()
    d = json.loads(json.dumps(a.to_dict()))
    assert d["misfits"] is False and d["severity"] == "none" and d["messages"] == []
    assert {f["kind"] for f in d["findings"]} >= {"largest", "trend", "curvature", "groups"}
    assert list(a.residuals.columns) == [
        "run_id",
        "N",
        "D",
        "C",
        "loss",
        "resid",
        "resid_lower",
        "resid_upper",
        "rel",
        "z",
    ]
    assert len(a.residuals) == 15 and (a.residuals.resid_lower <= a.residuals.resid_upper).all()
    assert "no misfit found in 15 runs" in str(a)
    assert all(f.fires <= f.significant for f in a.findings)


def test_one_tokens_per_parameter_value_is_not_tested_rather_than_fired():
    r = runs(0, grid=dict(N=tuple(np.geomspace(1e7, 3e9, 12)), tokens_per_param=(20,)))
    m = misfit(laplace(r))
    assert not any(f.input in ("D/N", "D") for f in m.findings)
    assert any("D/N: 1 distinct value (need 3)" in u for u in m.untested)
    assert any("trend in D: the same test as trend in N" in u for u in m.untested)


def _fixed_fit(n_runs: int):
    r = runs(0, grid=dict(N=tuple(np.geomspace(1e7, 1e9, n_runs)), tokens_per_param=(20,)))
    draws = {k: np.full(50, v, float) for k, v in TRUTH.items()} | {"sigma": np.full(50, 0.01)}
    return fit_from_draws("chinchilla", r, draws)


def test_too_few_runs_say_so():
    with pytest.raises(bs.BayescaleError, match="too few runs"):
        misfit(_fixed_fit(6))


@pytest.mark.parametrize(
    "kw", [dict(level=1.5), dict(level=0), dict(alpha=1.0), dict(alpha=True), dict(min_effect=-0.1)]
)
def test_bad_arguments(kw):
    with pytest.raises(bs.BayescaleError, match="must be in"):
        misfit(_fixed_fit(12), **kw)


def test_not_a_fit():
    with pytest.raises(bs.BayescaleError, match="needs a Fit"):
        misfit(runs(0))


def test_warn_if_misfit_warns_in_words_and_is_silent_when_untestable(bent):
    with pytest.warns(UserWarning, match="over-predicts the loss of your 8 largest runs"):
        assert warn_if_misfit(bent[0]).misfits
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_misfit(_fixed_fit(6)) is None
        assert not warn_if_misfit(laplace(runs(0))).misfits


def test_a_fits_warnings_name_the_callers_line():
    """A warning from deep inside bs.fit (the misfit check, the runs table's copy note) is put on the
    line that called it, whichever path it took (one law or an average), not on a line of bayescale."""
    table = runs(3, grid=GRID40, sigma=0.003, bend="C", b=0.02)
    table = pd.concat([table, table.iloc[:1].assign(run_id="a-copy")], ignore_index=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bs.fit("chinchilla", table, seed=0, method="laplace")
    kinds = {w.category.__name__: (w.filename, w.lineno) for w in caught}
    assert {"MisfitWarning", "RunsTableWarning"} <= set(kinds), kinds
    one_ratio = synthetic_runs("chinchilla", TRUTH, seed=0, N=(1e7, 3e7, 1e8, 3e8), tokens_per_param=(20,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bs.fit("chinchilla", one_ratio.drop(columns=["loss_true"]), seed=0, method="laplace")
    kinds |= {w.category.__name__: (w.filename, w.lineno) for w in caught}
    assert "IdentifiabilityWarning" in kinds, kinds
    assert all(filename == __file__ for filename, _ in kinds.values()), kinds


def test_fit_warns_when_the_law_misfits_and_not_when_it_fits(bent):
    # bs.fit itself says so: a confident band from a visibly wrong law must never come silently.
    fit, caught = bent
    said = [str(w.message) for w in caught if issubclass(w.category, bs.MisfitWarning)]
    assert any(re.search(r"misfits the runs.*over-predicts the loss of your \d+ largest runs", s) for s in said), said
    assert fit.misfit().severity == "severe"
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.MisfitWarning)
        good = bs.fit("chinchilla", runs(5, grid=GRID40, sigma=0.003), seed=0, method="laplace")
    assert not good.misfit().misfits


def test_cli_summary_and_report_say_the_law_misfits(bent, tmp_path, capsys):
    fit = bent[0]
    path = tmp_path / "bent.nc"
    fit.save(path)
    assert main(["summary", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "warning: the law misfits its runs: the law over-predicts the loss of your" in err
    # The finding is part of the summary itself, so `summary > file` keeps it as it keeps the all-clear line.
    assert "law fit: the law misfits its runs: the law over-predicts the loss of your" in out
    assert main(["summary", str(path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["misfit"]["misfits"] is True and out["misfit"]["severity"] == "severe"
    # The report's section in words (that every report has the section: tests/test_report.py; the whole
    # report's figures took 21 of this test's 26 s).
    md, _ = render_markdown("bent", _misfit_blocks(fit), "figures")
    assert "Does the law fit the runs?" in md and "over-predicts the loss of your" in md


# ------------------------------------------------- neighbouring runs off the law together


def _bump(r, b):
    """Loss ``b`` (relative) higher around the middle of the (log N, log D) grid: a local shape no law follows."""
    ln, ld = np.log(r.N.to_numpy()), np.log(r.D.to_numpy())
    z = ((ln - ln.mean()) / ln.std()) ** 2 + ((ld - ld.mean()) / ld.std()) ** 2
    return r.assign(loss=r.loss * np.exp(b * np.exp(-z / 0.5)))


def test_neighbour_test_is_calibrated_on_independent_noise():
    # Projected independent Gaussian noise on a 40-run grid: p-values uniform, so p < 0.05 in about 5%.
    rng = np.random.default_rng(0)
    g = runs(0, grid=GRID40)
    ln, ld = np.log(g.N.to_numpy()), np.log(g.D.to_numpy())
    basis = np.linalg.qr(np.column_stack([np.ones(ln.size), ln, ld, np.exp(-0.3 * ln)]))[0]
    adj = neighbour_graph(ln, ld)
    ps = []
    for _ in range(300):
        e = rng.standard_normal(ln.size)
        ps.append(neighbour_test(e, e[None, :], basis, adj, rng).p_value)
    assert 0.02 <= np.mean(np.array(ps) < 0.05) <= 0.09
    assert 0.4 <= np.mean(ps) <= 0.6


def test_neighbour_test_finds_a_local_shape_and_sizes_it():
    g = runs(0, grid=GRID40)
    ln, ld = np.log(g.N.to_numpy()), np.log(g.D.to_numpy())
    basis = np.linalg.qr(np.column_stack([np.ones(ln.size), ln, ld]))[0]
    z = ((ln - ln.mean()) / ln.std()) ** 2 + ((ld - ld.mean()) / ld.std()) ** 2
    bump = 0.02 * np.exp(-z / 0.5)  # shared by neighbours in the grid's middle, not a trend
    e = bump + 0.002 * np.random.default_rng(1).standard_normal(ln.size)
    t = neighbour_test(e, e[None, :], basis, neighbour_graph(ln, ld), np.random.default_rng(0))
    assert t.p_value < 0.005 and t.moran > 0
    assert 0.003 < float(t.shared[0]) < 0.02  # about the bump's size, not the noise's


def test_replicates_do_not_count_as_a_shape():
    # Two seeds at every point: replicates are each other's neighbours, and share no noise.
    one = runs(0, grid=GRID15)
    ln = np.log(np.concatenate([one.N, one.N]))
    ld = np.log(np.concatenate([one.D, one.D]))
    basis = np.linalg.qr(np.column_stack([np.ones(ln.size), ln, ld]))[0]
    rng = np.random.default_rng(2)
    adj = neighbour_graph(ln, ld)
    ps = [neighbour_test(e, e[None, :], basis, adj, rng).p_value for e in rng.standard_normal((200, ln.size))]
    assert np.mean(np.array(ps) < 0.05) <= 0.1


def test_misfit_names_runs_that_sit_off_the_law_together():
    m = misfit(laplace(_bump(runs(5, grid=GRID40, sigma=0.003), 0.03)))
    nb = next(f for f in m.findings if f.kind == "neighbours")
    assert nb.fires and m.misfits, m.summary()
    assert "neighbouring runs sit off the law together" in nb.message and "above" in nb.message
    assert nb.effect_low > 0.005  # the bump's runs sit above the law (the fit absorbs part of it)
    clean = misfit(laplace(runs(5, grid=GRID40, sigma=0.003)))
    assert not next(f for f in clean.findings if f.kind == "neighbours").fires


def test_losses_that_rise_with_size_are_a_misfit_the_law_cannot_follow():
    """A law whose loss can only fall with N, fitted to runs whose loss rises with N, sits at the edge of
    its parameters: the projected trend test cannot see that; the direction test must, in words."""
    r = runs(7, grid=GRID40, sigma=0.005)
    r["loss"] = np.sort(r["loss"].to_numpy())[np.argsort(np.argsort(r["N"].to_numpy(), kind="stable"))]
    with pytest.warns(bs.MisfitWarning, match=r"cannot follow the runs in this direction.*What to do: check the runs"):
        fit = bs.fit("chinchilla", r, seed=0, method="laplace")
    m = fit.misfit()
    fired = [f for f in m.findings if f.kind == "direction" and f.fires]
    assert m.severity == "severe" and fired and fired[0].effect > 0.01, m.summary()
    # on runs from the law the direction test is quiet (the false-alarm test above counts every test),
    # and a finding that does not fire claims nothing about the law
    quiet = [f for f in misfit(laplace(runs(5, grid=GRID40, sigma=0.003))).findings if f.kind == "direction"]
    assert len(quiet) == 1 and not quiet[0].fires and "cannot follow" not in quiet[0].message


def test_the_direction_slope_carries_the_noise_and_counts_one_trend_once():
    from bayescale._direction import direction_test, distinct_inputs

    rng = np.random.default_rng(0)
    logs = {"N": np.log(np.geomspace(1e7, 1e9, 20)), "D": np.log(np.geomspace(2e8, 2e10, 20))}
    logs["C"] = logs["N"] + logs["D"] + np.log(6)
    # every draw's residuals the same: the slope's spread is the noise's alone, sd / |x - mean x|
    resid = np.tile(0.01 * rng.standard_normal(20), (4000, 1))
    sd = np.full(4000, 0.02)
    d = direction_test(resid, sd, rng, logs)
    xc = logs[d.name] - logs[d.name].mean()
    assert np.std(d.slope) == pytest.approx(0.02 / np.linalg.norm(xc), rel=0.05)
    # N, D and C order these runs alike: one trend, tested (and corrected for) once
    assert distinct_inputs(logs, 20) == ["N"]


def test_one_run_far_off_is_named_and_its_check_comes_first():
    """One run 30% high among 40 (a failed or mislabelled run): the check names that run first and asks to
    check it, instead of reading it only as a trend of the runs around it; on the same runs without it,
    nothing is said of any run."""
    r = runs(3, grid=GRID40, sigma=0.005)
    clean = misfit(laplace(r))
    (single,) = [f for f in clean.findings if f.kind == "outlier"]
    assert not single.fires and "no run far off the law alone" in single.message
    odd = r["C"].idxmax()
    r.loc[odd, "loss"] *= 1.3
    m = misfit(laplace(r))
    first = [f for f in m.findings if f.fires][0] if m.misfits else None
    assert m.messages[0].startswith(f"run {r.loc[odd, 'run_id']!r} sits 2") and first is not None, m.summary()
    assert m.advice.startswith(f"check run {r.loc[odd, 'run_id']!r}") and m.severity == "severe"


def test_a_pattern_one_run_carries_alone_names_that_run():
    """A new user's table: the committed pilots with one of the 6 largest 50% high. "The 6 largest runs
    sit 3.7% above the law" was all they were told under NUTS (the single-run test missed it at p 0.013):
    the pattern now says the run carries it alone, and the advice is to check that run. A bend that many
    runs share is never put on one run."""
    r = bs.load_runs(ROOT / "data" / "pilot_runs.csv").sort_values("C").reset_index(drop=True)
    odd = len(r) - 6
    r.loc[odd, "loss"] *= 1.5
    m = misfit(laplace(r))
    name = f"run {r.loc[odd, 'run_id']!r}"
    (largest,) = [f for f in m.findings if f.kind == "largest"]
    assert largest.fires and largest.carried_by == name
    assert re.search(rf"one run carries this alone: {re.escape(name)}, 5\d% above the law", largest.message)
    assert m.advice.startswith(f"check {name}")
    bent = [misfit(laplace(runs(s, grid=GRID40, sigma=0.005, bend="C"), s)) for s in range(200, 204)]
    assert sum(f.fires for m in bent for f in m.findings) >= 2  # detected, and never put on one run
    assert not [f.carried_by for m in bent for f in m.findings if f.carried_by]


def test_one_design_ratio_with_rounding_scatter_is_one_group():
    """A sweep's ratio of 80 tokens per parameter comes out as 80.0-80.2 once N and D are real shapes and
    batches (the OLMo ladder: 10.01-10.03); it is one group, and the top fifth takes all of its runs."""
    from bayescale._misfit_finding import ends, value_groups

    x = np.log([10.01, 10.013, 10.018, 10.022, 10.028, 20.011, 20.029, 100.01, 100.03, 200.01, 200.029])
    assert value_groups(x).tolist() == [0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3]
    assert value_groups(np.log(np.linspace(10, 12, 60))).max() >= 20  # a dense range is not chained into one value
    top, _ = ends(x)  # k = 2: the fifth's edge is 200.01, and 200.029 beside it
    assert top.sum() == 2
    top, _ = ends(np.log([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.01, 100.02, 100.03, 200.01]))
    assert top.sum() == 4  # the edge, 100.03, carries its near-ties 100.01 and 100.02

    r = runs(3, sigma=0.002)
    jitter = 1 + 0.001 * (np.arange(len(r)) % 4)  # up to 0.3% in D, as rounding to whole batches gives
    r["D"] = r["D"] * jitter
    r["C"] = 6 * r["N"] * r["D"]
    at80 = np.isclose(r["D"] / r["N"], 80, rtol=0.01)
    r.loc[at80, "loss"] *= 1.02
    g = next(f for f in misfit(laplace(r)).findings if f.kind == "groups" and f.input == "D/N")
    # every group holds all 5 runs of its design ratio (rounded to 3 decimals of log, they split in two)
    assert g.fires and re.fullmatch(r"the 5 runs at D/N = (5|20|80)", g.where), g.message
