"""The closed loop: suggest, train, check the new runs, refit, re-plan.

:func:`run_loop` runs a loop described by a :class:`LoopConfig` (a TOML file or a mapping,
read by :func:`load_loop_config`) until the budget is spent or the target is known well
enough. Its state is written atomically beside the runs table after each step, so a killed
loop resumes where it stopped. Trainers: :func:`pilot_trainer` (the pilot runner) and
:func:`simulated_trainer` (a known world, for demos and studies).
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._io import atomic_write_bytes
from ._loop_config import config_dict, validate_simulate, validate_values
from ._words import count, join_names
from .averaging import fit as do_fit
from .averaging import load_fit
from .checks import check
from .data import append_run, load_runs
from .design.selection import suggest
from .design.targets import Target, default_candidates, parse_target, pool_floor, runs_cost, target_band
from .errors import BayescaleError
from .inference import Fit
from .laws import get_law
from .spec import ModelSpec, load_spec

#: The run ids the loop gives the runs it plans (``loop-r001-0``, ...).
OWN_RUNS = "loop-r"

# ------------------------------------------------------------------ trainers


def simulated_trainer(
    params: Mapping[str, float],
    *,
    law: str = "chinchilla",
    sigma: float = 0.01,
    df: float | None = None,
    seed: int = 0,
    loss_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> Callable[[pd.DataFrame], list[dict[str, Any]]]:
    """A trainer for :func:`run_loop` that returns losses from a known world instead of training.

    The loss of candidate ``(N, D)`` is the law's loss with ``params`` (or ``loss_fn(N, D)``)
    times ``exp(sigma * eps)``, ``eps`` standard normal (Student-t with ``df``), seeded by
    ``seed`` and the run's id so a resumed loop sees the same outcomes.

    Examples
    --------
    >>> train = simulated_trainer({"E": 1.8, "A": 480, "B": 2000, "alpha": 0.35, "beta": 0.36})
    >>> rows = train(pd.DataFrame({"run_id": ["a"], "N": [1e8], "D": [2e9]}))
    >>> round(rows[0]["loss"], 1)
    3.0
    """
    lw = get_law(law)

    def truth(N: np.ndarray, D: np.ndarray) -> np.ndarray:
        if loss_fn is not None:
            return np.asarray(loss_fn(N, D), dtype=float)
        logx = lw.log_inputs({"N": N, "D": D})  # C = 6 N D; unrepeated data: U = D
        return np.exp(np.asarray(lw.log_loss({p: float(params[p]) for p in lw.params}, logx, np), dtype=float))

    def train(candidates: pd.DataFrame) -> list[dict[str, Any]]:
        out = []
        for _, r in candidates.iterrows():
            rid = str(r.get("run_id", f"sim-{r['N']:.4g}-{r['D']:.4g}"))
            rng = np.random.default_rng([int(seed), zlib.crc32(rid.encode())])
            eps = rng.standard_t(df) if df is not None else rng.standard_normal()
            true = float(truth(np.asarray([float(r["N"])]), np.asarray([float(r["D"])]))[0])
            row = {"run_id": rid, "N": float(r["N"]), "D": float(r["D"]), "loss": true * math.exp(sigma * eps)}
            out.append({**row, "source": f"simulated world (seed {seed})"})
        return out

    train.truth = truth  # type: ignore[attr-defined]
    return train


def pilot_trainer(
    runs_path: str | os.PathLike, *, arch: str | None = None, seed: int = 0, **options: Any
) -> Callable[[pd.DataFrame], list[dict[str, Any]]]:
    """The default trainer: :func:`bayescale.runner.run_pilot` for each candidate, appending
    each finished run to the runs table itself (so a killed batch keeps what it finished)."""

    def train(candidates: pd.DataFrame) -> list[dict[str, Any]]:
        from .runner import run_pilot  # torch (optional, heavy) is imported only when a pilot is trained

        rows = []
        for _, r in candidates.iterrows():
            kw = dict(options)
            if arch is not None:
                kw["arch"] = arch
            # one seed per candidate, the same when a killed loop trains it again
            run_seed = int(seed) + zlib.crc32(str(r.get("run_id", "")).encode()) % 100_000
            row = run_pilot(n_params=float(r["N"]), tokens=float(r["D"]), seed=run_seed, append=str(runs_path), **kw)
            rows.append(dict(row))
        return rows

    return train


# ------------------------------------------------------------------ the loop's config


@dataclass(frozen=True)
class LoopConfig:
    """What :func:`run_loop` does. Load one from TOML with :func:`load_loop_config`.

    Attributes
    ----------
    runs : path
        The runs table (CSV); new runs are appended to it. The loop's state is written
        beside it (``<runs>.loop.json``, and the latest fit ``<runs>.loop-fit.nc``).
    spec : str or path
        The model spec.
    target : Target
    budget : float
        Total FLOPs (or cost units) the loop may spend on new pilots.
    tolerance : float, optional
        Stop when the 90% interval of log(target) is narrower (decision: P within tol of 0 or 1).
    k : int
        Runs per round.
    method : str
        ``"laplace"`` (seconds), ``"psis"`` (Laplace corrected by importance sampling) or
        ``"nuts"`` for the refits; ``fit_options`` go to :func:`bayescale.fit`.
    trainer : mapping
        Settings for the pilot runner (e.g. ``arch``, ``seed``).
    simulate : mapping, optional
        A known world instead of training (law parameters, ``sigma``, ``seed``; :func:`simulated_trainer`).
    max_rounds : int
        At most this many rounds in all (a resumed loop counts the rounds already done).
    suggest_options : mapping
        Passed to :func:`suggest` (``discrepancy``, ``max_replicates``, ``candidates`` ...).
    """

    runs: Path
    spec: Any
    target: Target
    budget: float
    tolerance: float | None = None
    k: int = 2
    method: str = "laplace"
    seed: int = 0
    fit_options: Mapping[str, Any] = field(default_factory=dict)
    trainer: Mapping[str, Any] = field(default_factory=dict)
    simulate: Mapping[str, Any] | None = None
    max_rounds: int = 50
    suggest_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def state_path(self) -> Path:
        return self.runs.with_name(self.runs.name + ".loop.json")

    @property
    def fit_path(self) -> Path:
        return self.runs.with_name(self.runs.name + ".loop-fit.nc")


_CONFIG_KEYS = (
    "runs",
    "spec",
    "target",
    "threshold",
    "budget",
    "budget_flops",
    "tolerance",
    "k",
    "method",
    "seed",
    "fit",
    "trainer",
    "simulate",
    "max_rounds",
    "suggest",
)


def load_loop_config(source: str | os.PathLike | Mapping[str, Any] | LoopConfig) -> LoopConfig:
    """A :class:`LoopConfig` from a TOML file or a mapping.

    Example ``loop.toml``::

        runs = "runs.csv"                 # relative to the config file
        spec = "chinchilla"
        target = "N=7e9,D=1.4e12"         # or "nopt:C=1e21", "C=1e21", "...,threshold=2.1"
        budget = 1e19                     # FLOPs for new pilots
        tolerance = 0.02                  # stop when the 90% interval of log(target) is this narrow
        k = 2
        method = "laplace"
        [trainer]                         # bayescale.runner.run_pilot settings
        arch = "llama"
        seed = 0
        # [simulate]                      # or a known world, for demos
        # E = 1.8; A = 480; B = 2000; alpha = 0.35; beta = 0.36; sigma = 0.01; seed = 0
    """
    if isinstance(source, LoopConfig):
        return source
    d, base = config_dict(source)
    unknown = sorted(set(d) - set(_CONFIG_KEYS))
    if unknown:
        raise BayescaleError(
            f"loop config: unknown keys {join_names(unknown, quoted=True)}; allowed {join_names(_CONFIG_KEYS, quoted=True)}"
        )
    for key in ("runs", "spec", "target"):
        if key not in d:
            raise BayescaleError(f"loop config: missing {key!r}")
    validate_values(d)
    budget = d.get("budget", d.get("budget_flops"))
    if budget is None:
        raise BayescaleError("loop config: missing 'budget' (FLOPs for new pilots)")
    try:
        budget = float(budget)
    except (TypeError, ValueError):
        raise BayescaleError(f"loop config: budget must be a number, got {budget!r}") from None
    if not (math.isfinite(budget) and budget > 0):
        raise BayescaleError(f"loop config: budget must be finite and > 0, got {budget!r}")
    runs = base / d["runs"]  # relative to the config's folder (an absolute path stays as it is)
    suggest = dict(d.get("suggest", {}))
    if isinstance(suggest.get("candidates"), str):  # a CSV beside the config, as the runs and spec are
        suggest["candidates"] = str(base / suggest["candidates"])
    spec = d["spec"]
    if isinstance(spec, str) and not Path(spec).is_absolute() and (base / spec).is_file():
        spec = str(base / spec)
    method = str(d.get("method", "laplace"))
    if method not in ("laplace", "psis", "nuts"):
        raise BayescaleError(f"loop config: method must be 'laplace', 'psis' or 'nuts', got {method!r}")
    tol = d.get("tolerance")
    k = d.get("k", 2)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise BayescaleError(f"loop config: k must be a positive integer, got {k!r}")
    return LoopConfig(
        runs=runs,
        spec=spec,
        target=parse_target(d["target"], d.get("threshold")),
        budget=budget,
        tolerance=None if tol is None else float(tol),
        k=k,
        method=method,
        seed=int(d.get("seed", 0)),
        fit_options=dict(d.get("fit", {})),
        trainer=dict(d.get("trainer", {})),
        simulate=dict(d["simulate"]) if d.get("simulate") is not None else None,
        max_rounds=int(d.get("max_rounds", 50)),
        suggest_options=suggest,
    )


#: Deprecated names (a loop's file is its *config*; "plan" is what :func:`suggest` returns).
LoopPlan = LoopConfig
load_plan = load_loop_config


# ------------------------------------------------------------------ the closed loop


@dataclass(frozen=True)
class LoopResult:
    """What the loop did: one row per round in :attr:`history`, why it stopped, and the last fit."""

    history: pd.DataFrame
    reason: str
    fit: Fit = field(repr=False)
    spent: float
    state_path: Path
    surprises: tuple[str, ...] = ()

    def summary(self) -> str:
        h, after = self.history, count(len(self.history) - 1, "round")
        lines = [f"{after} after the seed fit (round 0), spent {self.spent:.3g}; stopped: {self.reason}"]
        for _, r in h.iterrows():
            lines.append(
                f"  round {int(r['round'])}: {int(r['n_runs'])} runs, spent {r['spent']:.3g}, target median {r['median']:.4g} "
                f"(90% {r['lo90']:.4g}-{r['hi90']:.4g}, width of log {r['log_width90']:.4f})"
            )
        if self.surprises:
            lines.append(f"surprising new runs (outside their 90% predictive band): {join_names(self.surprises)}")
        return "\n".join(lines)


def _write_json_atomic(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=1, default=lambda x: x.item() if hasattr(x, "item") else str(x))
    atomic_write_bytes(path, text.encode("utf-8"))


def _match(pending: pd.DataFrame, new: pd.DataFrame) -> np.ndarray:
    """Which pending candidates the new rows fulfil (nearest in log N, log D within a factor 1.5)."""
    done = np.zeros(len(pending), dtype=bool)
    if len(pending) == 0 or len(new) == 0:
        return done
    lp = np.log(pending[["N", "D"]].to_numpy(float))
    for ln in np.log(new[["N", "D"]].to_numpy(float)):
        d = np.abs(lp - ln[None, :]).max(axis=1)
        d[done] = np.inf
        i = int(np.argmin(d))
        if d[i] < math.log(1.5):
            done[i] = True
    return done


def run_loop(
    config: LoopConfig | str | os.PathLike | Mapping[str, Any],
    *,
    train: Callable[[pd.DataFrame], Any] | None = None,
    log: Callable[[str], None] | None = None,
    max_rounds: int | None = None,
) -> LoopResult:
    """Suggest, train, check the new runs, refit, re-plan, until the budget is spent or the
    target's 90% interval is narrower than the tolerance. Resumable.

    The state (spent budget, the batch in flight, the history) is written atomically to ``<runs>.loop.json``
    beside the runs table after each step, and the latest fit to ``<runs>.loop-fit.nc``. A killed loop, run
    again with the same config, trains only the pending candidates the runs table lacks, then goes on.

    Parameters
    ----------
    config : LoopConfig, TOML path or mapping
        See :func:`load_loop_config`.
    train : callable, optional
        ``train(candidates) -> rows``: candidates a DataFrame (``run_id, N, D, C``), rows the finished
        runs (mappings or a DataFrame with N, D or C, and loss; rows it appended itself are not appended
        twice). Default: the config's ``simulate`` world, else :func:`pilot_trainer` (the pilot runner).
    log : callable, optional
        Receives one line per step (e.g. ``print``).
    max_rounds : int, optional
        Override the config's limit on rounds (1 runs one round and returns; a later call resumes).

    Returns
    -------
    LoopResult

    Examples
    --------
    >>> res = run_loop("loop.toml", log=print)   # doctest: +SKIP
    >>> print(res.summary())                     # doctest: +SKIP
    """
    if max_rounds is not None and (not isinstance(max_rounds, int) or isinstance(max_rounds, bool) or max_rounds < 0):
        raise BayescaleError(f"max_rounds must be a whole number >= 0, got {max_rounds!r}")
    cfg = load_loop_config(config)
    say = log or (lambda s: None)
    spec = load_spec(cfg.spec)
    train = train if train is not None else _default_trainer(cfg, spec)
    if not cfg.runs.is_file():
        raise BayescaleError(f"runs table {str(cfg.runs)!r} not found: the loop starts from existing pilot runs")
    state = _load_state(cfg, say)
    fit_kw = {"method": cfg.method, "seed": cfg.seed, **dict(cfg.fit_options)}
    sopts = dict(cfg.suggest_options)
    rounds_left = math.inf if max_rounds is None else int(max_rounds)

    def save() -> None:
        _write_json_atomic(cfg.state_path, state)

    current = None
    while True:
        runs = load_runs(cfg.runs)
        seed_runs = runs[~runs["run_id"].astype(str).str.startswith(OWN_RUNS)]  # for a state saved without it:
        state.setdefault("floor_N", pool_floor(seed_runs if len(seed_runs) else runs))  # kept: it fell 3x a round
        if state["pending"]:
            runs = _absorb_pending(cfg, spec, state, runs, train, fit_kw, sopts.get("cost"), say)
            save()
            current = None
        ids = set(runs["run_id"].astype(str))
        if current is None:
            current = do_fit(spec, runs, **fit_kw)
            current.save(cfg.fit_path)
        band = _record_round(cfg, state, runs, current, say)
        reason = _stop_reason(cfg, state, band)
        if reason is None and rounds_left <= 0:
            state["done"] = None
            save()
            return _result(cfg, state, "paused (max_rounds)", current)
        batch = None
        if reason is None:
            reason, batch = _next_batch(cfg, state, current, sopts)
        if reason is not None:
            state["done"] = reason
            save()
            say(f"stop: {reason}")
            return _result(cfg, state, reason, current)
        _launch(state, batch, ids)
        save()
        rounds_left -= 1


def _result(cfg: LoopConfig, state: Mapping[str, Any], reason: str, current: Fit) -> LoopResult:
    return LoopResult(
        history=pd.DataFrame(state["history"]),
        reason=reason,
        fit=current,
        spent=float(state["spent"]),
        state_path=cfg.state_path,
        surprises=tuple(state["surprises"]),
    )


def _launch(state: dict[str, Any], batch: pd.DataFrame, ids: set[str]) -> None:
    """Start the next round: its batch is in flight (pending) until the runs table has it."""
    state["round"] = int(state["round"]) + 1
    size = ("N", "D", "C", "cost")
    state["pending"] = [
        {"run_id": f"{OWN_RUNS}{state['round']:03d}-{i}", **{c: float(getattr(r, c)) for c in size}}
        for i, r in enumerate(batch.itertuples())
    ]
    state["known_ids"] = sorted(ids)
    state["done"] = None


def _next_batch(
    cfg: LoopConfig, state: Mapping[str, Any], current: Fit, sopts: Mapping[str, Any]
) -> tuple[str | None, pd.DataFrame | None]:
    """The next round's batch from :func:`suggest`, or why the loop stops instead."""
    left = cfg.budget - float(state["spent"])
    if "candidates" not in sopts:  # suggest's default pool from the kept floor; a cost function prices it
        budget = left if sopts.get("cost") is None else None
        sopts = {**sopts, "candidates": default_candidates(current, budget, smallest=state["floor_N"])}
    sug = suggest(
        current,
        cfg.target,
        budget_flops=left,
        k=cfg.k,
        seed=cfg.seed + int(state["round"]),
        tolerance=cfg.tolerance,
        **sopts,
    )
    stop = sug.stopping  # its own words say why, but for a plan that merely ran out of budget
    if stop.stop and (stop.reason == "value" or (not len(sug.table) and stop.reason != "budget")):
        return "stopping rule: " + stop.text, None
    if not len(sug.table):
        return f"no affordable pilot adds information (budget left {left:.3g})", None
    return None, sug.table


