"""Several modes, found and shown (issue 15): the MAP search's modes, chains started in each, the
draws mixed by weight, the modes said in words; a unimodal fit unchanged.

The bimodal case has a known truth: a law whose exponent is ``c**2`` fits the runs equally well at
``c`` and ``-c``, so the posterior has two mirror-image modes far apart (about 100 posterior sds),
which no chain crosses. With the prior ``c ~ Normal(MU, 1)`` the likelihood is the same in both
and each mode's mass is the prior density at its ``c`` times the same integral: mode ``c > 0`` holds
``1 / (1 + exp(-2 MU c0))`` of the posterior (0.556 here), not the half that equal chains would give.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import warnings

import jax
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import cli
from bayescale._engine import nuts
from bayescale.data import law_inputs
from bayescale.errors import ConvergenceWarning, MultimodalWarning
from bayescale.inference import _problems
from bayescale.laws import _REGISTRY, Law, register_law
from bayescale.model import posterior
from bayescale.modes import _thin_and_mix, allocate, cluster, describe, settle
from bayescale.priors import Prior
from bayescale.testing import synthetic_runs

MU = 0.2
SIGNED = "test_signed_exponent"
TRUTH = {"E": 1.8, "A": 0.6, "c": math.sqrt(0.3)}
SMALL = dict(chains=4, warmup=300, draws=300)
LONGER = ("run more", "more warmup", "more draws", "increase sampler.draws", "run longer")


def _signed_log_loss(p, lx, xp):
    # Centred at N = 1e8 so that log A and the exponent are nearly uncorrelated.
    return xp.log(p["E"] + p["A"] * xp.exp(-(p["c"] ** 2) * (lx["N"] - math.log(1e8))))


@pytest.fixture(scope="module")
def signed_spec():
    law = register_law(
        Law(
            name=SIGNED,
            formula="E + A (N/1e8)^-(c^2)",
            inputs=("N",),
            params=("E", "A", "c"),
            log_loss=_signed_log_loss,
            positive=("E", "A"),
            priors={
                "E": Prior("LogNormal", {"loc": 0.5, "scale": 0.5}),
                "A": Prior("LogNormal", {"loc": 0.0, "scale": 1.0}),
                "c": Prior("Normal", {"loc": MU, "scale": 1.0}),
            },
        )
    )
    try:
        yield bs.load_spec(
            {
                "law": SIGNED,
                "priors": {k: v.to_dict() for k, v in law.priors.items()},
                "likelihood": {"family": "Normal", "sigma": {"dist": "HalfNormal", "scale": 0.05}},
            }
        )
    finally:
        _REGISTRY.pop(SIGNED, None)


@pytest.fixture(scope="module")
def bimodal(signed_spec):
    runs = synthetic_runs(SIGNED, TRUTH, N=np.geomspace(1e6, 1e10, 12), tokens_per_param=(20,), sigma=0.005, seed=3)
    with pytest.warns(MultimodalWarning) as record:
        fit = bs.fit(signed_spec, runs, seed=0, **SMALL)
    return fit, [str(w.message) for w in record if issubclass(w.category, MultimodalWarning)]


def _expected_share(fit) -> float:
    c0 = float(np.sqrt(np.mean(fit.posterior["c"].values ** 2)))
    return 1.0 / (1.0 + math.exp(-2 * MU * c0))


def test_the_modes_found_are_the_truth(bimodal) -> None:
    fit, _ = bimodal
    modes = fit.laplace.modes
    assert len(modes) == 2
    # The best mode is the Laplace fit itself, unchanged.
    np.testing.assert_array_equal(modes[0].x, fit.laplace.mode)
    c = sorted(m.value["c"] for m in modes)
    assert c[0] < 0 < c[1]
    assert c[1] == pytest.approx(-c[0], rel=1e-3)
    assert c[1] ** 2 == pytest.approx(TRUTH["c"] ** 2, abs=0.02)
    for m in modes:
        assert m.value["E"] == pytest.approx(TRUTH["E"], abs=0.05)
        assert m.value["A"] == pytest.approx(TRUTH["A"], rel=0.1)
    # Laplace masses: the mirror modes differ only by the prior's density at +-c.
    plus = next(m for m in modes if m.value["c"] > 0)
    assert plus.weight == pytest.approx(_expected_share(fit), abs=0.005)


def test_the_warning_names_both_modes_and_never_says_run_longer(bimodal) -> None:
    fit, messages = bimodal
    assert len(messages) == 1
    text = messages[0]
    assert "two modes the chains do not cross" in text
    for i, m in enumerate(fit.diagnostics()["modes"]):
        assert f"mode {i + 1} (weight {m['weight']:.2f}" in text
        for k, v in m["params"].items():
            assert f"{k} {v:.3g}" in text
        assert f"predicts loss {m['prediction']['loss']:.4g}" in text
    assert "tighten the prior on c" in text
    assert "no length of run moves the chains between them" in text
    # "Run longer" may only be said of chains that disagree inside one mode (short test chains can),
    # never of the r-hat across modes.
    within = re.compile(r" Within mode .*? there\.")
    problems = within.sub("", " ".join(fit.diagnostics()["problems"])).lower()
    for phrase in LONGER:
        assert phrase not in within.sub("", text).lower() and phrase not in problems


def test_the_mixed_draws_give_each_mode_its_mass(bimodal) -> None:
    fit, _ = bimodal
    d = fit.diagnostics()
    modes = d["modes"]
    assert [set(m) >= {"params", "weight", "chains", "prediction"} for m in modes] == [True, True]
    # Every chain sat in one mode, two in each.
    assert sorted(c for m in modes for c in m["chains"]) == [0, 1, 2, 3]
    assert all(len(m["chains"]) == 2 for m in modes)
    c = fit.posterior["c"].values
    plus = next(m for m in modes if m["params"]["c"] > 0)
    # The draws hold each mode in proportion to its weight (thinned, never repeated) ...
    assert float((c > 0).mean()) == pytest.approx(plus["weight"], abs=2 / c.size)
    # ... and that weight, estimated from the chains, is the true mass within Monte Carlo error
    # (equal chains in each mode would give 0.5, off by 0.056).
    assert plus["weight"] == pytest.approx(_expected_share(fit), abs=0.03)
    # Each chain holds the mixture, so r-hat over the re-formed chains is fine.
    assert np.all(np.abs((c > 0).mean(axis=1) - plus["weight"]) < 0.05)
    assert d["max_r_hat"] < 1.05
    # The mirror modes predict the same loss.
    assert modes[0]["prediction"]["loss"] == pytest.approx(modes[1]["prediction"]["loss"], rel=1e-3)


def test_the_modes_survive_save_and_load_and_summary_shows_them(bimodal, tmp_path) -> None:
    fit, _ = bimodal
    path = fit.save(tmp_path / "fit.nc")
    loaded = bs.Fit.load(path)
    assert loaded.diagnostics()["modes"] == fit.diagnostics()["modes"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert cli.main(["summary", str(path)]) == 0
    assert "posterior modes: 2" in out.getvalue()
    assert "mode 2  weight" in out.getvalue()
    assert "two modes the chains do not cross" in err.getvalue()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["summary", str(path), "--format", "json"]) == 0
    assert len(json.loads(out.getvalue())["diagnostics"]["modes"]) == 2


def test_the_chains_find_a_mode_the_map_search_missed(bimodal) -> None:
    # The same posterior, sampled again (the compiled sampler is reused), but told of the best mode
    # only: the chains still sit in two places, and that is what the words and the weights say.
    fit, _ = bimodal
    post = posterior(fit.spec, np.float64)  # the fit's sampler settings: its compiled sampler
    logx = law_inputs(fit.spec, fit.runs, np.float64)
    y = np.log(fit.runs["loss"].to_numpy(dtype=float))
    with jax.enable_x64(True):
        flat, stats, _ = nuts(post, logx, y, fit.laplace, np.random.default_rng(1), np.float64, "parallel", False)
    _, _, raw = settle(post, fit.laplace.modes[:1], flat, stats, (logx, y), fit.runs, "nuts")
    info = json.loads(raw)
    assert info["state"] == "split" and info["found_by"] == "the chains"
    plus = next(m for m in info["modes"] if m["params"]["c"] > 0)
    assert plus["weight"] == pytest.approx(_expected_share(fit), abs=0.03)
    text = describe(info)
    assert "the MAP search found one; the chains found the others" in text
    assert "r-hat across modes is not slow mixing" in text
    # Run-longer advice only where it applies: chains of one mode that disagree among themselves.
    across = re.sub(r" Within mode .*? there\.", "", text)
    assert not any(phrase in across.lower() for phrase in LONGER)


def test_chains_apart_never_draw_on_and_chains_together_do_whatever_the_modes(
    bimodal, signed_spec, monkeypatch
) -> None:
    # The bimodal fit's chains each sat in one mirror mode: drawing on cannot join them, so they drew once.
    fit, _ = bimodal
    assert len(fit.laplace.modes) == 2 and fit.diagnostics()["nuts_batches"] == 1
    # Chains that move between the MAP search's modes (as if they did, and r-hat stayed high) draw on:
    # the decision is the chains', not the number of modes the search found.
    monkeypatch.setattr(bs.inference, "_mixing_slowly", lambda post, flat: flat.shape[1] < 2 * SMALL["draws"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = bs.fit(signed_spec, fit.runs, seed=0, **SMALL)
    assert len(again.laplace.modes) == 2
    assert again.diagnostics()["nuts_batches"] == 2


@pytest.mark.slow  # a fit of its own; the suite's well-specified fits treat any warning as an error: `make test-all`
def test_a_unimodal_fit_reports_one_mode_no_warning_and_reproducible_draws() -> None:
    truth = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
    runs = synthetic_runs(
        "chinchilla", truth, sigma=0.01, seed=0, N=np.geomspace(1e7, 3e10, 8), tokens_per_param=(2, 5, 20, 80, 320)
    )
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fit = bs.fit("chinchilla", runs, seed=0, **SMALL)
    assert not [w for w in record if issubclass(w.category, ConvergenceWarning)]
    modes = fit.diagnostics()["modes"]
    assert len(modes) == 1 and modes[0]["weight"] == 1.0 and modes[0]["chains"] == [0, 1, 2, 3]
    assert modes[0]["params"]["alpha"] == pytest.approx(fit.laplace.value["alpha"])
    # The draws of a seeded fit are the same when it is run again (bit for bit, on one machine: the
    # values themselves differ between CPUs in their last digits, and chains amplify that); the single
    # mode leaves them untouched, and they hold the truth.
    again = bs.fit("chinchilla", runs, seed=0, **SMALL)
    for name in truth:
        np.testing.assert_array_equal(fit.posterior[name].values, again.posterior[name].values)
        lo, hi = np.quantile(fit.posterior[name].values, [0.005, 0.995])
        assert lo < truth[name] < hi, name
    assert describe({"modes": modes}) is None


# ------------------------------------------------------------ the pieces, without sampling


def _two_gaussians(w1: float, w2: float, w3: float = 0.0):
    """-log of a mixture of well separated Gaussians in 2-d, with its end points and covariances."""
    means = [np.zeros(2), np.array([8.0, 0.0]), np.array([0.0, 9.0])]
    covs = [np.eye(2), 0.25 * np.eye(2), np.eye(2)]
    weights = [w1, w2, w3]

    def potential(x):
        dens = sum(
            w * np.exp(-0.5 * (x - m) @ np.linalg.solve(c, x - m)) / (2 * np.pi * np.sqrt(np.linalg.det(c)))
            for w, m, c in zip(weights, means, covs)
            if w > 0
        )
        return -math.log(dens)

    def local(x):
        k = int(np.argmin([np.sum((x - m) ** 2) for m in means]))
        return covs[k], True

    return means, covs, potential, local


def test_cluster_merges_duplicates_and_weighs_modes_by_laplace_mass() -> None:
    means, covs, potential, local = _two_gaussians(0.7, 0.3, 0.004)
    ends = [(means[0], potential(means[0])), (means[0] + 1e-4, potential(means[0] + 1e-4))]
    ends += [(means[1], potential(means[1])), (means[2], potential(means[2]))]
    modes = cluster(ends, local, potential, lambda x: {"x0": float(x[0])}, covs[0])
    # The duplicate is merged, the 0.4% mode dropped, the weights those of the mixture.
    assert len(modes) == 2
    np.testing.assert_allclose([m.weight for m in modes], [0.7, 0.3], rtol=1e-3)
    np.testing.assert_array_equal(modes[1].x, means[1])


def test_cluster_keeps_one_mode_for_end_points_without_a_barrier() -> None:
    # A banana-free but elongated Gaussian: two end points far apart in the metric of a too-narrow
    # covariance, joined by a straight path with no barrier, are one mode.
    cov = np.diag([100.0, 1.0])

    def potential(x):
        return 0.5 * x @ np.linalg.solve(cov, x)

    ends = [(np.zeros(2), 0.0), (np.array([5.0, 0.0]), potential(np.array([5.0, 0.0])))]
    modes = cluster(ends, lambda x: (np.eye(2) * 0.01, True), potential, lambda x: {}, np.eye(2) * 0.01)
    assert len(modes) == 1 and modes[0].weight == 1.0


def test_chains_are_spread_over_the_modes_by_weight() -> None:
    assert allocate([1.0], 4) == [0, 0, 0, 0]
    assert allocate([0.5, 0.5], 4) == [0, 0, 1, 1]
    assert allocate([0.9, 0.1], 4) == [0, 0, 0, 1]
    assert allocate([0.2, 0.8], 4) == [0, 1, 1, 1]
    assert allocate([0.6, 0.3, 0.1], 2) == [0, 1]


def test_slow_mixing_still_gets_run_longer_advice() -> None:
    table = pd.DataFrame({"r_hat": [1.2], "ess_bulk": [50.0], "ess_tail": [50.0]}, index=["E"])
    d = {"max_r_hat": 1.2, "min_ess_bulk": 50.0, "min_ess_tail": 50.0, "divergences": 0, "max_tree_depth_hits": 0}
    slow = " ".join(_problems(d, table, 4))
    assert "Run more warmup and draws" in slow and "Increase sampler.draws" in slow
    split = _problems(d, table, 4, "the posterior has two modes ...", split=True)
    assert split == ["the posterior has two modes ..."]


def test_mixing_thins_each_mode_to_its_weight_without_repeating_a_draw() -> None:
    # 4 chains of 100 draws: chains 0-2 in mode 0, chain 3 in mode 1, weights 0.5 each.
    flat = np.arange(400.0).reshape(4, 100, 1)
    home = np.array([0, 0, 0, 1])
    pools = [np.flatnonzero(np.repeat(home == k, 100)) for k in (0, 1)]
    mixed, stats = _thin_and_mix(flat, {"lp": -flat[..., 0]}, pools, np.array([0.5, 0.5]))
    # Mode 1 has 100 draws, so the mixture holds 200: 50 per chain, half from each mode.
    assert mixed.shape == (4, 50, 1)
    values = mixed[..., 0]
    assert len(np.unique(values)) == values.size
    assert np.all((values >= 300).sum(axis=1) == 25)
    np.testing.assert_array_equal(stats["lp"], -values)
