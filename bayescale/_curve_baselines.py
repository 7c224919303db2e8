"""Least-squares fits of the curve laws, following the papers' recipes: the baselines the
Bayesian fits of :mod:`bayescale.curves` are compared with. Re-exported by :mod:`bayescale.curves`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.optimize
import scipy.special
import scipy.stats
from threadpoolctl import threadpool_limits

from ._curve_scoring import Predictive
from .errors import BayescaleError
from .laws import CURVE_LAWS, Law, get_law

if TYPE_CHECKING:
    from ._curve_fit import Curve

#: Floor on the residual scale of a least-squares fit (an interpolating fit has zero residuals).
LS_SIGMA_FLOOR = 1e-3


@dataclass(frozen=True)
class LSFit:
    """A least-squares point fit of a curve law (normalised units), with the residual
    scale ``sigma`` of log loss for a plug-in Normal predictive."""

    law: Law
    params: Mapping[str, float]
    sigma: float
    curve: Curve
    objective: float

    def predict(self, x: Any) -> np.ndarray:
        """The fitted loss at ``x`` (natural units)."""
        lx = np.log(np.asarray(x, dtype=np.float64).reshape(-1) / self.curve.x_ref)
        return np.exp(np.asarray(self.law.log_loss(dict(self.params), {"x": lx}, np)) + math.log(self.curve.y_ref))

    def predictive(self, x: Any = None) -> Predictive:
        """Plug-in predictive: ``log y ~ Normal(log fit, sigma)``."""
        x = self.curve.x_target if x is None else x
        return Predictive((np.log(self.predict(x))[None, :],), (np.array([self.sigma]),), np.ones(1))


def _lstsq(A: np.ndarray, b: np.ndarray, nonneg: Sequence[int] = ()) -> tuple[np.ndarray, float]:
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b))):
        return np.full(A.shape[1], np.nan), 1e30
    if nonneg:
        # Free columns enter twice, with opposite signs, so one NNLS solve handles the bounds.
        free = [j for j in range(A.shape[1]) if j not in nonneg]
        coef2, _ = scipy.optimize.nnls(np.concatenate([A, -A[:, free]], axis=1), b, maxiter=50 * A.shape[1])
        coef = coef2[: A.shape[1]].copy()
        coef[free] -= coef2[A.shape[1] :]
    else:
        coef = np.linalg.lstsq(A, b, rcond=None)[0]
    return coef, float(np.sum((A @ coef - b) ** 2))


# Each recipe: (law, log x, log y, y) in normalised units, seed -> (parameters, objective).


def _m1(law: Law, lx: np.ndarray, ly: np.ndarray, yn: np.ndarray, seed: int) -> tuple[dict, float]:
    coef, obj = _lstsq(np.stack([np.ones_like(lx), -lx], 1), ly)
    return {"b": math.exp(coef[0]), "c": coef[1]}, obj


def _m2(law: Law, lx: np.ndarray, ly: np.ndarray, yn: np.ndarray, seed: int) -> tuple[dict, float]:
    ones = np.ones_like(lx)

    def prof(E: float) -> tuple[float, np.ndarray]:
        return _lstsq(np.stack([ones, -lx], 1), np.log(yn - E))[::-1]

    grid = yn.min() * (1 - np.geomspace(1.0 - 1e-6, 1e-4, 60))
    vals = [prof(E)[0] for E in grid]
    i = int(np.argmin(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = scipy.optimize.minimize_scalar(lambda E: prof(E)[0], bounds=(lo, hi), method="bounded")
    E = float(res.x) if res.fun < vals[i] else float(grid[i])
    obj, coef = prof(E)
    return {"E": E, "b": math.exp(coef[0]), "c": coef[1]}, obj


def _m3(law: Law, lx: np.ndarray, ly: np.ndarray, yn: np.ndarray, seed: int) -> tuple[dict, float]:
    ones = np.ones_like(lx)

    def prof3(lg: float) -> tuple[float, np.ndarray]:
        return _lstsq(np.stack([ones, np.logaddexp(-lx, lg)], 1), ly, nonneg=(1,))[::-1]

    # g <= e^4: beyond it the curve is flat over the fitted range and b underflows.
    grid = np.linspace(-12, 4, 65)
    vals = [prof3(g)[0] for g in grid]
    i = int(np.argmin(vals))
    res = scipy.optimize.minimize_scalar(
        lambda g: prof3(g)[0], bounds=(grid[max(i - 1, 0)], grid[min(i + 1, 64)]), method="bounded"
    )
    lg = float(res.x) if res.fun < vals[i] else float(grid[i])
    obj, coef = prof3(lg)
    return {"b": math.exp(coef[0]), "g": math.exp(lg), "c": coef[1]}, obj


def _m4(law: Law, lx: np.ndarray, ly: np.ndarray, yn: np.ndarray, seed: int) -> tuple[dict, float]:
    ones = np.ones_like(lx)
    ymin, ymax = yn.min(), yn.max()

    def unpack(v: np.ndarray) -> tuple[float, float]:
        E = ymin * scipy.special.expit(np.clip(v[0], -30.0, 30.0))
        return E, ymax + math.exp(min(float(v[1]), 30.0))

    def prof4(v: np.ndarray) -> tuple[float, np.ndarray]:
        E, E0 = unpack(v)
        with np.errstate(divide="ignore", invalid="ignore"):
            A = np.stack([ones, -lx, np.log(E0 - yn)], 1)
            b = np.log(yn - E)
        return _lstsq(A, b, nonneg=(1, 2))[::-1]

    best = None
    for v0 in ([0.0, 0.0], [-3.0, 1.0], [2.0, -2.0]):
        res = scipy.optimize.minimize(
            lambda v: prof4(v)[0],
            np.array(v0),
            method="Nelder-Mead",
            options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 1000},
        )
        if best is None or res.fun < best.fun:
            best = res
    E, E0 = unpack(best.x)
    obj, coef = prof4(best.x)
    return {"E": E, "delta": E0 - E, "b": math.exp(coef[0]), "c": coef[1], "alpha": coef[2]}, obj


def _bnsl(law: Law, lx: np.ndarray, ly: np.ndarray, yn: np.ndarray, seed: int) -> tuple[dict, float]:
    pnames = list(law.params)

    def resid(v: np.ndarray) -> np.ndarray:
        p = dict(zip(pnames, np.exp(v)))
        return np.asarray(law.log_loss(p, {"x": lx}, np)) - ly

    def f(v: np.ndarray) -> float:
        r = resid(v)
        return float(np.sum(r * r)) if np.all(np.isfinite(r)) else 1e30

    rng = np.random.default_rng(seed)
    base = np.array([law.priors[n].params["loc"] for n in pnames])
    scale = np.array([law.priors[n].params["scale"] for n in pnames])
    starts = base + scale * scipy.stats.qmc.Sobol(len(pnames), seed=rng).random(64).__mul__(2.0).__sub__(1.0) * 1.5
    vals = np.array([f(s) for s in starts])
    best = None
    for s in starts[np.argsort(vals)[:3]]:
        res = scipy.optimize.least_squares(resid, s, method="trf", x_scale=1.0, max_nfev=600)
        if np.all(np.isfinite(res.fun)) and (best is None or res.cost < best.cost):
            best = res
    return dict(zip(pnames, np.exp(best.x))), 2 * best.cost


_RECIPES: dict[str, Callable[..., tuple[dict, float]]] = {
    "m1": _m1,
    "m2": _m2,
    "m3": _m3,
    "m4": _m4,
    "bnsl1": _bnsl,
    "bnsl2": _bnsl,
}


def least_squares(curve: Curve, law: str | Law, *, seed: int = 0) -> LSFit:
    """Fit a curve law by least squares, following the papers' recipes.

    * ``m1``: linear regression of log loss on log x.
    * ``m2``: Alabdulmohsin et al.'s objective ``sum (log(y - E) - log b + c log x)^2``, the
      linear part in closed form, ``E`` in ``[0, min y)`` searched on a grid and refined.
    * ``m3``: ``sum (log y - log b - c log(1/x + g))^2``, ``c >= 0``, ``g >= 0`` searched on a log grid.
    * ``m4``: ``sum (log(y - E) - alpha log(E0 - y) - log b + c log x)^2`` with
      ``c, alpha >= 0`` by constrained linear least squares, ``(E, E0)`` by Nelder-Mead from several starts.
    * ``bnsl1``/``bnsl2``: Caballero et al.'s mean squared log error, by L-BFGS from many
      quasi-random starts (their grid search followed by a local fit).

    ``sigma`` is the RMS of the log-loss residuals (with ``n - p`` degrees of freedom when
    ``n > p``), floored at :data:`LS_SIGMA_FLOOR`.
    """
    law = get_law(law)
    lx = np.log(curve.x / curve.x_ref)
    ly = np.log(curve.y / curve.y_ref)
    yn = curve.y / curve.y_ref
    if law.name not in _RECIPES:
        raise BayescaleError(f"least_squares: no recipe for law {law.name!r}; available: {list(CURVE_LAWS)}")
    with threadpool_limits(1):
        params, obj = _RECIPES[law.name](law, lx, ly, yn, seed)
    params = {k: float(v) for k, v in params.items()}
    pred = np.asarray(law.log_loss(params, {"x": lx}, np))
    r = pred - ly
    n_pts, n_par = r.size, len(law.params)
    sigma = float(np.sqrt(np.sum(r**2) / (n_pts - n_par if n_pts > n_par else n_pts)))
    return LSFit(law=law, params=params, sigma=max(sigma, LS_SIGMA_FLOOR), curve=curve, objective=float(obj))


__all__ = ["LS_SIGMA_FLOOR", "LSFit", "least_squares"]
