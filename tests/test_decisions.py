"""Decision quantities against hand-computed answers from fixed posterior draws."""

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import decisions as dc
from bayescale import frontier
from bayescale.model import distance_from_runs
from bayescale.testing import fit_from_draws, synthetic_runs

TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36}


# ------------------------------------------------------------------ risk measures


def test_risk_measures_on_known_draws():
    x = np.arange(1, 11, dtype=float)  # 1..10
    assert dc.Expectation()(x) == 5.5
    assert dc.Quantile(0.5)(x) == np.quantile(x, 0.5)
    # CVaR(0.8): mean of the worst 20% = mean(9, 10)
    assert dc.CVaR(0.8)(x) == 9.5
    assert dc.CVaR(0.9)(x) == 10.0
    assert dc.VaR is dc.Quantile


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mean", dc.Expectation()),
        ("cvar:0.9", dc.CVaR(0.9)),
        ("var:0.95", dc.Quantile(0.95)),
        ("quantile:0.5", dc.Quantile(0.5)),
        ("cvar", dc.CVaR(0.9)),  # a name alone takes Q = 0.9; "cvar:" without its Q is refused
    ],
)
def test_parse_risk(text, expected):
    assert dc.parse_risk(text) == expected


@pytest.mark.parametrize("bad", ["cvar:1.5", "median", "cvar:x", "var:0", "cvar:", "quantile:", "mean:"])
def test_parse_risk_errors(bad):
    with pytest.raises(bs.BayescaleError, match="risk|in \\(0, 1\\)"):
        dc.parse_risk(bad)


# ------------------------------------------------------------------ decide on raw draws


def test_decide_hand_computed():
    a = np.array([2.0, 2.2, 2.4, 2.6])
    b = np.array([2.1, 2.1, 2.5, 2.5])
    dec = dc.decide({"a": a, "b": b}, threshold=2.3, risk="mean", ci_prob=0.5)
    t = dec.table
    assert t.loc["a", "mean"] == pytest.approx(2.3)
    assert t.loc["b", "mean"] == pytest.approx(2.3)
    assert t.loc["a", "p_below"] == 0.5 and t.loc["b", "p_below"] == 0.5
    # Draw by draw: a wins draws 0 and 2 (2.0<2.1, 2.4<2.5), b wins 1 and 3.
    assert t.loc["a", "p_best"] == 0.5 and t.loc["b", "p_best"] == 0.5
    assert t.loc["a", "lo"] == pytest.approx(np.quantile(a, 0.25))
    assert t.loc["a", "hi"] == pytest.approx(np.quantile(a, 0.75))
    # CVaR(0.9) of 4 draws: the worst draw.
    assert t.loc["a", "cvar"] == 2.6 and t.loc["b", "cvar"] == 2.5


def test_decide_splits_ties_and_says_so():
    """Draws where options share the lowest loss count for each a share: two options at one point tie
    in every draw (0.5 each, and the words say they tie; it was 1.00 for the first listed, 0.00)."""
    x = np.array([2.0, 2.2, 2.4, 2.6])
    same = dc.decide({"A": x, "B": x.copy()}, risk="mean")
    assert same.table["p_best"].tolist() == [0.5, 0.5]
    assert "ties with it" in same.verdict() and "better with probability" not in same.verdict()
    # a tie in one draw of four: c wins two draws, shares one, loses one
    c, d = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 4.0, 3.0])
    t = dc.decide({"c": c, "d": d}, risk="mean").table
    assert t.loc["c", "p_best"] == 2.5 / 4 and t.loc["d", "p_best"] == 1.5 / 4


def test_decide_picks_lowest_risk_and_says_so():
    rng = np.random.default_rng(0)
    safe = 2.10 + 0.01 * rng.standard_normal(4000)
    risky = 2.08 + 0.08 * rng.standard_normal(4000)  # better mean, fat upside risk
    by_mean = dc.decide({"safe": safe, "risky": risky}, risk="mean", threshold=2.12)
    by_cvar = dc.decide({"safe": safe, "risky": risky}, risk=dc.CVaR(0.9), threshold=2.12)
    assert by_mean.best == "risky"
    assert by_cvar.best == "safe"
    text = by_cvar.verdict()
    assert "safe" in text and "P(loss <= 2.12)" in text and "better with probability" in text
    assert by_mean.tied_with is None and by_cvar.tied_with is None  # 0.02 apart, far beyond the draws' error


