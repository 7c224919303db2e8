"""Learning curves: fit one-dimensional laws to many curves, stack them, score extrapolations.

A learning curve is loss against one variable ``x`` (examples or tokens seen, model
width, ...). This module fits the one-dimensional laws of the extrapolation literature
(``m1``-``m4`` of Alabdulmohsin et al. 2022, ``bnsl1``/``bnsl2`` of Caballero et al.
2022; see :data:`bayescale.laws.CURVE_LAWS`) to the first part of each curve and
predicts the rest:

* :func:`fit_curves` fits one law to many curves at once with NUTS (batched: one compiled
  sampler runs every curve's chains side by side), with the Laplace approximation, or with
  ``method="psis"``: the Laplace approximation corrected by adaptive, Pareto-smoothed
  importance sampling, which follows the skewed, ridge-shaped posteriors of these laws far
  better than the Gaussian does at a small extra cost, and reports each curve's Pareto k. Each
  curve is normalised so its last fitted point sits at ``(x, loss) = (1, 1)``, which is what
  the laws' default priors assume. With ``hierarchical=True`` the curves of one group share
  hyperpriors on the exponents (``log c_k ~ Normal(mu, tau)``), so a curve with few points
  borrows strength from its family.
* :func:`fit_ensemble` is the recommended default: every law (fitted with ``method="psis"``), mixed with leave-future-out
  stacking weights (:func:`lfo_weights`: how well each law fitted to the early part of a
  curve predicted its later fitted points) and widened by a per-law extrapolation drift chosen
  the same way; :func:`stack` is classic LOO stacking (Yao et al. 2018) on the fitted points.
* :func:`least_squares` fits the same laws by least squares, as the papers do, for comparison
  (:mod:`bayescale._curve_baselines`).
* :func:`rmsle`, :func:`mlpd`, :func:`coverage` and :func:`msce` score predictions of held-out
  points; every predictor returns a :class:`Predictive` with ``median()``, ``log_density()``
  and ``cdf()`` (:mod:`bayescale._curve_scoring`).

The model and the samplers are bayescale's own (:mod:`bayescale.model`, :mod:`bayescale._engine`):
one :class:`~bayescale.model.Posterior` holds a unit of curves (one curve, or a group sharing
exponents), and the units are optimised and sampled side by side.

Densities are of the *log* loss (a density of the loss itself differs by ``-log y`` per
point, the same for every method).

Examples
--------
>>> import numpy as np
>>> import bayescale as bs
>>> x = np.geomspace(1e3, 1e6, 12); y = 0.2 + 3.0 * x**-0.3
>>> curve = bs.curves.Curve("toy", x[:8], y[:8], x[8:], y[8:])
>>> post = bs.curves.fit_curves([curve], "m2", method="laplace")   # doctest: +SKIP
>>> pred = post.predictive(0)                                       # doctest: +SKIP
>>> bs.curves.rmsle(pred.median(), curve.y_target) < 0.01            # doctest: +SKIP
True
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _importance
from ._curve_baselines import LS_SIGMA_FLOOR, LSFit, least_squares
from ._curve_fit import (
    CURVE_LIKELIHOOD,
    EXPONENTS,
    LAPLACE_MAX_SD,
    LAWS,
    MAP_CHUNK,
    METHODS,
    PSIS_K_MAX,
    Curve,
    CurvePosterior,
    curve_spec,
    fit_curves,
)
from ._curve_scoring import LEVELS, Predictive, coverage, drift_sigma, mixture, mlpd, msce, rmsle
from ._curve_stacking import DRIFT_GRID, calibrate_drift, lfo_weights, stack, stacked_predictive, stacking_weights
from .errors import BayescaleError, ConvergenceWarning
from .model import TAU_SCALE

# ------------------------------------------------------------------ ensembles


@dataclass
class CurveEnsemble:
    """bayescale's recommended extrapolation of learning curves (:func:`fit_ensemble`): every
    law fitted to every curve, mixed with leave-future-out stacking weights, each law widened
    by its own extrapolation drift.

    ``weights`` is (curve, law) in the order of ``posteriors``; ``drift`` maps each law to its
    drift per decade.
    """

    curves: list[Curve]
    posteriors: dict[str, CurvePosterior]
    weights: np.ndarray
    drift: dict[str, float]
    how: dict[str, Any]

    def predictive(self, k: int, x: Any = None) -> Predictive:
        """The mixture predictive of curve ``k`` at ``x`` (default: its targets)."""
        preds = [p.predictive(k, x, self.drift[n]) for n, p in self.posteriors.items()]
        w = self.weights[k]
        return mixture(preds, w / w.sum())

    def mean_weights(self) -> dict[str, float]:
        """Each law's weight averaged over curves."""
        return dict(zip(self.posteriors, self.weights.mean(axis=0).round(4).tolist()))


