"""Predictive distributions of learning curves and the scores of their extrapolations.

Every predictor of :mod:`bayescale.curves` (a posterior, a stacked ensemble, a least-squares
fit) returns a :class:`Predictive` of log loss at some points, with ``median()``,
``log_density()`` and ``cdf()``; :func:`rmsle`, :func:`mlpd`, :func:`coverage` and :func:`msce`
score it on held-out points. Re-exported by :mod:`bayescale.curves`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.special
import scipy.stats

from .checks import coverage as interval_coverage
from .errors import BayescaleError

#: Nominal levels of the central intervals scored by :func:`msce`.
LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


# ---------------------------------------------------------------- predictive


def _col(s: np.ndarray) -> np.ndarray:
    return s[:, None] if s.ndim == 1 else s


def drift_sigma(sigma: np.ndarray, x: Any, x_ref: float, drift: float, seed: int = 0) -> np.ndarray:
    """Noise scale per (draw, point) with an extrapolation drift.

    Each draw gets ``tau ~ HalfNormal(drift)`` and the point's log loss moves by
    ``tau * z * decades`` (``z`` standard normal, ``decades = max(0, log10(x / x_ref))``), which
    widens the Normal to ``sqrt(sigma^2 + (tau decades)^2)``. The fitted points cannot inform
    ``drift`` (they are all inside their own range): :func:`calibrate_drift` picks it on a
    split of the fitted points.
    """
    sigma = np.asarray(sigma, dtype=np.float64).reshape(-1)
    dec = np.maximum(0.0, np.log10(np.asarray(x, dtype=np.float64).reshape(-1) / x_ref))
    if drift <= 0:
        return np.broadcast_to(sigma[:, None], (sigma.size, dec.size)).copy()
    tau = np.abs(np.random.default_rng(seed).standard_normal(sigma.size)) * drift
    return np.sqrt(sigma[:, None] ** 2 + (tau[:, None] * dec[None, :]) ** 2)


@dataclass(frozen=True)
class Predictive:
    """A predictive distribution of log loss at some points: a weighted mixture of
    location-scale components, ``log y ~ sum_k w_k mean_s F(mu_ks, sigma_ks)``.

    ``mu[k]`` has shape (draws, points) and ``sigma[k]`` shape (draws,); ``family`` is
    ``"Normal"`` or ``"StudentT"`` (with ``df``); ``sigma[k]`` may also have shape
    (draws, points), e.g. with an extrapolation drift. A least-squares fit is one component
    with one draw.
    """

    mu: tuple[np.ndarray, ...]
    sigma: tuple[np.ndarray, ...]
    weights: np.ndarray
    family: str = "Normal"
    df: float = 4.0

    def _dist(self) -> Any:
        return scipy.stats.norm if self.family == "Normal" else scipy.stats.t(self.df)

    def log_density(self, y: Any) -> np.ndarray:
        """Log predictive density of the log losses ``log(y)`` at each point."""
        ly = np.log(np.asarray(y, dtype=np.float64))
        d = self._dist()
        out = []
        for w, mu, s in zip(self.weights, self.mu, self.sigma):
            if w <= 0:
                continue
            s = _col(s)
            z = (ly[None, :] - mu) / s
            lp = d.logpdf(z) - np.log(s)
            out.append(math.log(w) + scipy.special.logsumexp(lp, axis=0) - math.log(mu.shape[0]))
        return scipy.special.logsumexp(np.stack(out), axis=0)

    def cdf(self, y: Any) -> np.ndarray:
        """``P(Y <= y)`` at each point (the PIT of an observation)."""
        ly = np.log(np.asarray(y, dtype=np.float64))
        return self._cdf_log(ly)

    def _cdf_log(self, ly: np.ndarray) -> np.ndarray:
        d = self._dist()
        total = np.zeros(ly.shape[-1])
        for w, mu, s in zip(self.weights, self.mu, self.sigma):
            if w > 0:
                total = total + w * d.cdf((ly[None, :] - mu) / _col(s)).mean(axis=0)
        return total

    def quantile(self, q: float) -> np.ndarray:
        """The ``q`` quantile of the loss at each point (by bisection on the mixture CDF)."""
        los = [np.min(mu - 10 * _col(s), axis=0) for w, mu, s in zip(self.weights, self.mu, self.sigma) if w > 0]
        his = [np.max(mu + 10 * _col(s), axis=0) for w, mu, s in zip(self.weights, self.mu, self.sigma) if w > 0]
        # Losses between e^-50 and e^50: a wide Laplace draw cannot push the bracket to overflow.
        lo, hi = np.clip(np.min(los, axis=0), -50.0, 50.0), np.clip(np.max(his, axis=0), -50.0, 50.0)
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            below = self._cdf_log(mid) < q
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return np.exp(0.5 * (lo + hi))

    def median(self) -> np.ndarray:
        """The predictive median of the loss at each point."""
        return self.quantile(0.5)

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        """The central ``level`` interval (lower, upper) of the loss at each point."""
        return self.quantile(0.5 - level / 2), self.quantile(0.5 + level / 2)


def mixture(preds: Sequence[Predictive], weights: Sequence[float]) -> Predictive:
    """The mixture ``sum_k weights[k] * preds[k]`` of predictives at the same points."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(preds),) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
        raise BayescaleError(f"mixture weights must be {len(preds)} non-negative numbers summing to 1, got {list(w)}")
    if len({(p.family, p.df) for p in preds}) != 1:
        raise BayescaleError("mixture: components must share one noise family")
    mu, sigma, ww = [], [], []
    for p, wk in zip(preds, w):
        for m, s, wj in zip(p.mu, p.sigma, p.weights):
            mu.append(m)
            sigma.append(s)
            ww.append(wk * wj)
    return Predictive(tuple(mu), tuple(sigma), np.asarray(ww), preds[0].family, preds[0].df)


