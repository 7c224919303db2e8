#!/usr/bin/env python
"""What the planner's trust test (rule 4 of ``bayescale/design/robust.py``) sees in the simulation
study's worlds: the leading law's leave-future-out drift scale, and the two variances a
decision-theoretic rule would weigh at the target.

For each world of ``bench_active.py`` (its seed pilots, target and truths), the seed pilots plus the
first 8, 16 and 32 runs of its ``stratified`` fixed design are fitted (Laplace, ``models/chinchilla.toml``)
and the rule's splits are run: the number of splits, the drift scale's median and root mean square
under ``TRUST_HYPERPRIOR``, the distance from the runs to the target in decades of (N, D), the drift's
sd at the target (rms x distance) and the law's own parameter sd at the target (sd of the law's log
loss over the posterior draws).

Usage::

    PYTHONPATH=. nice -n 5 .venv/bin/python benchmarks/trust_drift.py --kinds well,beta_drifts --seeds 4
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale.design import robust
from bayescale.design.targets import law_matrix
from bayescale.discrepancy import holdouts, learn_drift, split_masks
from bayescale.model import distance_from_runs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_active import BUDGET, SPEC, TARGET, World, design_sequence, take  # noqa: E402

SIZES = (0, 8, 16, 32)
PRIOR_MEDIAN = float(learn_drift([], robust.TRUST_HYPERPRIOR).quantile(0.5))


def probe(kind: str, seed: int) -> list[dict[str, float]]:
    """One world's rows: the trust test's inputs after each prefix of the stratified design."""
    w = World(kind, seed)
    seq = take(design_sequence("stratified", np.random.default_rng([seed, 7])), BUDGET)
    target = pd.DataFrame({"N": [TARGET["N"]], "D": [TARGET["D"]]})
    rows = []
    for n in SIZES:
        extra = [{"run_id": f"s{i}", "N": a, "D": b, "loss": w.loss(f"s{i}", a, b)} for i, (a, b) in enumerate(seq[:n])]
        runs = pd.concat([w.seed_runs(), pd.DataFrame(extra)], ignore_index=True) if extra else w.seed_runs()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = bs.fit(SPEC, runs, method="laplace", chains=2, draws=1000)
        masks = split_masks([fit.spec], fit.runs)
        splits = holdouts(fit.spec, fit.runs, masks, np.random.default_rng(0)) if masks else []
        drift = learn_drift(splits, robust.TRUST_HYPERPRIOR)
        rms = float(np.sqrt(np.sum(drift.probs * drift.grid**2)))
        theta = {p: np.asarray(fit.posterior[p].values, dtype=float).reshape(-1) for p in fit.spec.law.params}
        law = law_matrix(fit, theta, target)[:, 0]
        dist = float(distance_from_runs(fit.spec, fit.runs, target)[0])
        rows.append(
            {
                "kind": kind,
                "seed": seed,
                "runs": len(runs),
                "splits": len(splits),
                "median": float(drift.quantile(0.5)),
                "rms": rms,
                "distance": dist,
                "drift_sd": rms * dist,
                "param_sd": float(np.std(law)),
                "error": float(abs(np.median(law) - np.log(w.truth))),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default="well,beta_drifts,small_N_extra,undertuned")
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args(argv)
    rows = [r for kind in args.kinds.split(",") for s in range(args.seeds) for r in probe(kind, s)]
    tab = pd.DataFrame(rows)
    print(f"TRUSTED_DRIFT = {robust.TRUSTED_DRIFT:.4f}; the hyperprior's median {PRIOR_MEDIAN:.4f}")
    print(tab.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    tested = tab[tab["splits"] >= 2]
    summary = tested.groupby("kind").agg(
        rows=("median", "size"),
        median_lo=("median", "min"),
        median_hi=("median", "max"),
        trusted=("median", lambda m: int((m <= robust.TRUSTED_DRIFT).sum())),
        at_most_prior_median=("median", lambda m: int((m <= PRIOR_MEDIAN).sum())),
        drift_sd_over_param_sd=("drift_sd", lambda d: float(np.median(d / tested.loc[d.index, "param_sd"]))),
    )
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
