"""Is the direction of a law's drift beyond the runs learnable from inside them? (issue 15)

bayescale's drift is symmetric: ``tau * z * distance`` with ``z`` standard normal, ``tau`` learned
from the leave-future-out splits' residual slopes. Where the issue-15 table's bands miss, they miss on
one side, which suggests a drift with a learned *mean* (the splits' slope itself) instead. This study
asks whether that mean would point the right way: on every row of the issue-15 table and for each
law given, it compares the splits' residual slopes inside the training runs (log loss per decade of
distance from the split's runs, ``discrepancy._slope``) with the slope the held-out runs show against
the law fitted (Laplace) on all training runs.

Reported: per row and law, each split's slope (with its sd) and the held-out slope; pooled, how often
the splits' weighted-mean slope (and the last split's) has the held-out slope's sign, and how often
shifting the prediction by that mean slope would have reduced the held-out slope's magnitude.

    BAYESCALE_DATA=../shared/data PYTHONPATH=. nice .venv/bin/python benchmarks/drift_direction.py \
        --laws chinchilla_bending,chinchilla --json /tmp/drift_direction.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_extrapolation as be  # noqa: E402
import extrapolation_data as ed  # noqa: E402

import bayescale as bs  # noqa: E402
from bayescale import discrepancy  # noqa: E402
from bayescale.model import distance_from_runs  # noqa: E402


def law_row(law: str, train, test) -> dict:
    """The splits' slopes inside ``train`` and the held-out slope of ``test`` for one law."""
    spec = bs.load_spec(law)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits = discrepancy.holdouts(spec, train, discrepancy.split_masks([spec], train), rng, "laplace")
        fit = bs.fit(spec, train, seed=0, method="laplace")
    slopes = [discrepancy._slope(h) for h in splits]
    points = test.drop(columns=["run_id", "loss"])
    draws = np.asarray(fit.predict(points, noise=False, seed=0).values, float).reshape(-1, len(test))
    residual = np.log(test["loss"].to_numpy(float)) - np.median(np.log(draws), axis=0)
    dist = distance_from_runs(spec, train, test)
    return {
        "law": law,
        "slopes": [b for b, _ in slopes],
        "sds": [s for _, s in slopes],
        "held_out_slope": float(np.sum(dist * residual) / np.sum(dist**2)),
        "mean_distance": float(dist.mean()),
    }


def pooled(records: list[dict]) -> dict:
    """How often the splits' mean slope (and the last split's) points the held-out slope's way."""
    sign, last, helps = [], [], []
    for r in records:
        if not r["slopes"]:
            continue
        b, s, truth = np.array(r["slopes"]), np.array(r["sds"]), r["held_out_slope"]
        mean = float(np.sum(b / s**2) / np.sum(1 / s**2))
        sign.append(np.sign(mean) == np.sign(truth))
        last.append(np.sign(b[-1]) == np.sign(truth))
        helps.append(abs(truth - mean) < abs(truth))
    return {
        "law_rows": len(sign),
        "mean_sign": np.mean(sign),
        "last_sign": np.mean(last),
        "shift_helps": np.mean(helps),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--laws", default="chinchilla_bending,chinchilla")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("BAYESCALE_DATA", "../shared/data")))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    data = ed.load_all(args.data)
    tasks = be.make_tasks(
        data, [be.RECOMMENDED], argparse.Namespace(method="laplace", single_method=None, seed=0, n_boot=0)
    )
    records = []
    for t in tasks:
        cols = [c for c in ("run_id", "N", "D", "C", "loss", "U") if c in t["train"]]
        train, test = t["train"][cols].reset_index(drop=True), t["test"][cols].reset_index(drop=True)
        for law in args.laws.split(","):
            if not be.applicable(law, train):
                continue
            rec = {"dataset": t["dataset"], "split": t["split"], **law_row(law, train, test)}
            records.append(rec)
            said = " ".join(f"{b:+.3f}({s:.3f})" for b, s in zip(rec["slopes"], rec["sds"]))
            print(
                f"{t['dataset']} {t['split']} {law}: splits {said}; held out {rec['held_out_slope']:+.3f}", flush=True
            )
    summary = pooled(records)
    print(json.dumps(summary, default=float))
    if args.json:
        args.json.write_text(json.dumps({"rows": records, "pooled": summary}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