def _default_trainer(cfg: LoopConfig, spec: ModelSpec) -> Callable[[pd.DataFrame], Any]:
    """The config's simulated world, else the pilot runner."""
    if cfg.simulate is not None:
        validate_simulate(cfg.simulate, spec)
        sim = dict(cfg.simulate)
        sigma = float(sim.pop("sigma", 0.01))
        sseed = int(sim.pop("seed", 0))
        df = sim.pop("df", None)
        return simulated_trainer(sim, law=spec.law.name, sigma=sigma, df=None if df is None else float(df), seed=sseed)
    tr = dict(cfg.trainer)
    return pilot_trainer(cfg.runs, arch=tr.pop("arch", None), seed=int(tr.pop("seed", cfg.seed)), **tr)


def _load_state(cfg: LoopConfig, say: Callable[[str], None]) -> dict[str, Any]:
    """The loop's saved state, or a fresh one; a state of another loop is an error."""
    key = {"target": cfg.target.to_dict(), "budget": cfg.budget, "spec": str(cfg.spec)}
    if not cfg.state_path.is_file():
        return {
            "key": key,
            "round": 0,
            "spent": 0.0,
            "pending": [],
            "known_ids": None,
            "history": [],
            "surprises": [],
            "done": None,
        }
    state = json.loads(cfg.state_path.read_text())
    if state.get("key") != json.loads(json.dumps(key)):
        raise BayescaleError(
            f"{cfg.state_path} belongs to a loop with another target, budget or spec ({state.get('key')}); "
            "delete it to start afresh"
        )
    say(f"resuming from {cfg.state_path} (round {state['round']}, spent {state['spent']:.3g})")
    return state