def test_decide_says_a_tie_within_the_draws_monte_carlo_error():
    """Two options 0.0005 apart in mean risk, where 4000 draws of sd 0.02 each only fix a mean to about
    0.0003 per option: no option is best, and the words say why; 0.005 apart, one is."""
    rng = np.random.default_rng(1)
    common = rng.standard_normal(4000)
    a = 2.1 + 0.02 * common
    near = 2.1005 + 0.02 * (0.6 * common + 0.8 * rng.standard_normal(4000))
    tie = dc.decide({"a": a, "b": near}, risk="mean")
    assert tie.tied_with == "b" and 0.0002 < tie.risk_error < 0.001
    assert tie.verdict().startswith("No option is best by mean of loss: a (2.") and "are tied" in tie.verdict()
    assert tie.to_dict()["tied_with"] == "b"
    apart = dc.decide({"a": a, "b": near + 0.005}, risk="mean")
    assert apart.tied_with is None and apart.verdict().startswith("Best by mean of loss: a")


def test_decide_errors():
    with pytest.raises(bs.BayescaleError, match="different numbers of draws"):
        dc.decide({"a": np.ones(3), "b": np.ones(4)})
    with pytest.raises(bs.BayescaleError, match="non-empty mapping"):
        dc.decide({})
    with pytest.raises(bs.BayescaleError, match="need fit"):
        dc.decide({"a": {"N": 1e9, "D": 2e10}})
    with pytest.raises(bs.BayescaleError, match="finite"):
        dc.decide({"a": np.array([1.0, np.nan])})


# ------------------------------------------------------------------ fits from fixed draws


@pytest.fixture(scope="module")
def point_fit():
    """A 'posterior' of 3 draws at known parameter values."""
    runs = synthetic_runs("chinchilla", TRUTH, seed=0)
    draws = {
        "E": [1.8, 1.7, 1.9],
        "A": [480.0, 400.0, 550.0],
        "B": [2000.0, 1500.0, 2500.0],
        "alpha": [0.35, 0.33, 0.37],
        "beta": [0.36, 0.34, 0.38],
        "sigma": [0.01, 0.01, 0.01],
    }
    return fit_from_draws("chinchilla", runs, draws), draws


def _law(p, N, D):
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def test_an_options_noisy_band_is_its_own_whatever_the_other_options(point_fit):
    """Each point's noise is seeded by the point, not its position: option b's draws are the same alone,
    after a, or before a, and the same as ``predict``'s at b (they moved in the third decimal)."""
    fit, _ = point_fit
    a, b = {"N": 1e9, "D": 2e10}, {"N": 2e9, "D": 1e10}
    alone = fit.predict([b], noise=True, seed=3).values[..., 0]
    after_a = fit.predict([a, b], noise=True, seed=3).values[..., 1]
    before_a = fit.predict([b, a], noise=True, seed=3).values[..., 0]
    np.testing.assert_array_equal(alone, after_a)
    np.testing.assert_array_equal(alone, before_a)
    assert not np.array_equal(alone, fit.predict([b], noise=True, seed=4).values[..., 0])  # the seed still counts
    assert not np.array_equal(alone, fit.predict([b], noise=False).values[..., 0])  # and there is noise
    ab = dc.decide({"a": a, "b": b}, fit=fit, seed=3).table
    ba = dc.decide({"b": b, "a": a}, fit=fit, seed=3).table
    pd.testing.assert_frame_equal(ab.loc[["a", "b"]], ba.loc[["a", "b"]])


def test_decide_on_points_matches_the_law(point_fit):
    fit, draws = point_fit
    dec = dc.decide(
        {"7B": {"N": 7e9, "D": 1.4e11}, "1B": {"N": 1e9, "D": 9.8e11}}, fit=fit, noise=False, risk="mean", threshold=2.1
    )
    per_draw = {
        name: np.array([_law({k: v[i] for k, v in draws.items()}, N, D) for i in range(3)])
        for name, (N, D) in {"7B": (7e9, 1.4e11), "1B": (1e9, 9.8e11)}.items()
    }
    for name, x in per_draw.items():
        assert dec.table.loc[name, "mean"] == pytest.approx(x.mean(), rel=1e-10)
        assert dec.table.loc[name, "p_below"] == pytest.approx(np.mean(x <= 2.1))
        assert dec.table.loc[name, "C"] == pytest.approx(6 * dec.table.loc[name, "N"] * dec.table.loc[name, "D"])
    wins = np.mean(per_draw["7B"] < per_draw["1B"])
    assert dec.table.loc["7B", "p_best"] == pytest.approx(wins)


