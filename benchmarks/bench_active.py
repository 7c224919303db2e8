#!/usr/bin/env python
"""Active selection of the next pilot run against fixed designs, at equal FLOPs.

Simulation study (issue 6). Every world starts from the same 6 seed pilots (N in {1e7, 2e7, 4e7} x
tokens per parameter {8, 40}: more runs than the law has parameters, which a Laplace fit needs) and spends a pilot budget B = 1e19 FLOPs (about 14x the seed
pilots' compute). The target is the loss of a planned run at N* = 4e9, D* = 2e11 (50 tokens per
parameter, C* = 4.8e21, about 2.5 decades beyond the largest pilot any design can afford).

Methods (each one picks runs, pays 6ND for them, and is refitted with ``bayescale.fit(...,
method="laplace")``, spec ``models/chinchilla.toml``: Student-t likelihood and the
extrapolation-drift prior):

* ``active``: ``bayescale.active.run_loop`` with a simulated trainer (suggest k=8 runs from the
  default candidate grid with the default planner, train, check, refit, re-plan until the budget
  is spent, at most 10 rounds);
* fixed designs: a D = 20N ladder (N doubling from 1e7), a ladder at the target's ratio (50), an
  isoFLOP grid (compute levels x 3.16 from 1e16, 4 sizes each at 5-160 tokens/param), a stratified
  grid (6 sizes x 6 ratios, visited one random ratio per size per pass), random order over the
  same grid, and cheapest-first. A design spends its runs in order, skipping a run that would
  exceed the budget.

Worlds: well-specified Chinchilla truths (drawn around Epoch's fit, log-normal noise sd 0.01);
misspecified ones (a data exponent that drifts with N, a broken power law beyond 1e9 params / 2e10
tokens, extra loss at small N, Student-t noise with 2 dof, 25% under-tuned runs); and replay on
Epoch's Chinchilla runs (``shared/data``): the candidates are the recorded runs with C <= 1e20
(revealing a run's recorded loss when chosen), the target is the recorded loss of the run with the
largest compute (1.3e22 FLOPs), the seed is 6 random runs below 1e19 FLOPs, the budget 3e20.

Metrics against FLOPs spent (checkpoints B/4, B/2, B, and 2B, 4B for fixed designs): error of the
target's median prediction (|log median - log truth|), coverage of the 90% interval (and of the
law-only interval, without the extrapolation drift), and the FLOPs a fixed design needs to match
the active method's error at B. In well-specified worlds also each design's linearised sd at the
true parameters (its expected error, free of the noise of single fits). Plus the timing of scoring 1000
candidates against 4000 posterior draws.

Usage::

    nice -n 5 .venv/bin/python benchmarks/bench_active.py --worlds 6 --misspecified 3 --replay 4
    .venv/bin/python benchmarks/bench_active.py --from-json /tmp/bench_active.jsonl   # re-render
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Active selection of the next pilot (issue 6)"
SPEC = REPO / "models" / "chinchilla.toml"
#: The law the linearised sd is computed for (the worlds' own form), whatever spec the designs are fitted with.
LAW_SPEC = SPEC
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_brier import (  # the shared world prior, commit label and section writer
    EPOCH,
    draw_truth,
    git_commit,
    write_sections,
)

SEED_N, SEED_R = (1e7, 2e7, 4e7), (8.0, 40.0)
BUDGET = 1e19
TARGET = {"N": 4e9, "D": 2e11}
SIGMA = 0.01
LOSS_CAP = 19.5
FRACS = (0.25, 0.5, 1.0)
FIXED_FRACS = (0.25, 0.5, 1.0, 2.0, 4.0)
MISSPEC = ("beta_drifts", "broken_power", "small_N_extra", "heavy_tails", "undertuned")
DESIGNS = ("ladder_20", "ladder_target", "isoflop", "stratified", "random", "cheapest")
REPLAY_POOL_CMAX, REPLAY_SEED_CMAX, REPLAY_BUDGET = 1e20, 1e19, 3e20
FIT = {"chains": 2, "draws": 1000}  # Laplace draws per fit (2000), the same for every method
METHOD = "laplace"  # how every fit of the study is made (--method): "laplace" or "psis"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ worlds


def chin(p: dict[str, float], N: np.ndarray, D: np.ndarray, beta: Any = None) -> np.ndarray:
    b = p["beta"] if beta is None else beta
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D**b


def world_fn(kind: str, p: dict[str, float]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The true (noise-free) loss of a world."""
    if kind == "beta_drifts":
        return lambda N, D: chin(p, N, D, beta=p["beta"] + 0.04 * np.log10(N / 1e8))
    if kind == "broken_power":

        def f(N: np.ndarray, D: np.ndarray) -> np.ndarray:
            nb, db = 1e9, 2e10
            tn = np.where(N > nb, p["A"] / nb ** p["alpha"] * (N / nb) ** -(p["alpha"] - 0.1), p["A"] / N ** p["alpha"])
            td = np.where(D > db, p["B"] / db ** p["beta"] * (D / db) ** -(p["beta"] - 0.1), p["B"] / D ** p["beta"])
            return p["E"] + tn + td

        return f
    if kind == "small_N_extra":
        return lambda N, D: chin(p, N, D) + 0.15 * (1e7 / N)
    return lambda N, D: chin(p, N, D)


