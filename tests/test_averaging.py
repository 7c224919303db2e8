"""Law uncertainty (issue 15): the law average, the drift learned from leave-future-out splits,
split-conformal calibration, and the spec that names the laws."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import _optimise, averaging, discrepancy, modes
from bayescale._engine import laplace, map_units
from bayescale._optimise import INFINITE, minimise, polish, search
from bayescale.averaging import AveragedFit, law_disagreement, load_fit, stacking_weights
from bayescale.cli._common import _header
from bayescale.data import law_inputs
from bayescale.decisions import point_notes
from bayescale.errors import SpecError
from bayescale.model import distance_from_runs, posterior
from bayescale.report._answer import _calibrated as answer_calibrated
from bayescale.spec import AverageSpec, load_spec
from bayescale.testing import fit_from_draws, synthetic_runs

CHINCHILLA = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.28}
GRID = {"N": (1e7, 2e7, 5e7, 1e8, 2e8, 5e8, 1e9, 2e9), "tokens_per_param": (5.0, 10.0, 20.0, 40.0, 80.0)}


def _runs(bend: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Chinchilla-law runs; ``bend`` > 0 curves the largest runs' loss up by ``bend`` per decade
    of compute squared beyond the grid's middle (a law that is wrong at scale)."""
    runs = synthetic_runs("chinchilla", CHINCHILLA, sigma=0.005, seed=seed, **GRID)
    excess = np.maximum(0.0, np.log10(runs["C"].to_numpy()) - np.median(np.log10(runs["C"].to_numpy())))
    runs["loss"] = runs["loss"] * np.exp(bend * excess**2)
    return runs


def _spec(name: str, learned: bool = True) -> bs.ModelSpec:
    d = load_spec(name).to_dict()
    d["extrapolation"] = {"per_decade": {"dist": "HalfNormal", "scale": 0.05}, "learned": learned}
    return load_spec(d)


# ------------------------------------------------------------------ the spec


def test_recommended_spec_names_the_laws_and_learns_their_drift() -> None:
    spec = load_spec("recommended")
    assert isinstance(spec, AverageSpec)
    names = [m.name for m in spec.members]
    assert {"chinchilla", "kaplan", "data_constrained", "farseer", "chinchilla_bending"} <= set(names)
    assert all(m.learn_drift and m.extrapolation is not None for m in spec.members)
    assert load_spec(spec.to_dict()).model_id == spec.model_id


def test_a_minor_law_drawn_by_psis_is_not_told_to_refit_with_nuts() -> None:
    # The average chose PSIS for a law under MINOR_WEIGHT; the user asked for NUTS, so "refit with NUTS" misleads.
    avg = types.SimpleNamespace(members={"farseer": types.SimpleNamespace(method="psis")}, method="nuts")
    k = "Pareto k 0.71 > 0.7: the importance-sampling draws are unreliable; refit with method='nuts'."
    one = "These draws come from mode 1 only, so its bands leave the others out; fit with method='nuts' to mix them."
    for problem in (k, one):
        said = AveragedFit._advice(avg, "farseer", problem)
        assert "method='nuts'" not in said and said.endswith("drew it by PSIS to save time).")
    avg.members["farseer"].method = "nuts"  # a member the user's method drew keeps its advice
    assert AveragedFit._advice(avg, "farseer", k) == k


