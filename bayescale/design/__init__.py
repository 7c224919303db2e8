"""Active selection of pilot runs: which runs to train next to pin down a target.

* :mod:`~bayescale.design.targets`: :class:`Target`, the target's draws and band now, and the
  candidate pool.
* :mod:`~bayescale.design.regions`: target regions (:class:`Region`: points, a box, a frontier
  segment, with weights) and :func:`parse_target`, which reads every target.
* :mod:`~bayescale.design.robust`: when the law is in doubt, plans keep to the target's ratios.
* :mod:`~bayescale.design.scoring`: the EPIG scorer (Gaussian, refined by importance
  reweighting) with model discrepancy; :func:`score`.
* :mod:`~bayescale.design.allocation`: the linearised whole-budget allocation.
* :mod:`~bayescale.design.planners`: the planners by name (:data:`REGISTRY`).
* :mod:`~bayescale.design.selection`: :func:`suggest` and :class:`Suggestion` (a module named
  after the function would be hidden by it); :mod:`~bayescale.design.stopping`: the stopping rule.

The closed loop (suggest, train, check, refit) is :mod:`bayescale.loop`.
"""

from __future__ import annotations

from .planners import PLANNERS, REGISTRY, Plan, Planner, PlanOptions, Problem, get_planner
from .regions import Region, parse_target
from .robust import ROBUST_MODES
from .scoring import default_discrepancy, score
from .selection import Suggestion, suggest
from .stopping import Stopping, StopRule
from .targets import (
    TARGET_KINDS,
    Z90,
    Target,
    TargetDraws,
    branch_flops,
    candidate_grid,
    default_candidates,
    flops_cost,
    target_band,
    target_draws,
    trunks_of,
)

__all__ = [
    "PLANNERS",
    "REGISTRY",
    "ROBUST_MODES",
    "TARGET_KINDS",
    "Z90",
    "Plan",
    "PlanOptions",
    "Planner",
    "Problem",
    "Region",
    "StopRule",
    "Stopping",
    "Suggestion",
    "Target",
    "TargetDraws",
    "branch_flops",
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
    "trunks_of",
]
