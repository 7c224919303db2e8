#!/usr/bin/env python
"""Does the learned drift scale grow with the cut? A study on the issue-15 table's rows (not a default).

``bayescale.discrepancy.learn_drift`` reads the splits' residual slopes ``b_k`` (log loss per decade of
distance) as ``Normal(0, tau^2 + s_k^2)`` with one ``tau`` for every cut. On Porian et al.'s base/long
rows the slopes grew with the cut, which suggests a scale that grows with the compute the law was fitted
to. This script collects, per row (dataset, split) and member law of ``recommended``, the inner splits'
slopes (NUTS-corrected, as the fit's own learning) and the *realised* slope on the row's held-out runs
(one more "split" at the row's own cut), then scores the realised slope's predictive under the constant
``tau`` and under ``tau_k = tau_final * exp(-gamma (x_final - x_k))`` (``x``: log10 of the cut's largest
training compute, ``gamma ~ Normal(0, sg)``), both with the recommended spec's ``HalfNormal(0.05)``.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/drift_trend_study.py --data ../shared/data --records X.jsonl
    PYTHONPATH=. .venv/bin/python benchmarks/drift_trend_study.py --records X.jsonl --score-only

(``--records`` is appended to as rows finish, so an interrupted run keeps what it measured.)
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))

TAU = np.linspace(0.0, 0.5, 1001)
GAMMA = np.linspace(-3.0, 3.0, 121)


def collect(data_dir: Path, out: Path) -> None:
    import extrapolation_data as ed
    import pandas as pd
    from bench_extrapolation import SPLITS, split_by_compute

    import bayescale as bs
    from bayescale import discrepancy as dc

    warnings.simplefilter("ignore")
    members = bs.load_spec("recommended").members
    for ds in ed.load_all(data_dir).values():
        runs = ed.compute_runs(ds)
        pairs = []
        for split, fracs in SPLITS.items():
            tr, te = split_by_compute(runs["C"].to_numpy(float), *fracs)
            pairs.append((split, runs.iloc[tr], runs.iloc[te]))
        idx = ds.runs.set_index("run_id")
        pairs += [(split, idx.loc[a].reset_index(), idx.loc[b].reset_index()) for split, (a, b) in ds.fixed.items()]
        for split, train, test in pairs:
            cols = [c for c in ("N", "D", "C", "loss", "U") if c in train]
            train, test = train[cols].reset_index(drop=True), test[cols].reset_index(drop=True)
            both = pd.concat([train, test], ignore_index=True)
            usable = [m for m in members if len(dc.split_masks([m], train)) >= 2]
            masks = dc.split_masks(usable, train)
            log_c = np.log10(train["C"].to_numpy(float))
            for m in usable:
                rng = np.random.default_rng(0)
                inner = dc.holdouts(m, train, masks, rng, "nuts")
                final = dc.holdouts(m, both, [(1.0, np.arange(len(both)) < len(train))], rng, "nuts")[0]
                rec = {
                    "dataset": ds.name,
                    "split": split,
                    "law": m.name,
                    "inner": [
                        dict(zip(("b", "s"), dc._slope(h)), x=float(log_c[t].max())) for (_, t), h in zip(masks, inner)
                    ],
                    "final": dict(zip(("b", "s"), dc._slope(final)), x=float(log_c.max())),
                }
                with out.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
                print(rec["dataset"], split, m.name, flush=True)


def tau_final(rec: dict, sg: float | None) -> np.ndarray:
    """The distribution of the final cut's drift scale on TAU: constant (``sg`` None) or trending."""
    prior = stats.halfnorm.logpdf(TAU, scale=0.05)
    inner = [k for k in rec["inner"] if np.isfinite(k["s"])]
    if sg is None:
        lp = prior + sum(stats.norm.logpdf(k["b"], scale=np.sqrt(TAU**2 + k["s"] ** 2)) for k in inner)
        p = np.exp(lp - lp.max())
        return p / p.sum()
    lp = prior[None, :] + stats.norm.logpdf(GAMMA, scale=sg)[:, None]
    for k in inner:
        t = TAU[None, :] * np.exp(-GAMMA[:, None] * (rec["final"]["x"] - k["x"]))
        lp = lp + stats.norm.logpdf(k["b"], scale=np.sqrt(t**2 + k["s"] ** 2))
    p = np.exp(lp - lp.max())
    return p.sum(axis=0) / p.sum()


def score(records: list[dict], sg: float | None) -> dict[str, float]:
    """Mean log predictive density of the realised slopes, and how often their central 90% interval holds them."""
    lpd, inside = [], []
    grid = np.linspace(-2.0, 2.0, 8001)
    for rec in records:
        p, f = tau_final(rec, sg), rec["final"]
        if not np.isfinite(f["s"]):  # no held-out distance to read a slope from
            continue
        sd = np.sqrt(TAU**2 + f["s"] ** 2)
        lpd.append(np.log(np.sum(p * stats.norm.pdf(f["b"], scale=sd))))
        cdf = (p[None, :] * stats.norm.cdf(grid[:, None] / sd[None, :])).sum(axis=1)
        lo, hi = (grid[min(np.searchsorted(cdf, q), len(grid) - 1)] for q in (0.05, 0.95))
        inside.append(lo <= f["b"] <= hi)
    return {"n": len(records), "mean_lpd": float(np.mean(lpd)), "cov90": float(np.mean(inside))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--records", type=Path, required=True, help="JSON lines, one per row and law (appended to)")
    ap.add_argument("--score-only", action="store_true", help="score the records already collected")
    args = ap.parse_args()
    if not args.score_only:
        collect(args.data, args.records)
    records = [json.loads(line) for line in args.records.read_text().splitlines() if line.startswith("{")]
    print("| drift scale across cuts | row-laws | mean log density of the realised slope | its 90% interval covers |")
    print("|---|---|---|---|")
    for sg in (None, 0.25, 0.5, 1.0):
        s = score(records, sg)
        name = "constant (the default)" if sg is None else f"trend, gamma ~ Normal(0, {sg:g}) per decade"
        print(f"| {name} | {s['n']} | {s['mean_lpd']:.3f} | {s['cov90']:.2f} |")


if __name__ == "__main__":
    main()