def test_a_minor_laws_warning_while_fitting_says_why_it_was_drawn_by_psis(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same advice at fit time: ``fit recommended`` with NUTS once warned "refit with method='nuts'"."""

    def warns(*args, **kwargs):
        warnings.warn(
            "Pareto k 0.75 > 0.7: the draws are unreliable and the bands approximate; refit with method='nuts'."
        )
        return fitted

    fitted = types.SimpleNamespace(idata=types.SimpleNamespace(attrs={}))  # a fit that recorded no modes
    monkeypatch.setattr(averaging._inference, "fit_quietly", warns)
    spec = load_spec("farseer")
    for minor, advice in ((True, "drew it by PSIS to save time"), (False, "refit with method='nuts'")):
        with pytest.warns(UserWarning) as caught:
            assert averaging._fit_member(spec, pd.DataFrame(), 0.05, None, minor=minor, method="psis") is fitted
        said = str(caught[0].message)
        assert said.startswith("law farseer (weight 0.05): Pareto k 0.75") and advice in said


@pytest.mark.parametrize(
    "average,message",
    [
        ({"laws": ["chinchilla"]}, "at least two"),
        ({"laws": ["chinchilla", "chinchilla"]}, "each spec once"),
        ({"laws": ["chinchilla", "kaplan"], "weights": "bma"}, r"average.weights: one of stacking and equal"),
        ({"laws": ["chinchilla", "kaplan"], "calibrate": "isotonic"}, "average.calibrate"),
        ({"laws": ["chinchilla", "kaplan"], "extra": 1}, r"unknown key\(s\) \['extra'\]"),
        ({"laws": ["chinchilla", "no_such_spec"]}, "no_such_spec"),
        ({"laws": "chinchilla"}, "a list of spec names"),
        ({"laws": ["chinchilla", "kaplan"], "concentration": 0.5}, "average.concentration: a number of at least 1"),
        ({"laws": ["chinchilla", "kaplan"], "concentration": "high"}, "average.concentration"),
    ],
)
def test_bad_average_spec(average: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_spec({"name": "avg", "average": average})


def test_concentration_round_trips_and_keeps_old_ids() -> None:
    plain = load_spec({"name": "avg", "average": {"laws": ["chinchilla", "kaplan"]}})
    one = load_spec({"name": "avg", "average": {"laws": ["chinchilla", "kaplan"], "concentration": 1}})
    two = load_spec({"name": "avg", "average": {"laws": ["chinchilla", "kaplan"], "concentration": 2}})
    assert one.model_id == plain.model_id  # the default changes no saved fit's id
    assert two.model_id != plain.model_id
    assert load_spec(two.to_dict()).concentration == 2
    assert load_spec(tomllib.loads(two.to_toml())).model_id == two.model_id


def test_learned_must_be_a_boolean() -> None:
    d = load_spec("chinchilla").to_dict()
    d["extrapolation"] = {"per_decade": {"dist": "HalfNormal", "scale": 0.05}, "learned": "yes"}
    with pytest.raises(SpecError, match="extrapolation.learned: must be true or false"):
        load_spec(d)


# --------------------------------------------------------------- pure parts


def test_distance_is_in_decades_of_n_and_d_from_the_nearest_run() -> None:
    spec = load_spec("chinchilla")
    runs = pd.DataFrame({"N": [1e8, 1e9], "D": [2e9, 2e10]})
    points = pd.DataFrame({"N": [1e8, 1e10, 1e8], "D": [2e9, 2e10, 2e11]})
    got = distance_from_runs(spec, runs, points)
    # the same run; 10x N at the largest run's D; 10x D from the first run's N (nearest: the second run, 1 decade each way)
    np.testing.assert_allclose(got, [0.0, 1.0, math.sqrt(2.0)])


def test_stacking_weights_pick_the_better_predictor_and_mix_complementary_ones() -> None:
    rng = np.random.default_rng(0)
    good, bad = rng.normal(0.0, 0.1, 200), rng.normal(-3.0, 0.1, 200)
    w = stacking_weights(np.column_stack([good, bad]))
    assert w[0] > 0.95
    # each law predicts half of the held-out runs well: the mixture needs both
    half = np.arange(200) < 100
    a = np.where(half, 0.0, -5.0)
    w = stacking_weights(np.column_stack([a, a[::-1]]))
    assert abs(w[0] - 0.5) < 0.05


def test_a_narrow_win_on_a_few_splits_does_not_take_all_the_weight() -> None:
    # Law 0 predicts the held-out runs of splits 0 and 1 a little better, law 1 those of split 2.
    rng = np.random.default_rng(1)
    splits = np.repeat([0, 1, 2], 20)
    lpd = np.column_stack([np.where(splits < 2, 0.1, -0.1), np.zeros(60)]) + rng.normal(0.0, 0.01, (60, 2))
    plain = stacking_weights(lpd)
    boot = stacking_weights(lpd, splits, np.random.default_rng(0))
    assert plain[0] > 0.99  # pooled over points, law 0 wins outright
    assert 0.1 < boot[1] < 0.5 and boot.sum() == pytest.approx(1.0)  # over three splits, law 1 keeps weight


def test_a_dirichlet_prior_keeps_every_law_and_yields_to_strong_evidence() -> None:
    rng = np.random.default_rng(2)
    splits = np.repeat(np.arange(5), 10)
    # law 0 a little better on every split: plain stacking gives it everything
    lpd = np.column_stack([np.full(50, 0.05), np.zeros(50), np.full(50, -0.02)]) + rng.normal(0, 0.01, (50, 3))
    plain = stacking_weights(lpd, splits, np.random.default_rng(0))
    prior = stacking_weights(lpd, splits, np.random.default_rng(0), concentration=1.25)
    assert plain[0] > 0.95
    assert prior.min() > 0.15 and prior[0] == prior.max()  # every law kept, the best still leads
    assert np.abs(prior - 1 / 3).max() < np.abs(plain - 1 / 3).max()
    # a law that predicts far worse on every split loses its weight despite the prior
    strong = np.column_stack([np.zeros(50), np.full(50, -10.0)])
    assert stacking_weights(strong, splits, np.random.default_rng(0), concentration=1.25)[1] < 0.1


def test_conformal_factor_uses_the_finite_sample_rank() -> None:
    scores = np.arange(1.0, 20.0)  # n = 19: the 90% rank is ceil(20 * 0.9) = 18
    assert discrepancy.conformal_factor(scores, 0.9, reference=2.0) == pytest.approx(18.0 / 2.0)
    assert discrepancy.conformal_factor(scores[:8], 0.9, reference=1.0) is None  # too few for 90%


# --------------------------------------------------------- learned from runs


def _drift_median(runs: pd.DataFrame) -> float:
    spec = _spec("chinchilla")
    table = bs.load_runs(runs)
    splits = discrepancy.holdouts(spec, table, discrepancy.split_masks([spec], table), np.random.default_rng(1))
    return float(discrepancy.learn_drift(splits, spec.extrapolation).quantile(0.5))


# A statistical study of how large the learned drift is, in the slow tier (`make test-all`). The default
# tier learns it from leave-future-out splits on clean and bent runs (the planner's trust hyperprior, one
# threshold: test_design_regions.py::test_a_law_is_trusted_once_its_runs_own_future_backs_it) and through
# bs.fit (test_a_learned_drift_scale_is_an_attribute_and_in_the_summary); these bounds and the bent/clean
# ratio only here.
@pytest.mark.slow
def test_learned_drift_is_near_zero_on_the_law_and_grows_when_the_runs_bend() -> None:
    clean = _drift_median(_runs())
    bent = _drift_median(_runs(bend=0.03))
    assert clean < 0.015, clean  # the hyperprior's median alone is 0.034
    assert bent > 4 * clean and bent > 0.05, (clean, bent)


def test_a_learned_drift_scale_is_an_attribute_and_in_the_summary(tmp_path, capsys) -> None:
    """What the splits taught the fit is where the README says: ``Fit.drift_scale`` and ``bayescale summary``."""
    from bayescale.cli import main

    fit = bs.fit(_spec("chinchilla"), _runs(), method="laplace", seed=0)
    learned = fit.drift_scale
    assert set(learned) == {"median", "q05", "q95", "splits"} and learned["splits"] >= 2
    assert 0 <= learned["q05"] <= learned["median"] <= learned["q95"]
    assert bs.fit(_spec("chinchilla", learned=False), _runs(), method="laplace", seed=0).drift_scale is None
    fit.save(tmp_path / "f.nc")
    assert main(["summary", str(tmp_path / "f.nc"), "-q"]) == 0
    line = f"extrapolation: drift scale learned from {learned['splits']} leave-future-out splits: median {learned['median']:.3f}"
    assert line in capsys.readouterr().out
    assert main(["summary", str(tmp_path / "f.nc"), "--format", "json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["drift_scale"] == learned


@pytest.mark.slow  # 28 s on 2 cores: a Laplace fit per split, to check the vectorised Newton against
def test_split_maps_are_the_training_runs_own_maps() -> None:
    """The vectorised Newton MAPs of leave-future-out splits (masks over one table) reach the
    modes that separate L-BFGS fits of each split's training runs reach. (Not Farseer's law: its
    density on such runs has many local modes, and from the same 8 starts Newton and L-BFGS
    each find the better one on some splits.)"""
    for name in ("chinchilla_bending",):
        spec = _spec(name)
        table = bs.load_runs(_runs(bend=0.02, seed=3))
        masks = discrepancy.split_masks([spec], table)
        post = posterior(spec, np.float64)
        with jax.enable_x64(True):  # as every MAP in bayescale
            logx = law_inputs(spec, table, np.float64)
            y = np.log(table["loss"].to_numpy())
            train = np.stack([m for _, m in masks]).astype(float)
            data = (
                {k: np.broadcast_to(v, train.shape) for k, v in logx.items()},
                np.broadcast_to(y, train.shape),
                train,
            )
            modes, _ = map_units(post, data, np.random.default_rng(1), 3, 5.0, gtol=1e-6, solver="newton")
            for mode, m in zip(modes, train.astype(bool)):
                sub = {k: v[m] for k, v in logx.items()}
                alone = laplace(post, sub, y[m], np.random.default_rng(2), np.float64)
                newton = float(post.potential(mode, sub, y[m]))
                assert newton <= -alone.log_density + 1e-6, (name, newton, -alone.log_density)


def test_a_split_whose_curvature_overflows_does_not_stop_the_others() -> None:
    """Newton over many splits at once: one unit's Hessian that is not finite (an overflow far out
    on a law's ridge) stops that unit where it is, and the others still reach their modes (an
    eigendecomposition of all the Hessians together used to fail for every unit)."""
    centre = np.array([[1.0, -2.0, 0.0], [0.5, 0.5, 0.5], [-1.0, 3.0, 2.0]])

    def value_and_grad(x, *args):
        v = 0.5 * jnp.sum((x - centre) ** 2, axis=1)
        return (jnp.sum(v), v), x - centre

    def hessian(x, *args):
        h = np.tile(np.eye(3), (3, 1, 1))
        h[1] = np.nan
        return jnp.asarray(h)

    post = types.SimpleNamespace(batched={"map": (value_and_grad, hessian)})
    x0 = np.zeros((3, 3))
    x, v = _optimise._newton_run(post, (), x0.copy(), x0.copy(), gtol=1e-8, max_iter=50)
    np.testing.assert_allclose(x[[0, 2]], centre[[0, 2]], atol=1e-6)
    np.testing.assert_allclose(x[1], x0[1])  # stopped at its start
    assert np.isfinite(v).all()


def test_the_map_search_ends_at_the_mode_where_lbfgs_stops_short() -> None:
    """A curved, badly scaled valley whose potential sits far from zero (as a log posterior's does):
    L-BFGS-B stops on the potential's small relative change with a gradient far from zero, and the
    Laplace approximation would be centred off the mode. Each start's search ends with Newton there."""
    turn = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])

    def fun(x):
        u = turn @ x
        ridge = u[1] - u[0] ** 2
        grad_u = np.array([(u[0] - 1) - 2e4 * u[0] * ridge, 1e4 * ridge])
        return 900.0 + 0.5 * (u[0] - 1) ** 2 + 5e3 * ridge**2, turn.T @ grad_u

    def hess(x):
        u = turn @ x
        h_u = np.array([[1 - 2e4 * (u[1] - u[0] ** 2) + 4e4 * u[0] ** 2, -2e4 * u[0]], [-2e4 * u[0], 1e4]])
        return turn.T @ h_u @ turn

    start = np.array([-3.0, 5.0])
    mode = np.linalg.solve(turn, np.ones(2))
    short = minimise(fun, start, maxiter=1000, gtol=1e-9)
    assert np.abs(short.jac).max() > 1e-3 and np.abs(short.x - mode).max() > 1e-4  # the failure
    found = search(fun, hess, start)
    # Newton stops on its decrement: the gradient left in the stiff direction (curvature ~4e4) is
    # platform-dependent (3.9e-7 on a machine without AVX-512, under 1e-8 on one with it), its distance not.
    assert found.success and np.abs(found.jac).max() < 1e-5
    np.testing.assert_allclose(found.x, mode, atol=1e-8)
    assert found.fun <= short.fun