def test_evpi_hand_computed():
    # Two options, two equally likely states. Utility = 10*[loss <= 2] - price*C.
    # A reaches the threshold in state 0 only, B in state 1 only, at equal cost:
    # E[U_A] = E[U_B] = 5 - cost; with perfect information we always reach it: 10 - cost.
    fit = None
    a = np.array([1.9, 2.1])
    b = np.array([2.1, 1.9])
    with pytest.raises(bs.BayescaleError, match="utility needs"):
        dc.decide({"A": a, "B": b}, threshold=2.0, utility=dc.Utility(10.0, 1e-20))
    runs = synthetic_runs("chinchilla", TRUTH, seed=0)
    # Build a fit whose two draws give exactly these losses at two points: E carries the loss.
    fit = fit_from_draws(
        "chinchilla",
        runs,
        {
            "E": [1.0, 1.0],
            "A": [1e-30, 1e-30],
            "B": [1e-30, 1e-30],
            "alpha": [0.3, 0.3],
            "beta": [0.3, 0.3],
            "sigma": [0.01, 0.01],
        },
    )
    dec = dc.decide({"A": a, "B": b}, threshold=2.0)
    assert dec.evpi is None
    # Utility with points: evaluate via draws of equal C.
    pts = {"A": {"N": 1e9, "D": 1e10}, "B": {"N": 1e9, "D": 1e10}}
    dec = dc.decide(pts, fit=fit, threshold=2.0, utility=dc.Utility(10.0, 0.0), noise=False)
    # Both options are identical (loss 1.0 <= 2 in every draw): EVPI is 0.
    assert dec.evpi == pytest.approx(0.0)
    assert dec.expected_utility == {"A": pytest.approx(10.0), "B": pytest.approx(10.0)}
    assert dec.table["expected_utility"].to_dict() == dec.expected_utility  # the README: "the table adds" them


def test_evpi_positive_when_the_best_option_depends_on_the_state():
    runs = synthetic_runs("chinchilla", TRUTH, seed=0)
    # Two draws that disagree about which size is better: draw 0 favours small N, draw 1 large N.
    fit = fit_from_draws(
        "chinchilla",
        runs,
        {
            "E": [1.0, 1.0],
            "A": [1e-6, 1e6],
            "B": [1e6, 1e-6],
            "alpha": [1.0, 1.0],
            "beta": [1.0, 1.0],
            "sigma": [0.01, 0.01],
        },
    )
    pts = {"bigN": {"N": 1e10, "D": 1e6}, "bigD": {"N": 1e6, "D": 1e10}}
    dec = dc.decide(pts, fit=fit, threshold=1.5, utility=dc.Utility(10.0, 0.0), noise=False, risk="mean")
    # draw 0 (A tiny, B huge): loss depends on D -> bigD reaches 1.5, bigN does not; draw 1 the opposite.
    assert dec.expected_utility["bigN"] == pytest.approx(5.0)
    assert dec.expected_utility["bigD"] == pytest.approx(5.0)
    assert dec.evpi == pytest.approx(5.0)


# ------------------------------------------------------------------ compute-optimal


def test_closed_form_optimum_matches_hand_formula(point_fit):
    fit, draws = point_fit
    C = 5.76e23
    opt = dc.compute_optimal(fit, [C])
    assert opt.attrs["method"] == "closed form"
    for i in range(3):
        p = {k: v[i] for k, v in draws.items()}
        G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
        n_opt = G * (C / 6) ** (p["beta"] / (p["alpha"] + p["beta"]))
        assert opt["N_opt"].values[0, i, 0] == pytest.approx(n_opt, rel=1e-10)
        assert opt["D_opt"].values[0, i, 0] == pytest.approx(C / (6 * n_opt), rel=1e-10)
        assert opt["loss_opt"].values[0, i, 0] == pytest.approx(_law(p, n_opt, C / (6 * n_opt)), rel=1e-10)


def test_numerical_optimum_agrees_with_closed_form(point_fit):
    fit, _ = point_fit
    theta = dc._theta(fit)
    closed = dc.compute_optimal(fit, [1e22])["N_opt"].values.reshape(-1)
    numeric, at_bound = dc._numerical_optimum(fit, theta, 1e22, (0.01, 1e5), frontier.COARSE)
    assert not at_bound.any()
    np.testing.assert_allclose(numeric, closed, rtol=1e-3)


