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
* :func:`least_squares` fits the same laws by least squares, as the papers do, for comparison.
* :func:`rmsle`, :func:`mlpd`, :func:`coverage` and :func:`msce` score predictions of held-out
  points; every predictor returns a :class:`Predictive` with ``median()``, ``log_density()``
  and ``cdf()``.

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
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
import scipy.special
import scipy.stats
from numpyro.distributions import HalfNormal, Normal
from numpyro.distributions.transforms import biject_to
from numpyro.infer.hmc import hmc
from threadpoolctl import threadpool_limits

from . import _importance, likelihoods
from .errors import BayescaleError, ConvergenceWarning
from .laws import CURVE_LAWS, Law, get_law
from .priors import Prior
from .spec import Likelihood, ModelSpec, SamplerSettings

#: Nominal levels of the central intervals scored by :func:`msce`.
LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
#: Laws fitted by default, in this order.
LAWS = tuple(CURVE_LAWS)
#: The exponents of each law that share a hyperprior in a hierarchical fit.
EXPONENTS = {"m1": ("c",), "m2": ("c",), "m3": ("c",), "m4": ("c",), "bnsl1": ("c0", "c1"), "bnsl2": ("c0", "c1", "c2")}
#: Default noise model for curves: Normal on log loss (curves are smooth; sigma is learnt).
CURVE_LIKELIHOOD = Likelihood(family="Normal", sigma=Prior("HalfNormal", {"scale": 0.05}))
#: Largest standard deviation of the Laplace approximation along any unconstrained direction.
LAPLACE_MAX_SD = 3.0
#: Ways :func:`fit_curves` draws from the posterior.
METHODS = ("nuts", "laplace", "psis")
#: Pareto k above which ``method="psis"`` warns (Vehtari et al. 2024).
PSIS_K_MAX = _importance.K_MAX
#: Curves (units) optimised together by one vectorised L-BFGS run.
MAP_CHUNK = 16
#: Scale of the HalfNormal hyperprior on the spread ``tau`` of log exponents within a group.
TAU_SCALE = 0.5


# ------------------------------------------------------------------ curves


@dataclass(frozen=True)
class Curve:
    """One learning curve: fitted points ``(x, y)`` and optional targets to predict.

    Parameters
    ----------
    name : str
    x, y : array_like
        The fitted (context) points; x > 0, y > 0.
    x_target, y_target : array_like, optional
        Held-out points (``y_target`` may be omitted when only predicting).
    group : str
        Family for a hierarchical fit (curves of one group share exponent hyperpriors).

    Examples
    --------
    >>> c = Curve("a", [1, 2, 4], [3.0, 2.5, 2.2], [8], [2.0])
    >>> c.x_ref, c.y_ref
    (4.0, 2.2)
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    x_target: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y_target: np.ndarray = field(default_factory=lambda: np.zeros(0))
    group: str = ""

    def __post_init__(self) -> None:
        for k in ("x", "y", "x_target", "y_target"):
            v = np.asarray(getattr(self, k), dtype=np.float64).reshape(-1)
            if not np.all(np.isfinite(v) & (v > 0)):
                raise BayescaleError(f"curve {self.name!r}: {k} must be finite and > 0")
            object.__setattr__(self, k, v)
        if self.x.size != self.y.size or self.x.size < 2:
            raise BayescaleError(f"curve {self.name!r}: x and y need the same length >= 2, got {self.x.size} and {self.y.size}")
        if self.y_target.size and self.y_target.size != self.x_target.size:
            raise BayescaleError(f"curve {self.name!r}: x_target and y_target differ in length")

    @property
    def x_ref(self) -> float:
        """The largest fitted x (normalised to 1)."""
        return float(self.x.max())

    @property
    def y_ref(self) -> float:
        """The loss at the largest fitted x (normalised to 1)."""
        return float(self.y[np.argmax(self.x)])


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

    A target lies in the central ``p`` interval when ``|F(y) - 1/2| <= p/2``. ``pits`` is one
    array per curve; each curve's fraction counts once (curves weigh equally, whatever their
    number of targets).

    Examples
    --------
    >>> coverage([[0.5, 0.99], [0.2]], levels=(0.5, 0.9)).tolist()
    [0.25, 0.75]
    """
    levels = np.asarray(levels, dtype=np.float64)
    per_curve = [np.mean(np.abs(np.asarray(u, dtype=np.float64)[None, :] - 0.5) <= levels[:, None] / 2, axis=1) for u in pits if np.size(u)]
    if not per_curve:
        raise BayescaleError("coverage: no targets")
    return np.mean(per_curve, axis=0)


