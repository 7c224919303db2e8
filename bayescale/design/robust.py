"""The robust plan: when the law is in doubt, plan pilots the way a ladder would.

A design that is optimal for a law that holds puts runs where the law's terms separate best
(very few and very many tokens per parameter), which is where a wrong law is most wrong: on a
replay of a real (N, D) grid the allocation planner, fed a Chinchilla fit, spent a third of its
runs below 5 tokens per parameter and a quarter above 100 and missed the largest runs far
worse than a plain D = 20 N ladder; limiting the pool to the target's ratios cut its error
four-fold. So when the evidence says the law may be wrong, the plan keeps to the target's
own ratios and charges distance from the target more.

**The rule** (``robust="auto"``, the default of :func:`~bayescale.design.suggest`). The law is in
doubt when any of these holds:

1. the fit is a law average whose leading law has weight below :data:`SPREAD_WEIGHT` (0.8):
   the runs' own future did not single out one law;
2. two laws of the average (weight >= :data:`~bayescale.averaging.MIN_WEIGHT` each) predict
   some target point with medians further apart than the mean half-width of their own 90%
   intervals (law draws): they disagree beyond their own uncertainty;
3. the misfit check (:func:`bayescale.misfit.misfit`, run on every fit) fires: a residual
   pattern the law cannot follow;
4. the law has not earned trust for extrapolation: leave-future-out splits of the runs
   (:mod:`bayescale.discrepancy`: fit on the runs below a compute cut, score the runs above)
   are too few to test it (fewer than two), or the drift scale they give, under a wide
   :data:`TRUST_HYPERPRIOR`, has a median above :data:`TRUSTED_DRIFT` (0.02 log loss per decade
   of (N, D)). A design that is optimal for the law is a bet on the law far from the target; the
   bet is taken only once the runs' own future has backed the law. The threshold is strict on
   purpose. On the simulation study's well-specified worlds (14-38 runs) the splits give medians
   of 0.007-0.044, since a law fitted to its smaller runs extrapolates with a small bias that the
   splits read as drift, so a correct law is often not trusted; worlds whose data exponent drifts
   with N give 0.027-0.097 (``benchmarks/trust_drift.py``). The hyperprior's own median (0.034)
   as threshold trusted more correct laws but also more wrong ones on real sweeps: the replay lost
   cells (Chinchilla at 1%, the OLMo ladder at 5% and 10%) and the simulation study gained nothing
   it could measure, so 0.02 stays (BENCHMARKS.md, "The trust threshold and the robust plan's
   stopping").

While the plan is robust its stopping rule does not stop the loop for want of value (a decision
priced by a utility still stops): the doubled discrepancy charge below steers runs towards the
target but makes any further run look nearly worthless, and stopped the study's loops with most of
the budget unspent (``selection._robust_stopping``; BENCHMARKS.md).

Then the pool keeps only candidates whose tokens per parameter lie within a factor
:data:`RATIO_FACTOR` (2) of the target's range (the ratios of its points; the nearest ratio
in the pool when none does); while the misfit check fires on the law's shape (rule 3; not one run
far off alone), also only candidates at least as large as the runs' median N (or the target's N,
if smaller): the law is seen to fail inside the runs, so runs far below the target, which it would
have to connect to the target, are not bought. (Measured on the simulation study: within noise in
every group, and 90% coverage in the beta-drift worlds 0.62 -> 0.75; BENCHMARKS.md, "A loop's
pool that does not walk down".) Both planners charge each candidate a model discrepancy of
:data:`DISCREPANCY_FACTOR` (2) times :func:`~bayescale.design.scoring.default_discrepancy` (the
learned drift scale, else the spec's, else 0.01) per decade of (N, D) from the target, so that
runs of sizes far below the target are worth less. (While the law is trusted the allocation
planner charges none: measured, a charge there steered it to the extreme ratios; BENCHMARKS.md.)
``robust="on"`` always plans this way, ``"off"`` never.
"""

from __future__ import annotations

import dataclasses
import json
import math
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import _arviz
from .._words import join_names
from ..averaging import MIN_WEIGHT, AveragedFit, law_disagreement
from ..discrepancy import holdouts, learn_drift, split_masks
from ..errors import BayescaleError
from ..priors import Prior
from .targets import law_weights

if TYPE_CHECKING:
    from ..inference import Fit
    from ..misfit import Misfit

#: How :func:`~bayescale.design.suggest` may plan when the law is in doubt.
ROBUST_MODES = ("auto", "on", "off")
#: A law average whose leading law weighs less than this does not single out one law.
SPREAD_WEIGHT = 0.8
#: A robust plan keeps candidates within this factor of the target's tokens-per-parameter range.
RATIO_FACTOR = 2.0
#: The drift scale's hyperprior for rule 4 (wide, whatever the spec's own drift prior says).
TRUST_HYPERPRIOR = Prior("HalfNormal", {"scale": 0.05})
#: The leading law's leave-future-out drift scale (median, log loss per decade of (N, D)) up to
#: which the law is trusted to extrapolate (rule 4). Below the hyperprior's own median (0.034) on
#: purpose: raising it to that median was measured and lost on the real-sweep replay (BENCHMARKS.md).
TRUSTED_DRIFT = 0.02
#: A robust plan multiplies the model-discrepancy scale by this.
DISCREPANCY_FACTOR = 2.0
FORCED = ("asked for (robust='on')",)


