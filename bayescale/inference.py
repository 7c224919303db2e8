"""Inference: a NumPyro model built from a spec, MAP + Laplace, NUTS, and the frozen :class:`Fit`.

The model is ``log L_obs ~ Likelihood(law.log_loss(theta, log x), sigma)`` with the
spec's priors on ``theta``. Fitting runs in three steps:

1. MAP in the unconstrained space (float64, SciPy L-BFGS on JAX gradients, several
   starts drawn from the prior), and the Laplace approximation at the mode.
2. NUTS with a dense mass matrix whose adaptation starts from the Laplace
   covariance, chains started from dispersed Laplace draws. Scaling-law posteriors
   are strongly correlated (``log A`` with ``alpha``, ``E`` with everything); a
   dense metric makes these linear correlations free and the Laplace start
   removes most of the warmup's work. Coefficients a law declares in ``Law.power_terms``
   are sampled at the runs' reference scale (``log A - alpha * mean(log N)``), which
   straightens the curved ridge a linear whitening cannot (unit Jacobian: same posterior).
3. Diagnostics (r-hat, ESS, divergences) with a :class:`ConvergenceWarning` in words.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import scipy.optimize
import xarray as xr
from numpyro.distributions.transforms import ExpTransform, biject_to
from numpyro.infer import MCMC, NUTS
from numpyro.infer.hmc import hmc
from threadpoolctl import threadpool_limits

from . import _arviz, _importance, likelihoods
from .data import law_inputs, load_runs, points_frame, runs_hash
from .errors import (
    BayescaleError,
    ConvergenceWarning,
    IdentifiabilityWarning,
    SpecError,
    StaleFitError,
)
from .spec import ModelSpec, load_spec

METHODS = ("nuts", "laplace", "psis")
RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100
OBS = "log_loss"


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


DRIFT = "drift"


def decades_beyond(spec: ModelSpec, runs: pd.DataFrame, points: pd.DataFrame) -> np.ndarray:
    """How many decades each point lies beyond the fitted runs (0 inside their range).

    Measured in compute C when both tables have it, else the largest excess over the
    law's input columns.
    """
    if "C" in runs and "C" in points:
        return np.maximum(0.0, np.log10(points["C"].to_numpy(float) / float(runs["C"].max())))
    out = np.zeros(len(points))
    for col in spec.columns:
        out = np.maximum(out, np.log10(points[col].to_numpy(float) / float(runs[col].max())))
    return out


def add_drift(spec: ModelSpec, samples: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """Draw the extrapolation drift per posterior draw: ``tau * z`` with ``tau`` from the
    spec's ``extrapolation.per_decade`` prior and ``z`` standard normal. The data cannot
    inform it (every run is inside its own range), so this is the prior, made explicit."""
    if spec.extrapolation is None:
        return
    shape = next(iter(samples.values())).shape
    with jax.enable_x64(True):
        tau = np.asarray(spec.extrapolation.to_numpyro().sample(jax.random.PRNGKey(int(rng.integers(2**31))), shape), dtype=float)
    samples[DRIFT] = tau * rng.standard_normal(shape)


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


def noise_names(spec: ModelSpec) -> list[str]:
    """Names of the noise parameters in the posterior."""
    return list(likelihoods.noise_priors(spec.likelihood))


# ------------------------------------------------------------- device setup


#: Below this many runs the CPU samples faster than a GPU: each leapfrog step is a few
#: tiny kernels, and launch latency dominates. Measured on an H100 host (BENCHMARKS.md,
#: "GPU"): 240 runs, CPU 3.1 s vs GPU 5.4 s per warm fit; 2000 runs, 10.8 s vs 3.7 s.
GPU_MIN_RUNS = 1000


def _sampling_device(requested: str, n_runs: int) -> Any:
    """The JAX device NUTS runs on: ``"cpu"``, ``"gpu"`` or ``"auto"`` (GPU for large tables)."""
    gpus = [d for d in jax.devices() if d.platform == "gpu"] if jax.default_backend() == "gpu" else []
    if requested == "gpu":
        if not gpus:
            raise BayescaleError("sampler.device = 'gpu' but JAX sees no GPU; install jax[cuda12] or use 'cpu'/'auto'")
        return gpus[0]
    if requested == "auto" and gpus and n_runs >= GPU_MIN_RUNS:
        return gpus[0]
    return jax.devices("cpu")[0]


def _chain_method(requested: str, chains: int, device: Any) -> str:
    if requested != "auto":
        return requested
    # pmap places chains on the default backend's devices: only use it when those are CPUs.
    if device.platform == "cpu" and jax.default_backend() == "cpu" and 1 < chains <= jax.local_device_count():
        return "parallel"
    return "vectorized"


def enable_compilation_cache(path: str | Path | None = None) -> Path:
    """Keep JAX's compiled samplers on disk so later processes skip most compilation.

    JIT compilation is most of a fit's time on a small table. This turns on JAX's
    persistent compilation cache (a process-wide JAX setting, so bayescale leaves it to
    you; the ``bayescale`` command line turns it on). ``path`` defaults to
    ``$BAYESCALE_CACHE/jax`` or ``~/.cache/bayescale/jax``.
    """
    import os

    base = Path(path) if path is not None else Path(os.environ.get("BAYESCALE_CACHE") or Path.home() / ".cache" / "bayescale") / "jax"
    base.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(base))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return base


# ------------------------------------------------------------------ MAP


@dataclass(frozen=True)
class Laplace:
    """MAP estimate and Laplace approximation in the unconstrained space."""

    mode: np.ndarray  # flat unconstrained mode
    cov: np.ndarray  # covariance of the Gaussian approximation (inverse Hessian)
    value: Mapping[str, float]  # mode on the constrained (natural) scale
    log_density: float
    converged: bool


class _Posterior:
    """The log posterior of a spec in one flat unconstrained vector, without model tracing.

    Each site (law parameters, ``sigma``, ``df`` when it has a prior) maps from the
    real line through NumPyro's bijection to its prior's support; the potential is
    ``-(log prior + log |Jacobian| + log likelihood)``, exactly NumPyro's potential
    energy for :func:`make_model` (a test checks this). Functions are jitted once per
    spec and reused.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        noise = likelihoods.noise_priors(spec.likelihood)
        self.names = list(spec.law.params) + list(noise)
        self.priors = [spec.priors[p] for p in spec.law.params] + list(noise.values())
        self.dists = [p.to_numpyro() for p in self.priors]
        self.transforms = [biject_to(d.support) for d in self.dists]
        self.value_and_grad = jax.jit(jax.value_and_grad(self.potential))
        self.hessian = jax.jit(jax.hessian(self.potential))
        self.constrain_many = jax.jit(jax.vmap(jax.vmap(self.constrain)))
        self.runners: dict[tuple, Any] = {}

    @property
    def dim(self) -> int:
        return len(self.names)

    def constrain(self, flat: Any) -> dict[str, Any]:
        return {n: t(flat[i]) for i, (n, t) in enumerate(zip(self.names, self.transforms))}

    def potential(self, flat: Any, logx: Mapping[str, Any], y: Any) -> Any:
        lp = 0.0
        values = {}
        for i, (n, d, t) in enumerate(zip(self.names, self.dists, self.transforms)):
            v = t(flat[i])
            values[n] = v
            lp = lp + d.log_prob(v) + t.log_abs_det_jacobian(flat[i], v)
        mu = self.spec.law.log_loss(values, logx, jnp)
        lp = lp + jnp.sum(observation_dist(self.spec, mu, values).log_prob(y))
        return -lp

    def reference_terms(self) -> list[tuple[int, int, float, str]]:
        """``(coefficient index, exponent index, sign, input)`` of each declared power-law term
        whose coefficient NUTS can sample at the runs' reference scale (its unconstrained
        coordinate must be ``log(coefficient)``)."""
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

    def whitened_potential(self, mode: Any, chol: Any, logx: Mapping[str, Any], y: Any) -> Any:
        """The potential as a function of NUTS's coordinates ``u``: reference-scale ``mode + chol @ u``, mapped back."""
        centre = centre_of(logx)
        return lambda u: self.potential(self.to_reference(mode + chol @ u, centre, inverse=True), logx, y)

    def prior_draws(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws from the prior in the unconstrained space, shape (n, dim)."""
        key = jax.random.PRNGKey(int(rng.integers(2**31)))
        cols = []
        for d, t in zip(self.dists, self.transforms):
            key, sub = jax.random.split(key)
            cols.append(np.asarray(t.inv(d.sample(sub, (n,)))))
        return np.stack(cols, axis=-1)

    def prior_median(self) -> np.ndarray:
        """The prior median of each site, in the unconstrained space."""
        out = []
        for d, t in zip(self.dists, self.transforms):
            try:
                m = d.icdf(jnp.asarray(0.5))
            except (NotImplementedError, AttributeError, ImportError):
                # e.g. Gamma.icdf needs tensorflow_probability: use a sample median instead.
                m = jnp.median(d.sample(jax.random.PRNGKey(0), (1001,)))
            out.append(float(t.inv(m)))
        return np.asarray(out)


def centre_of(logx: Mapping[str, Any]) -> dict[str, Any]:
    """The runs' mean log input, the reference scale of :meth:`_Posterior.to_reference`."""
    return {k: jnp.mean(v) for k, v in logx.items()}


_POSTERIORS: dict[tuple[str, str], _Posterior] = {}


def _posterior(spec: ModelSpec, dtype: Any) -> _Posterior:
    key = (spec.id, np.dtype(dtype).name)
    if key not in _POSTERIORS or _POSTERIORS[key].spec.law is not spec.law:
        _POSTERIORS[key] = _Posterior(spec)
    return _POSTERIORS[key]


def _laplace(post: _Posterior, logx: Mapping[str, Any], y: Any, rng: np.random.Generator, dtype: Any, n_starts: int = 8) -> Laplace:
    """MAP by L-BFGS from the prior median and prior draws, then the Hessian at the best mode."""
    logx = {k: jnp.asarray(v, dtype=dtype) for k, v in logx.items()}
    y = jnp.asarray(y, dtype=dtype)

    def fun(f: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = post.value_and_grad(jnp.asarray(f, dtype=dtype), logx, y)
        v, g = float(v), np.asarray(g, dtype=np.float64)
        if not math.isfinite(v) or not np.all(np.isfinite(g)):
            return 1e30, np.zeros_like(f)
        return v, g

    starts = [post.prior_median()] + list(post.prior_draws(rng, n_starts - 1))
    best = None
    # One BLAS thread: L-BFGS on a handful of parameters is latency-bound, and BLAS thread
    # pools make each step many times slower on a busy machine.
    with threadpool_limits(1):
        for start in starts:
            if fun(start)[0] >= 1e30:
                continue
            res = scipy.optimize.minimize(fun, start, jac=True, method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-9})
            if best is None or res.fun < best.fun:
                best = res
    if best is None:
        raise BayescaleError(f"spec {post.spec.name!r}: the log density is not finite at any starting point; check the priors and the runs")
    mode = jnp.asarray(best.x, dtype=dtype)
    hess = np.asarray(post.hessian(mode, logx, y), dtype=np.float64)
    hess = 0.5 * (hess + hess.T)
    converged = bool(np.all(np.isfinite(hess)))
    hess = np.nan_to_num(hess)
    w, v = np.linalg.eigh(hess)
    converged = converged and bool(np.all(w > 0))
    w = np.clip(w, 1e-8 * max(float(np.abs(w).max()), 1e-12), None)
    cov = (v / w) @ v.T
    value = {k: float(val) for k, val in post.constrain(mode).items()}
    return Laplace(mode=np.asarray(best.x, dtype=np.float64), cov=cov, value=value, log_density=-float(best.fun), converged=converged)


def _runner(post: _Posterior, chain_method: str, d: int) -> Any:
    """A compiled multi-chain NUTS run for this spec, reused across fits of the same shape.

    The data, the Laplace mode and its Cholesky factor are *arguments* of the compiled
    function (NumPyro's ``hmc`` with ``potential_fn_gen``), not constants baked into it, so
    a second fit of the same spec and table size skips compilation entirely.
    """
    s = post.spec.sampler
    cache_key = (s.chains, s.warmup, s.draws, s.dense_mass, s.target_accept, s.max_tree_depth, chain_method, d)
    if cache_key in post.runners:
        return post.runners[cache_key]

    def potential_gen(logx: Any, y: Any, mode: Any, chol: Any) -> Any:
        return post.whitened_potential(mode, chol, logx, y)

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen, algo="NUTS")

    def one_chain(key: Any, u0: Any, logx: Any, y: Any, mode: Any, chol: Any) -> Any:
        args = (logx, y, mode, chol)
        state = init_kernel(
            u0,
            num_warmup=s.warmup,
            dense_mass=s.dense_mass,
            target_accept_prob=s.target_accept,
            max_tree_depth=s.max_tree_depth,
            model_args=args,
            rng_key=key,
        )

        def warm(state: Any, _: Any) -> Any:
            return sample_kernel(state, model_args=args), None

        def draw(state: Any, _: Any) -> Any:
            state = sample_kernel(state, model_args=args)
            return state, (state.z, {"diverging": state.diverging, "num_steps": state.num_steps, "accept_prob": state.accept_prob, "energy": state.energy, "potential_energy": state.potential_energy})

        state, _ = jax.lax.scan(warm, state, None, length=s.warmup)
        state, (z, extra) = jax.lax.scan(draw, state, None, length=s.draws)
        return z, extra, state.adapt_state.step_size

    axes = (0, 0, None, None, None, None)
    if chain_method == "parallel":
        run = jax.pmap(one_chain, in_axes=axes)
    elif chain_method == "sequential":
        run = jax.jit(lambda k, u, *a: jax.lax.map(lambda ku: one_chain(ku[0], ku[1], *a), (k, u)))
    else:
        run = jax.jit(jax.vmap(one_chain, in_axes=axes))
    post.runners[cache_key] = run
    return run


