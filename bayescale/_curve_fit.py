"""Fitting one-dimensional laws to many learning curves at once (:func:`fit_curves`).

The public home of these names is :mod:`bayescale.curves`, which re-exports them; this module
holds the fit itself: the curves' padded, batched units, their MAP and Laplace approximation,
NUTS or PSIS draws through :mod:`bayescale._engine`, and the per-curve posterior.
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
from threadpoolctl import threadpool_limits

from . import _arviz, _importance
from ._curve_scoring import Predictive, drift_sigma
from ._engine import map_units, nuts_units, psis
from .errors import BayescaleError, ConvergenceWarning
from .laws import CURVE_LAWS, Law, get_law
from .model import Posterior, log_likelihood, posterior
from .priors import Prior
from .spec import Likelihood, ModelSpec, SamplerSettings

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
            raise BayescaleError(
                f"curve {self.name!r}: x and y need the same length >= 2, got {self.x.size} and {self.y.size}"
            )
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


def curve_spec(
    law: str | Law, *, likelihood: Likelihood | None = None, priors: Mapping[str, Any] | None = None
) -> ModelSpec:
    """A :class:`~bayescale.ModelSpec` for a curve law with the curve likelihood (Normal on log loss).

    Examples
    --------
    >>> curve_spec("m2").likelihood.family
    'Normal'
    """
    law = get_law(law)
    if "x" not in law.inputs or len(law.inputs) != 1:
        raise BayescaleError(
            f"law {law.name!r} is not a one-dimensional curve law (input 'x'); curve laws: {list(CURVE_LAWS)}"
        )
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
    curves, spec, sampler = _checked(
        curves,
        law,
        method,
        hierarchical,
        chains=chains,
        warmup=warmup,
        draws=draws,
        target_accept=target_accept,
        max_tree_depth=max_tree_depth,
    )
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    units, shared = _units(curves, spec, hierarchical)
    K = max(len(u) for u in units)
    L = int(8 * math.ceil(max(max(c.x.size for c in curves), pad_to) / 8))
    post = posterior(spec, np.float64, K, shared)
    with jax.enable_x64(True), jax.default_device(jax.devices("cpu")[0]), threadpool_limits(1):
        data = _laplace_units(post, *_padded(curves, units, K, L), rng, n_starts)
        flats, div, pareto_k = _draw_units(post, data, method, sampler, rng, batch)
        values = post.constrain_many(jnp.asarray(flats.reshape(-1, post.dim)))
        values = {n: np.asarray(v).reshape(len(units), chains, draws, K) for n, v in values.items()}
        out, loglik, divergences = _per_curve(post, curves, units, data, values, div)
    diag = {"max_rhat": _max_rhat(out, post.names, method, chains), "divergences": divergences}
    if method == "psis":
        diag["pareto_k"] = pareto_k
        _warn_if_psis_failed(spec, curves, pareto_k)
    return CurvePosterior(spec, curves, out, loglik, method, diag, time.perf_counter() - t0)


def _checked(
    curves: Sequence[Curve], law: str | Law | ModelSpec, method: str, hierarchical: bool, **settings: Any
) -> tuple[list[Curve], ModelSpec, SamplerSettings]:
    """The curves, the spec and the sampler settings of a :func:`fit_curves` call, checked."""
    if method not in METHODS:
        raise BayescaleError(f"method must be one of {list(METHODS)}, got {method!r}")
    curves = list(curves)
    if not curves or not all(isinstance(c, Curve) for c in curves):
        raise BayescaleError("fit_curves needs a non-empty sequence of Curve")
    spec = law if isinstance(law, ModelSpec) else curve_spec(law)
    sampler = SamplerSettings(**settings)
    sampler.validate()
    if hierarchical and method != "nuts":  # (psis too: its Student-t proposal is the same poor fit)
        raise BayescaleError(
            "hierarchical fits need method='nuts': the Laplace approximation is poor in the funnel of (tau, z)"
        )
    return curves, spec, sampler


def _units(curves: Sequence[Curve], spec: ModelSpec, hierarchical: bool) -> tuple[list[list[int]], tuple[str, ...]]:
    """The units fitted together (one curve each, or a group's curves) and the shared exponents."""
    if not hierarchical:
        return [[k] for k in range(len(curves))], ()
    groups: dict[str, list[int]] = {}
    for k, c in enumerate(curves):
        groups.setdefault(c.group, []).append(k)
    shared = EXPONENTS.get(spec.law.name, ())
    if not shared:
        raise BayescaleError(
            f"hierarchical fit: no exponents declared for law {spec.law.name!r}; known: {sorted(EXPONENTS)}"
        )
    return list(groups.values()), tuple(shared)


def _padded(
    curves: Sequence[Curve], units: Sequence[Sequence[int]], K: int, L: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised log x, log y and the mask of real points, shape (unit, K, L)."""
    padded = []
    for unit in units:
        members = [curves[k] for k in unit]
        lx, y, w = _pad(members + [members[0]] * (K - len(members)), L)
        w[len(members) :] = 0.0  # padding curves: no data, parameters follow the prior
        padded.append((lx, y, w))
    return tuple(np.stack([p[i] for p in padded]) for i in range(3))


def _laplace_units(
    post: Posterior, LX: np.ndarray, Y: np.ndarray, W: np.ndarray, rng: np.random.Generator, n_starts: int
) -> list[tuple]:
    """Each unit's ``(logx, y, mask, mode, chol)``: its data and Laplace approximation.

    Fixed-size chunks (the last one padded with copies) so one compiled optimiser serves every curve set.
    """
    U = LX.shape[0]
    modes, covs = np.zeros((U, post.dim)), np.zeros((U, post.dim, post.dim))
    for b0 in range(0, U, MAP_CHUNK):
        idx = np.minimum(np.arange(b0, b0 + MAP_CHUNK), U - 1)
        m_, c_ = map_units(post, ({"x": LX[idx]}, Y[idx], W[idx]), rng, n_starts, LAPLACE_MAX_SD)
        n_real = min(MAP_CHUNK, U - b0)
        modes[b0 : b0 + n_real], covs[b0 : b0 + n_real] = m_[:n_real], c_[:n_real]
    return [
        ({"x": LX[i]}, Y[i], W[i], modes[i], np.linalg.cholesky(covs[i] + 1e-12 * np.eye(post.dim))) for i in range(U)
    ]


def _draw_units(
    post: Posterior, data: Sequence[tuple], method: str, s: SamplerSettings, rng: np.random.Generator, batch: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Unconstrained draws (unit, chain, draw, dim) by ``method``, divergences per (unit, chain)
    and, for ``"psis"``, each unit's Pareto k."""
    shape = (len(data), s.chains, s.draws, post.dim)
    no_div = np.zeros(shape[:2], dtype=np.int64)
    if method == "laplace":
        flats = np.zeros(shape)
        for i, (_, _, _, mode, chol) in enumerate(data):
            flats[i] = mode + rng.standard_normal(shape[1:]) @ chol.T
        return flats, no_div, None
    if method == "psis":
        stacked = jax.tree_util.tree_map(lambda *a: np.stack(a), *[d[:3] for d in data])
        modes, chols = np.stack([d[3] for d in data]), np.stack([d[4] for d in data])
        flats, pareto_k = psis(post, stacked, modes, chols, rng, s.chains * s.draws, units=True)
        return flats.reshape(shape), no_div, pareto_k
    flats, div = nuts_units(post, data, s, rng, batch)
    return flats, div, None


def _per_curve(
    post: Posterior,
    curves: Sequence[Curve],
    units: Sequence[Sequence[int]],
    data: Sequence[tuple],
    values: Mapping[str, np.ndarray],
    div: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Draws per curve (curve, chain, draw), the pointwise log likelihood of its fitted points
    (curve, chain, draw, point; NaN past its length) and its divergences."""
    chains, draws = div.shape[1], next(iter(values.values())).shape[2]
    L = data[0][1].shape[-1]
    out = {n: np.zeros((len(curves), chains, draws)) for n in post.names}
    loglik = np.full((len(curves), chains, draws, L), np.nan)
    divergences = np.zeros(len(curves), dtype=np.int64)
    for i, unit in enumerate(units):
        logx, y = data[i][0]["x"], data[i][1]
        for j, k in enumerate(unit):
            for n in post.names:
                out[n][k] = values[n][i, :, :, j]
            n_k = curves[k].x.size
            ll = log_likelihood(post.spec, {n: out[n][k].reshape(-1) for n in post.names}, {"x": logx[j]}, y[j])
            loglik[k, :, :, :n_k] = ll[:, :n_k].reshape(chains, draws, n_k)
            divergences[k] = div[i].sum()
    return out, loglik, divergences


def _max_rhat(draws: Mapping[str, np.ndarray], names: Sequence[str], method: str, chains: int) -> np.ndarray:
    """Each curve's largest rank-normalised split R-hat over its parameters (NaN unless NUTS ran several chains)."""
    n_curves = next(iter(draws.values())).shape[0]
    if method != "nuts" or chains < 2:
        return np.full(n_curves, np.nan)
    rhat = _arviz.rhat({n: draws[n] for n in names})
    return np.max(np.stack([rhat[n] for n in names]), axis=0)


def _warn_if_psis_failed(spec: ModelSpec, curves: Sequence[Curve], pareto_k: np.ndarray) -> None:
    k_max = _importance.K_MAX  # read when called, so a test can lower it
    bad = [curves[k].name for k in np.flatnonzero(pareto_k > k_max)]
    if bad:
        shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
        warnings.warn(
            ConvergenceWarning(
                f"law {spec.law.name!r}: importance sampling from the Laplace approximation is unreliable for "
                f"{len(bad)} of {len(curves)} curves (Pareto k > {k_max}: {shown}); their intervals are approximate: "
                "use method='nuts' for them"
            ),
            stacklevel=3,
        )
