"""The synthetic truth of benchmarks/bench_compare.py: its closed-form multiplier agrees with the
library's own reading of it (bayescale._compare_quantities on the true parameters), and each family
of worlds has the multiplier trend and crossing it claims."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_compare as bc  # noqa: E402

from bayescale import _compare_quantities as cq  # noqa: E402
from bayescale.testing import fit_from_draws  # noqa: E402


def true_fit(p: dict, runs):
    """A fit whose posterior is the true parameters (one draw, no drift)."""
    return fit_from_draws("chinchilla", runs, {**{k: np.array([v]) for k, v in p.items()}, "sigma": np.array([0.01])})


@pytest.mark.parametrize("family", bc.FAMILIES)
def test_closed_form_multiplier_matches_the_library(family: str) -> None:
    pa, pb = bc.world_params(family, np.random.default_rng([0, bc.FAMILIES.index(family)]))
    runs = bc.world_runs(pa, pb, 3)
    levels = runs.C.max() * np.array([1.0, 10.0, 100.0])
    k_lib, clipped = cq.multiplier_at_compute(true_fit(pa, runs), true_fit(pb, runs), levels)
    assert not clipped.any()
    # the library reads k off a grid of 12 points per decade, interpolated log-log: within 1%
    np.testing.assert_allclose(k_lib[0], bc.multiplier(pa, pb, levels), rtol=0.01)


def test_families_have_the_trend_and_crossing_they_claim() -> None:
    c_min, c_max = bc.ladder_compute()
    C = np.geomspace(c_min, 100 * c_max, 40)
    for i in range(5):
        rng = np.random.default_rng(i)
        worlds = {f: bc.world_params(f, rng) for f in bc.FAMILIES}
        k = {f: bc.multiplier(*worlds[f], C) for f in bc.FAMILIES}
        assert np.ptp(np.log(k["constant"])) < 1e-9
        assert np.all(np.diff(k["growing"]) > 0) and k["growing"][0] > 1
        assert np.all(np.diff(k["shrinking"]) < 0) and k["shrinking"][-1] > 1
        diff = bc.optimal_loss(worlds["crossover"][1], C) - bc.optimal_loss(worlds["crossover"][0], C)
        crosses, where = cq.crossings(diff[None, :], C)
        assert crosses[0] and 2 * c_max * 0.95 < where[0] < 5 * c_max * 1.05
        for f in ("constant", "growing", "shrinking"):
            d = bc.optimal_loss(worlds[f][1], C) - bc.optimal_loss(worlds[f][0], C)
            assert not cq.crossings(d[None, :], C)[0][0]


def test_with_multiplier_is_exact() -> None:
    pb = bc.with_multiplier(bc.EPOCH, 2.5)
    for C in (1e18, 1e22):
        assert bc.optimal_loss(pb, C) == pytest.approx(bc.optimal_loss(bc.EPOCH, 2.5 * C), rel=1e-12)
        assert bc.multiplier(bc.EPOCH, pb, np.array([C]))[0] == pytest.approx(2.5, rel=1e-9)


def test_mode_of_a_grouped_fit_predicts_a_finite_loss() -> None:
    """A multimodality message on a comparison's joint fit printed "predicts loss nan": the
    prediction point lacked the group column. It now takes the largest run's recipe."""
    import pandas as pd

    from bayescale import load_spec, modes
    from bayescale._compare_model import GROUP_COLUMN, Pooling, grouped_spec

    spec = load_spec("chinchilla")
    gspec = grouped_spec(spec, ["A", "B"], Pooling.default(spec.law))
    pa, pb = bc.EPOCH, bc.with_multiplier(bc.EPOCH, 2.0)
    runs = bc.world_runs(pa, pb, 0)
    runs[GROUP_COLUMN] = np.where(runs.recipe == "A", 1.0, math.e)
    value = {"E": pa["E"], **{f"{p}_g{i}": q[p] for p in ("A", "B", "alpha", "beta") for i, q in enumerate((pa, pb))}}
    prediction = modes._entry(gspec, runs, value, 1.0, [0])["prediction"]
    top = runs.iloc[int(np.argmax(runs.N * runs.D))]
    truth = pa if top.recipe == "A" else pb
    point = pd.DataFrame({"N": [prediction["N"]], "D": [prediction["D"]]})
    expected = truth["E"] + truth["A"] / point.N[0] ** truth["alpha"] + truth["B"] / point.D[0] ** truth["beta"]
    assert prediction["loss"] == pytest.approx(expected, rel=1e-9)
