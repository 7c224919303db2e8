"""One tested pattern of the misfit check (:mod:`bayescale.misfit`): the :class:`Finding` it reports, and
the test of a pattern the law cannot express (a unit vector over the runs, orthogonal to what it can): the
residuals' coefficient on it per draw, its effect on the runs at the pattern's end, in words."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._misfit_words import message as _message
from ._misfit_words import where as _where

#: Fraction of runs, by compute (or by the input of a trend), that a finding describes.
TOP_FRACTION = 0.2
#: Values of an input (in log) this close count as one: a sweep's design ratio of 10 tokens per parameter comes
#: out as 10.01-10.03 once N and D are rounded to real shapes and batches, and is still one ratio.
SAME_VALUE = 0.005


@dataclass(frozen=True)
class Finding:
    """One tested pattern in the residuals.

    ``effect``, ``lower`` and ``upper`` are relative differences in loss (``-0.012`` = runs sit 1.2%
    below the law) on the runs named by ``where``: posterior median and central ``level`` interval.
    ``effect_low`` is the same for the other end of the range (trends and curvature).
    """

    kind: str  # "largest", "trend", "curvature", "groups", "neighbours", "direction" or "outlier"
    input: str  # "C", "N", "D" or "D/N" ("run" for an outlier)
    where: str  # the runs the effect is about, in words
    effect: float
    lower: float
    upper: float
    effect_low: float
    z: float
    p_value: float
    threshold: float  # p_value below this is significant
    significant: bool
    fires: bool  # significant and |effect| >= min_effect
    message: str
    carried_by: str = ""  # a fired pattern that one run far off carries alone: that run, in words

    @property
    def one_run(self) -> bool:
        """Whether one run carries it (an outlier, or a pattern that run alone makes): not the law's shape."""
        return self.kind == "outlier" or bool(self.carried_by)

    def to_dict(self) -> dict[str, Any]:
        return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in self.__dict__.items()}


def ends(x: np.ndarray, same: float = SAME_VALUE) -> tuple[np.ndarray, np.ndarray]:
    """Runs in the top and bottom fifth of ``x`` (at least two each; runs within ``same`` of the fifth's edge
    kept with it)."""
    n = x.size
    k = max(2, int(round(TOP_FRACTION * n)))
    srt = np.sort(x)
    return x >= srt[-k] - same, x <= srt[k - 1] + same


def value_groups(x: np.ndarray) -> np.ndarray:
    """A group label per run: sorted values of ``x`` (log) within :data:`SAME_VALUE` of their group's first
    value share it, so one design value with rounding scatter is one group, and a dense range of values is
    not chained into one."""
    order = np.argsort(x, kind="stable")
    labels = np.empty(x.size, dtype=int)
    group, start = -1, -np.inf
    for i in order:
        if x[i] - start > SAME_VALUE:
            group, start = group + 1, x[i]
        labels[i] = group
    return labels


def finding(
    kind: str,
    name: str,
    u: np.ndarray,
    resid: np.ndarray,
    sd: np.ndarray,
    rng: Any,
    logs: dict,
    level: float,
    thr: float,
    floor: float,
) -> Finding:
    # Coefficient of the unit-norm added term, per draw: the draw's residuals projected on it,
    # plus the noise's sampling error of that projection (sd per draw).
    g = resid @ u + sd * rng.standard_normal(sd.size)
    m, s = float(g.mean()), float(g.std())
    zstat = m / s if s > 0 else math.inf * np.sign(m)
    p = float(math.erfc(abs(zstat) / math.sqrt(2)))
    x = logs["C"] if kind == "largest" else logs[name]
    hi, lo = ends(x, 1e-9) if kind == "largest" else ends(x)  # "largest" describes exactly the runs it tests
    if kind == "largest":
        lo = ~hi
    eff = np.expm1(u[hi].mean() * g)
    eff_lo = float(np.median(np.expm1(u[lo].mean() * g))) if lo.any() else math.nan  # tied runs: no lower end
    q = (1 - level) / 2
    med, a, b = (float(v) for v in np.quantile(eff, [0.5, q, 1 - q]))
    fires = p < thr and abs(med) >= floor
    where = _where(kind, name, hi, x)
    msg = _message(kind, name, where, med, a, b, eff_lo, level, fires)
    return Finding(kind, name, where, med, a, b, eff_lo, float(zstat), p, float(thr), bool(p < thr), bool(fires), msg)
