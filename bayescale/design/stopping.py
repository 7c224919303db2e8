"""The stopping rule of :func:`~bayescale.design.suggest`: is the next pilot worth its cost?

For a loss, frontier or N_opt target (or a target region): its cost against how much it is
expected to shrink the target's 90% interval; for a decision target: P(loss <= threshold)
against a tolerance, or, with a :class:`~bayescale.decisions.Utility`, the next pilot's expected
value of sample information against its price.

While the plan is robust (the law is in doubt, :mod:`bayescale.design.robust`), :func:`suggest`
drops this rule's "not worth its cost" advice for a loss, frontier or region target: the robust
plan's doubled discrepancy charge makes every run look nearly worthless, and the advice stopped
loops with most of their budget unspent (``selection._robust_stopping``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.special import ndtr

from .scoring import Scorer
from .targets import Z90, Target

if TYPE_CHECKING:
    from ..decisions import Utility


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
    width_pending : float
        The width once the pending runs report (``width_now`` without any): the pilots' shrinking is
        measured from it.
    """

    stop: bool
    reason: str
    next_cost: float
    width_now: float
    width_after_next: float
    width_after_plan: float
    evsi: float | None
    text: str
    width_pending: float = float("nan")


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
    pending: Sequence[int] = (),
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
        w_pending = _width_pending(sc, best, list(pending)) * f if len(pending) else width_now
    else:
        w_next = w_plan = w_pending = width_now
        picks = []
    next_cost = float(table["cost"].iloc[0]) if len(table) else float("nan")
    if target.is_decision:
        out = _decision_stopping(sc, best, band, table, target, rule, budget, next_cost, bool(picks))
    else:
        drift = _drift_share(sc, list(pending), [int(q["index"]) for q in picks])
        widths = (width_now, w_pending, w_next, w_plan)
        out = _width_stopping(target, rule, budget, next_cost, bool(picks), widths, drift)
    if out.reason == "budget" and cheapest is not None and cheapest > budget:
        text = (
            f"Stop: the budget ({budget:.3g}) is too small for any candidate pilot; the cheapest costs {cheapest:.3g}. "
            "Raise the budget or give smaller candidates."
        )
        out = dataclasses.replace(out, reason="budget_too_small", text=text)
    return out


def _width_pending(sc: Scorer, best: Mapping[str, Any], pending: list[int]) -> float:
    """The Gaussian 90% width of the target once the pending runs report, by the plan's own variance
    model (``best["var_law_pending"]``: the linearised design's for the allocation, the scorer's for
    greedy plans, as the widths after its runs are): the reference the next pilot's shrinking is
    measured from. Measured from today's band, the pending runs' shrinking was credited to it."""
    return 2 * Z90 * math.sqrt(float(best["var_law_pending"]) + sc.drift_var(pending))


#: The share of the target's variance from the extrapolation drift above which the stopping text says
#: that pilots far from the target cannot narrow its band much.
DRIFT_SHARE_SAID = 0.5


def _drift_share(sc: Scorer, pending: list[int], planned: list[int]) -> str:
    """Why a plan barely narrows the band, when it is the drift's: pilots far from the target inform the
    law, not the extrapolation from the runs to the target, which only runs nearer it shorten. Pending
    runs count as trained (the widths above credit them too)."""
    drift_now = sc.drift_var(pending)
    share = drift_now / (sc.var_t + drift_now) if drift_now > 0 else 0.0
    if share < DRIFT_SHARE_SAID:
        return ""
    now, after = float(sc.reach(pending) @ sc.wt), float(sc.reach(pending + planned) @ sc.wt)
    moved = f"; the plan brings it to {after:.2g}" if after < now - 0.005 else "; the plan does not bring it nearer"
    with_pending = ", the pending runs included" if pending else ""
    return (
        f"{100 * share:.0f}% of the interval's variance is the extrapolation drift over the {now:.2g} decades of "
        f"(N, D) from the nearest run to the target{_region_mean(sc)}{with_pending}{moved}: only runs nearer the "
        "target shorten it. "
    )


