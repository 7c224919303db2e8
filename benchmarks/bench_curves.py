#!/usr/bin/env python
"""Learning-curve extrapolation: bayescale against the least-squares fits of the literature.

Datasets (``$BAYESCALE_DATA``, default ``/work/shared/data``; see each folder's SOURCE.md):

* ``revisiting``: Alabdulmohsin et al. 2022 benchmark, its own ``Training`` split, reported per
  domain (IC, NMT, LM, BB); duplicate rows dropped.
* ``colpret``: NSL-PFN's ColPreT curves (``nslpfn-extra/colpret.npz``), first half of each curve
  as context.
* ``nanogpt``: NSL-PFN's nanoGPT sweep (final validation loss over n_embd, 12 settings), the first
  6 of 7 widths as context, the largest as target.
* ``dd``: the 16 double-descent curves (``dd_curves.csv``), first 50% (at least 3) as context.
* ``gpt3``: the 8 GPT-3 training curves digitised by ColPret (``gpt3-curves``), first half as context.

Long curves are thinned (evenly by index) to at most ``--max-context`` context points and
``--max-target`` targets; ``--max-curves`` takes an evenly spaced subset of every dataset's curves
and ``--colpret-curves`` of the ColPreT curves only.

Methods, all fitted in the same run on the same points: bayescale per law (``m1``-``m4``,
``bnsl1``, ``bnsl2``; Laplace, and NUTS with ``--nuts``), bayescale LOO-stacked over the laws, and
least squares per law (``bayescale.curves.least_squares``, the papers' recipes, with a plug-in
Normal predictive whose scale is the residual RMS). Metrics (``bayescale.curves``): RMSLE of the
predictive median (mean over curves of each curve's RMSLE), MLPD (mean over curves of the mean log
predictive density of the log loss), MSCE of the central 50-99% intervals (coverage averaged over
curves).

Usage::

    nice -n 5 python benchmarks/bench_curves.py --nuts --out /tmp/curves.md
    python benchmarks/bench_curves.py --small          # CI size: a few curves per dataset
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale
from bayescale import curves as cv

DATASETS = ("revisiting", "colpret", "nanogpt", "dd", "gpt3")


def _data_dir() -> Path:
    return Path(os.environ.get("BAYESCALE_DATA", "/work/shared/data"))


def _thin(n: int, cap: int) -> np.ndarray:
    return np.arange(n) if n <= cap else np.unique(np.round(np.linspace(0, n - 1, cap)).astype(int))


def _curve(
    name: str, x: np.ndarray, y: np.ndarray, n_ctx: int, caps: tuple[int, int], group: str = ""
) -> cv.Curve | None:
    order = np.argsort(x, kind="stable")
    x, y = np.asarray(x, float)[order], np.asarray(y, float)[order]
    keep = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    ctx, tgt = np.arange(len(x)) < n_ctx, np.arange(len(x)) >= n_ctx
    xc, yc, xt, yt = x[ctx & keep], y[ctx & keep], x[tgt & keep], y[tgt & keep]
    if xc.size < 3 or xt.size < 1:
        return None
    i, j = _thin(xc.size, caps[0]), _thin(xt.size, caps[1])
    return cv.Curve(name, xc[i], yc[i], xt[j], yt[j], group=group)


def _dedup(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.DataFrame({"x": x, "y": y}).groupby("x", as_index=False)["y"].mean()
    return frame["x"].to_numpy(), frame["y"].to_numpy()


def load_revisiting(caps: tuple[int, int]) -> dict[str, list[cv.Curve]]:
    root = _data_dir() / "revisiting-benchmark"
    frame = pd.concat([pd.read_csv(root / f) for f in ("benchmark.lang.csv", "benchmark.vision.csv")]).drop_duplicates()
    out: dict[str, list[cv.Curve]] = {}
    for (dom, task, model), g in frame.groupby(["Domain", "Task", "Model"], sort=True):
        tr, te = g[g["Training"] == 1], g[g["Training"] == 0]
        xc, yc = _dedup(tr["Seen Examples"].to_numpy(float), tr["Loss"].to_numpy(float))
        xt, yt = _dedup(te["Seen Examples"].to_numpy(float), te["Loss"].to_numpy(float))
        c = _curve(f"{dom}/{task}/{model}", np.r_[xc, xt], np.r_[yc, yt], xc.size, caps, group=f"{dom}/{task}")
        if c is not None:
            out.setdefault(f"revisiting-{dom}", []).append(c)
    return out


def load_colpret(caps: tuple[int, int]) -> list[cv.Curve]:
    z = np.load(_data_dir() / "nslpfn-extra" / "colpret.npz", allow_pickle=False)
    out = []
    for name in sorted(z.files):
        a = z[name]
        x, y = _dedup(a[0], a[1])
        c = _curve(name.strip(), x, y, int(np.ceil(x.size / 2)), caps, group=name.strip().split("-")[0].split(" ")[0])
        if c is not None:
            out.append(c)
    return out


def load_nanogpt(caps: tuple[int, int]) -> list[cv.Curve]:
    arr = np.load(_data_dir() / "nslpfn-extra" / "final_val_loss_over_n_embd.npy", allow_pickle=False)
    x = np.array([6, 12, 24, 48, 96, 192, 384], float)
    return [
        c for i, row in enumerate(arr) if (c := _curve(f"nanogpt-{i}", x, row, 6, caps, group="nanogpt")) is not None
    ]


def load_dd(caps: tuple[int, int]) -> list[cv.Curve]:
    frame = pd.read_csv(_data_dir() / "nslpfn-extra" / "dd_curves.csv")
    out = []
    for task, g in frame.groupby("task", sort=True):
        x, y = _dedup(g["x"].to_numpy(float), g["y"].to_numpy(float))
        c = _curve(task, x, y, max(3, int(np.ceil(0.5 * x.size))), caps, group=str(g["y_label"].iloc[0]))
        if c is not None:
            out.append(c)
    return out


def load_gpt3(caps: tuple[int, int]) -> list[cv.Curve]:
    frame = pd.read_csv(_data_dir() / "gpt3-curves" / "extracted.csv")
    out = []
    for model, g in frame.groupby("model", sort=True):
        x, y = _dedup(g["step"].to_numpy(float) * 1e9, g["train_loss"].to_numpy(float))
        c = _curve(f"gpt3-{model}", x, y, int(np.ceil(x.size / 2)), caps, group="gpt3")
        if c is not None:
            out.append(c)
    return out


def load_all(
    caps: tuple[int, int],
    max_curves: int | None,
    which: tuple[str, ...],
    colpret_curves: int | None = None,
    held_out: int | None = None,
) -> dict[str, list[cv.Curve]]:
    """The curves of each dataset: an evenly spaced subset of at most ``max_curves`` (ColPreT:
    ``colpret_curves`` of those); with ``held_out``, instead up to that many evenly spaced curves
    from those the subset leaves out (datasets with none left are dropped), for validating a
    setting chosen on the subset."""
    sets: dict[str, list[cv.Curve]] = {}
    if "revisiting" in which:
        sets.update(load_revisiting(caps))
    loaders = {"colpret": load_colpret, "nanogpt": load_nanogpt, "dd": load_dd, "gpt3": load_gpt3}
    for name, fn in loaders.items():
        if name in which:
            sets[name] = fn(caps)
    if held_out:
        if not max_curves:
            raise SystemExit("--held-out needs --max-curves (the subset whose complement is used)")
        rest = {
            k: [c for i, c in enumerate(v) if i not in set(_thin(len(v), max_curves).tolist())] for k, v in sets.items()
        }
        if colpret_curves and "colpret" in sets:  # the ColPreT subset is thinned twice
            first = _thin(len(sets["colpret"]), max_curves)
            used = set(first[_thin(first.size, colpret_curves)].tolist())
            rest["colpret"] = [c for i, c in enumerate(sets["colpret"]) if i not in used]
        return {k: [v[i] for i in _thin(len(v), held_out)] for k, v in rest.items() if v}
    if max_curves:
        sets = {k: [v[i] for i in _thin(len(v), max_curves)] for k, v in sets.items()}
    if colpret_curves and "colpret" in sets:
        sets["colpret"] = [sets["colpret"][i] for i in _thin(len(sets["colpret"]), colpret_curves)]
    return sets


def score(curves: list[cv.Curve], preds: list[cv.Predictive]) -> dict[str, float]:
    """RMSLE (mean over curves), MLPD (mean over curves) and MSCE (coverage averaged over curves)."""
    r = [cv.rmsle(p.median(), c.y_target) for p, c in zip(preds, curves)]
    lp = [cv.mlpd(p.log_density(c.y_target)) for p, c in zip(preds, curves)]
    pits = [p.cdf(c.y_target) for p, c in zip(preds, curves)]
    return {
        "rmsle": float(np.mean(r)),
        "mlpd": float(np.mean(lp)),
        "msce": cv.msce(pits),
        "coverage90": float(cv.coverage(pits, (0.9,))[0]),
    }


def _fit(curves: list[cv.Curve], law: str, method: str, args: argparse.Namespace) -> cv.CurvePosterior:
    """``method``: "laplace", "nuts", or "nuts-hier" (NUTS with the curves of one group sharing
    exponent hyperpriors, ``fit_curves(hierarchical=True)``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cv.fit_curves(
            curves,
            law,
            method="nuts" if method.startswith("nuts") else method,
            hierarchical=method == "nuts-hier",
            seed=args.seed,
            chains=args.chains,
            warmup=args.warmup,
            draws=args.draws,
            pad_to=args.max_context,
            n_starts=args.n_starts,
        )


def calibrate(
    curves: list[cv.Curve], laws: tuple[str, ...], args: argparse.Namespace, method: str = "laplace"
) -> tuple[dict[str, float], dict[str, cv.CurvePosterior]]:
    """Drift scale per law and for the LOO stack, chosen on the fitted points only: fit (Laplace)
    the first --fraction (default 70%) of each curve's fitted points and score the rest (leave-future-out).
    Also returns those inner fits, from which the ensemble's LFO weights come."""
    inner = [c2 for c in curves if (c2 := cv.split_context(c, args.fraction)) is not None]
    if not inner:
        return {**{law: 0.0 for law in laws}, "stacked": 0.0}, {}
    posts = {law: _fit(inner, law, method, args) for law in laws}
    out = {law: cv.calibrate_drift(inner, lambda k, d, p=p: p.predictive(k, drift=d))[0] for law, p in posts.items()}
    w = cv.stack(posts)
    out["stacked"] = cv.calibrate_drift(inner, lambda k, d: cv.stacked_predictive(posts, w, k, drift=d))[0]
    return out, posts


def run_dataset(
    name: str, curves: list[cv.Curve], laws: tuple[str, ...], methods: tuple[str, ...], args: argparse.Namespace
) -> dict:
    rows: dict[str, dict] = {}
    t0 = time.perf_counter()
    cal = {}
    for method in methods:
        # The drift and the ensemble's weights come from inner fits made the same way (NUTS rows
        # reuse the Laplace inner fits: NUTS on every split would double the run).
        inner_method = "psis" if method == "psis" else "laplace"
        if inner_method not in cal:
            t0 = time.perf_counter()
            cal[inner_method] = calibrate(curves, laws, args, inner_method)
            print(
                f"  {name} drift per decade ({inner_method}, chosen on the fitted points): {cal[inner_method][0]} ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
        drift, inner = cal[inner_method]
        posts = {}
        for law in laws:
            t0 = time.perf_counter()
            post = _fit(curves, law, method, args)
            posts[law] = post
            m = score(curves, [post.predictive(k, drift=drift[law]) for k in range(len(curves))])
            m["seconds"] = time.perf_counter() - t0
            m["drift"] = drift[law]
            if method == "psis":
                k = post.diagnostics["pareto_k"]
                m["max_pareto_k"] = float(np.nanmax(k))
                m["pareto_k_ok"] = int(np.sum(k <= cv.PSIS_K_MAX))
            if method.startswith("nuts"):
                m["max_rhat"] = float(np.nanmax(post.diagnostics["max_rhat"]))
                m["divergences"] = int(post.diagnostics["divergences"].sum())
            rows[f"bayescale-{method} {law}"] = m
            print(f"  {name} {method} {law}: {m}", flush=True)
        t0 = time.perf_counter()
        # The recommended setting (cv.fit_ensemble, from the fits already made): each law with
        # its own drift, mixed with leave-future-out stacking weights pooled per group.
        ens = cv.combine(
            curves, posts, inner, {law: drift[law] for law in laws}, weights="lfo", pool="group", fraction=args.fraction
        )
        m = score(curves, [ens.predictive(k) for k in range(len(curves))])
        m["seconds"] = time.perf_counter() - t0
        m["drift"] = "per law"
        m["mean_weights"] = ens.mean_weights()
        rows[f"bayescale-{method} ensemble"] = m
        print(f"  {name} {method} ensemble: {m}", flush=True)
        t0 = time.perf_counter()
        weights = cv.stack(posts)
        for label, d in (("stacked", drift["stacked"]), ("stacked, no drift", 0.0)):
            m = score(curves, [cv.stacked_predictive(posts, weights, k, drift=d) for k in range(len(curves))])
            m["seconds"] = time.perf_counter() - t0
            m["drift"] = d
            m["mean_weights"] = dict(zip(laws, np.round(weights.mean(axis=0), 3).tolist()))
            rows[f"bayescale-{method} {label}"] = m
            print(f"  {name} {method} {label}: {m}", flush=True)
    for law in laws:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits = [cv.least_squares(c, law, seed=args.seed) for c in curves]
        m = score(curves, [f.predictive() for f in fits])
        m["seconds"] = time.perf_counter() - t0
        rows[f"least-squares {law}"] = m
        print(f"  {name} LS {law}: {m}", flush=True)
    return {"curves": len(curves), "targets": int(sum(c.x_target.size for c in curves)), "rows": rows}


def _header(cmd: str, loads: list[float], seconds: float) -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=False,
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            check=False,
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    except OSError:
        commit = "?"
    import jax
    import numpyro

    return (
        f"Run: `{cmd}` on {_dt.date.today().isoformat()}, commit {commit}; "
        f"{platform.platform()}, {os.cpu_count()} CPUs (curve fits run on the CPU); Python {platform.python_version()}, bayescale "
        f"{bayescale.__version__}, numpyro {numpyro.__version__}, jax {jax.__version__}. Load average during the run "
        f"{min(loads):.1f}-{max(loads):.1f}; wall time {seconds / 60:.1f} min."
    )


def to_markdown(results: dict, header: str) -> str:
    lines = [header, ""]
    summary = []
    for ds, res in results.items():
        rows = res["rows"]
        lines += [
            f"**{ds}** ({res['curves']} curves, {res['targets']} targets)",
            "",
            "| method | drift/decade | RMSLE | MLPD | MSCE | 90% cov. | s |",
            "|---|---|---|---|---|---|---|",
        ]
        for k, m in rows.items():
            extra = (
                f" (r-hat {m['max_rhat']:.2f}, {m['divergences']} div.)"
                if "max_rhat" in m
                else (f" (k <= 0.7: {m['pareto_k_ok']}/{res['curves']})" if "pareto_k_ok" in m else "")
            )
            d = (f"{m['drift']:g}" if isinstance(m["drift"], float) else str(m["drift"])) if "drift" in m else "-"
            lines.append(
                f"| {k}{extra} | {d} | {m['rmsle']:.4f} | {m['mlpd']:.3f} | {m['msce']:.4f} | {m['coverage90']:.2f} | {m['seconds']:.0f} |"
            )
        lines.append("")
        # A least-squares fit whose prediction overflows has RMSLE NaN: it is not a baseline to beat
        # (and a NaN would break min()); the per-dataset table still shows it.
        ls_best = min(
            ((m["rmsle"], k) for k, m in rows.items() if k.startswith("least-squares") and math.isfinite(m["rmsle"])),
            default=(math.inf, "none"),
        )
        for rec in [k for k in rows if k.endswith(" ensemble")]:
            m = rows[rec]
            summary.append(
                f"| {ds} | {rec} | {m['rmsle']:.4f} | {ls_best[1].split()[-1]} {ls_best[0]:.4f} | {'yes' if m['rmsle'] < ls_best[0] else 'no'} | {m['msce']:.4f} | {'yes' if m['msce'] < 0.01 else 'no'} |"
            )
    out = [
        "| dataset | bayescale | RMSLE | best least-squares RMSLE | beats every LS? | MSCE | MSCE < 0.01? |",
        "|---|---|---|---|---|---|---|",
        *summary,
        "",
        *lines,
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="CI size: 3 curves per dataset, 3 laws, short chains")
    p.add_argument("--nuts", action="store_true", help="also fit with NUTS (Laplace always runs)")
    p.add_argument(
        "--psis",
        action="store_true",
        help="also fit with method='psis' (Laplace corrected by Pareto-smoothed importance sampling): rows 'bayescale-psis'",
    )
    p.add_argument(
        "--hierarchical",
        action="store_true",
        help="also fit with hierarchical NUTS (the curves of one group share exponent hyperpriors): rows 'bayescale-nuts-hier'",
    )
    p.add_argument(
        "--merge",
        default="",
        help="comma-separated --json files of earlier runs (e.g. one per dataset, run in parallel): render their tables together and exit",
    )
    p.add_argument(
        "--note",
        default="",
        help="with --merge: the sentence that says how the merged runs were made (machine, commands)",
    )
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--only", default="", help="run only these dataset names (e.g. revisiting-LM)")
    p.add_argument("--nuts-datasets", default="", help="with --nuts: only these datasets (prefixes) also get NUTS")
    p.add_argument("--laws", default=",".join(cv.LAWS))
    p.add_argument("--max-curves", type=int, default=None)
    p.add_argument("--colpret-curves", type=int, default=None, help="evenly spaced subset of the 192 ColPreT curves")
    p.add_argument("--max-context", type=int, default=40)
    p.add_argument("--max-target", type=int, default=20)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--draws", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-starts", type=int, default=3, help="MAP starts per curve (prior median, then prior draws)")
    p.add_argument(
        "--held-out",
        type=int,
        default=None,
        help="validate on up to this many curves per dataset that --max-curves/--colpret-curves leave out",
    )
    p.add_argument(
        "--fraction",
        type=float,
        default=0.7,
        help="leave-future-out split of the fitted points: fit this first fraction, score the rest (drift and ensemble weights)",
    )
    p.add_argument("--out", default=None, help="write the Markdown tables here")
    p.add_argument("--json", default=None, help="write the raw numbers here")
    args = p.parse_args(argv)
    if args.small:
        args.max_curves = args.max_curves or 3
        if args.laws == ",".join(cv.LAWS):
            args.laws = "m1,m2,m3"
        args.chains, args.warmup, args.draws = 2, 100, 100
    if args.merge:
        results = {}
        for f in args.merge.split(","):
            results.update(json.loads(Path(f).read_text()))
        md = to_markdown(results, args.note or f"Merged from {args.merge}.")
        print(md)
        if args.out:
            Path(args.out).write_text(md + "\n")
        return 0
    laws = tuple(s for s in args.laws.split(",") if s)
    methods = (
        ("laplace",)
        + (("psis",) if args.psis else ())
        + (("nuts",) if args.nuts else ())
        + (("nuts-hier",) if args.hierarchical else ())
    )
    nuts_sets = tuple(s for s in args.nuts_datasets.split(",") if s)
    t0 = time.perf_counter()
    loads = [os.getloadavg()[0]]
    sets = load_all(
        (args.max_context, args.max_target),
        args.max_curves,
        tuple(args.datasets.split(",")),
        args.colpret_curves,
        args.held_out,
    )
    results = {}
    if args.only:
        sets = {k: v for k, v in sets.items() if k in args.only.split(",")}
    for name, curves in sets.items():
        print(f"{name}: {len(curves)} curves", flush=True)
        use = methods if not nuts_sets or any(name.startswith(n) for n in nuts_sets) else ("laplace",)
        results[name] = run_dataset(name, curves, laws, use, args)
        loads.append(os.getloadavg()[0])
    cmd = "python benchmarks/bench_curves.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = to_markdown(results, _header(cmd.strip(), loads, time.perf_counter() - t0))
    print(md)
    if args.out:
        Path(args.out).write_text(md + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