class World:
    def __init__(self, kind: str, seed: int) -> None:
        self.kind, self.seed = kind, seed
        rng = np.random.default_rng(1000 + seed)
        self.params = draw_truth(rng)
        self.fn = world_fn(kind, self.params)
        self.df = 2.0 if kind == "heavy_tails" else None
        self.truth = float(self.fn(np.array([TARGET["N"]]), np.array([TARGET["D"]]))[0])

    def loss(self, run_id: str, N: float, D: float) -> float:
        rng = np.random.default_rng([self.seed, zlib.crc32(run_id.encode())])
        eps = rng.standard_t(self.df) if self.df else rng.standard_normal()
        loss = float(self.fn(np.array([N]), np.array([D]))[0]) * math.exp(SIGMA * eps)
        if self.kind == "undertuned" and rng.uniform() < 0.25:
            loss *= math.exp(rng.uniform(0.02, 0.06))
        # The runs table refuses losses above 20 (no language model trains there); a world whose
        # truth goes past it at the pool's smallest corner (beta_drifts below 1e7 params at 5
        # tokens/param) reads as a pilot stuck at that loss.
        return min(loss, LOSS_CAP)

    def seed_runs(self) -> pd.DataFrame:
        rows = []
        for n in SEED_N:
            for r in SEED_R:
                rid = f"seed-{n:.0e}-{r:g}"
                rows.append({"run_id": rid, "N": n, "D": n * r, "loss": self.loss(rid, n, n * r)})
        return pd.DataFrame(rows)

    def trainer(self) -> Callable[[pd.DataFrame], list[dict[str, Any]]]:
        def train(c: pd.DataFrame) -> list[dict[str, Any]]:
            return [
                {
                    "run_id": str(r.run_id),
                    "N": float(r.N),
                    "D": float(r.D),
                    "loss": self.loss(str(r.run_id), float(r.N), float(r.D)),
                }
                for r in c.itertuples()
            ]

        return train


# ------------------------------------------------------------------ fixed designs


def design_sequence(name: str, rng: np.random.Generator, n_hi: float = 3e9) -> list[tuple[float, float]]:
    """An ordered list of (N, D) a fixed design trains, longest first affordable prefix wins."""
    if name in ("ladder_20", "ladder_target"):
        r = 20.0 if name == "ladder_20" else TARGET["D"] / TARGET["N"]
        ns = 1e7 * 2.0 ** np.arange(0, 12)
        return [(n, n * r) for n in ns if n <= n_hi]
    if name == "isoflop":
        out = []
        for c in 1e16 * 10 ** (0.5 * np.arange(0, 10)):
            for r in (5.0, 20.0, 80.0, 160.0):
                n = math.sqrt(c / (6 * r))
                out.append((n, n * r))
        return out
    grid_n = np.geomspace(1e7, 1e9, 6)
    grid_r = np.array([5.0, 10.0, 20.0, 40.0, 80.0, 160.0])
    if name == "stratified":
        perms = [rng.permutation(grid_r) for _ in grid_n]
        return [(n, n * perms[i][p]) for p in range(len(grid_r)) for i, n in enumerate(grid_n)]
    pool = [(n, n * r) for n in grid_n for r in grid_r]
    if name == "random":
        return [pool[i] for i in rng.permutation(len(pool))]
    if name == "cheapest":
        return sorted(pool, key=lambda x: x[0] * x[1])
    raise ValueError(name)


def take(seq: list[tuple[float, float]], budget: float) -> list[tuple[float, float]]:
    out, spent = [], 0.0
    for n, d in seq:
        c = 6 * n * d
        if spent + c <= budget * (1 + 1e-9):
            out.append((n, d))
            spent += c
    return out


# ------------------------------------------------------------------ fitting


class Fitter:
    def __init__(self, target: Any) -> None:
        self.cache: dict[tuple, dict[str, float]] = {}
        self.target = target
        self.n_fits = 0
        self.seconds = 0.0

    def band(self, runs: pd.DataFrame) -> dict[str, float]:
        import bayescale as bs
        from bayescale.active import target_band

        key = tuple(sorted(runs["run_id"].astype(str)))
        if key not in self.cache:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f = bs.fit(str(SPEC), runs.reset_index(drop=True), method=METHOD, seed=0, **FIT)
            self.cache[key] = target_band(f, self.target)
            self.n_fits += 1
            self.seconds += time.perf_counter() - t0
        return self.cache[key]


