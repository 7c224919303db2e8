"""How often `check`'s pattern notes fire: false alarms where the fit is calibrated, detections where it is not.

A posterior unsure of the law's level (E ~ Normal(1.8, E_SD), noise sd 0.005 on log loss, from fixed draws),
8 new runs at 20 tokens per parameter inside the fit's compute. Calibrated: each trial draws the truth's E
from that posterior, so a note is a false alarm (meant: at most 1%). Biased: the runs come out SHIFT above the
truth. Counts the level note ("sit X% above/below the median prediction on average") and the surprise-count
note ("N of M new runs are surprises").

    python benchmarks/bench_check_notes.py --trials 200 --shift 0.06
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36}


def law(p: dict, n, d):
    return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--shift", type=float, default=0.06, help="relative loss offset of the biased trials")
    ap.add_argument("--e-sd", type=float, default=0.03, help="posterior sd of E (nats)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    import bayescale as bs
    from bayescale import checks
    from bayescale.testing import fit_from_draws, synthetic_runs

    warnings.simplefilter("ignore")
    spec = {
        "law": "chinchilla",
        "priors": bs.ModelSpec.from_law("chinchilla").to_dict()["priors"],
        "likelihood": {"family": "Normal", "sigma": {"dist": "HalfNormal", "scale": 0.05}},
    }
    rng = np.random.default_rng(args.seed)
    draws = {k: np.full(400, v) for k, v in TRUTH.items()} | {"sigma": np.full(400, 0.005)}
    draws["E"] = TRUTH["E"] + args.e_sd * rng.standard_normal(400)
    fit = fit_from_draws(spec, synthetic_runs("chinchilla", TRUTH, seed=0), draws)
    n = np.geomspace(2e8, 2e9, 8)
    counts = {}
    for label, shift in (("calibrated", 0.0), (f"{100 * args.shift:g}% above", args.shift)):
        level = many = 0
        for _ in range(args.trials):
            truth = dict(TRUTH, E=TRUTH["E"] + args.e_sd * rng.standard_normal())
            new = pd.DataFrame({"run_id": [f"r{i}" for i in range(8)], "N": n, "D": 20 * n})
            new["loss"] = (1 + shift) * law(truth, new["N"], new["D"]) * np.exp(0.005 * rng.standard_normal(8))
            notes = checks.check(fit, new).notes
            level += any("the median prediction on average" in x for x in notes)
            many += any("new runs are surprises" in x for x in notes)
        counts[label] = (level, many)
    print(f"E sd {args.e_sd}, 8 new runs, {args.trials} trials each, seed {args.seed}")
    print("| world | level note | surprise-count note |\n| --- | --- | --- |")
    for label, (level, many) in counts.items():
        print(f"| {label} | {level}/{args.trials} | {many}/{args.trials} |")


if __name__ == "__main__":
    main()
