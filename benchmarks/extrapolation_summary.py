#!/usr/bin/env python
"""Issue 15's pooled targets for the ``recommended`` predictor from ``bench_extrapolation.py --json``
files: pooled 90%/50% coverage (over held-out runs), the lowest row's 90% coverage, rows under 0.60,
silent misses (90% coverage under 0.5 with no misfit warning), and the median and worst ratio of
the median |relative error| to the Huber fit's. Huber rows are taken from the first file when a
later one ran ``--predictors recommended`` alone.

Usage::

    python benchmarks/extrapolation_summary.py /tmp/x15.json /tmp/x15_after.json
"""

from __future__ import annotations

import json
import sys

import numpy as np


def summary(rows: list[dict], huber: dict) -> dict[str, float]:
    rec = [r["predictors"]["recommended"] for r in rows]
    n = np.array([r["n_test"] for r in rows], dtype=float)
    c90, c50 = np.array([p["cov90"] for p in rec]), np.array([p["cov50"] for p in rec])
    ratio = [p["mare"] / huber[(r["dataset"], r["split"])]["mare"] for r, p in zip(rows, rec)]
    return {
        "rows": len(rows),
        "cov90": round(float(n @ c90 / n.sum()), 3),
        "cov50": round(float(n @ c50 / n.sum()), 3),
        "min row cov90": round(float(c90.min()), 2),
        "rows under 0.60": int((c90 < 0.6).sum()),
        "silent misses": sum(1 for p in rec if p["cov90"] < 0.5 and not p["misfit_warned"]),
        "median error / huber": round(float(np.median(ratio)), 2),
        "worst error / huber": round(float(np.max(ratio)), 1),
    }


def main(paths: list[str]) -> None:
    tables = [json.load(open(p))["rows"] for p in paths]
    huber = {(r["dataset"], r["split"]): r["predictors"]["huber"] for r in tables[0] if "huber" in r["predictors"]}
    for path, rows in zip(paths, tables):
        rec = [r for r in rows if "recommended" in r["predictors"]]
        if rec:  # a file of Huber rows alone (``--predictors huber``) only lends its rows
            print(path, summary(rec, huber))


if __name__ == "__main__":
    main(sys.argv[1:])
