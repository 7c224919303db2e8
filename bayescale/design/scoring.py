"""Scoring candidates: how much one more run tells about the target (EPIG), from posterior draws.

For each draw ``s`` the law gives the candidate's log loss ``f_s(x)`` and the target ``t_s``;
a new run observes ``y = f(x) + noise + delta(x)``.

* **Gaussian EPIG.** ``(y(x), t)`` treated as jointly Gaussian with the draws' moments: the
  expected information about ``t`` is ``-1/2 log(1 - rho^2)`` nats; a batch conditions the joint
  covariance on the runs already chosen.
* **Importance reweighting.** Outcomes simulated from the draws reweight the draws; the
  expected log posterior variance (or, for a decision, the expected entropy of
  ``[loss <= threshold]``) under those weights replaces the Gaussian value.
* **Model discrepancy.** ``delta(x)`` has sd ``discrepancy * distance(x)``, the distance in
  decades of (N, D) (Euclidean in (log10 N, log10 D)) from ``x`` to the nearest target point,
  correlated between candidates close in (log N, log D) (length scale one decade): a run far
  from the target, at another size or another tokens-per-parameter ratio, says less about it.
* **Target regions.** The target may be a weighted set of points
  (:class:`~bayescale.design.regions.Region`); the criterion is the weighted mean over its points
  of the law variance plus drift (the weighted target-region error).
* **Law averages.** For an :class:`~bayescale.averaging.AveragedFit` the draws are the
  mixture's: each draw comes from one law, in proportion to its weight.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.scipy.special import ndtr as jndtr
from scipy.special import ndtr

from .. import _arviz
from ..errors import BayescaleError
from ..model import decades_apart
from .regions import Region, RegionDraws, parse_target, region_draws, target_points
from .targets import Target, as_points, costs_of, law_fits, mixed_law_matrix, noise_var

if TYPE_CHECKING:
    from ..inference import Fit


#: Model-discrepancy sd per decade when the fit has neither a learned drift scale nor an
#: ``[extrapolation]`` prior: a tenth of the 0.1 sd per decade that the Chinchilla form shows
#: against real grids at the far ratios, comparable to one run's noise (0.01) at a decade away.
DEFAULT_DISCREPANCY = 0.01


def _discrepancy_one(fit: Fit) -> float:
    learned = _arviz.attrs(fit.idata).get("drift_scale") if fit.idata is not None else None
    if learned:
        return float(json.loads(learned)["median"])
    if "drift" in fit.posterior:
        return float(np.sqrt(np.mean(np.asarray(fit.posterior["drift"].values, dtype=float) ** 2)))
    return DEFAULT_DISCREPANCY


def default_discrepancy(fit: Fit) -> float:
    """Model-discrepancy sd of log loss per decade of (N, D) from the target: the fit's learned
    drift scale (its median, when the spec says ``learned = true``), else the spec's extrapolation
    drift scale (root mean square of the fit's ``drift`` draws), else :data:`DEFAULT_DISCREPANCY`;
    for a law average, the laws' values weighted by their weights."""
    return float(sum(w * _discrepancy_one(m) for m, w in law_fits(fit)))


def _discrepancy_cov(
    xy_a: np.ndarray, xy_b: np.ndarray, dist_a: np.ndarray, dist_b: np.ndarray, scale: float, length: float = 1.0
) -> np.ndarray:
    """Covariance of the model-discrepancy term between candidates a and b ((log10 N, log10 D) rows)."""
    if scale <= 0:
        return np.zeros((xy_a.shape[0], xy_b.shape[0]))
    gap2 = np.sum((xy_a[:, None, :] - xy_b[None, :, :]) ** 2, axis=-1)
    k = np.exp(-0.5 * gap2 / length**2)
    return (scale * dist_a)[:, None] * (scale * dist_b)[None, :] * k


_IS_FNS: dict[str, Any] = {}


def _is_fn() -> Any:
    """Jitted: for candidates J (chunked), expected log posterior variance of t (or expected
    binary entropy of [t <= thr]) after observing simulated outcomes, with base log weights LA."""
    if "is" in _IS_FNS:
        return _IS_FNS["is"]

    def one(f_s, v_s, y_m, base, t, smooth, lthr, decision):
        # f_s (S,), v_s (S,), y_m (Mo,), base (Mo, S), t (S,)
        lw = base - 0.5 * (y_m[:, None] - f_s[None, :]) ** 2 / v_s[None, :] - 0.5 * jnp.log(v_s)[None, :]
        lw = lw - jnp.max(lw, axis=1, keepdims=True)
        w = jnp.exp(lw)
        w = w / jnp.sum(w, axis=1, keepdims=True)
        ess = 1.0 / jnp.sum(w * w, axis=1)
        m = w @ t
        var = jnp.maximum(w @ (t * t) - m * m, 1e-30)
        p = w @ jndtr((lthr - t) / smooth)
        p = jnp.clip(p, 1e-6, 1 - 1e-6)  # float32
        h = -(p * jnp.log(p) + (1 - p) * jnp.log1p(-p))
        return jnp.where(decision, h, var), ess

    def run(F, V, Y, base, t, smooth, lthr, decision):
        # F, V (c, S); Y (c, Mo); smooth (c,) -> values (c, Mo), ess (c, Mo)
        return jax.vmap(one, in_axes=(0, 0, 0, None, None, 0, None, None))(F, V, Y, base, t, smooth, lthr, decision)

    _IS_FNS["is"] = jax.jit(run)
    return _IS_FNS["is"]


class Scorer:
    """The joint of candidate outcomes and the target from posterior draws, with the
    Gaussian and importance-reweighting gains of adding candidates to a chosen set."""

    def __init__(
        self,
        fit: Fit,
        td: RegionDraws,
        frame: pd.DataFrame,
        *,
        discrepancy: float,
        n_outcomes: int,
        seed: int,
        max_draws: int | None = None,
        points: pd.DataFrame | None = None,
    ) -> None:
        rng = np.random.default_rng(seed)
        S = td.law.shape[0]
        idx = np.arange(S)
        if max_draws is not None and S > max_draws:
            idx = np.sort(rng.choice(S, max_draws, replace=False))
        self.tt = td.law[idx]  # (S, T): every target point
        self.wt = np.asarray(td.weights, dtype=float)
        self.T = self.tt.shape[1]
        # One point: its draws (the importance reweighting and decisions need them); a region is
        # scored by its weighted error only, with the Gaussian gains.
        self.t = self.tt[:, 0] if self.T == 1 else self.tt @ self.wt
        self.td = td
        self.S = idx.size
        self.F = mixed_law_matrix(fit, frame, idx) if len(frame) else np.zeros((self.S, 0))  # (S, M)
        nv_all = noise_var(fit)
        self.nv = nv_all[idx] if nv_all.size == S else np.full(self.S, float(np.mean(nv_all)))
        self.frame = frame
        self.xy = np.log10(frame[["N", "D"]].to_numpy(float)) if len(frame) else np.zeros((0, 2))
        pts = points if points is not None else target_points(fit, td.target)
        # each target point's distance to each candidate (T, M): a run nearer a point than the fit's
        # nearest run shortens the extrapolation its drift covers
        self.dist_points = decades_apart(pts, frame) if len(frame) else np.zeros((len(pts), 0))
        self.dist = self.dist_points.min(axis=0) if len(frame) else np.zeros(0)
        self.disc = float(discrepancy)
        self.dvar = (self.disc * self.dist) ** 2
        Fm = self.F.mean(axis=0)
        self.Fc = self.F - Fm
        tc = self.tt - self.tt.mean(axis=0)
        self.var_f = np.mean(self.Fc**2, axis=0)
        self.cov_ft = self.Fc.T @ tc / self.S  # (M, T)
        self.var_t_each = np.mean(tc**2, axis=0)  # (T,)
        self.var_t = float(self.var_t_each @ self.wt)
        self.rn = float(np.mean(self.nv))
        self.decision = td.target.is_decision
        self.lthr = math.log(td.target.threshold) if self.decision else 0.0
        self.mean_t = float(self.t.mean())
        # Simulated outcomes for the importance-reweighting refinement.
        mo = int(min(n_outcomes, self.S))
        self.m_idx = rng.choice(self.S, mo, replace=False)
        self.Y = (
            self.F[self.m_idx, :]
            + np.sqrt(self.nv[self.m_idx])[:, None] * rng.standard_normal((mo, self.F.shape[1]))
            + np.sqrt(self.dvar)[None, :] * rng.standard_normal((mo, self.F.shape[1]))
        )
        self.Yc = self.Y - Fm[None, :]
        self._cols: dict[int, np.ndarray] = {}
        self._bases: dict[tuple, np.ndarray] = {}

    # -- Gaussian ---------------------------------------------------------
    def col(self, a: int) -> np.ndarray:
        if a not in self._cols:
            self._cols[a] = self.Fc.T @ self.Fc[:, a] / self.S
        return self._cols[a]

    def reach(self, chosen: Sequence[int]) -> np.ndarray:
        """Each target point's distance (decades of (N, D)) from its nearest run, the chosen ones included."""
        if not len(chosen):
            return self.td.reach
        return np.minimum(self.td.reach, self.dist_points[:, list(chosen)].min(axis=1))

    def drift_var(self, chosen: Sequence[int]) -> float:
        """The target's expected squared drift once the chosen runs are trained."""
        return self.td.drift_var(reach=self.reach(chosen))

    def drift_var_each(self, chosen: Sequence[int], idx: np.ndarray) -> np.ndarray:
        """drift_var(chosen + [j]) for every j in idx, vectorised."""
        r = np.minimum(self.reach(chosen)[:, None], self.dist_points[:, np.asarray(idx, dtype=int)])  # (T, K)
        return self.td.drift_each(r.T)

    def gaussian(self, chosen: Sequence[int]) -> dict[str, np.ndarray | float]:
        """For every candidate j: the target's law variance given chosen and given chosen + j
        (weighted over a region's points), and the squared correlation of j's outcome with it."""
        A = list(chosen)
        var_y = self.var_f + self.rn + self.dvar
        cov_yt = self.cov_ft.copy()  # (M, T)
        var_tA = self.var_t_each.copy()
        if A:
            SA = np.stack([self.col(a) for a in A], axis=1)  # (M, k)
            KA = _discrepancy_cov(self.xy, self.xy[A], self.dist, self.dist[A], self.disc)
            Q = SA + KA
            MA = SA[A, :] + KA[A, :] + self.rn * np.eye(len(A))
            MA = 0.5 * (MA + MA.T)
            G = np.linalg.solve(MA, Q.T)  # (k, M)
            var_y = var_y - np.sum(Q.T * G, axis=0)
            s_At = self.cov_ft[A]  # (k, T)
            cov_yt = cov_yt - G.T @ s_At
            var_tA = self.var_t_each - np.sum(s_At * np.linalg.solve(MA, s_At), axis=0)
        var_y = np.maximum(var_y, 1e-300)
        var_tAj = np.maximum(var_tA[None, :] - cov_yt**2 / var_y[:, None], 1e-300)
        var_tA = np.maximum(var_tA, 1e-300)
        return {
            "var_tA": float(var_tA @ self.wt),
            "var_tAj": var_tAj @ self.wt,
            "rho2": np.clip(cov_yt**2 / (var_y[:, None] * var_tA[None, :]), 0, 1) @ self.wt,
        }

    def _entropy_after(self, var_law_after: np.ndarray | float, dvar: np.ndarray | float) -> np.ndarray:
        """Expected binary entropy of [target <= threshold] once the law variance is
        ``var_law_after`` (preposterior mean spread = the variance removed), by Gauss-Hermite."""
        x, w = np.polynomial.hermite_e.hermegauss(24)
        w = w / w.sum()
        v_after = np.atleast_1d(np.asarray(var_law_after, dtype=float))
        spread = np.sqrt(np.maximum(self.var_t - v_after, 0.0))
        smooth = np.sqrt(v_after + np.asarray(dvar, dtype=float) + self.td.noise_var) * np.ones_like(v_after)
        p = ndtr((self.lthr - (self.mean_t + spread[:, None] * x[None, :])) / smooth[:, None])
        p = np.clip(p, 1e-12, 1 - 1e-12)
        h = -(p * np.log(p) + (1 - p) * np.log1p(-p))
        return h @ w

    def crit_gauss(self, var_law: np.ndarray | float, dvar: np.ndarray | float) -> np.ndarray:
        """Uncertainty criterion (lower is better): log total variance, or expected entropy."""
        if self.decision:
            return self._entropy_after(var_law, dvar)
        return np.log(np.asarray(var_law, dtype=float) + dvar)

    # -- importance reweighting ----------------------------------------------
    def loglik(self, a: int) -> np.ndarray:
        """Log likelihood of the simulated outcomes of candidate a under each draw, (Mo, S)."""
        v = self.nv + self.dvar[a]
        return -0.5 * (self.Y[:, a][:, None] - self.F[:, a][None, :]) ** 2 / v[None, :] - 0.5 * np.log(v)[None, :]

    def base_logw(self, chosen: Sequence[int]) -> np.ndarray:
        key = tuple(chosen)
        if key in self._bases:
            return self._bases[key]
        base = self.base_logw(key[:-1]) + self.loglik(key[-1]) if key else np.zeros((self.m_idx.size, self.S))
        if len(self._bases) > 256:
            self._bases.clear()
        self._bases[key] = base
        return base

    def crit_is(
        self, chosen: Sequence[int], J: Sequence[int], chunk: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Expected criterion after adding each j in J to ``chosen`` (importance reweighting), and
        the mean effective sample size of the weights. Candidates go in padded chunks of a fixed
        size so the jitted kernel compiles once."""
        J = np.asarray(list(J), dtype=int)
        chunk = chunk or (64 if J.size >= 64 else 16)
        base = self.base_logw(chosen)
        fn = _is_fn()
        vals, esss = [], []
        f32 = jnp.float32
        tc = self.t - self.t.mean()
        base_j = jnp.asarray(base, dtype=f32)
        t_j = jnp.asarray(tc, dtype=f32)
        lthr = self.lthr - float(self.t.mean())
        Fc, Yc = self.Fc, self.Yc  # centred per candidate, so float32 keeps the differences accurate
        for start in range(0, J.size, chunk):
            jj = J[start : start + chunk]
            jp = np.concatenate([jj, np.repeat(jj[-1:], chunk - jj.size)])
            dv = self.drift_var_each(chosen, jp)
            smooth = np.sqrt(np.maximum(self.td.noise_var + (dv if self.decision else 0.0), 1e-12)) * np.ones(jp.size)
            v, e = fn(
                jnp.asarray(Fc[:, jp].T, dtype=f32),
                jnp.asarray((self.nv[:, None] + self.dvar[jp][None, :]).T, dtype=f32),
                jnp.asarray(Yc[:, jp].T, dtype=f32),
                base_j,
                t_j,
                jnp.asarray(smooth, dtype=f32),
                lthr,
                self.decision,
            )
            v, e = np.asarray(v, dtype=float)[: jj.size], np.asarray(e, dtype=float)[: jj.size]
            crit = v.mean(axis=1) if self.decision else np.mean(np.log(v + dv[: jj.size, None]), axis=1)
            vals.append(crit)
            esss.append(e.mean(axis=1))
        return np.concatenate(vals) if vals else np.zeros(0), np.concatenate(esss) if esss else np.zeros(0)

    def crit_is_set(self, chosen: Sequence[int]) -> float:
        """Expected criterion after the chosen set (importance reweighting)."""
        if not len(chosen):
            if self.decision:
                p = float(np.mean(ndtr((self.lthr - self.t) / math.sqrt(self.td.noise_var + self.drift_var([])))))
                p = min(max(p, 1e-6), 1 - 1e-6)
                return -(p * math.log(p) + (1 - p) * math.log1p(-p))
            return math.log(self.var_t + self.drift_var([]))
        c, _ = self.crit_is(list(chosen)[:-1], [list(chosen)[-1]])
        return float(c[0])


def score(
    fit: Fit,
    candidates: Any,
    target: Target | Region | str | Mapping[str, Any] | Sequence[Any] | pd.DataFrame,
    *,
    cost: Callable[[pd.DataFrame], np.ndarray] | None = None,
    discrepancy: float | None = None,
    refine: bool = True,
    n_outcomes: int = 64,
    seed: int = 0,
) -> pd.DataFrame:
    """Expected information about ``target`` from one more run at each candidate.

    Parameters
    ----------
    fit : Fit
    candidates : DataFrame, mapping, list of mappings with N and D, or a CSV path
    target : Target, its text, or a target region (see :func:`~bayescale.design.parse_target`)
    cost : callable, optional
        ``cost(frame) -> array`` in any unit (e.g. GPU-hours); default ``6 N D`` FLOPs, or only its
        cooldown for a branch off a WSD trunk in ``fit.runs`` (:func:`~bayescale.design.targets.branch_flops`).
    discrepancy : float, optional
        Sd of the model-discrepancy term per decade of (N, D) between a candidate and the
        nearest target point, on log loss (default :func:`default_discrepancy`).
    refine : bool
        Also compute the importance-reweighting gain (``gain_is``) for every candidate.
    n_outcomes : int
        Simulated outcomes per candidate for the refinement (one target point only).

    Returns
    -------
    pandas.DataFrame
        Per candidate: ``N, D, C, ratio, cost``, ``rho`` (correlation of its outcome with the
        target; for a region, weighted over its points), ``decades`` (distance in decades of (N, D)
        to the nearest target point), ``discrepancy_sd``,
        ``gain`` (Gaussian EPIG, nats), ``gain_is`` (importance-reweighted, nats; NaN when
        ``refine`` is False), ``ess`` (mean effective sample size of the weights) and
        ``gain_per_cost``.

    Examples
    --------
    >>> s = score(fit, candidate_grid(), "N=7e9,D=1.4e12")   # doctest: +SKIP
    >>> s.sort_values("gain_per_cost").tail(3)               # doctest: +SKIP
    """
    target = parse_target(target)
    td = region_draws(fit, target)
    frame = as_points(candidates, "candidates")
    if len(frame) == 0:
        raise BayescaleError("score: no candidates")
    costs = costs_of(frame, cost, fit.runs)
    if discrepancy is None:
        discrepancy = default_discrepancy(fit)
    sc = Scorer(fit, td, frame, discrepancy=discrepancy, n_outcomes=n_outcomes, seed=seed)
    g = sc.gaussian([])
    dv0 = sc.drift_var([])
    before = float(np.atleast_1d(sc.crit_gauss(g["var_tA"], dv0))[0])
    dvj = sc.drift_var_each([], np.arange(len(frame)))
    after = sc.crit_gauss(g["var_tAj"], dvj)
    gain = (before - after) * (1.0 if sc.decision else 0.5)
    out = frame[["N", "D", "C", "ratio"]].copy()
    out["cost"] = costs
    out["rho"] = np.sign(sc.cov_ft @ sc.wt) * np.sqrt(g["rho2"])
    out["decades"] = sc.dist
    out["discrepancy_sd"] = np.sqrt(sc.dvar)
    out["gain"] = gain
    if refine and sc.T == 1:  # a region is scored by the Gaussian gain alone
        crit, ess = sc.crit_is([], range(len(frame)))
        b = sc.crit_is_set([])
        out["gain_is"] = (b - crit) * (1.0 if sc.decision else 0.5)
        out["ess"] = ess
    else:
        out["gain_is"] = np.nan
        out["ess"] = np.nan
    best = out["gain_is"].where(out["gain_is"].notna(), out["gain"])
    out["gain_per_cost"] = best / out["cost"]
    return out


__all__ = ["Scorer", "default_discrepancy", "score"]
