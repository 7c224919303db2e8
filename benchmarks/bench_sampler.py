#!/usr/bin/env python
"""Sampler health on Epoch's Chinchilla runs: reference-scale coefficients against NumPyro's coordinates.

NUTS in bayescale samples each declared power-law coefficient at the runs' reference scale
(``Law.power_terms``: ``log A - alpha * mean(log N)`` instead of ``log A``). This runs the bundled
Chinchilla spec (4 chains x 1000 warmup + 1000 draws) over ``--seeds`` seeds both ways in one
process, the second by clearing the law's declared terms (what the sampler did before), and prints
a markdown table: divergences, min bulk / tail ESS, max r-hat and warm seconds per fit.

Usage::

    BAYESCALE_DATA=../shared/data .venv/bin/python benchmarks/bench_sampler.py --seeds 16
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings

import jax
import numpyro

import bayescale as bs


def run(label: str, seeds: range) -> list[dict]:
    runs = bs.datasets.load_chinchilla()
    spec = bs.load_spec("chinchilla")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        bs.fit(spec, runs, seed=10_000)  # compile outside the timings
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bs.ConvergenceWarning)
            fit = bs.fit(spec, runs, seed=seed)
        d = fit.diagnostics()
        rows.append(
            {
                "label": label,
                "seed": seed,
                "seconds": time.perf_counter() - t0,
                "divergences": d["divergences"],
                "ess_bulk": d["min_ess_bulk"],
                "ess_tail": d["min_ess_tail"],
                "r_hat": d["max_r_hat"],
                "clean": not d["problems"],
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    out = [
        "| coordinates | fits | clean fits | fits with divergences | divergences (total, max) | min bulk ESS (median, worst) | min tail ESS (median, worst) | max r-hat (worst) | warm s per fit (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label in dict.fromkeys(r["label"] for r in rows):
        rs = [r for r in rows if r["label"] == label]
        div = [r["divergences"] for r in rs]
        out.append(
            f"| {label} | {len(rs)} | {sum(r['clean'] for r in rs)} | {sum(d > 0 for d in div)} | {sum(div)}, {max(div)} | "
            f"{statistics.median(r['ess_bulk'] for r in rs):.0f}, {min(r['ess_bulk'] for r in rs):.0f} | "
            f"{statistics.median(r['ess_tail'] for r in rs):.0f}, {min(r['ess_tail'] for r in rs):.0f} | "
            f"{max(r['r_hat'] for r in rs):.4f} | {statistics.median(r['seconds'] for r in rs):.2f} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=16)
    args = ap.parse_args()
    seeds = range(args.seeds)
    rows = run("reference scale (default)", seeds)
    law = bs.get_law("chinchilla")
    declared = law.power_terms
    object.__setattr__(law, "power_terms", {})  # NumPyro's own coordinates, as before the change
    try:
        bs.inference._POSTERIORS.clear()
        rows += run("NumPyro's unconstrained (log A, log alpha)", seeds)
    finally:
        object.__setattr__(law, "power_terms", declared)
    print(
        f"Python {platform.python_version()}, jax {jax.__version__}, numpyro {numpyro.__version__}, {platform.machine()}"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
