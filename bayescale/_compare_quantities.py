"""The numbers a recipe comparison reports, as posterior draws (:mod:`bayescale.comparison`).

Everything here takes per-recipe fits (:class:`~bayescale.Fit` objects of the base law, one per
recipe, drawn from one joint posterior so they align draw by draw) and returns arrays shaped
(draw, ...). The compute-optimal loss comes from :func:`bayescale.frontier.compute_optimal`;
the extrapolation drift is added as :meth:`bayescale.Fit.log_loss` adds it, ``drift * distance``
from the recipe's own runs (at each draw's own compute-optimal allocation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import BayescaleError
from .frontier import closed_form, compute_optimal
from .inference import Fit

#: Multipliers are searched for over this range (a draw outside it is clipped and counted).
K_RANGE = (1e-4, 1e4)
#: Points per decade of the grid a multiplier is read off (log-log interpolation between them).
PER_DECADE = 12
#: A multiplier that changes by less than this factor over the compute levels is "roughly constant".
TREND_TOLERANCE = 1.1


def frontier_log_loss(fit: Fit, budgets: Sequence[float]) -> np.ndarray:
    """Log compute-optimal loss per draw at each budget, shape (draw, budget), with the drift at
    each draw's optimal allocation's distance from the recipe's runs (:func:`compute_optimal`)."""
    C = np.asarray(budgets, dtype=float)
    return np.log(compute_optimal(fit, C)["loss_opt"].values.reshape(-1, C.size))


def point_log_loss(fit: Fit, points: pd.DataFrame) -> np.ndarray:
    """Log loss per draw at (N, D) points, shape (draw, point), drift included."""
    return fit.log_loss(points).reshape(-1, len(points))


