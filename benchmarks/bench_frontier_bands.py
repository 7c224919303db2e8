"""The compute-optimal loss band against `predict`'s band at the same point, on Epoch's Chinchilla runs.

`bayescale optimal` and the report's frontier once gave the law's loss at each draw's optimum without the
extrapolation drift: far narrower beyond the runs than the band of a run placed there. This prints, at
10x-10^4x the largest run's compute, the frontier's 90% band (`frontier`, now with the drift) and the
law-only band (`law_loss_opt`, the old one) beside `predict` at the median optimal allocation; and, for the
`recommended` law average, the optimal N of the leading law alone beside the average's (each law's own
optimum, mixed by weight).

    BAYESCALE_DATA=../shared/data python benchmarks/bench_frontier_bands.py [--method nuts]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCALES = (10, 100, 1000, 10000)


def _band(x: np.ndarray) -> str:
    lo, med, hi = np.quantile(np.asarray(x).reshape(-1), [0.05, 0.5, 0.95])
    return f"{med:.3f} [{lo:.3f}, {hi:.3f}] ({100 * (hi - lo) / med:.1f}%)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", default="nuts")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import bayescale as bs
    from bayescale.datasets import load_chinchilla

    warnings.simplefilter("ignore")
    runs = load_chinchilla()
    cmax = float(runs["C"].max())
    budgets = [k * cmax for k in SCALES]
    print(
        f"{platform.platform()}, Python {platform.python_version()}, bayescale {bs.__version__}; method {args.method}"
    )
    for spec in ("chinchilla", "recommended"):
        t0 = time.perf_counter()
        fit = bs.fit(spec, runs, seed=args.seed, method=args.method)
        opt = bs.compute_optimal(fit, budgets)
        print(f"\n{spec} ({time.perf_counter() - t0:.0f} s)")
        print("| x largest run | optimal loss, 90% (now) | the law alone (before) | predict at the median optimum |")
        print("| --- | --- | --- | --- |")
        for i, k in enumerate(SCALES):
            n = float(np.median(opt["N_opt"].isel(budget=i)))
            at = {"N": n, "D": budgets[i] / (6 * n)}
            row = [_band(opt[v].isel(budget=i).values) for v in ("loss_opt", "law_loss_opt")]
            print(f"| {k}x | {row[0]} | {row[1]} | {_band(fit.predict(at).values)} |")
        if hasattr(fit, "members"):
            lead = next(iter(fit.members.values()))
            lead_opt = bs.compute_optimal(lead, budgets)
            print(
                "\n| x largest run | optimal N, leading law alone (before) | the average's (now) |\n| --- | --- | --- |"
            )
            for i, k in enumerate(SCALES):
                q = [np.quantile(o["N_opt"].isel(budget=i).values, [0.05, 0.5, 0.95]) for o in (lead_opt, opt)]
                print(f"| {k}x | " + " | ".join(f"{m:.3g} [{lo:.3g}, {hi:.3g}]" for lo, m, hi in q) + " |")


if __name__ == "__main__":
    main()