def _nuts(post: _Posterior, logx: Mapping[str, Any], y: Any, lap: Laplace, rng: np.random.Generator, dtype: Any, chain_method: str, progress: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """NUTS in whitened coordinates ``z = mode + L u`` (L the Laplace Cholesky factor).

    In ``u`` the posterior is close to a standard normal, so step size and mass-matrix
    adaptation start near their answer and NumPyro's shrinkage of the mass matrix
    towards the identity is harmless. Returns unconstrained draws (chain, draw, d).
    """
    s = post.spec.sampler
    d = lap.mode.size
    logx = {k: jnp.asarray(v, dtype=dtype) for k, v in logx.items()}
    y = jnp.asarray(y, dtype=dtype)
    centre = centre_of(logx)
    if s.init == "map":
        # The Laplace fit moved to the sampler's reference-scale coordinates: its mode mapped,
        # its covariance carried by the map's Jacobian (J cov J^T).
        mode0 = jnp.asarray(lap.mode, dtype=dtype)
        jac = np.asarray(jax.jacobian(lambda f: post.to_reference(f, centre))(mode0), dtype=np.float64)
        mode = post.to_reference(mode0, centre)
        cov = jac @ lap.cov @ jac.T
        chol = jnp.asarray(np.linalg.cholesky(0.5 * (cov + cov.T)), dtype=dtype)
        # Dispersed starts (1.5x the Laplace scale) so r-hat can see chains that disagree.
        init = jnp.asarray(1.5 * rng.standard_normal((s.chains, d)), dtype=dtype)
    else:
        mode = jnp.zeros(d, dtype=dtype)
        chol = jnp.eye(d, dtype=dtype)
        init = jnp.asarray(rng.uniform(-2, 2, (s.chains, d)), dtype=dtype)
    key = jax.random.PRNGKey(int(rng.integers(2**31)))
    if progress:
        # NumPyro's driver shows a progress bar; it compiles anew for every fit.
        potential = post.whitened_potential(mode, chol, logx, y)
        kernel = NUTS(potential_fn=potential, dense_mass=s.dense_mass, target_accept_prob=s.target_accept, max_tree_depth=s.max_tree_depth)
        mcmc = MCMC(kernel, num_warmup=s.warmup, num_samples=s.draws, num_chains=s.chains, chain_method=chain_method, progress_bar=True)
        mcmc.run(key, init_params=init if s.chains > 1 else init[0], extra_fields=("diverging", "num_steps", "accept_prob", "energy", "potential_energy"))
        u = np.asarray(mcmc.get_samples(group_by_chain=True)).reshape(s.chains, s.draws, d)
        ex = {k: np.asarray(v).reshape(s.chains, s.draws) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
        step = np.asarray(mcmc.last_state.adapt_state.step_size, dtype=np.float64).reshape(-1, 1)
    else:
        run = _runner(post, chain_method, d)
        keys = jax.random.split(key, s.chains)
        u, ex, step = run(keys, init, logx, y, mode, chol)
        u = np.asarray(u).reshape(s.chains, s.draws, d)
        ex = {k: np.asarray(v).reshape(s.chains, s.draws) for k, v in ex.items()}
        step = np.asarray(step, dtype=np.float64).reshape(-1, 1)
    w = jnp.asarray(np.asarray(mode) + u @ np.asarray(chol).T, dtype=dtype)  # reference-scale draws
    z = np.asarray(post.to_reference(w, centre, inverse=True), dtype=np.float64)
    stats = {
        "diverging": ex["diverging"].astype(bool),
        "n_steps": ex["num_steps"].astype(np.int64),
        "tree_depth": np.ceil(np.log2(ex["num_steps"].astype(np.float64) + 1)).astype(np.int64),
        "acceptance_rate": ex["accept_prob"].astype(np.float64),
        "energy": ex["energy"].astype(np.float64),
        "lp": -ex["potential_energy"].astype(np.float64),
        "step_size": np.broadcast_to(step, (s.chains, s.draws)).copy(),
    }
    return z, stats


def _log_likelihood(spec: ModelSpec, samples: Mapping[str, np.ndarray], logx: Mapping[str, np.ndarray], y: np.ndarray) -> np.ndarray:
    """Pointwise log likelihood, shape (chain, draw, run)."""
    theta = {p: jnp.asarray(samples[p])[..., None] for p in spec.law.params}
    mu = spec.law.log_loss(theta, {k: jnp.asarray(v) for k, v in logx.items()}, jnp)
    noise = {k: jnp.asarray(samples[k])[..., None] for k in noise_names(spec)}
    return np.asarray(observation_dist(spec, mu, noise).log_prob(jnp.asarray(y)), dtype=np.float64)


def _stringify(x: Any) -> str:
    return json.dumps(x, sort_keys=True, default=str)


@dataclass(frozen=True)
class Fit:
    """What was learned: a spec, the runs it saw, and the ArviZ result.

    Attributes
    ----------
    spec : ModelSpec
    idata : arviz.InferenceData
        Groups ``posterior`` (law parameters on their natural scale, ``sigma``,
        dims ``(chain, draw)``), ``sample_stats``, ``log_likelihood``,
        ``observed_data`` (``log_loss``, dim ``run``) and ``constant_data``.
    runs : pandas.DataFrame
        The validated runs table the fit used.
    method : str
        ``"nuts"``, ``"laplace"``, ``"pymc"`` (the PyMC backend) or ``"fixed"`` (given draws, for tests).
    seed : int
    """

    spec: ModelSpec
    idata: Any
    runs: pd.DataFrame = field(repr=False)
    method: str = "nuts"
    seed: int = 0
    laplace: Laplace | None = field(default=None, repr=False, compare=False)

    # --------------------------------------------------------------- access
    @property
    def posterior(self) -> xr.Dataset:
        """Posterior draws, dims ``(chain, draw)``."""
        return self.idata.posterior

    @property
    def var_names(self) -> list[str]:
        """Law parameters, noise parameters, then ``drift`` when the spec has an extrapolation prior."""
        extra = [DRIFT] if DRIFT in self.posterior else []
        return list(self.spec.law.params) + noise_names(self.spec) + extra

    def noise_params(self) -> dict[str, np.ndarray]:
        """Draws of the likelihood's noise parameters, shaped ``(chain, draw, 1)`` to broadcast over points."""
        return {k: self.posterior[k].values[..., None] for k in noise_names(self.spec)}

    def log_loss(self, points: Any) -> np.ndarray:
        """Log of the law's loss at ``points`` per draw, shape ``(chain, draw, point)``, including the
        extrapolation drift (``drift * decades beyond the largest run``) when the spec has one."""
        frame = points_frame(points)
        logx = law_inputs(self.spec, frame, np.float64)
        theta = {p: self.posterior[p].values[..., None] for p in self.spec.law.params}
        log_mu = np.asarray(self.spec.law.log_loss(theta, {k: v[None, None, :] for k, v in logx.items()}, np), dtype=float)
        if DRIFT in self.posterior:
            log_mu = log_mu + self.posterior[DRIFT].values[..., None] * decades_beyond(self.spec, self.runs, frame)[None, None, :]
        return log_mu

    def draws(self, var_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Posterior draws as NumPy arrays shaped ``(chain, draw)``."""
        return {v: self.posterior[v].values for v in (var_names or self.var_names)}

    # ------------------------------------------------------------ predict
    def predict(self, points: Any, *, noise: bool = False, seed: int = 0) -> xr.DataArray:
        """Draws of the loss at new points, dims ``(chain, draw, point)``.

        Parameters
        ----------
        points : mapping, DataFrame or list of mappings
            Inputs of the law, e.g. ``{"N": 7e9, "D": 1.4e12}`` or arrays of them.
            A missing ``C`` is ``6 N D``; a missing ``D`` is ``C / (6 N)``.
        noise : bool
            Add observation noise (the likelihood's, on log loss), i.e. predict a
            new run's measured loss rather than the law's value.
        seed : int
            Seed for the noise draws.

        Returns
        -------
        xarray.DataArray
            Named ``"loss"``, with coordinates of the inputs along ``point``.

        Examples
        --------
        >>> band = fit.predict({"N": 7e9, "D": 1.4e12})      # doctest: +SKIP
        >>> band.quantile([0.05, 0.5, 0.95], dim=("chain", "draw"))  # doctest: +SKIP
        """
        frame = points_frame(points)
        log_mu = self.log_loss(frame)
        if noise:
            log_mu = sample_observations(self.spec, log_mu, self.noise_params(), seed)
        coords = {"point": np.arange(len(frame))}
        for col in ("N", "D", "C"):
            if col in frame:
                coords[col] = ("point", frame[col].to_numpy(dtype=float))
        return xr.DataArray(np.exp(log_mu), dims=("chain", "draw", "point"), coords=coords, name="loss")

    # --------------------------------------------------------- summaries
    def summary(self, *, var_names: Sequence[str] | None = None, ci_prob: float = 0.9) -> pd.DataFrame:
        """Posterior mean, sd, median, equal-tailed ``ci_prob`` interval, ESS and r-hat."""
        if not 0 < ci_prob < 1:
            raise BayescaleError(f"ci_prob must be in (0, 1), got {ci_prob!r}")
        names = list(var_names or self.var_names + self.identified_names)
        unknown = [v for v in names if v not in self.posterior]
        if unknown:
            raise BayescaleError(f"var_names {unknown} are not in the posterior; it has {list(self.posterior.data_vars)}")
        return _arviz.summary_table(self.idata, names, ci_prob)

    @property
    def identified_names(self) -> list[str]:
        """Identifiable combinations added when the law's inputs are collinear."""
        return [v for v in json.loads(_arviz.attrs(self.idata).get("identified", "[]"))]

    def diagnostics(self) -> dict[str, Any]:
        """Sampling diagnostics and the plain-words problems they show.

        Returns
        -------
        dict
            ``method``, ``chains``, ``draws``, ``divergences``, ``max_tree_depth_hits``,
            ``table`` (r-hat, ESS per variable as a DataFrame), ``max_r_hat``,
            ``min_ess_bulk``, ``min_ess_tail``, ``sampling_seconds``, ``problems`` (list of str).
        """
        a = _arviz.attrs(self.idata)
        chains = int(self.posterior.sizes["chain"])
        draws = int(self.posterior.sizes["draw"])
        out: dict[str, Any] = {
            "method": self.method,
            "chains": chains,
            "draws": draws,
            "sampling_seconds": float(a.get("sampling_seconds", float("nan"))),
            "chain_method": a.get("chain_method", ""),
            "device": a.get("device", ""),
        }
        if self.method in ("laplace", "psis", "fixed") or "sample_stats" not in self.idata.groups():
            out.update(problems=[], divergences=0, max_tree_depth_hits=0)
            out["note"] = (
                "Laplace approximation: a Gaussian at the mode in the unconstrained space, no MCMC diagnostics."
                if self.method == "laplace"
                else "no sampler statistics in this result"
            )
            if self.method == "psis":
                k = float(a.get("pareto_k", float("nan")))
                out["pareto_k"] = k
                out["note"] = f"Laplace approximation corrected by importance sampling, Pareto k {k:.2f} (reliable at 0.7 or below); no MCMC diagnostics."
                if not k <= _importance.K_MAX:
                    out["problems"] = [f"Pareto k {k:.2f} > {_importance.K_MAX}: the importance-sampling draws are unreliable and the bands approximate; refit with method='nuts'."]
            return out
        table = _arviz.diagnostics_table(self.idata, self.var_names)
        stats = self.idata.sample_stats
        div = int(stats["diverging"].values.sum())
        depth_hits = int((stats["tree_depth"].values >= self.spec.sampler.max_tree_depth).sum()) if "tree_depth" in stats else 0
        out.update(
            table=table,
            divergences=div,
            max_tree_depth_hits=depth_hits,
            max_r_hat=float(table["r_hat"].max()),
            min_ess_bulk=float(table["ess_bulk"].min()),
            min_ess_tail=float(table["ess_tail"].min()),
        )
        out["problems"] = _problems(out, table, chains)
        return out

    # --------------------------------------------------------- save / load
    def save(self, path: str | Path) -> Path:
        """Write the fit to netCDF (atomically). :meth:`load` reads it back."""
        return _arviz.save(self.idata, path)

    @classmethod
    def load(cls, path: str | Path, *, spec: ModelSpec | str | Path | None = None, check_spec: bool = True) -> "Fit":
        """Read a fit written by :meth:`save`.

        Parameters
        ----------
        path : path
        spec : ModelSpec or path, optional
            The spec the fit should have been made with. When omitted and the fit
            records the spec file it came from, that file is read and compared.
        check_spec : bool
            Set False to load a fit whose spec has changed since (at your own risk).

        Raises
        ------
        StaleFitError
            If the spec has changed since the fit was made.
        BayescaleError
            If the file is missing or is not a bayescale fit.
        """
        path = Path(path)
        if not path.is_file():
            raise BayescaleError(f"fit file {str(path)!r} not found")
        try:
            idata = _arviz.load(path)
            a = _arviz.attrs(idata)
            stored = json.loads(a["bayescale_spec"])
        except (KeyError, OSError, ValueError) as e:
            raise BayescaleError(f"{path} is not a bayescale fit file ({type(e).__name__}: {e})") from None
        from .spec import spec_from_dict

        saved_spec = spec_from_dict(stored, path=a.get("spec_path") or None)
        if check_spec:
            current = None
            if spec is not None:
                current = load_spec(spec)
            elif a.get("spec_path") and Path(a["spec_path"]).is_file():
                current = load_spec(a["spec_path"])
            if current is not None and current.model_id != saved_spec.model_id:
                changed = [k for k in ("law", "priors", "likelihood") if current.to_dict()[k] != saved_spec.to_dict()[k]]
                raise StaleFitError(
                    f"{path} was fitted with spec {saved_spec.name!r} (model id {saved_spec.model_id}) but "
                    f"{current.path or 'the given spec'} now has model id {current.model_id} (changed: "
                    f"{', '.join(changed)}): refit it, or load with check_spec=False"
                )
        runs = _runs_from_idata(idata)
        return cls(spec=saved_spec, idata=idata, runs=runs, method=a.get("method", "nuts"), seed=int(a.get("seed", 0)))


def _problems(d: Mapping[str, Any], table: pd.DataFrame, chains: int) -> list[str]:
    problems = []
    bad_rhat = table.index[table["r_hat"] > RHAT_MAX].tolist()
    if bad_rhat:
        problems.append(
            f"r-hat above {RHAT_MAX} for {bad_rhat} (max {d['max_r_hat']:.3f}): the chains disagree. "
            "Run more warmup and draws (sampler.warmup / sampler.draws), or tighten the priors if the data "
            "cannot pin these parameters down."
        )
    ess_min = ESS_PER_CHAIN_MIN * chains
    low = table.index[(table["ess_bulk"] < ess_min) | (table["ess_tail"] < ess_min)].tolist()
    if low:
        problems.append(
            f"effective sample size below {ess_min} for {low} (min bulk {d['min_ess_bulk']:.0f}, tail "
            f"{d['min_ess_tail']:.0f}): intervals are noisy. Increase sampler.draws."
        )
    if d["divergences"]:
        problems.append(
            f"{d['divergences']} divergent transitions: the sampler missed part of the posterior. Raise "
            "sampler.target_accept (e.g. 0.95 or 0.99), or reparameterise / tighten the priors."
        )
    if d["max_tree_depth_hits"]:
        problems.append(
            f"{d['max_tree_depth_hits']} draws hit the maximum tree depth: sampling is inefficient. Raise "
            "sampler.max_tree_depth or use more informative priors."
        )
    return problems


def _runs_from_idata(idata: Any) -> pd.DataFrame:
    const = idata.constant_data
    frame = pd.DataFrame({"run_id": [str(r) for r in const["run"].values]})
    for v in const.data_vars:
        frame[v] = const[v].values
    frame["loss"] = np.exp(idata.observed_data[OBS].values)
    return frame


# ----------------------------------------------------------------- fitting


def _check_identifiability(spec: ModelSpec, logx: Mapping[str, np.ndarray]) -> tuple[bool, float]:
    """Whether the law's log inputs are collinear (e.g. C = 6ND), and log k for C = k N D."""
    if len(logx) < 2:
        return False, 0.0
    cols = list(logx.values())
    X = np.column_stack([np.ones_like(cols[0])] + cols)
    sv = np.linalg.svd(X - 0, compute_uv=False)
    collinear = sv[-1] < 1e-8 * sv[0] * math.sqrt(X.shape[0])
    log_k = 0.0
    if {"N", "D", "C"} <= set(logx):
        log_k = float(np.median(logx["C"] - logx["N"] - logx["D"]))
    return bool(collinear), log_k


def fit(
    spec: ModelSpec | str | Path,
    runs: Any,
    *,
    seed: int = 0,
    method: str = "nuts",
    chains: int | None = None,
    warmup: int | None = None,
    draws: int | None = None,
    progress: bool = False,
) -> Fit:
    """Fit a scaling law to training runs.

    Parameters
    ----------
    spec : ModelSpec or path
        The model (law, priors, likelihood, sampler settings); a path or bundled name is loaded.
    runs : DataFrame or path
        The runs table (see :func:`bayescale.load_runs`).
    seed : int
        The one seed for everything random in the fit.
    method : {"nuts", "laplace", "psis"}
        ``"nuts"`` (default) samples the posterior. ``"laplace"`` returns draws from
        the Gaussian approximation at the MAP estimate: seconds, for quick looks.
        ``"psis"`` corrects those draws by adaptive Pareto-smoothed importance sampling
        (:mod:`bayescale._importance`): nearly as fast, and it follows a skewed posterior
        (an asymptote ``E`` the runs barely constrain) where the Gaussian cannot. Its Pareto k
        is in ``fit.idata.attrs["pareto_k"]``; above 0.7 a :class:`ConvergenceWarning` says
        the draws are unreliable.
    chains, warmup, draws : int, optional
        Override the spec's sampler settings.
    progress : bool
        Show NumPyro's progress bar.

    Returns
    -------
    Fit

    Raises
    ------
    SpecError, RunsTableError
        For bad input.

    Warns
    -----
    ConvergenceWarning
        When r-hat > 1.01, ESS is low or there were divergences.
    IdentifiabilityWarning
        When the runs cannot separate some parameters (e.g. ``C = 6 N D`` in the multiplicative law).

    Examples
    --------
    >>> import bayescale as bs                                   # doctest: +SKIP
    >>> fit = bs.fit("chinchilla", bs.datasets.load_chinchilla(), seed=0)  # doctest: +SKIP
    >>> fit.summary()                                            # doctest: +SKIP
    """
    spec = load_spec(spec)
    if method not in METHODS:
        raise BayescaleError(f"method must be one of {list(METHODS)}, got {method!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BayescaleError(f"seed must be a non-negative integer, got {seed!r}")
    overrides = {k: v for k, v in {"chains": chains, "warmup": warmup, "draws": draws}.items() if v is not None}
    if overrides:
        try:
            spec = spec.with_sampler(**overrides)
        except SpecError as e:
            raise BayescaleError(str(e)) from None
    table = load_runs(runs)
    s = spec.sampler
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    cpu = jax.devices("cpu")[0]
    # MAP + Laplace always in float64 on the CPU: a few hundred tiny steps, precision matters.
    with jax.enable_x64(True), jax.default_device(cpu):
        logx = law_inputs(spec, table, np.float64)
        y = np.log(table["loss"].to_numpy(dtype=np.float64))
        post64 = _posterior(spec, np.float64)
        lap = _laplace(post64, logx, y, rng, np.float64)
    device = _sampling_device(s.device, len(table))
    # float64 costs little on a CPU; GPUs are fast in float32, and the laws are written in log
    # space so float32 is accurate there.
    dtype = np.float32 if device.platform == "gpu" else np.float64
    chain_method = ""
    pareto_k = None
    if method in ("laplace", "psis"):
        warn_if_degenerate_laplace(spec, lap, len(table), stacklevel=3)
        stats: dict[str, np.ndarray] = {}
        if method == "laplace":
            flat = rng.multivariate_normal(lap.mode, lap.cov, size=(s.chains, s.draws))
        else:
            with jax.enable_x64(True), jax.default_device(cpu):
                if not hasattr(post64, "_many"):
                    post64._many = jax.jit(jax.vmap(post64.potential, in_axes=(0, None, None)))
                many = post64._many
                chol = np.linalg.cholesky(0.5 * (lap.cov + lap.cov.T) + 1e-12 * np.eye(lap.mode.size))
                jlogx = {k: jnp.asarray(v) for k, v in logx.items()}
                jy = jnp.asarray(y)
                xs, k = _importance.draws(lambda x: -np.asarray(many(jnp.asarray(x[0]), jlogx, jy))[None], lap.mode[None], chol[None], rng, s.chains * s.draws)
            flat = xs[0].reshape(s.chains, s.draws, -1)
            pareto_k = float(k[0])
    else:
        chain_method = _chain_method(s.chain_method, s.chains, device)
        with jax.enable_x64(dtype == np.float64), jax.default_device(device):
            post = _posterior(spec, dtype)
            flat, stats = _nuts(post, logx, y, lap, rng, dtype, chain_method, progress)
    with jax.enable_x64(True), jax.default_device(cpu):
        samples = {k: np.asarray(v, dtype=np.float64) for k, v in post64.constrain_many(jnp.asarray(flat, dtype=np.float64)).items()}
        ll = _log_likelihood(spec, samples, logx, y)
    seconds = time.perf_counter() - t0
    samples = {k: np.asarray(v, dtype=np.float64) for k, v in samples.items()}

    identified = add_identified(spec, samples, logx)
    add_drift(spec, samples, rng)
    attrs = fit_attrs(
        spec,
        table,
        method=method,
        seed=seed,
        seconds=seconds,
        identified=identified,
        chain_method=chain_method,
        device=f"{device.platform}:{device.device_kind}" if method == "nuts" else "cpu",
        dtype=np.dtype(dtype).name,
        laplace_mode=json.dumps(lap.value),
    )
    if pareto_k is not None:
        attrs["pareto_k"] = pareto_k
    idata = build_idata(spec, table, samples, stats, ll, y, attrs)
    result = Fit(spec=spec, idata=idata, runs=table, method=method, seed=int(seed), laplace=lap)
    if method in ("nuts", "psis"):
        warn_if_unconverged(result, stacklevel=3)
    return result


def warn_if_degenerate_laplace(spec: ModelSpec, lap: Laplace, n_runs: int, stacklevel: int = 2) -> None:
    """Warn when a Laplace approximation sits at a degenerate mode.

    With no more runs than law parameters the law can pass through every run, the posterior
    mode sends the noise scale to zero and the Gaussian around it has (almost) no width: the
    bands would look certain when they are not. NUTS explores the whole posterior, where the
    noise prior keeps the scale honest.
    """
    k = len(spec.law.params)
    noise = {n: v for n, v in lap.value.items() if n not in spec.law.params}
    scale = noise.get("sigma")
    reasons = []
    if n_runs <= k:
        reasons.append(f"{n_runs} runs for {k} law parameters ({', '.join(spec.law.params)}) can be fitted exactly")
    if not lap.converged:
        reasons.append("the Hessian at the mode is not positive definite")
    if scale is not None and scale < 1e-4:
        reasons.append(f"the noise scale sigma collapsed to {scale:.2g}")
    if reasons:
        warnings.warn(
            f"spec {spec.name!r}: the Laplace approximation is degenerate ({'; '.join(reasons)}), so its bands are "
            "far too narrow; fit with method='nuts' or add runs",
            ConvergenceWarning,
            stacklevel=stacklevel + 1,
        )


def warn_if_unconverged(fit: Fit, stacklevel: int = 2) -> None:
    """Raise a :class:`ConvergenceWarning` listing the fit's sampling problems, if any."""
    problems = fit.diagnostics()["problems"]
    if problems:
        warnings.warn("sampling may not be trustworthy: " + " ".join(problems), ConvergenceWarning, stacklevel=stacklevel)


def add_identified(spec: ModelSpec, samples: dict[str, np.ndarray], logx: Mapping[str, np.ndarray]) -> list[str]:
    """Warn when the law's inputs are collinear in these runs and add the identified
    combinations (if the law declares them) to ``samples``; returns their names."""
    collinear, log_k = _check_identifiability(spec, logx)
    if not collinear:
        return []
    law = spec.law
    if law.identified is None:
        warnings.warn(
            f"the inputs {list(logx)} of law {law.name!r} are collinear in log space in these runs, so some "
            "parameters are identified only through their combinations and the priors.",
            IdentifiabilityWarning,
            stacklevel=3,
        )
        return []
    identified = []
    for k, v in law.identified({p: samples[p] for p in law.params}, log_k).items():
        samples[k] = np.asarray(v, dtype=np.float64)
        identified.append(k)
    warnings.warn(
        f"the runs cannot separate all parameters of law {law.name!r}: its inputs are collinear in log "
        f"space (C = {math.exp(log_k):.3g}·N·D in every run). Only these combinations are identified by "
        f"the data: {identified} (reported in the posterior and summary); the individual parameters "
        f"{list(law.params)} follow the priors along that ridge. ({law.description})",
        IdentifiabilityWarning,
        stacklevel=3,
    )
    return identified


def fit_attrs(spec: ModelSpec, table: pd.DataFrame, *, method: str, seed: int, seconds: float, identified: Sequence[str], extra_versions: Mapping[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """Provenance stored with every fit: spec, its ids, data hash, method, seed, timings, versions."""
    return {
        "bayescale_spec": spec.to_json(),
        "spec_id": spec.id,
        "model_id": spec.model_id,
        "spec_path": spec.path or "",
        "method": method,
        "seed": int(seed),
        "runs_hash": runs_hash(table),
        "flops_convention": table.attrs.get("flops_convention", ""),
        "sampling_seconds": float(seconds),
        "identified": json.dumps(list(identified)),
        "versions": _stringify({**_versions(), **(extra_versions or {})}),
        **extra,
    }


def build_idata(spec: ModelSpec, table: pd.DataFrame, samples: Mapping[str, np.ndarray], stats: Mapping[str, np.ndarray] | None, ll: np.ndarray, y: np.ndarray, attrs: Mapping[str, Any]) -> Any:
    """The result in ArviZ layout: posterior, sample_stats, log_likelihood, observed and constant data."""
    const_cols = [c for c in dict.fromkeys(["N", "D", "C", *spec.columns]) if c in table.columns]
    return _arviz.from_draws(
        samples,
        sample_stats=stats or None,
        log_likelihood={OBS: np.asarray(ll, dtype=np.float64)},
        observed_data={OBS: np.asarray(y, dtype=np.float64)},
        constant_data={c: table[c].to_numpy(dtype=np.float64) for c in const_cols},
        coords={"run": table["run_id"].astype(str).tolist()},
        dims={OBS: ["run"], **{c: ["run"] for c in const_cols}},
        attrs=attrs,
    )


def _versions() -> dict[str, str]:
    from . import __version__

    return {"bayescale": __version__, "numpyro": numpyro.__version__, "jax": jax.__version__, "arviz": _arviz.version()}


__all__ = ["Fit", "Laplace", "enable_compilation_cache", "fit", "make_model", "points_frame"]
