#!/usr/bin/env python
"""Replay of real sweeps (issue 16): next-pilot selection scored on recorded (N, D) grids.

The protocol follows the description of Li et al. 2026, "Spend Less, Fit Better" (arXiv
2604.22753; only its abstract could be read here, so the details below are this benchmark's own):

* **pool**: a sweep's recorded runs; **target region**: the top 10% of runs by compute
  (``split_by_compute`` of the issue-15 benchmark: ties in compute stay together; the OLMo ladder:
  its 7B-4T and 13B-5T runs, the pool being the 30 ladder runs); never chosen, never revealed;
* **initial design**: the cheapest ``p + 2`` runs of the pool, ``p`` = the law's parameter count;
* **budgets**: 1%, 5% and 10% of the pool's FLOPs (sum of ``6ND`` over the non-target runs); the
  initial design is paid from the budget. A method that chooses a run reveals its recorded loss.

Methods, all in the same run: ``cheapest`` first; ``random:<seed>``; ``ladder20`` (the run nearest
20 tokens per parameter in each 0.1-decade bin of N, within 2x) and ``ladder_target`` (the same at the
target region's compute-weighted ratio); ``isoflop`` (per 0.25-decade level of compute, 4 runs spread
over N); ``vopt`` (greedy: the largest drop of the target region's mean linearised predictive
variance at the current point fit per cost^0.4); ``mspe`` (the same with a mixture of the modes of
multi-start point fits: expected drop of the target region's mean squared prediction error, within-
and between-mode, per cost^0.4); and bayescale's planners through ``bayescale.suggest``
(``bayescale``: the default planner; ``bayescale:<name>``: each registered one), with the remaining
pool as candidates and the budget left, k = 8 runs per round, at most 4 rounds, one run per point.

Every design is evaluated the same way: ``bayescale.fit(spec, chosen runs, method="laplace")``
(default spec ``models/chinchilla.toml``; ``models/data_constrained.toml`` for a pool with repeated
data; ``--eval-spec`` scores every design with another spec, e.g. the recommended law average,
while the initial design keeps ``--spec``'s size) and the target runs are predicted with noise. Metrics per pool x budget x method: R^2 of the
predictive median on loss over the target runs, mean |relative error|, 90% interval coverage, FLOPs
spent, runs chosen, and the share of the chosen runs (beyond the initial design) below 5 and above
100 tokens per parameter.

Usage::

    PYTHONPATH=. nice -n 5 .venv/bin/python benchmarks/bench_replay.py --jobs 2 --json /tmp/replay.json
    .venv/bin/python benchmarks/bench_replay.py --render-json /tmp/replay.json          # re-render, no fits
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import replay_methods as rm  # noqa: E402
import replay_report as rr  # noqa: E402
from bench_extrapolation import split_by_compute  # noqa: E402

SECTION = rr.SECTION
DEFAULT_SPEC = "models/chinchilla.toml"
REPEATS_SPEC = "models/data_constrained.toml"
BUDGETS = (0.01, 0.05, 0.10)
TARGET_FRAC = 0.10
LEVEL_GAP = 0.05  # decades of compute: closer runs are one compute level, never split between pool and targets
FIXED = ("cheapest", "ladder20", "ladder_target", "isoflop")
ADAPTIVE = ("vopt", "mspe")
PLANNER_K, PLANNER_ROUNDS = 8, 4
POOL_SETS = ("chinchilla", "porian", "datablations", "olmo-ladder", "steplaw", "pilot")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ pools


@dataclass
class Pool:
    """One replay: the runs a method may choose, the initial design, and the held-out target region."""

    name: str
    runs: pd.DataFrame  # every run: run_id, N, D, C, loss[, U]
    target_ids: list[str]
    initial_ids: list[str]
    spec: str
    note: str = ""
    flops: float = field(init=False)

    def __post_init__(self) -> None:
        self.runs = self.runs.assign(run_id=self.runs["run_id"].astype(str)).set_index("run_id", drop=False)
        self.flops = float(self.runs.loc[self.pool_ids(), "C"].sum())

    def pool_ids(self) -> list[str]:
        t = set(self.target_ids)
        return [r for r in self.runs["run_id"] if r not in t]

    def candidates(self) -> pd.DataFrame:
        """The runs a method may choose beyond the initial design (losses dropped)."""
        skip = set(self.target_ids) | set(self.initial_ids)
        c = self.runs[~self.runs["run_id"].isin(skip)]
        return c.drop(columns=["loss"]).reset_index(drop=True)

    @property
    def targets(self) -> pd.DataFrame:
        return self.runs.loc[self.target_ids].reset_index(drop=True)

    @property
    def initial(self) -> pd.DataFrame:
        return self.runs.loc[self.initial_ids].reset_index(drop=True)

    def cost(self, ids: list[str]) -> float:
        return float(self.runs.loc[ids, "C"].sum()) if ids else 0.0


def n_law_params(spec: str) -> int:
    """The law's parameter count (an average of laws: its largest member's; unknown: 5)."""
    import bayescale as bs

    s = bs.load_spec(spec)
    law = getattr(s, "law", None)
    if law is not None:
        return len(law.params)
    members = [getattr(m, "law", None) for m in getattr(s, "members", []) or []]
    return max((len(m.params) for m in members if m is not None), default=5)


def compute_levels(C: Any, gap: float = LEVEL_GAP) -> np.ndarray:
    """Each run's compute level: runs chained by gaps of at most ``gap`` decades of compute are one
    level (an isoFLOP sweep's points at one budget differ by rounding), valued at its largest C."""
    c = np.asarray(C, dtype=float)
    order = np.argsort(c, kind="stable")
    group = np.concatenate([[0], np.cumsum(np.diff(np.log10(c[order])) > gap)])
    level = np.empty_like(c)
    for g in np.unique(group):
        level[order[group == g]] = c[order[group == g]].max()
    return level


def make_pool(name: str, runs: pd.DataFrame, spec: str, target_ids: list[str] | None = None, note: str = "") -> Pool:
    """Targets: the given ids, else the top 10% by compute, whole compute levels (:func:`compute_levels`:
    no pool run shares the targets' isoFLOP budget); initial design: the cheapest p + 2 others."""
    runs = runs.reset_index(drop=True).assign(run_id=runs["run_id"].astype(str).to_numpy())
    if target_ids is None:
        _, test = split_by_compute(compute_levels(runs["C"]), 1.0 - TARGET_FRAC, TARGET_FRAC)
        target_ids = runs["run_id"].iloc[test].tolist()
    rest = runs[~runs["run_id"].isin(target_ids)].sort_values(["C", "run_id"], kind="stable")
    k = n_law_params(spec) + 2
    return Pool(name, runs, list(target_ids), rest["run_id"].iloc[:k].tolist(), spec, note)


def has_repeats(runs: pd.DataFrame) -> bool:
    return "U" in runs and bool((runs["U"] < runs["D"] * (1 - 1e-9)).any())


def load_pools(data: Path, prefixes: list[str] | None, spec: str, porian_all: bool) -> list[Pool]:
    """Every (N, D) sweep with enough runs (GPT-3's curve points are not independent runs: left out)."""
    import extrapolation_data as ed

    os.environ["BAYESCALE_DATA"] = str(data)
    # Porian's configurations last: with --porian-all they are the bulk of the run, and a run stopped
    # early (see read_results) has then finished every other pool.
    sets = [ed.chinchilla(), ed.datablations(), ed.olmo_ladder(data), ed.steplaw(), ed.pilot()]
    sets += ed.porian(data, quick=not porian_all)
    pools = []
    for ds in sets:
        if prefixes and not any(ds.name.startswith(p) for p in prefixes):
            continue
        s = REPEATS_SPEC if spec == DEFAULT_SPEC and has_repeats(ds.runs) else spec
        if "targets" in ds.fixed:  # the OLMo ladder: pool = ladder runs, targets = 7B-4T, 13B-5T
            ladder, targets = ds.fixed["targets"]
            runs = ds.runs[ds.runs["run_id"].isin(ladder + targets)]
            pools.append(make_pool(ds.name, runs, s, targets, ds.note))
        else:
            pools.append(make_pool(ds.name, ds.runs, s, None, ds.note))
    return pools


# ------------------------------------------------------------------ evaluation


def score_targets(median: np.ndarray, lo: np.ndarray, hi: np.ndarray, obs: np.ndarray) -> dict[str, float]:
    """R^2 of the median on loss, mean |relative error| and 90% coverage over the target runs."""
    obs = np.asarray(obs, float)
    ss_tot = float(((obs - obs.mean()) ** 2).sum())
    ss_res = float(((obs - median) ** 2).sum())
    return {
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
        "mare": float(np.mean(np.abs(median / obs - 1.0))),
        "cov90": float(np.mean((lo <= obs) & (obs <= hi))),
    }


def design_mix(pool: Pool, chosen: list[str]) -> dict[str, float]:
    """Share of the runs chosen beyond the initial design below 5 and above 100 tokens per parameter."""
    extra = [r for r in chosen if r not in set(pool.initial_ids)]
    if not extra:
        return {"share_lt5": float("nan"), "share_gt100": float("nan")}
    ratio = (pool.runs.loc[extra, "D"] / pool.runs.loc[extra, "N"]).to_numpy(float)
    return {"share_lt5": float(np.mean(ratio < 5)), "share_gt100": float(np.mean(ratio > 100))}


class Evaluator:
    """The one bayescale fit every design is scored with, cached by the set of runs."""

    def __init__(self, pool: Pool, fit_method: str, seed: int = 0, spec: str | None = None) -> None:
        self.pool, self.fit_method, self.seed = pool, fit_method, seed
        self.spec = spec or pool.spec  # --plan-spec: what the planner fits before it plans
        self._fits: dict[tuple[str, ...], Any] = {}
        self.fit_seconds = 0.0

    def fit(self, ids: list[str]) -> Any:
        import bayescale as bs

        key = tuple(sorted(ids))
        if key not in self._fits:
            cols = [c for c in ("run_id", "N", "D", "C", "loss", "U") if c in self.pool.runs]
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._fits[key] = bs.fit(
                    bs.load_spec(self.spec),
                    self.pool.runs.loc[list(key), cols].reset_index(drop=True),
                    seed=self.seed,
                    method=self.fit_method,
                )
            self.fit_seconds += time.perf_counter() - t0
        return self._fits[key]

    def score(self, ids: list[str]) -> dict[str, float]:
        t = self.pool.targets
        pts = t[[c for c in ("N", "D", "C", "U") if c in t]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = self.fit(ids).predict(pts, noise=True, seed=self.seed)
        draws = np.asarray(pred.values, float).reshape(-1, len(t))
        lo, med, hi = np.quantile(draws, [0.05, 0.5, 0.95], axis=0)
        out = score_targets(med, lo, hi, t["loss"].to_numpy(float))
        out["median"], out["lo90"], out["hi90"] = med.tolist(), lo.tolist(), hi.tolist()
        return out


# ------------------------------------------------------------------ designs


def target_ratio(targets: pd.DataFrame) -> float:
    w = targets["C"].to_numpy(float) / targets["C"].sum()
    return float(np.exp(w @ np.log(targets["D"].to_numpy(float) / targets["N"].to_numpy(float))))


def fixed_order(method: str, cand: pd.DataFrame, targets: pd.DataFrame) -> list[str]:
    if method == "cheapest":
        return rm.cheapest_order(cand)
    if method.startswith("random:"):
        return rm.random_order(cand, int(method.split(":")[1]))
    if method == "ladder20":
        return rm.ladder_order(cand, 20.0)
    if method == "ladder_target":
        return rm.ladder_order(cand, target_ratio(targets))
    if method == "isoflop":
        return rm.isoflop_order(cand)
    raise ValueError(f"unknown fixed design {method!r}")


def planner_target(targets: pd.DataFrame) -> tuple[Any, str]:
    """What ``suggest`` is asked about: the target region as a DataFrame of (N, D, weight) points when
    ``parse_target`` accepts one, else the compute-weighted geometric centre of the region."""
    from bayescale.design import parse_target
    from bayescale.errors import BayescaleError

    w = targets["C"].to_numpy(float) / targets["C"].sum()
    region = pd.DataFrame({"N": targets["N"].to_numpy(float), "D": targets["D"].to_numpy(float), "weight": w})
    try:
        parse_target(region)
        return region, "region"
    except (BayescaleError, TypeError, ValueError):
        centre = {k: float(np.exp(w @ np.log(targets[k].to_numpy(float)))) for k in ("N", "D")}
        return centre, "centre"


def nearest_ids(batch: pd.DataFrame, left: pd.DataFrame) -> list[str]:
    """The pool run at each suggested (N, D) (nearest in log N + log D; each once)."""
    out: list[str] = []
    ln, ld = np.log(left["N"].to_numpy(float)), np.log(left["D"].to_numpy(float))
    for _, r in batch.iterrows():
        dist = np.abs(ln - math.log(float(r["N"]))) + np.abs(ld - math.log(float(r["D"])))
        for j in np.argsort(dist, kind="stable"):
            rid = str(left["run_id"].iloc[j])
            if rid not in out:
                out.append(rid)
                break
    return out


def planner_design(pool: Pool, planner: str | None, budget: float, ev: Evaluator) -> tuple[list[str], dict[str, Any]]:
    """bayescale's loop: fit (``ev``'s spec: ``--plan-spec``), suggest over the pool left with the
    budget left, reveal, refit."""
    import bayescale as bs

    target, how = planner_target(pool.targets)
    chosen, info = list(pool.initial_ids), {"target_as": how, "rounds": 0, "stop_advised": 0, "errors": []}
    cand = pool.candidates()
    for _ in range(PLANNER_ROUNDS):
        left_budget = budget - pool.cost(chosen)
        left = cand[~cand["run_id"].isin(chosen) & (cand["C"] <= left_budget * (1 + 1e-9))]
        if left.empty:
            break
        kw = {} if planner is None else {"planner": planner}
        cols = [c for c in ("N", "D", "U") if c in left]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sug = bs.suggest(
                    ev.fit(chosen), target, budget_flops=left_budget, k=PLANNER_K,
                    candidates=left[cols].reset_index(drop=True), max_replicates=1, seed=0, **kw,
                )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a failing planner ends its design, recorded
            info["errors"].append(f"{type(exc).__name__}: {str(exc)[:300]}")
            break
        info["rounds"] += 1
        info["stop_advised"] += int(bool(sug.stopping.stop))
        costs = dict(zip(left["run_id"], left["C"]))
        new = rm.take(nearest_ids(sug.table, left), costs, budget, pool.cost(chosen))
        if not new:
            break
        chosen += new
    return chosen, info


def run_design(
    pool: Pool, method: str, budget: float, ev: Evaluator, plan_ev: Evaluator | None = None
) -> tuple[list[str], dict[str, Any]]:
    """The runs ``method`` chooses at ``budget`` (initial design first) and notes on how."""
    init_cost = pool.cost(pool.initial_ids)
    if init_cost > budget:
        return list(pool.initial_ids), {"over_budget_initial": True}
    cand = pool.candidates()
    if method in ADAPTIVE:
        oracle = rm.Oracle(cand, pool.runs.loc[cand["run_id"], "loss"])
        picks = rm.adaptive_design(method, cand, pool.targets.drop(columns=["loss"]), pool.initial, oracle, budget)
        return list(pool.initial_ids) + picks, {}
    if method == "bayescale" or method.startswith("bayescale:"):
        return planner_design(pool, method.partition(":")[2] or None, budget, plan_ev or ev)
    order = fixed_order(method, cand, pool.targets)
    return list(pool.initial_ids) + rm.take(order, dict(zip(cand["run_id"], cand["C"])), budget, init_cost), {}


def run_task(task: dict[str, Any]) -> list[dict[str, Any]]:
    """One pool x one method at every budget; errors are recorded, not raised."""
    pool, method = task["pool"], task["method"]
    ev = Evaluator(pool, task["fit_method"], task["seed"], spec=task.get("eval_spec"))
    plan_ev = (
        Evaluator(pool, task["fit_method"], task["seed"], spec=task.get("plan_spec")) if task.get("plan_spec") else None
    )
    out = []
    for frac in task["budgets"]:
        rec: dict[str, Any] = {"pool": pool.name, "method": method, "budget_frac": frac}
        t0 = time.perf_counter()
        try:
            budget = frac * pool.flops
            chosen, info = run_design(pool, method, budget, ev, plan_ev)
            assert not set(chosen) & set(pool.target_ids), "a design chose a target run"
            spent = pool.cost(chosen)
            rec.update(ev.score(chosen), **design_mix(pool, chosen), **info)
            rec.update(
                chosen=chosen, n_runs=len(chosen), n_new=len(chosen) - len(pool.initial_ids), flops=spent,
                spent_of_budget=spent / budget, spent_of_pool=spent / pool.flops, n_targets=len(pool.target_ids),
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - one failing design must not lose the table
            rec["error"] = f"{type(exc).__name__}: {exc}"
            rec["traceback"] = traceback.format_exc()[-2000:]
        rec["seconds"] = time.perf_counter() - t0
        out.append(rec)
    return out


def default_planner() -> str:
    """The planner ``bayescale.suggest`` uses when none is named."""
    import inspect

    import bayescale as bs

    return str(inspect.signature(bs.suggest).parameters["planner"].default)


def add_default_alias(recs: list[dict[str, Any]], methods: list[str]) -> list[dict[str, Any]]:
    """``bayescale:<default>`` is the same call as ``bayescale``: run once, recorded under both names."""
    alias = f"bayescale:{default_planner()}"
    if alias not in methods or "bayescale" not in methods:
        return recs
    copies = [{**r, "method": alias, "alias_of": "bayescale"} for r in recs if r["method"] == "bayescale"]
    return [r for r in recs if r["method"] != alias] + copies


def method_names(methods: str | None, seeds: int) -> list[str]:
    from bayescale.design import PLANNERS

    all_methods = ["cheapest", *[f"random:{s}" for s in range(seeds)], "ladder20", "ladder_target", "isoflop"]
    all_methods += [*ADAPTIVE, "bayescale", *[f"bayescale:{p}" for p in PLANNERS]]
    if not methods:
        return all_methods
    want = [m.strip() for m in methods.split(",") if m.strip()]
    bad = [m for m in want if m not in all_methods and m != "random"]
    if bad:
        raise SystemExit(f"--methods: unknown {bad}; allowed {all_methods} (or 'random' for every seed)")
    return [m for m in all_methods if m in want or (m.startswith("random:") and "random" in want)]


def run_all(tasks: list[dict[str, Any]], jobs: int, partial: Path | None = None) -> list[dict[str, Any]]:
    """Every task's records; each finished task is also appended to ``partial`` (JSON lines) so that a
    run stopped early can still be rendered (``--render-json`` of that file)."""
    recs: list[dict[str, Any]] = []

    def done(rows: list[dict[str, Any]]) -> None:
        if partial is not None:
            with partial.open("a") as fh:
                fh.write(json.dumps({"records": rows}, default=float) + "\n")
        for r in rows:
            msg = (
                r.get("error")
                or f"R2 {r['r2']:.2f} mare {100 * r['mare']:.2f}% cov {r['cov90']:.2f} {r['n_runs']} runs"
            )
            log(f"{r['pool']} / {r['method']} / {100 * r['budget_frac']:g}%: {msg} ({r['seconds']:.0f}s)")
        recs.extend(rows)

    if jobs <= 1:
        for t in tasks:
            done(run_task(t))
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as ex:
            for f in as_completed([ex.submit(run_task, t) for t in tasks]):
                done(f.result())
    return recs


def read_results(path: Path) -> dict[str, Any]:
    """A ``--json`` file, or the ``.partial.jsonl`` of a run stopped early (its footer says so)."""
    if path.suffix != ".jsonl":
        return json.loads(path.read_text())
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    recs = add_default_alias([r for x in lines[1:] for r in x["records"]], lines[0]["meta"]["methods"])
    done = sorted({(r["pool"], r["method"]) for r in recs})
    foot = (
        f"Partial run (stopped early; {len(done)} pool x method tasks finished) of "
        f"`PYTHONPATH=. nice -n 5 .venv/bin/python benchmarks/bench_replay.py {' '.join(lines[0]['argv'])}`."
    )
    return {"meta": lines[0]["meta"], "records": recs, "footer": foot}


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    ap.add_argument("--json", type=Path, default=None, help="write all numbers here")
    ap.add_argument("--render-json", type=Path, default=None, help="re-render the section from a --json file")
    ap.add_argument("--only", "--pools", dest="pools", default=None, help="comma-separated pool name prefixes")
    ap.add_argument("--porian-all", action="store_true", help="all 15 Porian configurations (default: 2)")
    ap.add_argument("--budgets", default=",".join(f"{b:g}" for b in BUDGETS), help="fractions of the pool's FLOPs")
    ap.add_argument("--methods", default=None, help="comma-separated method names (default: all)")
    ap.add_argument("--seeds", type=int, default=3, help="random designs (seeds 0..S-1)")
    ap.add_argument("--spec", default=DEFAULT_SPEC, help="the spec every design is fitted with")
    ap.add_argument(
        "--plan-spec",
        default=None,
        help="the spec bayescale's planners fit before they plan (default: --spec), e.g. models/recommended.toml",
    )
    ap.add_argument(
        "--eval-spec",
        default=None,
        help="the spec every design is scored with (default: --spec; the initial design keeps --spec's size)",
    )
    ap.add_argument("--fit-method", default="laplace", choices=["laplace", "psis", "nuts"])
    ap.add_argument("--jobs", type=int, default=1, help="worker processes, one pool x method each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", type=Path, default=None, help="write the error-vs-FLOPs figure here (PNG)")
    ap.add_argument("--no-write", action="store_true", help="print the section, leave --out alone")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.render_json:
        res = read_results(args.render_json)
    else:
        t_start, loads = time.perf_counter(), [os.getloadavg()[0]]
        prefixes = [p.strip() for p in args.pools.split(",")] if args.pools else None
        pools = load_pools(args.data, prefixes, args.spec, args.porian_all)
        methods = method_names(args.methods, args.seeds)
        budgets = [float(b) for b in args.budgets.split(",")]
        tasks = [
            {
                "pool": p,
                "method": m,
                "budgets": budgets,
                "fit_method": args.fit_method,
                "seed": args.seed,
                "plan_spec": str(REPO / args.plan_spec) if args.plan_spec else None,
                "eval_spec": str(REPO / args.eval_spec) if args.eval_spec else None,
            }  # fmt: skip
            for p in pools
            for m in methods
            if not (m == f"bayescale:{default_planner()}" and "bayescale" in methods)
        ]
        log(f"{len(pools)} pools x {len(methods)} methods x {len(budgets)} budgets; {args.jobs} job(s)")
        meta = {
            "pools": {p.name: rr.pool_meta(p) for p in pools},
            "methods": methods,
            "budgets": budgets,
            "spec": args.spec,
            "plan_spec": args.plan_spec or args.spec,
            "eval_spec": args.eval_spec or args.spec,
            "fit_method": args.fit_method,
            "target_as": planner_target(pools[0].targets)[1] if pools else None,
        }
        partial = None
        if args.json:
            partial = args.json.with_suffix(".partial.jsonl")
            partial.write_text(json.dumps({"meta": meta, "argv": argv}, default=float) + "\n")
        recs = add_default_alias(run_all(tasks, args.jobs, partial), methods)
        loads.append(os.getloadavg()[0])
        res = {
            "meta": meta,
            "records": recs,
            "footer": rr.footer(argv, time.perf_counter() - t_start, loads, args.jobs),
        }
        if args.json:
            args.json.write_text(json.dumps(res, indent=1, default=float))
    body = rr.render(res)
    print(body)
    if args.plot:
        rr.plot(res, args.plot)
    if not args.no_write:
        from bench_brier import write_sections

        write_sections(args.out, {SECTION: body})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
