"""The issue-15 benchmark's pure functions (splits, metrics, targets) on tiny tables with known answers.

No fit runs here: ``benchmarks/bench_extrapolation.py`` itself is run by hand (BENCHMARKS.md).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_extrapolation as bx  # noqa: E402


def test_llo_split_holds_out_the_top_fifth_by_compute():
    rng = np.random.default_rng(0)
    c = rng.permutation(np.logspace(18, 22, 20))
    train, test = bx.split_by_compute(c, 0.8, 0.2)
    assert len(train) == 16 and len(test) == 4
    assert set(test) == set(np.argsort(c)[-4:])
    assert c[train].max() < c[test].min()
    assert not set(train) & set(test)


def test_hard_split_trains_on_the_bottom_half_and_tests_on_the_top_tenth():
    c = np.arange(1.0, 41.0)[::-1]  # 40 runs, largest first
    train, test = bx.split_by_compute(c, 0.5, 0.1)
    assert sorted(c[train]) == list(np.arange(1.0, 21.0))
    assert sorted(c[test]) == [37.0, 38.0, 39.0, 40.0]


def test_split_never_cuts_through_runs_of_equal_compute():
    c = np.array([1, 1, 1, 2, 2, 2, 3, 3, 3, 4], dtype=float)
    train, test = bx.split_by_compute(c, 0.5, 0.1)
    assert sorted(c[train]) == [1, 1, 1, 2, 2, 2]  # the cut at 5 runs grows to the tie group's edge
    assert list(c[test]) == [4.0]
    c = np.array([1, 2, 3, 4, 5, 5, 5, 5, 5, 5], dtype=float)
    train, test = bx.split_by_compute(c, 0.8, 0.2)
    assert sorted(c[test]) == [5.0] * 6  # every run tied with the held-out ones is held out
    assert sorted(c[train]) == [1, 2, 3, 4]


def test_calibrated_predictor_has_nominal_coverage_and_known_density():
    rng = np.random.default_rng(1)
    n, s, sd = 1000, 400, 0.02
    mu = np.log(rng.uniform(2.0, 4.0, n))
    draws = mu[None, :] + sd * rng.standard_normal((s, n))
    observed = np.exp(mu + sd * rng.standard_normal(n))
    m = bx.summarize(bx.score_draws(draws, observed))
    assert m["cov90"] == pytest.approx(0.9, abs=0.03)
    assert m["cov50"] == pytest.approx(0.5, abs=0.05)
    # E log N(y; mu, sd) = -0.5 log(2 pi e sd^2); the KDE's bandwidth widens it a little
    assert m["mlpd"] == pytest.approx(-0.5 * math.log(2 * math.pi * math.e * sd**2), abs=0.05)
    assert m["width90"] == pytest.approx(2 * 1.645 * sd, rel=0.05)
    assert m["mare"] == pytest.approx(0.6745 * sd, rel=0.1)


def test_overconfident_predictor_undercovers_and_overflowing_draws_are_handled():
    rng = np.random.default_rng(2)
    n = 200
    mu = np.zeros(n)
    draws = mu[None, :] + 0.01 * rng.standard_normal((400, n))
    observed = np.exp(mu + 0.05 * rng.standard_normal(n))
    m = bx.summarize(bx.score_draws(draws, observed))
    assert m["cov90"] < 0.3 and m["outside90"] > 0.7
    draws[:100, 0] = np.inf  # a quarter of one run's draws overflowed
    s = bx.score_draws(draws, observed)
    assert np.isfinite(s["lpd"][0])
    with pytest.raises(ValueError):
        bx.score_draws(draws[:, :3], observed)


def _rec(pit, obs, med, lo, hi, misfit=False, **kw):
    runs = {"pit": pit, "observed": obs, "median": med, "lo90": lo, "hi90": hi, "lpd": [0.0] * len(pit)}
    return {
        **bx.summarize(runs),
        "runs": {"run_id": kw.pop("ids", [f"r{i}" for i in range(len(pit))]), **runs},
        "misfit_warned": misfit,
        "max_r_hat": kw.pop("rhat", float("nan")),
        "method": "laplace",
        **kw,
    }


def test_summary_and_targets_on_a_hand_made_table():
    inside = _rec([0.5, 0.4], [2.0, 2.0], [2.0, 2.1], [1.9, 1.9], [2.1, 2.2])
    assert inside["cov90"] == 1.0 and inside["outside90"] == 0.0
    assert inside["mare"] == pytest.approx(0.025)
    missed = _rec([0.99, 1.0, 0.2], [3.0, 3.0, 3.0], [2.7, 2.7, 3.0], [2.6, 2.6, 2.9], [2.8, 2.8, 3.1])
    assert missed["outside90"] == pytest.approx(2 / 3)
    olmo = _rec([0.5, 0.45], [2.48, 2.44], [2.48, 2.43], [2.40, 2.38], [2.56, 2.50], ids=["olmo-7B-4T", "olmo-13B-5T"])
    huber = {"mare_point": 0.02, **_rec([0.5], [2.0], [2.0], [1.9], [2.1])}
    rows = [
        {"dataset": "a", "split": "llo", "predictors": {"law": inside, "huber": huber}},
        {"dataset": "b", "split": "hard", "predictors": {"law": missed, "huber": huber}},
        {"dataset": "olmo-ladder", "split": "targets", "predictors": {"law": olmo, "huber": huber}},
    ]
    p = bx.pool([inside, missed, olmo])
    assert p["runs"] == 7 and p["silent_misses"] == 1
    assert p["cov90"] == pytest.approx(5 / 7)
    checks = {name: ok for name, ok, _ in bx.target_checks(rows, "law")}
    assert checks["pooled 90% coverage in 0.85-0.95"] is False
    assert checks["no row misses the 90% band on most test runs without a misfit warning"] is False
    assert checks["OLMo 13B-5T C4 loss inside the 90% band"] is True
    assert checks["every fit r-hat <= 1.01 or reports its modes"] is None  # laplace: no chains
    rows[1]["predictors"]["law"]["misfit_warned"] = True
    checks = {name: ok for name, ok, _ in bx.target_checks(rows, "law")}
    assert checks["no row misses the 90% band on most test runs without a misfit warning"] is True
    g = bx.olmo_target(rows, "law")
    assert g["width"] == pytest.approx(0.12 / 2.43)


def test_data_constrained_only_where_data_repeat():
    import pandas as pd

    one_epoch = pd.DataFrame({"D": [1e9, 2e9], "U": [1e9, 2e9]})
    repeated = pd.DataFrame({"D": [1e9, 2e9], "U": [1e9, 5e8]})
    assert not bx.applicable("data_constrained", one_epoch)
    assert not bx.applicable("data_constrained", one_epoch.drop(columns="U"))
    assert bx.applicable("data_constrained", repeated)
    assert bx.applicable("chinchilla", one_epoch)
