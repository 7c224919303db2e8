"""Planners: how the whole remaining budget is split over the candidates.

Every planner takes one :class:`Problem` (the scorer, the pool with the pending runs, costs,
caps and the budget) and returns a :class:`Plan` (its picks in order, the criterion it
reached, and how to tabulate picks). :data:`REGISTRY` maps a name to a :class:`Planner`:

* ``"allocation"`` (default): the law linearised around posterior draws, the budget split
  jointly by a pseudo-Bayesian c-optimal design, rounded to whole runs
  (:mod:`bayescale.design.allocation`); loss and frontier targets only.
* ``"greedy"``: one run at a time by the Gaussian EPIG with conditioning and importance
  reweighting, cost-weighted and unweighted, keeping the plan that leaves the target less
  uncertain; tokens-per-parameter ratios not yet covered get a bonus.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..averaging import AveragedFit
from ..errors import BayescaleError
from .allocation import Linearised, MixedLinearised, allocate, round_runs
from .regions import Region
from .robust import Robust
from .scoring import Scorer, default_discrepancy
from .targets import Target

if TYPE_CHECKING:
    from ..inference import Fit

ROW_COLUMNS = ["rank", "N", "D", "ratio", "C", "cost", "expected_gain", "sd_after", "why"]


@dataclass(frozen=True)
class PlanOptions:
    """How :func:`~bayescale.design.suggest` plans: its keyword arguments of the same names, as one object.

    Attributes
    ----------
    max_replicates : int
        At most this many runs at one (N, D) point, counting runs done, pending and planned.
    discrepancy : float, optional
        Model-discrepancy sd of log loss per decade of (N, D) between a candidate and the nearest
        target point (Euclidean in (log10 N, log10 D)). Default: for the greedy planner,
        :func:`~bayescale.design.scoring.default_discrepancy` (the fit's learned drift scale when it
        has one, else the spec's extrapolation-drift scale, the root mean square of its
        ``per_decade`` draws, else 0.01); for the allocation planner 0 while the law is trusted
        (the target's own drift term charges for distance); in a robust plan (the law in doubt,
        :mod:`bayescale.design.robust`) twice ``default_discrepancy`` for both.
    diversity : float
        Bonus (fraction of gain) for a run at a tokens-per-parameter ratio at least 0.3
        decades from every ratio already run or planned.
    refine : bool
        Re-rank the best ``n_refine`` candidates at each greedy step by importance reweighting.
    n_refine : int
        Candidates re-ranked by importance reweighting at each greedy step.
    n_outcomes : int
        Simulated outcomes per candidate for the importance reweighting.
    max_draws : int, optional
        Use at most this many posterior draws.
    max_steps : int
        At most this many greedy steps.
    batch_fraction : float
        The batch (first ``k`` runs of the plan) may spend at most this fraction of the budget,
        so the loop learns from it before committing the rest (1 lets one run take it all). When
        every candidate costs more than that share, the batch is one run within the whole budget.
    design_draws : int
        Posterior draws the allocation averages over.
    robust : {"auto", "on", "off"}
        Keep the plan to the target's tokens-per-parameter range when the law is in doubt
        (``"auto"``: spread law weights, laws that disagree at the target, or a misfit), always
        (``"on"``) or never (``"off"``); the rule and its thresholds: :mod:`bayescale.design.robust`.
    """

    max_replicates: int = 2
    discrepancy: float | None = None
    diversity: float = 0.1
    refine: bool = True
    n_refine: int = 8
    n_outcomes: int = 64
    max_draws: int | None = 4000
    max_steps: int = 256
    batch_fraction: float = 0.5
    design_draws: int = 64
    robust: str = "auto"


@dataclass(frozen=True)
class Problem:
    """What a planner plans: columns of ``frame`` are the pool then the pending runs
    (``pre``: already in the plan, not selectable, infinite cost)."""

    fit: Fit | AveragedFit
    target: Target | Region
    scorer: Scorer
    frame: pd.DataFrame
    costs: np.ndarray
    selectable: np.ndarray
    counts: np.ndarray
    pre: list[int]
    budget: float
    k: int
    ratios_seen: np.ndarray
    seed: int
    options: PlanOptions = field(default_factory=PlanOptions)
    robust: Robust = field(default_factory=lambda: Robust(False, (), 0.0, 0.0))


@dataclass(frozen=True)
class Plan:
    """A planner's answer. ``best``: ``picks`` (column index, replicate, variances after),
    ``crit`` (the target's uncertainty criterion after the plan), ``spent``; ``alternatives``:
    every plan the planner weighed, by kind; ``rows(picks)``: the picks as a table."""

    kind: str
    best: Mapping[str, Any]
    alternatives: Mapping[str, Mapping[str, Any]]
    rows: Callable[[Sequence[Mapping[str, Any]]], pd.DataFrame]


@dataclass(frozen=True)
class Planner:
    """A registered planner: ``plan(problem)``; ``discrepancy(fit)``, its default model
    discrepancy; ``supports(target)``, else the greedy planner stands in (``requires`` says why)."""

    name: str
    plan: Callable[[Problem], Plan]
    discrepancy: Callable[[Fit], float]
    supports: Callable[[Target], bool] = lambda target: True
    requires: str = ""


# ------------------------------------------------------------------ greedy


def _affordable(p: Problem, step: int, spent: float, counts: np.ndarray) -> np.ndarray:
    """The candidates the greedy plan may take at ``step``: within the batch's share of the budget for
    its first ``k`` runs, else (after them, or once that share is spent or below every candidate)
    within what is left of the budget."""
    left = p.selectable & (counts < int(p.options.max_replicates))
    share = min(1.0, float(p.options.batch_fraction)) * p.budget - spent
    ok = left & (p.costs <= share + 1e-9 * p.budget)
    if step >= int(p.k) or not ok.any():
        ok = left & (p.costs <= p.budget - spent + 1e-9 * p.budget)
    return ok


def _greedy(p: Problem, *, weighted: bool, refine_steps: int = 6) -> dict[str, Any]:
    """One greedy plan over the budget; returns picks with their gains and the final criterion."""
    o, sc, costs = p.options, p.scorer, p.costs
    diversity, n_refine = float(o.diversity), int(o.n_refine)
    chosen = list(p.pre)
    counts = p.counts.copy()
    spent = 0.0
    picks: list[dict[str, Any]] = []
    lr = np.log10(sc.frame["ratio"].to_numpy(float))
    seen = list(p.ratios_seen)
    half = 1.0 if sc.decision else 0.5
    use_is = bool(o.refine) and sc.T == 1  # a region: Gaussian gains only
    crit_now_is = sc.crit_is_set(chosen) if (use_is and chosen) else None
    for step in range(int(o.max_steps)):
        if step >= refine_steps:
            use_is = False
        ok = _affordable(p, step, spent, counts)
        if not ok.any():
            break
        g = sc.gaussian(chosen)
        dv_now = sc.drift_var(chosen)
        crit_now = float(np.atleast_1d(sc.crit_gauss(g["var_tA"], dv_now))[0])
        idx = np.flatnonzero(ok)
        dvj = sc.drift_var_each(chosen, idx)
        crit_after = sc.crit_gauss(g["var_tAj"][idx], dvj)
        gain = half * (crit_now - crit_after)
        if seen:
            nov = np.min(np.abs(lr[idx][:, None] - np.asarray(seen)[None, :]), axis=1)
        else:
            nov = np.ones(idx.size)
        bonus = 1.0 + diversity * np.minimum(1.0, nov / 0.3)
        metric = gain * bonus / (costs[idx] if weighted else 1.0)
        order = np.argsort(-metric)
        best_pos = order[0]
        value = gain[best_pos]
        gain_kind = "gaussian"
        ess = float("nan")
        if use_is:
            top = order[: max(1, n_refine)]
            crit_is, esss = sc.crit_is(chosen, idx[top])
            base = crit_now_is if crit_now_is is not None else sc.crit_is_set(chosen)
            g_is = half * (base - crit_is)
            reliable = (esss >= 20.0) & (g_is > 0)
            if reliable.any():  # else keep the Gaussian choice (weights too degenerate to trust)
                m_is = np.where(reliable, g_is * bonus[top] / (costs[idx[top]] if weighted else 1.0), -np.inf)
                k = int(np.argmax(m_is))
                best_pos, value, gain_kind, ess = top[k], float(g_is[k]), "reweighted", float(esss[k])
                crit_now_is = float(crit_is[k])
            else:
                use_is = False  # the reweighted baseline no longer matches the chosen set
        if not value > 1e-9:
            break
        j = int(idx[best_pos])
        chosen.append(j)
        counts[j] += 1
        spent += float(costs[j])
        seen.append(lr[j])
        after = sc.gaussian(chosen)
        picks.append(
            {
                "index": j,
                "gain": float(value),
                "gain_gauss": float(gain[best_pos]),
                "gain_kind": gain_kind,
                "ess": ess,
                "novelty": float(nov[best_pos]),
                "rho2": float(g["rho2"][j]),
                "var_law_after": float(after["var_tA"]),
                "drift_var_after": float(sc.drift_var(chosen)),
                "replicate": int(counts[j]),
            }
        )
    g = sc.gaussian(chosen)
    final = float(np.atleast_1d(sc.crit_gauss(g["var_tA"], sc.drift_var(chosen)))[0])
    pending = float(sc.gaussian(list(p.pre))["var_tA"])  # the law's variance once the pending runs report
    return {"picks": picks, "crit": final, "spent": spent, "crit_is": crit_now_is, "var_law_pending": pending}


def _where(dist: float, robust: Robust, row: Any, region: bool = False) -> list[str]:
    """The words every row ends with: how far from the target (a region's nearest point), and why a
    robust plan kept to its ratios."""
    where = "the region's nearest point" if region else "the target"
    parts = [f"{dist:.2g} decades of (N, D) from {where}"]
    if robust.active:
        parts.append(robust.why_at(float(row["ratio"]), float(row["N"])))
    return parts


def _nearer(sc: Any, chosen: Sequence[int], j: int) -> list[str]:
    """Said of a run that shortens the target's extrapolation (its weighted distance from the nearest run)."""
    before = float(sc.reach(chosen) @ sc.wt)
    after = float(sc.reach(list(chosen) + [j]) @ sc.wt)
    if after > before - 0.005:
        return []
    if sc.T > 1:  # a region: the weighted mean over its points, not the run's own distance below
        return [
            f"the region's points move from {before:.2g} to {after:.2g} decades of (N, D) from their nearest run "
            "(weighted mean): less extrapolation"
        ]
    return [
        f"the target's nearest run moves from {before:.2g} to {after:.2g} decades of (N, D) away: less extrapolation"
    ]


def _why(
    p: Mapping[str, Any],
    row: pd.Series,
    first_ratio: bool,
    dist: float,
    nearer: list[str],
    robust: Robust,
    region: bool = False,
) -> str:
    parts = [f"outcome correlates {math.sqrt(max(p['rho2'], 0)):.2f} with the target"]
    if first_ratio:
        parts.append(f"new tokens/param ratio ({row['ratio']:.3g}) separates alpha and beta")
    parts += nearer
    if p["replicate"] > 1:
        parts.append(f"replicate {p['replicate']} (seed noise)")
    if p["gain_kind"] == "reweighted":
        parts.append("ranked by importance reweighting")
    return "; ".join(parts + _where(dist, robust, row, region))


def _rows(p: Problem, picks: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Runs in the given order with their Gaussian gain given the runs before them (and pending ones)."""
    sc, frame, costs = p.scorer, p.frame, p.costs
    half = 1.0 if sc.decision else 0.5
    chosen = list(p.pre)
    seen0 = set(np.round(p.ratios_seen, 1))
    rows = []
    for i, pick in enumerate(picks):
        j = pick["index"]
        g = sc.gaussian(chosen)
        before = float(np.atleast_1d(sc.crit_gauss(g["var_tA"], sc.drift_var(chosen)))[0])
        after_var = float(g["var_tAj"][j])
        dv = sc.drift_var(chosen + [j])
        after = float(np.atleast_1d(sc.crit_gauss(after_var, dv))[0])
        gain = half * (before - after) if pick.get("gain_kind") != "reweighted" or i > 0 else float(pick["gain"])
        nearer = _nearer(sc, chosen, j)
        chosen.append(j)
        r = frame.iloc[j]
        lr = round(math.log10(r["ratio"]), 1)
        first = pick["novelty"] >= 0.15 and lr not in seen0
        seen0.add(lr)
        q = dict(pick)
        q["replicate"] = int(pick["replicate"])
        rows.append(
            {
                "rank": i + 1,
                "N": float(r["N"]),
                "D": float(r["D"]),
                "ratio": float(r["ratio"]),
                "C": float(r["C"]),
                "cost": float(costs[j]),
                "expected_gain": gain,
                "sd_after": math.sqrt(after_var + dv),
                "why": _why(q, r, first, float(sc.dist[j]), nearer, p.robust, sc.T > 1),
            }
        )
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


def plan_greedy(p: Problem) -> Plan:
    """Fill the budget greedily twice, by gain per cost and by gain alone; keep the plan that
    leaves the target less uncertain (the cost-weighted one on a tie)."""
    plans = {"cost-weighted": _greedy(p, weighted=True), "unweighted": _greedy(p, weighted=False)}
    kind = min(plans, key=lambda n: (plans[n]["crit"], n != "cost-weighted"))
    return Plan(kind=kind, best=plans[kind], alternatives=plans, rows=lambda picks: _rows(p, picks))


# ------------------------------------------------------------------ allocation


class _Lin:
    """The linearised design criterion on the scorer's scale: variances of log target."""

    def __init__(self, lin: Linearised | MixedLinearised, sc: Scorer, base: float, folded: Sequence[int] = ()) -> None:
        self.lin, self.sc = lin, sc
        self.scale = sc.var_t / base if base > 0 else 1.0
        self.folded = np.bincount(np.asarray(folded, dtype=int), minlength=lin.M).astype(float)

    def var_after(self, chosen: Sequence[int]) -> float:
        """The variance once the ``chosen`` runs report; pending runs among them are already folded into
        the design's information (they were counted twice before)."""
        n = np.bincount(np.asarray(chosen, dtype=int), minlength=self.lin.M).astype(float)
        return self.scale * self.lin.value(np.maximum(n - self.folded, 0.0), grad=False)[0]


def _allocation(p: Problem, selectable: np.ndarray) -> tuple[_Lin, dict[str, Any]]:
    """The whole-budget plan from the linearised allocation (see :mod:`bayescale.design.allocation`)."""
    sc, costs, budget, pre, o = p.scorer, p.costs, p.budget, p.pre, p.options
    kind = MixedLinearised if isinstance(p.fit, AveragedFit) else Linearised
    lin = kind(p.fit, p.frame, p.target, noise_var=sc.nv, extra_var=sc.dvar, n_draws=int(o.design_draws), seed=p.seed)
    base, _ = lin.value(np.zeros(lin.M), grad=False)
    if pre:  # pending runs will report: fold them into what is known
        lin.fold(pre)
    wrap = _Lin(lin, sc, base, folded=pre)
    caps = np.where(selectable & np.isfinite(costs), np.maximum(int(o.max_replicates) - p.counts, 0), 0).astype(float)
    safe = np.where(np.isfinite(costs), costs, 1.0)
    w, _, _ = allocate(lin, safe, caps, budget)
    n = round_runs(lin, w, safe, caps, budget)
    # The plan's runs, most expensive first (the batch takes them in this order).
    idx = [int(j) for j in np.argsort(-safe, kind="stable") for _ in range(int(n[j]))]
    picks, chosen, reps = [], list(pre), p.counts.copy()
    for j in idx:
        chosen.append(j)
        reps[j] += 1
        picks.append(
            {
                "index": j,
                "replicate": int(reps[j]),
                "var_law_after": wrap.var_after(chosen),
                "drift_var_after": float(sc.drift_var(chosen)),
            }
        )
    var_law, drift = wrap.var_after(chosen), sc.drift_var(chosen)
    crit = float(np.atleast_1d(sc.crit_gauss(var_law, drift))[0])
    spent = float(sum(safe[j] for j in idx))
    return wrap, {"picks": picks, "crit": crit, "spent": spent, "crit_is": None, "var_law_pending": wrap.var_after(pre)}


def _lin_rows(p: Problem, wrap: _Lin, picks: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Runs in the given order with their linearised gain given the runs before them."""
    sc, frame, costs = p.scorer, p.frame, p.costs
    half = 1.0 if sc.decision else 0.5
    chosen = list(p.pre)
    before_var, before_dv = wrap.var_after(chosen), sc.drift_var(chosen)
    rows = []
    for i, pick in enumerate(picks):
        j = pick["index"]
        nearer = _nearer(sc, chosen, j)
        chosen.append(j)
        after_var, dv = wrap.var_after(chosen), sc.drift_var(chosen)
        b = float(np.atleast_1d(sc.crit_gauss(before_var, before_dv))[0])
        a = float(np.atleast_1d(sc.crit_gauss(after_var, dv))[0])
        r = frame.iloc[j]
        parts = list(nearer)
        if pick["replicate"] > 1:
            parts.append(f"replicate {pick['replicate']} (seed noise)")
        parts.append("planned jointly with the rest of the budget (linearised design)")
        parts += _where(float(sc.dist[j]), p.robust, r, sc.T > 1)
        rows.append(
            {
                "rank": i + 1,
                "N": float(r["N"]),
                "D": float(r["D"]),
                "ratio": float(r["ratio"]),
                "C": float(r["C"]),
                "cost": float(costs[j]),
                "expected_gain": half * (b - a),
                "sd_after": math.sqrt(after_var + dv),
                "why": "; ".join(parts),
            }
        )
        before_var, before_dv = after_var, dv
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


def plan_allocation(p: Problem) -> Plan:
    """Split the whole budget by the linearised design criterion, no single run above the
    batch's share of the budget (so the plan's biggest runs can go first)."""
    small = p.selectable & (p.costs <= float(p.options.batch_fraction) * p.budget * (1 + 1e-9))
    if not small.any():  # every candidate is above the batch's share: a plan of one run may take the budget
        small = p.selectable & (p.costs <= p.budget * (1 + 1e-9))
    wrap, best = _allocation(p, small)
    return Plan(
        kind="allocation", best=best, alternatives={"allocation": best}, rows=lambda picks: _lin_rows(p, wrap, picks)
    )


# ------------------------------------------------------------------ the registry

#: Planners by name, with the discrepancy each charges while the law is trusted. The allocation
#: counts every run's information, so a discrepancy at the drift scale (0.02 per decade of (N, D),
#: 0.06-0.09 sd for a pilot 3-4.5 decades from the target, against 0.01 of run noise) steers it to
#: the extreme ratios and stops the loop early: in the simulation study it raised the error in
#: well-specified worlds and doubled it where the data exponent drifts (BENCHMARKS.md, "Next-pilot
#: plans that survive a wrong law"); its default is 0 and the target's drift still charges for
#: distance. When the law is in doubt both planners charge twice the drift scale
#: (:mod:`bayescale.design.robust`).
REGISTRY: dict[str, Planner] = {
    "allocation": Planner(
        "allocation",
        plan_allocation,
        discrepancy=lambda fit: 0.0,
        supports=lambda target: target.kind != "nopt",  # nopt has no law gradient
        requires="a loss or frontier target",
    ),
    "greedy": Planner("greedy", plan_greedy, discrepancy=default_discrepancy),
}
#: How :func:`~bayescale.design.suggest` may plan the remaining budget.
PLANNERS = tuple(REGISTRY)
FALLBACK = "greedy"


def get_planner(name: str, target: Target) -> tuple[Planner, list[str]]:
    """The planner for ``name`` and ``target``, and notes when another one stands in."""
    if name not in REGISTRY:
        raise BayescaleError(f"planner must be one of {list(PLANNERS)}, got {name!r}")
    planner = REGISTRY[name]
    if planner.supports(target):
        return planner, []
    return REGISTRY[FALLBACK], [
        f"The {name} planner needs {planner.requires}; {target.kind} targets are planned greedily."
    ]


__all__ = [
    "PLANNERS",
    "REGISTRY",
    "Plan",
    "PlanOptions",
    "Planner",
    "Problem",
    "get_planner",
    "plan_allocation",
    "plan_greedy",
]