def score_band(b: dict[str, float], truth: float) -> dict[str, float]:
    return {
        "err": abs(math.log(b["median"]) - math.log(truth)),
        "cover": float(b["lo90"] <= truth <= b["hi90"]),
        "width": b["log_width90"],
        "cover_law": float(b["lo90_law"] <= truth <= b["hi90_law"]),
    }


@functools.lru_cache(maxsize=1)
def _prior_sd() -> np.ndarray:
    """Sds of log E, log A, log B, log alpha, log beta under the Chinchilla spec's LogNormal priors."""
    from bayescale.spec import load_spec

    priors = load_spec(LAW_SPEC).priors
    return np.array([float(priors[k].params["scale"]) for k in ("E", "A", "B", "alpha", "beta")])


def linearised_sd(p: dict[str, float], pts: list[tuple[float, float]]) -> float:
    """Expected sd of the target's log-loss estimate from runs at ``pts`` (seed pilots included) in a
    well-specified world: the law linearised at the true parameters (log scale), run noise SIGMA and
    the spec's priors. Unlike the realised error of one fit, it has no noise of its own, so it
    compares designs world by world (E|error| ~ 0.8 sd)."""

    def grad(N: np.ndarray, D: np.ndarray) -> np.ndarray:
        tn, td = p["A"] / N ** p["alpha"], p["B"] / D ** p["beta"]
        L = p["E"] + tn + td
        return (
            np.stack([p["E"] + 0 * N, tn, td, -tn * np.log(N) * p["alpha"], -td * np.log(D) * p["beta"]], -1)
            / L[..., None]
        )

    x = np.asarray(pts, dtype=float)
    G = grad(x[:, 0], x[:, 1])
    info = G.T @ G / SIGMA**2 + np.diag(1.0 / _prior_sd() ** 2)
    h = grad(np.array([TARGET["N"]]), np.array([TARGET["D"]]))[0]
    return float(math.sqrt(h @ np.linalg.solve(info, h)))


def world_linearised_sd(r: dict[str, Any]) -> dict[str, float]:
    """linearised_sd of every design's runs at B in one well-specified world (from its record)."""
    seed_pts = [(n, n * q) for n in SEED_N for q in SEED_R]
    out = {
        m: linearised_sd(
            r["params"],
            seed_pts + take(design_sequence(m, np.random.default_rng([r["seed"], zlib.crc32(m.encode())])), BUDGET),
        )
        for m in DESIGNS
    }
    out["active"] = linearised_sd(r["params"], seed_pts + [tuple(x) for x in r["active_runs"]])
    return out


