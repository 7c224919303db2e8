#!/usr/bin/env python
"""Extrapolation calibration on public data (first version), and decision calibration on synthetic worlds.

This is the harness of the earlier releases, kept as it was. The issue-15 table (every dataset,
two splits, every law, the recommended law average) is ``benchmarks/bench_extrapolation.py``,
which runs Part 2 below with ``--brier``.

Part 1, leave-largest-out: for each public dataset, fit on the 80% of runs with the least compute
and score the predictions for the 20% with the most (``bayescale.checks.leave_largest_out``):

* Chinchilla (Hoffmann et al. 2022, digitised by Epoch AI): 240 runs.
* Porian et al. (2024) isoFLOP points, one fit per configuration (dataset x hyper-parameters x
  warmup x LR decay x parameter count x train/val loss): all 15 configurations (``--quick``: 4).
* datablations (Muennighoff et al. 2023): the single-epoch runs (unique tokens >= tokens), where
  the Chinchilla law applies without a repetition term.
* GPT-3 learning curves (Brown et al. 2020, digitised by ColPret): points along each of the 8
  curves as (N, D, loss) observations, 20 per size log-spaced in D from 20B to 295B tokens.

Three predictors per dataset: bayescale with the recommended spec (``models/chinchilla.toml``,
which has an ``[extrapolation] per_decade`` drift prior), the same spec without the drift prior,
and an Epoch-style Huber point fit with residual-bootstrap intervals (``benchmarks/baselines.py``).
The drift does not enter the likelihood (the runs cannot inform it), so the fit without it has
exactly the same posterior draws of the law's parameters: the "no drift" rows and the drift-scale
sweep reuse the recommended fit with the drift draws removed or redrawn at another scale.

Part 2, Brier score: on seeded synthetic worlds with a known Chinchilla-law truth, P(loss <=
threshold) at a target 100-1000x beyond the pilots, from ``bayescale.decide`` (Laplace for all
worlds, NUTS for a subset) against a plug-in point fit and the bootstrap, for thresholds placed
within one noise sd of the truth (design A) and at the scale of the extrapolation uncertainty
(design B), and the coverage of the predictive intervals at the target.

Writes the sections ``## Extrapolation calibration: leave-largest-out on public data`` and
``## Decision calibration: Brier score on synthetic worlds`` of ``--out`` (default BENCHMARKS.md),
leaving every other section as it is (the file is created if missing).

Usage::

    .venv/bin/python benchmarks/bench_brier.py            # full run (~20 min on 2 cores)
    .venv/bin/python benchmarks/bench_brier.py --quick    # reduced run
    .venv/bin/python benchmarks/bench_brier.py --data /path/to/shared/data --json out.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

SECTION_LLO = "## Extrapolation calibration: leave-largest-out on public data"
SECTION_BRIER = "## Decision calibration: Brier score on synthetic worlds"
SPEC_PATH = REPO / "models" / "chinchilla.toml"
HOLDOUT = 0.2
LEVELS = (0.5, 0.8, 0.9, 0.95)
SWEEP = (0.01, 0.02, 0.03, 0.05)
FINE_SCALES = (0.0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3)
TARGET = (0.80, 0.97)

from extrapolation_data import GPT3_D_MAX, GPT3_D_MIN, GPT3_N, GPT3_PER_SIZE, PORIAN_KEYS  # noqa: E402  (one home)

# --quick: the first and the last step of Porian et al.'s path from Kaplan's to Chinchilla's
# exponent, on both datasets.
PORIAN_QUICK = [
    ("summary_df", "rw", "base", "long", "kaplan", "kaplan", "train"),
    ("summary_df", "rw", "tuned", "short", "const", "standard", "val"),
    ("summary_df_owt2", "owt2", "base", "long", "kaplan", "kaplan", "train"),
    ("summary_df_owt2", "owt2", "tuned", "short", "const", "standard", "val"),
]

# Synthetic worlds: truths around Epoch's fit (E, A, B, alpha, beta = 1.8172, 482.01, 2085.43,
# 0.3478, 0.3658) with spreads of the order of its bootstrap standard errors.
EPOCH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
PILOT_N = (1e7, 3e7, 1e8, 3e8)
PILOT_RATIOS = (5.0, 20.0, 80.0)
WORLD_SIGMA = 0.01


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ data


def load_datasets(data: Path, quick: bool) -> dict[str, dict[str, Any]]:
    """name -> {runs, note, group}; Porian configurations are grouped under "porian"."""
    import numpy as np
    import pandas as pd

    os.environ["BAYESCALE_DATA"] = str(data)
    from bayescale.datasets import load_chinchilla, load_datablations

    out: dict[str, dict[str, Any]] = {}
    ch = load_chinchilla()
    out["chinchilla"] = {
        "runs": ch[["run_id", "N", "D", "C", "loss"]],
        "group": "chinchilla",
        "note": f"Epoch's digitised Hoffmann runs, {len(ch)} (5 highest losses dropped, as Epoch)",
    }

    db = load_datablations()
    single = db[db["unique_tokens"] >= db["D"] * (1 - 1e-9)].reset_index(drop=True)
    if single["run_name"].is_unique:  # readable ids, e.g. 8b712b12b = 8.7B params, 12B tokens, 12B unique
        single["run_id"] = single["run_name"]
    out["datablations"] = {
        "runs": single[["run_id", "N", "D", "C", "loss"]],
        "group": "datablations",
        "note": f"{len(single)} of {len(db)} runs have one epoch (unique tokens >= tokens)",
    }

    g = pd.read_csv(data / "gpt3-curves" / "extracted.csv")
    grid = np.exp(np.linspace(math.log(GPT3_D_MIN), math.log(GPT3_D_MAX), GPT3_PER_SIZE))
    half = 0.5 * (math.log(grid[1]) - math.log(grid[0]))
    rows = []
    for name, n in GPT3_N.items():
        c = g[g["model"] == name]
        c = c[c["val_loss"].notna()]
        logd = np.log(c["step"].to_numpy(float) * 1e9)
        loss = c["val_loss"].to_numpy(float)
        for k, d in enumerate(grid):
            sel = np.abs(logd - math.log(d)) <= half
            if sel.sum() == 0:
                continue
            rows.append(
                {
                    "run_id": f"gpt3-{name}-{k:02d}",
                    "N": n,
                    "D": float(np.exp(np.median(logd[sel]))),
                    "loss": float(np.median(loss[sel])),
                }
            )
    gp = pd.DataFrame(rows)
    gp["C"] = 6 * gp["N"] * gp["D"]
    out["gpt3"] = {
        "runs": gp[["run_id", "N", "D", "C", "loss"]],
        "group": "gpt3",
        "note": f"{len(gp)} points: 8 curves x {GPT3_PER_SIZE} log-spaced D in [{GPT3_D_MIN:.0e}, {GPT3_D_MAX:.3g}] tokens "
        "(median of the digitised `val_loss` points within each log-D bin; the file's `train_loss` is a second, "
        "~0.04 nats lower series); D < 20B (the early transient of each curve) excluded; N from Brown et al. Table 2.1",
    }

    p = pd.read_csv(data / "porian" / "isoflop_points.csv")
    keys = [tuple(k) for k, _ in p.groupby(PORIAN_KEYS, sort=True)]
    if quick:
        keys = [k for k in keys if k in PORIAN_QUICK]
    for k in keys:
        sub = p[(p[PORIAN_KEYS].apply(tuple, axis=1)) == k].reset_index(drop=True)
        label = "porian:" + "/".join(k[1:])
        runs = pd.DataFrame(
            {
                "run_id": [f"porian-{i:03d}" for i in range(len(sub))],
                "N": sub["n_params"].to_numpy(float),
                "D": sub["tokens"].to_numpy(float),
                "loss": sub["loss"].to_numpy(float),
            }
        )
        runs["C"] = 6 * runs["N"] * runs["D"]
        out[label] = {
            "runs": runs[["run_id", "N", "D", "C", "loss"]],
            "group": "porian",
            "config": k,
            "note": f"{k[0]} {'/'.join(k[1:])}: {len(sub)} isoFLOP points",
        }
    return out


def split(runs: Any) -> tuple[Any, Any]:
    """The split leave_largest_out makes: the top 20% by compute (stable sort) held out."""
    import numpy as np

    order = np.argsort(runs["C"].to_numpy(float), kind="stable")
    n_test = max(1, round(HOLDOUT * len(runs)))
    return runs.iloc[order[:-n_test]].reset_index(drop=True), runs.iloc[order[-n_test:]].reset_index(drop=True)


# ------------------------------------------------------------------ bayescale


def with_drift(fit: Any, scale: float | None, seed: int = 0) -> Any:
    """The same fit with the extrapolation drift prior replaced by HalfNormal(scale), or removed.

    The drift does not enter the likelihood, so fitting the modified spec would give the same law
    draws; only the drift draws change (same seed for every scale, so the draws scale with it).
    """
    import numpy as np

    import bayescale as bs
    from bayescale.model import add_drift

    d = fit.spec.to_dict()
    d.pop("extrapolation", None)
    if scale:
        d["extrapolation"] = {"per_decade": {"dist": "HalfNormal", "scale": float(scale)}}
    spec = bs.load_spec(d)
    post = fit.idata.posterior
    if "drift" in post:
        post = post.drop_vars("drift")
    if scale:
        samples = {"sigma": post["sigma"].values}
        add_drift(spec, samples, np.random.default_rng(seed))
        post = post.assign(drift=(("chain", "draw"), samples["drift"]))
    idata = fit.idata.copy()
    idata.posterior = post
    return dataclasses.replace(fit, spec=spec, idata=idata)


def score_table(table: Any) -> dict[str, Any]:
    import numpy as np

    from bayescale.checks import coverage

    cov = coverage(table["pit"].to_numpy(float), LEVELS)
    width = (table["hi90"] - table["lo90"]) / table["median"]
    return {
        "coverage": {str(k): v for k, v in cov.items()},
        "mlpd": float(table["log_pred_density"].mean()),
        "median_abs_rel_error": float(np.median(np.abs(table["rel_error"]))),
        "width90": float(np.median(width)),
        "pit": [float(x) for x in table["pit"]],
    }


def run_bayescale(name: str, runs: Any, spec: Any, seed: int) -> dict[str, Any]:
    import numpy as np

    from bayescale.checks import leave_largest_out, predictive_table

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v = leave_largest_out(spec, runs, holdout_top=HOLDOUT, seed=seed, method="nuts")
    wall = time.perf_counter() - t0
    diag = v.fit.diagnostics()
    test = split(runs)[1]
    assert sorted(v.table["run_id"]) == sorted(test["run_id"].astype(str)), "split differs from leave_largest_out's"
    rec = score_table(v.table)
    rec.update(n_train=v.n_train, n_test=len(v.table), wall=wall, cut=v.cut)
    decades = np.log10(test["C"].to_numpy(float) / v.cut)
    t = v.table.set_index("run_id").loc[test["run_id"].astype(str)]
    out = {
        "recommended": rec,
        "held_out": [
            {
                "run_id": rid,
                "N": float(r["N"]),
                "D": float(r["D"]),
                "C": float(r["C"]),
                "observed": float(r["observed"]),
                "median": float(r["median"]),
                "lo90": float(r["lo90"]),
                "hi90": float(r["hi90"]),
                "pit": float(r["pit"]),
                "decades": float(dec),
            }
            for (rid, r), dec in zip(t.iterrows(), decades)
        ],
        "decades_max": float(decades.max()),
        "decades_median": float(np.median(decades)),
        "diagnostics": {
            "divergences": int(diag["divergences"]),
            "max_r_hat": float(diag["max_r_hat"]),
            "min_ess_bulk": float(diag["min_ess_bulk"]),
            "min_ess_tail": float(diag["min_ess_tail"]),
            "warnings": sorted({w.category.__name__ for w in caught}),
        },
    }
    t1 = time.perf_counter()
    nd = score_table(predictive_table(with_drift(v.fit, None), test, seed=seed))
    nd.update(n_train=v.n_train, n_test=len(test), wall=wall, cut=v.cut)
    out["no_drift"] = nd
    sweep = {}
    for s in FINE_SCALES:
        t = predictive_table(with_drift(v.fit, s, seed=seed + 1), test, seed=seed)
        sc = score_table(t)
        sweep[f"{s:g}"] = {"coverage": sc["coverage"], "mlpd": sc["mlpd"]}
    out["sweep"] = sweep
    out["sweep_seconds"] = time.perf_counter() - t1
    log(
        f"{name}: bayescale {wall:.1f}s; rec cov90 {rec['coverage']['0.9']:.2f}, no-drift {nd['coverage']['0.9']:.2f}, "
        f"diag div {diag['divergences']} rhat {diag['max_r_hat']:.3f}"
    )
    return out


def run_baseline(name: str, runs: Any, n_boot: int, seed: int) -> dict[str, Any]:
    import baselines as bl
    import numpy as np

    from bayescale.checks import coverage

    train, test = split(runs)
    t0 = time.perf_counter()
    pf = bl.huber_fit(train["N"], train["D"], train["loss"])
    pf = bl.bootstrap(pf, train["N"], train["D"], n_boot=n_boot, seed=seed)
    draws = bl.predictive_log_draws(pf, test["N"], test["D"], seed=seed)
    wall = time.perf_counter() - t0
    y = np.log(test["loss"].to_numpy(float))
    s = bl.score_draws(draws, y)
    med = np.exp(s["median"])
    out = {
        "coverage": {str(k): v for k, v in coverage(s["pit"], LEVELS).items()},
        "mlpd": float(np.mean(s["log_pred_density"])),
        "mlpd_gauss": float(np.mean(s["log_pred_density_gauss"])),
        "median_abs_rel_error": float(np.median(np.abs(med / np.exp(y) - 1))),
        "median_abs_rel_error_point": float(
            np.median(np.abs(np.exp(pf.predict_log(test["N"], test["D"])) / np.exp(y) - 1))
        ),
        "width90": float(np.median((np.exp(s["hi90"]) - np.exp(s["lo90"])) / med)),
        "n_train": len(train),
        "n_test": len(test),
        "wall": wall,
        "n_boot": n_boot,
        "boot_failures": pf.boot_failures,
        "params": pf.params,
        "residual_sd": pf.residual_sd,
        "pit": [float(x) for x in s["pit"]],
    }
    log(
        f"{name}: baseline {wall:.1f}s; cov90 {out['coverage']['0.9']:.2f}; {pf.boot_failures}/{n_boot} refits not converged"
    )
    return out


# ------------------------------------------------------------------ Brier


def draw_truth(rng: Any) -> dict[str, float]:
    return {
        "E": EPOCH["E"] * math.exp(0.03 * rng.standard_normal()),
        "A": EPOCH["A"] * math.exp(0.25 * rng.standard_normal()),
        "B": EPOCH["B"] * math.exp(0.5 * rng.standard_normal()),
        "alpha": EPOCH["alpha"] + 0.02 * rng.standard_normal(),
        "beta": EPOCH["beta"] + 0.02 * rng.standard_normal(),
    }


THRESHOLD_DESIGNS = {
    # name: (sd of the threshold's offset from the true loss, in log loss, as u * scale with u ~ U(-1, 1))
    "A": WORLD_SIGMA,  # the threshold within one noise sd of the truth: P_true = Phi(u) in [0.16, 0.84]
    "B": 0.05,  # offsets at the scale of the extrapolation uncertainty: P_true = Phi(5 u) in [0, 1]
}


def _forecasts(
    row: dict[str, Any], fit: Any, prefix: str, target: dict[str, Any], probes: list[tuple[str, float]], seed: int
) -> None:
    """P(loss <= t) at the target through the public decision API, for each threshold and for t = y_obs (the PIT)."""
    import bayescale as bs

    for name, thr in probes:
        dec = bs.decide(target, fit=fit, threshold=thr, noise=True, seed=seed)
        row[f"{prefix}_{name}"] = float(dec.table.loc["target", "p_below"])


def run_brier(n_worlds: int, n_nuts: int, n_boot: int, seed: int) -> dict[str, Any]:
    import baselines as bl
    import numpy as np
    import scipy.stats

    import bayescale as bs
    from bayescale.testing import synthetic_runs

    spec = bs.load_spec(SPEC_PATH)
    rng = np.random.default_rng(seed)
    rows = []
    t_lap = t_nuts = t_base = 0.0
    for w in range(n_worlds):
        truth = draw_truth(rng)
        runs = synthetic_runs(
            "chinchilla", truth, N=PILOT_N, tokens_per_param=PILOT_RATIOS, sigma=WORLD_SIGMA, seed=10_000 + w
        )
        cmax = float(runs["C"].max())
        mult = math.exp(rng.uniform(math.log(100), math.log(1000)))
        ratio = math.exp(rng.uniform(math.log(10), math.log(40)))
        c_star = mult * cmax
        n_star = math.sqrt(c_star / (6 * ratio))
        d_star = ratio * n_star
        l_true = truth["E"] + truth["A"] / n_star ** truth["alpha"] + truth["B"] / d_star ** truth["beta"]
        # one new run at the target, with the pilots' noise: the realised outcome
        y_obs = l_true * math.exp(WORLD_SIGMA * rng.standard_normal())
        row = {
            "world": w,
            "mult": mult,
            "ratio": ratio,
            "N": n_star,
            "D": d_star,
            "L_true": l_true,
            "y_obs": y_obs,
            **{f"true_{k}": v for k, v in truth.items()},
        }
        thresholds = {}
        for name, scale in THRESHOLD_DESIGNS.items():
            u = rng.uniform(-1.0, 1.0)
            thr = l_true * math.exp(u * scale)
            thresholds[name] = thr
            row[f"thr_{name}"] = thr
            row[f"ptrue_{name}"] = float(scipy.stats.norm.cdf(u * scale / WORLD_SIGMA))  # P(y_obs <= thr | truth)
            row[f"y_{name}"] = float(y_obs <= thr)
        target = {"target": {"N": n_star, "D": d_star}}

        probes = [*thresholds.items(), ("pit", y_obs)]

        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = bs.fit(spec, runs, seed=w, method="laplace")
        _forecasts(row, f, "laplace", target, probes, w)
        _forecasts(row, with_drift(f, None), "laplace_nodrift", target, probes, w)
        t_lap += time.perf_counter() - t0
        if w < n_nuts:
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                f = bs.fit(spec, runs, seed=w, method="nuts")
            _forecasts(row, f, "nuts", target, probes, w)
            _forecasts(row, with_drift(f, None), "nuts_nodrift", target, probes, w)
            diag = f.diagnostics()
            row["nuts_divergences"] = int(diag["divergences"])
            row["nuts_min_ess_bulk"] = float(diag["min_ess_bulk"])
            row["nuts_max_r_hat"] = float(diag["max_r_hat"])
            row["nuts_warned"] = any(issubclass(c.category, bs.ConvergenceWarning) for c in caught)
            t_nuts += time.perf_counter() - t0
        t0 = time.perf_counter()
        pf = bl.huber_fit(runs["N"], runs["D"], runs["loss"])
        for name, thr in [*thresholds.items(), ("pit", y_obs)]:
            row[f"plugin_{name}"] = bl.plugin_probability(pf, n_star, d_star, thr)
        pf = bl.bootstrap(pf, runs["N"], runs["D"], n_boot=n_boot, seed=w)
        for name, thr in [*thresholds.items(), ("pit", y_obs)]:
            row[f"bootstrap_{name}"] = bl.bootstrap_probability(pf, n_star, d_star, thr, seed=w)
        t_base += time.perf_counter() - t0
        log(
            f"world {w}: x{mult:.0f} compute; design A P_true {row['ptrue_A']:.2f}: laplace {row['laplace_A']:.2f} "
            f"(no drift {row['laplace_nodrift_A']:.2f})"
            + (f", nuts {row['nuts_A']:.2f}" if "nuts_A" in row else "")
            + f", plug-in {row['plugin_A']:.2f}, bootstrap {row['bootstrap_A']:.2f}; PIT laplace {row['laplace_pit']:.2f}, "
            f"plug-in {row['plugin_pit']:.2f}"
        )
        rows.append(row)
    return {
        "rows": rows,
        "seconds": {"laplace": t_lap, "nuts": t_nuts, "baseline": t_base},
        "n_worlds": n_worlds,
        "n_nuts": n_nuts,
        "n_boot": n_boot,
    }


BRIER_METHODS = {
    "laplace": "bayescale, Laplace, recommended spec (drift prior)",
    "laplace_nodrift": "bayescale, Laplace, no drift prior",
    "nuts": "bayescale, NUTS, recommended spec (drift prior)",
    "nuts_nodrift": "bayescale, NUTS, no drift prior",
    "plugin": "plug-in point fit (Huber fit + residual sd)",
    "bootstrap": "Epoch-style residual bootstrap",
}


def brier_scores(rows: list[dict[str, Any]], methods: list[str], design: str) -> dict[str, Any]:
    """Expected Brier (under the truth's outcome probability) and realised Brier, mean and SE, on the
    worlds where every method is present; paired differences against the plug-in; interval coverage of
    the realised outcome (from the PIT)."""
    import numpy as np

    from bayescale.checks import coverage

    sub = [r for r in rows if all(f"{m}_{design}" in r for m in methods)]
    out: dict[str, Any] = {"n": len(sub), "methods": {}}
    if not sub:
        return out
    P = np.array([r[f"ptrue_{design}"] for r in sub])
    Y = np.array([r[f"y_{design}"] for r in sub])

    def se(x):
        return float(np.std(x, ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")

    exp_b = {}
    for m in methods:
        p = np.array([r[f"{m}_{design}"] for r in sub])
        exp_b[m] = (p - P) ** 2 + P * (1 - P)
        real = (p - Y) ** 2
        pit = np.array([r[f"{m}_pit"] for r in sub])
        out["methods"][m] = {
            "expected": float(exp_b[m].mean()),
            "expected_se": se(exp_b[m]),
            "realised": float(real.mean()),
            "realised_se": se(real),
            "mean_abs_error_prob": float(np.mean(np.abs(p - P))),
            "coverage": {str(k): v for k, v in coverage(pit, (0.5, 0.9)).items()},
        }
    for m in methods:
        d = exp_b[m] - exp_b["plugin"]
        out["methods"][m].update(diff_vs_plugin=float(d.mean()), diff_vs_plugin_se=se(d))
        if "bootstrap" in exp_b:
            d = exp_b[m] - exp_b["bootstrap"]
            out["methods"][m].update(diff_vs_bootstrap=float(d.mean()), diff_vs_bootstrap_se=se(d))
    out["oracle"] = float(np.mean(P * (1 - P)))
    out["half"] = float(np.mean((0.5 - P) ** 2 + P * (1 - P)))
    return out


def _verdict(m: dict[str, Any]) -> tuple[str, float]:
    z = m["diff_vs_plugin"] / m["diff_vs_plugin_se"] if m["diff_vs_plugin_se"] > 0 else float("nan")
    return ("beats" if z < -2 else ("loses to" if z > 2 else "is not distinguishable from")), z


# ------------------------------------------------------------------ report


def fmt_cov(c: dict[str, float]) -> str:
    return " | ".join(f"{c[str(k)]:.2f}" for k in LEVELS)


def _misses(pit: list[float]) -> str:
    """Held-out runs below the 90% interval (observed lower than predicted) / above it."""
    return f"{sum(p < 0.05 for p in pit)} / {sum(p > 0.95 for p in pit)}"


def needed_scale(sweep: dict[str, Any]) -> str:
    """Smallest drift scale whose 90% coverage reaches 0.80 (and reaches 0.90), from the fine sweep."""
    scales = [float(s) for s in sweep]
    cov = [sweep[s]["coverage"]["0.9"] for s in sweep]
    lo = next((s for s, c in zip(scales, cov) if c >= TARGET[0]), None)
    nom = next((s for s, c in zip(scales, cov) if c >= 0.9), None)

    def f(s):
        return "none reached" if s is None else f"{s:g}"

    return f"{f(lo)} / {f(nom)}"


def met(c: float) -> str:
    return "yes" if TARGET[0] <= c <= TARGET[1] else ("no (over)" if c > TARGET[1] else "no (under)")


def report_llo(res: dict[str, Any], meta: dict[str, Any]) -> str:
    L = [SECTION_LLO, ""]
    L.append(
        "Does a 90% interval from pilot runs cover the bigger runs 90% of the time? For each public dataset the "
        f"runs are sorted by compute C = 6ND; the top {100 * HOLDOUT:g}% are held out, the law is fitted to the rest, and "
        "each held-out run's observed loss is scored against the predictive distribution of a new run's loss "
        "(law + extrapolation drift + run-to-run noise): central-interval coverage at 50/80/90/95%, the held-out runs "
        "outside the 90% interval below it (loss better than predicted) and above it (worse), mean log "
        "predictive density of log loss (higher is better), median |relative error| of the predictive median, "
        "and the median width of the 90% interval relative to the median. "
        f"**Target: 90% coverage between {TARGET[0]:.2f} and {TARGET[1]:.2f} with the recommended spec on each dataset.**"
    )
    L.append("")
    L.append("Predictors:")
    L.append("")
    L.append(
        "- **bayescale (recommended)**: `models/chinchilla.toml` (Student-t likelihood on log loss, df 4; "
        "`[extrapolation] per_decade = HalfNormal(0.02)`), NUTS 4 chains x 1000 warmup + 1000 draws, seed 0, "
        "through `bayescale.checks.leave_largest_out`."
    )
    L.append(
        "- **bayescale, no drift**: the same spec without `[extrapolation]`. The drift is not in the likelihood, so "
        "this is the same posterior with the drift draws removed (no refit)."
    )
    L.append(
        f"- **Epoch-style baseline** (`benchmarks/baselines.py`, what a user would do today): Huber loss (delta 1e-3) on "
        "log-loss residuals, log-sum-exp parametrisation, L-BFGS-B from the 8 best points of Hoffmann's 4500-point "
        f"grid; {meta['n_boot']} residual-bootstrap refits (warm-started at the best fit); predictive draws = bootstrap "
        "prediction + a resampled training residual (8 per refit); log predictive density from a Gaussian KDE of "
        "those draws."
    )
    L.append("")
    L.append("Data (`shared/data`, read directly by the benchmark):")
    L.append("")
    for name, d in meta["datasets"].items():
        if d["group"] != "porian":
            L.append(f"- `{name}`: {d['note']}.")
    porian = [n for n, d in meta["datasets"].items() if d["group"] == "porian"]
    if porian:
        L.append(
            f"- `porian`: Porian et al. isoFLOP points (`porian/isoflop_points.csv`), {len(porian)} configurations "
            f"({'all' if not meta['quick'] else 'a subset'}: `dataset/hparams/warmup/decay/param_count/loss`), each fitted "
            "separately; `porian (pooled)` pools the held-out runs of all configurations."
        )
    L.append("")
    # main table
    L.append(
        "| dataset | predictor | n train | n test | decades beyond (median / max) | cov 50% | cov 80% | cov 90% | cov 95% "
        "| misses below / above 90% | mean log pred. density | median abs rel error | 90% width | wall s | target met |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = _rows_for_table(res)
    for name, r in rows:
        b = r["bayescale"]
        dec = f"{b['decades_median']:.2f} / {b['decades_max']:.2f}"
        for label, key in (
            ("bayescale (recommended)", "recommended"),
            ("bayescale, no drift", "no_drift"),
            ("Epoch-style baseline", "baseline"),
        ):
            x = b[key] if key != "baseline" else r["baseline"]
            tgt = met(x["coverage"]["0.9"]) if key == "recommended" else ""
            wall = f"{x['wall']:.0f}" if key != "no_drift" else "(same fit)"
            L.append(
                f"| {name} | {label} | {x['n_train']} | {x['n_test']} | {dec} | {fmt_cov(x['coverage'])} | {_misses(x['pit'])} | {x['mlpd']:.2f} | "
                f"{100 * x['median_abs_rel_error']:.2f}% | {100 * x['width90']:.1f}% | {wall} | {tgt} |"
            )
    L.append("")
    L.append(
        "Wall times include JIT compilation and the machine's load (see the footer); for porian (pooled) they are sums. "
        "NUTS diagnostics per fit (divergences, max r-hat, min bulk ESS): "
        + "; ".join(
            f"{n}: {v['bayescale']['diagnostics']['divergences']}, {v['bayescale']['diagnostics']['max_r_hat']:.3f}, "
            f"{v['bayescale']['diagnostics']['min_ess_bulk']:.0f}"
            for n, v in res.items()
        )
        + "."
    )
    L.append("")
    # porian per config
    if porian:
        L.append("Porian et al., per configuration (90% coverage; n test held out of n):")
        L.append("")
        L.append(
            "| configuration | n train / test | decades max | bayescale (rec.) | misses below / above (rec.) | no drift | baseline "
            "| 90% width rec. / baseline | LPD rec. / baseline | median abs rel err rec. / baseline | drift scale for 0.80 / 0.90 |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for n in porian:
            b, bl = res[n]["bayescale"], res[n]["baseline"]
            L.append(
                f"| {n.split(':', 1)[1]} | {b['recommended']['n_train']} / {b['recommended']['n_test']} | {b['decades_max']:.2f} | "
                f"{b['recommended']['coverage']['0.9']:.2f} | {_misses(b['recommended']['pit'])} | {b['no_drift']['coverage']['0.9']:.2f} | {bl['coverage']['0.9']:.2f} | "
                f"{100 * b['recommended']['width90']:.1f}% / {100 * bl['width90']:.1f}% | "
                f"{b['recommended']['mlpd']:.2f} / {bl['mlpd']:.2f} | {100 * b['recommended']['median_abs_rel_error']:.2f}% / "
                f"{100 * bl['median_abs_rel_error']:.2f}% | {needed_scale(b['sweep'])} |"
            )
        L.append("")
    # sweep
    L.append(
        "Drift scale: 90% coverage of the held-out runs with `per_decade = HalfNormal(scale)` (same posterior, drift redrawn; "
        "0 = no drift). The last column is the smallest scale of a finer sweep "
        f"({', '.join(f'{s:g}' for s in FINE_SCALES)}) at which the 90% coverage reaches 0.80 / reaches 0.90."
    )
    L.append("")
    L.append("| dataset | 0 | " + " | ".join(f"{s:g}" for s in SWEEP) + " | scale needed for 0.80 / 0.90 |")
    L.append("|---|---|" + "---|" * len(SWEEP) + "---|")
    for name, r in rows:
        sw = r["bayescale"]["sweep"]
        L.append(
            f"| {name} | {sw['0']['coverage']['0.9']:.2f} | "
            + " | ".join(f"{sw[f'{s:g}']['coverage']['0.9']:.2f}" for s in SWEEP)
            + f" | {needed_scale(sw)} |"
        )
    L.append("")
    L.append("Mean log predictive density for the same scales:")
    L.append("")
    L.append("| dataset | 0 | " + " | ".join(f"{s:g}" for s in SWEEP) + " |")
    L.append("|---|---|" + "---|" * len(SWEEP))
    for name, r in rows:
        sw = r["bayescale"]["sweep"]
        L.append(
            f"| {name} | {sw['0']['mlpd']:.2f} | " + " | ".join(f"{sw[f'{s:g}']['mlpd']:.2f}" for s in SWEEP) + " |"
        )
    L.append("")
    L.extend(_conclusions(res, rows))
    L.append("")
    L.append(meta["footer"])
    L.append("")
    return "\n".join(L)


def _pool(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool held-out runs across configurations: coverage and LPD over all of them."""
    import numpy as np

    from bayescale.checks import coverage

    pit = np.concatenate([np.asarray(x["pit"]) for x in items])
    n = np.array([x["n_test"] for x in items], dtype=float)
    return {
        "coverage": {str(k): v for k, v in coverage(pit, LEVELS).items()},
        "mlpd": float(np.sum(n * np.array([x["mlpd"] for x in items])) / n.sum()),
        "median_abs_rel_error": float(np.median([x["median_abs_rel_error"] for x in items])),
        "width90": float(np.median([x["width90"] for x in items])),
        "n_train": int(sum(x["n_train"] for x in items)),
        "n_test": int(n.sum()),
        "wall": float(sum(x["wall"] for x in items)),
        "pit": pit.tolist(),
    }


def _rows_for_table(res: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Non-Porian datasets, then the pooled Porian configurations (per-configuration rows go in their own table)."""
    import numpy as np

    rows = [(n, r) for n, r in res.items() if not n.startswith("porian:")]
    por = [r for n, r in res.items() if n.startswith("porian:")]
    if por:
        b = {k: _pool([r["bayescale"][k] for r in por]) for k in ("recommended", "no_drift")}
        b["decades_max"] = max(r["bayescale"]["decades_max"] for r in por)
        b["decades_median"] = float(np.median([r["bayescale"]["decades_median"] for r in por]))
        sweep = {}
        for s in por[0]["bayescale"]["sweep"]:
            # pool by n_test-weighted coverage (each configuration's PITs are not stored per scale)
            n = np.array([r["bayescale"]["recommended"]["n_test"] for r in por], dtype=float)
            cov = {
                lv: float(np.sum(n * np.array([r["bayescale"]["sweep"][s]["coverage"][lv] for r in por])) / n.sum())
                for lv in por[0]["bayescale"]["sweep"][s]["coverage"]
            }
            mlpd = float(np.sum(n * np.array([r["bayescale"]["sweep"][s]["mlpd"] for r in por])) / n.sum())
            sweep[s] = {"coverage": cov, "mlpd": mlpd}
        b["sweep"] = sweep
        rows.append(("porian (pooled)", {"bayescale": b, "baseline": _pool([r["baseline"] for r in por])}))
    return rows


def _conclusions(res: dict[str, Any], rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    import scipy.stats

    L = ["Findings (generated from the numbers above):", ""]
    ok = [n for n, r in rows if TARGET[0] <= r["bayescale"]["recommended"]["coverage"]["0.9"] <= TARGET[1]]
    miss = [n for n, r in rows if n not in ok]
    L.append(
        f"- Target (90% coverage in [{TARGET[0]:.2f}, {TARGET[1]:.2f}] with the recommended spec) met on {len(ok)} of {len(rows)} "
        f"datasets{': ' + ', '.join(ok) if ok else ''}." + (f" Missed on: {', '.join(miss)}." if miss else "")
    )
    por = [n for n in res if n.startswith("porian:")]
    if por:
        c90 = [res[n]["bayescale"]["recommended"]["coverage"]["0.9"] for n in por]
        pok = [c for c in c90 if TARGET[0] <= c <= TARGET[1]]
        over = [c for c in c90 if c > TARGET[1]]
        under = [c for c in c90 if c < TARGET[0]]
        L.append(
            f"- Porian et al. configurations individually: target met on {len(pok)} of {len(por)}; {len(over)} over-cover "
            f"(90% coverage > {TARGET[1]:.2f}), {len(under)} under-cover (< {TARGET[0]:.2f}). The pooled row averages these "
            "opposite failures, so read the per-configuration table."
        )
    for n, r in rows:
        b, bl = r["bayescale"], r["baseline"]
        c_rec, c_nd, c_bl = b["recommended"]["coverage"]["0.9"], b["no_drift"]["coverage"]["0.9"], bl["coverage"]["0.9"]
        n_test = b["recommended"]["n_test"]
        k = round(c_rec * n_test)
        p_low = float(scipy.stats.binom.cdf(k, n_test, 0.9))
        p_high = float(scipy.stats.binom.sf(k - 1, n_test, 0.9))
        L.append(
            f"- {n}: 90% coverage {c_rec:.2f} = {k}/{n_test} (recommended; if the true coverage were 0.90, "
            f"P(<= {k}) = {p_low:.2g}, P(>= {k}) = {p_high:.2g}, treating runs as independent), {c_nd:.2f} (no drift), {c_bl:.2f} (baseline); "
            f"log predictive density {b['recommended']['mlpd']:.2f} vs {b['no_drift']['mlpd']:.2f} vs {bl['mlpd']:.2f}; "
            f"drift scale needed for 0.80 / 0.90 coverage: {needed_scale(b['sweep'])}."
        )
        held = b.get("held_out") or []
        missed = [h for h in held if h["pit"] < 0.05 or h["pit"] > 0.95]
        if missed:
            near = sum(h["decades"] < 0.1 for h in missed)
            detail = "; ".join(
                f"{h['run_id']} (N {h['N']:.3g}, {h['D'] / h['N']:.3g} tokens/param, {h['decades']:.2f} decades beyond, observed "
                f"{h['observed']:.3f} vs 90% {h['lo90']:.3f}-{h['hi90']:.3f})"
                for h in sorted(missed, key=lambda h: h["C"])
            )
            L.append(
                f"- {n}: the {len(missed)} held-out runs outside the recommended 90% interval, {near} of them within 0.1 decade "
                f"of the largest training run (where the drift term is ~0, so no drift scale can widen their interval): {detail}."
            )
    return L


def report_brier(br: dict[str, Any], meta: dict[str, Any]) -> str:
    L = [SECTION_BRIER, ""]
    L.append(
        f"Is P(loss <= threshold) at a scale-up target calibrated? {br['n_worlds']} seeded synthetic worlds, each with a "
        "Chinchilla-law truth drawn around Epoch's fit (log E ~ N(log 1.8172, 0.03), log A ~ N(log 482, 0.25), "
        "log B ~ N(log 2085, 0.5), alpha ~ N(0.3478, 0.02), beta ~ N(0.3658, 0.02)). Pilots: "
        f"`bayescale.testing.synthetic_runs`, N in {{{', '.join(f'{n:.0e}' for n in PILOT_N)}}} x tokens per parameter "
        f"{{{', '.join(f'{r:g}' for r in PILOT_RATIOS)}}} (12 runs), Normal noise on log loss with sd {WORLD_SIGMA}. Target: compute "
        "100-1000x the largest pilot (log-uniform), 10-40 tokens per parameter (log-uniform). **Outcome: one new run at the "
        f"target with the pilots' noise** (y = true loss x exp({WORLD_SIGMA} eps)), so P_true = P(y <= threshold | truth)."
    )
    L.append("")
    L.append("Two ways of placing the threshold, threshold = true loss at the target x exp(u s), u ~ Uniform(-1, 1):")
    L.append("")
    L.append(
        f"- **Design A** (s = {THRESHOLD_DESIGNS['A']}, one noise sd): P_true = Phi(u) is mid-range (0.16-0.84) in every world. "
        "But the threshold then sits within 1% of the truth, far inside every forecaster's extrapolation uncertainty "
        "(several %), so no forecaster can know on which side the truth is: P_true is unpredictable from the pilots "
        "and the Brier score rewards forecasts near 0.5 (hedging), not calibration. 'always 0.5' is hard to beat here."
    )
    L.append(
        f"- **Design B** (s = {THRESHOLD_DESIGNS['B']}, the scale of the extrapolation uncertainty): P_true = Phi({THRESHOLD_DESIGNS['B'] / WORLD_SIGMA:g} u) "
        "spans 0-1; the question 'will the run beat this target?' is one the pilots can partly answer, and the Brier "
        "score rewards both calibration and sharpness."
    )
    L.append("")
    L.append(
        "Forecasts: bayescale `decide({target}, fit=fit, threshold=..., noise=True).table.p_below` with the recommended spec "
        f"(Laplace for all worlds; NUTS for the first {br['n_nuts']}), and the same fits without the drift prior; the plug-in "
        "baseline Phi((log threshold - log L_hat) / s) from the Huber point fit and its residual sd s (n - 5 dof); and the "
        f"Epoch-style residual bootstrap ({br['n_boot']} refits; fraction of predictive draws at or below the threshold). "
        "Score: the **expected Brier score under the truth**, E[(p - Y)^2] = (p - P_true)^2 + P_true (1 - P_true), the exact "
        "expectation over the new run's noise (lower variance than one draw); the realised Brier score with the one simulated "
        "outcome is reported too. Lower is better; the paired difference to the plug-in is per world (negative = better). "
        "'cov 50% / 90%': how often the forecaster's central 50% / 90% predictive interval at the target contains the realised "
        "outcome (from P(y_new <= y_obs), i.e. decide with threshold = y_obs)."
    )
    L.append("")
    findings = []
    for title, methods in (
        ("All worlds (Laplace)", ["laplace", "laplace_nodrift", "plugin", "bootstrap"]),
        (
            f"NUTS subset (first {br['n_nuts']} worlds; Laplace on the same worlds for comparison)",
            ["nuts", "nuts_nodrift", "laplace", "laplace_nodrift", "plugin", "bootstrap"],
        ),
    ):
        for design in THRESHOLD_DESIGNS:
            s = brier_scores(br["rows"], methods, design)
            if s["n"] == 0:
                continue
            L.append(f"{title}, design {design}: {s['n']} worlds.")
            L.append("")
            L.append(
                "| forecaster | expected Brier (SE) | difference vs plug-in (SE) | realised Brier (SE) | mean abs(p - P_true) | cov 50% / 90% at target |"
            )
            L.append("|---|---|---|---|---|---|")
            for m in methods:
                x = s["methods"][m]
                diff = "" if m == "plugin" else f"{x['diff_vs_plugin']:+.4f} ({x['diff_vs_plugin_se']:.4f})"
                L.append(
                    f"| {BRIER_METHODS[m]} | {x['expected']:.4f} ({x['expected_se']:.4f}) | {diff} | {x['realised']:.3f} "
                    f"({x['realised_se']:.3f}) | {x['mean_abs_error_prob']:.3f} | {x['coverage']['0.5']:.2f} / {x['coverage']['0.9']:.2f} |"
                )
                if m != "plugin" and (title.startswith("All") or m.startswith("nuts")):
                    v, z = _verdict(x)
                    line = (
                        f"- Design {design}{'' if title.startswith('All') else ' (NUTS subset)'}: {BRIER_METHODS[m]} {v} the plug-in "
                        f"(expected Brier {x['expected']:.4f} vs {s['methods']['plugin']['expected']:.4f}; difference "
                        f"{x['diff_vs_plugin']:+.4f}, {z:+.1f} SE)"
                    )
                    if m != "bootstrap":
                        zb = (
                            x["diff_vs_bootstrap"] / x["diff_vs_bootstrap_se"]
                            if x["diff_vs_bootstrap_se"] > 0
                            else float("nan")
                        )
                        line += f"; against the bootstrap: {x['diff_vs_bootstrap']:+.4f} ({zb:+.1f} SE)"
                    findings.append(line + ".")
            L.append(f"| oracle (knows P_true) | {s['oracle']:.4f} | | | 0 | |")
            L.append(f"| always 0.5 | {s['half']:.4f} | | | | |")
            L.append("")
    nuts_rows = [r for r in br["rows"] if "nuts_A" in r]
    if nuts_rows:
        findings.append(
            f"- NUTS fits: {sum(r['nuts_divergences'] for r in nuts_rows)} divergent transitions in total; "
            f"{sum(bool(r['nuts_warned']) for r in nuts_rows)} of {len(nuts_rows)} fits raised a ConvergenceWarning "
            f"(min bulk ESS over fits {min(r['nuts_min_ess_bulk'] for r in nuts_rows):.0f}, max r-hat "
            f"{max(r['nuts_max_r_hat'] for r in nuts_rows):.3f})."
        )
    L.append(
        "Findings (generated from the numbers above; 'beats' means the paired difference is more than 2 SE below zero):"
    )
    L.append("")
    L.extend(findings)
    for methods, label in (
        (["laplace", "laplace_nodrift"], "Laplace, all worlds"),
        (["nuts", "nuts_nodrift", "laplace", "laplace_nodrift"], "NUTS subset"),
    ):
        s = brier_scores(br["rows"], methods + ["plugin"], "A")
        if s["n"]:
            cov = ", ".join(
                f"{BRIER_METHODS[m].replace('bayescale, ', '')} {s['methods'][m]['coverage']['0.9']:.2f}"
                for m in methods
            )
            L.append(
                f"- 90% predictive interval at the target covers the realised run ({label}, {s['n']} worlds): {cov}; "
                f"plug-in {s['methods']['plugin']['coverage']['0.9']:.2f}."
            )
    L.append(
        "- The truth here has no drift beyond the pilots: the drift prior's extra width is not needed for the law's "
        "misfit, so any gain from it in these worlds means the fits without it are too confident at 100-1000x."
    )
    sec = br["seconds"]
    L.append("")
    L.append(
        f"Time: Laplace fits + decisions {sec['laplace']:.0f} s, NUTS fits + decisions {sec['nuts']:.0f} s, baselines "
        f"{sec['baseline']:.0f} s."
    )
    L.append("")
    L.append(meta["footer"])
    L.append("")
    return "\n".join(L)


def write_sections(path: Path, sections: dict[str, str]) -> None:
    """Replace (or append) each ``## `` section by heading; everything else in the file is kept."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    for heading, body in sections.items():
        lines = text.split("\n")
        start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
        new = body.rstrip("\n").split("\n") + [""]
        if start is None:
            while lines and lines[-1] == "":
                lines.pop()
            lines += [""] + new
        else:
            end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
            lines = lines[:start] + new + lines[end:]
        text = "\n".join(lines)
    if not text.endswith("\n"):
        text += "\n"
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def git_commit() -> str:
    """The short commit of this checkout, marked when the tree has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return commit


def footer(args: argparse.Namespace, t_total: float, loads: list[float]) -> str:
    import jax
    import numpy as np
    import numpyro
    import scipy

    import bayescale

    commit = git_commit()
    cmd = " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/bench_brier.py", *sys.argv[1:]])
    return (
        f"Run: `{cmd}` on {_dt.date.today().isoformat()}, commit {commit}; {platform.platform()}, {os.cpu_count()} CPUs, "
        f"no GPU used; Python {platform.python_version()}, bayescale {bayescale.__version__}, numpyro {numpyro.__version__}, "
        f"jax {jax.__version__}, numpy {np.__version__}, scipy {scipy.__version__}. Total {t_total / 60:.1f} min; 1-minute load "
        f"average {min(loads):.1f}-{max(loads):.1f} during the run"
        + (
            " (other jobs shared the machine, so wall times are inflated)."
            if max(loads) > (os.cpu_count() or 1)
            else "."
        )
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data",
        help="public data folder (default <repo>/../shared/data)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    ap.add_argument("--json", type=Path, default=None, help="also write all numbers here")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="4 Porian configurations (not 15), 200 bootstrap refits (not 400), 20 worlds (not 60), 8 with NUTS (not 30)",
    )
    ap.add_argument("--skip-llo", action="store_true")
    ap.add_argument("--skip-brier", action="store_true")
    ap.add_argument("--worlds", type=int, default=None)
    ap.add_argument("--nuts-worlds", type=int, default=None)
    ap.add_argument(
        "--only", default=None, help="comma-separated dataset name prefixes for part 1 (e.g. chinchilla,porian)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--from-json", type=Path, default=None, help="re-render the sections from a --json file of an earlier run"
    )
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        ap.error(f"data folder {args.data} not found; pass --data")
    n_boot = 200 if args.quick else 400
    n_worlds = args.worlds if args.worlds is not None else (20 if args.quick else 60)
    n_nuts = args.nuts_worlds if args.nuts_worlds is not None else (8 if args.quick else 30)
    t_start = time.perf_counter()
    loads = [os.getloadavg()[0]]
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        sections = {}
        if results.get("llo"):
            sections[SECTION_LLO] = report_llo(results["llo"], {**results["meta_llo"], "footer": results["footer"]})
        if results.get("brier"):
            sections[SECTION_BRIER] = report_brier(results["brier"], {"footer": results["footer"]})
        write_sections(args.out, sections)
        log(f"re-rendered {list(sections)} from {args.from_json} into {args.out}")
        return 0

    import bayescale as bs

    spec = bs.load_spec(SPEC_PATH)
    results: dict[str, Any] = {"llo": {}, "brier": None}
    sections = {}
    if not args.skip_llo:
        data = load_datasets(args.data, args.quick)
        if args.only:
            prefixes = [p.strip() for p in args.only.split(",") if p.strip()]
            data = {n: d for n, d in data.items() if any(n.startswith(p) for p in prefixes)}
        for name, d in data.items():
            log(f"{name}: {len(d['runs'])} runs")
            b = run_bayescale(name, d["runs"], spec, args.seed)
            loads.append(os.getloadavg()[0])
            bl = run_baseline(name, d["runs"], n_boot, args.seed)
            loads.append(os.getloadavg()[0])
            results["llo"][name] = {"bayescale": b, "baseline": bl}
        meta_llo = {
            "n_boot": n_boot,
            "quick": args.quick,
            "datasets": {n: {"group": d["group"], "note": d["note"]} for n, d in data.items()},
        }
    if not args.skip_brier:
        results["brier"] = run_brier(n_worlds, n_nuts, 200, args.seed)
        loads.append(os.getloadavg()[0])
    foot = footer(args, time.perf_counter() - t_start, loads)
    results["footer"] = foot
    if not args.skip_llo:
        results["meta_llo"] = meta_llo
    if not args.skip_llo:
        sections[SECTION_LLO] = report_llo(results["llo"], {**meta_llo, "footer": foot})
    if results["brier"] is not None:
        sections[SECTION_BRIER] = report_brier(results["brier"], {"footer": foot})
    write_sections(args.out, sections)
    for body in sections.values():
        print(body)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    log(f"done in {(time.perf_counter() - t_start) / 60:.1f} min; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