def fit_ensemble(
    curves: Sequence[Curve],
    laws: Sequence[str] = LAWS,
    *,
    method: str = "psis",
    weights: str = "lfo",
    drift: str | float = "auto",
    pool: str = "group",
    fraction: float = 0.7,
    seed: int = 0,
    **fit_kw: Any,
) -> CurveEnsemble:
    """Fit several laws to the curves and combine them for extrapolation.

    The targets are never used. The fitted points of each curve are split in time
    (:func:`split_context`, first ``fraction`` fitted); every law is fitted to the early part,
    which chooses each law's drift per decade (``drift="auto"``, :func:`calibrate_drift`) and
    the stacking weights (``weights="lfo"``, :func:`lfo_weights`: how well each law predicted
    the later points). Every law is then refitted to all the fitted points and the predictive
    is the weighted mixture. ``weights="loo"`` uses LOO stacking on the full fits instead (the
    classic choice, which rewards interpolation), ``"equal"`` a plain average; a number for
    ``drift`` fixes it for every law. A curve too short to split takes its group's weights
    (LOO weights when the group has no split curve). Extra keywords go to :func:`fit_curves`.

    ``method`` is how every law is fitted (:func:`fit_curves`): ``"psis"`` (default: the
    Laplace approximation corrected by importance sampling; one
    :class:`~bayescale.ConvergenceWarning` lists the laws and curves where it is unreliable),
    ``"laplace"`` (fastest, Gaussian) or ``"nuts"`` (the split fits then use Laplace).

    Examples
    --------
    >>> ens = fit_ensemble(curves, ("m2", "bnsl1"))                      # doctest: +SKIP
    >>> ens.predictive(0).interval(0.9), ens.mean_weights()              # doctest: +SKIP
    """
    curves = list(curves)
    laws = tuple(laws)
    if weights not in ("lfo", "loo", "equal"):
        raise BayescaleError(f"weights must be 'lfo', 'loo' or 'equal', got {weights!r}")
    if not (drift == "auto" or (isinstance(drift, (int, float)) and not isinstance(drift, bool) and drift >= 0)):
        raise BayescaleError(f"drift must be 'auto' or a number >= 0, got {drift!r}")
    if not laws:
        raise BayescaleError("fit_ensemble needs at least one law")
    t0 = time.perf_counter()
    split = [split_context(c, fraction) for c in curves]
    inner_idx = [k for k, c in enumerate(split) if c is not None]
    inner = [split[k] for k in inner_idx]
    need_inner = bool(inner) and (drift == "auto" or weights == "lfo")
    # The split fits are made like the full ones (NUTS excepted: Laplace, to keep the cost down).
    inner_method = "laplace" if method == "nuts" else method
    with warnings.catch_warnings():
        # The split fits only choose weights and drifts; their importance-sampling diagnostics
        # stay in ``diagnostics["pareto_k"]``, and the full fits below are reported once.
        warnings.simplefilter("ignore", ConvergenceWarning)
        inner_posts = (
            {law: fit_curves(inner, law, method=inner_method, seed=seed, **fit_kw) for law in laws}
            if need_inner
            else {}
        )
    if drift == "auto":
        dr = {
            law: calibrate_drift(inner, lambda k, d, p=p: p.predictive(k, drift=d))[0] if inner_posts else 0.0
            for law, p in inner_posts.items()
        }
        dr = {law: dr.get(law, 0.0) for law in laws}
    else:
        dr = {law: float(drift) for law in laws}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # one summary below instead of one per law
        posts = {law: fit_curves(curves, law, method=method, seed=seed, **fit_kw) for law in laws}
    if method == "psis":
        _warn_if_laws_unreliable(posts, len(curves))
    ens = combine(curves, posts, inner_posts, dr, weights=weights, pool=pool, fraction=fraction)
    ens.how.update(method=method, seconds=time.perf_counter() - t0)
    return ens


