"""Recipe comparison (issue 17): does ``bayescale.compare`` find a known compute multiplier?

    PYTHONPATH=. nice .venv/bin/python benchmarks/bench_compare.py --worlds 25 --json /tmp/c17.json  # all parts
    PYTHONPATH=. nice .venv/bin/python benchmarks/bench_compare.py --worlds 2 --no-write            # smoke run
    # investigations (no Porian), shown under the main run's tables:
    ... bench_compare.py --worlds 25 --no-porian --rhos 0.75,0.9,0 --no-write --json /tmp/rhos.json
    ... bench_compare.py --worlds 15 --families constant,growing --pooling share-exponents --no-porian ...
    ... bench_compare.py --worlds 10 --method nuts --no-porian --no-write --json /tmp/nuts.json
    ... bench_compare.py --worlds 0 --pilots /path/to/pilot_runs_lstm.csv --no-write --json /tmp/real.json
    ... bench_compare.py --render-json /tmp/c17.json --extra-json /tmp/rhos.json ... /tmp/real.json

(Porian and pilot rows are taken from the latest file that has them.) A "Reading" subsection with the
conclusions is written by hand after a run; a re-render replaces the whole section, so keep it.

Cost on the shared 2-core machine: about 5 s per synthetic world with Laplace (1.2 s joint fit, 2.4 s
for the two Huber fits and their bootstraps), 7 s with NUTS; 25 worlds per family and Porian, 10 min.

Three parts, one section ``## Recipe comparison (issue 17)`` of BENCHMARKS.md:

1. **Synthetic worlds** with a known truth. Two recipes on one pilot ladder (N 1e7..5e8 at 5, 10,
   20 and 40 tokens per parameter: 24 runs each, log-normal noise 1%), each from a Chinchilla law
   near Epoch's fit, sharing ``E``. Four families: a *constant* multiplier (recipe B is A with its
   compute scaled, :func:`with_multiplier`), a *growing* and a *shrinking* one (B's exponents
   steeper or shallower: ``log k`` is then linear in ``log C``, :func:`trend_pair`), and a
   *crossover* (B worse at the runs, better beyond a crossing between 2x and 5x the largest run).
   The true multiplier, loss difference and crossing come from the true laws in closed form, with
   the definitions of :mod:`bayescale._compare_quantities` (tests/test_bench_compare.py checks the
   closed form against that module on the true parameters). Targets: 10x and 100x the largest run.
   One joint fit per world; the 10x target and the variant ``drift_correlation=1`` are read off the
   same fit (:func:`retarget`). The competitor is what a user does today: a separate Epoch-style
   Huber point fit per recipe (``benchmarks/baselines.py``), with a residual bootstrap (200 refits
   per recipe, paired draw by draw) for its interval, its P(B better) and its P(cross).
2. **Porian et al.** (``porian/isoflop_points.csv``): the tuned setting against the one before it
   and against the original Kaplan-like setting, per dataset, beside the paper's own fits.
3. **Pilots vs a second architecture** (``--pilots``): the committed Llama pilots against an LSTM
   sweep, when its table exists.
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
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))

SECTION = "## Recipe comparison (issue 17)"
#: Epoch AI's refit of Chinchilla (Besiroglu et al. 2024): the baseline recipe's law, exponents jittered per world.
EPOCH = {"E": 1.82, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
LADDER = {"N": tuple(np.geomspace(1e7, 5e8, 6)), "tokens_per_param": (5.0, 10.0, 20.0, 40.0)}
SIGMA = 0.01
FAMILIES = ("constant", "growing", "shrinking", "crossover")
TARGETS = (10.0, 100.0)
#: The default drift correlation, and 1 (one shared drift: it cancels in differences), from one fit.
RHOS = ("learned", 0.5, 1.0)
#: ``--pooling``: the default (E shared, the rest free per recipe), or exponents shared too.
POOLINGS = {"default": None, "share-exponents": {"share": ["E", "alpha", "beta"]}}
N_BOOT = 200
#: A crossing is "found" when P(cross) > 0.5 and its median lies within this factor of the truth.
CROSS_FACTOR = 3.0
#: The second architecture's sweep is compared once it has this many pilots.
MIN_PILOTS = 10
PORIAN_SETTINGS = {
    "kaplan-like": ("base", "long", "kaplan", "kaplan", "train"),
    "head counted": ("base", "long", "kaplan", "standard", "val"),
    "before tuning": ("base", "short", "chinchilla", "standard", "val"),
    "tuned": ("tuned", "short", "const", "standard", "val"),
}
PORIAN_PAIRS = (("before tuning", "tuned"), ("head counted", "tuned"), ("kaplan-like", "tuned"))
PORIAN_FILES = {"rw": "summary_df", "owt2": "summary_df_owt2"}
#: Real comparisons run twice: the default pooling (E shared), and everything free per recipe (the
#: settings differ in LR schedule and, for the Kaplan-like one, in loss and parameter count, so
#: their loss floors need not agree).
REAL_POOLINGS = {"E shared": None, "all free": {"free": ["E", "A", "B", "alpha", "beta"]}}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the true laws, in closed form


def frontier_terms(p: dict) -> tuple[Any, Any]:
    """``K`` and ``gamma`` of a Chinchilla law's compute-optimal loss ``L*(C) = E + K (C/6)^-gamma``
    (``N* = G (C/6)^(beta/(alpha+beta))``, ``G = (alpha A / (beta B))^(1/(alpha+beta))``). Arrays broadcast."""
    a, b = p["alpha"], p["beta"]
    G = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
    return p["A"] * G**-a + p["B"] * G**b, a * b / (a + b)


def optimal_loss(p: dict, C: Any) -> Any:
    K, g = frontier_terms(p)
    return p["E"] + K * (np.asarray(C, float) / 6) ** -g


def multiplier(base: dict, other: dict, C: Any) -> Any:
    """``k`` with ``L*_base(k C) = L*_other(C)``, clipped to the code's search range (a recipe whose loss
    at ``C`` is below the baseline's floor is worth more than any finite compute: the upper bound)."""
    from bayescale._compare_quantities import K_RANGE

    K, g = frontier_terms(base)
    C = np.asarray(C, float)
    excess = np.asarray(optimal_loss(other, C) - base["E"], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = 6 / C * (np.maximum(excess, 0) / K) ** (-1 / g)
    return np.clip(np.where(excess > 0, k, np.inf), *K_RANGE)


def with_multiplier(p: dict, k: float) -> dict:
    """``p`` made ``k`` times as compute-efficient: ``L_new(N, D) = L(sqrt(k) N, sqrt(k) D)``, so
    ``L*_new(C) = L*(k C)`` at every ``C``."""
    s = math.sqrt(k)
    return dict(p, A=p["A"] * s ** -p["alpha"], B=p["B"] * s ** -p["beta"])


def trend_pair(p: dict, C_lo: float, k_lo: float, C_hi: float, k_hi: float) -> dict:
    """Recipe B with ``k = k_lo`` at ``C_lo`` and ``k_hi`` at ``C_hi`` (``E`` shared): both exponents
    scaled by ``1 + s`` make ``log k`` linear in ``log C`` with slope ``s``, and scaling both
    coefficients by ``m`` (which leaves ``G`` alone) scales ``K`` by ``m``, setting the level."""
    s = math.log(k_hi / k_lo) / math.log(C_hi / C_lo)
    q = dict(p, alpha=p["alpha"] * (1 + s), beta=p["beta"] * (1 + s))
    K_a, g_a = frontier_terms(p)
    K_q, g_q = frontier_terms(q)
    # log k(C) = [log K_a - log K_b + (g_b - g_a) log(C/6)] / g_a, solved for K_b at C_lo
    log_K_b = math.log(K_a) + (g_q - g_a) * math.log(C_lo / 6) - g_a * math.log(k_lo)
    m = math.exp(log_K_b) / K_q
    return dict(q, A=q["A"] * m, B=q["B"] * m)


def ladder_compute() -> tuple[float, float]:
    N, r = np.asarray(LADDER["N"]), np.asarray(LADDER["tokens_per_param"])
    return 6 * N.min() ** 2 * r.min(), 6 * N.max() ** 2 * r.max()


def world_params(family: str, rng: np.random.Generator) -> tuple[dict, dict]:
    """The two recipes' true laws of one world of ``family``."""
    a = dict(EPOCH, alpha=EPOCH["alpha"] * rng.uniform(0.9, 1.1), beta=EPOCH["beta"] * rng.uniform(0.9, 1.1))
    c_min, c_max = ladder_compute()
    c_far = c_max * max(TARGETS)
    if family == "constant":  # either recipe may be the better one
        return a, with_multiplier(a, math.exp(rng.uniform(-math.log(3), math.log(3))))
    if family == "growing":
        k_lo = rng.uniform(1.1, 1.6)
        return a, trend_pair(a, c_min, k_lo, c_far, k_lo * math.exp(rng.uniform(math.log(3), math.log(8))))
    if family == "shrinking":
        return a, trend_pair(a, c_min, math.exp(rng.uniform(math.log(4), math.log(10))), c_far, rng.uniform(1.2, 2.0))
    if family == "crossover":  # log k linear in log C, through 1 at c_cross
        c_cross = c_max * math.exp(rng.uniform(math.log(2), math.log(5)))
        k_lo = rng.uniform(0.3, 0.6)
        k_far = math.exp(math.log(k_lo) * (1 - math.log(c_far / c_min) / math.log(c_cross / c_min)))
        return a, trend_pair(a, c_min, k_lo, c_far, k_far)
    raise ValueError(f"unknown family {family!r}; allowed: {FAMILIES}")


def world_runs(pa: dict, pb: dict, seed: int) -> pd.DataFrame:
    from bayescale.testing import synthetic_runs

    tables = []
    for i, (name, p) in enumerate((("A", pa), ("B", pb))):
        t = synthetic_runs("chinchilla", p, sigma=SIGMA, seed=seed * 2 + i, **LADDER).drop(columns=["loss_true"])
        tables.append(t.assign(recipe=name, run_id=[f"{name}{j}" for j in range(len(t))]))
    return pd.concat(tables, ignore_index=True)


# ------------------------------------------------------------------ bayescale and the plug-in


def retarget(cmp: Any, C: float, rho: float | str) -> Any:
    """The comparison ``cmp`` at another target compute and drift correlation, from the same joint
    fit (what :func:`bayescale.compare` would give with these arguments and the same seed, without refitting)."""
    from bayescale._compare_average import average
    from bayescale._compare_fit import recipe_fits
    from bayescale.comparison import _assemble, parse_target

    target = parse_target({"C": C})
    if cmp.laws:  # a law average: every law's comparison retargeted, then mixed again
        per = {name: retarget(law, C, rho) for name, law in cmp.laws.items()}
        return average(per, cmp.law_weights, cmp.law_notes, cmp.fit.seed)
    recipes = recipe_fits(cmp.fit, cmp.spec, cmp.pooling, cmp.groups, rho, cmp.fit.seed, cmp.gap_slopes)
    args = (cmp.baseline, cmp.by, target, cmp.pooling, cmp.ci_prob, cmp.risk, None, cmp.warnings)
    return _assemble(cmp.fit, recipes, *args, rho, cmp.gap_slopes)


def crossing(diff: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from bayescale._compare_quantities import crossings

    return crossings(np.atleast_2d(diff), grid)


def plugin(runs: pd.DataFrame, grid: np.ndarray, targets: list[float], seed: int) -> dict:
    """Separate Huber fits (Epoch-style) per recipe and their paired residual bootstraps: the point
    estimate's k, difference and crossing, and the bootstrap's interval, P(B better) and P(cross)."""
    from baselines import bootstrap, huber_fit
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    params, boots = {}, {}
    with threadpool_limits(1):
        for i, g in enumerate(("A", "B")):
            r = runs[runs.recipe == g]
            f = bootstrap(huber_fit(r.N, r.D, r.loss), r.N, r.D, n_boot=N_BOOT, seed=seed * 2 + i)
            params[g] = f.params
            a, b, e, al, be = (f.boot_theta[:, j : j + 1] for j in range(5))
            boots[g] = {"E": np.exp(e), "A": np.exp(a), "B": np.exp(b), "alpha": al, "beta": be}
    out = {"seconds": time.perf_counter() - t0, "targets": {}}
    for C in targets:
        keep = grid <= C * (1 + 1e-9)
        k_boot = multiplier(boots["A"], boots["B"], np.array([C]))[:, 0]
        d_boot = optimal_loss(boots["B"], [C])[:, 0] - optimal_loss(boots["A"], [C])[:, 0]
        c_boot, _ = crossing(optimal_loss(boots["B"], grid[keep]) - optimal_loss(boots["A"], grid[keep]), grid[keep])
        c_pt, where_pt = crossing(
            optimal_loss(params["B"], grid[keep]) - optimal_loss(params["A"], grid[keep]), grid[keep]
        )
        lo, hi = np.quantile(k_boot, [0.05, 0.95])
        out["targets"][C] = {
            "k": float(multiplier(params["A"], params["B"], np.array([C]))[0]),
            "k_lo": float(lo),
            "k_hi": float(hi),
            "p_point": float(optimal_loss(params["B"], C) < optimal_loss(params["A"], C)),
            "p_boot": float(np.mean(d_boot < 0)),
            "cross_point": float(where_pt[0]) if c_pt[0] else float("nan"),
            "p_cross_boot": float(np.mean(c_boot)),
        }
    return out


def truth_at(pa: dict, pb: dict, grid: np.ndarray, C: float) -> dict:
    keep = grid <= C * (1 + 1e-9)
    crosses, where = crossing(optimal_loss(pb, grid[keep]) - optimal_loss(pa, grid[keep]), grid[keep])
    return {
        "k_true": float(multiplier(pa, pb, np.array([C]))[0]),
        "better_true": bool(optimal_loss(pb, C) < optimal_loss(pa, C)),
        "cross_true": float(where[0]) if crosses[0] else float("nan"),
    }


def _found(p_cross: float, at: float, truth: float) -> bool:
    return bool(p_cross > 0.5 and math.isfinite(at) and abs(math.log(at / truth)) <= math.log(CROSS_FACTOR))


def score_row(cmp: Any, truth: dict, plug: dict) -> dict:
    """One world at one target and drift correlation: bayescale's numbers, the plug-in's, the truth."""
    row = cmp.table().loc["B"]
    k_true, cross_true = truth["k_true"], truth["cross_true"]
    has_cross = math.isfinite(cross_true)
    return {
        **truth,
        "k": float(row["multiplier"]),
        "k_lo": float(row["mult_lo"]),
        "k_hi": float(row["mult_hi"]),
        "covered": bool(row["mult_lo"] <= k_true <= row["mult_hi"]),
        "width": float(math.log10(row["mult_hi"] / row["mult_lo"])),
        "clipped": float(np.mean(cmp.clipped["B"][:, -1])),
        "p_better": float(row["p_better"]),
        "p_cross": float(row["p_cross"]),
        "cross_C": float(row["cross_C"]),
        "cross_lo": float(row["cross_lo"]),
        "cross_hi": float(row["cross_hi"]),
        "found": _found(row["p_cross"], row["cross_C"], cross_true) if has_cross else None,
        "cross_in": bool(row["cross_lo"] <= cross_true <= row["cross_hi"]) if has_cross else None,
        "cross_open": bool(row["cross_lo"] == 0 or row["cross_hi"] == math.inf),
        "claimed": bool(row["p_cross"] > 0.5),
        "plug_k": plug["k"],
        "plug_covered": bool(plug["k_lo"] <= k_true <= plug["k_hi"]),
        "plug_width": float(math.log10(plug["k_hi"] / plug["k_lo"])),
        "plug_p_point": plug["p_point"],
        "plug_p_boot": plug["p_boot"],
        "plug_found": _found(plug["p_cross_boot"], plug["cross_point"], cross_true) if has_cross else None,
        "plug_claimed": bool(plug["p_cross_boot"] > 0.5),
    }


def run_world(family: str, index: int, seed: int, method: str, rhos: tuple = RHOS, pooling: Any = None) -> list[dict]:
    import bayescale as bs

    rng = np.random.default_rng([seed, FAMILIES.index(family), index])
    pa, pb = world_params(family, rng)
    runs = world_runs(pa, pb, int(rng.integers(0, 2**31)))
    c_max = float(runs.C.max())
    targets = [c_max * f for f in TARGETS]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = bs.compare(
            runs, at={"C": targets[-1]}, method=method, seed=index, drift_correlation=rhos[0], pooling=pooling
        )
    fit_s = time.perf_counter() - t0
    plug = plugin(runs, first.curve_C, targets, index)
    rows = []
    for rho in rhos:
        for f, C in zip(TARGETS, targets):
            cmp = first if (rho == rhos[0] and C == targets[-1]) else retarget(first, C, rho)
            row = score_row(cmp, truth_at(pa, pb, cmp.curve_C, C), plug["targets"][C])
            rows.append(
                {"family": family, "world": index, "target_x": f, "rho": rho, **row, "fit_s": fit_s}
                | {"plug_s": plug["seconds"], "doubts": len(first.warnings)}
            )
    return rows


def run_synthetic(args: argparse.Namespace) -> list[dict]:
    rows = []
    for family in args.families:
        for i in range(args.worlds):
            t0 = time.perf_counter()
            new = run_world(family, i, args.seed, args.method, args.rhos, POOLINGS[args.pooling])
            rows += new
            r = next(x for x in new if x["rho"] == args.rhos[0] and x["target_x"] == max(TARGETS))
            log(
                f"{family} {i}: k true {r['k_true']:.3g}, {r['k']:.3g} [{r['k_lo']:.3g}, {r['k_hi']:.3g}] "
                f"P(B better) {r['p_better']:.2f} (true {r['better_true']}), P(cross) {r['p_cross']:.2f}; "
                f"{time.perf_counter() - t0:.1f} s"
            )
    return rows


# ------------------------------------------------------------------ real data


def porian_table(data: Path, dataset: str, names: tuple[str, str]) -> pd.DataFrame:
    d = pd.read_csv(data / "porian" / "isoflop_points.csv")
    d = d[(d.source_file == PORIAN_FILES[dataset]) & (d.dataset == dataset)]
    cols = ["hparams", "warmup", "decay", "param_count", "val"]
    parts = []
    for name in names:
        sub = d[(d[cols] == pd.Series(PORIAN_SETTINGS[name], index=cols)).all(axis=1)]
        parts.append(
            pd.DataFrame({"N": sub.n_params, "D": sub.tokens, "loss": sub.loss, "setting": name}).assign(
                run_id=[f"{name}-{i}" for i in range(len(sub))]
            )
        )
    return pd.concat(parts, ignore_index=True)


def paper_multiplier(data: Path, dataset: str, base: str, other: str, C: float) -> float:
    """The multiplier implied by the paper's own loss-vs-compute fits (``L = E + A C^-alpha``, fit "basic")."""
    f = pd.read_csv(data / "porian" / "fit_results.csv")
    f = f[(f.source_file == PORIAN_FILES[dataset]) & (f.fit == "basic")]
    cols = ["hparams", "warmup", "decay", "param_count", "val"]
    rows = {n: f[(f[cols] == pd.Series(PORIAN_SETTINGS[n], index=cols)).all(axis=1)].iloc[0] for n in (base, other)}
    b, o = rows[base], rows[other]
    excess = o.E + o.A * C**-o.alpha - b.E
    return float(((excess / b.A) ** (-1 / b.alpha)) / C) if excess > 0 else float("inf")


def paper_exponent(data: Path, dataset: str, name: str) -> float:
    f = pd.read_csv(data / "porian" / "fit_results.csv")
    f = f[(f.source_file == PORIAN_FILES[dataset]) & (f.fit == "basic")]
    cols = ["hparams", "warmup", "decay", "param_count", "val"]
    return float(f[(f[cols] == pd.Series(PORIAN_SETTINGS[name], index=cols)).all(axis=1)].iloc[0].n_exponent)


def real_rows(
    label: str, runs: pd.DataFrame, by: str, base: str, other: str, method: str, extra: Any, pooling: Any = None
) -> list[dict]:
    """A real comparison at 10x and 100x the largest run: multiplier, P(better), crossing, the
    allocation exponent ``a`` (``N* ~ C^a``) per recipe, and the fit's doubts."""
    import bayescale as bs

    c_max = float((6 * runs.N * runs.D).max())
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = bs.compare(
            runs, by=by, at={"C": c_max * max(TARGETS)}, baseline=base, method=method, seed=0, pooling=pooling
        )
    seconds = time.perf_counter() - t0
    expo = {g: f.posterior["beta"] / (f.posterior["alpha"] + f.posterior["beta"]) for g, f in first.recipes.items()}
    out = []
    for fx in TARGETS:
        cmp = first if fx == max(TARGETS) else retarget(first, c_max * fx, first.drift_correlation)
        r = cmp.table().loc[other]
        out.append(
            {
                "comparison": label,
                "target_x": fx,
                "C": c_max * fx,
                "k": float(r["multiplier"]),
                "k_lo": float(r["mult_lo"]),
                "k_hi": float(r["mult_hi"]),
                "clipped": float(np.mean(cmp.clipped[other][:, -1])),
                "p_better": float(r["p_better"]),
                "diff": float(r["diff"]),
                "p_cross": float(r["p_cross"]),
                "cross_C": float(r["cross_C"]),
                "a_base": float(expo[base].median()),
                "a_other": float(expo[other].median()),
                "n": {g: int((runs[by] == g).sum()) for g in (base, other)},
                "warnings": list(first.warnings),
                "seconds": seconds,
                **(extra(c_max * fx) if extra else {}),
            }
        )
        log(
            f"{label} at {fx:g}x: k {out[-1]['k']:.3g} [{out[-1]['k_lo']:.3g}, {out[-1]['k_hi']:.3g}], P {out[-1]['p_better']:.2f}"
        )
    return out


def run_porian(data: Path, method: str) -> list[dict]:
    rows = []
    for dataset in PORIAN_FILES:
        for base, other in PORIAN_PAIRS:
            runs = porian_table(data, dataset, (base, other))

            def paper(C: float, dataset: str = dataset, base: str = base, other: str = other) -> dict:
                return {
                    "k_paper": paper_multiplier(data, dataset, base, other, C),
                    "a_paper_base": paper_exponent(data, dataset, base),
                    "a_paper_other": paper_exponent(data, dataset, other),
                }

            for name, pooling in REAL_POOLINGS.items():
                label = f"{dataset}: {other} vs {base}, {name}"
                rows += real_rows(label, runs, "setting", base, other, method, paper, pooling)
    return rows


def run_pilots(path: Path, llama: Path, method: str) -> list[dict]:
    cols = ["run_id", "N", "D", "loss", "arch"]
    lstm = pd.read_csv(path)
    runs = pd.concat([pd.read_csv(llama)[cols], lstm[cols]], ignore_index=True)
    return [
        row
        for name, pooling in REAL_POOLINGS.items()
        for row in real_rows(f"pilots: lstm vs llama, {name}", runs, "arch", "llama", "lstm", method, None, pooling)
    ]


# ------------------------------------------------------------------ the section


def markdown(rows: list[list[Any]], header: list[str]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return out + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def _brier(p: pd.Series, truth: pd.Series) -> str:
    return f"{np.mean((p.to_numpy(float) - truth.to_numpy(float)) ** 2):.3f}"


def _groups(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Per family and target, then every family pooled per target."""
    out = [(f"{fam}, {fx:g}x", g) for (fam, fx), g in df.groupby(["family", "target_x"], sort=False)]
    return out + [(f"**all**, {fx:g}x", g) for fx, g in df.groupby("target_x")]


def synthetic_tables(df: pd.DataFrame, rhos: list[float]) -> list[str]:
    d = df[df.rho == rhos[0]]
    rows = [
        [
            name,
            len(g),
            f"{g.covered.mean():.2f}",
            f"{g.plug_covered.mean():.2f}",
            f"{g.width.median():.2f} / {g.plug_width.median():.2f}",
            int((g.clipped > 0.05).sum()),
            _brier(g.p_better, g.better_true),
            _brier(g.plug_p_boot, g.better_true),
            _brier(g.plug_p_point, g.better_true),
            f"{np.median(np.abs(np.log10(g.k / g.k_true))):.2f} / {np.median(np.abs(np.log10(g.plug_k / g.k_true))):.2f}",
            f"{g.fit_s.median():.1f} / {g.plug_s.median():.1f}",
        ]
        for name, g in _groups(d)
    ]
    L = markdown(
        rows,
        [
            "family, target",
            "worlds",
            "90% coverage of k (bayescale)",
            "plug-in bootstrap coverage",
            "median width log10(hi/lo): bayescale / plug-in",
            "worlds with > 5% of draws at the 1e4 bound",
            "Brier P(B better): bayescale",
            "plug-in bootstrap",
            "plug-in point (0/1)",
            "median abs log10(k / k_true): bayescale / plug-in",
            "median s per world: joint fit / plug-in fits + bootstrap",
        ],
    )
    for rho in rhos[1:]:
        L += rho_table(df[df.rho == rho], rho)
    return L + crossing_table(d)


def _rho(rho: float | str) -> str:
    return rho if isinstance(rho, str) else f"{rho:g}"


def rho_table(d1: pd.DataFrame, rho: float) -> list[str]:
    rows = [
        [
            name,
            len(g),
            f"{g.covered.mean():.2f}",
            f"{g.width.median():.2f}",
            int((g.clipped > 0.05).sum()),
            _brier(g.p_better, g.better_true),
        ]
        for name, g in _groups(d1)
    ]
    L = [
        "",
        f"The same fits read with `drift_correlation={_rho(rho)}`"
        + (" (one shared drift, which cancels in a difference):" if rho == 1 else ":"),
        "",
    ]
    return L + markdown(
        rows,
        [
            "family, target",
            "worlds",
            "90% coverage of k",
            "median width log10(hi/lo)",
            "worlds at the bound",
            "Brier P(B better)",
        ],
    )


def crossing_table(d: pd.DataFrame) -> list[str]:
    rows = []
    for name, g in _groups(d):
        has = g[g.cross_true.notna()]
        none = g[g.cross_true.isna()]
        rows.append(
            [
                name,
                f"{len(has)} / {len(none)}",
                f"{int(has.claimed.sum())}/{len(has)}" if len(has) else "-",
                f"{int(has.found.sum())}/{len(has)}" if len(has) else "-",
                f"{int(has.plug_found.sum())}/{len(has)}" if len(has) else "-",
                _count(has, "cross_in"),
                _count(has, "cross_open"),
                f"{int(none.claimed.sum())}/{len(none)}" if len(none) else "-",
                f"{int(none.plug_claimed.sum())}/{len(none)}" if len(none) else "-",
            ]
        )
    L = [
        "",
        "Crossings (a true crossing between the smallest run and the target; detected = P(cross) > 0.5; "
        f"found = detected and the median crossing within {CROSS_FACTOR:g}x of the truth; the crossing's median "
        "and 90% interval are over all draws, those that cross beyond the target counted there; open = the "
        "interval runs beyond the target or below the smallest run):",
        "",
    ]
    L += markdown(
        rows,
        [
            "family, target",
            "worlds with / without a true crossing",
            "detected: bayescale",
            "found: bayescale",
            "found: plug-in bootstrap",
            "truth inside the 90% crossing interval: bayescale",
            "that interval open",
            "claimed without one: bayescale",
            "plug-in bootstrap",
        ],
    )
    return L


def _count(rows: pd.DataFrame, column: str) -> str:
    """``n/N`` of a yes/no column (``-`` where the rows, or an older run's file, lack it)."""
    if not len(rows) or column not in rows or rows[column].isna().all():
        return "-"
    return f"{int(rows[column].astype(bool).sum())}/{len(rows)}"


def _place(C: float) -> str:
    """A crossing's compute: 0 is before the smallest run, inf beyond the target."""
    return "below the runs" if C == 0 else "beyond the target" if C == math.inf else f"{C:.2g}"


def _fmt_k(r: dict) -> str:
    return f"{r['k']:.3g} ({r['k_lo']:.3g}-{r['k_hi']:.3g})" + (
        f", {100 * r['clipped']:.0f}% at a bound" if r["clipped"] > 0.05 else ""
    )


def real_table(rows: list[dict], paper: bool) -> list[str]:
    out = []
    for r in rows:
        cells = [
            r["comparison"],
            f"{r['target_x']:g}x ({r['C']:.2g})",
            _fmt_k(r),
            f"{r['p_better']:.2f}",
            f"{r['diff']:+.3f}",
            f"{r['p_cross']:.2f}" + (f" (median {_place(r['cross_C'])})" if r["p_cross"] >= 0.05 else ""),
            f"{r['a_base']:.2f} / {r['a_other']:.2f}",
        ]
        if paper:
            cells += [f"{r['k_paper']:.3g}", f"{r['a_paper_base']:.2f} / {r['a_paper_other']:.2f}"]
        cells.append(str(len(r["warnings"])))
        out.append(cells)
    head = [
        "comparison",
        "target (C)",
        "k, 90% interval",
        "P(better)",
        "loss diff",
        "P(cross below target)",
        "a = d log N*/d log C: base / other",
    ]
    head += ["k from the paper's L(C) fits", "paper's a: base / other"] if paper else []
    return markdown(out, head + ["doubts"])


def synthetic_block(res: dict) -> list[str]:
    m = res["meta"]
    rhos = m.get("rhos", list(RHOS))
    return [
        f"Synthetic worlds: {m['worlds']} per family, families {', '.join(m['families'])}, method {m['method']}, "
        f"pooling {m.get('pooling', 'default')}, seed {m['seed']}; ladder N {LADDER['N'][0]:.0e}-{LADDER['N'][-1]:.0e} x "
        f"{len(LADDER['tokens_per_param'])} tokens-per-parameter ratios ({len(LADDER['N']) * len(LADDER['tokens_per_param'])} "
        f"runs per recipe), noise {100 * SIGMA:g}%; targets {', '.join(f'{t:g}x' for t in TARGETS)} the largest run. "
        f"Plug-in: separate Huber fits per recipe, residual bootstrap ({N_BOOT} refits per recipe, paired). "
        f"`drift_correlation={_rho(rhos[0])}`:",
        "",
        *synthetic_tables(pd.DataFrame(res["synthetic"]), rhos),
        "",
    ]


def render(res: dict, extra: list[dict] = ()) -> str:
    """The section: the main run's synthetic study, Porian and pilots; then further synthetic studies
    (investigations: other pooling, drift correlations, methods), each with its own command line."""
    L = [SECTION, ""]
    runs_with_porian = [r for r in (res, *extra) if r.get("porian")]
    porian = runs_with_porian[-1] if runs_with_porian else res  # the latest run that has them
    if res.get("synthetic"):
        L += synthetic_block(res) + ([] if porian is res else [res["footer"], ""])
    if runs_with_porian:
        L += [
            "Porian et al. (the tuned setting against earlier settings of the paper's sequence):",
            "",
            *real_table(porian["porian"], True),
            "",
        ]
        L += ["Doubts raised by the fits (the first finding of each):", ""]
        seen = {}
        for r in porian["porian"]:
            seen.setdefault(r["comparison"], r["warnings"])
        L += [f"- {k}: " + ("; ".join(w.split(" | ")[0][:220] for w in v) or "none") for k, v in seen.items()]
        L += [""] if porian is res else ["", porian["footer"], ""]
    runs_with_pilots = [r for r in (res, *extra) if r.get("pilots")]
    if runs_with_pilots:
        pilots = runs_with_pilots[0]
        L += ["Pilots: LSTM against the committed Llama pilots:", "", *real_table(pilots["pilots"], False), ""]
        L += ["- " + ("; ".join(w.split(" | ")[0][:220] for w in pilots["pilots"][0]["warnings"]) or "no doubts"), ""]
        L += [] if pilots is res else [pilots["footer"], ""]
    else:
        notes = [r["meta"]["pilots_note"] for r in (res, *extra) if r["meta"].get("pilots_note")]
        L += [f"Pilots: {notes[-1]}", ""] if notes else []
    L += [res["footer"], ""] if porian is res else []
    for other in extra:
        if other.get("synthetic"):
            L += ["### Investigation", "", *synthetic_block(other), other["footer"], ""]
    return "\n".join(L)


def footer(argv: list[str], seconds: float, loads: list[float]) -> str:
    import jax
    import numpyro
    import scipy
    from bench_brier import git_commit

    import bayescale

    cmd = " ".join(shlex.quote(a) for a in ["benchmarks/bench_compare.py", *argv])
    return (
        f"Run: `PYTHONPATH=. nice .venv/bin/python {cmd}` on {_dt.date.today().isoformat()}, commit {git_commit()}; {platform.platform()}, {os.cpu_count()} CPUs, "
        f"no GPU; Python {platform.python_version()}, bayescale {bayescale.__version__}, numpyro {numpyro.__version__}, "
        f"jax {jax.__version__}, numpy {np.__version__}, scipy {scipy.__version__}. Total {seconds / 60:.1f} min; 1-minute load "
        f"average {min(loads):.1f}-{max(loads):.1f} (shared machine: wall times are inflated)."
    )


def pilots_or_note(args: argparse.Namespace) -> tuple[list[dict], str]:
    """The pilot comparison, or why it was not run (the second sweep may still be training)."""
    from bayescale.errors import BayescaleError

    if not args.pilots.is_file():
        return [], f"{args.pilots} not found; not run"
    rows = len(pd.read_csv(args.pilots))
    if rows < MIN_PILOTS:
        return [], f"{args.pilots} has {rows} runs (< {MIN_PILOTS}, the sweep is still training); not run"
    try:
        return run_pilots(args.pilots, args.llama, args.method), ""
    except BayescaleError as e:
        return [], f"not run: {e}"


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worlds", type=int, default=25, help="synthetic worlds per family (0: none)")
    ap.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated, of {','.join(FAMILIES)}")
    ap.add_argument("--method", choices=["laplace", "nuts", "psis"], default="laplace")
    ap.add_argument("--pooling", choices=list(POOLINGS), default="default", help="synthetic worlds' pooling")
    ap.add_argument(
        "--rhos",
        default=",".join(_rho(r) for r in RHOS),
        help="drift correlations read off each synthetic fit; the first is the headline table's",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("BAYESCALE_DATA", REPO.parent / "shared" / "data"))
    )
    ap.add_argument("--no-porian", action="store_true")
    ap.add_argument(
        "--pilots",
        type=Path,
        default=None,
        help="a second architecture's pilot table (arch column), e.g. data/pilot_runs_lstm.csv",
    )
    ap.add_argument(
        "--llama", type=Path, default=REPO / "data" / "pilot_runs.csv", help="the committed pilots (baseline)"
    )
    ap.add_argument("--json", type=Path, default=None, help="write all numbers here")
    ap.add_argument(
        "--render-json", type=Path, default=None, help="re-render the section from a --json file; fits nothing"
    )
    ap.add_argument(
        "--extra-json", type=Path, nargs="*", default=[], help="--json files of further synthetic studies to show"
    )
    ap.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    ap.add_argument("--no-write", action="store_true", help="print the section, leave --out alone")
    args = ap.parse_args(argv)
    args.families = [f.strip() for f in args.families.split(",") if f.strip()]
    args.rhos = tuple(r if r == "learned" else float(r) for r in args.rhos.split(","))
    if "learned" in args.rhos[1:]:  # the gap is learned by the first fit; later readings reuse it
        raise SystemExit("--rhos: 'learned' must come first")
    bad = [f for f in args.families if f not in FAMILIES]
    if bad:
        ap.error(f"unknown families {bad}; allowed: {', '.join(FAMILIES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    extra = [json.loads(p.read_text()) for p in args.extra_json]
    if args.render_json:
        res = json.loads(args.render_json.read_text())
    else:
        t0, loads = time.perf_counter(), [os.getloadavg()[0]]
        res = {
            "meta": {
                "worlds": args.worlds,
                "families": args.families,
                "method": args.method,
                "seed": args.seed,
                "pooling": args.pooling,
                "rhos": list(args.rhos),
            }
        }
        res["synthetic"] = run_synthetic(args) if args.worlds else []
        res["porian"] = [] if args.no_porian else run_porian(args.data, args.method)
        if args.pilots is not None:
            res["pilots"], res["meta"]["pilots_note"] = pilots_or_note(args)
        loads.append(os.getloadavg()[0])
        res["footer"] = footer(argv, time.perf_counter() - t0, loads)
        if args.json:
            args.json.write_text(json.dumps(res, indent=1, default=float))
    body = render(res, extra)
    print(body)
    if not args.no_write:
        from bench_brier import write_sections

        write_sections(args.out, {SECTION: body})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
