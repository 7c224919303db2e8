"""The MAP search's optimisers: SciPy's L-BFGS-B (:func:`minimise`) and damped saddle-free Newton,
for one fit (:func:`search`: L-BFGS-B, then Newton to the mode itself, in
:func:`bayescale._engine.laplace`) and for many independent MAP problems at once (the leave-future-out
splits of :mod:`bayescale.discrepancy`, through :func:`bayescale._engine.map_units`: every unit's
gradient and Hessian from one compiled, vectorised function, the step per unit in NumPy)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from threadpoolctl import threadpool_limits

from .model import Posterior

#: Value :func:`minimise` sees where the density is not finite.
INFINITE = 1e30
#: Damping of the saddle-free Newton step: its floor and cap, and its factors after a step that
#: lowers the potential and after one that does not.
LAM_FLOOR, LAM_CAP, LAM_DOWN, LAM_UP = 1e-12, 1e12, 0.3, 10.0


def guarded(
    value_and_grad: Callable[[np.ndarray], tuple[Any, Any]],
) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """SciPy's objective from a JAX value and gradient: floats, and :data:`INFINITE` (zero gradient)
    where the density or its gradient is not finite."""

    def fun(f: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = value_and_grad(f)
        v, g = float(v), np.asarray(g, dtype=np.float64).reshape(-1)
        if not math.isfinite(v) or not np.all(np.isfinite(g)):
            return INFINITE, np.zeros_like(f)
        return v, g

    return fun


def minimise(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, **options: Any) -> Any:
    """L-BFGS-B (SciPy) from ``x0`` on an objective returning value and gradient (e.g. :func:`guarded`).

    With one BLAS thread: L-BFGS on a few dozen parameters is latency-bound, and a BLAS thread
    pool makes each step many times slower on a busy machine (measured: 64 stacking problems
    3 s of CPU with the default pool, 0.07 s with one thread)."""
    with threadpool_limits(1):
        return scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", options=options)


def search(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]], hess: Callable[[np.ndarray], np.ndarray], start: np.ndarray
) -> scipy.optimize.OptimizeResult:
    """One start's MAP search: L-BFGS-B (robust far from the mode), then :func:`polish` to the mode
    itself; ``success`` says whether it got there. L-BFGS's iterations are capped at 1000: past that
    it crawls (Farseer's law on two recipes took 4000-5800 evaluations per start and still ended with
    gradients of 6-500), where Newton finishes in at most a hundred Hessians."""
    res = minimise(fun, start, maxiter=1000, gtol=1e-9)
    end = polish(fun, hess, np.asarray(res.x, dtype=np.float64))
    res.x, res.fun, res.jac, res.success = end.x, end.value, end.grad, end.converged
    res.message = "Newton: at the mode" if end.converged else "Newton: not at a mode (iterations or damping ran out)"
    return res


def batched(post: Posterior) -> tuple[Any, Any]:
    """Jitted per-unit potentials (and the gradient of their sum), and per-unit Hessians."""
    if "map" not in post.batched:
        per_unit = jax.vmap(post.potential)

        def total(F: Any, *args: Any) -> Any:
            v = per_unit(F, *args)
            return jnp.sum(v), v

        post.batched["map"] = (
            post._stored(jax.value_and_grad(total, has_aux=True), "newton_value_and_grad"),
            post._stored(jax.vmap(jax.hessian(post.potential)), "newton_hessian"),
        )
    return post.batched["map"]


def newton_units(
    post: Posterior, args: tuple, starts: np.ndarray, gtol: float, max_iter: int = 300
) -> tuple[np.ndarray, np.ndarray]:
    """Best end point per unit, (U, dim) and (U,), of :func:`_newton_run` from each start, then from
    every other unit's best point (Newton stays in its start's basin; nested leave-future-out
    splits have nearby modes). On a few parameters Newton converges in tens of steps where L-BFGS
    on the sum of all units needed hundreds and stopped short of some units' modes. Each phase is
    one run over the units' copies (start-major), not a Python loop of runs: the units are
    independent, so a copy's path is its own run's."""
    S, U = starts.shape[:2]

    def run(x: np.ndarray, copies: int) -> tuple[np.ndarray, np.ndarray]:
        fallback = np.tile(starts[0], (copies, 1))
        return _best_of(*_newton_run(post, _tiled(args, copies), x, fallback, gtol, max_iter), copies)

    best_x, best_v = run(starts.reshape(S * U, -1), S)
    if U > 1:
        x, v = run(np.concatenate([np.roll(best_x, k, axis=0) for k in range(1, U)]), U - 1)
        better = v < best_v
        best_x[better], best_v[better] = x[better], v[better]
    return best_x, best_v


def _tiled(args: tuple, copies: int) -> tuple:
    """The units' data repeated ``copies`` times along the unit axis (copy-major)."""
    return jax.tree_util.tree_map(lambda a: jnp.concatenate([a] * copies), args)