def _warn_if_laws_unreliable(posts: Mapping[str, CurvePosterior], n_curves: int) -> None:
    """One warning naming the laws whose importance sampling failed on some curves."""
    bad = {law: int(np.sum(p.diagnostics["pareto_k"] > _importance.K_MAX)) for law, p in posts.items()}
    bad = {law: n for law, n in bad.items() if n}
    if bad:
        warnings.warn(
            ConvergenceWarning(
                "importance sampling from the Laplace approximation is unreliable (Pareto k > "
                f"{_importance.K_MAX}) for {', '.join(f'{law} on {n} of {n_curves} curves' for law, n in bad.items())}; those laws' "
                "intervals are approximate (per-curve k: ens.posteriors[law].diagnostics['pareto_k']; method='nuts' samples them)"
            ),
            stacklevel=3,
        )


def combine(
    curves: Sequence[Curve],
    posteriors: Mapping[str, CurvePosterior],
    inner: Mapping[str, CurvePosterior],
    drift: Mapping[str, float],
    *,
    weights: str = "lfo",
    pool: str = "group",
    fraction: float = 0.7,
) -> CurveEnsemble:
    """The ensemble of fits already made: ``posteriors`` of ``curves`` and ``inner`` fits of
    their :func:`split_context` parts (the curves that could be split, in order), mixed with
    ``weights`` (``"lfo"``, ``"loo"`` or ``"equal"``) and per-law ``drift``; see :func:`fit_ensemble`."""
    curves = list(curves)
    laws = list(posteriors)
    if weights not in ("lfo", "loo", "equal"):
        raise BayescaleError(f"weights must be 'lfo', 'loo' or 'equal', got {weights!r}")
    split = [split_context(c, fraction) for c in curves]
    inner_idx = [k for k, c in enumerate(split) if c is not None]
    if weights == "equal" or len(laws) == 1:
        w = np.full((len(curves), len(laws)), 1.0 / len(laws))
    else:
        w = stack(posteriors)  # LOO weights: also the fallback for curves that cannot be split
        if weights == "lfo" and inner:
            w_in = lfo_weights({n: inner[n] for n in laws}, drift, pool=pool)
            for j, k in enumerate(inner_idx):
                w[k] = w_in[j]
            group_w = {curves[k].group: w_in[j] for j, k in enumerate(inner_idx) if curves[k].group}
            for k, c in enumerate(split):
                if c is None and pool == "group" and curves[k].group in group_w:
                    w[k] = group_w[curves[k].group]
    how = {"weights": weights, "pool": pool, "fraction": fraction, "split_curves": len(inner_idx)}
    return CurveEnsemble(curves, dict(posteriors), w, {n: float(drift[n]) for n in laws}, how)


def split_context(curve: Curve, fraction: float = 0.7, min_points: int = 3) -> Curve | None:
    """The curve's fitted points split in two: the first ``fraction`` (at least ``min_points``)
    fitted, the rest as targets; None when too short to leave a target."""
    n = curve.x.size
    order = np.argsort(curve.x)
    k = max(min_points, math.ceil(fraction * n))
    if k >= n:
        return None
    i, j = order[:k], order[k:]
    return Curve(curve.name, curve.x[i], curve.y[i], curve.x[j], curve.y[j], group=curve.group)


__all__ = [
    "CURVE_LIKELIHOOD",
    "LAPLACE_MAX_SD",
    "MAP_CHUNK",
    "METHODS",
    "PSIS_K_MAX",
    "CurveEnsemble",
    "combine",
    "fit_ensemble",
    "DRIFT_GRID",
    "EXPONENTS",
    "LAWS",
    "LEVELS",
    "LS_SIGMA_FLOOR",
    "TAU_SCALE",
    "Curve",
    "CurvePosterior",
    "LSFit",
    "Predictive",
    "calibrate_drift",
    "coverage",
    "curve_spec",
    "drift_sigma",
    "fit_curves",
    "least_squares",
    "mixture",
    "mlpd",
    "msce",
    "rmsle",
    "split_context",
    "stack",
    "stacked_predictive",
    "stacking_weights",
]
