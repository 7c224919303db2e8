#!/usr/bin/env python
"""The MAP search of one fit: L-BFGS-B alone (bayescale before 2026-12-05) against L-BFGS-B capped at
1000 iterations and finished by Newton (``_optimise.search``), side by side in one process.

Every Laplace fit, and the whitening of every NUTS fit, starts from this search. For each case the
search is run both ways on the same runs and seeds (warm: each case is run once first, untimed, so
both ways find their functions compiled) and the table records, per way, the potential at the mode
found (the lower the better), the largest gradient component there (0 at a mode), the number of
distinct modes reported and the seconds of the search (8 starts, Hessians and mode clustering
included). Cases: each N-D law of ``models/recommended.toml`` on Epoch's Chinchilla runs (240),
and the joint fits of ``bs.compare(..., spec="recommended", method="laplace")`` on two synthetic
recipes (the tests' table: 18 runs each, one twice as compute-efficient).

Usage::

    BAYESCALE_DATA=../shared/data PYTHONPATH=. .venv/bin/python benchmarks/bench_map.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "tests"))

from bench_fit import write_records  # noqa: E402
from test_compare import TARGET, TRUTH, two_recipes, with_multiplier  # noqa: E402

import bayescale as bs  # noqa: E402
import bayescale.inference as inference  # noqa: E402
from bayescale import _engine, _optimise, datasets  # noqa: E402

LAWS = ("chinchilla", "kaplan", "farseer", "chinchilla_bending")
NEWTON = _engine.search


def lbfgs_only(fun, hess, start):
    """The search as it was: L-BFGS-B to its own stopping rule, up to 5000 iterations, every end
    point kept for the mode clustering (``success``: the search now drops ends that reach no mode)."""
    res = _optimise.minimise(fun, start, maxiter=5000, gtol=1e-9)
    res.success = True
    return res


def recorder(records: list, way: str):
    """``_engine.laplace`` wrapped to time it and read the gradient at the mode it returns."""

    def laplace(post, logx, y, rng, dtype, n_starts=8):
        t = time.perf_counter()
        lap = _engine.laplace(post, logx, y, rng, dtype, n_starts)
        seconds = time.perf_counter() - t
        px, py, mask, _ = _engine.padded(logx, y, dtype)
        _, g = post.value_and_grad(jnp.asarray(lap.mode, dtype=dtype), px, py, mask)
        records.append(
            {
                "way": way,
                "spec": post.spec.name,
                "potential": -lap.log_density,
                "max_grad": float(np.abs(np.asarray(g)).max()),
                "modes": len(lap.modes),
                "seconds": seconds,
            }
        )
        return lap

    return laplace


def run_case(label: str, job, records: list) -> None:
    """``job()`` once untimed, then with each search; its Laplace calls recorded under ``label``."""
    job()
    for way, search in (("lbfgs", lbfgs_only), ("lbfgs+newton", NEWTON)):
        _engine.search = search
        mine: list = []
        inference.laplace = recorder(mine, way)
        try:
            job()
        finally:
            inference.laplace = _engine.laplace
            _engine.search = NEWTON
        for i, r in enumerate(mine):
            records.append(dict(r, case=label, call=i))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    ap.add_argument("--json", type=Path, help="write the records here")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    warnings.simplefilter("ignore")
    jax.config.update("jax_enable_x64", True)
    chinchilla = datasets.load_chinchilla()
    recipes = two_recipes(TRUTH, with_multiplier(TRUTH, 2.0))
    records: list = []
    t0 = time.time()
    for seed in seeds:
        for law in LAWS:
            spec = str(REPO / "models" / f"{law}.toml")
            run_case(
                f"chinchilla/{law}/s{seed}", lambda: bs.fit(spec, chinchilla, method="laplace", seed=seed), records
            )
        run_case(
            f"two recipes/s{seed}",
            lambda: bs.compare(recipes, at={"C": TARGET}, method="laplace", spec="recommended", seed=seed),
            records,
        )
    write_records(args.json, t0, records)
    print(render(records))


def render(records: list) -> str:
    """One row per case and Laplace call: both ways side by side."""
    by, seen = {}, {}
    for r in records:  # the n-th fit of a spec in a case, each way
        n = seen.setdefault((r["case"], r["spec"], r["way"]), [0])
        by.setdefault((r["case"], r["spec"], n[0]), {})[r["way"]] = r
        n[0] += 1
    lines = [
        "| case | spec | potential: L-BFGS / + Newton | max gradient: L-BFGS / + Newton | modes | s: L-BFGS / + Newton |",
        "|---|---|---|---|---|---|",
    ]
    for (case, _, _), w in by.items():
        if len(w) < 2:
            continue
        a, b = w["lbfgs"], w["lbfgs+newton"]
        lines.append(
            f"| {case} | {a['spec']} | {a['potential']:.4f} / {b['potential']:.4f} | {a['max_grad']:.1e} / "
            f"{b['max_grad']:.1e} | {a['modes']} / {b['modes']} | {a['seconds']:.2f} / {b['seconds']:.2f} |"
        )
    tot = {way: sum(r["seconds"] for r in records if r["way"] == way) for way in ("lbfgs", "lbfgs+newton")}
    lines.append(f"\nTotal search seconds: L-BFGS {tot['lbfgs']:.1f}, + Newton {tot['lbfgs+newton']:.1f}.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