def _absorb_pending(
    cfg: LoopConfig,
    spec: ModelSpec,
    state: dict[str, Any],
    runs: pd.DataFrame,
    train: Callable[[pd.DataFrame], Any],
    fit_kw: Mapping[str, Any],
    cost_fn: Any,
    say: Callable[[str], None],
) -> pd.DataFrame:
    """Train the batch in flight that the runs table lacks, check the new runs against the fit
    they were planned with, count their cost; returns the runs table with them."""
    ids = set(runs["run_id"].astype(str))
    pend = pd.DataFrame(state["pending"])
    known = set(state["known_ids"] or [])
    new = runs[~runs["run_id"].astype(str).isin(known)]
    done = _match(pend, new)
    todo = pend[~done & ~pend["run_id"].astype(str).isin(ids)]
    if len(todo):
        say(
            f"round {state['round']}: training {len(todo)} run(s): "
            + ", ".join(f"N={r.N:.3g} D={r.D:.3g}" for r in todo.itertuples())
        )
        rows = train(todo.reset_index(drop=True))
        rows = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows
        runs = load_runs(cfg.runs)
        ids = set(runs["run_id"].astype(str))
        if len(rows):
            if "run_id" in rows:
                rows = rows[~rows["run_id"].astype(str).isin(ids)]
            if len(rows):
                append_run(cfg.runs, rows)
        runs = load_runs(cfg.runs)
    new = runs[~runs["run_id"].astype(str).isin(known)].reset_index(drop=True)
    # Check the new runs against the fit they were planned with, then refit with them.
    if len(new):
        seen = runs[runs["run_id"].astype(str).isin(known)]
        before = load_fit(cfg.fit_path, check_spec=False) if cfg.fit_path.is_file() else do_fit(spec, seen, **fit_kw)
        try:  # a check is for the user; a run whose loss repeats a fitted one's exactly (a capped or
            # deterministic trainer) is refused by it, and must not stop the loop
            chk = check(before, new, seed=cfg.seed)
            sur, notes = chk.table.loc[chk.table["surprise"], "run_id"].astype(str).tolist(), list(chk.notes)
        except BayescaleError as e:
            sur, notes = [], [f"the new runs were not checked: {e}"]
        if sur:
            say(f"round {state['round']}: surprising runs (outside the 90% predictive band): {join_names(sur)}")
        for note in notes:  # what the per-run flags miss: the runs all above the law, other units, ...
            say(f"round {state['round']}: {note}")
        state["surprises"] = list(dict.fromkeys(state["surprises"] + sur))
        state["spent"] = float(state["spent"]) + runs_cost(new, runs[runs["run_id"].astype(str).isin(known)], cost_fn)
    state["pending"] = []
    state["known_ids"] = None
    return runs