def test_optimum_is_a_minimum(point_fit):
    fit, _ = point_fit
    C = 1e21
    n_opt = float(dc.compute_optimal(fit, [C])["N_opt"].values[0, 0, 0])
    reg = dc.allocation_regret(fit, C, [n_opt * 0.5, n_opt, n_opt * 2])
    assert (reg["expected_regret"] >= -1e-12).all()
    assert reg["expected_regret"].iloc[1] < reg["expected_regret"].iloc[0]
    assert reg["expected_regret"].iloc[1] < reg["expected_regret"].iloc[2]


def test_allocation_exponents_chinchilla(point_fit):
    fit, draws = point_fit
    ex = dc.allocation_exponents(fit)
    a = np.asarray(draws["beta"]) / (np.asarray(draws["alpha"]) + np.asarray(draws["beta"]))
    np.testing.assert_allclose(ex["a"].values.reshape(-1), a)
    np.testing.assert_allclose(ex["a"].values + ex["b"].values, 1.0)


def test_allocation_regret_hand_computed(point_fit):
    fit, draws = point_fit
    C = 1e21
    N = np.array([1e8, 1e9])
    reg = dc.allocation_regret(fit, C, N)
    opt = dc.compute_optimal(fit, [C])
    for j, n in enumerate(N):
        regrets = []
        for i in range(3):
            p = {k: v[i] for k, v in draws.items()}
            lopt = float(opt["loss_opt"].values[0, i, 0])
            regrets.append(_law(p, n, C / (6 * n)) - lopt)
        assert reg["expected_regret"].iloc[j] == pytest.approx(np.mean(regrets), rel=1e-9)
        assert reg["tokens_per_param"].iloc[j] == pytest.approx(C / (6 * n * n))


def test_near_optimal_range_brackets_the_optimum(point_fit):
    fit, _ = point_fit
    C = 1e21
    lo, hi = dc.near_optimal_range(fit, C, tolerance=0.005)
    n_med = float(dc.compute_optimal(fit, [C])["N_opt"].median())
    assert lo < n_med < hi
    reg = dc.allocation_regret(fit, C, [lo, hi, lo / 3, hi * 3])
    assert (reg["relative_regret"].iloc[:2] <= 0.005 + 1e-9).all()
    assert (reg["relative_regret"].iloc[2:] > 0.005).all()


def test_near_optimal_range_says_when_no_n_is_near_enough(point_fit):
    fit, _ = point_fit
    with pytest.warns(
        bs.IdentifiabilityWarning,
        match=r"no N keeps the expected loss within 1e-05% of each.*least expected excess is 0\.00",
    ):
        lo, hi = dc.near_optimal_range(fit, 1e21, tolerance=1e-7)
    assert np.isnan(lo) and np.isnan(hi)


def test_optimal_loss_is_predicted_as_any_point_is_drift_included(point_fit):
    """The frontier's loss at 1000x the runs carries the extrapolation drift, as ``predict`` does at
    that draw's own optimum: a band from the law alone would be far narrower than a run placed there."""
    fit, draws = point_fit
    drift = np.array([0.05, -0.03, 0.01])
    drifting = fit_from_draws("chinchilla", fit.runs, {**draws, "drift": drift})
    C = 1000 * float(fit.runs["C"].max())
    opt = dc.compute_optimal(drifting, [C])
    law = opt["law_loss_opt"].values.reshape(-1)
    assert law == pytest.approx(dc.compute_optimal(fit, [C])["loss_opt"].values.reshape(-1), rel=1e-12)
    n_opt = opt["N_opt"].values.reshape(-1)
    for i in range(3):
        at = {"N": n_opt[i], "D": C / (6 * n_opt[i])}
        far = distance_from_runs(fit.spec, fit.runs, pd.DataFrame([at]))[0]
        assert far > 1
        assert opt["loss_opt"].values.reshape(-1)[i] == pytest.approx(law[i] * np.exp(drift[i] * far), rel=1e-10)
        assert opt["loss_opt"].values.reshape(-1)[i] == pytest.approx(
            drifting.predict(at).values.reshape(-1)[i], rel=1e-10
        )
    for u in (np.int64(10**13), np.float32(1e13)):  # unique tokens as NumPy scalars; this law does not read U
        np.testing.assert_allclose(dc.compute_optimal(drifting, [C], unique_tokens=u)["loss_opt"], opt["loss_opt"])
    # the regret of a size is the law's against itself: the drift moves every size of one draw alike
    regret = dc.allocation_regret(drifting, C, n_opt[:1])
    assert regret["expected_regret"].iloc[0] == pytest.approx(
        dc.allocation_regret(fit, C, n_opt[:1])["expected_regret"].iloc[0]
    )


