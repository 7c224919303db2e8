"""Which pilot should we train next? The old home of active selection and the closed loop.

The code lives in :mod:`bayescale.design` (targets, the EPIG scorer, the planners,
:func:`suggest` and its stopping rule) and :mod:`bayescale.loop` (:func:`run_loop`, its
config and the trainers); this module re-exports their public names so that
``from bayescale.active import suggest, run_loop, ...`` keeps working.
"""

from __future__ import annotations

from .design import (
    PLANNERS,
    TARGET_KINDS,
    Z90,
    PlanOptions,
    Stopping,
    StopRule,
    Suggestion,
    Target,
    TargetDraws,
    candidate_grid,
    default_candidates,
    default_discrepancy,
    flops_cost,
    parse_target,
    score,
    suggest,
    target_band,
    target_draws,
)
from .loop import (
    LoopConfig,
    LoopPlan,
    LoopResult,
    load_loop_config,
    load_plan,
    pilot_trainer,
    run_loop,
    simulated_trainer,
)

__all__ = [
    "PLANNERS",
    "TARGET_KINDS",
    "Z90",
    "LoopConfig",
    "LoopPlan",
    "LoopResult",
    "PlanOptions",
    "StopRule",
    "Stopping",
    "Suggestion",
    "Target",
    "TargetDraws",
    "candidate_grid",
    "default_candidates",
    "default_discrepancy",
    "flops_cost",
    "load_loop_config",
    "load_plan",
    "parse_target",
    "pilot_trainer",
    "run_loop",
    "score",
    "simulated_trainer",
    "suggest",
    "target_band",
    "target_draws",
]