def _record_round(
    cfg: LoopConfig, state: dict[str, Any], runs: pd.DataFrame, current: Fit, say: Callable[[str], None]
) -> dict[str, float]:
    """The target's band under the current fit, added to the history (once per round)."""
    band = target_band(current, cfg.target)
    hist = {
        "round": state["round"],
        "n_runs": len(runs),
        "spent": state["spent"],
        **{k: band[k] for k in ("median", "lo90", "hi90", "log_width90", "sd_log", "lo90_law", "hi90_law")},
    }
    if "p_below" in band:
        hist["p_below"] = band["p_below"]
    if not state["history"] or state["history"][-1]["round"] != state["round"]:
        state["history"].append(hist)
    say(
        f"round {state['round']}: {len(runs)} runs, spent {state['spent']:.3g} of {cfg.budget:.3g}; {cfg.target.label}: "
        + (
            f"P = {band['p_below']:.3f}"
            if "p_below" in band
            else f"median {band['median']:.4g} (90% {band['lo90']:.4g}-{band['hi90']:.4g})"
        )
    )
    return band


def _stop_reason(cfg: LoopConfig, state: Mapping[str, Any], band: Mapping[str, float]) -> str | None:
    """Why the loop stops before planning another round (tolerance, budget, max_rounds), or None."""
    if cfg.tolerance is not None:
        if cfg.target.is_decision:
            if band["p_below"] <= cfg.tolerance or band["p_below"] >= 1 - cfg.tolerance:
                return (
                    f"P(loss <= threshold) = {band['p_below']:.3f} is within the tolerance {cfg.tolerance:g} of certain"
                )
        elif band["log_width90"] <= cfg.tolerance:
            return f"the 90% interval of log(target) ({band['log_width90']:.4f}) is narrower than the tolerance {cfg.tolerance:g}"
    if cfg.budget - float(state["spent"]) <= 0:
        return "budget spent"
    if int(state["round"]) >= cfg.max_rounds:
        return f"max_rounds ({cfg.max_rounds}) reached"
    return None


__all__ = [
    "LoopConfig",
    "LoopPlan",
    "LoopResult",
    "load_loop_config",
    "load_plan",
    "pilot_trainer",
    "run_loop",
    "simulated_trainer",
]
