"""Which pilots to train next: :func:`suggest` and its :class:`Suggestion`.

:func:`suggest` builds one planning :class:`~bayescale.design.planners.Problem` (the pool with
the pending runs, costs, caps, the scorer), asks the chosen planner of
:data:`~bayescale.design.planners.REGISTRY` for a whole-budget plan, takes the plan's most
expensive runs within a share of the budget as the batch, and says in words whether the next
pilot is worth its cost (:mod:`bayescale.design.stopping`). The target may be one point, the
frontier or N_opt at a budget, or a region (:mod:`bayescale.design.regions`); when the law is in
doubt the plan keeps to the target's ratios (:mod:`bayescale.design.robust`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._words import count, join_names
from ..errors import BayescaleError
from . import robust as _robust
from .planners import PLANNERS, ROW_COLUMNS, Plan, Planner, PlanOptions, Problem, get_planner
from .regions import Region, parse_target, region_band, region_draws, target_points
from .scoring import Scorer, default_discrepancy
from .stopping import Stopping, StopRule, stopping_rule
from .targets import Target, as_points, band_from, costs_of, default_candidates, same_point, trunks_of

if TYPE_CHECKING:
    from ..averaging import AveragedFit
    from ..inference import Fit


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
    target : Target or Region
    band : dict
        The target now: median, 90% interval, log-width, sd of log (and p_below); for a region,
        ``log_width90`` the weighted root mean square of its points' widths (each ``predict``'s), ``sd_log``
        of its weighted mean squared error, and the widest point's width.
    stopping : Stopping
    budget : float
    notes : tuple of str
    robust : tuple of str
        Why the plan kept to the target's ratios (empty when it did not:
        :mod:`bayescale.design.robust`).
    """

    table: pd.DataFrame
    plan: pd.DataFrame
    plan_kind: str
    target: Target | Region
    band: Mapping[str, float]
    stopping: Stopping
    budget: float
    alternatives: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    robust: tuple[str, ...] = ()

    def summary(self) -> str:
        """The batch as text: the target now, the table, and the stopping rule."""
        b = self.band
        lines = [f"target: {self.target.label}"]
        if isinstance(self.target, Region):
            lines.append(
                f"  now: weighted 90% width of log loss {b['log_width90']:.4f} (widest point {b['widest_log_width90']:.4f})"
            )
        elif self.target.is_decision:
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
            lines.append(
                f"budget {self.budget:.3g}; plan ({kind}) within the budget: {count(len(self.plan), 'run')} costing {spent:.3g} "
                f"({spent / self.budget:.0%} of it); the next {len(self.table)} to train:"
            )
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
            "robust": list(self.robust),
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in frame.to_dict(orient="records")]


_PLAN_FIELDS = frozenset(f.name for f in dataclasses.fields(PlanOptions))
_STOP_FIELDS = frozenset(f.name for f in dataclasses.fields(StopRule))