def msce(pits: Sequence[Any], levels: Sequence[float] = LEVELS) -> float:
    """Mean squared calibration error: ``mean_p (coverage_p - p)^2`` over the nominal levels.

    Examples
    --------
    >>> round(msce([[0.5, 0.99], [0.2]], levels=(0.5, 0.9)), 6)
    0.03625
    """
    cov = coverage(pits, levels)
    return float(np.mean((cov - np.asarray(levels, dtype=np.float64)) ** 2))


# ------------------------------------------------------------ the posterior


def _log(x: Any) -> Any:
    return jnp.log(x)


class _Potential:
    """Negative log posterior of ``K`` curves (one unit) in a flat unconstrained vector.

    Layout: ``K * d`` per-curve coordinates (law parameters then noise parameters; an
    exponent shared hierarchically is its standardised offset ``z``), then two
    coordinates ``(mu, log tau)`` per shared exponent. ``K = 1`` with no shared
    exponents is an ordinary independent fit.
    """

    def __init__(self, spec: ModelSpec, K: int, shared: Sequence[str]) -> None:
        law = spec.law
        self.spec, self.K, self.shared = spec, K, tuple(shared)
        noise = likelihoods.noise_priors(spec.likelihood)
        self.names = list(law.params) + list(noise)
        self.priors = [spec.priors[p] for p in law.params] + list(noise.values())
        for e in self.shared:
            pr = spec.priors[e]
            if pr.dist != "LogNormal":
                raise BayescaleError(f"hierarchical fit: exponent {e!r} of law {law.name!r} needs a LogNormal prior, got {pr}")
        self.hyper = [(spec.priors[e].params["loc"], spec.priors[e].params["scale"]) for e in self.shared]
        self.dists = [p.to_numpyro() for p in self.priors]
        self.transforms = [biject_to(d.support) for d in self.dists]
        self.d = len(self.names)
        self.dim = K * self.d + 2 * len(self.shared)
        self.value_and_grad = jax.jit(jax.value_and_grad(self.potential))
        self.hessian = jax.jit(jax.hessian(self.potential))
        self.constrain_many = jax.jit(jax.vmap(self.constrain))

    def constrain(self, flat: Any) -> dict[str, Any]:
        """Per-curve natural-scale values, each of shape (K,)."""
        th = flat[: self.K * self.d].reshape(self.K, self.d)
        out = {}
        for i, (n, t) in enumerate(zip(self.names, self.transforms)):
            if n in self.shared:
                j = self.shared.index(n)
                mu, log_tau = flat[self.K * self.d + 2 * j], flat[self.K * self.d + 2 * j + 1]
                out[n] = jnp.exp(mu + jnp.exp(log_tau) * th[:, i])
            else:
                out[n] = t(th[:, i])
        return out

    def potential(self, flat: Any, lx: Any, y: Any, w: Any) -> Any:
        th = flat[: self.K * self.d].reshape(self.K, self.d)
        lp = 0.0
        values = {}
        for i, (n, d, t) in enumerate(zip(self.names, self.dists, self.transforms)):
            u = th[:, i]
            if n in self.shared:
                j = self.shared.index(n)
                mu, log_tau = flat[self.K * self.d + 2 * j], flat[self.K * self.d + 2 * j + 1]
                values[n] = jnp.exp(mu + jnp.exp(log_tau) * u)
                lp = lp + jnp.sum(Normal(0.0, 1.0).log_prob(u))
            else:
                v = t(u)
                values[n] = v
                lp = lp + jnp.sum(d.log_prob(v) + t.log_abs_det_jacobian(u, v))
        for j, (loc, scale) in enumerate(self.hyper):
            mu, log_tau = flat[self.K * self.d + 2 * j], flat[self.K * self.d + 2 * j + 1]
            lp = lp + Normal(loc, scale).log_prob(mu) + HalfNormal(TAU_SCALE).log_prob(jnp.exp(log_tau)) + log_tau
        law_p = {k: v[:, None] for k, v in values.items() if k in self.spec.law.params}
        mu_y = self.spec.law.log_loss(law_p, {"x": lx}, jnp)
        noise = {k: v[:, None] for k, v in values.items() if k not in self.spec.law.params}
        ll = likelihoods.observation_dist(self.spec.likelihood, mu_y, noise).log_prob(y)
        lp = lp + jnp.sum(jnp.where(w > 0, ll, 0.0))
        return -lp

    def starts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` starting points: the prior median, then prior draws (unconstrained)."""
        out = np.zeros((n, self.dim))
        for i, (name, d, t) in enumerate(zip(self.names, self.dists, self.transforms)):
            if name in self.shared:
                out[1:, i : self.K * self.d : self.d] = rng.standard_normal((n - 1, self.K))
                continue
            try:
                med = float(t.inv(d.icdf(jnp.asarray(0.5))))
            except (NotImplementedError, AttributeError, ImportError):
                med = float(t.inv(jnp.median(d.sample(jax.random.PRNGKey(0), (1001,)))))
            out[0, i : self.K * self.d : self.d] = med
            key = jax.random.PRNGKey(int(rng.integers(2**31)))
            draws = np.asarray(t.inv(d.sample(key, (n - 1, self.K))))
            out[1:, i : self.K * self.d : self.d] = draws
        for j, (loc, scale) in enumerate(self.hyper):
            base = self.K * self.d + 2 * j
            out[:, base] = loc
            out[1:, base] += scale * rng.standard_normal(n - 1)
            out[:, base + 1] = math.log(0.5 * TAU_SCALE)
        return out


_POTENTIALS: dict[tuple, _Potential] = {}
_RUNNERS: dict[tuple, Any] = {}


def _potential(spec: ModelSpec, K: int, shared: Sequence[str]) -> _Potential:
    key = (spec.id, K, tuple(shared))
    if key not in _POTENTIALS:
        _POTENTIALS[key] = _Potential(spec, K, shared)
    return _POTENTIALS[key]


def _runner(pot: _Potential, s: SamplerSettings) -> Any:
    """One compiled NUTS run, vmapped over (unit, chain) pairs; data are arguments."""
    key = (pot.spec.id, pot.K, pot.shared, s.warmup, s.draws, s.target_accept, s.max_tree_depth, s.dense_mass)
    if key in _RUNNERS:
        return _RUNNERS[key]

    def gen(lx: Any, y: Any, w: Any, mode: Any, chol: Any) -> Any:
        return lambda u: pot.potential(mode + chol @ u, lx, y, w)

    init_kernel, sample_kernel = hmc(potential_fn_gen=gen, algo="NUTS")

    def one_chain(key: Any, u0: Any, lx: Any, y: Any, w: Any, mode: Any, chol: Any) -> Any:
        args = (lx, y, w, mode, chol)
        state = init_kernel(u0, num_warmup=s.warmup, dense_mass=s.dense_mass, target_accept_prob=s.target_accept, max_tree_depth=s.max_tree_depth, model_args=args, rng_key=key)

        def warm(st: Any, _: Any) -> Any:
            return sample_kernel(st, model_args=args), None

        def draw(st: Any, _: Any) -> Any:
            st = sample_kernel(st, model_args=args)
            return st, (st.z, st.diverging)

        state, _ = jax.lax.scan(warm, state, None, length=s.warmup)
        _, (z, div) = jax.lax.scan(draw, state, None, length=s.draws)
        return z, div

    run = jax.jit(jax.vmap(one_chain))
    _RUNNERS[key] = run
    return run


def _split_rhat(x: np.ndarray) -> float:
    """Split-R-hat of draws shaped (chain, draw) (Gelman et al. BDA3, without ranks)."""
    c, n = x.shape
    if c * n < 4 or n < 4:
        return float("nan")
    h = n // 2
    parts = np.concatenate([x[:, :h], x[:, h : 2 * h]], axis=0)
    m = parts.shape[1]
    w = parts.var(axis=1, ddof=1).mean()
    b = m * parts.mean(axis=1).var(ddof=1)
    if w <= 0:
        return 1.0
    return float(np.sqrt(((m - 1) / m * w + b / m) / w))


def curve_spec(law: str | Law, *, likelihood: Likelihood | None = None, priors: Mapping[str, Any] | None = None) -> ModelSpec:
    """A :class:`~bayescale.ModelSpec` for a curve law with the curve likelihood (Normal on log loss).

    Examples
    --------
    >>> curve_spec("m2").likelihood.family
    'Normal'
    """
    law = get_law(law)
    if "x" not in law.inputs or len(law.inputs) != 1:
        raise BayescaleError(f"law {law.name!r} is not a one-dimensional curve law (input 'x'); curve laws: {list(CURVE_LAWS)}")
    pri = dict(law.priors)
    pri.update(priors or {})
    return ModelSpec(name=f"curve-{law.name}", law=law, priors=pri, likelihood=likelihood or CURVE_LIKELIHOOD)


@dataclass
class CurvePosterior:
    """Posterior draws of one law for many curves (normalised units), from :func:`fit_curves`.

    ``draws[name]`` has shape (curve, chain, draw); ``loglik`` (curve, chain, draw, point) is
    the pointwise log likelihood of the fitted points (``NaN`` past each curve's length).
    """

    spec: ModelSpec
    curves: list[Curve]
    draws: dict[str, np.ndarray]
    loglik: np.ndarray
    method: str
    diagnostics: dict[str, np.ndarray]
    seconds: float

    @property
    def law(self) -> Law:
        return self.spec.law

    def _noise(self) -> tuple[str, float]:
        lik = self.spec.likelihood
        df = lik.df if isinstance(lik.df, float) else 4.0
        return lik.family, float(df)

    def log_mu(self, k: int, x: Any) -> np.ndarray:
        """Draws of the law's log loss (natural units) at ``x`` for curve ``k``: (samples, points)."""
        c = self.curves[k]
        lx = np.log(np.asarray(x, dtype=np.float64).reshape(-1) / c.x_ref)
        p = {n: self.draws[n][k].reshape(-1)[:, None] for n in self.law.params}
        return np.asarray(self.law.log_loss(p, {"x": lx[None, :]}, np), dtype=np.float64) + math.log(c.y_ref)

    def predictive(self, k: int, x: Any = None, drift: float = 0.0) -> Predictive:
        """The posterior predictive of log loss at ``x`` (default: the curve's targets).

        ``drift`` > 0 adds an extrapolation drift per decade beyond the fitted points
        (:func:`drift_sigma`; Normal likelihood only).
        """
        c = self.curves[k]
        x = c.x_target if x is None else x
        fam, df = self._noise()
        sig = self.draws["sigma"][k].reshape(-1)
        mu = self.log_mu(k, x)
        # A wide Laplace approximation can reach parameter values where the law overflows;
        # those draws (never NUTS draws in practice) are dropped.
        ok = np.all(np.isfinite(mu), axis=1) & np.isfinite(sig) & (sig > 0)
        if not ok.any():
            raise BayescaleError(f"curve {c.name!r}: no posterior draw gives a finite prediction")
        mu, sig = mu[ok], sig[ok]
        if drift > 0:
            if fam != "Normal":
                raise BayescaleError("an extrapolation drift needs the Normal curve likelihood")
            sig = drift_sigma(sig, x, c.x_ref, drift, seed=k)
        return Predictive((mu,), (sig,), np.ones(1), fam, df)

    def loo(self) -> list[np.ndarray]:
        """PSIS-LOO pointwise elpd of each curve's fitted points (one array per curve)."""
        from . import _arviz

        out = []
        for k, c in enumerate(self.curves):
            ll = self.loglik[k, :, :, : c.x.size]
            ok = np.all(np.isfinite(ll), axis=2)
            if not ok.all():  # overflowing Laplace draws, as in predictive(): dropped
                ll = ll[ok][None, :, :]
            sig = np.ones(ll.shape[:2])
            idata = _arviz.from_draws({"sigma": sig}, log_likelihood={"log_loss": ll}, dims={"log_loss": ["run"]})
            lw = _arviz.psis_log_weights(idata)  # (samples, point)
            out.append(scipy.special.logsumexp(lw + ll.reshape(-1, c.x.size), axis=0))
        return out


def _pad(curves: Sequence[Curve], L: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lx, y, w = np.zeros((len(curves), L)), np.zeros((len(curves), L)), np.zeros((len(curves), L))
    for k, c in enumerate(curves):
        n = c.x.size
        lx[k, :n] = np.log(c.x / c.x_ref)
        y[k, :n] = np.log(c.y / c.y_ref)
        w[k, :n] = 1.0
    return lx, y, w


def _batched(pot: _Potential) -> tuple[Any, Any]:
    """Jitted per-unit potentials (and the gradient of their sum), and per-unit Hessians."""
    if not hasattr(pot, "_batched"):
        per_unit = jax.vmap(pot.potential)

        def total(F: Any, LX: Any, Y: Any, W: Any) -> Any:
            v = per_unit(F, LX, Y, W)
            return jnp.sum(v), v

        pot._batched = (jax.jit(jax.value_and_grad(total, has_aux=True)), jax.jit(jax.vmap(pot.hessian)))
    return pot._batched


def _map(pot: _Potential, LX: np.ndarray, Y: np.ndarray, W: np.ndarray, rng: np.random.Generator, n_starts: int) -> tuple[np.ndarray, np.ndarray]:
    """MAP and Laplace covariance of every unit, shape (U, dim) and (U, dim, dim).

    The units are independent, so one L-BFGS run minimises the sum of their potentials
    (one vectorised evaluation per step for all units); it is repeated from several starts
    (the prior median, then prior draws) and each unit keeps its best end point.
    """
    U = LX.shape[0]
    vg, hess_fn = _batched(pot)
    args = (jnp.asarray(LX), jnp.asarray(Y), jnp.asarray(W))
    starts = np.stack([pot.starts(rng, n_starts) for _ in range(U)], axis=1)  # (start, U, dim)
    best_x = np.array(starts[0])
    best_v = np.full(U, np.inf)
    for j in range(n_starts):
        x0 = np.array(starts[j])
        (_, v0), _ = vg(jnp.asarray(x0), *args)
        bad = ~np.isfinite(np.asarray(v0))
        x0[bad] = starts[0][bad]  # a start with no finite density falls back to the prior median

        def fun(f: np.ndarray) -> tuple[float, np.ndarray]:
            (tot, _), g = vg(jnp.asarray(f.reshape(U, -1)), *args)
            tot, g = float(tot), np.asarray(g, dtype=np.float64).reshape(-1)
            if not math.isfinite(tot) or not np.all(np.isfinite(g)):
                return 1e30, np.zeros_like(f)
            return tot, g

        res = scipy.optimize.minimize(fun, x0.reshape(-1), jac=True, method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-7, "ftol": 1e-13, "maxcor": 30})
        x = res.x.reshape(U, -1)
        (_, v), _ = vg(jnp.asarray(x), *args)
        v = np.where(np.isfinite(np.asarray(v)), np.asarray(v), np.inf)
        better = v < best_v
        best_x[better], best_v[better] = x[better], v[better]
    if not np.all(np.isfinite(best_v)):
        raise BayescaleError(f"law {pot.spec.law.name!r}: the log density is not finite at any start for some curves")
    hess = np.asarray(hess_fn(jnp.asarray(best_x), *args), dtype=np.float64)
    covs = np.zeros_like(hess)
    for u in range(U):
        h = np.nan_to_num(0.5 * (hess[u] + hess[u].T))
        ev, evec = np.linalg.eigh(h)
        # A direction the fitted points do not curve (or a saddle the optimiser stopped near) gets
        # a width of at most LAPLACE_MAX_SD in the unconstrained coordinates, about the priors' widths.
        ev = np.clip(ev, LAPLACE_MAX_SD**-2, None)
        covs[u] = (evec / ev) @ evec.T
    return best_x, covs


def _psis_draws(pot: _Potential, data: Sequence[tuple], rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` draws per unit by adaptive Pareto-smoothed importance sampling from the units'
    Laplace approximations (:mod:`bayescale._importance`); draws (U, n, dim) and Pareto k (U,)."""
    if not hasattr(pot, "_many"):
        pot._many = jax.jit(jax.vmap(jax.vmap(pot.potential, in_axes=(0, None, None, None))))
    LX, Y, W = (jnp.asarray(np.stack([d[i] for d in data])) for i in range(3))
    return _importance.draws(lambda x: -np.asarray(pot._many(jnp.asarray(x), LX, Y, W)), np.stack([d[3] for d in data]), np.stack([d[4] for d in data]), rng, n)


def fit_curves(
    curves: Sequence[Curve],
    law: str | Law | ModelSpec = "m2",
    *,
    method: str = "nuts",
    hierarchical: bool = False,
    seed: int = 0,
    chains: int = 4,
    warmup: int = 500,
    draws: int = 500,
    target_accept: float = 0.9,
    max_tree_depth: int = 8,
    n_starts: int = 6,
    batch: int = 64,
    pad_to: int = 0,
) -> CurvePosterior:
    """Fit one law to every curve's fitted points.

    Parameters
    ----------
    curves : sequence of Curve
    law : str, Law or ModelSpec
        A curve law (``"m1"``-``"m4"``, ``"bnsl1"``, ``"bnsl2"``, or a registered law with one
        input ``x``), or a spec built by :func:`curve_spec` (custom priors or likelihood).
    method : {"nuts", "laplace", "psis"}
        NUTS in coordinates whitened by each curve's Laplace approximation; draws from the
        Laplace approximation itself; or ``"psis"``: the Laplace approximation corrected by
        adaptive Pareto-smoothed importance sampling (:mod:`bayescale._importance`: Student-t
        proposals around the mode, refitted to the weighted draws over several rounds, resampled
        by their smoothed weights). The curved, ridge-shaped
        posteriors of these laws are far from Gaussian, and the correction moves the
        predictive towards NUTS's at a fraction of the cost. ``diagnostics["pareto_k"]`` holds
        each curve's Pareto k; above 0.7 the correction is unreliable and a
        :class:`~bayescale.ConvergenceWarning` names the curves.
    hierarchical : bool
        Curves with the same ``group`` share hyperpriors on the law's exponents
        (:data:`EXPONENTS`): ``log c_k = mu + tau z_k``, ``mu`` with the law's prior on
        ``log c``, ``tau ~ HalfNormal(0.5)``.
    seed : int
    chains, warmup, draws, target_accept, max_tree_depth : sampler settings.
    n_starts : int
        Starts of the MAP search per curve (prior median, then prior draws).
    batch : int
        Curves (or groups) sampled together by one vectorised NUTS call.
    pad_to : int
        Pad every curve to at least this many points, so fits of curve sets of different
        lengths reuse one compiled sampler (compilation dominates small fits).

    Returns
    -------
    CurvePosterior

    Examples
    --------
    >>> post = fit_curves(curves, "m4", seed=0)                    # doctest: +SKIP
    >>> post.predictive(0).median()                                  # doctest: +SKIP
    """
    if method not in METHODS:
        raise BayescaleError(f"method must be one of {list(METHODS)}, got {method!r}")
    curves = list(curves)
    if not curves or not all(isinstance(c, Curve) for c in curves):
        raise BayescaleError("fit_curves needs a non-empty sequence of Curve")
    spec = law if isinstance(law, ModelSpec) else curve_spec(law)
    sampler = SamplerSettings(chains=chains, warmup=warmup, draws=draws, target_accept=target_accept, max_tree_depth=max_tree_depth)
    sampler.validate()
    if hierarchical and method != "nuts":  # (psis too: its Student-t proposal is the same poor fit)
        raise BayescaleError("hierarchical fits need method='nuts': the Laplace approximation is poor in the funnel of (tau, z)")
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    if hierarchical:
        groups: dict[str, list[int]] = {}
        for k, c in enumerate(curves):
            groups.setdefault(c.group, []).append(k)
        units = list(groups.values())
        shared = EXPONENTS.get(spec.law.name, ())
        if not shared:
            raise BayescaleError(f"hierarchical fit: no exponents declared for law {spec.law.name!r}; known: {sorted(EXPONENTS)}")
    else:
        units = [[k] for k in range(len(curves))]
        shared = ()
    K = max(len(u) for u in units)
    L = int(8 * math.ceil(max(max(c.x.size for c in curves), pad_to) / 8))
    pot = _potential(spec, K, shared)
    names = pot.names
    flats = np.zeros((len(units), chains, draws, pot.dim))
    div = np.zeros((len(units), chains), dtype=np.int64)
    data = []
    with jax.enable_x64(True), jax.default_device(jax.devices("cpu")[0]), threadpool_limits(1):
        padded = []
        for unit in units:
            members = [curves[k] for k in unit]
            lx, y, w = _pad(members + [members[0]] * (K - len(members)), L)
            w[len(members) :] = 0.0  # padding curves: no data, parameters follow the prior
            padded.append((lx, y, w))
        LX, Y, W = (np.stack([p[i] for p in padded]) for i in range(3))
        # Fixed-size chunks (the last one padded with copies) so one compiled optimiser serves
        # every curve set.
        modes, covs = np.zeros((len(units), pot.dim)), np.zeros((len(units), pot.dim, pot.dim))
        for b0 in range(0, len(units), MAP_CHUNK):
            idx = np.minimum(np.arange(b0, b0 + MAP_CHUNK), len(units) - 1)
            m_, c_ = _map(pot, LX[idx], Y[idx], W[idx], rng, n_starts)
            n_real = min(MAP_CHUNK, len(units) - b0)
            modes[b0 : b0 + n_real], covs[b0 : b0 + n_real] = m_[:n_real], c_[:n_real]
        for i in range(len(units)):
            data.append((LX[i], Y[i], W[i], modes[i], np.linalg.cholesky(covs[i] + 1e-12 * np.eye(pot.dim))))
        if method == "laplace":
            for i, (_, _, _, mode, chol) in enumerate(data):
                flats[i] = mode + rng.standard_normal((chains, draws, pot.dim)) @ chol.T
        elif method == "psis":
            flats, pareto_k = _psis_draws(pot, data, rng, chains * draws)
            flats = flats.reshape(len(units), chains, draws, pot.dim)
        else:
            run = _runner(pot, sampler)
            for b0 in range(0, len(units), batch):
                chunk = data[b0 : b0 + batch]
                def rep(j: int, chunk: list = chunk) -> np.ndarray:
                    return np.repeat(np.stack([c[j] for c in chunk]), chains, axis=0)

                key = jax.random.PRNGKey(int(rng.integers(2**31)))
                keys = jax.random.split(key, len(chunk) * chains)
                u0 = 1.5 * rng.standard_normal((len(chunk) * chains, pot.dim))
                u, dv = run(keys, jnp.asarray(u0), *(jnp.asarray(rep(j)) for j in range(5)))
                u = np.asarray(u).reshape(len(chunk), chains, draws, pot.dim)
                chol = np.stack([c[4] for c in chunk])
                mode = np.stack([c[3] for c in chunk])
                flats[b0 : b0 + len(chunk)] = mode[:, None, None, :] + np.einsum("kcdj,kij->kcdi", u, chol)
                div[b0 : b0 + len(chunk)] = np.asarray(dv).reshape(len(chunk), chains, draws).sum(axis=2)
        values = pot.constrain_many(jnp.asarray(flats.reshape(-1, pot.dim)))
        values = {n: np.asarray(v).reshape(len(units), chains, draws, K) for n, v in values.items()}
    out = {n: np.zeros((len(curves), chains, draws)) for n in names}
    loglik = np.full((len(curves), chains, draws, L), np.nan)
    rhat = np.full(len(curves), np.nan)
    divergences = np.zeros(len(curves), dtype=np.int64)
    fam = spec.likelihood.family
    df = spec.likelihood.df if isinstance(spec.likelihood.df, float) else 4.0
    for i, unit in enumerate(units):
        lx, y, w, _, _ = data[i]
        for j, k in enumerate(unit):
            for n in names:
                out[n][k] = values[n][i, :, :, j]
            p = {n: out[n][k].reshape(-1)[:, None] for n in spec.law.params}
            mu = np.asarray(spec.law.log_loss(p, {"x": lx[j][None, :]}, np))
            sig = out["sigma"][k].reshape(-1)[:, None]
            z = (y[j][None, :] - mu) / sig
            ll = (scipy.stats.norm.logpdf(z) if fam == "Normal" else scipy.stats.t.logpdf(z, df)) - np.log(sig)
            n_k = curves[k].x.size
            loglik[k, :, :, :n_k] = ll[:, :n_k].reshape(chains, draws, n_k)
            if method == "nuts" and chains > 1:
                rhat[k] = max(_split_rhat(np.log(out[n][k])) if n in spec.law.positive or n == "sigma" else _split_rhat(out[n][k]) for n in names)
            divergences[k] = div[i].sum()
    diag = {"max_rhat": rhat, "divergences": divergences}
    if method == "psis":
        diag["pareto_k"] = pareto_k
        bad = [curves[k].name for k in np.flatnonzero(pareto_k > PSIS_K_MAX)]
        if bad:
            warnings.warn(ConvergenceWarning(
                f"law {spec.law.name!r}: importance sampling from the Laplace approximation is unreliable for {len(bad)} of {len(curves)} curves "
                f"(Pareto k > {PSIS_K_MAX}: {', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}); their intervals are approximate: use method='nuts' for them"), stacklevel=2)
    return CurvePosterior(spec, curves, out, loglik, method, diag, time.perf_counter() - t0)


# ------------------------------------------------------------------ stacking


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


def stacked_predictive(posteriors: Mapping[str, CurvePosterior], weights: np.ndarray, k: int, x: Any = None, drift: float = 0.0) -> Predictive:
    """The stacked predictive of curve ``k``: the mixture of each law's predictive with ``weights[k]``."""
    preds = [p.predictive(k, x, drift) for p in posteriors.values()]
    return mixture(preds, weights[k] / weights[k].sum())