def test_frontier_and_band_table(point_fit):
    fit, _ = point_fit
    fr = dc.frontier(fit, [1e20, 1e22])
    assert list(fr["C"]) == [1e20, 1e22]
    assert (fr["loss_opt_lo90"] <= fr["loss_opt_median"]).all() and (fr["loss_opt_median"] <= fr["loss_opt_hi90"]).all()
    assert fr["loss_opt_median"].iloc[1] < fr["loss_opt_median"].iloc[0]
    band = fit.predict({"N": [1e9, 1e10], "D": [2e10, 2e11]})
    bt = dc.band_table(band)
    assert list(bt.columns[:3]) == ["N", "D", "C"]
    assert (bt["lo50"] >= bt["lo90"]).all() and (bt["hi50"] <= bt["hi90"]).all()
    with pytest.raises(bs.BayescaleError, match="DataArray"):
        dc.band_table(np.ones(3))


def test_compute_optimal_errors(point_fit):
    fit, _ = point_fit
    with pytest.raises(bs.BayescaleError, match="budgets"):
        dc.compute_optimal(fit, [-1.0])


def test_decide_refuses_an_option_with_c_far_from_6nd(point_fit):
    fit, _ = point_fit
    options = {"honest": {"N": 5e6, "D": 1e8}, "fakeC": {"N": 5e6, "D": 1e8, "C": 1.0}}
    with pytest.raises(bs.BayescaleError, match=r"option 'fakeC': 'C' is not consistent with C = 6 N D"):
        dc.decide(options, fit=fit)


def test_decide_names_the_option_that_lacks_a_law_input(point_fit):
    fit, _ = point_fit
    for options in ({"5M": {"N": 5e6}}, {"ok": {"N": 5e6, "D": 1e8}, "5M": {"N": 5e6}}):
        with pytest.raises(bs.BayescaleError, match=r"^option '5M': law 'chinchilla' needs column 'D'"):
            dc.decide(options, fit=fit)


def test_decide_takes_the_fit_second_and_a_list_of_points(point_fit):
    fit, _ = point_fit
    points = [{"N": 5e6, "D": 1e8}, {"N": 1e7, "D": 5e7}]
    dec = dc.decide(points, fit)
    assert list(dec.table.index) == ["N=5e+06, D=1e+08", "N=1e+07, D=5e+07"]
    named = dc.decide({"N=5e+06, D=1e+08": points[0], "N=1e+07, D=5e+07": points[1]}, fit=fit)
    pd.testing.assert_frame_equal(dec.table, named.table)
    with pytest.raises(bs.BayescaleError, match=r"got Fit \(the options come first: decide\(options, fit\)\)"):
        dc.decide(fit, points)


def test_utility_refuses_what_is_not_a_number():
    for bad in ({"value": lambda loss: loss}, {"value": 1.0, "price_per_flop": -1e-20}, {"value": float("nan")}):
        with pytest.raises(bs.BayescaleError, match=r"Utility: \w+ must be a finite number >= 0"):
            bs.Utility(**bad)


def test_point_notes_say_when_a_point_trains_a_ratio_the_runs_never_did():
    """An optimum at 0.6 tokens per parameter from runs at 5-80 is an extrapolation in the law's shape: said,
    with what to do; a point within twice the runs' range is not."""
    from types import SimpleNamespace

    runs = pd.DataFrame({"N": [1e7, 1e8, 1e8], "D": [5e7, 5e8, 8e9]}).assign(C=lambda t: 6 * t.N * t.D)
    fit = SimpleNamespace(spec=bs.load_spec("chinchilla"), runs=runs, method="nuts", idata=SimpleNamespace(attrs={}))
    inside = pd.DataFrame({"N": [1e8, 1e8], "D": [2.6e8, 1.5e10]}, index=["2.6", "150"]).assign(
        C=lambda t: 6 * t.N * t.D
    )
    assert not [n for n in dc.point_notes(fit, inside) if "tokens per parameter" in n]
    off = pd.DataFrame({"N": [1e8, 1e8], "D": [6e7, 2e10]}, index=["C=a", "C=b"]).assign(C=lambda t: 6 * t.N * t.D)
    (said,) = [n for n in dc.point_notes(fit, off) if "tokens per parameter" in n]
    assert said.startswith("Caution: C=a and C=b train 0.6-200 tokens per parameter, outside the 5-80 of your runs")
    assert said.endswith("add runs near that ratio before relying on it.")
    billions = pd.DataFrame({"N": [7.0], "D": [1.4e12]}, index=["7B written in billions"]).assign(
        C=lambda t: 6 * t.N * t.D
    )
    (said,) = [n for n in dc.point_notes(fit, billions) if "tokens per parameter" in n]
    assert said.endswith("is N or D in other units (millions, billions)?") and "has so many tokens" in said
    in_billions = pd.DataFrame({"N": [7e9], "D": [140.0]}, index=["D in billions"]).assign(C=lambda t: 6 * t.N * t.D)
    (said,) = [n for n in dc.point_notes(fit, in_billions) if "tokens per parameter" in n]
    assert "No training run has so few tokens per parameter" in said