# ------------------------------------------------------------------ metrics


def rmsle(median: Any, y: Any) -> float:
    """Root mean squared log error ``sqrt(mean((log median - log y)^2))``.

    Examples
    --------
    >>> round(rmsle([1.0, math.e], [1.0, 1.0]), 6)
    0.707107
    """
    m, y = np.asarray(median, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.sqrt(np.mean((np.log(m) - np.log(y)) ** 2)))


def mlpd(log_densities: Any) -> float:
    """Mean log predictive density: the mean of per-point log densities."""
    return float(np.mean(np.asarray(log_densities, dtype=np.float64)))


def coverage(pits: Sequence[Any], levels: Sequence[float] = LEVELS) -> np.ndarray:
    """Empirical coverage of central intervals, from the PIT values ``F(y)`` of the targets.

    A target lies in the central ``p`` interval when ``|F(y) - 1/2| <= p/2``
    (:func:`bayescale.checks.coverage`). ``pits`` is one array per curve; each curve's fraction
    counts once (curves weigh equally, whatever their number of targets).

    Examples
    --------
    >>> coverage([[0.5, 0.99], [0.2]], levels=(0.5, 0.9)).tolist()
    [0.25, 0.75]
    """
    levels = np.asarray(levels, dtype=np.float64)
    per_curve = [
        [fraction[p] for p in levels] for fraction in (interval_coverage(u, levels) for u in pits if np.size(u))
    ]
    if not per_curve:
        raise BayescaleError("coverage: no targets")
    return np.mean(per_curve, axis=0)


def msce(pits: Sequence[Any], levels: Sequence[float] = LEVELS) -> float:
    """Mean squared calibration error: ``mean_p (coverage_p - p)^2`` over the nominal levels.

    Examples
    --------
    >>> round(msce([[0.5, 0.99], [0.2]], levels=(0.5, 0.9)), 6)
    0.0425
    """
    cov = coverage(pits, levels)
    return float(np.mean((cov - np.asarray(levels, dtype=np.float64)) ** 2))


__all__ = ["LEVELS", "Predictive", "coverage", "drift_sigma", "mixture", "mlpd", "msce", "rmsle"]