def lfo_weights(posteriors: Mapping[str, CurvePosterior], drift: float | Mapping[str, float] = 0.0, *, pool: str = "group") -> np.ndarray:
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
    elpd = [np.stack([posteriors[n].predictive(k, drift=d[n]).log_density(c.y_target) for n in names], axis=1) for k, c in enumerate(curves)]
    keys = [c.group if pool == "group" and c.group else f"\0{k}" for k, c in enumerate(curves)]
    by_key = {key: stacking_weights(np.concatenate([e for e, kk in zip(elpd, keys) if kk == key])) for key in dict.fromkeys(keys)}
    return np.stack([by_key[key] for key in keys])


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
        inner_posts = {law: fit_curves(inner, law, method=inner_method, seed=seed, **fit_kw) for law in laws} if need_inner else {}
    if drift == "auto":
        dr = {law: calibrate_drift(inner, lambda k, d, p=p: p.predictive(k, drift=d))[0] if inner_posts else 0.0 for law, p in inner_posts.items()}
        dr = {law: dr.get(law, 0.0) for law in laws}
    else:
        dr = {law: float(drift) for law in laws}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # one summary below instead of one per law
        posts = {law: fit_curves(curves, law, method=method, seed=seed, **fit_kw) for law in laws}
    if method == "psis":
        bad = {law: int(np.sum(p.diagnostics["pareto_k"] > PSIS_K_MAX)) for law, p in posts.items()}
        bad = {law: n for law, n in bad.items() if n}
        if bad:
            warnings.warn(ConvergenceWarning(
                "importance sampling from the Laplace approximation is unreliable (Pareto k > "
                f"{PSIS_K_MAX}) for {', '.join(f'{law} on {n} of {len(curves)} curves' for law, n in bad.items())}; those laws' "
                "intervals are approximate (per-curve k: ens.posteriors[law].diagnostics['pareto_k']; method='nuts' samples them)"), stacklevel=2)
    ens = combine(curves, posts, inner_posts, dr, weights=weights, pool=pool, fraction=fraction)
    ens.how.update(method=method, seconds=time.perf_counter() - t0)
    return ens


