#!/usr/bin/env python
"""Issue 16's per-cell targets from a ``bench_replay.py --json`` file: in how many pool x budget cells
(Step Law left out: every method there is the initial design) the default planner's target-region
R^2 is at least the best fixed design's minus 0.02, at least the MSPE-style method's, and its mean
|relative error| within 10% of the best competitor's (``random``: mean over seeds).

Usage::

    python benchmarks/replay_cells.py /tmp/replay_after.json
"""

from __future__ import annotations

import collections
import json
import sys

import numpy as np

FIXED = ("cheapest", "ladder20", "ladder_target", "isoflop", "random")


def cells(path: str) -> dict[str, int]:
    recs = json.load(open(path))
    recs = recs["records"] if isinstance(recs, dict) else recs
    rows: dict = collections.defaultdict(dict)
    for r in recs:
        if "error" in r:
            continue
        key, m = (r["pool"], r["budget_frac"]), r["method"]
        if m.startswith("random:"):
            rows[key].setdefault("random", []).append(r)
        else:
            rows[key][m] = r
    out = collections.Counter()
    for key, ms in rows.items():
        if "bayescale" not in ms or key[0] == "steplaw":
            continue

        def val(m: str, field: str, ms: dict = ms) -> float:
            return float(np.mean([y[field] for y in ms[m]]) if isinstance(ms[m], list) else ms[m][field])

        b = ms["bayescale"]
        out["cells"] += 1
        out["r2 >= best fixed - 0.02"] += b["r2"] >= max(val(m, "r2") for m in FIXED if m in ms) - 0.02
        out["r2 >= mspe"] += b["r2"] >= val("mspe", "r2")
        out["error within 10% of best"] += b["mare"] <= 1.1 * min(
            val(m, "mare") for m in ms if not m.startswith("bayescale")
        )
    return dict(out)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(p, cells(p))