def _unpriced(tolerance: float | None) -> str:
    """What a decision's stopping rule can say without a price on the pilots' FLOPs."""
    until = "P is within the tolerance of 0 or 1 or " if tolerance is not None else ""
    give = "" if tolerance is not None else "a tolerance, `tolerance=` (CLI `--tolerance`), or "
    return (
        "With no price on a pilot's FLOPs the rule cannot weigh its worth for the decision, so it stops only once "
        f"{until}the budget is spent (give {give}in Python a price: "
        "`suggest(..., utility=bs.Utility(value=..., price_per_flop=...))`)."
    )


def _region_mean(sc: Scorer) -> str:
    return " (the weighted mean over the region's points)" if sc.T > 1 else ""


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
                else f"The next pilot costs {next_cost:.3g} ({100 * next_cost / budget:.3g}% of the budget left). "
                + _unpriced(tolerance)
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
    widths: tuple[float, float, float, float],
    drift_note: str = "",
) -> Stopping:
    """``widths``: the 90% width now, once the pending runs report (``width_now`` without any), after
    the next pilot and after the whole plan; the pilots' shrinking is measured from the second."""
    width_now, w_pending, w_next, w_plan = widths
    tolerance, min_improvement = rule.tolerance, rule.min_improvement
    shrink = 1.0 - w_next / w_pending if w_pending > 0 else 0.0
    if tolerance is not None and width_now <= tolerance:
        stop, reason = True, "tolerance"
    elif not any_picks:
        stop, reason = True, "budget"
    elif w_pending <= 0 or 1.0 - w_plan / w_pending < min_improvement:
        stop, reason = True, "value"
    else:
        stop, reason = False, ""
    what = "log N_opt" if target.kind == "nopt" else "the target's log loss"
    if any_picks:
        text = (
            f"Stopping rule: the next pilot costs {next_cost:.3g} ({100 * next_cost / budget:.3g}% of the budget left, "
            f"{100 * next_cost / target.C:.2g}% of the target's compute) and is expected to shrink the 90% interval of "
            f"{what} from {_from(width_now, w_pending)} to {w_next:.4f} ({100 * shrink:.1f}%); the whole plan to "
            f"{w_plan:.4f}. "
        )
    else:
        text = "Stopping rule: no affordable pilot adds information. "
    text += drift_note
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
        width_pending=w_pending,
    )


def _from(width_now: float, w_pending: float) -> str:
    if abs(w_pending - width_now) <= 5e-5:
        return f"{width_now:.4f}"
    return f"{width_now:.4f} ({w_pending:.4f} once the pending runs report)"


def _index_of(sc: Scorer, table: pd.DataFrame) -> int:
    """Column of the scorer's frame holding the batch's first run."""
    r = table.iloc[0]
    d = np.abs(np.log(sc.frame["N"].to_numpy(float) / r["N"])) + np.abs(np.log(sc.frame["D"].to_numpy(float) / r["D"]))
    return int(np.argmin(d))


def _evsi(sc: Scorer, j: int, utility: Utility, target: Target) -> float:
    """Expected value of sample information of one run at candidate j for the decision
    "train the target run (value if loss <= threshold, minus its price) or not".

    P(loss <= threshold) now is the mean over the simulated outcomes of P after each one, with the
    same draws and the same smoothing: the preposterior identity that makes the value never negative
    (by Jensen, and exactly 0 when no outcome changes the decision). Taking "now" from the band
    instead (a different noise width and set of draws) gave values below 0 for a free pilot. What it
    leaves out: the simulated outcomes carry no drift shared with the target, so a run's value in
    shortening the extrapolation drift (lying nearer the target) is not counted here; the width rule
    for loss targets counts it."""
    base = sc.base_logw([j])
    lw = base - base.max(axis=1, keepdims=True)
    w = np.exp(lw)
    w /= w.sum(axis=1, keepdims=True)
    smooth = math.sqrt(sc.td.noise_var + sc.drift_var([j]))
    p_m = w @ ndtr((sc.lthr - sc.t) / smooth)
    value = float(utility.value)
    price = float(getattr(utility, "price_per_flop", 0.0)) * float(target.C)
    now = max(0.0, value * float(np.mean(p_m)) - price)
    return float(np.mean(np.maximum(0.0, value * p_m - price))) - now


__all__ = ["StopRule", "Stopping", "stopping_rule"]