def combine(curves: Sequence[Curve], posteriors: Mapping[str, CurvePosterior], inner: Mapping[str, CurvePosterior], drift: Mapping[str, float], *, weights: str = "lfo", pool: str = "group", fraction: float = 0.7) -> CurveEnsemble:
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


# ------------------------------------------------------------ least squares


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


#: Drift scales (per decade of x, in log loss) that :func:`calibrate_drift` chooses from.
DRIFT_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


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


def calibrate_drift(curves: Sequence[Curve], predict: Any, grid: Sequence[float] = DRIFT_GRID) -> tuple[float, dict[float, float]]:
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


#: Floor on the residual scale of a least-squares fit (an interpolating fit has zero residuals).
LS_SIGMA_FLOOR = 1e-3


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
    ones = np.ones_like(lx)
    name = law.name
    with threadpool_limits(1):
        if name == "m1":
            coef, obj = _lstsq(np.stack([ones, -lx], 1), ly)
            params = {"b": math.exp(coef[0]), "c": coef[1]}
        elif name == "m2":

            def prof(E: float) -> tuple[float, np.ndarray]:
                return _lstsq(np.stack([ones, -lx], 1), np.log(yn - E))[::-1]

            grid = yn.min() * (1 - np.geomspace(1.0 - 1e-6, 1e-4, 60))
            vals = [prof(E)[0] for E in grid]
            i = int(np.argmin(vals))
            lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
            res = scipy.optimize.minimize_scalar(lambda E: prof(E)[0], bounds=(lo, hi), method="bounded")
            E = float(res.x) if res.fun < vals[i] else float(grid[i])
            obj, coef = prof(E)
            params = {"E": E, "b": math.exp(coef[0]), "c": coef[1]}
        elif name == "m3":

            def prof3(lg: float) -> tuple[float, np.ndarray]:
                return _lstsq(np.stack([ones, np.logaddexp(-lx, lg)], 1), ly, nonneg=(1,))[::-1]

            # g <= e^4: beyond it the curve is flat over the fitted range and b underflows.
            grid = np.linspace(-12, 4, 65)
            vals = [prof3(g)[0] for g in grid]
            i = int(np.argmin(vals))
            res = scipy.optimize.minimize_scalar(lambda g: prof3(g)[0], bounds=(grid[max(i - 1, 0)], grid[min(i + 1, 64)]), method="bounded")
            lg = float(res.x) if res.fun < vals[i] else float(grid[i])
            obj, coef = prof3(lg)
            params = {"b": math.exp(coef[0]), "g": math.exp(lg), "c": coef[1]}
        elif name == "m4":
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
                res = scipy.optimize.minimize(lambda v: prof4(v)[0], np.array(v0), method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 1000})
                if best is None or res.fun < best.fun:
                    best = res
            E, E0 = unpack(best.x)
            obj, coef = prof4(best.x)
            params = {"E": E, "delta": E0 - E, "b": math.exp(coef[0]), "c": coef[1], "alpha": coef[2]}
        elif name in ("bnsl1", "bnsl2"):
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
            params = dict(zip(pnames, np.exp(best.x)))
            obj = 2 * best.cost
        else:
            raise BayescaleError(f"least_squares: no recipe for law {name!r}; available: {list(CURVE_LAWS)}")
    params = {k: float(v) for k, v in params.items()}
    pred = np.asarray(law.log_loss(params, {"x": lx}, np))
    r = pred - ly
    n_pts, n_par = r.size, len(law.params)
    sigma = float(np.sqrt(np.sum(r**2) / (n_pts - n_par if n_pts > n_par else n_pts)))
    return LSFit(law=law, params=params, sigma=max(sigma, LS_SIGMA_FLOOR), curve=curve, objective=float(obj))


__all__ = [
    "DRIFT_GRID",
    "EXPONENTS",
    "LAWS",
    "LEVELS",
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
