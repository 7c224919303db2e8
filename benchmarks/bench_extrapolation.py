#!/usr/bin/env python
"""Honest extrapolation: the issue-15 table.

For every public dataset with (N, D, loss) runs (``benchmarks/extrapolation_data.py``: Chinchilla
(Epoch), GPT-3 curves, each of Porian et al.'s 15 configurations, datablations with ``U``, the OLMo
ladder, the Step Law best-lr grid and the committed pilot sweep) and two splits in compute:

* ``llo``: leave-largest-out 80/20, train on the 80% of runs with the least compute, test on the rest;
* ``hard``: train on the bottom 50% of compute, test on the top 10%;

(runs of equal compute are never split between train and test: a cut that falls inside a group
of ties moves to the group's edge), plus the OLMo ladder's fixed split ``targets`` (all ladder
runs -> the 7B-4T and 13B-5T runs), each predictor is fitted on the train runs and scored on the
test runs:

* ``recommended``: ``bs.load_spec("recommended")``, the law average (skipped with a note where the
  installed bayescale does not have it);
* each single law (``models/*.toml``: chinchilla, kaplan, farseer, chinchilla_bending, and
  data_constrained where the table has ``U < D`` somewhere);
* ``huber``: the Epoch-style Huber point fit with its residual bootstrap (``benchmarks/baselines.py``).

Metrics per row and predictor, from predictive draws of a new run's loss (``noise=True``): 50% and
90% coverage of the held-out losses by central intervals, mean log predictive density (a Gaussian
KDE, Scott's bandwidth, of the draws of *log* loss, evaluated at the observed log loss), median
|relative error| of the predictive median, median 90% width relative to the median, max r-hat (nan
for Laplace/PSIS), law weights (recommended), whether fit() raised a MisfitWarning, and the modes
the diagnostics report. Then pooled lines and the issue's targets, each PASS or MISS with its numbers.

Writes the section ``## Honest extrapolation: the issue-15 table`` of ``--out`` (BENCHMARKS.md),
keeping every other section.

Usage::

    PYTHONPATH=. nice .venv/bin/python benchmarks/bench_extrapolation.py --quick            # laplace, 17 rows
    PYTHONPATH=. nice .venv/bin/python benchmarks/bench_extrapolation.py --method nuts --single-method laplace \
        --jobs 2 --json /tmp/x15.json                                                         # the full table, 43 rows
    .venv/bin/python benchmarks/bench_extrapolation.py --render-json /tmp/x15.json           # re-render, no fits
    .venv/bin/python benchmarks/bench_extrapolation.py --brier                               # the old Part 2

Cost (measured 2026-12-03 on the shared 2-core machine at load average ~9, so about 4-5x slower than
idle): a row with 192 training runs took, per fit, NUTS chinchilla 117 s, kaplan 67 s, farseer 483 s
(r-hat 1.02: farseer's chains disagree); PSIS 48/12/20 s; Laplace ~5-20 s. ``--quick`` (17 rows,
Laplace, single laws + Huber) took 17 min, ~58 s per row. NUTS for every single law does not fit in
45 minutes: run the single laws with ``--single-method laplace`` (or ``psis``), NUTS for ``recommended``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shlex
import sys
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import scipy.special
import scipy.stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

SECTION = "## Honest extrapolation: the issue-15 table"
SPLITS = {"llo": (0.8, 0.2), "hard": (0.5, 0.1)}
SINGLE_LAWS = ("chinchilla", "kaplan", "data_constrained", "farseer", "chinchilla_bending")
RECOMMENDED = "recommended"
#: The recommended setting with its optional calibration layer (split-conformal 90% bands).
CONFORMAL = "recommended_conformal"
HUBER = "huber"
TARGETS = {"cov90": (0.85, 0.95), "cov50": (0.40, 0.60), "min_row_cov90": 0.60, "mare_median": 1.2, "mare_max": 2.0}
QUICK_SETS = ("chinchilla", "gpt3", "porian", "datablations", "olmo-ladder", "steplaw", "pilot")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ pure functions: splits and metrics


def split_by_compute(C: Any, train_frac: float, test_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): test = the top ``test_frac`` of runs by compute, train = the bottom ``train_frac``.

    Counts are ``round(frac * n)`` (at least one test run). Runs of equal compute stay together: the
    test set grows to take every run tied with its smallest member, and the train set stops below the
    test set and takes every run tied with its largest member. Both are sorted by compute.
    """
    c = np.asarray(C, dtype=float)
    n = c.size
    order = np.argsort(c, kind="stable")
    k_test = max(1, int(round(test_frac * n)))
    c_test = c[order[n - k_test]]
    test = order[c[order] >= c_test]
    k_train = min(int(round(train_frac * n)), n - test.size)
    if k_train < 1:
        return np.array([], dtype=int), test
    c_train = c[order[k_train - 1]]
    train = order[(c[order] <= c_train) & (c[order] < c_test)]
    return train, test