def suggest(
    fit: Fit | AveragedFit,
    target: Target | Region | str | Mapping[str, Any] | Sequence[Any] | pd.DataFrame,
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
    fit : Fit or AveragedFit
        The current posterior; a law average (``bs.fit`` of an average spec) is planned under
        every law in proportion to its weight.
    target : Target, text, mapping, or a target region
        ``"N=7e9,D=1.4e12"``, ``"C=1e21"`` (frontier), ``"nopt:C=1e21"``, ``..., threshold=2.1``;
        or a region: a list of points (``[{"N": 1e9, "D": 2e10, "weight": 2}, "N=2e9,D=4e10"]``),
        a DataFrame with columns ``N, D[, weight]``, a box (``{"N": (1e9, 1e10), "D": (2e10, 2e11)}``
        or ``{"N": (...), "tokens_per_param": (20, 80)}``, ``n`` points per axis) or a
        compute-optimal frontier segment (``{"frontier": (1e21, 1e22), "n": 5}``); the plan then
        minimises the weighted target-region error. A region of one point is that point. See
        :func:`~bayescale.design.regions.parse_target`.
    budget_flops : float
        The budget left for pilots, in the units of ``cost`` (FLOPs by default).
    k : int
        How many runs to return: the plan's most expensive runs first, within ``batch_fraction``
        of the budget, or one run when every planned run costs more (the whole plan is in
        :attr:`Suggestion.plan`).
    candidates : DataFrame, list of mappings or a CSV path, optional
        The pool (columns N, D); default :func:`default_candidates`.
    pending : DataFrame, list of mappings or a CSV path, optional
        Runs launched but not finished: excluded from the pool and treated as already in the
        plan (their outcomes will come), so the batch does not repeat them.
    cost : callable, optional
        ``cost(frame) -> array``; default ``6 N D`` FLOPs, or only its cooldown for a
        branch off a WSD trunk in ``fit.runs`` (:func:`~bayescale.design.targets.branch_flops`).
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
        ``n_outcomes``, ``max_draws``, ``max_steps``, ``batch_fraction``, ``design_draws``,
        ``robust``: ``"auto"`` keeps the plan to the target's tokens-per-parameter range when the
        law is in doubt, ``"on"`` always, ``"off"`` never; :mod:`bayescale.design.robust`).
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
    trunks = trunks_of(fit.runs) if cost is None else ()
    if len(trunks):
        sizes = join_names(f"{n:.3g}" for n in trunks["N"])
        notes.append(f"A branch off a WSD trunk in the runs (N = {sizes}) is priced at its cooldown, not 6ND.")
    below = _below_every_run(fit, target, band)
    if problem.robust.active:
        notes.append(problem.robust.text)
    robust = problem.robust.reasons if problem.robust.active else ()
    if below is not None:  # nothing to plan: the target is cheaper than the runs already trained
        empty = pd.DataFrame(columns=ROW_COLUMNS)
        return Suggestion(empty, empty, "none", target, band, below, budget, notes=tuple(notes), robust=robust)
    return _suggestion(problem, chosen.plan(problem), band, rule, int(k), notes, robust)


def _suggestion(
    problem: Problem, plan: Plan, band: Mapping[str, float], rule: StopRule, k: int, notes: list[str], robust: tuple
) -> Suggestion:
    """The suggestion from a planner's plan: the batch, the whole plan, the stopping advice."""
    table = _batch(problem, plan)
    share = float(table["cost"].sum()) / problem.budget if len(table) else 0.0
    if share > problem.options.batch_fraction * (1 + 1e-9):
        notes.append(
            f"No planned run costs {100 * problem.options.batch_fraction:.3g}% of the budget or less (the batch's "
            f"share), so the batch is one run taking {100 * share:.3g}% of it."
        )
    elif len(table) < k and len(plan.best["picks"]) > len(table):
        notes.append(
            f"The batch is {count(len(table), 'run')} (asked for {k}): it takes the plan's runs within "
            f"{100 * problem.options.batch_fraction:.3g}% of the budget (the batch's share), most expensive first; the "
            "rest of the plan waits for their outcomes."
        )
    elif len(table) < k:
        verbs = ("run fits", "adds") if len(table) == 1 else ("runs fit", "add")
        notes.append(f"Only {len(table)} {verbs[0]} the budget or {verbs[1]} information (asked for {k}).")
    affordable = problem.costs[problem.selectable]
    cheapest = float(affordable.min()) if affordable.size else float("nan")
    stopping = _robust_stopping(
        problem.robust,
        stopping_rule(
            problem.scorer,
            plan.best,
            band,
            table,
            problem.target,
            rule,
            problem.budget,
            cheapest=cheapest,
            pending=problem.pre,
        ),
    )
    return Suggestion(
        table=table,
        plan=plan.rows(plan.best["picks"]),
        plan_kind=plan.kind,
        target=problem.target,
        band=band,
        stopping=stopping,
        budget=problem.budget,
        alternatives=_alternatives(plan, problem.scorer.decision),
        notes=tuple(notes),
        robust=robust,
    )