def test_polish_says_when_it_did_not_reach_a_mode() -> None:
    """Newton's finish never returns a worse point, steps back from a wall where the density is not
    finite, and says ``converged=False`` when it stops short (iterations out, or a Hessian that is
    not finite), so the MAP search does not report such an end point as a mode."""

    def bowl(x):  # minimum at 2, a wall (no density) beyond 2.5
        if x[0] > 2.5:
            return INFINITE, np.zeros(1)
        return float((x[0] - 2.0) ** 2 + 0.1 * x[0] ** 4), np.array([2 * (x[0] - 2.0) + 0.4 * x[0] ** 3])

    def bowl_hess(x):
        return np.array([[2.0 + 1.2 * x[0] ** 2]])

    # Far too flat a curvature: the first steps overshoot into the wall.
    end = polish(bowl, lambda x: np.array([[1e-3]]), np.array([0.0]))
    assert end.value <= bowl(np.array([0.0]))[0] and end.x[0] <= 2.5
    end = polish(bowl, bowl_hess, np.array([0.0]))
    assert end.converged and abs(bowl(end.x)[1][0]) < 1e-6
    assert not polish(bowl, bowl_hess, np.array([0.0]), max_iter=1).converged
    stuck = polish(bowl, lambda x: np.array([[np.nan]]), np.array([0.0]))
    assert not stuck.converged and stuck.x[0] == 0.0


