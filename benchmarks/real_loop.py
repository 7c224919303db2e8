"""A real closed loop on CPU pilots against the fixed designs the committed sweep can replay.

The seed table is the committed pilots with C <= 1e12 (``data/pilot_runs.csv``), the target the
sweep's largest pilot (held out); ``bayescale loop`` trains new pilots with the runner (Llama, CPU)
under a FLOPs budget, with the default planner. Afterwards every table is refitted (seed 0, Laplace
and NUTS) and the target predicted: the seed table alone, the loop's table, and two fixed designs
that add the sweep's other pilots within the same budget (the ones nearest the target's tokens per
parameter first, or the cheapest first).

    PYTHONPATH=. python benchmarks/real_loop.py --dir /tmp/loop16           # trains (about 2-3 min)
    PYTHONPATH=. python benchmarks/real_loop.py --dir /tmp/loop16 --no-loop # refits an earlier loop
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SEED_MAX_C = 1e12
PLAN = """runs = "runs.csv"
spec = "chinchilla"
target = "N={N},D={D}"
budget = {budget:g}
k = 2
method = "laplace"
seed = 0
max_rounds = {rounds}

[trainer]
arch = "llama"
seed = 0
"""


def fixed_designs(seed: pd.DataFrame, rest: pd.DataFrame, ratio: float, budget: float) -> dict[str, pd.DataFrame]:
    """The seed table plus further runs within ``budget`` FLOPs (6ND), taken in two orders: nearest
    ``ratio`` tokens per parameter first, and cheapest first; a run that would overspend is skipped."""
    flops = 6 * rest["N"] * rest["D"]
    orders = {
        "ladder at the target's ratio": np.argsort(
            np.abs(np.log(rest["D"] / rest["N"] / ratio)).to_numpy(), kind="stable"
        ),
        "cheapest-first": np.argsort(flops.to_numpy(), kind="stable"),
    }
    out = {}
    for name, order in orders.items():
        take, spent = [], 0.0
        for i in order:
            if spent + flops.iloc[i] <= budget:
                take.append(i)
                spent += flops.iloc[i]
        out[f"{name} (+{len(take)} runs, {spent:.2g})"] = pd.concat([seed, rest.iloc[take]], ignore_index=True)
    return out


def predict(table: pd.DataFrame, target: pd.Series, method: str) -> tuple[float, float, float]:
    import bayescale as bs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bs.fit("chinchilla", table.reset_index(drop=True), seed=0, method=method)
    draws = np.asarray(fit.predict({"N": target["N"], "D": target["D"]}, noise=True).values).ravel()
    lo, med, hi = np.quantile(draws, [0.05, 0.5, 0.95])
    return float(med), float(lo), float(hi)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, required=True, help="working folder: runs.csv, plan.toml, the loop's state")
    ap.add_argument("--budget", type=float, default=3e12)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--no-loop", action="store_true", help="refit the tables of an earlier loop in --dir")
    args = ap.parse_args(argv)
    full = pd.read_csv(REPO / "data" / "pilot_runs.csv")
    target = full.sort_values("C").iloc[-1]
    seed = full[full["C"] <= SEED_MAX_C].reset_index(drop=True)
    rest = full[(full["C"] > SEED_MAX_C) & (full["run_id"] != target["run_id"])].reset_index(drop=True)
    args.dir.mkdir(parents=True, exist_ok=True)
    if not args.no_loop:
        seed.to_csv(args.dir / "runs.csv", index=False)
        plan = PLAN.format(N=int(target["N"]), D=int(target["D"]), budget=args.budget, rounds=args.rounds)
        (args.dir / "plan.toml").write_text(plan)
        subprocess.run([sys.executable, "-m", "bayescale", "loop", str(args.dir / "plan.toml")], check=True)
    looped = pd.read_csv(args.dir / "runs.csv")
    new = looped[~looped["run_id"].isin(seed["run_id"])]
    designs = {
        "seed only": seed,
        f"default planner loop (+{len(new)} runs, {float((6 * new.N * new.D).sum()):.2g})": looped,
    }
    designs |= fixed_designs(seed, rest, target["D"] / target["N"], args.budget)
    print(f"target {target['run_id']}: N={target['N']:.3g} D={target['D']:.3g} loss {target['loss']:.3f}")
    print("| runs | method | median | 90% interval | error % |\n|---|---|---|---|---|")
    for name, table in designs.items():
        for method in ("laplace", "nuts"):
            med, lo, hi = predict(table, target, method)
            print(
                f"| {name} | {method} | {med:.3f} | {lo:.3f}-{hi:.3f} | {abs(med / target['loss'] - 1) * 100:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