def invert(curve: np.ndarray, grid: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per draw, the first grid value at which a decreasing ``curve`` (draw, grid) falls to
    ``level`` (draw,), interpolated in log grid; and where no grid value brackets it, the edge
    (flagged ``True``)."""
    below = curve <= level[:, None]
    idx = np.argmax(below, axis=1)
    never = ~below.any(axis=1)
    first = below[:, 0]
    rows = np.arange(curve.shape[0])
    j = np.clip(idx, 1, grid.size - 1)
    y0, y1 = curve[rows, j - 1], curve[rows, j]
    lg = np.log(grid)
    t = np.where(y0 != y1, (y0 - level) / np.where(y0 != y1, y0 - y1, 1.0), 0.0)
    out = np.exp(lg[j - 1] + np.clip(t, 0.0, 1.0) * (lg[j] - lg[j - 1]))
    out = np.where(never, grid[-1], np.where(first, grid[0], out))
    return out, never | first


def _ratio_grid() -> np.ndarray:
    lo, hi = np.log10(K_RANGE[0]), np.log10(K_RANGE[1])
    return np.logspace(lo, hi, int(round((hi - lo) * PER_DECADE)) + 1)


def _base_curves(base: Fit, budgets: np.ndarray) -> np.ndarray:
    """The baseline's log compute-optimal loss at ``budgets`` (level, ratio), shape (draw, level, ratio).

    Where the law has no closed-form optimum each budget is a numerical search, so the curve is
    searched once on a lattice of :data:`PER_DECADE` budgets per decade spanning every level's
    range and read off it linearly in log compute (the grid's own resolution); with a closed form
    every budget is exact."""
    if closed_form(base):
        return np.stack([frontier_log_loss(base, row) for row in budgets], axis=1)
    step = math.log(10.0) / PER_DECADE
    lo = math.log(budgets.min())
    n = int(math.ceil((math.log(budgets.max()) - lo) / step)) + 1
    curve = frontier_log_loss(base, np.exp(lo + step * np.arange(n)))
    x = (np.log(budgets) - lo) / step
    j = np.clip(np.floor(x).astype(int), 0, n - 2)
    w = x - j
    return curve[:, j] * (1.0 - w) + curve[:, j + 1] * w


def multiplier_at_compute(base: Fit, other: Fit, levels: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Draws of the effective compute multiplier of ``other`` over ``base`` at each compute level
    ``C``: ``k`` with ``L*_base(k C) = L*_other(C)``, ``L*`` the compute-optimal loss. Returns
    ``k`` (draw, level) and whether each draw fell outside :data:`K_RANGE` (clipped)."""
    ratios = _ratio_grid()
    out, clipped = [], []
    target = frontier_log_loss(other, levels)
    curves = _base_curves(base, np.outer(np.asarray(levels, dtype=float), ratios))
    for i in range(len(levels)):
        k, edge = invert(curves[:, i, :], ratios, target[:, i])
        out.append(k)
        clipped.append(edge)
    return np.stack(out, axis=1), np.stack(clipped, axis=1)


def multiplier_at_point(base: Fit, other: Fit, N: float, D: float) -> tuple[np.ndarray, np.ndarray]:
    """Draws of the multiplier at a model size and token count: ``k`` with
    ``L_base(sqrt(k) N, sqrt(k) D) = L_other(N, D)`` (``k`` times the compute at the point's
    tokens-per-parameter ratio). Returns ``k`` (draw, 1) and the clipped flags."""
    ratios = _ratio_grid()
    s = np.sqrt(ratios)
    curve = point_log_loss(base, pd.DataFrame({"N": N * s, "D": D * s}))
    level = point_log_loss(other, pd.DataFrame({"N": [N], "D": [D]}))[:, 0]
    k, edge = invert(curve, ratios, level)
    return k[:, None], edge[:, None]


def crossings(diff: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per draw, whether the loss difference ``diff`` (draw, grid) changes sign on ``grid``, and
    the last such crossing (interpolated in log grid; NaN where it does not cross)."""
    sign = np.sign(diff)
    change = sign[:, 1:] * sign[:, :-1] < 0
    crosses = change.any(axis=1)
    last = change.shape[1] - 1 - np.argmax(change[:, ::-1], axis=1)
    rows = np.arange(diff.shape[0])
    y0, y1 = diff[rows, last], diff[rows, last + 1]
    t = np.where(y0 != y1, y0 / np.where(y0 != y1, y0 - y1, 1.0), 0.0)
    lg = np.log(grid)
    where = np.exp(lg[last] + np.clip(t, 0, 1) * (lg[last + 1] - lg[last]))
    return crosses, np.where(crosses, where, np.nan)


def crossing_location(diff: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Per draw, where the loss difference ``diff`` (draw, grid) changes sign for the last time on
    ``grid``. A draw that keeps one sign throughout crosses outside the grid: beyond its end
    (``inf``) if it keeps the sign the crossing draws (most of them) start from, so its crossing
    is still ahead; before its start (``0``) if it keeps the sign they end in, so it has crossed
    already. All NaN where no draw crosses (no direction to place a crossing in).

    Every draw has a place, so quantiles over all draws are the crossing's posterior. A median of
    the crossing draws alone is the median *given* a crossing on the grid: pulled towards the
    grid's start whenever many draws cross only beyond its end (issue 17's crossover worlds)."""
    crosses, where = crossings(diff, grid)
    if not crosses.any():
        return np.full(diff.shape[0], np.nan)
    start = np.sign(diff[:, 0])
    before = np.sign(np.sum(start[crosses])) or np.sign(np.median(diff[:, 0]))
    return np.where(crosses, where, np.where(start == before, np.inf, 0.0))


def location_interval(where: np.ndarray, ci_prob: float) -> tuple[float, float, float]:
    """Median and equal-tailed ``ci_prob`` interval of crossing locations that may be ``0`` (before
    the grid) or ``inf`` (beyond it): order statistics, so an open end stays open."""
    lo, med, hi = np.quantile(
        np.asarray(where, float), [(1 - ci_prob) / 2, 0.5, (1 + ci_prob) / 2], method="inverted_cdf"
    )
    return float(med), float(lo), float(hi)


def regret(losses: np.ndarray) -> np.ndarray:
    """Expected selection regret of picking each option: ``E[L_i - min_j L_j]`` over draws;
    ``losses`` (option, draw)."""
    return np.mean(losses - losses.min(axis=0, keepdims=True), axis=1)


def interval(x: np.ndarray, ci_prob: float) -> tuple[float, float, float]:
    """Median and equal-tailed ``ci_prob`` interval of draws (NaN draws left out)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if not x.size:
        return (float("nan"),) * 3
    lo, med, hi = np.quantile(x, [(1 - ci_prob) / 2, 0.5, (1 + ci_prob) / 2])
    return float(med), float(lo), float(hi)


def trend_words(levels: Sequence[float], medians: Sequence[float]) -> str:
    """Does the advantage grow or shrink with scale? Words from the multiplier's medians at
    increasing compute: within 10% of each other is "roughly constant"; otherwise the gap
    (``|log k|``, an advantage either way) widens or narrows."""
    m = np.asarray(medians, dtype=float)
    if m.size < 2 or not np.all(np.isfinite(m)) or np.any(m <= 0):
        return ""
    if 1 / TREND_TOLERANCE < m[-1] / m[0] < TREND_TOLERANCE:
        return "roughly constant with scale"
    if (m[0] - 1) * (m[-1] - 1) < 0:  # the medians cross 1: the advantage changes hands, it does not narrow
        return "the advantage changes hands with scale"
    return "the gap widens with scale" if abs(np.log(m[-1])) > abs(np.log(m[0])) else "the gap narrows with scale"


def check_levels(levels: Any) -> np.ndarray:
    """Compute levels as a positive finite 1-D array."""
    x = np.atleast_1d(np.asarray(levels, dtype=float))
    if x.ndim != 1 or not x.size or not np.all(np.isfinite(x) & (x > 0)):
        raise BayescaleError(f"compute levels must be positive finite FLOP counts, got {levels!r}")
    return x


def align(fits: Mapping[str, Fit]) -> None:
    """Refuse per-recipe fits that do not come from one posterior (different draw counts)."""
    sizes = {name: f.posterior.sizes["chain"] * f.posterior.sizes["draw"] for name, f in fits.items()}
    if len(set(sizes.values())) != 1:
        raise BayescaleError(f"recipe fits must share one posterior's draws; draws per recipe: {sizes}")


__all__ = [
    "K_RANGE",
    "align",
    "check_levels",
    "crossing_location",
    "crossings",
    "frontier_log_loss",
    "interval",
    "invert",
    "location_interval",
    "multiplier_at_compute",
    "multiplier_at_point",
    "point_log_loss",
    "regret",
    "trend_words",
]
