"""The issue-16 replay benchmark's protocol on a small synthetic pool with a known law.

Checks the invariants every method must keep (budget, target runs never chosen nor revealed, the
initial design = the cheapest runs), the metrics against a hand computation, and that a ladder and a
random design are scored end to end with a real (Laplace) bayescale fit. The full benchmark is run
by hand (``benchmarks/bench_replay.py``, BENCHMARKS.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_replay as br  # noqa: E402
import replay_cells  # noqa: E402
import replay_methods as rm  # noqa: E402

TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36}
SPEC = str(Path(__file__).resolve().parents[1] / "models" / "chinchilla.toml")
TASK = {"budgets": [0.10], "fit_method": "laplace", "seed": 0}


def synthetic_runs(seed: int = 0) -> pd.DataFrame:
    """A 6 x 6 grid in (N, tokens per parameter): 36 runs of a known Chinchilla law, 1% noise."""
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(1e7, 1e9, 6), 6)
    d = n * np.tile([2.0, 5.0, 10.0, 20.0, 60.0, 150.0], 6)
    loss = TRUTH["E"] + TRUTH["A"] / n ** TRUTH["alpha"] + TRUTH["B"] / d ** TRUTH["beta"]
    loss = loss * np.exp(0.01 * rng.standard_normal(n.size))
    return pd.DataFrame({"run_id": [f"r{i:02d}" for i in range(n.size)], "N": n, "D": d, "C": 6 * n * d, "loss": loss})


@pytest.fixture(scope="module")
def pool() -> br.Pool:
    return br.make_pool("synthetic", synthetic_runs(), SPEC)


@pytest.fixture(scope="module")
def ladder(pool: br.Pool) -> dict:
    """The ladder's record at a tenth of the pool's compute, scored by a Laplace fit: two tests read the one fit."""
    (rec,) = br.run_task({**TASK, "pool": pool, "method": "ladder20"})
    return rec


def test_pool_split_targets_and_initial(pool: br.Pool) -> None:
    runs = pool.runs
    top = runs.sort_values("C")["run_id"].tolist()[-4:]  # round(0.1 * 36) = 4 runs, grown to whole levels
    assert set(top) <= set(pool.target_ids) and len(pool.target_ids) <= 6
    rest = runs[~runs["run_id"].isin(pool.target_ids)].sort_values("C")
    assert np.log10(pool.targets["C"].min() / rest["C"].max()) > br.LEVEL_GAP  # no pool run on a target's level
    assert pool.initial_ids == rest["run_id"].iloc[:7].tolist()  # 5 law parameters + 2, the cheapest
    assert pool.flops == pytest.approx(rest["C"].sum())
    cand = pool.candidates()
    assert "loss" not in cand
    assert not set(cand["run_id"]) & (set(pool.target_ids) | set(pool.initial_ids))
    assert len(cand) == 36 - len(pool.target_ids) - 7


def test_compute_levels_chain_close_runs() -> None:
    c = np.array([1.0e20, 1.05e20, 1.1e20, 2.0e20, 4.0e20, 4.2e20])
    assert list(br.compute_levels(c)) == [1.1e20, 1.1e20, 1.1e20, 2.0e20, 4.2e20, 4.2e20]
    runs = pd.DataFrame({"run_id": list("abcdef"), "N": 1e8, "D": c / 6e8, "C": c, "loss": 3.0})
    p = br.make_pool("levels", pd.concat([synthetic_runs().iloc[:10], runs]), SPEC)
    assert sorted(p.target_ids) == ["e", "f"]  # round(0.1 * 16) = 2: the top level, both of its runs


@pytest.mark.parametrize("method", ["cheapest", "random:0", "random:1", "ladder20", "ladder_target", "isoflop"])
@pytest.mark.parametrize("frac", [0.01, 0.05, 0.10])
def test_fixed_designs_keep_the_protocol(pool: br.Pool, method: str, frac: float) -> None:
    budget = frac * pool.flops
    chosen, _ = br.run_design(pool, method, budget, ev=None)
    assert chosen[: len(pool.initial_ids)] == pool.initial_ids
    assert len(set(chosen)) == len(chosen)
    assert not set(chosen) & set(pool.target_ids)
    if pool.cost(pool.initial_ids) <= budget:
        assert pool.cost(chosen) <= budget * (1 + 1e-9)
    else:
        assert chosen == pool.initial_ids


def test_cheapest_spends_in_order_and_fills_the_budget(pool: br.Pool) -> None:
    budget = 0.05 * pool.flops
    chosen, _ = br.run_design(pool, "cheapest", budget, ev=None)
    extra = pool.candidates().sort_values("C")
    left = budget - pool.cost(chosen)
    unchosen = extra[~extra["run_id"].isin(chosen)]
    assert (unchosen["C"] > left).all()  # nothing affordable was left behind


def test_ladder_takes_the_run_nearest_the_ratio(pool: br.Pool) -> None:
    order = rm.ladder_order(pool.candidates(), 20.0)
    cand = pool.candidates().set_index("run_id")
    ratios = (cand.loc[order, "D"] / cand.loc[order, "N"]).to_numpy()
    assert ((ratios >= 10.0) & (ratios <= 40.0)).all()  # within 2x of the ladder's ratio
    assert list(cand.loc[order, "N"]) == sorted(cand.loc[order, "N"])  # one rung per size, ascending
    at_20 = cand[np.isclose(cand["D"] / cand["N"], 20.0)]
    assert set(at_20.index) <= set(order)  # where a size has a run at 20 tokens/param, that run is the rung
    near = cand[np.abs(np.log(cand["D"] / cand["N"] / 20.0)) <= np.log(2.0)]
    assert len(order) == near["N"].nunique()  # every size with a run within 2x has its rung


@pytest.mark.parametrize("kind", ["vopt", "mspe"])
def test_adaptive_designs_never_see_targets(pool: br.Pool, kind: str) -> None:
    budget = 0.05 * pool.flops
    cand = pool.candidates()
    oracle = rm.Oracle(cand, pool.runs.loc[cand["run_id"], "loss"])
    picks = rm.adaptive_design(kind, cand, pool.targets.drop(columns=["loss"]), pool.initial, oracle, budget)
    assert picks and oracle.revealed == picks
    assert not set(picks) & set(pool.target_ids)
    assert pool.cost(pool.initial_ids + picks) <= budget * (1 + 1e-9)
    with pytest.raises(rm.TargetRevealed):
        oracle.reveal(pool.target_ids[0])


def test_mspe_score_of_one_mode_is_the_linearised_variance_drop() -> None:
    theta = np.array([6.0, 7.5, 0.6, 0.35, 0.36])
    tgt = (np.log([1e10, 2e10]), np.log([2e11, 4e11]))
    cnd = (np.log([1e7, 1e8]), np.log([2e8, 2e9]))
    cov = np.diag([0.5, 0.5, 0.01, 0.001, 0.001])
    got = rm.mspe_scores([rm.Mode(theta, cov, 1.0)], 1e-4, tgt, cnd)
    g, j = rm.law_gradient(theta, *tgt), rm.law_gradient(theta, *cnd)
    for c in range(2):
        cov_after = cov - np.outer(cov @ j[c], cov @ j[c]) / (1e-4 + j[c] @ cov @ j[c])
        want = np.mean([g[t] @ cov @ g[t] - g[t] @ cov_after @ g[t] for t in range(2)])
        assert got[c] == pytest.approx(want, rel=1e-9)


def test_metrics_against_a_hand_computation() -> None:
    obs = np.array([2.0, 2.2, 2.6])
    med = np.array([2.1, 2.2, 2.4])
    lo, hi = np.array([1.9, 2.25, 2.3]), np.array([2.3, 2.4, 2.7])
    m = br.score_targets(med, lo, hi, obs)
    # ss_res = 0.01 + 0 + 0.04; ss_tot: mean 2.2667 -> 0.07111 + 0.00444 + 0.11111 = 0.18667
    assert m["r2"] == pytest.approx(1 - 0.05 / 0.186666667, rel=1e-6)
    assert m["mare"] == pytest.approx((0.05 + 0.0 + 0.2 / 2.6) / 3)
    assert m["cov90"] == pytest.approx(2 / 3)  # 2.2 is below its interval's 2.25


def test_planner_target_falls_back_to_the_compute_weighted_centre(pool: br.Pool) -> None:
    target, how = br.planner_target(pool.targets)
    if how == "centre":
        w = pool.targets["C"] / pool.targets["C"].sum()
        assert target["N"] == pytest.approx(float(np.exp(w @ np.log(pool.targets["N"]))))
        assert pool.targets["N"].min() <= target["N"] <= pool.targets["N"].max()
    else:
        assert list(target.columns) == ["N", "D", "weight"]
        assert target["weight"].sum() == pytest.approx(1.0)


def test_a_ladder_and_random_are_scored_with_a_real_fit(pool: br.Pool, ladder: dict) -> None:
    (random,) = br.run_task({**TASK, "pool": pool, "method": "random:0"})
    for rec in (ladder, random):
        assert "error" not in rec, rec.get("traceback")
        assert rec["flops"] <= 0.10 * pool.flops * (1 + 1e-9)
        assert rec["n_runs"] > len(pool.initial_ids)
        # the known law, 1% noise, 2 decades of compute from the pool's top: a sound fit is within 5%
        assert rec["mare"] < 0.05
        assert 0.0 <= rec["cov90"] <= 1.0 and np.isfinite(rec["r2"])
        assert len(rec["median"]) == len(pool.target_ids)


def test_eval_spec_scores_every_design_with_it_and_keeps_the_initial_design(pool: br.Pool, ladder: dict) -> None:
    other = str(Path(SPEC).with_name("kaplan.toml"))
    default = ladder
    (scored,) = br.run_task({**TASK, "pool": pool, "method": "ladder20", "eval_spec": other})
    assert scored["chosen"] == default["chosen"]  # the design, its initial runs included, does not depend on it
    assert scored["chosen"][: len(pool.initial_ids)] == pool.initial_ids
    ev = br.Evaluator(pool, "laplace", spec=other)
    assert ev.fit(scored["chosen"]).spec.name == "kaplan"
    assert scored["median"] == pytest.approx(ev.score(scored["chosen"])["median"])
    assert scored["median"] != pytest.approx(default["median"], rel=1e-4)


def test_the_default_planner_keeps_the_protocol(pool: br.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(br, "PLANNER_ROUNDS", 1)  # one suggest round keeps the test fast
    budget = 0.10 * pool.flops
    ev = br.Evaluator(pool, "laplace")
    chosen, info = br.run_design(pool, "bayescale", budget, ev)
    assert not info["errors"] and info["rounds"] == 1
    assert chosen[: len(pool.initial_ids)] == pool.initial_ids and len(chosen) > len(pool.initial_ids)
    assert not set(chosen) & set(pool.target_ids)
    assert len(set(chosen)) == len(chosen) and pool.cost(chosen) <= budget * (1 + 1e-9)


def test_replay_cells_merge_a_planner_only_run_with_earlier_competitors(tmp_path: Path) -> None:
    """``replay_cells.py --competitors``: bayescale's records from the new run, every other method's
    from the earlier one, and the issue's per-cell counts on the union."""

    def rec(method: str, r2: float, mare: float, pool: str = "p", budget: float = 0.01) -> dict:
        return {"pool": pool, "budget_frac": budget, "method": method, "r2": r2, "mare": mare}

    old = {
        "meta": {"methods": ["cheapest", "random", "mspe", "bayescale"]},
        "records": [
            rec("cheapest", 0.5, 0.02),
            rec("random:0", 0.1, 0.04),
            rec("random:1", 0.3, 0.02),
            rec("mspe", 0.6, 0.018),
            rec("bayescale", -1.0, 0.09),
        ],
    }
    new = {"meta": {"methods": ["bayescale"]}, "records": [rec("bayescale", 0.49, 0.0195), rec("cheapest", 9.0, 0.0)]}
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    merged = replay_cells.merged(str(tmp_path / "new.json"), str(tmp_path / "old.json"))
    assert merged["meta"]["methods"] == old["meta"]["methods"]
    by_method = {r["method"]: r for r in merged["records"]}
    assert by_method["bayescale"]["r2"] == 0.49 and by_method["cheapest"]["r2"] == 0.5  # nothing else from new
    # best fixed R^2 0.5 (random's mean is 0.2): 0.49 >= 0.48; below MSPE's 0.6; error 1.95% <= 1.1 x 1.8%
    assert replay_cells.cells(merged) == {
        "cells": 1,
        "r2 >= best fixed - 0.02": 1,
        "r2 >= mspe": 0,
        "error within 10% of best": 1,
    }