def kde_logpdf(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Log density at ``y[j]`` of a 1-D Gaussian KDE of the finite draws ``x[:, j]``, Scott's bandwidth
    (``sd * S**-0.2``, as scipy's ``gaussian_kde``), times the fraction of draws that are finite."""
    out = np.full(y.size, -np.inf)
    for j in range(y.size):
        col = x[np.isfinite(x[:, j]), j]
        sd = col.std(ddof=1) if col.size > 1 else 0.0
        if sd > 0:
            h = sd * col.size**-0.2
            z = -0.5 * ((y[j] - col) / h) ** 2
            out[j] = scipy.special.logsumexp(z) - math.log(x.shape[0] * h * math.sqrt(2 * math.pi))
    return out


def score_draws(log_draws: Any, observed: Any) -> dict[str, np.ndarray]:
    """Per held-out run, from predictive draws of log loss ``(S, n)`` and observed losses ``(n,)``.

    ``pit`` = P(draw <= observed); ``median``, ``lo50/hi50``, ``lo90/hi90`` (central intervals, as
    losses); ``lpd``: the log density of the observed *log* loss under a Gaussian KDE (Scott's rule)
    of the finite draws, times the fraction of draws that are finite (a law may overflow far out).
    """
    x = np.asarray(log_draws, dtype=float)
    y = np.log(np.asarray(observed, dtype=float)).reshape(-1)
    if x.ndim != 2 or x.shape[1] != y.size:
        raise ValueError(f"draws {x.shape} do not match {y.size} observed runs")
    # overflowed or undefined draws count as huge losses (exp(700)) in the quantiles and the PIT
    xq = np.nan_to_num(x, nan=700.0, posinf=700.0, neginf=-700.0)
    q = np.quantile(xq, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    lpd = kde_logpdf(x, y)
    return {
        "pit": np.mean(xq <= y[None, :], axis=0),
        "median": np.exp(q[2]),
        "lo50": np.exp(q[1]),
        "hi50": np.exp(q[3]),
        "lo90": np.exp(q[0]),
        "hi90": np.exp(q[4]),
        "lpd": lpd,
        "observed": np.exp(y),
    }


def summarize(s: dict[str, Any]) -> dict[str, float]:
    """Row metrics from :func:`score_draws`' per-run arrays (lists are accepted, as from JSON)."""
    pit = np.asarray(s["pit"], float)
    obs, med = np.asarray(s["observed"], float), np.asarray(s["median"], float)
    inside90 = (np.asarray(s["lo90"], float) <= obs) & (obs <= np.asarray(s["hi90"], float))
    return {
        "cov50": float(np.mean(np.abs(2 * pit - 1) <= 0.5)),
        "cov90": float(np.mean(np.abs(2 * pit - 1) <= 0.9)),
        "outside90": float(1 - np.mean(inside90)),
        "mlpd": float(np.mean(s["lpd"])),
        "mare": float(np.median(np.abs(med / obs - 1))),
        "width90": float(np.median((np.asarray(s["hi90"], float) - np.asarray(s["lo90"], float)) / med)),
    }


def pool(recs: list[dict[str, Any]]) -> dict[str, float]:
    """Pooled over rows: coverage pooled over every held-out run, and the mean/min over rows."""
    pit = np.concatenate([np.asarray(r["runs"]["pit"], float) for r in recs])
    cov90 = [r["cov90"] for r in recs]
    return {
        "rows": len(recs),
        "runs": int(pit.size),
        "cov50": float(np.mean(np.abs(2 * pit - 1) <= 0.5)),
        "cov90": float(np.mean(np.abs(2 * pit - 1) <= 0.9)),
        "row_mean_cov90": float(np.mean(cov90)),
        "min_row_cov90": float(np.min(cov90)),
        "mlpd": float(np.mean([r["mlpd"] for r in recs])),
        "median_mare": float(np.median([r["mare"] for r in recs])),
        "silent_misses": int(sum(r["outside90"] > 0.5 and not r.get("misfit_warned", False) for r in recs)),
    }


# ------------------------------------------------------------------ predictors


def applicable(law: str, runs: Any) -> bool:
    """data_constrained only where the table has U and U < D somewhere."""
    if law != "data_constrained":
        return True
    return "U" in runs and bool((runs["U"] < runs["D"] * (1 - 1e-9)).any())


def modes_reported(diag: dict[str, Any]) -> str | None:
    """Which fits named several posterior modes in words (an average: each member), e.g. "kaplan: 2"."""
    per = diag.get("members") or {"": diag}
    found = [f"{name}: {len(d['modes'])}".lstrip(": ") for name, d in per.items() if len(d.get("modes") or []) > 1]
    return ", ".join(found) or None


def recommended_available() -> str | None:
    """None if ``bs.load_spec("recommended")`` works, else why not (printed, and in the table)."""
    import bayescale as bs

    try:
        bs.load_spec(RECOMMENDED)
    except Exception as exc:  # noqa: BLE001 - any failure means: not there yet
        return f"{type(exc).__name__}: {exc}"
    return None


def run_bayes(
    spec_name: str, train: Any, test: Any, method: str, seed: int, calibrate: str | None = None
) -> dict[str, Any]:
    import bayescale as bs
    from bayescale.averaging import law_disagreement
    from bayescale.errors import ConvergenceWarning, MisfitWarning

    cols = [c for c in ("run_id", "N", "D", "C", "loss", "U") if c in train]
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = bs.fit(
            bs.load_spec(spec_name), train[cols].reset_index(drop=True), seed=seed, method=method, calibrate=calibrate
        )
    seconds = time.perf_counter() - t0
    pts = test[[c for c in cols if c not in ("run_id", "loss")]].reset_index(drop=True)
    pred = fit.predict(pts, noise=True, seed=seed)
    s = score_draws(np.log(np.asarray(pred.values, float).reshape(-1, len(test))), test["loss"].to_numpy(float))
    diag = fit.diagnostics()
    misfit = [str(w.message) for w in caught if issubclass(w.category, MisfitWarning)]
    conv = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    weights = getattr(fit, "weights", None)
    modes = modes_reported(diag)
    apart = law_disagreement(fit, pts)  # what decide's "Laws disagree" note would name at the test runs
    return {
        **summarize(s),
        "runs": {"run_id": test["run_id"].astype(str).tolist(), **{k: v.tolist() for k, v in s.items()}},
        "seconds": seconds,
        "method": method,
        "max_r_hat": float(diag.get("max_r_hat", float("nan"))),
        "problems": [str(p) for p in diag.get("problems", [])],
        "modes": modes,
        "misfit_warned": bool(misfit),
        "misfit_messages": [m[:300] for m in misfit],
        "convergence_warned": bool(conv),
        "weights": {str(k): float(v) for k, v in dict(weights).items()} if weights is not None else None,
        "laws_disagree": None if apart is None else {"laws": list(apart[:2]), "gap": abs(apart[3] - apart[4])},
    }


def run_huber(train: Any, test: Any, n_boot: int, seed: int) -> dict[str, Any]:
    import baselines as bl

    t0 = time.perf_counter()
    pf = bl.huber_fit(train["N"], train["D"], train["loss"])
    pf = bl.bootstrap(pf, train["N"], train["D"], n_boot=n_boot, seed=seed)
    draws = bl.predictive_log_draws(pf, test["N"], test["D"], seed=seed)
    seconds = time.perf_counter() - t0
    s = score_draws(draws, test["loss"].to_numpy(float))
    point = np.exp(pf.predict_log(test["N"], test["D"]))
    obs = test["loss"].to_numpy(float)
    return {
        **summarize(s),
        "mare_point": float(np.median(np.abs(point / obs - 1))),
        "runs": {
            "run_id": test["run_id"].astype(str).tolist(),
            "point": point.tolist(),
            **{k: v.tolist() for k, v in s.items()},
        },
        "seconds": seconds,
        "method": f"Huber + {n_boot} bootstrap refits",
        "max_r_hat": float("nan"),
        "boot_failures": int(pf.boot_failures),
        "misfit_warned": False,
        "params": pf.params,
    }


def run_row(task: dict[str, Any]) -> dict[str, Any]:
    """Fit every predictor on one (dataset, split) and score it; errors are recorded, not raised."""
    train, test = task["train"], task["test"]
    row = {k: task[k] for k in ("dataset", "group", "split")}
    row.update(
        n_train=len(train),
        n_test=len(test),
        decades=float(np.log10(test["C"].max() / train["C"].max())),
        predictors={},
    )
    for name in task["predictors"]:
        t0 = time.perf_counter()
        try:
            if name == HUBER:
                rec = run_huber(train, test, task["n_boot"], task["seed"])
            elif name == CONFORMAL:
                rec = run_bayes(RECOMMENDED, train, test, task["method"], task["seed"], calibrate="conformal")
            else:
                method = task["method"] if name == RECOMMENDED else task["single_method"]
                rec = run_bayes(name, train, test, method, task["seed"])
        except Exception as exc:  # noqa: BLE001 - one failing fit must not lose the table
            rec = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
        rec["wall"] = time.perf_counter() - t0
        row["predictors"][name] = rec
    return row


def make_tasks(data: dict[str, Any], predictors: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    import extrapolation_data as ed

    tasks = []
    for ds in data.values():
        pairs = []
        runs = ed.compute_runs(ds)
        for split, (ftrain, ftest) in SPLITS.items():
            tr, te = split_by_compute(runs["C"].to_numpy(float), ftrain, ftest)
            pairs.append((split, runs.iloc[tr].reset_index(drop=True), runs.iloc[te].reset_index(drop=True)))
        for split, (tr_ids, te_ids) in ds.fixed.items():
            idx = ds.runs.set_index("run_id")
            pairs.append((split, idx.loc[tr_ids].reset_index(), idx.loc[te_ids].reset_index()))
        for split, train, test in pairs:
            preds = [p for p in predictors if p in (RECOMMENDED, CONFORMAL, HUBER) or applicable(p, train)]
            tasks.append(
                {
                    "dataset": ds.name,
                    "group": ds.group,
                    "split": split,
                    "train": train,
                    "test": test,
                    "predictors": preds,
                    "method": args.method,
                    "single_method": args.single_method or args.method,
                    "seed": args.seed,
                    "n_boot": args.n_boot,
                }
            )
    return tasks


def run_tasks(tasks: list[dict[str, Any]], jobs: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def done(row: dict[str, Any]) -> None:
        bits = []
        for p, r in row["predictors"].items():
            bits.append(
                f"{p} ERROR"
                if "error" in r
                else f"{p} cov90 {r['cov90']:.2f} mare {100 * r['mare']:.1f}% {r['wall']:.0f}s"
            )
        log(f"{row['dataset']} / {row['split']} ({row['n_train']}->{row['n_test']}): " + "; ".join(bits))
        rows.append(row)

    if jobs <= 1:
        for t in tasks:
            done(run_row(t))
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as ex:
            futures = [ex.submit(run_row, t) for t in tasks]
            for f in as_completed(futures):
                done(f.result())
    key = {(t["dataset"], t["split"]): i for i, t in enumerate(tasks)}
    return sorted(rows, key=lambda r: key[(r["dataset"], r["split"])])


# ------------------------------------------------------------------ targets and rendering


def _ok(flag: bool) -> str:
    return "PASS" if flag else "MISS"


def olmo_target(rows: list[dict[str, Any]], pred: str, label: str = "olmo-13B-5T") -> dict[str, Any] | None:
    for row in rows:
        if row["dataset"] == "olmo-ladder" and row["split"] == "targets" and pred in row["predictors"]:
            r = row["predictors"][pred]
            if "error" in r or label not in r["runs"]["run_id"]:
                return None
            j = r["runs"]["run_id"].index(label)
            g = {k: r["runs"][k][j] for k in ("observed", "median", "lo90", "hi90")}
            g["inside"] = g["lo90"] <= g["observed"] <= g["hi90"]
            g["width"] = (g["hi90"] - g["lo90"]) / g["median"]
            g["rel_error"] = g["median"] / g["observed"] - 1
            return g
    return None


def target_checks(rows: list[dict[str, Any]], pred: str) -> list[tuple[str, bool | None, str]]:
    """(target, PASS/MISS/None = not measurable, numbers) for one predictor over the whole table."""
    recs = [r["predictors"][pred] for r in rows if pred in r["predictors"] and "error" not in r["predictors"][pred]]
    if not recs:
        n = sum(pred in r["predictors"] for r in rows)
        return [("any row", None, f"no successful fit in {n} rows" if n else "not applicable to any row")]
    p = pool(recs)
    lo90, hi90 = TARGETS["cov90"]
    lo50, hi50 = TARGETS["cov50"]
    ok_rows = [r for r in rows if pred in r["predictors"] and "error" not in r["predictors"][pred]]
    low = [
        f"{r['dataset']}/{r['split']} {r['predictors'][pred]['cov90']:.2f}"
        for r in ok_rows
        if r["predictors"][pred]["cov90"] < TARGETS["min_row_cov90"]
    ]
    silent = [
        f"{r['dataset']}/{r['split']}"
        for r in ok_rows
        if r["predictors"][pred]["outside90"] > 0.5 and not r["predictors"][pred].get("misfit_warned")
    ]
    out = [
        (
            f"pooled 90% coverage in {lo90}-{hi90}",
            lo90 <= p["cov90"] <= hi90,
            f"{p['cov90']:.3f} over {p['runs']} held-out runs in {p['rows']} rows (row mean {p['row_mean_cov90']:.3f})",
        ),
        (f"pooled 50% coverage in {lo50}-{hi50}", lo50 <= p["cov50"] <= hi50, f"{p['cov50']:.3f}"),
        (
            f"no row's 90% coverage below {TARGETS['min_row_cov90']}",
            not low,
            f"min {p['min_row_cov90']:.2f}; below: {', '.join(low) or 'none'}",
        ),
        (
            "no row misses the 90% band on most test runs without a misfit warning",
            not silent,
            f"{len(silent)} silent rows: {', '.join(silent) or 'none'}",
        ),
    ]
    ratios = []
    for r in rows:
        a, h = r["predictors"].get(pred, {}), r["predictors"].get(HUBER, {})
        if "mare" in a and "mare_point" in h and h["mare_point"] > 0:
            ratios.append(a["mare"] / h["mare_point"])
    if ratios and pred != HUBER:
        med, mx = float(np.median(ratios)), float(np.max(ratios))
        out.append(
            (
                f"median |rel error| <= {TARGETS['mare_median']}x Huber's on the median row",
                med <= TARGETS["mare_median"],
                f"median ratio {med:.2f} over {len(ratios)} rows",
            )
        )
        out.append((f"... and never above {TARGETS['mare_max']}x", mx <= TARGETS["mare_max"], f"max ratio {mx:.2f}"))
    g = olmo_target(rows, pred)
    if g is not None:
        out.append(
            (
                "OLMo 13B-5T C4 loss inside the 90% band",
                g["inside"],
                f"observed {g['observed']:.4f}, median {g['median']:.4f} ({100 * g['rel_error']:+.2f}%), 90% band {g['lo90']:.4f}-{g['hi90']:.4f}, width {100 * g['width']:.1f}% of the median",
            )
        )
    rh = [r["max_r_hat"] for r in recs if "max_r_hat" in r]
    finite = [x for x in rh if math.isfinite(x)]
    bad = [
        r
        for r in recs
        if math.isfinite(r.get("max_r_hat", float("nan"))) and r["max_r_hat"] > 1.01 and not r.get("modes")
    ]
    if finite:
        out.append(
            (
                "every fit r-hat <= 1.01 or reports its modes",
                not bad,
                f"{len(finite)} fits with r-hat, max {max(finite):.3f}; {len(bad)} above 1.01 without modes",
            )
        )
    else:
        out.append(
            (
                "every fit r-hat <= 1.01 or reports its modes",
                None,
                f"not measurable: {recs[0].get('method')} fits have no chains",
            )
        )
    return out


def _f(x: Any, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def render(res: dict[str, Any]) -> str:
    rows, meta = res["rows"], res["meta"]
    preds = meta["predictors"]
    L = [SECTION, ""]
    L.append(
        "Issue 15's check: every public dataset with (N, D, loss) runs, split in compute two ways, each predictor fitted on "
        "the train runs and scored on the held-out runs (`benchmarks/bench_extrapolation.py`). **This is measurement: no "
        "model was tuned on these data.**"
    )
    L.append("")
    L.append(
        "- Splits: `llo` = leave-largest-out 80/20 in compute (C = 6ND); `hard` = train on the bottom 50% of compute, "
        "test on the top 10%; `targets` (OLMo only) = all 30 ladder runs -> the 7B-4T and 13B-5T runs. Runs of equal "
        "compute are never split between train and test. `decades` = log10(largest test C / largest train C)."
    )
    L.append(
        f'- Predictors: `recommended` (the law average, `bs.load_spec("recommended")`, method `{meta["method"]}`); the single '
        f"laws ({', '.join(f'`{p}`' for p in preds if p not in (RECOMMENDED, CONFORMAL, HUBER))}; method `{meta['single_method']}`; "
        "`data_constrained` only where U < D somewhere); `huber` = Epoch-style Huber point fit (delta 1e-3 on log loss, "
        f"L-BFGS-B from the 8 best of Hoffmann's grid) with {meta['n_boot']} residual-bootstrap refits (`benchmarks/baselines.py`), "
        "on (N, D) only."
        + (
            f' `{CONFORMAL}` = the recommended setting with `calibrate="conformal"` (split-conformal 90% bands from '
            "the leave-future-out residuals; refused, an error in the table, where the splits hold fewer than 9 runs)."
            if CONFORMAL in preds
            else ""
        )
    )
    L.append(
        "- Metrics, from predictive draws of a new run's loss (`noise=True`): `cov50`/`cov90` = fraction of held-out losses "
        "inside the central 50%/90% intervals; `MLPD` = mean log predictive density of the observed *log* loss under a "
        "Gaussian KDE (Scott's bandwidth) of the draws of log loss (same estimator for every predictor); `MARE` = median "
        "|relative error| of the predictive median (Huber: `MARE pt` of its point fit too); `width` = median 90% width / "
        "median; `r-hat` = max r-hat (`-`: Laplace/PSIS/bootstrap have no chains); `misfit` = fit() raised a MisfitWarning; "
        "`s` = wall seconds for fit + prediction."
    )
    if meta.get("recommended_note"):
        L.append(
            f"- **`recommended` not run**: {meta['recommended_note']}. Its rows and target checks are missing until it lands; the targets are shown for each single law for reference."
        )
    if meta.get("quick"):
        L.append(f"- **Reduced run** (`--quick`): datasets {', '.join(meta['datasets'])}.")
    L.append("")
    L.append("Datasets (units and choices in the adapters' docstrings, `benchmarks/extrapolation_data.py`):")
    L.append("")
    for name, note in meta["notes"].items():
        L.append(f"- `{name}`: {note}")
    L.append("")
    L.append("### Targets")
    L.append("")
    for pred in [p for p in preds if p != HUBER and any(p in r["predictors"] for r in rows)]:
        checks = target_checks(rows, pred)
        L.append(
            f"`{pred}`:"
            + (" (the issue's targets are for `recommended`; shown for reference)" if pred != RECOMMENDED else "")
        )
        L.append("")
        for name, ok, numbers in checks:
            L.append(f"- {'N/A ' if ok is None else _ok(ok)} {name}: {numbers}")
        L.append("")
    L.append("### Pooled over rows")
    L.append("")
    L.append(
        "| predictor | rows | held-out runs | cov50 | cov90 | row-mean cov90 | min row cov90 | mean MLPD | median row MARE | silent misses | errors | mean s/row |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for pred in preds:
        recs = [r["predictors"][pred] for r in rows if pred in r["predictors"]]
        ok = [x for x in recs if "error" not in x]
        if not ok:
            continue
        p = pool(ok)
        L.append(
            f"| {pred} | {p['rows']} | {p['runs']} | {p['cov50']:.3f} | {p['cov90']:.3f} | {p['row_mean_cov90']:.3f} | "
            f"{p['min_row_cov90']:.2f} | {p['mlpd']:.2f} | {100 * p['median_mare']:.2f}% | {p['silent_misses']} | {len(recs) - len(ok)} | "
            f"{np.mean([x['wall'] for x in recs]):.1f} |"
        )
    L.append("")
    L.append("### OLMo targets (fit on the 30 ladder runs)")
    L.append("")
    L.append("| predictor | target | observed | median | rel. error | 90% band | inside | width |")
    L.append("|---|---|---|---|---|---|---|---|")
    for pred in preds:
        for label in ("olmo-7B-4T", "olmo-13B-5T"):
            g = olmo_target(rows, pred, label)
            if g:
                L.append(
                    f"| {pred} | {label[5:]} | {g['observed']:.4f} | {g['median']:.4f} | {100 * g['rel_error']:+.2f}% | "
                    f"{g['lo90']:.4f}-{g['hi90']:.4f} | {'yes' if g['inside'] else 'no'} | {100 * g['width']:.1f}% |"
                )
    L.append("")
    L.append(
        "The ladder paper's own point fit (16 runs, Huber) predicts 13B-5T at 2.3444 against 2.4379 (-3.83%) and 7B-4T at 2.4337 against 2.4829 (-1.98%; SOURCE.md)."
    )
    L.append("")
    L.append("### Per row")
    for pred in preds:
        L.append("")
        L.append(f"`{pred}`:")
        L.append("")
        extra = " | MARE pt" if pred == HUBER else ""
        L.append(
            f"| dataset | split | train -> test | decades | cov50 | cov90 | MLPD | MARE{extra} | width | r-hat | misfit | s |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if extra else ""))
        for row in rows:
            r = row["predictors"].get(pred)
            if r is None:
                continue
            head = f"| {row['dataset']} | {row['split']} | {row['n_train']} -> {row['n_test']} | {row['decades']:.2f} |"
            if "error" in r:
                L.append(head + f" error: {r['error'][:120].replace('|', '/')} |" + " |" * (7 + bool(extra)))
                continue
            pt = f" | {100 * r['mare_point']:.2f}%" if extra else ""
            modes = f" modes: {r['modes']}" if r.get("modes") else ""
            L.append(
                head
                + f" {r['cov50']:.2f} | {r['cov90']:.2f} | {r['mlpd']:.2f} | {100 * r['mare']:.2f}%{pt} | {100 * r['width90']:.1f}% | "
                f"{_f(r.get('max_r_hat'), '.3f')}{modes} | {'yes' if r.get('misfit_warned') else 'no'} | {r['wall']:.1f} |"
            )
    wrows = [(row, row["predictors"].get(RECOMMENDED, {}).get("weights")) for row in rows]
    if any(w for _, w in wrows):
        L.append("")
        L.append("### Law weights of `recommended`")
        L.append("")
        for row, w in wrows:
            if w:
                L.append(
                    f"- {row['dataset']}/{row['split']}: "
                    + ", ".join(f"{k} {v:.2f}" for k, v in sorted(w.items(), key=lambda kv: -kv[1]))
                )
    L.append("")
    L.append(res["footer"])
    L.append("")
    return "\n".join(L)


def footer(argv: list[str], t_total: float, loads: list[float], jobs: int) -> str:
    import jax
    import numpyro
    from bench_brier import git_commit

    import bayescale

    cmd = " ".join(
        shlex.quote(a) for a in ["PYTHONPATH=. nice .venv/bin/python", "benchmarks/bench_extrapolation.py", *argv]
    )
    return (
        f"Run: `{cmd}` on {_dt.date.today().isoformat()}, commit {git_commit()}; {platform.platform()}, {os.cpu_count()} CPUs, "
        f"{jobs} worker process(es), no GPU; Python {platform.python_version()}, bayescale {bayescale.__version__}, numpyro "
        f"{numpyro.__version__}, jax {jax.__version__}, numpy {np.__version__}, scipy {scipy.__version__}. Total {t_total / 60:.1f} min; "
        f"1-minute load average {min(loads):.1f}-{max(loads):.1f} (the machine is shared: wall times are inflated when it exceeds the CPUs)."
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data",
        help="public data folder (default <repo>/../shared/data)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    ap.add_argument("--json", type=Path, default=None, help="write all numbers here")
    ap.add_argument(
        "--render-json", type=Path, default=None, help="re-render the section from a --json file; fits nothing"
    )
    ap.add_argument(
        "--quick", action="store_true", help="2 Porian configurations (not 15), method laplace, 200 bootstrap refits"
    )
    ap.add_argument(
        "--method",
        choices=["nuts", "laplace", "psis"],
        default=None,
        help="for recommended (default nuts; --quick: laplace)",
    )
    ap.add_argument(
        "--single-method",
        choices=["nuts", "laplace", "psis"],
        default=None,
        help="for the single laws (default: --method)",
    )
    ap.add_argument(
        "--only", default=None, help="comma-separated dataset name prefixes (e.g. chinchilla,porian:rw,olmo)"
    )
    ap.add_argument("--splits", default=None, help="comma-separated splits (llo,hard,targets)")
    ap.add_argument(
        "--predictors",
        default=None,
        help=f"comma-separated, of {RECOMMENDED},{CONFORMAL},{','.join(SINGLE_LAWS)},{HUBER}",
    )
    ap.add_argument("--n-boot", type=int, default=None, help="bootstrap refits of the Huber fit (400; --quick 200)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes, one row each at a time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print the section, leave --out alone")
    ap.add_argument(
        "--brier",
        action="store_true",
        help="run the earlier harness's Part 2 (Brier, benchmarks/bench_brier.py) instead",
    )
    args = ap.parse_args(argv)
    args.method = args.method or ("laplace" if args.quick else "nuts")
    args.n_boot = args.n_boot or (200 if args.quick else 400)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.brier:
        import bench_brier

        return bench_brier.main(["--skip-llo", "--out", str(args.out)] + (["--quick"] if args.quick else []))
    if args.render_json:
        res = json.loads(args.render_json.read_text())
        body = render(res)
        print(body)
        if not args.no_write:
            from bench_brier import write_sections

            write_sections(args.out, {SECTION: body})
        return 0
    import extrapolation_data as ed

    t_start, loads = time.perf_counter(), [os.getloadavg()[0]]
    data = ed.load_all(args.data, quick=args.quick)
    if args.quick:
        data = {k: v for k, v in data.items() if k.split(":")[0] in QUICK_SETS}
    if args.only:
        pre = [p.strip() for p in args.only.split(",") if p.strip()]
        data = {k: v for k, v in data.items() if any(k.startswith(p) for p in pre)}
    preds = [p.strip() for p in args.predictors.split(",")] if args.predictors else [RECOMMENDED, *SINGLE_LAWS, HUBER]
    note = recommended_available() if RECOMMENDED in preds else None
    if note:
        log(f"recommended setting not available, skipped: {note}")
        preds.remove(RECOMMENDED)
    tasks = make_tasks(data, preds, args)
    if args.splits:
        keep = {s.strip() for s in args.splits.split(",")}
        tasks = [t for t in tasks if t["split"] in keep]
    log(f"{len(tasks)} rows x up to {len(preds)} predictors ({', '.join(preds)}); {args.jobs} job(s)")
    rows = run_tasks(tasks, args.jobs)
    loads.append(os.getloadavg()[0])
    meta = {
        "predictors": preds,
        "method": args.method,
        "single_method": args.single_method or args.method,
        "n_boot": args.n_boot,
        "quick": args.quick,
        "datasets": list(data),
        "notes": {k: v.note for k, v in data.items()},
        "recommended_note": note,
        "seed": args.seed,
    }
    res = {"meta": meta, "rows": rows, "footer": footer(argv, time.perf_counter() - t_start, loads, args.jobs)}
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=float))
    body = render(res)
    print(body)
    if not args.no_write:
        from bench_brier import write_sections

        write_sections(args.out, {SECTION: body})
    log(f"done in {(time.perf_counter() - t_start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