@pytest.mark.slow  # 31 s of sampling: the slow tier (`make test-all`) keeps it
def test_splits_of_a_sampled_fit_have_the_posteriors_spread_not_the_laplace_one() -> None:
    """The drift is learned against the splits' parameter spread, so that spread must be the one the
    final fit has. On 16 bending runs the Laplace Gaussian doubles the spread of the bending law's
    predictions beyond the cut; the importance-corrected splits (``method="nuts"``) match NUTS."""
    spec = _spec("chinchilla_bending")
    table = bs.load_runs(_runs(bend=0.02, seed=3))
    split = discrepancy.split_masks([spec], table)[:1]
    train = split[0][1]
    laplace_sd = discrepancy.holdouts(spec, table, split, np.random.default_rng(1), "laplace")[0].param_sd
    exact_sd = discrepancy.holdouts(spec, table, split, np.random.default_rng(1), "nuts")[0].param_sd
    plain = load_spec({k: v for k, v in load_spec("chinchilla_bending").to_dict().items() if k != "extrapolation"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bs.fit(plain, table[train].reset_index(drop=True), method="nuts", seed=0, chains=2, warmup=500)
    held = table[~train].reset_index(drop=True)
    lo, hi = np.quantile(fit.law_log_loss(held).reshape(-1, len(held)), [0.16, 0.84], axis=0)
    nuts_sd = (hi - lo) / 2.0
    assert np.median(laplace_sd / nuts_sd) > 1.5  # the case this guards against
    assert 0.75 < np.median(exact_sd / nuts_sd) < 1.33, np.median(exact_sd / nuts_sd)


@pytest.fixture(scope="module")
def average() -> AveragedFit:
    """Chinchilla-law runs averaged over Chinchilla's and Kaplan's laws (Laplace, for speed)."""
    spec = load_spec({"name": "pair", "average": {"laws": ["chinchilla", "kaplan"]}, **_learned()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bs.fit(spec, _runs(), seed=0, method="laplace")


def _learned() -> dict:
    return {"extrapolation": {"per_decade": {"dist": "HalfNormal", "scale": 0.05}, "learned": True}}


def test_the_average_puts_its_weight_on_the_law_that_made_the_runs(average: AveragedFit) -> None:
    assert average.weights.get("chinchilla", 0.0) > 0.9, average.weights
    assert "chinchilla" in average.describe()
    # The weights say how far out they were tested: the splits' farthest held-out run, in decades.
    found = re.search(r"scored on runs up to ([0-9.e+-]+) decades \(in N and D\)", average.describe())
    assert found, average.describe()
    runs = average.runs
    span = np.hypot(*(np.log10(runs[c].max() / runs[c].min()) for c in ("N", "D")))
    assert 0 < float(found.group(1)) < span
    table = average.weights_table()
    assert table.loc["chinchilla", "elpd_lfo"] > table.loc["kaplan", "elpd_lfo"]
    # each refitted law's learned drift scale, by law, as the weights table says it in words
    learned = average.drift_scale
    assert set(learned) == set(average.members) and all(d["splits"] >= 2 for d in learned.values()), learned


def test_a_decision_far_beyond_the_weights_reach_says_the_law_choice_is_untested(average: AveragedFit) -> None:
    reach = average.weights_reach
    assert reach is not None and reach > 0
    runs = average.runs
    near = {"N": float(runs["N"].iloc[0]), "D": float(runs["D"].iloc[0])}  # on a run: distance 0
    step = 10 ** (1.6 * reach)  # in both N and D: sqrt(2) * 1.6 = 2.3 reaches from the nearest run
    far = {"N": float(runs["N"].max()) * step, "D": float(runs["D"].max()) * step}
    assert "Law weights" not in bs.decide({"a": near, "b": {**near, "N": near["N"] * 1.01}}, fit=average).verdict()
    verdict = bs.decide({"near": near, "far": far}, fit=average).verdict()
    assert "Law weights: scored on held-out runs up to" in verdict and "is untested" in verdict


def test_beyond_the_weights_reach_the_laws_are_mixed_by_weights_faded_towards_equal() -> None:
    average = dataclasses.replace(_pair_with_bending(0.05), weights_reach=0.5)
    runs = average.runs
    near = {"N": float(runs["N"].iloc[0]), "D": float(runs["D"].iloc[0])}  # on a run
    step = 10 ** (2 * 0.5 / np.sqrt(2))  # in both N and D: twice the reach from the largest run
    far = {"N": float(runs["N"].max()) * step, "D": float(runs["D"].max()) * step}
    both = pd.DataFrame([near, far])
    faded = average.point_weights(both)
    np.testing.assert_allclose(faded[0], [0.4, 0.6])
    assert faded[1][1] < 0.6 and faded[1][1] == pytest.approx(0.5 * 0.6 + 0.25, abs=0.03)  # nearest run may be nearer
    # each law's share of the draws at each point, read from values that name their law
    named = [np.full(m.log_loss(both).shape, float(k)) for k, m in enumerate(average.members.values())]
    mixed = average.mix(named, both)
    assert np.mean(mixed[..., 0] == 1.0) == 0.6 and np.mean(mixed[..., 1] == 1.0) == pytest.approx(
        faded[1][1], abs=0.01
    )
    assert average.noise_params(both)["sigma"].shape[-1] == 2 and average.noise_params()["sigma"].shape[-1] == 1
    # a point within the reach is mixed as before, whatever points are asked beside it
    alone = average.predict(near, noise=True).values[..., 0]
    np.testing.assert_array_equal(average.predict(both, noise=True).values[..., 0], alone)
    verdict = bs.decide({"near": near, "far": far}, fit=average).verdict()
    assert re.search(r"the weights there count 0\.[0-9]+ of the stacking weights, the rest equal", verdict), verdict


def test_the_average_is_used_like_one_fit(average: AveragedFit, tmp_path) -> None:
    point = {"N": 3e10, "D": 6e11}
    band = average.predict(point, noise=True)
    assert band.dims == ("chain", "draw", "point")
    lo, hi = np.quantile(band.values, [0.05, 0.95])
    truth = (
        CHINCHILLA["E"] + CHINCHILLA["A"] / 3e10 ** CHINCHILLA["alpha"] + CHINCHILLA["B"] / 6e11 ** CHINCHILLA["beta"]
    )
    assert lo < truth < hi
    decision = bs.decide({"here": point, "smaller": {"N": 3e9, "D": 6e10}}, fit=average)
    assert decision.best == "here"
    path = average.save(tmp_path / "avg.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # load_fit reads the average without a word
        again = load_fit(path)
    assert isinstance(again, AveragedFit) and again.weights == pytest.approx(average.weights)
    assert again.weights_reach == pytest.approx(average.weights_reach)
    with pytest.warns(UserWarning, match=r"holds a law average; Fit.load reads its leading law alone .*load_fit"):
        assert bs.Fit.load(path).spec.name == average.leading.spec.name
    np.testing.assert_allclose(again.predict(point).values, average.predict(point).values)
    from bayescale.cli import main

    assert main(["summary", str(path), "-q"]) == 0  # its drift scales by law, read as one law's, raised KeyError


def test_mixing_takes_a_member_with_fewer_draws() -> None:
    """NUTS chains that sat in different modes come back mixed by weight, with fewer draws per
    chain: the average still fills every slot, from that member's draws spread evenly."""
    slots = np.array([[0, 1, 1, 0], [1, 0, 1, 1]])
    sized = {
        k: types.SimpleNamespace(posterior=types.SimpleNamespace(sizes={"chain": 2, "draw": n}))
        for k, n in (("a", 4), ("b", 2))
    }
    avg = AveragedFit(None, sized, {"a": 0.4, "b": 0.6}, [], pd.DataFrame(), slots=slots)
    a = np.zeros((2, 4, 3))
    b = np.arange(2 * 2 * 3, dtype=float).reshape(2, 2, 3) + 1  # 2 chains x 2 draws
    mixed = avg.mix([a, b])
    assert mixed.shape == (2, 4, 3)
    np.testing.assert_array_equal(mixed[slots == 0], 0.0)
    taken = mixed[slots == 1]
    assert len(taken) == 5 and np.all(taken > 0)
    np.testing.assert_array_equal(taken[0], b.reshape(4, 3)[0])  # spread from the first draw on
    assert len({tuple(t) for t in taken}) == 4  # every one of b's 4 draws is used


def test_conformal_calibration_scales_the_bands_about_their_median() -> None:
    runs = _runs()
    spec = _spec("chinchilla")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = bs.fit(spec, runs, seed=0, method="laplace")
        calibrated = bs.fit(spec, runs, seed=0, method="laplace", calibrate="conformal")
    factor = bs.inference._arviz.attrs(calibrated.idata)["conformal_factor"]
    assert 0.2 < factor < 5.0
    point = {"N": 3e10, "D": 6e11}
    a, b = (np.log(f.predict(point).values.ravel()) for f in (plain, calibrated))
    assert np.median(b) == pytest.approx(np.median(a), abs=1e-9)
    width = lambda x: np.subtract(*np.quantile(x, [0.95, 0.05]))  # noqa: E731
    assert width(b) == pytest.approx(factor * width(a), rel=0.02)
    with pytest.raises(bs.BayescaleError, match="calibrate must be one of"):
        bs.fit(spec, runs, method="laplace", calibrate="isotonic")
    assert math.isfinite(factor)
    # Every CLI output that shows the fit's header says its bands were scaled, and by how much.
    assert f"bands calibrated (--calibrate conformal): scaled {factor:.2f}x" in _header(calibrated)
    assert "calibrated" not in _header(plain)
    # The factor was scored on held-out runs up to the splits' reach; a point far beyond it is said to be untested.
    factor_again, reach = discrepancy.calibration(calibrated)
    assert factor_again == factor and 0 < reach < 3 and discrepancy.calibration(plain) is None
    near, far = (
        pd.DataFrame([p], index=[n]) for n, p in (("near", {"N": 3e10, "D": 6e11}), ("far", {"N": 1e15, "D": 1e17}))
    )
    for table in (near, far):
        table["C"] = 6 * table["N"] * table["D"]
    assert distance_from_runs(spec, runs, near)[0] <= 2 * reach < distance_from_runs(spec, runs, far)[0]
    assert not [n for n in point_notes(calibrated, near) if "calibrated" in n]
    (said,) = [n for n in point_notes(calibrated, far) if "calibrated" in n]
    assert f"scaled {factor:.2f}x" in said and f"up to {reach:.2g} decades" in said and "untested" in said
    assert not [n for n in point_notes(plain, far) if "calibrated" in n]
    # A fit saved before the reach was recorded: cautioned beyond a default reach only, never on its runs.
    old_idata = calibrated.idata.copy()
    old_idata.attrs["conformal"] = json.dumps({"level": 0.9, "scores": 20, "factor": factor})
    old = dataclasses.replace(calibrated, idata=old_idata)
    assert discrepancy.calibration(old) == (factor, None)
    on_run = pd.DataFrame(runs[["N", "D", "C"]].iloc[:1].to_numpy(), columns=["N", "D", "C"], index=["run"])
    assert not [n for n in point_notes(old, on_run) if "calibrated" in n]
    (said,) = [n for n in point_notes(old, far) if "calibrated" in n]
    assert "does not record (refit it to record them)" in said
    # The report's answer box says it too, as every CLI header does.
    assert f"Bands calibrated (split-conformal): scaled {factor:.2f}x" in answer_calibrated(calibrated)
    assert answer_calibrated(plain) == ""


# 20 s in CI: in the slow tier (`make test-all`) to keep CI under its budget
@pytest.mark.slow
def test_a_minor_law_is_drawn_by_psis_with_a_quarter_of_the_draws() -> None:
    """A law under MINOR_WEIGHT supplies under a quarter of the average's draws: it is drawn by PSIS
    with a quarter of the draws (at least MINOR_MIN_DRAWS per chain), each of its slots still a
    distinct draw; the leading law keeps all of them. (Runs that bend a little: scored with their
    importance-corrected posteriors, the bending law leads and Chinchilla's keeps about 6% of the weight.)"""
    from bayescale.averaging import MINOR_DRAWS, MINOR_MIN_DRAWS, MINOR_WEIGHT

    spec = load_spec({"name": "pair", "average": {"laws": ["chinchilla", "chinchilla_bending"]}, **_learned()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        avg = bs.fit(spec, _runs(bend=0.005), seed=0, method="psis", chains=2, draws=600)
    assert avg.weights["chinchilla"] < MINOR_WEIGHT, avg.weights
    minor, lead = avg.members["chinchilla"], avg.members["chinchilla_bending"]
    assert lead.posterior.sizes["draw"] == 600
    assert minor.posterior.sizes["draw"] == max(MINOR_MIN_DRAWS, round(MINOR_DRAWS * 600)) == 150
    assert any("chinchilla (weight below" in n and "drawn by PSIS" in n for n in avg.notes)
    band = avg.log_loss({"N": 3e10, "D": 6e11})[..., 0]
    from_minor = band[avg.slots == list(avg.weights).index("chinchilla")]
    assert len(from_minor) > 0 and len(np.unique(from_minor)) == len(from_minor)


def test_learned_gap_reads_only_how_groups_differ() -> None:
    hyper = _spec("chinchilla").extrapolation
    # Five splits, three groups: every group drifts by the same 0.08 per decade (a shared drift) ...
    alike = [(np.full(3, 0.08) + np.array([0.002, -0.001, -0.001]), np.full(3, 0.01)) for _ in range(5)]
    # ... or each by its own amount.
    apart = [(np.array([0.08, -0.04, 0.01]) * (1 if k % 2 else -1), np.full(3, 0.01)) for k in range(5)]
    shared = discrepancy.learn_gap(alike, hyper)
    own = discrepancy.learn_gap(apart, hyper)
    prior = discrepancy.learn_gap([], hyper)
    assert shared.splits == 5 and prior.splits == 0
    assert float(shared.quantile(0.9)) < 0.5 * float(prior.quantile(0.9))  # a shared drift is no gap
    assert float(own.quantile(0.05)) > 0.03  # slopes 0.05-0.12 apart: a gap of about that size


def test_the_gap_prior_is_a_spike_at_no_gap_beside_the_slab() -> None:
    """No gap is a hypothesis of its own (prior probability ``alike``): slopes that differ by their
    errors alone make it more probable, slopes apart rule it out; without splits it stays the prior's."""
    hyper = discrepancy.GAP_HYPERPRIOR
    alike = [(np.array([0.002, -0.001, -0.001]) + 0.08, np.full(3, 0.01)) for _ in range(5)]
    apart = [(np.array([0.08, -0.04, 0.01]) * (1 if k % 2 else -1), np.full(3, 0.01)) for k in range(5)]
    assert discrepancy.learn_gap([], hyper).p_zero == pytest.approx(discrepancy.GAP_ALIKE)
    assert discrepancy.learn_gap([], hyper, alike=0.2).p_zero == pytest.approx(0.2)
    assert discrepancy.learn_gap(alike, hyper).p_zero > discrepancy.GAP_ALIKE
    assert discrepancy.learn_gap(apart, hyper).p_zero < 1e-6
    slab_only = discrepancy.learn_gap(alike, hyper, alike=0.0)
    assert slab_only.p_zero == 0.0 and float(slab_only.quantile(0.9)) > float(
        discrepancy.learn_gap(alike, hyper).quantile(0.9)
    )
    with pytest.raises(bs.BayescaleError, match="gap_alike must be a probability"):
        discrepancy.learn_gap(alike, hyper, alike=1.0)


def _pair_with_bending(beta1: float) -> AveragedFit:
    """Chinchilla's law and the bending law, fitted to nothing: fixed draws around CHINCHILLA; the
    bending law equals Chinchilla's when beta1 = 0 and bends its data term away otherwise."""
    runs = _runs()
    rng = np.random.default_rng(0)
    jitter = 1.0 + 0.002 * rng.standard_normal((1, 200))
    chin = {**{k: v * jitter for k, v in CHINCHILLA.items()}, "sigma": np.full((1, 200), 0.005)}
    n0, d0 = 1e9, 2e10  # the bending law's reference scales
    bend = {
        "E": chin["E"],
        "A": chin["A"] / n0 ** chin["alpha"],
        "B": chin["B"] / d0 ** chin["beta"],
        "alpha0": chin["alpha"],
        "alpha1": np.zeros((1, 200)),
        "beta0": chin["beta"],
        "beta1": np.full((1, 200), beta1),
        "sigma": chin["sigma"],
    }
    members = {
        "chinchilla": fit_from_draws("chinchilla", runs, chin),
        "chinchilla_bending": fit_from_draws("chinchilla_bending", runs, bend),
    }
    spec = load_spec({"name": "pair", "average": {"laws": ["chinchilla", "chinchilla_bending"]}})
    return AveragedFit(spec, members, {"chinchilla": 0.4, "chinchilla_bending": 0.6}, [], runs, method="fixed")


def test_a_member_keeps_its_own_method_through_save_and_load(tmp_path) -> None:
    """The average draws a minor law by PSIS: loaded again, that member is still a PSIS fit, so its Pareto k
    problem and the words about why it was drawn that way survive the file."""
    pair = _pair_with_bending(beta1=0.0)
    minor = pair.members["chinchilla_bending"]
    minor.idata.attrs.update(method="psis", pareto_k=0.9)
    pair.members["chinchilla_bending"] = dataclasses.replace(minor, method="psis")
    again = load_fit(pair.save(tmp_path / "avg.nc"))
    assert again.members["chinchilla_bending"].method == "psis" and again.members["chinchilla"].method == "fixed"
    (said,) = [p for p in again.diagnostics()["problems"] if "Pareto k" in p]
    assert said.startswith("chinchilla_bending: Pareto k 0.9 > 0.7") and "drew it by PSIS" in said


def test_decide_says_where_the_laws_of_an_average_disagree_beyond_their_bands() -> None:
    options = {"near": {"N": 1e9, "D": 2e10}, "far": {"N": 1e11, "D": 1e13}}
    same = _pair_with_bending(beta1=0.0)
    assert law_disagreement(same, list(options.values())) is None
    assert not any("Laws disagree" in n for n in bs.decide(options, fit=same).notes)
    bent = _pair_with_bending(beta1=-0.03)  # the data exponent falls with D: the loss levels off far out
    a, b, i, med_a, med_b = law_disagreement(bent, list(options.values()))
    assert {a, b} == {"chinchilla", "chinchilla_bending"} and i == 1 and abs(med_a - med_b) > 0.01
    (note,) = [n for n in bs.decide(options, fit=bent).notes if "Laws disagree" in n]
    assert note.startswith("Laws disagree at far:") and "chinchilla_bending 0.60" in note
    assert law_disagreement(same.members["chinchilla"], list(options.values())) is None  # one law: nothing to say


def _two_modes(loss_b: float) -> dict:
    point = {"C": 1e22, "N": 1e10, "D": 2e11}
    return {
        "state": "one visited",
        "modes": [
            {"weight": 0.7, "chains": [0, 1], "params": {"alpha": 0.3}, "prediction": {**point, "loss": 2.0}},
            {"weight": 0.3, "chains": [], "params": {"alpha": 0.5}, "prediction": {**point, "loss": loss_b}},
        ],
    }


@pytest.mark.parametrize("loss_b, relayed", [(2.004, False), (2.2, True)])
def test_a_laws_modes_that_predict_alike_are_a_note_of_the_average_not_a_warning(monkeypatch, loss_b, relayed) -> None:
    """Farseer's law took two modes that predict within 0.5% of each other on every well-specified table:
    a warning that said sampling may not be trustworthy on every fit of the recommended average."""
    info = _two_modes(loss_b)
    said = modes.describe(info)

    def fit_quietly(spec, table, **kwargs):
        warnings.warn(bs.inference.unconverged_message([said]), bs.MultimodalWarning)
        return types.SimpleNamespace(idata=types.SimpleNamespace(attrs={"modes": json.dumps(info)}))

    monkeypatch.setattr(averaging._inference, "fit_quietly", fit_quietly)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        averaging._fit_member(load_spec("farseer"), _runs(), 0.06, None)
    assert [issubclass(w.category, bs.MultimodalWarning) for w in caught] == [True] * relayed
    assert (modes.agreeing_modes({"modes": json.dumps(info)}) == said) is not relayed
    average = _pair_with_bending(0.0)
    average.members["chinchilla_bending"].idata.attrs["modes"] = json.dumps(info)
    d = average.diagnostics()
    assert any(said in p for p in d["problems"]) is relayed
    assert (f"chinchilla_bending (weight 0.60): {said}" in d["notes"]) is not relayed