def run_active(
    seed_runs: pd.DataFrame,
    train: Callable,
    target: Any,
    budget: float,
    candidates: Any = None,
    k: int = 8,
    max_rounds: int = 10,
    max_replicates: int = 2,
    options: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], float, pd.DataFrame]:
    from bayescale.active import run_loop

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.csv"
        seed_runs.to_csv(path, index=False)
        sopts = (
            {"max_replicates": max_replicates}
            if candidates is None
            else {"candidates": candidates, "max_replicates": max_replicates}
        )
        sopts.update(options or {})
        plan = {
            "runs": str(path),
            "spec": str(SPEC),
            "target": target,
            "budget": budget,
            "k": k,
            "method": METHOD,
            "fit": dict(FIT),
            "max_rounds": max_rounds,
            "suggest": sopts,
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = run_loop(plan, train=train)
        hist = res.history.to_dict(orient="records")
        final = pd.read_csv(path)
    return hist, time.perf_counter() - t0, final


def at_budget(hist: list[dict[str, Any]], b: float) -> dict[str, Any]:
    ok = [h for h in hist if h["spent"] <= b * (1 + 1e-9)]
    return ok[-1]


def synthetic_world(
    kind: str, seed: int, options: dict[str, Any] | None = None, fixed: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One world: every fixed design (or ``fixed``, the designs of an earlier run of the same world)
    and the active loop with ``options`` passed to ``suggest``."""
    w = World(kind, seed)
    rng = np.random.default_rng(seed)
    seed_runs = w.seed_runs()
    target = dict(TARGET)
    fitter = Fitter(target)
    out: dict[str, Any] = {"kind": kind, "seed": seed, "truth": w.truth, "params": w.params, "designs": {}}
    for name in DESIGNS if fixed is None else ():
        seq = design_sequence(name, np.random.default_rng([seed, zlib.crc32(name.encode())]))
        res = {}
        for frac in FIXED_FRACS:
            chosen = take(seq, BUDGET * frac)
            rows = [
                {"run_id": f"{name}-{i}", "N": n, "D": d, "loss": w.loss(f"{name}-{i}", n, d)}
                for i, (n, d) in enumerate(chosen)
            ]
            runs = pd.concat([seed_runs, pd.DataFrame(rows)], ignore_index=True) if rows else seed_runs
            b = fitter.band(runs)
            res[str(frac)] = {
                **score_band(b, w.truth),
                "spent": float(sum(6 * n * d for n, d in chosen)),
                "n": len(chosen),
            }
        out["designs"][name] = res
    if fixed is not None:
        out["designs"].update({k: v for k, v in fixed.items() if k != "active"})
    hist, secs, final = run_active(seed_runs, w.trainer(), target, BUDGET, options=options)
    out["designs"]["active"] = {
        str(f): {
            **score_band(at_budget(hist, BUDGET * f), w.truth),
            "spent": at_budget(hist, BUDGET * f)["spent"],
            "n": int(at_budget(hist, BUDGET * f)["n_runs"]) - len(seed_runs),
        }
        for f in FRACS
    }
    new = final[~final["run_id"].astype(str).str.startswith("seed-")]
    out["active_runs"] = [[float(r.N), float(r.D)] for r in new.itertuples()]
    out["active_seconds"] = secs
    out["fit_seconds"] = fitter.seconds
    del rng
    return out


def replay_world(
    seed: int, data: Path, options: dict[str, Any] | None = None, fixed: dict[str, Any] | None = None
) -> dict[str, Any]:
    os.environ["BAYESCALE_DATA"] = str(data)
    from bayescale.datasets import load_chinchilla

    runs = load_chinchilla()
    tgt = runs.loc[runs["C"].idxmax()]
    truth = float(tgt["loss"])
    target = {"N": float(tgt["N"]), "D": float(tgt["D"])}
    pool = runs[runs["C"] <= REPLAY_POOL_CMAX].reset_index(drop=True)
    rng = np.random.default_rng(500 + seed)
    small = pool.index[pool["C"] <= REPLAY_SEED_CMAX].to_numpy()
    seed_idx = rng.choice(small, 6, replace=False)
    seed_runs = pool.loc[seed_idx, ["run_id", "N", "D", "loss"]].reset_index(drop=True)
    rest = pool.drop(index=seed_idx).reset_index(drop=True)
    fitter = Fitter(target)
    out: dict[str, Any] = {"kind": "replay", "seed": seed, "truth": truth, "designs": {}}
    lp = np.log(rest[["N", "D"]].to_numpy(float))
    if fixed is not None:
        out["designs"].update({k: v for k, v in fixed.items() if k != "active"})
    for name in DESIGNS if fixed is None else ():
        seq = design_sequence(name, np.random.default_rng([seed, zlib.crc32(name.encode())]), n_hi=1e10)
        # map each design point to the nearest unused recorded run
        used: set[int] = set()
        mapped = []
        for n, d in seq:
            dist = np.abs(lp - np.log([n, d])[None, :]).sum(axis=1)
            dist[list(used)] = np.inf
            i = int(np.argmin(dist))
            if not np.isfinite(dist[i]):
                break
            used.add(i)
            mapped.append(i)
        res = {}
        for frac in FIXED_FRACS:
            chosen, spent = [], 0.0
            for i in mapped:
                c = float(rest.loc[i, "C"])
                if spent + c <= REPLAY_BUDGET * frac:
                    chosen.append(i)
                    spent += c
            r2 = pd.concat([seed_runs, rest.loc[chosen, ["run_id", "N", "D", "loss"]]], ignore_index=True)
            res[str(frac)] = {**score_band(fitter.band(r2), truth), "spent": spent, "n": len(chosen)}
        out["designs"][name] = res
    lookup = rest.set_index("run_id")

    used: set[int] = set()

    def train(c: pd.DataFrame) -> list[dict[str, Any]]:
        # reveal the nearest recorded run not revealed before (each recorded run exists once)
        rows = []
        for r in c.itertuples():
            d = np.abs(lp - np.log([r.N, r.D])[None, :]).sum(axis=1)
            d[list(used)] = np.inf
            i = int(np.argmin(d))
            used.add(i)
            rows.append(
                {
                    "run_id": str(rest.loc[i, "run_id"]),
                    "N": float(rest.loc[i, "N"]),
                    "D": float(rest.loc[i, "D"]),
                    "loss": float(rest.loc[i, "loss"]),
                }
            )
        return rows

    del lookup
    cands = rest[["N", "D"]]
    hist, secs, _ = run_active(
        seed_runs, train, target, REPLAY_BUDGET, candidates=cands, max_replicates=1, options=options
    )
    out["designs"]["active"] = {
        str(f): {
            **score_band(at_budget(hist, REPLAY_BUDGET * f), truth),
            "spent": at_budget(hist, REPLAY_BUDGET * f)["spent"],
        }
        for f in FRACS
    }
    out["active_seconds"] = secs
    return out


# ------------------------------------------------------------------ timing


def timing(n_rep: int = 3) -> dict[str, Any]:
    import bayescale as bs
    from bayescale.active import candidate_grid, score
    from bayescale.testing import synthetic_runs

    runs = synthetic_runs("chinchilla", EPOCH, N=(1e7, 3e7, 1e8, 3e8), tokens_per_param=(5, 20, 80), sigma=0.01, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bs.fit(str(SPEC), runs, method="laplace", seed=0)
    S = fit.posterior.sizes["chain"] * fit.posterior.sizes["draw"]
    cands = candidate_grid((5e6, 3e9), np.geomspace(2, 400, 25), n_sizes=40)
    out = {"draws": int(S), "candidates": len(cands)}
    t0 = time.perf_counter()
    score(fit, cands, TARGET)
    out["cold_s"] = time.perf_counter() - t0
    warm = []
    for i in range(n_rep):
        t0 = time.perf_counter()
        score(fit, cands, TARGET, seed=i + 1)
        warm.append(time.perf_counter() - t0)
    out["warm_s"] = warm
    warm_g = []
    for i in range(n_rep):
        t0 = time.perf_counter()
        score(fit, cands, TARGET, seed=i + 1, refine=False)
        warm_g.append(time.perf_counter() - t0)
    out["warm_gaussian_only_s"] = warm_g
    return out


# ------------------------------------------------------------------ report


def summarize(results: list[dict[str, Any]], group: str) -> dict[str, Any]:
    rs = [r for r in results if (r["kind"] == "well" if group == "well" else r["kind"] == group)]
    if not rs:
        return {}
    methods = ["active", *DESIGNS]
    tab: dict[str, Any] = {}
    for m in methods:
        fr = FRACS if m == "active" else FIXED_FRACS
        tab[m] = {}
        for f in fr:
            e = np.array([r["designs"][m][str(f)]["err"] for r in rs])
            c = np.array([r["designs"][m][str(f)]["cover"] for r in rs])
            s = np.array([r["designs"][m][str(f)]["spent"] for r in rs])
            cl = [r["designs"][m][str(f)].get("cover_law") for r in rs]
            tab[m][f] = {
                "err": float(e.mean()),
                "err_se": float(e.std(ddof=1) / math.sqrt(len(e))) if len(e) > 1 else float("nan"),
                "cover": float(c.mean()),
                "spent": float(s.mean()),
                "cover_law": float(np.mean(cl)) if all(x is not None for x in cl) else float("nan"),
            }
    out = {"n": len(rs), "tab": tab}
    if group == "well" and all(r.get("active_runs") for r in rs):
        lsd = [world_linearised_sd(r) for r in rs]
        out["lin_sd"] = {
            m: (
                float(np.mean([x[m] for x in lsd])),
                float(np.std([x[m] for x in lsd], ddof=1) / math.sqrt(len(lsd))) if len(lsd) > 1 else float("nan"),
            )
            for m in methods
        }
        out["lin_sd_paired"] = {m: float(np.mean([x["active"] / x[m] for x in lsd])) for m in DESIGNS}
    return out


def flops_to_match(tab: dict[str, Any], design: str, target_err: float) -> float:
    """Smallest budget fraction (log-interpolated over checkpoints) where the design's mean error <= target_err."""
    fr = list(FIXED_FRACS)
    errs = [tab[design][f]["err"] for f in fr]
    if errs[0] <= target_err:
        return fr[0]
    for i in range(1, len(fr)):
        if errs[i] <= target_err:
            e0, e1 = errs[i - 1], errs[i]
            t = (e0 - target_err) / (e0 - e1) if e0 != e1 else 1.0
            return float(math.exp(math.log(fr[i - 1]) + t * (math.log(fr[i]) - math.log(fr[i - 1]))))
    return float("inf")


def render(
    results: list[dict[str, Any]], tim: dict[str, Any] | None, meta: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    groups = [
        ("well", "Well-specified Chinchilla worlds"),
        *[(k, f"Misspecified: {k.replace('_', ' ')}") for k in MISSPEC],
        ("replay", "Replay on Epoch's Chinchilla runs"),
    ]
    lines = [SECTION, ""]
    lines.append(
        "Does `bayescale.active` (suggest + the closed loop) pin the target down with fewer FLOPs than fixed designs? "
        "Simulation study in `benchmarks/bench_active.py`: every method starts from the same 6 seed pilots, spends the "
        f"same pilot budget B ({BUDGET:.0e} FLOPs in the synthetic worlds, {REPLAY_BUDGET:.0e} in the replay) and is refitted with "
        f'`bayescale.fit({os.path.relpath(SPEC, REPO)}, method="{METHOD}", chains=2, draws=1000)` (2000 draws, not NUTS, to fit the study into the time '
        "available on 2 shared cores). Target: the loss of a planned run at N = 4e9, D = 2e11 (2.5+ decades beyond any pilot) in "
        "the synthetic worlds; the recorded loss of the largest-compute run (1.3e22 FLOPs) in the replay. Error = |log median "
        "prediction - log truth| (x100 ~ percent), averaged over worlds (SE in brackets); coverage = fraction of worlds whose 90% "
        "interval holds the truth; the law-only coverage in brackets leaves out the spec's extrapolation drift. The active method runs `run_loop` (k = 8 runs per round, at most 10 rounds, default `suggest` "
        "settings: the whole-budget allocation planner and the default candidate grid; in the replay the candidates are the recorded runs with C <= 1e20, a chosen run reveals its recorded loss, and each recorded run can be chosen once: max_replicates = 1)."
    )
    lines.append("")
    summ: dict[str, Any] = {}
    verdicts = []
    for g, title in groups:
        s = summarize(results, g)
        if not s:
            continue
        summ[g] = s
        tab = s["tab"]
        lines.append(f"**{title}** ({s['n']} worlds)")
        lines.append("")
        lin = s.get("lin_sd")
        lines.append(
            "| method | error at B/4 | error at B/2 | error at B | 90% coverage at B (law only) | error at 2B | error at 4B | FLOPs to match active at B |"
            + (" linearised sd at B |" if lin else "")
        )
        lines.append("|---|---|---|---|---|---|---|---|" + ("---|" if lin else ""))
        a_err = tab["active"][1.0]["err"]
        best_fixed = min(DESIGNS, key=lambda d: tab[d][1.0]["err"])
        for m in ["active", *DESIGNS]:
            t = tab[m]

            def cell(f: float, t: dict[str, Any] = t) -> str:
                return f"{100 * t[f]['err']:.2f} ({100 * t[f]['err_se']:.2f})" if f in t else "-"

            x = flops_to_match(tab, m, a_err) if m != "active" else float("nan")
            match = "-" if m == "active" else ("> 4B" if not math.isfinite(x) else f"{x:.2g}B")
            cl = f" ({t[1.0]['cover_law']:.2f})" if math.isfinite(t[1.0]["cover_law"]) else ""
            ls = f" {100 * lin[m][0]:.2f} ({100 * lin[m][1]:.2f}) |" if lin else ""
            lines.append(
                f"| {m}{' (best fixed at B)' if m == best_fixed else ''} | {cell(0.25)} | {cell(0.5)} | {cell(1.0)} | {t[1.0]['cover']:.2f}{cl} | {cell(2.0)} | {cell(4.0)} | {match} |{ls}"
            )
        budget = REPLAY_BUDGET if g == "replay" else BUDGET
        spent = ", ".join(f"{m} {100 * tab[m][1.0]['spent'] / budget:.0f}%" for m in ["active", *DESIGNS])
        lines.append("")
        lines.append(f"Mean FLOPs spent at checkpoint B, as % of B: {spent}.")
        lines.append("")
        bf = tab[best_fixed][1.0]["err"]
        rel = a_err / bf - 1.0
        match = flops_to_match(tab, best_fixed, a_err)
        if g == "well":
            ok = rel <= -0.25 or match >= 2.0
            verdicts.append(
                f"- Well-specified: active error at B {100 * a_err:.2f} vs best fixed ({best_fixed}) {100 * bf:.2f}: {100 * rel:+.0f}%; "
                f"the best fixed design needs {'> 4' if not math.isfinite(match) else f'{match:.2g}'}x B to match. Target (>= 25% lower error or >= 2x fewer FLOPs): **{'met' if ok else 'not met'}**."
            )
            if lin:
                bl = min(DESIGNS, key=lambda d: lin[d][0])
                verdicts.append(
                    f"  Linearised sd at B (expected error without the noise of single fits): active {100 * lin['active'][0]:.2f} vs best fixed ({bl}) "
                    f"{100 * lin[bl][0]:.2f}: {100 * (lin['active'][0] / lin[bl][0] - 1):+.0f}%; mean per-world ratio to {bl} {s['lin_sd_paired'][bl]:.2f}."
                )
        else:
            ok = rel <= 0.10
            verdicts.append(
                f"- {title}: active {100 * a_err:.2f} vs best fixed ({best_fixed}) {100 * bf:.2f}: {100 * rel:+.0f}%. Target (never more than 10% worse): **{'met' if ok else 'not met'}**."
            )
        cov = tab["active"][1.0]["cover"]
        cl = tab["active"][1.0]["cover_law"]
        verdicts.append(
            f"  Active 90% coverage at B: {cov:.2f} over {s['n']} worlds (target 0.85-0.95: **{'met' if 0.85 <= cov <= 0.95 else 'not met'}**)"
            + (
                f"; of the law-only interval (without the spec's extrapolation drift): {cl:.2f}."
                if math.isfinite(cl)
                else "."
            )
        )
    syn = [r for r in results if r.get("active_runs")]
    if syn:
        n_runs = np.mean([len(r["active_runs"]) for r in syn])
        big = np.mean([max(6 * a * b for a, b in r["active_runs"]) / BUDGET for r in syn])
        small = np.mean([np.mean([a <= 4e7 for a, _ in r["active_runs"]]) for r in syn])
        extreme = np.mean([np.mean([b / a <= 5.5 or b / a >= 150 for a, b in r["active_runs"]]) for r in syn])
        nonmono = sum(
            1
            for r in results
            for d in DESIGNS
            if r["designs"][d]["2.0"]["err"] > 1.5 * r["designs"][d]["1.0"]["err"] + 0.005
        )
        total = len(results) * len(DESIGNS)
        lines.append(
            f"What the active loop did (synthetic worlds): {n_runs:.1f} runs on average; its largest run used {100 * big:.0f}% of B on "
            f"average (the first batch may spend at most half the budget); {100 * small:.0f}% of its runs had N <= 4e7 (the seed "
            f"pilots' range) and {100 * extreme:.0f}% sat at the edge ratios 5 or 160 tokens per parameter. How noisy the yardstick is: "
            f"in {nonmono} of {total} (world, fixed design) pairs the error at 2B was more than 1.5x the error at B although the 2B "
            "design contains the B design: a Laplace fit's median moves by several percent from one runs table to the next, so with "
            "this few worlds the differences between methods are mostly within noise, and the best fixed design is picked after the "
            "fact (optimistic for the fixed designs)."
        )
        lines.append("")
    lines.append(
        "Verdicts against the issue's targets (few worlds per group: the SEs above say how far to trust them):"
    )
    lines.append("")
    lines += verdicts
    lines.append("")
    if tim:
        ok = min(tim["warm_s"]) < 5.0
        lines.append(
            f"**Scoring speed.** `bayescale.active.score` of {tim['candidates']} candidates against {tim['draws']} posterior draws "
            f"(Gaussian EPIG for all, plus the importance-reweighting refinement with 64 simulated outcomes per candidate for all): "
            f"first call {tim['cold_s']:.2f} s (includes JIT compilation), warm {', '.join(f'{x:.2f}' for x in tim['warm_s'])} s; Gaussian only "
            f"{', '.join(f'{x:.2f}' for x in tim['warm_gaussian_only_s'])} s. Target < 5 s: **{'met' if ok else 'not met'}**."
        )
        lines.append("")
    if meta.get("plot"):
        lines.append(f"![error vs FLOPs]({meta['plot']})")
        lines.append("")
    lines.append(meta.get("footer", ""))
    return "\n".join(lines) + "\n", summ


def plot(summ: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    groups = [g for g in ["well", *MISSPEC, "replay"] if g in summ]
    n = len(groups)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, g in zip(axes.flat, groups):
        tab = summ[g]["tab"]
        for m in ["active", *DESIGNS]:
            fr = sorted(tab[m])
            ax.plot(
                fr,
                [100 * tab[m][f]["err"] for f in fr],
                marker="o",
                lw=2.5 if m == "active" else 1,
                color="k" if m == "active" else None,
                label=m,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(list(FIXED_FRACS), ["1/4", "1/2", "1", "2", "4"])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_title(f"{g} ({summ[g]['n']} worlds)", fontsize=9)
        ax.set_xlabel("pilot FLOPs / B")
        ax.set_ylabel("error of median (%)")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)


def write_section(path: Path, body: str) -> None:
    """Replace (or append) this benchmark's section of BENCHMARKS.md."""
    write_sections(path, {SECTION: body})


def footer(argv: list[str], t_total: float, loads: list[float]) -> str:
    import jax
    import numpyro

    import bayescale

    commit = git_commit()
    cmd = " ".join(shlex.quote(a) for a in ["nice -n 5 .venv/bin/python", "benchmarks/bench_active.py", *argv])
    return (
        f"Run: `{cmd}` on {_dt.date.today().isoformat()}, commit {commit}; {platform.platform()}, {os.cpu_count()} CPUs, no GPU; "
        f"Python {platform.python_version()}, bayescale {bayescale.__version__}, numpyro {numpyro.__version__}, jax {jax.__version__}. "
        f"Total {t_total / 60:.1f} min; 1-minute load average {min(loads):.1f}-{max(loads):.1f} during the run"
        + (" (other jobs shared the machine)." if max(loads) > (os.cpu_count() or 1) else ".")
    )


def main(argv: list[str] | None = None) -> int:
    global METHOD, SPEC
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worlds", type=int, default=6, help="well-specified worlds")
    ap.add_argument("--misspecified", type=int, default=3, help="worlds per misspecification")
    ap.add_argument(
        "--kinds", default=",".join(MISSPEC), help="the misspecifications run, comma-separated (default: all)"
    )
    ap.add_argument("--replay", type=int, default=4, help="replay worlds (seed designs) on Epoch's Chinchilla runs")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument(
        "--json", type=Path, default=Path("/tmp/bench_active.jsonl"), help="one line per world (appended; resumable)"
    )
    ap.add_argument("--from-json", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    ap.add_argument("--plot", type=Path, default=REPO / "docs" / "active_selection.png")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument(
        "--note", default="", help="text added to the footer (e.g. how a --from-json re-render's worlds were run)"
    )
    ap.add_argument(
        "--shard",
        default="0/1",
        help="I/N: run only the worlds with index = I mod N (several processes share one --json file)",
    )
    ap.add_argument(
        "--suggest",
        default="{}",
        help="JSON of extra suggest() options for the active method, e.g. '{\"discrepancy\": 0}'",
    )
    ap.add_argument(
        "--method",
        default="laplace",
        choices=("laplace", "psis"),
        help="how every fit is made (the refits of the loop and the fixed designs' final fits)",
    )
    ap.add_argument(
        "--spec",
        type=Path,
        default=SPEC,
        help="the spec every design is fitted with and the loop plans with (e.g. models/recommended.toml)",
    )
    ap.add_argument(
        "--fixed-from",
        type=Path,
        default=None,
        help="take the fixed designs' results from this earlier --json file (same worlds) and run only the active method",
    )
    args = ap.parse_args(argv)
    METHOD, SPEC = args.method, args.spec.resolve()
    options = json.loads(args.suggest)
    fixed_runs = {}
    if args.fixed_from:
        fixed_runs = {
            (r["kind"], r["seed"]): r["designs"]
            for r in map(json.loads, args.fixed_from.read_text().splitlines())
            if r.get("kind") != "timing"
        }
    t_start = time.time()
    loads = [os.getloadavg()[0]]
    from bayescale.inference import enable_compilation_cache

    enable_compilation_cache()  # table shapes repeat across worlds and processes
    src = args.from_json or args.json
    done: list[dict[str, Any]] = []
    if src.exists():
        done = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    have = {(r["kind"], r["seed"]) for r in done if r["kind"] != "timing"}
    tim = next((r for r in done if r["kind"] == "timing"), None)
    if not args.from_json:
        jobs = [("well", s) for s in range(args.worlds)]
        kinds = [k for k in args.kinds.split(",") if k]
        if unknown := sorted(set(kinds) - set(MISSPEC)):
            ap.error(f"--kinds: unknown {', '.join(unknown)}; known: {', '.join(MISSPEC)}")
        for s in range(args.misspecified):
            jobs += [(k, s) for k in kinds]
        jobs += [("replay", s) for s in range(args.replay)]
        if tim is None and not args.skip_timing:
            log("timing: score 1000 candidates x 4000 draws")
            tim = {"kind": "timing", "seed": 0, **timing()}
            with args.json.open("a") as fh:
                fh.write(json.dumps(tim) + "\n")
            log(f"timing: cold {tim['cold_s']:.2f}s warm {tim['warm_s']}")
        si, sn = (int(x) for x in args.shard.split("/"))
        for j, (kind, seed) in enumerate(jobs):
            if (kind, seed) in have or j % sn != si:
                continue
            t0 = time.time()
            fx = fixed_runs.get((kind, seed)) if args.fixed_from else None
            if args.fixed_from and fx is None:
                continue
            r = (
                replay_world(seed, args.data, options, fx)
                if kind == "replay"
                else synthetic_world(kind, seed, options, fx)
            )
            r["suggest_options"] = options
            r["seconds"] = time.time() - t0
            loads.append(os.getloadavg()[0])
            with args.json.open("a") as fh:
                fh.write(json.dumps(r) + "\n")
            done.append(r)
            a = r["designs"]["active"]["1.0"]["err"]
            bf = min(r["designs"][d]["1.0"]["err"] for d in DESIGNS)
            log(f"{kind} {seed}: {r['seconds']:.0f}s; active err {100 * a:.2f}% vs best fixed {100 * bf:.2f}%")
    results = [r for r in done if r["kind"] != "timing"]
    if args.from_json:
        foot = footer([], 0.0, loads).split(" Total ")[0]
        foot = "Code: `benchmarks/bench_active.py`" + foot[foot.index("` on ") + 1 :]
    else:
        foot = footer(argv, time.time() - t_start, loads)
    meta = {
        "plot": os.path.relpath(args.plot, args.out.parent),
        "footer": foot + (" " + args.note if args.note else ""),
    }
    body, summ = render(results, tim, meta)
    print(body)
    if not args.no_write and results:
        plot(summ, args.plot)
        write_section(args.out, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
