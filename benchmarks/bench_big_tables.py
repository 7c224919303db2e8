"""How long a Laplace fit of a big runs table takes, and how much of it the misfit check's neighbour test is.

A new user's 3000-run table took 127 s to fit with ``method="laplace"``, 96 s of it in the misfit check's
neighbour test (dense (n, n) products over 2000 simulated null draws and every posterior draw). Synthetic
Chinchilla-law runs (1% noise) on a grid of N and D; each size fitted once after a warm-up fit of the
smallest table (so compilation is not counted), then the misfit check alone timed on that fit.

    PYTHONPATH=. python benchmarks/bench_big_tables.py --sizes 300,1000,3000
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale.misfit import misfit


def table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    N = 10 ** rng.uniform(7, 9.5, n)
    D = N * 10 ** rng.uniform(0.5, 2.5, n)
    loss = 1.8 + 400 / N**0.34 + 1200 / D**0.28
    return pd.DataFrame({"N": N, "D": D, "loss": loss * np.exp(0.01 * rng.standard_normal(n))})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="300,1000,3000")
    sizes = [int(s) for s in ap.parse_args().sizes.split(",")]
    spec = bs.load_spec("chinchilla")
    warnings.simplefilter("ignore")
    bs.fit(spec, table(sizes[0], seed=1), method="laplace")  # compile once
    print("| runs | Laplace fit (s) | misfit check alone (s) |\n| --- | --- | --- |")
    for n in sizes:
        runs = table(n)
        t0 = time.perf_counter()
        fit = bs.fit(spec, runs, method="laplace")
        t1 = time.perf_counter()
        misfit(fit)
        t2 = time.perf_counter()
        print(f"| {n} | {t1 - t0:.1f} | {t2 - t1:.1f} |", flush=True)


if __name__ == "__main__":
    main()
