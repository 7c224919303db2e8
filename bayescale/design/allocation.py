"""Whole-budget allocation of pilot runs by a linearised (pseudo-Bayesian c-optimal) criterion.

For each posterior draw ``s`` the law is linearised around the draw's parameters, in the
unconstrained coordinates NumPyro samples in (log for positive parameters). A design that puts
``w_j`` runs at candidate ``j`` then leaves the target ``t`` with variance

    v_s(w) = h_s' (P_s + J_run,s' J_run,s / n_s + sum_j w_j g_sj g_sj' / n_s)^-1 h_s

where ``h_s`` is the gradient of ``t`` (log loss at the target, or, for a frontier target, at the
draw's compute-optimal point: by the envelope theorem that is the gradient of the frontier's
loss), ``g_sj`` the gradient of the candidate's log loss, ``n_s`` one run's noise variance (plus
an optional discrepancy variance per candidate), ``J_run`` the gradients at the runs done and
pending, and ``P_s`` the Hessian of the negative log prior. The allocation minimises the
posterior mean of ``v_s`` over ``0 <= w_j <= cap_j`` and ``sum_j w_j cost_j <= budget`` (a convex
problem: Chaloner & Verdinelli 1995, "Bayesian experimental design: a review", section 2.3),
solved by Frank-Wolfe, whose linear step is a fractional knapsack; then it is rounded to whole
runs. Unlike greedy one-run-at-a-time selection it sees that a few large runs plus many small
ones at extreme ratios pin down the far target together.

A target region (several points ``t_i`` with weights ``u_i``) replaces ``v_s`` by the weighted
sum ``sum_i u_i h_si' (...)^-1 h_si``. A law average (:class:`MixedLinearised`) linearises each law
around its own draws, as many draws per law as its weight asks, and averages ``v_s`` over all of
them: the design is judged under every plausible law.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.distributions.transforms import biject_to

from ..data import law_inputs
from ..frontier import compute_optimal, law_draws
from .regions import Region, region_points
from .targets import law_fits, noise_var

if TYPE_CHECKING:
    from ..averaging import AveragedFit
    from ..inference import Fit
    from ..spec import ModelSpec
    from .targets import Target

_FNS: dict[str, Any] = {}


def _functions(spec: ModelSpec) -> tuple[Any, Any, Any]:
    """Jitted (per law): gradients of log loss in unconstrained coordinates, (S, M, P); the
    Hessian of the negative log prior there, (S, P, P); and the map to unconstrained coordinates."""
    law = spec.law
    names = list(law.params)
    priors = [spec.priors[p].to_numpyro() for p in names]
    trans = [biject_to(d.support) for d in priors]
    key = f"{law.name}:{id(law.log_loss)}:{spec.model_id}"

    def theta_of(u: Any) -> dict[str, Any]:
        return {p: trans[i](u[i]) for i, p in enumerate(names)}

    def log_loss(u: Any, lx: Any) -> Any:
        return law.log_loss(theta_of(u), lx, jnp)

    def neg_log_prior(u: Any) -> Any:
        out = 0.0
        for i in range(len(names)):
            th = trans[i](u[i])
            out = out - priors[i].log_prob(th) - trans[i].log_abs_det_jacobian(u[i], th)
        return out

    if key not in _FNS:
        grad = jax.grad(log_loss)
        jac = jax.jit(jax.vmap(jax.vmap(grad, in_axes=(None, 0)), in_axes=(0, None)))
        hess = jax.jit(jax.vmap(jax.hessian(neg_log_prior)))
        _FNS[key] = (jac, hess)
    jac, hess = _FNS[key]

    def to_u(theta: dict[str, np.ndarray]) -> np.ndarray:
        return np.stack([np.asarray(trans[i].inv(jnp.asarray(theta[p]))) for i, p in enumerate(names)], axis=-1)

    return jac, hess, to_u


def _log_inputs(spec: ModelSpec, frame: pd.DataFrame) -> dict[str, Any]:
    return {k: jnp.asarray(v) for k, v in law_inputs(spec, frame, np.float64).items()}


class Linearised:
    """Per-draw linearisation of the law at the runs, the candidates and the target (``h``: (S, P)
    for one point, (S, T, P) for a region's points with weights ``wt``)."""

    wt = np.ones(1)

    def __init__(
        self,
        fit: Fit,
        frame: pd.DataFrame,
        target: Target | Region,
        *,
        noise_var: np.ndarray,
        extra_var: np.ndarray | None = None,
        n_draws: int = 64,
        seed: int = 0,
    ) -> None:
        theta = law_draws(fit)
        S = next(iter(theta.values())).size
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(S, min(n_draws, S), replace=False))
        theta = {k: v[idx] for k, v in theta.items()}
        jac, hess, to_u = _functions(fit.spec)
        with jax.enable_x64(True):
            U = jax.numpy.asarray(to_u(theta))
            runs = fit.runs
            Jr = np.asarray(jac(U, _log_inputs(fit.spec, runs)), dtype=float)
            Jc = (
                np.asarray(jac(U, _log_inputs(fit.spec, frame)), dtype=float)
                if len(frame)
                else np.zeros((idx.size, 0, U.shape[1]))
            )
            H = np.asarray(hess(U), dtype=float)
            if isinstance(target, Region):
                pts = region_points(fit, target)
                h = np.asarray(jac(U, _log_inputs(fit.spec, pts)), dtype=float)  # (S, T, P)
                self.wt = pts["weight"].to_numpy(float)
            elif target.kind == "frontier":
                opt = compute_optimal(fit, [target.C])
                n_opt = np.asarray(opt["N_opt"].values, dtype=float).reshape(-1)[idx]
                pts = pd.DataFrame({"N": n_opt, "D": target.C / (6.0 * n_opt), "C": np.full(idx.size, target.C)})
                # one target point per draw: evaluate each draw at its own point
                Jt = np.asarray(jac(U, _log_inputs(fit.spec, pts)), dtype=float)
                h = Jt[np.arange(idx.size), np.arange(idx.size)]
            else:
                pts = target.point()
                h = np.asarray(jac(U, _log_inputs(fit.spec, pts)), dtype=float)[:, 0]
        # The prior's curvature can be negative away from its mode (e.g. heavy tails): clip it.
        ev, vec = np.linalg.eigh(0.5 * (H + np.swapaxes(H, 1, 2)))
        P = np.einsum("sij,sj,skj->sik", vec, np.maximum(ev, 0.0), vec)
        nv = np.asarray(noise_var, dtype=float)
        nv = nv[idx] if nv.size == S else np.full(idx.size, float(np.mean(nv)))
        self.I0 = P + np.einsum("smi,smj->sij", Jr, Jr) / nv[:, None, None]
        ev = np.zeros(Jc.shape[1]) if extra_var is None else np.asarray(extra_var, dtype=float)
        self.G = Jc / np.sqrt(nv[:, None, None] + ev[None, :, None])  # (S, M, P)
        self.h = h
        self.S, self.M = idx.size, Jc.shape[1]

    def fold(self, columns: list[int]) -> None:
        """Count the runs at ``columns`` (pending: their outcomes will come) as already known."""
        self.I0 = self.I0 + np.einsum("smi,smj->sij", self.G[:, columns, :], self.G[:, columns, :])

    def _gram(self, w: np.ndarray) -> np.ndarray:
        """The information ``w`` runs per candidate add, per draw (S, P, P): linear in ``w``."""
        # Only the candidates with runs count (fewer columns to multiply).
        used = np.flatnonzero(w)
        Gu = self.G[:, used, :]
        return np.swapaxes(Gu * w[used][None, :, None], 1, 2) @ Gu  # matmul: einsum is 10x slower

    def _solve(self, info: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per draw, the target's (weighted) variance under the information ``info``, (S,), and info^-1 h, (S, P, T)."""
        h = self.h if self.h.ndim == 3 else self.h[:, None, :]  # (S, T, P)
        x = np.linalg.solve(info, np.swapaxes(h, 1, 2))
        return np.sum(h * np.swapaxes(x, 1, 2), axis=2) @ self.wt, x

    def per_draw(self, w: np.ndarray, grad: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Per draw: the target's (weighted) variance after ``w`` runs per candidate, (S,), and its gradient in w,
        (S, M) (None with ``grad=False``)."""
        v, x = self._solve(self.I0 + self._gram(w))
        return v, (-((self.G @ x) ** 2) @ self.wt if grad else None)

    def value(self, w: np.ndarray, grad: bool = True) -> tuple[float, np.ndarray | None]:
        """Mean over draws of the target's variance after ``w`` runs per candidate, and its gradient in w (None
        with ``grad=False``)."""
        v, g = self.per_draw(w, grad)
        return float(v.mean()), (None if g is None else g.mean(axis=0))

    def line(self, w: np.ndarray, d: np.ndarray) -> Callable[[float], float]:
        """:meth:`value` at ``w + a d`` as a function of ``a``, for a line search: the information is linear in the
        runs, so each point costs one small solve per draw instead of the candidates' products (most of a plan's
        time when the search evaluated ``value``)."""
        base, step = self.I0 + self._gram(w), self._gram(d)
        return lambda a: float(self._solve(base + a * step)[0].mean())


class MixedLinearised:
    """The linearisation of each law of an average around its own draws (``n_draws`` in all, split
    by the laws' weights); :meth:`value` is the mean over all of them, as :class:`Linearised`'s."""

    def __init__(self, fit: Fit | AveragedFit, frame: pd.DataFrame, target: Target | Region, **kwargs: Any) -> None:
        n_draws = int(kwargs.pop("n_draws", 64))
        kwargs.pop("noise_var", None)  # each law's own noise
        laws = [(m, w) for m, w in law_fits(fit) if w > 0]
        total = sum(w for _, w in laws)
        self.parts = [
            Linearised(m, frame, target, noise_var=noise_var(m), n_draws=max(1, round(n_draws * w / total)), **kwargs)
            for m, w in laws
        ]
        self.M = self.parts[0].M
        self.S = sum(p.S for p in self.parts)

    def fold(self, columns: list[int]) -> None:
        for p in self.parts:
            p.fold(columns)

    def value(self, w: np.ndarray, grad: bool = True) -> tuple[float, np.ndarray | None]:
        per = [p.per_draw(w, grad) for p in self.parts]
        v = np.concatenate([a for a, _ in per])
        if not grad:
            return float(v.mean()), None
        return float(v.mean()), np.concatenate([g for _, g in per], axis=0).mean(axis=0)

    def line(self, w: np.ndarray, d: np.ndarray) -> Callable[[float], float]:
        """:meth:`value` at ``w + a d`` as a function of ``a`` (:meth:`Linearised.line`), the mean over every law's draws."""
        lines = [p.line(w, d) for p in self.parts]
        return lambda a: sum(f(a) * p.S for f, p in zip(lines, self.parts, strict=True)) / self.S


def _knapsack(score: np.ndarray, costs: np.ndarray, caps: np.ndarray, budget: float) -> np.ndarray:
    """Fractional knapsack: the vertex of {0 <= w <= caps, costs.w <= budget} maximising score.w."""
    s = np.zeros_like(caps)
    left = budget
    for j in np.argsort(-score / costs):
        if score[j] <= 0 or left <= 0:
            break
        take = min(caps[j], left / costs[j])
        s[j] = take
        left -= take * costs[j]
    return s


def allocate(
    lin: Linearised | MixedLinearised, costs: np.ndarray, caps: np.ndarray, budget: float, iters: int = 300
) -> tuple[np.ndarray, float, float]:
    """Continuous allocation minimising :meth:`Linearised.value` (Frank-Wolfe with line search).
    Returns (w, value at w, value with no new runs)."""
    v0, g0 = lin.value(np.zeros(lin.M))
    caps = np.where(costs <= budget * (1 + 1e-9), caps, 0.0)  # no fractions of unaffordable runs
    ok = caps > 0
    if not ok.any():
        return np.zeros(lin.M), v0, v0
    # Start at a vertex: every vertex spends the whole budget (or fills every cap), and so does
    # every convex combination of them; more runs never raise the variance.
    w = _knapsack(-g0, costs, caps, budget)
    v = lin.value(w, grad=False)[0]
    stalled = 0
    for _ in range(iters):
        _, g = lin.value(w)
        s = _knapsack(-g, costs, caps, budget)
        d = s - w
        if not np.any(d):
            break
        # golden-section line search on [0, 1]
        f = lin.line(w, d)
        lo, hi = 0.0, 1.0
        r = 0.5 * (math.sqrt(5.0) - 1.0)
        a, b = hi - r * (hi - lo), lo + r * (hi - lo)
        fa, fb = f(a), f(b)
        for _ in range(20):
            if fa < fb:
                hi, b, fb = b, a, fa
                a = hi - r * (hi - lo)
                fa = f(a)
            else:
                lo, a, fa = a, b, fb
                b = lo + r * (hi - lo)
                fb = f(b)
        gam = 0.5 * (lo + hi)
        w_new = w + gam * d
        v_new = lin.value(w_new, grad=False)[0]  # the step kept is judged on the full product, not the search's sum
        if v_new >= v:
            break
        stalled = stalled + 1 if v_new > v * (1 - 1e-7) else 0
        w, v = w_new, v_new
        if stalled >= 5:
            break
    return w, v, v0


def round_runs(
    lin: Linearised | MixedLinearised, w: np.ndarray, costs: np.ndarray, caps: np.ndarray, budget: float
) -> np.ndarray:
    """Whole runs from a continuous allocation: the integer parts, then single runs added
    greedily (most variance removed per cost, among candidates the allocation used) while the
    budget allows."""
    n = np.minimum(np.floor(w + 1e-6), caps).astype(int)
    left = budget - float(n @ costs)
    used = w > 1e-3
    while True:
        ok = used & (n < caps) & (costs <= left + 1e-9 * budget)
        if not ok.any():
            break
        v, _ = lin.value(n.astype(float), grad=False)
        idx = np.flatnonzero(ok)
        drop = np.array([v - lin.value(n + np.eye(1, lin.M, j)[0], grad=False)[0] for j in idx])
        best = int(np.argmax(drop / costs[idx]))
        if drop[best] <= 0:
            break
        n[idx[best]] += 1
        left -= costs[idx[best]]
    return n


__all__ = ["Linearised", "MixedLinearised", "allocate", "round_runs"]