def _robust_stopping(robust: _robust.Robust, stopping: Stopping) -> Stopping:
    """A robust plan does not stop because its plan would shrink the target's interval too little:
    that estimate charges every run a doubled model discrepancy per decade from the target, which
    is meant to steer runs towards the target, not to price them. Measured: it stopped the
    simulation study's loops with 53-70% of the budget unspent whenever the plan went robust
    (BENCHMARKS.md). A decision priced by the user's utility (EVSI against the price) still stops."""
    if not (robust.active and stopping.stop and stopping.reason == "value" and stopping.evsi is None):
        return stopping
    text = stopping.text.rsplit("Stop:", 1)[0] + (
        "Not stopped, though the plan is not expected to narrow the target's band much: the law is in doubt, so the "
        "plan is robust and its value estimate charges runs far from the target a doubled model discrepancy, which says "
        "little about their worth. Its runs test the law at the target's ratios and nearest sizes; train them if "
        "that test is worth their cost, and stop if a narrower band was the aim."
    )
    return dataclasses.replace(stopping, stop=False, reason="", text=text)


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
    target: Target | Region,
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
    points = target_points(fit, target)
    robust = _robust.decide(fit, points, opts.robust)
    pend = as_points(pending, "pending")
    runs = as_points(fit.runs[["N", "D"]], "runs")
    # Exclude pending runs from the pool (they are added as pre-chosen columns); price the rest, whose
    # affordability decides whether a robust plan's size floor can be kept.
    if len(pend) and len(pool):
        pool = pool[~same_point(pool, pend).any(axis=1)].reset_index(drop=True)
    pool_costs = costs_of(pool, cost, fit.runs) if len(pool) else np.zeros(0)  # a branch off a trunk: its cooldown
    kept, robust = _robust.keep(robust, pool, pool_costs <= budget * (1 + 1e-9))
    pool, pool_costs = pool[kept].reset_index(drop=True), pool_costs[kept]
    frame = pd.concat([pool, pend], ignore_index=True)
    n_pool = len(pool)
    selectable = np.zeros(len(frame), dtype=bool)
    selectable[:n_pool] = True
    costs = np.full(len(frame), np.inf)
    costs[:n_pool] = pool_costs
    counts = same_point(frame, pd.concat([runs, pend], ignore_index=True)).sum(axis=1).astype(int)
    td = region_draws(fit, target)
    discrepancy = opts.discrepancy
    if discrepancy is None:  # in doubt of the law, both planners charge distance from the target
        discrepancy = (
            _robust.DISCREPANCY_FACTOR * default_discrepancy(fit) if robust.active else planner.discrepancy(fit)
        )
    band = region_band(td) if isinstance(target, Region) else band_from(td.parts[0])
    sc = Scorer(
        fit,
        td,
        frame,
        discrepancy=discrepancy,
        n_outcomes=opts.n_outcomes,
        seed=seed,
        max_draws=opts.max_draws,
        points=points,
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
        seed=seed,
        options=opts,
        robust=robust,
    )
    return problem, band


def _batch(p: Problem, plan: Plan) -> pd.DataFrame:
    """The batch: the plan's most expensive runs first, within batch_fraction of the budget (the
    cheapest planned run alone when every one costs more).

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
    if not batch and order:  # every planned run is above the batch's share: a batch of one, within the budget
        batch = [order[-1]]
    batch_picks = [picks[i] for i in sorted(batch, key=lambda i: (-costs[picks[i]["index"]], i))]
    return plan.rows(batch_picks) if batch_picks else pd.DataFrame(columns=ROW_COLUMNS)


__all__ = ["StopRule", "Stopping", "Suggestion", "stopping_rule", "suggest"]
