#!/usr/bin/env python
"""NUTS with a stuck chain: the sampler as before (no re-stepping) against the default, which gives a chain
that barely moves after warmup a healthy chain's step size (``_engine._restepped``), side by side in one process.

The cases are the fits of the issue-15 table (``bench_extrapolation.py``) whose r-hat stayed above 1.01
with no modes named on 2026-12-05: Chinchilla's law on the Step Law grid's leave-largest-out split (14
runs), the bending law on Epoch's Chinchilla runs' hard split (120 runs) and on Porian et al.'s
owt2/base/short/kaplan/standard/val leave-largest-out split (98 runs). Each case is fitted with NUTS at
each seed, each way (``before``: ``MAX_RESTEPS = 0``; ``default``; ``longer``, opt-in: before, with four
times the warmup and draws, which is what the old warning advised), and the table records the largest
r-hat, the divergences, the batches of draws, the chains re-stepped, the lowest chain's mean
acceptance, and the seconds of the fit (warm: each case is fitted once each way first, untimed).

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_restep.py --data ../shared/data --seeds 0,1,2 --json X
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import extrapolation_data as ed  # noqa: E402
from bench_extrapolation import SPLITS, split_by_compute  # noqa: E402
from bench_fit import write_records  # noqa: E402

import bayescale as bs  # noqa: E402
from bayescale import _engine  # noqa: E402

CASES = (
    ("steplaw", "llo", "chinchilla"),
    ("chinchilla", "hard", "chinchilla_bending"),
    ("porian:owt2/base/short/kaplan/standard/val", "llo", "chinchilla_bending"),
)
#: Per way: rounds of re-stepping allowed, and the multiple of the spec's warmup and draws.
WAYS = {"before": (0, 1), "default": (_engine.MAX_RESTEPS, 1), "longer": (0, 4)}


def training_runs(data: dict, name: str, split: str):
    runs = ed.compute_runs(data[name])
    train, _ = split_by_compute(runs["C"].to_numpy(float), *SPLITS[split])
    table = runs.iloc[train].reset_index(drop=True)
    return table[[c for c in ("N", "D", "loss", "U") if c in table.columns]]


def one_fit(spec, table, seed: int, way: str) -> dict:
    resteps, longer = WAYS[way]
    _engine.MAX_RESTEPS = resteps
    s = spec.sampler
    try:
        t = time.perf_counter()
        fit = bs.fit(spec, table, seed=seed, warmup=s.warmup * longer, draws=s.draws * longer)
        seconds = time.perf_counter() - t
    finally:
        _engine.MAX_RESTEPS = WAYS["default"][0]
    d = fit.diagnostics()
    return {
        "way": way,
        "seed": seed,
        "max_r_hat": d["max_r_hat"],
        "divergences": d["divergences"],
        "batches": d["nuts_batches"],
        "restepped": d["nuts_restepped"],
        "min_acceptance": float(np.min(d["acceptance"])),
        "modes": len(d["modes"]),
        "seconds": seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="public data folder")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    ap.add_argument("--ways", default="before,default", help=f"comma-separated, of {sorted(WAYS)}")
    ap.add_argument("--cases", default=",".join(str(i) for i in range(len(CASES))), help="indices into CASES")
    ap.add_argument("--json", type=Path, help="write the records here")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    ways = args.ways.split(",")
    warnings.simplefilter("ignore")
    data = ed.load_all(args.data)
    records: list = []
    t0 = time.time()
    for name, split, law in [CASES[int(i)] for i in args.cases.split(",")]:
        spec = bs.load_spec(REPO / "models" / f"{law}.toml")
        table = training_runs(data, name, split)
        for way in ways:  # compile each way's sampler once (the longer way's shapes differ), untimed
            one_fit(spec, table, 99, way)
        for seed in seeds:
            for way in ways:
                record = dict(one_fit(spec, table, seed, way), case=f"{name} {split} / {law}", runs=len(table))
                records.append(record)
                print(json.dumps(record), flush=True)
    write_records(args.json, t0, records)
    print(render(records, ways))


def render(records: list, ways: list[str]) -> str:
    """One row per case and seed, the ways side by side."""
    by: dict = {}
    for r in records:
        by.setdefault((r["case"], r["runs"], r["seed"]), {})[r["way"]] = r
    cols = " / ".join(ways)
    lines = [
        f"| case (runs) | seed | max r-hat: {cols} | divergences | batches | lowest chain's acceptance | "
        f"chains re-stepped (default) | s: {cols} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (case, runs, seed), w in by.items():
        row = [w[k] for k in ways if k in w]

        def each(key: str, fmt: str, row: list = row) -> str:
            return " / ".join(format(r[key], fmt) for r in row)

        restepped = w["default"]["restepped"] if "default" in w else "-"
        lines.append(
            f"| {case} ({runs}) | {seed} | {each('max_r_hat', '.3f')} | {each('divergences', 'd')} | "
            f"{each('batches', 'd')} | {each('min_acceptance', '.2f')} | {restepped} | {each('seconds', '.0f')} |"
        )
    for way in ways:
        mine = [r for r in records if r["way"] == way]
        over = sum(r["max_r_hat"] > 1.01 for r in mine)
        lines.append(
            f"\n{way}: {over} of {len(mine)} fits with r-hat over 1.01, {sum(r['seconds'] for r in mine):.0f} s"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
