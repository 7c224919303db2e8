"""The cost model of suggest and loop prices a cooldown branch off a WSD trunk already in the runs
table at its cooldown, not at 6 N D (hand-checked prices)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_active import RUNS, two_factor_draws  # the active-selection tests' table and draws

import bayescale as bs
from bayescale.active import Target, score, suggest
from bayescale.design.targets import branch_flops, default_candidates, flops_cost, runs_cost, runs_flops, trunks_of
from bayescale.testing import fit_from_draws

TARGET = Target("loss", N=1e10, D=1e16)


def _with_trunk(runs: pd.DataFrame) -> pd.DataFrame:
    """RUNS with its two N=1e7 runs made branches (D = 1e8, 4e8) of one trunk, cooling down 20%."""
    out = runs.copy()
    branch = out["N"] == 1e7
    out["trunk_id"] = np.where(branch, "t1", "")
    out["C_branch"] = np.where(branch, 0.2 * 6.0 * out["N"] * out["D"], np.nan)
    return out


def _fit(runs: pd.DataFrame):
    return fit_from_draws("chinchilla_normal", runs, two_factor_draws(S=1000, seed=0))


#: Candidates: two branches leaving the trunk where it was trained (up to 0.8 * 4e8 = 3.2e8 tokens),
#: one leaving it past its end, one at another N.
CANDS = pd.DataFrame({"N": [1e7, 1e7, 1e7, 2e7], "D": [2e8, 4e8, 8e8, 2e8]})
#: By hand: a branch costs 0.2 * 6 N D; past the trunk (0.8 * 8e8 > 3.2e8) or off it, 6 N D.
PRICES = [0.2 * 6 * 1e7 * 2e8, 0.2 * 6 * 1e7 * 4e8, 6 * 1e7 * 8e8, 6 * 2e7 * 2e8]


def test_trunks_and_branch_prices_by_hand():
    runs = _with_trunk(RUNS)
    t = trunks_of(runs)
    assert list(t["trunk_id"]) == ["t1"] and t["N"].iloc[0] == 1e7
    assert t["trained"].iloc[0] == pytest.approx(3.2e8) and t["cooldown"].iloc[0] == pytest.approx(0.2)
    assert branch_flops(CANDS, runs) == pytest.approx(PRICES)
    # without trunk columns, or with them empty, the price is 6 N D as before
    assert branch_flops(CANDS, RUNS) == pytest.approx(flops_cost(CANDS))
    assert len(trunks_of(RUNS.assign(trunk_id="", C_branch=np.nan))) == 0


def test_new_runs_pay_the_trunk_once_and_each_cooldown():
    runs = _with_trunk(RUNS)
    new = runs[runs["N"] == 1e7]
    # a new trunk and both branches: trunk 6 N 3.2e8 once, cooldowns 0.2 * 6 N D each
    paid = runs_flops(new, runs.iloc[0:0])
    assert paid.sum() == pytest.approx(6 * 1e7 * 3.2e8 + 0.2 * 6 * 1e7 * (1e8 + 4e8))
    assert paid.sum() == pytest.approx(6 * 1e7 * 4e8 + 0.2 * 6 * 1e7 * 1e8)  # = C of the longest + one cooldown
    # the long branch after the short one: its cooldown and the trunk from 0.8e8 to 3.2e8
    assert runs_cost(new.iloc[1:], new.iloc[:1], None) == pytest.approx(0.2 * 6e7 * 4e8 + 6e7 * (3.2e8 - 0.8e8))
    plain = runs[runs["N"] == 3e7]
    assert runs_cost(plain, runs.iloc[0:0], None) == pytest.approx(flops_cost(plain).sum())
    assert runs_cost(new, runs.iloc[0:0], lambda f: np.ones(len(f))) == 2.0  # a user's cost is kept


def test_score_and_suggest_price_branches_off_the_trunk():
    fit_t, fit_plain = _fit(_with_trunk(RUNS)), _fit(RUNS)
    s = score(fit_t, CANDS, TARGET, discrepancy=0.0, refine=False)
    assert s["cost"].to_numpy() == pytest.approx(PRICES)
    assert score(fit_plain, CANDS, TARGET, discrepancy=0.0, refine=False)["cost"].to_numpy() == pytest.approx(
        flops_cost(CANDS)
    )
    # a budget that buys the branch at its cooldown price but not at 6 N D
    one = CANDS.iloc[[0]]
    sug = suggest(fit_t, TARGET, budget_flops=6e15, k=1, candidates=one, batch_fraction=1.0, max_replicates=1)
    assert len(sug.plan) == 1 and sug.plan["cost"].iloc[0] == pytest.approx(PRICES[0])
    assert any("priced at its cooldown" in n and "N = 1e+07" in n for n in sug.notes)
    sug = suggest(fit_plain, TARGET, budget_flops=6e15, k=1, candidates=one, batch_fraction=1.0, max_replicates=1)
    assert len(sug.plan) == 0 and not any("cooldown" in n for n in sug.notes)
    # the default pool adds the trunk's N (only when the table has a trunk)
    pool_t, pool = default_candidates(fit_t), default_candidates(fit_plain)
    assert (pool_t["N"] == 1e7).sum() == 6 and not (pool["N"] == 1e7).any()
    assert len(pool_t) == len(pool) + 6


def test_default_pool_adds_each_trunk_size():
    two = _with_trunk(RUNS)
    other = two["N"] == 3e7  # a second trunk: candidate_grid would read two sizes as a range
    two.loc[other, "trunk_id"] = "t2"
    two.loc[other, "C_branch"] = 0.2 * 6.0 * two.loc[other, "N"] * two.loc[other, "D"]
    pool_2, pool = default_candidates(_fit(two)), default_candidates(_fit(RUNS))
    assert len(pool_2) == len(pool) + 12
    assert (pool_2["N"] == 1e7).sum() == 6 and (pool_2["N"] == 3e7).sum() == 6


def test_a_saved_fit_keeps_the_trunk_columns_and_their_prices(tmp_path):
    """`bayescale suggest fit.nc` reads the runs from the saved fit: its trunk columns (and every other
    column of the table, text or numbers) must come back, or branches are priced at 6 N D."""
    runs = _with_trunk(RUNS).assign(notes="pilot", seed=np.arange(len(RUNS)))
    path = _fit(runs).save(tmp_path / "fit.nc")
    back = bs.load_fit(path).runs
    assert list(back["trunk_id"].fillna("")) == list(runs["trunk_id"])  # blank cells come back missing
    np.testing.assert_array_equal(back["C_branch"], runs["C_branch"])
    assert (back["notes"] == "pilot").all() and list(back["seed"]) == list(range(len(RUNS)))
    assert branch_flops(CANDS, back) == pytest.approx(PRICES)


def test_a_branch_that_trained_trunk_steps_again_does_not_raise_the_cooldown_share():
    """A branch trained later counts the trunk steps it replayed in C_branch; the trunk's cooldown share is
    its own branches' (the least share), not a median the later branches move."""
    runs = _with_trunk(RUNS)
    later = runs[runs["N"] == 1e7].assign(run_id=["late1", "late2"], D=[1.5e8, 3e8])
    later["C_branch"] = 0.5 * 6.0 * later["N"] * later["D"]  # cooldown 0.2 + replayed trunk steps 0.3
    both = pd.concat([runs, later], ignore_index=True)
    assert trunks_of(both)["cooldown"].iloc[0] == pytest.approx(0.2)
