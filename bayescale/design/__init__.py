"""Active selection of pilot runs: which runs to train next to pin down a target.

* :mod:`~bayescale.design.targets`: :class:`Target`, :func:`parse_target`, the target's
  draws and band now, and the candidate pool.
* :mod:`~bayescale.design.scoring`: the EPIG scorer (Gaussian, refined by importance
  reweighting) with model discrepancy; :func:`score`.
* :mod:`~bayescale.design.allocation`: the linearised whole-budget allocation.
* :mod:`~bayescale.design.planners`: the planners by name (:data:`REGISTRY`).
* :mod:`~bayescale.design.selection`: :func:`suggest`, :class:`Suggestion` and the stopping rule
  (a module named after the function would be hidden by it).

The closed loop (suggest, train, check, refit) is :mod:`bayescale.loop`.
"""

from __future__ import annotations

from .planners import PLANNERS, REGISTRY, Plan, Planner, PlanOptions, Problem, get_planner
from .scoring import default_discrepancy, score
from .selection import Z90, Stopping, StopRule, Suggestion, suggest
from .targets import (
    TARGET_KINDS,
    Target,
    TargetDraws,
    candidate_grid,
    default_candidates,
    flops_cost,
    parse_target,
    target_band,
    target_draws,
)

__all__ = [
    "PLANNERS",
    "REGISTRY",
    "TARGET_KINDS",
    "Z90",
    "Plan",
    "PlanOptions",
    "Planner",
    "Problem",
    "StopRule",
    "Stopping",
    "Suggestion",
    "Target",
    "TargetDraws",
    "candidate_grid",
    "default_candidates",
    "default_discrepancy",
    "flops_cost",
    "get_planner",
    "parse_target",
    "score",
    "suggest",
    "target_band",
    "target_draws",
]
