"""Screen: would a noise scale that grows towards the smallest runs extrapolate better?

Real sweeps' small runs scatter more around a fitted law than their large runs (seed noise, plateaus,
untuned hyperparameters), while every bayescale family has one noise scale for all runs. Before building a
heteroscedastic family, this screens the idea with plain maximum likelihood on the issue-15 splits
(``bench_extrapolation.split_by_compute``: leave-largest-out 80/20 and the hard 50/10 split): the Chinchilla
law in log loss with (a) one noise scale and (b) ``log sigma_i = s0 + k (log10 C_max - log10 C_i)``, ``k`` in
[-1, 2], each from the Huber fit and the 4 best points of Hoffmann's grid; the Epoch-style Huber fit beside
them. Printed: the median |relative error| on each split's held-out runs, then the summary.

    PYTHONPATH=. python benchmarks/hetero_noise_screen.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.optimize

sys.path.insert(0, str(Path(__file__).resolve().parent))
import extrapolation_data  # noqa: E402
from baselines import huber_fit, log_law, screened_starts  # noqa: E402
from bench_extrapolation import split_by_compute  # noqa: E402

SPLITS = {"llo": (0.8, 0.2), "hard": (0.5, 0.1)}


def neg_log_lik(p: np.ndarray, logs: tuple[np.ndarray, ...], x: np.ndarray, hetero: bool) -> float:
    logN, logD, y = logs
    log_sd = p[5] + (p[6] * (x.max() - x) if hetero else 0.0)
    r = y - log_law(p[:5], logN, logD)
    v = float(np.sum(0.5 * (r / np.exp(log_sd)) ** 2 + log_sd))
    return v if math.isfinite(v) else 1e30


def ml_fit(logs: tuple[np.ndarray, ...], x: np.ndarray, hetero: bool, starts: np.ndarray) -> np.ndarray:
    best = None
    bounds = [(None, None)] * 5 + [(-12.0, 2.0)] + ([(-1.0, 2.0)] if hetero else [])
    for theta in starts:
        sd0 = math.log(max(float(np.std(logs[2] - log_law(theta, logs[0], logs[1]))), 1e-3))
        p0 = np.r_[theta, sd0, 0.0] if hetero else np.r_[theta, sd0]
        res = scipy.optimize.minimize(neg_log_lik, p0, args=(logs, x, hetero), method="L-BFGS-B", bounds=bounds)
        if best is None or res.fun < best.fun:
            best = res
    return best.x


def split_row(name: str, runs: pd.DataFrame, split: str) -> dict[str, float | str]:
    train_idx, test_idx = split_by_compute(6 * runs["N"] * runs["D"], *SPLITS[split])
    train, test = runs.iloc[train_idx], runs.iloc[test_idx]
    logs = tuple(np.log(train[c].to_numpy(float)) for c in ("N", "D", "loss"))
    x = np.log10(6 * train["N"].to_numpy(float) * train["D"].to_numpy(float))
    huber = huber_fit(train["N"], train["D"], train["loss"])
    starts = np.vstack([huber.theta[None], screened_starts(*logs, k=4)])
    one, grows = ml_fit(logs, x, False, starts), ml_fit(logs, x, True, starts)
    tN, tD, loss = (test[c].to_numpy(float) for c in ("N", "D", "loss"))

    def err(theta: np.ndarray) -> float:
        return float(np.median(np.abs(np.exp(log_law(theta, np.log(tN), np.log(tD))) / loss - 1)))

    return {
        "row": f"{name}/{split}",
        "huber": err(huber.theta),
        "one": err(one[:5]),
        "grows": err(grows[:5]),
        "k": grows[6],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    for name, ds in extrapolation_data.load_all(args.data).items():
        for split in SPLITS:
            r = split_row(name, extrapolation_data.compute_runs(ds), split)
            rows.append(r)
            print(
                f"{r['row']:55s} huber {100 * r['huber']:6.2f}%  one sd {100 * r['one']:6.2f}%  "
                f"growing sd {100 * r['grows']:6.2f}%  k {r['k']:+.2f}",
                flush=True,
            )
    t = pd.DataFrame(rows)
    print(f"rows: {len(t)}; growing sd more accurate than one sd in {int((t.grows < t.one).sum())}")
    print(
        f"median ratio growing/one {float((t.grows / t.one).median()):.3f}, one/huber {float((t.one / t.huber).median()):.3f}"
    )
    print(
        f"mean error: huber {100 * t.huber.mean():.2f}%, one sd {100 * t.one.mean():.2f}%, growing sd {100 * t.grows.mean():.2f}%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