@dataclass(frozen=True)
class Robust:
    """Whether the plan is robust, why (``reasons``, in words) and the tokens-per-parameter
    range it keeps to (``low``, ``high``)."""

    active: bool
    reasons: tuple[str, ...]
    low: float
    high: float
    #: The smallest N the plan keeps (0: any): the runs' median N (or the target's, if smaller) while the misfit
    #: check fires on the law's shape.
    smallest_N: float = 0.0
    #: What ``smallest_N`` is, in words ("the runs' median" or "the target's N").
    size_source: str = "the runs' median"
    #: A ``smallest_N`` that :func:`keep` could not hold (no candidate in the ratio range that large within the
    #: budget); 0 when it held or there was none.
    unmet_N: float = 0.0

    @property
    def why(self) -> str:
        """The words a planned row inside the ratio range carries (:meth:`why_at` says it for any row)."""
        return self.why_at(math.sqrt(self.low * self.high))

    def why_at(self, ratio: float, n: float = math.inf) -> str:
        """The words a planned row at tokens per parameter ``ratio`` (and size ``n``) carries: kept to the
        range, or (when no candidate lies in it, :func:`keep`) at the candidates' ratio nearest to it."""
        why = "as asked (robust='on')" if self.reasons == FORCED else "because the law is in doubt"
        span = f"the target's tokens/param ({self.low:.3g}-{self.high:.3g})"
        if self.smallest_N > 0 and n >= self.smallest_N * (1 - 1e-9):
            span += f" and to N >= {self.smallest_N:.3g} ({self.size_source}: the law misfits the runs)"
        if self.low * (1 - 1e-6) <= ratio <= self.high * (1 + 1e-6):
            return f"kept to {span} {why}"
        return f"no candidate lies in {span}: kept to the nearest ratio among them ({ratio:.3g}) {why}"

    @property
    def text(self) -> str:
        """The suggestion's note."""
        if not self.active:
            return ""
        return (
            f"Robust plan: {'; '.join(self.reasons)}. Candidates are kept to {self.low:.3g}-{self.high:.3g} tokens per "
            f"parameter (within {RATIO_FACTOR:g}x of the target's){self._size_words()} and runs far from the target are charged "
            f"{DISCREPANCY_FACTOR:g}x the model discrepancy, as a ladder at the target's ratio would spend the budget. "
            "Plan for the fitted law alone with robust='off' (CLI: --robust off)."
        )

    def _size_words(self) -> str:
        if self.unmet_N:
            return (
                f" (no candidate there within the budget reaches N >= {self.unmet_N:.3g}, {self.size_source}, which the "
                "plan keeps to while the law misfits the runs: it plans among smaller ones)"
            )
        if not self.smallest_N:
            return ""
        return (
            f", to N >= {self.smallest_N:.3g} ({self.size_source}: the law misfits the runs, so runs far below the "
            "target are not bought)"
        )


def _disagreement(fit: Fit | AveragedFit, points: pd.DataFrame) -> str | None:
    """Words naming two laws whose predictions at a target point differ by more than their own bands."""
    found = law_disagreement(fit, points[["N", "D", "C"]], min_weight=MIN_WEIGHT)
    if found is None:
        return None
    a, b, i, ma, mb = found
    return (
        f"laws {a} and {b} predict the target point N={points['N'].iloc[i]:.3g}, D={points['D'].iloc[i]:.3g} "
        f"{100 * abs(ma - mb):.2g}% apart, more than their own 90% intervals allow"
    )


#: Rule 4's answer for each fit planned for in this process, by the fit's id, dropped when the fit is freed.
#: The splits run whenever the fit did not learn its drift (0.2-0.5 s of a warm ``suggest`` on the demo runs; 3.5 s
#: of 4.6 s under the tests' unoptimised XLA), and one fit is often asked for several plans (targets, regions, budgets).
_DRIFT_OF_FIT: dict[int, tuple[int, float]] = {}


def _leave_future_out_drift(law: Fit) -> tuple[int, float]:
    """How many leave-future-out splits test ``law`` and the median drift scale they give under
    :data:`TRUST_HYPERPRIOR` (computed once per fit: :data:`_DRIFT_OF_FIT`)."""
    key = id(law)
    if key not in _DRIFT_OF_FIT:
        _DRIFT_OF_FIT[key] = _splits_drift(law)
        weakref.finalize(law, _DRIFT_OF_FIT.pop, key, None)
    return _DRIFT_OF_FIT[key]


