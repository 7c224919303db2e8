"""The real-loop benchmark's fixed designs: further runs within the budget, in two orders."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from real_loop import fixed_designs  # noqa: E402


def test_fixed_designs_fill_the_budget_in_their_own_order() -> None:
    seed = pd.DataFrame({"run_id": ["s"], "N": [1e3], "D": [1e4]})
    # 6ND and tokens per parameter: a 6e12 at 100, b 1.2e12 at 20, c 6e9 at 10
    rest = pd.DataFrame({"run_id": ["a", "b", "c"], "N": [1e5, 1e5, 1e4], "D": [1e7, 2e6, 1e5]})
    ladder, cheapest = fixed_designs(seed, rest, ratio=100.0, budget=2e12).items()
    # nearest the target's 100 tokens per parameter first: a would overspend, so b, then c
    assert ladder[0] == "ladder at the target's ratio (+2 runs, 1.2e+12)"
    assert list(ladder[1]["run_id"]) == ["s", "b", "c"]
    assert cheapest[0] == "cheapest-first (+2 runs, 1.2e+12)"
    assert list(cheapest[1]["run_id"]) == ["s", "c", "b"]
