"""Stacking and drift calibration for learning-curve fits: how :mod:`bayescale.curves` weighs
several laws and widens their extrapolations. Re-exported by :mod:`bayescale.curves`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.optimize
import scipy.special

from ._curve_scoring import Predictive, mixture, mlpd
from .errors import BayescaleError

if TYPE_CHECKING:
    from ._curve_fit import Curve, CurvePosterior

#: Drift scales (per decade of x, in log loss) that :func:`calibrate_drift` chooses from.
DRIFT_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def stacking_weights(elpd: np.ndarray) -> np.ndarray:
    """LOO stacking weights (Yao et al. 2018) from pointwise LOO densities ``elpd`` (point, model).

    Maximises ``sum_i log sum_k w_k exp(elpd[i, k])`` over the simplex.

    Examples
    --------
    >>> w = stacking_weights(np.log(np.array([[0.9, 0.1], [0.8, 0.2]])))
    >>> bool(w[0] > 0.99)
    True
    """
    elpd = np.asarray(elpd, dtype=np.float64)
    m = elpd.shape[1]
    if m == 1:
        return np.ones(1)
    shift = elpd.max(axis=1, keepdims=True)
    dens = np.exp(elpd - shift)

    def obj(a: np.ndarray) -> tuple[float, np.ndarray]:
        w = scipy.special.softmax(np.append(a, 0.0))
        mix = dens @ w
        val = -np.sum(np.log(mix))
        gw = -(dens / mix[:, None]).sum(axis=0)
        ga = w * (gw - gw @ w)
        return float(val), ga[:-1]

    res = scipy.optimize.minimize(obj, np.zeros(m - 1), jac=True, method="L-BFGS-B")
    return scipy.special.softmax(np.append(res.x, 0.0))


def stack(posteriors: Mapping[str, CurvePosterior]) -> np.ndarray:
    """LOO stacking weights of several laws for every curve: shape (curve, law), rows sum to 1.

    All posteriors must be fits of the same curves.
    """
    names = list(posteriors)
    loos = {n: posteriors[n].loo() for n in names}
    K = len(next(iter(posteriors.values())).curves)
    return np.stack([stacking_weights(np.stack([loos[n][k] for n in names], axis=1)) for k in range(K)])


def stacked_predictive(
    posteriors: Mapping[str, CurvePosterior], weights: np.ndarray, k: int, x: Any = None, drift: float = 0.0
) -> Predictive:
    """The stacked predictive of curve ``k``: the mixture of each law's predictive with ``weights[k]``."""
    preds = [p.predictive(k, x, drift) for p in posteriors.values()]
    return mixture(preds, weights[k] / weights[k].sum())


def lfo_weights(
    posteriors: Mapping[str, CurvePosterior], drift: float | Mapping[str, float] = 0.0, *, pool: str = "group"
) -> np.ndarray:
    """Leave-future-out stacking weights: how well each law predicted the *later* fitted points.

    ``posteriors`` are fits of curves split by :func:`split_context` (the first 70% of each
    curve's fitted points fitted, the rest as ``x_target``/``y_target``); ``drift`` is one drift
    per decade, or one per law. The weights maximise the stacked log density of the held-out
    later points, the same objective as :func:`stacking_weights` but scored on extrapolation
    rather than interpolation (LOO rewards a law that fits its own context; extrapolating is
    what the weights are for). With ``pool="group"`` curves of the same non-empty ``group``
    share one weight vector fitted to all their held-out points (a single curve's tail has few
    points); ``pool="curve"`` fits each curve alone. Returns (curve, law) weights.
    """
    if pool not in ("group", "curve"):
        raise BayescaleError(f"pool must be 'group' or 'curve', got {pool!r}")
    names = list(posteriors)
    d = {n: float(drift[n]) if isinstance(drift, Mapping) else float(drift) for n in names}
    curves = next(iter(posteriors.values())).curves
    elpd = [
        np.stack([posteriors[n].predictive(k, drift=d[n]).log_density(c.y_target) for n in names], axis=1)
        for k, c in enumerate(curves)
    ]
    keys = [c.group if pool == "group" and c.group else f"\0{k}" for k, c in enumerate(curves)]
    by_key = {
        key: stacking_weights(np.concatenate([e for e, kk in zip(elpd, keys) if kk == key]))
        for key in dict.fromkeys(keys)
    }
    return np.stack([by_key[key] for key in keys])


def calibrate_drift(
    curves: Sequence[Curve], predict: Any, grid: Sequence[float] = DRIFT_GRID
) -> tuple[float, dict[float, float]]:
    """Pick the drift scale that maximises the mean log predictive density of held-out
    fitted points (leave-future-out inside the fitted range, so the targets are never used).

    ``curves`` are the split curves (:func:`split_context`) and ``predict(k, drift)`` returns the
    :class:`Predictive` of curve ``k``'s held-out points. Returns the best scale and the score
    of each.
    """
    scores = {}
    for d in grid:
        scores[float(d)] = float(np.mean([mlpd(predict(k, d).log_density(c.y_target)) for k, c in enumerate(curves)]))
    best = max(scores, key=lambda d: scores[d])
    return best, scores


__all__ = ["DRIFT_GRID", "calibrate_drift", "lfo_weights", "stack", "stacked_predictive", "stacking_weights"]