def test_point_notes_say_each_reach_once_for_a_calibrated_average():
    """A law average's weights and its conformal factor are scored on the same splits: beyond their reach the
    weights' note says how far, and the calibration's says only that it was scored there too; a point on the
    runs gets neither, and one far beyond the runs' compute gets the compute caution."""
    from types import SimpleNamespace

    runs = pd.DataFrame({"N": [1e7, 1e8], "D": [2e8, 2e9]}).assign(C=lambda t: 6 * t.N * t.D)
    spec = bs.load_spec("chinchilla")
    average = SimpleNamespace(
        weights={"chinchilla": 1.0}, conformal=0.5, conformal_reach=0.3, weights_reach=0.3, spec=spec, runs=runs
    )
    near = runs.iloc[:1].set_axis(["on a run"])
    far = pd.DataFrame({"N": [1e11], "D": [2e12]}, index=["7B-ish"]).assign(C=lambda t: 6 * t.N * t.D)
    assert dc.point_notes(average, near) == []
    notes = dc.point_notes(average, far)
    assert (
        len(notes) == 3
        and "extrapolates up to" in notes[0]
        and "Law weights: scored on held-out runs up to 0.3" in notes[1]
    )
    assert notes[2] == (
        "Caution: the bands' split-conformal scaling (0.50x) was scored on those same held-out runs, so its coverage "
        "is untested there too; compare with a fit made without it."
    )
    # a single law's calibration, its own reach: the full note
    one = SimpleNamespace(idata=SimpleNamespace(attrs={"conformal_factor": 0.5, "conformal": '{"reach": 0.3}'}))
    one.spec, one.runs = spec, runs
    (said,) = [n for n in dc.point_notes(one, far) if "calibrated" in n]
    assert "up to 0.3 decades (in N and D) beyond the splits' runs" in said


def test_points_that_repeat_data_a_law_does_not_read_are_said_to_be_fresh_data_bands(point_fit):
    """A point asked with U below D of a law without U gets the fresh-data band; decide says so, naming the point."""
    fit, _ = point_fit
    repeated = {"N": 1e9, "D": 8e10, "U": 2e9}  # 40 epochs
    verdict = bs.decide({"repeated": repeated, "fresh": {"N": 1e9, "D": 8e10, "U": 8e10}}, fit=fit).verdict()
    assert "repeated repeats its data (U: up to 40 epochs), but spec 'chinchilla' does not read U" in verdict
    assert "fresh repeats" not in verdict
    table = pd.DataFrame([repeated], index=["r"])
    assert dc.point_notes(fit, table.drop(columns="U")) == dc.point_notes(fit, table.assign(U=8e10))
    assert any("does not read U" in n for n in dc.point_notes(fit, table))


def test_optimal_says_runs_at_one_ratio_cannot_split_a_budget(point_fit, tmp_path, capsys):
    """A new user's 10 runs, all at 20 tokens per parameter, got a confident allocation from one of two modes."""
    from bayescale.checks import one_ratio
    from bayescale.cli import main

    fit, draws = point_fit
    assert one_ratio(fit) is None
    n = np.geomspace(1e7, 1e9, 10)
    runs = pd.DataFrame({"N": n, "D": 20 * n, "loss": _law(TRUTH, n, 20 * n)})
    ladder = fit_from_draws("chinchilla", runs, draws)
    assert one_ratio(ladder) == pytest.approx(20, rel=0.15)
    path = ladder.save(tmp_path / "ladder.nc")
    assert main(["optimal", str(path), "--budget", "1e22", "-q"]) == 0
    assert "every run trains about 20 tokens per parameter" in capsys.readouterr().err
