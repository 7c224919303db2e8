#!/usr/bin/env python
"""How long ``bayescale.suggest`` takes once a process has planned before (warm), per kind of target.

On the bundled ``data/demo_runs.csv`` and a Laplace fit of ``models/chinchilla.toml`` (what notebook 04 and
the README's ``bayescale suggest`` plan on), with the budget 1e21 FLOPs and k = 4: a target point, a
compute-optimal target, an ``nopt:`` target, a threshold (decision) target and a box region. Each target
is planned once to compile, then timed ``--repeats`` times (the median is printed), with the full
evaluations of the allocation's per-draw variance counted (``Linearised.per_draw``; the line search's small
solves since 2026-12-07 are not). ``--json PATH`` also stores each suggestion's batch table, every column
(to compare two versions' plans).

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_suggest.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import bayescale as bs
from bayescale.design import allocation

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {
    "point N=7e9,D=1.4e11": "N=7e9,D=1.4e11",
    "compute-optimal C=1e22": "C=1e22",
    "nopt:C=1e22": "nopt:C=1e22",
    "threshold 2.1 at the point": "N=7e9,D=1.4e11,threshold=2.1",
    "box N 3.5e9-1.4e10, 20-40 tokens/param": {"N": (3.5e9, 1.4e10), "tokens_per_param": (20, 40), "n": 2},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    calls = [0]
    real = allocation.Linearised.per_draw

    def counted(self, *a, **k):
        calls[0] += 1
        return real(self, *a, **k)

    allocation.Linearised.per_draw = counted
    runs = bs.load_runs(ROOT / "data" / "demo_runs.csv")
    fit = bs.fit(ROOT / "models" / "chinchilla.toml", runs, seed=0, method="laplace")
    print(f"bayescale {bs.__version__}, numpy {np.__version__}, {platform.platform()}, {platform.processor() or ''}")
    print(f"{'target':42s} {'warm s':>7s} {'full variance evaluations':>26s}")
    plans = {}
    for label, target in TARGETS.items():
        bs.suggest(fit, target, budget_flops=1e21, k=4)  # compiles
        times = []
        for _ in range(args.repeats):
            calls[0] = 0
            t0 = time.perf_counter()
            s = bs.suggest(fit, target, budget_flops=1e21, k=4)
            times.append(time.perf_counter() - t0)
        plans[label] = s.table.to_dict("list")
        print(f"{label:42s} {statistics.median(times):7.2f} {calls[0]:26d}")
    if args.json:
        args.json.write_text(json.dumps(plans, indent=1))


if __name__ == "__main__":
    main()
