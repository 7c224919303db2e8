"""The model: a spec's NumPyro model, its likelihood, and its log posterior as a flat potential.

``log L_obs ~ Likelihood(law.log_loss(theta, log x), sigma)`` with the spec's priors on
``theta``. :func:`make_model` writes it in NumPyro; :class:`Posterior` is the same log density
in one flat unconstrained vector, without model tracing, which the MAP search and NUTS
(:mod:`bayescale._engine`) run on. One :class:`Posterior` covers a single fit (one parameter
vector, the law's inputs, the observed log losses) and the learning-curve fits of
:mod:`bayescale.curves` (``units`` curves at once, padded points masked out, exponents
optionally shared through a hierarchical prior).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Mapping, Sequence
from functools import lru_cache, partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import xarray as xr
from numpyro.distributions import HalfNormal, Normal
from numpyro.distributions.transforms import ExpTransform, biject_to

from . import laws, likelihoods
from ._exported import Stored
from .data import points_frame
from .errors import BayescaleError, check_seed
from .priors import Prior
from .spec import ModelSpec

#: The observed site: log loss per run.
OBS = "log_loss"
#: The extrapolation drift added to the posterior when the spec has an ``extrapolation`` prior.
DRIFT = "drift"
#: Scale of the HalfNormal hyperprior on the spread ``tau`` of log exponents within a group.
TAU_SCALE = 0.5


# ----------------------------------------------------------------- the model


def observation_dist(spec: ModelSpec, mu: Any, params: Mapping[str, Any]) -> dist.Distribution:
    """The likelihood of log loss around the law's log loss ``mu``, given noise parameters
    (``sigma``, ``df`` when it has a prior, ``excess`` for ExGaussian) from ``params``."""
    return likelihoods.observation_dist(spec.likelihood, mu, params)


def sample_observations(spec: ModelSpec, log_mu: np.ndarray, params: Mapping[str, Any], seed: int) -> np.ndarray:
    """Observed log losses drawn around ``log_mu`` from the likelihood (arrays broadcast)."""
    with jax.enable_x64(True):
        d = observation_dist(spec, jnp.asarray(log_mu), {k: jnp.asarray(v) for k, v in params.items()})
        return np.asarray(d.sample(jax.random.PRNGKey(int(seed))), dtype=float)


def sample_per_point(
    spec: ModelSpec, log_mu: np.ndarray, params: Mapping[str, Any], seed: int, inputs: np.ndarray
) -> np.ndarray:
    """:func:`sample_observations` with each point's draws seeded by ``seed`` and its own ``inputs`` (one
    row per point, the last axis of ``log_mu``), not by its position: a point's band is the same whatever
    other points are drawn beside it (``decide``'s options, in any order, against ``predict``). A noise
    parameter's last axis is one (every point) or one per point (a law average's, beyond its weights' reach)."""
    out = []
    for i, row in enumerate(np.asarray(inputs, dtype=np.float64)):
        point = int(np.random.SeedSequence([int(seed), zlib.crc32(row.tobytes())]).generate_state(1)[0] % 2**31)
        at_i = {k: v[..., [i]] if np.shape(v)[-1] > 1 else v for k, v in params.items()}
        out.append(sample_observations(spec, log_mu[..., [i]], at_i, point))
    return np.concatenate(out, axis=-1)


def noise_names(spec: ModelSpec) -> list[str]:
    """Names of the noise parameters in the posterior."""
    return list(likelihoods.noise_priors(spec.likelihood))


def parameter_priors(spec: ModelSpec) -> dict[str, Prior]:
    """The prior of each law and noise parameter, by name."""
    return {p: spec.priors[p] for p in spec.law.params} | likelihoods.noise_priors(spec.likelihood)


def make_model(spec: ModelSpec):
    """The NumPyro model of ``spec``: ``model(logx, y=None)``.

    ``logx`` maps each law input to the log of its values (one per run) and ``y`` is
    the observed log loss. Sites: the law's parameters, ``sigma``, ``df`` when the
    Student-t degrees of freedom have a prior, and the observed ``log_loss``.
    """
    law, priors, lik = spec.law, spec.priors, spec.likelihood

    def model(logx: Mapping[str, Any], y: Any = None) -> None:
        theta = {p: numpyro.sample(p, priors[p].to_numpyro()) for p in law.params}
        mu = law.log_loss(theta, logx, jnp)
        noise = {k: numpyro.sample(k, v.to_numpyro()) for k, v in likelihoods.noise_priors(lik).items()}
        n = jnp.shape(next(iter(logx.values())))[-1]
        with numpyro.plate("run", n):
            numpyro.sample(OBS, observation_dist(spec, mu, noise), obs=y)

    return model


def log_likelihood(
    spec: ModelSpec, samples: Mapping[str, np.ndarray], logx: Mapping[str, np.ndarray], y: np.ndarray
) -> np.ndarray:
    """Pointwise log likelihood of ``y`` per draw: shape ``samples' shape + (point,)``."""
    return np.asarray(pointwise_log_likelihood(spec, samples, logx, y), dtype=np.float64)


def pointwise_log_likelihood(spec: ModelSpec, samples: Mapping[str, Any], logx: Mapping[str, Any], y: Any) -> Any:
    """:func:`log_likelihood` as a JAX array, traceable (the engine jits it once per table-size bucket)."""
    theta = {p: jnp.asarray(samples[p])[..., None] for p in spec.law.params}
    mu = spec.law.log_loss(theta, {k: jnp.asarray(v) for k, v in logx.items()}, jnp)
    noise = {k: jnp.asarray(samples[k])[..., None] for k in noise_names(spec)}
    return observation_dist(spec, mu, noise).log_prob(jnp.asarray(y))


def log_prior(spec: ModelSpec, samples: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Log density of each law and noise parameter's prior at its draws, for power-scaling.

    A LogNormal prior counts in log space, as the Normal it is there: raising it to a power
    then narrows or widens it around its median. Its density on the natural scale carries a
    ``1/x`` factor that, raised to the power ``a``, would also move the median by
    ``scale^2 (1 - a) / a`` in log space, so that a wide prior (a coefficient's, scale 3) looked
    like an informative one. Other priors count on the natural scale, where power-scaling a
    Normal or HalfNormal scales its width. Parameters absent from ``samples`` are left out.
    """
    priors = parameter_priors(spec)
    out = {}
    with jax.enable_x64(True):
        for k, pr in priors.items():
            if k not in samples:
                continue
            x = jnp.asarray(samples[k], dtype=jnp.float64)
            with warnings.catch_warnings():  # a draw outside the support (fixed test draws) has log prior -inf
                warnings.simplefilter("ignore", UserWarning)
                out[k] = np.asarray(_prior_log_density(pr)(x), dtype=np.float64)
    return out


@lru_cache(maxsize=256)
def _prior_log_density(pr: Prior) -> Any:
    """``pr``'s log density as one compiled function (per prior, reused across fits), in log
    space for a LogNormal (:func:`log_prior`)."""
    d = pr.to_numpyro(validate_args=False)
    if pr.dist == "LogNormal":
        return jax.jit(lambda x: d.log_prob(x) + jnp.log(x))
    return jax.jit(d.log_prob)


def _log_coordinates(spec: ModelSpec, frame: pd.DataFrame) -> np.ndarray:
    """Each row's position in decades: (log10 N, log10 D) when the table has both, else the
    log10 of each of the law's input columns; shape (rows, coordinates)."""
    cols = ["N", "D"] if {"N", "D"} <= set(frame.columns) else list(spec.columns)
    return np.stack([np.log10(frame[c].to_numpy(float)) for c in cols], axis=-1)


def distance_from_runs(spec: ModelSpec, runs: pd.DataFrame, points: pd.DataFrame) -> np.ndarray:
    """How far each point lies from the nearest run, in decades of (N, D) (Euclidean in
    ``(log10 N, log10 D)``; the law's own inputs when the tables lack N or D). A point on a run
    is 0. A target that grows N at equal compute is as far as one that grows compute: the
    distance is in the law's inputs, not in compute alone.
    """
    if not len(points):
        return np.zeros(0)
    if all(c in runs and c in points for c in ("N", "D")):
        return decades_apart(points, runs).min(axis=1)
    a, b = _log_coordinates(spec, runs), _log_coordinates(spec, points)
    return np.linalg.norm(b[:, None, :] - a[None, :, :], axis=-1).min(axis=1)


def decades_apart(points: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """The distance of each of ``points`` (rows) to each row of ``frame`` (columns), in decades of (N, D):
    Euclidean in (log10 N, log10 D)."""
    a = np.log10(points[["N", "D"]].to_numpy(float))
    b = np.log10(frame[["N", "D"]].to_numpy(float)).reshape(-1, 2)
    return np.linalg.norm(b[None, :, :] - a[:, None, :], axis=-1)


def add_drift(
    spec: ModelSpec, samples: dict[str, np.ndarray], rng: np.random.Generator, scale_draws: np.ndarray | None = None
) -> None:
    """Draw the extrapolation drift per posterior draw: ``tau * z``, in log loss per decade of
    distance from the runs (:func:`distance_from_runs`), with ``z`` standard normal and ``tau``
    from ``scale_draws`` (a learned drift scale, :mod:`bayescale.discrepancy`) or else from the
    spec's ``extrapolation.per_decade`` prior. The fit itself cannot inform it (every run lies
    at distance 0), so without learning it is the prior, made explicit."""
    if spec.extrapolation is None:
        return
    shape = next(iter(samples.values())).shape
    if scale_draws is not None:
        tau = np.asarray(scale_draws, dtype=float).reshape(shape)
    else:
        with jax.enable_x64(True):
            key = jax.random.PRNGKey(int(rng.integers(2**31)))
            tau = np.asarray(spec.extrapolation.to_numpyro().sample(key, shape), dtype=float)
    samples[DRIFT] = tau * rng.standard_normal(shape)


# ------------------------------------------------------------ the potential


def centre_of(logx: Mapping[str, Any], mask: Any = None) -> dict[str, Any]:
    """The runs' mean log input, the reference scale of :meth:`Posterior.to_reference`; with a
    ``mask``, the mean over the real runs only (padding rows, mask 0, do not move it)."""
    if mask is None:
        return {k: jnp.mean(v) for k, v in logx.items()}
    return {k: jnp.sum(jnp.where(mask > 0, v, 0.0)) / jnp.sum(mask > 0) for k, v in logx.items()}


class Posterior:
    """The log posterior of a spec in one flat unconstrained vector, without model tracing.

    Each site (law parameters, ``sigma``, ``df`` when it has a prior) maps from the real
    line through NumPyro's bijection to its prior's support; the potential is
    ``-(log prior + log |Jacobian| + log likelihood)``, exactly NumPyro's potential energy
    for :func:`make_model` (a test checks this). Functions are jitted once and reused.

    ``units=None`` (a single fit): ``flat`` holds one value per site, ``logx`` maps each law
    input to its values per run. ``units=K`` (curves): ``flat`` holds ``K * d`` per-curve
    coordinates (sites in order, curve-major; a hierarchically ``shared`` exponent is its
    standardised offset ``z``) then ``(mu, log tau)`` per shared exponent, with
    ``log c_k = mu + tau z_k``; ``logx`` arrays are (K, points), and points where the
    ``mask`` is 0 (padding) do not count.
    """

    def __init__(self, spec: ModelSpec, units: int | None = None, shared: Sequence[str] = ()) -> None:
        law = spec.law
        self.spec, self.K, self.shared = spec, units, tuple(shared)
        noise = likelihoods.noise_priors(spec.likelihood)
        self.names = list(law.params) + list(noise)
        self.priors = [spec.priors[p] for p in law.params] + list(noise.values())
        if self.shared and units is None:
            raise BayescaleError("shared exponents need a fit of several curves (units=K)")
        for e in self.shared:
            pr = spec.priors[e]
            if pr.dist != "LogNormal":
                raise BayescaleError(
                    f"hierarchical fit: exponent {e!r} of law {law.name!r} needs a LogNormal prior, got {pr}"
                )
        self.hyper = [(spec.priors[e].params["loc"], spec.priors[e].params["scale"]) for e in self.shared]
        self.dists = [p.to_numpyro() for p in self.priors]
        self.transforms = [biject_to(d.support) for d in self.dists]
        self.d = len(self.names)
        self.dim = self.d if units is None else units * self.d + 2 * len(self.shared)
        self.stored_key = _stored_key(spec, units, self.shared)
        self.value_and_grad = self._stored(jax.value_and_grad(self.potential), "value_and_grad")
        self.hessian = self._stored(jax.hessian(self.potential), "hessian")
        # Each helper below runs once or twice per fit on concrete values. Jitted whole, a fresh
        # process traces and loads one compiled function for each, where op-by-op it compiled
        # (or loaded from the persistent cache) about a hundred small ones: most of a cold
        # fit's fixed cost on small tables (issue 20).
        self.constrain_one = self._stored(self.constrain, "constrain")
        self.centre = self._stored(centre_of, "centre")
        self.reference = self._stored(self._reference_and_jacobian, "reference")
        self.from_reference = self._stored(partial(self.to_reference, inverse=True), "from_reference")
        self._draw_prior: dict[int, Stored] = {}
        self._median = self._stored(self._prior_median, "prior_median")
        # Draws shaped (chain, draw, dim) for a single fit, (draws, dim) for curves.
        self.constrain_many = self._stored(
            jax.vmap(jax.vmap(self.constrain)) if units is None else jax.vmap(self.constrain), "constrain_many"
        )
        self.runners: dict[tuple, Any] = {}
        self.batched: dict[str, Any] = {}

    def _stored(self, fun: Any, name: str, in_axes: Sequence[Any] | None = None, extra: tuple = ()) -> Stored:
        """``jax.jit(fun)`` (or ``pmap``), its traced form kept on disk while the compilation cache is on."""
        key = None if self.stored_key is None else (*self.stored_key, *extra)
        return Stored(fun, name, key, in_axes)

    # ------------------------------------------------------------ density
    def _hyper(self, flat: Any, j: int) -> tuple[Any, Any]:
        base = self.K * self.d + 2 * j
        return flat[base], flat[base + 1]

    def _sites(self, flat: Any) -> tuple[dict[str, Any], Any]:
        """Natural-scale values of the sites and ``log prior + log |Jacobian|``.

        A single fit computes exactly ``sum_i log p_i(t_i(f_i)) + log |t_i'(f_i)|`` site by site
        (the sampler's draws depend on the order of these operations).
        """
        if self.K is None:
            # Each use slices ``flat`` anew, as the sampler always has: the gradient sums the
            # slices' contributions in that order.
            coord, per_curve = (lambda i: flat[i]), False
        else:
            th = flat[: self.K * self.d].reshape(self.K, self.d)
            coord, per_curve = (lambda i: th[:, i]), True
        lp = 0.0
        values = {}
        for i, (n, d, t) in enumerate(zip(self.names, self.dists, self.transforms)):
            if n in self.shared:
                u = coord(i)
                mu, log_tau = self._hyper(flat, self.shared.index(n))
                values[n] = jnp.exp(mu + jnp.exp(log_tau) * u)
                lp = lp + jnp.sum(Normal(0.0, 1.0).log_prob(u))
            elif per_curve:
                u = coord(i)
                v = t(u)
                values[n] = v
                lp = lp + jnp.sum(d.log_prob(v) + t.log_abs_det_jacobian(u, v))
            else:
                v = t(coord(i))
                values[n] = v
                lp = lp + d.log_prob(v) + t.log_abs_det_jacobian(coord(i), v)
        for j, (loc, scale) in enumerate(self.hyper):
            mu, log_tau = self._hyper(flat, j)
            lp = lp + Normal(loc, scale).log_prob(mu) + HalfNormal(TAU_SCALE).log_prob(jnp.exp(log_tau)) + log_tau
        return values, lp

    def constrain(self, flat: Any) -> dict[str, Any]:
        """Natural-scale values of the sites (each of shape (K,) for curves)."""
        return self._sites(flat)[0]

    def potential(self, flat: Any, logx: Mapping[str, Any], y: Any, mask: Any = None) -> Any:
        """The negative log posterior at ``flat``."""
        values, lp = self._sites(flat)
        if self.K is not None:
            values = {k: v[:, None] for k, v in values.items()}
        mu = self.spec.law.log_loss(values, logx, jnp)
        ll = observation_dist(self.spec, mu, values).log_prob(y)
        if mask is not None:
            ll = jnp.where(mask > 0, ll, 0.0)
        lp = lp + jnp.sum(ll)
        return -lp

    # ------------------------------------------------- sampler coordinates
    def reference_terms(self) -> list[tuple[int, int, float, str]]:
        """``(coefficient index, exponent index, sign, input)`` of each declared power-law term
        whose coefficient NUTS can sample at the runs' reference scale (its unconstrained
        coordinate must be ``log(coefficient)``). Curves are sampled in NumPyro's coordinates."""
        if self.K is not None:
            return []
        index = {n: i for i, n in enumerate(self.names)}
        out = []
        for coef, entries in self.spec.law.power_terms.items():
            if not isinstance(self.transforms[index[coef]], ExpTransform):
                continue
            out += [(index[coef], index[e], sign, x) for e, x, sign in entries]
        return out

    def to_reference(self, flat: Any, centre: Mapping[str, Any], inverse: bool = False) -> Any:
        """Map NumPyro's unconstrained coordinates to the sampler's (or back, ``inverse``).

        Each declared coefficient coordinate ``log A`` becomes ``log A + sign * alpha * c``
        with ``c`` the mean log input of the runs; the exponents are left alone, so the map
        is triangular with unit Jacobian and the density is the same in both coordinates.
        """
        out = flat
        for i, j, sign, x in self.reference_terms():
            shift = sign * self.transforms[j](flat[..., j]) * centre[x]
            out = out.at[..., i].add(-shift if inverse else shift)
        return out

    def _reference_and_jacobian(self, flat: Any, centre: Mapping[str, Any]) -> tuple[Any, Any]:
        """:meth:`to_reference` at ``flat`` and its Jacobian there."""
        return self.to_reference(flat, centre), jax.jacobian(self.to_reference)(flat, centre)

    def whitened_potential(self, mode: Any, chol: Any, logx: Mapping[str, Any], y: Any, mask: Any = None) -> Any:
        """The potential as a function of NUTS's coordinates ``u``: reference-scale ``mode + chol @ u``, mapped back.
        Points where ``mask`` is 0 (padding to a table-size bucket, or of curves) do not count."""
        if self.K is not None:
            return lambda u: self.potential(mode + chol @ u, logx, y, mask)
        centre = centre_of(logx, mask)
        return lambda u: self.potential(self.to_reference(mode + chol @ u, centre, inverse=True), logx, y, mask)

    # -------------------------------------------------------------- starts
    def prior_draws(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws from the prior in the unconstrained space of a single fit, shape (n, d)."""
        if n not in self._draw_prior:
            self._draw_prior[n] = self._stored(partial(self._prior_sample, n=n), "prior_draws", extra=(n,))
        return np.asarray(self._draw_prior[n](jax.random.PRNGKey(int(rng.integers(2**31)))))

    def _prior_sample(self, key: Any, n: int) -> Any:
        cols = []
        for d, t in zip(self.dists, self.transforms):
            key, sub = jax.random.split(key)
            cols.append(t.inv(d.sample(sub, (n,))))
        return jnp.stack(cols, axis=-1)

    def prior_median(self) -> np.ndarray:
        """The prior median of each site, in the unconstrained space."""
        return np.asarray(self._median(), dtype=np.float64)

    def _prior_median(self) -> Any:
        out = []
        for d, t in zip(self.dists, self.transforms):
            try:
                m = d.icdf(jnp.asarray(0.5))
            except (NotImplementedError, AttributeError, ImportError):
                # e.g. Gamma.icdf needs tensorflow_probability: use a sample median instead.
                m = jnp.median(d.sample(jax.random.PRNGKey(0), (1001,)))
            out.append(t.inv(m))
        return jnp.stack(out)

    def starts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` starting points of the MAP search: the prior median, then prior draws; (n, dim).

        (A single fit and curve fits draw from ``rng`` in their own, long-standing orders, so
        seeded results stay what they were.)
        """
        median = self.prior_median()
        if self.K is None:
            return np.stack([median] + list(self.prior_draws(rng, n - 1)))
        K, d = self.K, self.d
        out = np.zeros((n, self.dim))
        for i, (name, dd, t) in enumerate(zip(self.names, self.dists, self.transforms)):
            if name in self.shared:
                out[1:, i : K * d : d] = rng.standard_normal((n - 1, K))
                continue
            out[0, i : K * d : d] = median[i]
            key = jax.random.PRNGKey(int(rng.integers(2**31)))
            out[1:, i : K * d : d] = np.asarray(t.inv(dd.sample(key, (n - 1, K))))
        for j, (loc, scale) in enumerate(self.hyper):
            base = K * d + 2 * j
            out[:, base] = loc
            out[1:, base] += scale * rng.standard_normal(n - 1)
            out[:, base + 1] = math.log(0.5 * TAU_SCALE)
        return out


def _stored_key(spec: ModelSpec, units: int | None, shared: Sequence[str]) -> tuple | None:
    """What the compiled functions of a posterior depend on besides their arguments, or ``None``
    (never stored) when its law or likelihood is not one bayescale ships."""
    family = likelihoods.get_family(spec.likelihood.family)
    if not (laws.is_bundled(spec.law) and likelihoods.is_bundled(family)):
        return None
    return (spec.model_id, units, tuple(shared))


_POSTERIORS: dict[tuple, Posterior] = {}


def posterior(
    spec: ModelSpec, dtype: Any = np.float64, units: int | None = None, shared: Sequence[str] = ()
) -> Posterior:
    """The :class:`Posterior` of ``spec`` (cached, with its compiled functions and samplers)."""
    key = (spec.id, np.dtype(dtype).name, units, tuple(shared))
    if key not in _POSTERIORS or _POSTERIORS[key].spec.law is not spec.law:
        _POSTERIORS[key] = Posterior(spec, units, shared)
    return _POSTERIORS[key]


def predictive_draws(fit: Any, points: Any, *, noise: bool, seed: int) -> xr.DataArray:
    """Draws of the loss at ``points`` from anything with ``spec``, ``log_loss`` and ``noise_params``
    (a :class:`Fit`, or a law average): dims (chain, draw, point), named ``"loss"``, with the inputs
    as coordinates."""
    check_seed(seed)
    frame = points_frame(points)
    log_mu = fit.log_loss(frame)
    inputs = [c for c in ("N", "D", "C", "U") if c in frame]
    if noise:  # each point's noise seeded by the point itself: its band is the same beside any other points
        log_mu = sample_per_point(fit.spec, log_mu, fit.noise_params(frame), seed, frame[inputs].to_numpy())
    coords: dict[str, Any] = {"point": np.arange(len(frame))}
    for col in inputs:
        coords[col] = ("point", frame[col].to_numpy(dtype=float))
    return xr.DataArray(np.exp(log_mu), dims=("chain", "draw", "point"), coords=coords, name="loss")


__all__ = [
    "DRIFT",
    "OBS",
    "Posterior",
    "add_drift",
    "centre_of",
    "decades_apart",
    "distance_from_runs",
    "log_likelihood",
    "log_prior",
    "make_model",
    "noise_names",
    "parameter_priors",
    "observation_dist",
    "pointwise_log_likelihood",
    "posterior",
    "predictive_draws",
    "sample_observations",
    "sample_per_point",
]
