#!/usr/bin/env python
"""Issue 16's per-cell targets from a ``bench_replay.py --json`` file: in how many pool x budget cells
(Step Law left out: every method there is the initial design) the default planner's target-region
R^2 is at least the best fixed design's minus 0.02, at least the MSPE-style method's, and its mean
|relative error| within 10% of the best competitor's (``random``: mean over seeds).

Usage::

    python benchmarks/replay_cells.py /tmp/replay_after.json
    # a run of bayescale's planners alone (``--methods bayescale``) against an earlier run's
    # competitors, which do not use the planner; --merged writes the union for --render-json
    python benchmarks/replay_cells.py /tmp/new.json --competitors /tmp/replay_after.json --merged /tmp/m.json
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np

FIXED = ("cheapest", "ladder20", "ladder_target", "isoflop", "random")


def merged(path: str, competitors: str) -> dict:
    """``path``'s run with the records of every non-bayescale method taken from ``competitors``."""
    new, old = json.loads(Path(path).read_text()), json.loads(Path(competitors).read_text())
    mine = [r for r in new["records"] if r["method"].startswith("bayescale")]
    theirs = [r for r in old["records"] if not r["method"].startswith("bayescale")]
    meta = dict(new["meta"], methods=old["meta"]["methods"])
    return {"meta": meta, "records": theirs + mine, "footer": new.get("footer", "")}


def cells(path: str | dict) -> dict[str, int]:
    recs = json.loads(Path(path).read_text()) if isinstance(path, str) else path
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


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="+", help="bench_replay.py --json files")
    ap.add_argument("--competitors", default=None, help="take the non-bayescale methods from this run")
    ap.add_argument("--merged", type=Path, default=None, help="write the merged run here (with --competitors)")
    args = ap.parse_args(argv)
    for p in args.json:
        res = merged(p, args.competitors) if args.competitors else p
        if args.merged and args.competitors:
            args.merged.write_text(json.dumps(res, indent=1, default=float))
        print(p, cells(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
