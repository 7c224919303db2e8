"""Which pilots to train next: :func:`suggest`, its :class:`Suggestion`, and the stopping rule.

:func:`suggest` builds one planning :class:`~bayescale.design.planners.Problem` (the pool with
the pending runs, costs, caps, the scorer), asks the chosen planner of
:data:`~bayescale.design.planners.REGISTRY` for a whole-budget plan, takes the plan's most
expensive runs within a share of the budget as the batch, and says in words whether the next
pilot is worth its cost: its cost against how much it is expected to shrink the target's 90%
interval (or, with a :class:`~bayescale.decisions.Utility`, its expected value of sample
information against its price).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from ..errors import BayescaleError
from .planners import PLANNERS, ROW_COLUMNS, Plan, Planner, PlanOptions, Problem, get_planner
from .scoring import Scorer
from .targets import Target, as_points, band_from, costs_of, default_candidates, parse_target, same_point, target_draws

if TYPE_CHECKING:
    from ..decisions import Utility
    from ..inference import Fit

Z90 = 1.6448536269514722


@dataclass(frozen=True)
class StopRule:
    """When the stopping rule advises stopping: :func:`suggest`'s keyword arguments of the same names.

    Attributes
    ----------
    min_improvement : float
        The stopping rule advises stopping when the next pilot is expected to shrink the
        target's 90% interval by less than this fraction.
    tolerance : float, optional
        Stop when the 90% interval of log(target) is narrower than this (for a decision
        target: when P(loss <= threshold) is below it or above 1 - it).
    utility : Utility, optional
        With a decision target: value of reaching the threshold and price per FLOP; the
        stopping rule then compares the next pilot's expected value of sample information
        with its price.
    """

    tolerance: float | None = None
    min_improvement: float = 0.01
    utility: Utility | None = None


@dataclass(frozen=True)
class Stopping:
    """Is the next pilot worth its cost? Read :attr:`text`.

    Attributes
    ----------
    stop : bool
    reason : str
        Why it advises stopping: ``"tolerance"``, ``"budget"`` (spent), ``"budget_too_small"`` (no
        candidate fits it), ``"value"``, ``"below_runs"`` (the target is below every run), or ``""``.
    next_cost : float
        Cost of the next pilot (the plan's first run).
    width_now, width_after_next, width_after_plan : float
        Width of the target's 90% interval of log(target) now, expected after the next
        pilot, and after the whole plan (for a decision target: P(loss <= threshold) now).
    evsi : float or None
        Expected value of sample information of the next pilot, with a utility.
    text : str
    """

    stop: bool
    reason: str
    next_cost: float
    width_now: float
    width_after_next: float
    width_after_plan: float
    evsi: float | None
    text: str


@dataclass(frozen=True)
class Suggestion:
    """A ranked batch of pilots to train next, planned over the whole remaining budget.

    Attributes
    ----------
    table : pandas.DataFrame
        The batch: ``rank, N, D, ratio, cost, expected_gain`` (nats of information about the
        target, given the runs ranked above it), ``sd_after`` (expected sd of log target after
        this run and those above it) and ``why`` (in words).
    plan : pandas.DataFrame
        The whole-budget plan the batch starts (same columns).
    plan_kind : str
        ``"allocation"`` (the linearised whole-budget allocation), or ``"cost-weighted"`` /
        ``"unweighted"``: which greedy plan left the target less uncertain.
    target : Target
    band : dict
        The target now: median, 90% interval, log-width, sd of log (and p_below).
    stopping : Stopping
    budget : float
    notes : tuple of str
    """

    table: pd.DataFrame
    plan: pd.DataFrame
    plan_kind: str
    target: Target
    band: Mapping[str, float]
    stopping: Stopping
    budget: float
    alternatives: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """The batch as text: the target now, the table, and the stopping rule."""
        b = self.band
        lines = [f"target: {self.target.label}"]
        if self.target.is_decision:
            lines.append(
                f"  now: P = {b['p_below']:.3f}; median {b['median']:.4g}, 90% interval {b['lo90']:.4g}-{b['hi90']:.4g}"
            )
        else:
            lines.append(
                f"  now: median {b['median']:.4g}, 90% interval {b['lo90']:.4g}-{b['hi90']:.4g} (width of log: {b['log_width90']:.4f})"
            )
        kind = self.plan_kind if self.plan_kind == "allocation" else self.plan_kind + " greedy"
        spent = self.plan["cost"].sum() if len(self.plan) else 0
        if self.plan_kind == "none":
            lines.append(f"budget {self.budget:.3g}; no plan")
        else:
            lines.append(f"budget {self.budget:.3g}; plan ({kind}, {len(self.plan)} runs, cost {spent:.3g})")
        lines.append("")
        t = self.table
        if len(t):
            head = f"{'rank':>4}  {'N':>9}  {'D':>9}  {'ratio':>6}  {'cost':>9}  {'gain':>7}  why"
            lines.append(head)
            for _, r in t.iterrows():
                lines.append(
                    f"{int(r['rank']):>4}  {r['N']:>9.3g}  {r['D']:>9.3g}  {r['ratio']:>6.3g}  {r['cost']:>9.3g}  {r['expected_gain']:>7.4f}  {r['why']}"
                )
        elif self.stopping.reason != "below_runs":
            lines.append("no affordable candidate")
        lines.append("")
        lines.append(self.stopping.text)
        lines += list(self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target.to_dict(),
            "target_label": self.target.label,
            "band": dict(self.band),
            "budget": self.budget,
            "plan_kind": self.plan_kind,
            "batch": _records(self.table),
            "plan": _records(self.plan),
            "alternatives": dict(self.alternatives),
            "stopping": {
                k: getattr(self.stopping, k)
                for k in (
                    "stop",
                    "reason",
                    "next_cost",
                    "width_now",
                    "width_after_next",
                    "width_after_plan",
                    "evsi",
                    "text",
                )
            },
            "notes": list(self.notes),
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in frame.to_dict(orient="records")]


_PLAN_FIELDS = frozenset(f.name for f in dataclasses.fields(PlanOptions))
_STOP_FIELDS = frozenset(f.name for f in dataclasses.fields(StopRule))


def suggest(
    fit: Fit,
    target: Target | str | Mapping[str, Any],
    *,
    budget_flops: float,
    k: int = 4,
    candidates: Any = None,
    pending: Any = None,
    cost: Callable[[pd.DataFrame], np.ndarray] | None = None,
    threshold: float | None = None,
    planner: str = "allocation",
    seed: int = 0,
    options: PlanOptions | None = None,
    stop: StopRule | None = None,
    **keywords: Any,
) -> Suggestion:
    """The next ``k`` pilots to train, from a plan over the whole remaining budget.

    Parameters
    ----------
    fit : Fit
        The current posterior.
    target : Target, text or mapping
        ``"N=7e9,D=1.4e12"``, ``"C=1e21"`` (frontier), ``"nopt:C=1e21"``, ``..., threshold=2.1``;
        see :func:`parse_target`.
    budget_flops : float
        The budget left for pilots, in the units of ``cost`` (FLOPs by default).
    k : int
        How many runs to return: the plan's most expensive runs first, within ``batch_fraction``
        of the budget (the whole plan is in :attr:`Suggestion.plan`).
    candidates : DataFrame or list of mappings, optional
        The pool (columns N, D); default :func:`default_candidates`.
    pending : DataFrame or list of mappings, optional
        Runs launched but not finished: excluded from the pool and treated as already in the
        plan (their outcomes will come), so the batch does not repeat them.
    cost : callable, optional
        ``cost(frame) -> array``; default ``6 N D``.
    threshold : float, optional
        Make the target the decision P(loss <= threshold).
    planner : {"allocation", "greedy"}
        A name in :data:`~bayescale.design.planners.REGISTRY`. ``"allocation"`` (default; loss and
        frontier targets): the whole budget split by a linearised c-optimal design, rounded to whole
        runs. ``"greedy"``: one run at a time by EPIG (always used for ``nopt`` targets). In the
        simulation study the allocation needed far fewer FLOPs (BENCHMARKS.md, "Active selection").
    seed : int
        Seed for the draws subsample, the simulated outcomes and the allocation's draws.
    options : PlanOptions, optional
        How to plan (``max_replicates``, ``discrepancy``, ``diversity``, ``refine``, ``n_refine``,
        ``n_outcomes``, ``max_draws``, ``max_steps``, ``batch_fraction``, ``design_draws``).
    stop : StopRule, optional
        When to advise stopping (``tolerance``, ``min_improvement``, ``utility``).
    **keywords
        Any field of :class:`PlanOptions` or :class:`StopRule` by name (e.g. ``max_replicates=3``,
        ``tolerance=0.02``), overriding ``options`` and ``stop``.

    Returns
    -------
    Suggestion

    Examples
    --------
    >>> sug = suggest(fit, "N=7e9,D=1.4e12", budget_flops=1e19, k=4)   # doctest: +SKIP
    >>> print(sug.summary())                                          # doctest: +SKIP
    """

    target = parse_target(target, threshold)
    opts, rule = _options(options, stop, keywords)
    _validate_args(budget_flops, k, opts, planner)
    budget = float(budget_flops)
    chosen, notes = get_planner(planner, target)
    problem, band = _problem(fit, target, budget, int(k), candidates, pending, cost, chosen, opts, seed)
    below = _below_every_run(fit, target, band)
    if below is not None:  # nothing to plan: the target is cheaper than the runs already trained
        empty = pd.DataFrame(columns=ROW_COLUMNS)
        return Suggestion(empty, empty, "none", target, band, below, budget, notes=tuple(notes))
    plan = chosen.plan(problem)
    whole = plan.rows(plan.best["picks"])
    table = _batch(problem, plan)
    if len(table) < k:
        notes.append(f"Only {len(table)} runs fit the budget or add information (asked for {k}).")
    affordable = problem.costs[problem.selectable]
    cheapest = float(affordable.min()) if affordable.size else float("nan")
    stopping = stopping_rule(problem.scorer, plan.best, band, table, target, rule, budget, cheapest=cheapest)
    alts = _alternatives(plan, problem.scorer.decision)
    return Suggestion(
        table=table,
        plan=whole,
        plan_kind=plan.kind,
        target=target,
        band=band,
        stopping=stopping,
        budget=budget,
        alternatives=alts,
        notes=tuple(notes),
    )


def _below_every_run(fit: Fit, target: Target, band: Mapping[str, float]) -> Stopping | None:
    """A stop when the target's compute is below every run's: no pilot can be cheaper than the
    target itself, and the runs already bracket it from above (None otherwise)."""
    c_min = float(fit.runs["C"].min())
    if not target.C < c_min:
        return None
    text = (
        f"Stop: the target ({target.label}, C = {float(target.C):.3g} FLOPs) is below every run already trained "
        f"(the smallest has C = {c_min:.3g}); no pilot is cheaper than the target itself. "
        "Train the target directly, or read its band with `bayescale predict`."
    )
    width = float(band.get("p_below", band["log_width90"]))
    return Stopping(True, "below_runs", float("nan"), width, float("nan"), float("nan"), None, text)


def _alternatives(plan: Plan, decision: bool) -> dict[str, float]:
    """Each plan weighed: the sd of log target it leaves (for a decision, the expected entropy)."""
    return {
        n: float(math.exp(0.5 * p["crit"])) if not decision else float(p["crit"]) for n, p in plan.alternatives.items()
    }


def _options(
    options: PlanOptions | None, stop: StopRule | None, keywords: Mapping[str, Any]
) -> tuple[PlanOptions, StopRule]:
    """The planning and stopping options, with keywords (the old flat arguments) on top."""
    unknown = sorted(set(keywords) - _PLAN_FIELDS - _STOP_FIELDS)
    if unknown:
        raise TypeError(f"suggest() got an unexpected keyword argument {unknown[0]!r}")
    opts = dataclasses.replace(options or PlanOptions(), **{n: v for n, v in keywords.items() if n in _PLAN_FIELDS})
    rule = dataclasses.replace(stop or StopRule(), **{n: v for n, v in keywords.items() if n in _STOP_FIELDS})
    return opts, rule


def _validate_args(budget_flops: Any, k: Any, opts: PlanOptions, planner: str) -> None:
    if not (
        isinstance(budget_flops, (int, float, np.floating)) and math.isfinite(float(budget_flops)) and budget_flops > 0
    ):
        raise BayescaleError(f"budget_flops must be a finite number > 0, got {budget_flops!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise BayescaleError(f"k must be a positive integer, got {k!r}")
    bf, mr = opts.batch_fraction, opts.max_replicates
    if not (isinstance(bf, (int, float)) and 0 < bf <= 1):
        raise BayescaleError(f"batch_fraction must be in (0, 1], got {bf!r}")
    if isinstance(mr, bool) or not isinstance(mr, (int, np.integer)) or mr < 1:
        raise BayescaleError(f"max_replicates must be a positive integer, got {mr!r}")
    if planner not in PLANNERS:
        raise BayescaleError(f"planner must be one of {list(PLANNERS)}, got {planner!r}")


def _problem(
    fit: Fit,
    target: Target,
    budget: float,
    k: int,
    candidates: Any,
    pending: Any,
    cost: Callable[[pd.DataFrame], np.ndarray] | None,
    planner: Planner,
    opts: PlanOptions,
    seed: int,
) -> tuple[Problem, dict[str, float]]:
    """The planning problem (pool then pending runs as columns) and the target's band now."""
    pool = (
        as_points(candidates, "candidates")
        if candidates is not None
        else default_candidates(fit, budget if cost is None else None)
    )
    pend = as_points(pending, "pending")
    runs = as_points(fit.runs[["N", "D"]], "runs")
    # Exclude pending runs from the pool; add them as pre-chosen columns.
    if len(pend):
        pool = pool[~same_point(pool, pend).any(axis=1)].reset_index(drop=True)
    frame = pd.concat([pool, pend], ignore_index=True)
    n_pool = len(pool)
    selectable = np.zeros(len(frame), dtype=bool)
    selectable[:n_pool] = True
    costs = np.full(len(frame), np.inf)
    if n_pool:
        costs[:n_pool] = costs_of(pool, cost)
    counts = same_point(frame, pd.concat([runs, pend], ignore_index=True)).sum(axis=1).astype(int)
    td = target_draws(fit, target)
    discrepancy = opts.discrepancy if opts.discrepancy is not None else planner.discrepancy(fit)
    cmax = float(fit.runs["C"].max())
    band = band_from(td, cmax)
    sc = Scorer(
        fit, td, frame, discrepancy=discrepancy, n_outcomes=opts.n_outcomes, seed=seed, max_draws=opts.max_draws
    )
    ratios_seen = np.log10(pd.concat([runs, pend])["ratio"].to_numpy(float)) if len(runs) + len(pend) else np.zeros(0)
    problem = Problem(
        fit=fit,
        target=target,
        scorer=sc,
        frame=frame,
        costs=costs,
        selectable=selectable,
        counts=counts,
        pre=list(range(n_pool, len(frame))),
        budget=budget,
        k=k,
        ratios_seen=ratios_seen,
        cmax=cmax,
        seed=seed,
        options=opts,
    )
    return problem, band


def _batch(p: Problem, plan: Plan) -> pd.DataFrame:
    """The batch: the plan's most expensive runs first, within batch_fraction of the budget.

    The whole plan is the design; launching its big runs first spends the budget in few rounds
    and lets their outcomes re-shape the rest (cheap runs picked first by gain per cost would be
    bought round after round while the budget stays unspent)."""
    picks, costs = plan.best["picks"], p.costs
    order = sorted(range(len(picks)), key=lambda i: (-costs[picks[i]["index"]], i))
    batch, used = [], 0.0
    cap = float(p.options.batch_fraction) * p.budget
    for i in order:
        c = float(costs[picks[i]["index"]])
        if len(batch) < p.k and used + c <= cap * (1 + 1e-9):
            batch.append(i)
            used += c
    batch_picks = [picks[i] for i in sorted(batch, key=lambda i: (-costs[picks[i]["index"]], i))]
    return plan.rows(batch_picks) if batch_picks else pd.DataFrame(columns=ROW_COLUMNS)


# ------------------------------------------------------------------ the stopping rule


def stopping_rule(
    sc: Scorer,
    best: Mapping[str, Any],
    band: Mapping[str, float],
    table: pd.DataFrame,
    target: Target,
    rule: StopRule,
    budget: float,
    *,
    cheapest: float | None = None,
) -> Stopping:
    """Is the next pilot worth its cost? For a decision target: P(loss <= threshold) against the
    tolerance, or the next pilot's EVSI against its price; else the expected shrinking of the
    target's 90% interval against ``min_improvement``. ``cheapest`` (the cheapest candidate's cost)
    tells a budget too small for any candidate from one spent on the plan."""
    width_now = float(band["log_width90"])
    picks = best["picks"]
    if picks and len(table):
        w_next = 2 * Z90 * float(table["sd_after"].iloc[0])  # after the batch's first run
        last = picks[-1]
        w_plan = 2 * Z90 * math.sqrt(last["var_law_after"] + last["drift_var_after"])
        # scale the Gaussian widths to the band's measured width (non-Gaussian draws)
        w0 = 2 * Z90 * math.sqrt(sc.var_t + sc.drift_var([]))
        f = width_now / w0 if w0 > 0 else 1.0
        w_next, w_plan = w_next * f, w_plan * f
    else:
        w_next = w_plan = width_now
        picks = []
    next_cost = float(table["cost"].iloc[0]) if len(table) else float("nan")
    if target.is_decision:
        out = _decision_stopping(sc, best, band, table, target, rule, budget, next_cost, bool(picks))
    else:
        out = _width_stopping(target, rule, budget, next_cost, bool(picks), width_now, w_next, w_plan)
    if out.reason == "budget" and cheapest is not None and cheapest > budget:
        text = (
            f"Stop: the budget ({budget:.3g}) is too small for any candidate pilot; the cheapest costs {cheapest:.3g}. "
            "Raise the budget or give smaller candidates."
        )
        out = dataclasses.replace(out, reason="budget_too_small", text=text)
    return out


def _decision_stopping(
    sc: Scorer,
    best: Mapping[str, Any],
    band: Mapping[str, float],
    table: pd.DataFrame,
    target: Target,
    rule: StopRule,
    budget: float,
    next_cost: float,
    any_picks: bool,
) -> Stopping:
    p, tolerance, utility = band["p_below"], rule.tolerance, rule.utility
    done = tolerance is not None and (p <= tolerance or p >= 1 - tolerance)
    evsi = None
    if utility is not None and any_picks:
        evsi = _evsi(sc, int(best["picks"][0]["index"]) if not len(table) else _index_of(sc, table), utility, target)
        price = float(getattr(utility, "price_per_flop", 0.0)) * next_cost
        stop = done or evsi < price
        reason = "tolerance" if done else ("value" if evsi < price else "")
        text = (
            f"Stopping rule: the next pilot costs {next_cost:.3g} FLOPs (price {price:.4g}); its expected value of "
            f"sample information for the decision is {evsi:.4g}. "
            + ("Stop: it is not worth its price." if stop else "Worth training.")
        )
    else:
        stop = done or not any_picks
        reason = "tolerance" if done else ("budget" if not any_picks else "")
        text = (
            f"Stopping rule: P({target.label.split('P(', 1)[-1]} is {p:.3f} now"
            + (f"; tolerance {tolerance:g}" if tolerance is not None else "")
            + ". "
            + (
                "Stop."
                if stop
                else f"The next pilot costs {next_cost:.3g} ({100 * next_cost / budget:.3g}% of the budget left)."
            )
        )
    return Stopping(
        stop=bool(stop),
        reason=reason,
        next_cost=next_cost,
        width_now=float(p),
        width_after_next=float("nan"),
        width_after_plan=float("nan"),
        evsi=evsi,
        text=text,
    )


def _width_stopping(
    target: Target,
    rule: StopRule,
    budget: float,
    next_cost: float,
    any_picks: bool,
    width_now: float,
    w_next: float,
    w_plan: float,
) -> Stopping:
    tolerance, min_improvement = rule.tolerance, rule.min_improvement
    shrink = 1.0 - w_next / width_now if width_now > 0 else 0.0
    if tolerance is not None and width_now <= tolerance:
        stop, reason = True, "tolerance"
    elif not any_picks:
        stop, reason = True, "budget"
    elif 1.0 - w_plan / width_now < min_improvement:
        stop, reason = True, "value"
    else:
        stop, reason = False, ""
    what = "log N_opt" if target.kind == "nopt" else "the target's log loss"
    if any_picks:
        text = (
            f"Stopping rule: the next pilot costs {next_cost:.3g} ({100 * next_cost / budget:.3g}% of the budget left, "
            f"{100 * next_cost / target.C:.2g}% of the target's compute) and is expected to shrink the 90% interval of "
            f"{what} from {width_now:.4f} to {w_next:.4f} ({100 * shrink:.1f}%); the whole plan to {w_plan:.4f}. "
        )
    else:
        text = "Stopping rule: no affordable pilot adds information. "
    if stop and reason == "tolerance":
        text += f"Stop: the interval is already narrower than the tolerance {tolerance:g}."
    elif stop and reason == "budget":
        text += "Stop: the budget is spent."
    elif stop:
        text += f"Stop: the whole remaining budget would shrink the interval by less than {100 * min_improvement:g}%, not worth its cost."
    else:
        text += "Worth training."
    return Stopping(
        stop=stop,
        reason=reason,
        next_cost=next_cost,
        width_now=width_now,
        width_after_next=w_next,
        width_after_plan=w_plan,
        evsi=None,
        text=text,
    )


def _index_of(sc: Scorer, table: pd.DataFrame) -> int:
    """Column of the scorer's frame holding the batch's first run."""
    r = table.iloc[0]
    d = np.abs(np.log(sc.frame["N"].to_numpy(float) / r["N"])) + np.abs(np.log(sc.frame["D"].to_numpy(float) / r["D"]))
    return int(np.argmin(d))


def _evsi(sc: Scorer, j: int, utility: Utility, target: Target) -> float:
    """Expected value of sample information of one run at candidate j for the decision
    "train the target run (value if loss <= threshold, minus its price) or not"."""
    base = sc.base_logw([j])
    lw = base - base.max(axis=1, keepdims=True)
    w = np.exp(lw)
    w /= w.sum(axis=1, keepdims=True)
    smooth = math.sqrt(sc.td.noise_var + sc.drift_var([j]))
    q = ndtr((sc.lthr - sc.t) / smooth)
    p_m = w @ q
    p0 = float(np.mean(ndtr((sc.lthr - sc.t) / math.sqrt(sc.td.noise_var + sc.drift_var([])))))
    value = float(utility.value)
    price = float(getattr(utility, "price_per_flop", 0.0)) * float(target.C)
    return float(np.mean(np.maximum(0.0, value * p_m - price)) - max(0.0, value * p0 - price))


__all__ = ["StopRule", "Stopping", "Suggestion", "stopping_rule", "suggest"]
