"""Misfit diagnostics on public sweeps: what fires where, with the bundled chinchilla spec.

    BAYESCALE_DATA=../shared/data python benchmarks/bench_misfit.py [--method psis] [--quick]

Each dataset is fitted twice: on all its runs, and on the runs below the top 20% of compute (the
training set of leave-largest-out, so a row can be read against the extrapolation benchmark:
did a fit that misses its held-out runs warn?). Thresholds are not tuned here: they were chosen
for the false-alarm/power trade-off on synthetic data (tests/test_misfit.py, ``--synthetic``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

TRUTH = {"E": 1.8, "A": 480, "B": 2000, "alpha": 0.35, "beta": 0.36}
GRID15 = dict(N=(1e7, 3e7, 1e8, 3e8, 1e9), tokens_per_param=(5, 20, 80))
GRID40 = dict(N=tuple(np.geomspace(1e7, 3e9, 8)), tokens_per_param=(5, 10, 20, 40, 80))


def public(data: Path, quick: bool) -> dict[str, pd.DataFrame]:
    from bench_extrapolation import load_datasets

    out = {k: v["runs"] for k, v in load_datasets(data, quick=quick).items()}
    from bayescale.datasets import load_datablations

    db = load_datablations()
    out["datablations (all, repeated data)"] = db[["run_id", "N", "D", "C", "loss"]]
    o = pd.read_csv(data / "olmo-ladder" / "final_losses.csv")
    o = o[o["role"] == "ladder"]
    out["olmo-ladder (C4)"] = pd.DataFrame({"run_id": o["run"], "N": o["N"], "D": o["D"], "loss": o["loss_c4_en"]})
    s = pd.read_csv(data / "steplaw" / "dense_best_lr.csv")
    out["steplaw (best lr)"] = pd.DataFrame(
        {"run_id": [f"step{i:02d}" for i in range(len(s))], "N": s["N"], "D": s["D"], "loss": s["loss"]}
    )
    return out


def bottom80(runs: pd.DataFrame) -> pd.DataFrame:
    order = np.argsort(
        runs["C"].to_numpy(float) if "C" in runs else (6 * runs.N * runs.D).to_numpy(float), kind="stable"
    )
    return runs.iloc[order[: len(runs) - max(1, round(0.2 * len(runs)))]].reset_index(drop=True)


def run_public(data: Path, method: str, quick: bool) -> pd.DataFrame:
    import bayescale as bs
    from bayescale.misfit import misfit

    rows = []
    for name, runs in public(data, quick).items():
        runs = bs.load_runs(runs)
        for part, r in (("all", runs), ("bottom 80% C", bottom80(runs))):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = bs.fit("chinchilla", r, seed=0, method=method)
            try:
                m = misfit(fit)
                fired = "; ".join(f"{f.kind} {f.input} {100 * f.effect:+.2f}%" for f in m.findings if f.fires)
                msg = m.messages[0] if m.messages else ""
                sev = m.severity
                small = "; ".join(
                    f"{f.kind} {f.input} {100 * f.effect:+.2f}%" for f in m.findings if f.significant and not f.fires
                )
            except bs.BayescaleError as e:
                fired, msg, sev, small = "", str(e), "untestable", ""
            rows.append(
                {
                    "dataset": name,
                    "runs": part,
                    "n": len(r),
                    "severity": sev,
                    "fired": fired,
                    "significant, < 0.25% (not flagged)": small,
                    "first message": msg,
                    "s": round(time.perf_counter() - t0, 1),
                }
            )
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def synthetic_runs_for(scenario: str, seed: int) -> pd.DataFrame:
    from bayescale.testing import synthetic_runs

    grid, sigma, df, bend, b = {
        "law, 15 runs, Normal 1%": (GRID15, 0.01, None, None, 0),
        "law, 15 runs, t(4) 1%": (GRID15, 0.01, 4.0, None, 0),
        "law, 40 runs, Normal 0.5%": (GRID40, 0.005, None, None, 0),
        "law, 40 runs, t(4) 0.5%": (GRID40, 0.005, 4.0, None, 0),
        "2% lower at high D/N, 40 runs, 0.5%": (GRID40, 0.005, None, "D/N", 0.02),
        "2% lower in the top fifth by C, 40 runs, 0.5%": (GRID40, 0.005, None, "C", 0.02),
        "3% lower at high D/N, 15 runs, 1%": (GRID15, 0.01, None, "D/N", 0.03),
        "5% lower at high N, 40 runs, 0.5%": (GRID40, 0.005, None, "N", 0.05),
    }[scenario]
    r = synthetic_runs("chinchilla", TRUTH, seed=seed, sigma=sigma, df=df, **grid).drop(columns=["loss_true"])
    if bend == "C":  # a new regime at scale: the top fifth of the runs by compute
        r["loss"] = r["loss"] * np.exp(-b * (r.C.rank(method="first") > 0.8 * len(r)).to_numpy())
    elif bend:
        x = {"D/N": np.log(r.D / r.N), "N": np.log(r.N)}[bend].to_numpy()
        mid = 0.5 * (x.min() + x.max())
        r["loss"] = r["loss"] * np.exp(-b * np.clip((x - mid) / (x.max() - mid), 0, 1) ** 1.5)
    return r


def run_synthetic(seeds: int, method: str) -> pd.DataFrame:
    import bayescale as bs
    from bayescale.misfit import misfit

    rows = []
    for sc in [
        "law, 15 runs, Normal 1%",
        "law, 15 runs, t(4) 1%",
        "law, 40 runs, Normal 0.5%",
        "law, 40 runs, t(4) 0.5%",
        "2% lower at high D/N, 40 runs, 0.5%",
        "2% lower in the top fifth by C, 40 runs, 0.5%",
        "3% lower at high D/N, 15 runs, 1%",
        "5% lower at high N, 40 runs, 0.5%",
    ]:
        fired = []
        for s in range(seeds):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = bs.fit("chinchilla", synthetic_runs_for(sc, s), seed=s, method=method)
            fired.append(misfit(fit).misfits)
        rows.append({"scenario": sc, "fires": f"{sum(fired)}/{seeds}", "rate": float(np.mean(fired))})
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    """A GitHub table (without the optional ``tabulate`` dependency of ``DataFrame.to_markdown``)."""
    cells = [list(map(str, df.columns))] + [[str(v) for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    lines.insert(1, "|" + "---|" * len(df.columns))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="psis", choices=["nuts", "psis", "laplace"])
    ap.add_argument("--quick", action="store_true", help="4 of Porian's 15 configurations")
    ap.add_argument("--synthetic", type=int, default=0, help="seeds per synthetic scenario (0: skip)")
    ap.add_argument("--no-public", action="store_true", help="synthetic scenarios only")
    ap.add_argument("--data", default=os.environ.get("BAYESCALE_DATA", str(ROOT.parent / "shared" / "data")))
    a = ap.parse_args()
    if a.synthetic:
        print(markdown(run_synthetic(a.synthetic, a.method)))
    if not a.no_public:
        print(markdown(run_public(Path(a.data), a.method, a.quick).drop(columns=["first message"])))


if __name__ == "__main__":
    main()