def _best_of(x: np.ndarray, v: np.ndarray, copies: int) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, the copy with the lowest potential: (U, dim) and (U,) from (copies * U, ...)."""
    v = v.reshape(copies, -1)
    pick = np.argmin(v, axis=0)
    units = np.arange(v.shape[1])
    return np.array(x.reshape(copies, v.shape[1], -1)[pick, units]), v[pick, units]


def _newton_run(
    post: Posterior, args: tuple, x: np.ndarray, fallback: np.ndarray, gtol: float, max_iter: int
) -> tuple[np.ndarray, np.ndarray]:
    """One damped saddle-free Newton run of every unit from ``x`` (U, dim): step
    ``-V diag(1 / (|w| + lam)) V' g`` from ``H = V diag(w) V'`` (descent even at a saddle), ``lam``
    shrinking after a step that lowers the potential and growing tenfold after one that does not,
    until the largest gradient component is below ``gtol``. A unit whose start has no finite
    density starts from ``fallback``. Reuses :func:`batched`'s compiled gradient and Hessian."""
    vg, hess_fn = batched(post)
    (_, v), g = vg(jnp.asarray(x), *args)
    bad = ~np.isfinite(np.asarray(v))
    x[bad] = fallback[bad]
    (_, v), g = vg(jnp.asarray(x), *args)
    v, g = np.array(v, dtype=np.float64), np.array(g, dtype=np.float64)  # writable copies
    lam = np.ones(len(x))
    for _ in range(max_iter):
        going = np.isfinite(v) & (np.abs(g).max(axis=1) > gtol) & (lam < LAM_CAP)
        if not going.any():
            break
        h = np.array(hess_fn(jnp.asarray(x), *args), dtype=np.float64)
        # A unit whose curvature overflows stops where it is, for good (an infinite damping keeps it
        # out of later iterations); one such unit must not fail the eigendecomposition of all the
        # others (it did, inside `suggest`'s trust rule).
        curved = np.all(np.isfinite(h), axis=(1, 2))
        lam[~curved] = np.inf
        going &= curved
        h[~curved] = np.eye(h.shape[1])
        xn = np.where(going[:, None], x - damped_step(*eigen(h), g, lam), x)
        (_, vn), gn = vg(jnp.asarray(xn), *args)
        vn, gn = np.asarray(vn, dtype=np.float64), np.asarray(gn, dtype=np.float64)
        ok = going & np.isfinite(vn) & np.all(np.isfinite(gn), axis=1) & (vn <= v)
        x[ok], v[ok], g[ok] = xn[ok], vn[ok], gn[ok]
        lam = np.where(ok, np.maximum(lam * LAM_DOWN, LAM_FLOOR), np.where(going, lam * LAM_UP, lam))
    return x, np.where(np.isfinite(v), v, np.inf)


def eigen(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors of a Hessian, symmetrised (one, or batched over a leading axis)."""
    return np.linalg.eigh(0.5 * (h + np.swapaxes(h, -1, -2)))


def damped_step(w: np.ndarray, vec: np.ndarray, g: np.ndarray, lam: Any) -> np.ndarray:
    """``V diag(1 / (|w| + lam)) V' g`` from a Hessian's eigenvalues ``w`` and eigenvectors ``V``
    (batched over a leading unit axis, or one unit): a descent direction even at a saddle."""
    along = np.einsum("...ij,...i->...j", vec, g) / (np.abs(w) + np.asarray(lam)[..., None])
    return np.einsum("...ij,...j->...i", vec, along)


class Polished(NamedTuple):
    """Where :func:`polish` ended: the point, its potential and gradient, and whether it is a mode
    (the Newton decrement under the tolerance at a small damping)."""

    x: np.ndarray
    value: float
    grad: np.ndarray
    converged: bool


def polish(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    hess: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    max_iter: int = 100,
    tol: float = 1e-12,
) -> Polished:
    """Damped saddle-free Newton on one potential from ``x`` (an L-BFGS end point) until its Newton
    decrement ``g' (|H| + lam)^-1 g`` is under ``tol`` (within about 1e-6 posterior sd of the mode).

    L-BFGS-B stops on a small relative change of the potential, which on a curved ridge (Farseer's
    law, joint fits of several recipes) leaves it short of the mode: measured gradients of 1-500
    and potentials up to 1.6 above the mode. The Laplace approximation needs the mode itself. From a
    converged L-BFGS-B end point Newton takes 2-5 Hessians; from one that ran out of iterations, tens
    (up to ``max_iter``: then, or when the damping reaches :data:`LAM_CAP`, the end is not
    converged). ``fun`` returns value and gradient (:data:`INFINITE` where not finite); a step that
    raises the potential is retried from the same eigendecomposition with ten times the damping."""
    v, g = fun(x)
    lam, eig = 1e-3, None
    for _ in range(max_iter):
        if v >= INFINITE or lam > LAM_CAP:
            break
        if eig is None:  # a new point: its Hessian (kept while only the damping changes)
            h = np.asarray(hess(x), dtype=np.float64)
            if not np.all(np.isfinite(h)):
                break
            eig = eigen(h)
        step = damped_step(*eig, g, lam)
        if float(step @ g) < tol:
            return Polished(x, v, g, lam <= 1.0)  # under a large damping the decrement says nothing
        vn, gn = fun(x - step)
        if vn <= v:
            x, v, g, eig = x - step, vn, gn, None
            lam = max(lam * LAM_DOWN, LAM_FLOOR)
        else:
            lam *= LAM_UP
    return Polished(x, v, g, False)