def _splits_drift(law: Fit) -> tuple[int, float]:
    """:func:`_leave_future_out_drift`'s answer: the fit's own, when it learned its drift under that
    hyperprior (the recommended average's laws do), else from the splits run here."""
    recorded = _arviz.attrs(law.idata).get("drift_scale") if law.idata is not None else None
    if recorded and law.spec.learn_drift and law.spec.extrapolation == TRUST_HYPERPRIOR:
        drift = json.loads(recorded)
        return int(drift["splits"]), float(drift["median"])
    table = law.runs
    try:
        splits = holdouts(law.spec, table, split_masks([law.spec], table), np.random.default_rng(0))
    except BayescaleError:  # a split's density is not finite anywhere: the law is not tested either
        splits = []
    if len(splits) < 2:
        return len(splits), float("nan")
    return len(splits), float(learn_drift(splits, TRUST_HYPERPRIOR).quantile(0.5))


def _untrusted(fit: Fit | AveragedFit) -> str | None:
    """Words saying why the leading law has not earned trust to extrapolate (rule 4), or None."""
    law = fit.leading if isinstance(fit, AveragedFit) else fit
    n_splits, drift = _leave_future_out_drift(law)
    if n_splits < 2:
        return (
            f"the {len(law.runs)} runs are too few to test how the {law.spec.name} law extrapolates "
            f"({n_splits} leave-future-out split(s), at least 2 needed)"
        )
    if drift > TRUSTED_DRIFT:
        return (
            f"fitted to its smaller runs, the {law.spec.name} law drifted from the larger ones by {drift:.3f} log loss "
            f"per decade of (N, D) (leave-future-out median; trusted up to {TRUSTED_DRIFT:g})"
        )
    return None


def _shape_misfit(found: Misfit) -> bool:
    """Whether a fired finding is about the law's shape, not one run far off alone (which a plan need not avoid)."""
    return any(f.fires and not f.one_run for f in found.findings)


def _reasons(fit: Fit | AveragedFit, points: pd.DataFrame) -> tuple[list[str], float, str]:
    """Why the law is in doubt (none: it is not), the smallest N the plan keeps (0: any) and what that N is."""
    reasons, smallest, source = [], 0.0, "the runs' median"
    weights = law_weights(fit)
    if len(weights) > 1 and max(weights.values()) < SPREAD_WEIGHT:
        spread = join_names(f"{name} {w:.2f}" for name, w in sorted(weights.items(), key=lambda kv: -kv[1]))
        reasons.append(f"no law carries {SPREAD_WEIGHT:g} of the weight ({spread})")
    disagree = _disagreement(fit, points)
    if disagree:
        reasons.append(disagree)
    try:
        found = fit.misfit()
    except BayescaleError:  # too few runs to test: that is not a misfit
        found = None
    if found is not None and found.misfits:
        reasons.append("the misfit check fires: " + found.messages[0])
        if _shape_misfit(found):
            median, target = float(np.median(fit.runs["N"])), float(points["N"].min())
            smallest, source = (median, source) if median <= target else (target, "the target's N")
    untrusted = _untrusted(fit)
    if untrusted:
        reasons.append(untrusted)
    return reasons, smallest, source


def decide(fit: Fit | AveragedFit, points: pd.DataFrame, mode: str) -> Robust:
    """Whether to plan robustly for the target at ``points`` (``N, D, ratio``), by ``mode``."""
    if mode not in ROBUST_MODES:
        raise BayescaleError(f"robust must be one of {list(ROBUST_MODES)}, got {mode!r}")
    ratio = points["D"].to_numpy(float) / points["N"].to_numpy(float)
    low, high = float(ratio.min()) / RATIO_FACTOR, float(ratio.max()) * RATIO_FACTOR
    if mode == "off":
        return Robust(False, (), low, high)
    reasons, smallest, source = (list(FORCED), 0.0, "") if mode == "on" else _reasons(fit, points)
    return Robust(bool(reasons), tuple(reasons), low, high, smallest, source)


def keep(robust: Robust, pool: pd.DataFrame, affordable: np.ndarray | None = None) -> tuple[np.ndarray, Robust]:
    """Which candidates of ``pool`` a robust plan keeps: those in its ratio range (and of N at least its
    ``smallest_N``, when any of those is ``affordable``), else those at the pool's ratio nearest to it (all
    of them when the plan is not robust); and the plan as kept (``unmet_N`` set where the size could not be)."""
    if not robust.active or not len(pool):
        return np.ones(len(pool), dtype=bool), robust
    lr = np.log10(pool["D"].to_numpy(float) / pool["N"].to_numpy(float))
    lo, hi = np.log10(robust.low), np.log10(robust.high)
    inside = (lr >= lo - 1e-9) & (lr <= hi + 1e-9)
    large = pool["N"].to_numpy(float) >= robust.smallest_N * (1 - 1e-9)
    can_buy = np.ones(len(pool), dtype=bool) if affordable is None else np.asarray(affordable, dtype=bool)
    if (inside & large & can_buy).any():
        return inside & large, robust
    unmet = dataclasses.replace(robust, smallest_N=0.0, unmet_N=robust.smallest_N) if robust.smallest_N else robust
    if inside.any():
        return inside, unmet
    gap = np.maximum(lo - lr, lr - hi)
    return gap <= gap.min() + 0.05, unmet


__all__ = ["DISCREPANCY_FACTOR", "RATIO_FACTOR", "ROBUST_MODES", "SPREAD_WEIGHT", "Robust", "decide", "keep"]
