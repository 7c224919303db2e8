"""The sampling engine: MAP + Laplace, one compiled whitened-NUTS runner, importance sampling,
the choice of device and chain method, and JAX's compilation cache.

Everything here runs on a :class:`bayescale.model.Posterior`: one fit (:func:`laplace`,
:func:`nuts`) or many independent units side by side (:func:`map_units`, :func:`nuts_units`,
the learning curves of :mod:`bayescale.curves`). The MAP search is L-BFGS from several starts,
finished by Newton (:func:`bayescale._optimise.search`), the Laplace covariance the inverse Hessian at the mode
(:func:`inverse_hessian`). NUTS runs in coordinates whitened by the Laplace approximation,
``z = mode + L u``: there the posterior is close to a standard normal, so step size and
mass-matrix adaptation start near their answer.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS
from numpyro.infer.hmc import hmc
from threadpoolctl import threadpool_limits

from . import _exported, _importance
from ._optimise import INFINITE, batched, guarded, minimise, newton_units, search
from .errors import BayescaleError
from .model import Posterior, pointwise_log_likelihood
from .modes import STUCK_ACCEPT as STUCK_ACCEPT  # re-exported: the re-stepping rule reads it
from .modes import Mode, allocate, cluster
from .modes import stuck as is_stuck
from .spec import SamplerSettings

#: Below this many runs the CPU samples faster than a GPU: each leapfrog step is a few
#: tiny kernels, and launch latency dominates. Measured on an H100 host (BENCHMARKS.md,
#: "GPU"): 240 runs, CPU 3.1 s vs GPU 5.4 s per warm fit; 2000 runs, 10.8 s vs 3.7 s.
GPU_MIN_RUNS = 1000
#: NUTS statistics kept per draw.
EXTRA_FIELDS = ("diverging", "num_steps", "accept_prob", "energy", "potential_energy")
#: The smallest table-size bucket (:func:`bucket`).
MIN_BUCKET = 16
#: At most this many batches of ``draws`` per chain while the chains mix slowly (:func:`nuts`). On the
#: issue-15 table's slowest ridges (Farseer's curvature ``beta``, Chinchilla's law on 14 runs) r-hat
#: fell below 1.01 after 4-5 batches; 3 left them at 1.013-1.022.
MAX_BATCHES = 6
MAX_RESTEPS = 2  # rounds of giving stuck chains a healthy chain's step size (halved each further round)


# ------------------------------------------------------------- device setup


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
    you; the ``bayescale`` command line turns it on), and stores beside it, in
    ``path/bayescale-exported``, the traced form of the sampler and MAP functions of the bundled
    laws (:mod:`bayescale._exported`), so a fresh process skips their tracing too. ``path``
    defaults to ``$BAYESCALE_CACHE/jax`` or ``~/.cache/bayescale/jax``.
    """
    base = (
        Path(path)
        if path is not None
        else Path(os.environ.get("BAYESCALE_CACHE") or Path.home() / ".cache" / "bayescale") / "jax"
    )
    base.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(base))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # The traced samplers beside it (the cache skips XLA's compilation, not JAX's tracing).
    _exported.enable(base / "bayescale-exported")
    return base


# ---------------------------------------------------------- table-size buckets


def bucket(n: int) -> int:
    """The padded table size for ``n`` runs: the smallest of 16, 24, 32, 48, 64, 96, ... (powers
    of two and 1.5 times powers of two) that holds them.

    Every compiled function of a fit (the MAP's value and gradient, the Hessian, the NUTS
    runner) is compiled per array shape, so each new table size used to compile anew. With
    buckets, tables of 33 to 48 runs share one compilation (in the process and in JAX's
    persistent cache) while padding costs at most half a table more likelihood terms (about
    a fifth on average), and per-step time on a small table is mostly fixed overhead anyway;
    up to 1000 runs there are 13 buckets.
    """
    size = MIN_BUCKET
    while size < n:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


def padded(logx: Mapping[str, Any], y: Any, dtype: Any) -> tuple[dict[str, Any], Any, Any, int]:
    """The runs padded to their :func:`bucket`: ``(logx, y, mask, n)`` as JAX arrays of ``dtype``.

    Padding rows copy the first run (finite inputs, so gradients stay finite) and have mask 0:
    the potential leaves out their likelihood terms and the reference scale
    (:func:`bayescale.model.centre_of`) averages the ``n`` real runs only, so the posterior is
    the unpadded one (the sums' rounding may differ)."""
    y = np.asarray(y)
    n = int(y.shape[-1])
    fill = np.zeros(bucket(n) - n, dtype=np.int64)

    def pad(v: Any) -> Any:
        v = np.asarray(v)
        return jnp.asarray(np.concatenate([v, v[..., fill]], axis=-1), dtype=dtype)

    mask = np.concatenate([np.ones(n), np.zeros(fill.size)])
    return {k: pad(v) for k, v in logx.items()}, pad(y), jnp.asarray(mask, dtype=dtype), n


def log_likelihood(post: Posterior, samples: Mapping[str, Any], logx: Mapping[str, Any], y: Any) -> np.ndarray:
    """:func:`bayescale.model.log_likelihood` of the runs (float64), compiled once per table-size
    bucket: computed on the :func:`padded` runs, the padding's columns dropped."""
    logx, y, _, n = padded(logx, y, np.float64)
    if "log_likelihood" not in post.batched:
        post.batched["log_likelihood"] = post._stored(partial(pointwise_log_likelihood, post.spec), "log_likelihood")
    return np.asarray(post.batched["log_likelihood"](samples, logx, y), dtype=np.float64)[..., :n]


# ------------------------------------------------------------------ MAP


@dataclass(frozen=True)
class Laplace:
    """MAP estimate and Laplace approximation in the unconstrained space."""

    mode: np.ndarray  # flat unconstrained mode
    cov: np.ndarray  # covariance of the Gaussian approximation (inverse Hessian)
    value: Mapping[str, float]  # mode on the constrained (natural) scale
    log_density: float
    converged: bool
    #: The distinct local modes the MAP search found (:func:`bayescale.modes.cluster`), best first;
    #: one for a unimodal posterior.
    modes: tuple[Mode, ...] = ()


def inverse_hessian(hess: np.ndarray, floor: float | None = None) -> tuple[np.ndarray, bool]:
    """The covariance at a mode from the Hessian of the potential there, and whether the Hessian
    is finite and positive definite. Eigenvalues are floored at ``floor`` (default: 1e-8 of the
    largest), so a flat direction gets a wide, finite variance."""
    h = 0.5 * (hess + hess.T)
    positive = bool(np.all(np.isfinite(h)))
    w, v = np.linalg.eigh(np.nan_to_num(h))
    positive = positive and bool(np.all(w > 0))
    w = np.clip(w, 1e-8 * max(float(np.abs(w).max()), 1e-12) if floor is None else floor, None)
    return (v / w) @ v.T, positive


def laplace(
    post: Posterior, logx: Mapping[str, Any], y: Any, rng: np.random.Generator, dtype: Any, n_starts: int = 8
) -> Laplace:
    """MAP of one fit from the prior median and prior draws (:func:`bayescale._optimise.search`:
    L-BFGS-B, then Newton to the mode), then the Hessian at the best mode.

    Every end point the search took to a mode is kept: :func:`bayescale.modes.cluster` groups them
    into distinct local modes (``Laplace.modes``). Everything drawn from ``rng`` is as before.
    The runs are :func:`padded` to their table-size bucket (one compilation per bucket)."""
    logx, y, mask, _ = padded(logx, y, dtype)

    fun = guarded(lambda f: post.value_and_grad(jnp.asarray(f, dtype=dtype), logx, y, mask))

    def hess(f: np.ndarray) -> np.ndarray:
        return np.asarray(post.hessian(jnp.asarray(f, dtype=dtype), logx, y, mask), dtype=np.float64)

    best = None
    ends = []
    # One BLAS thread: L-BFGS on a handful of parameters is latency-bound, and BLAS thread
    # pools make each step many times slower on a busy machine.
    with threadpool_limits(1):
        for start in post.starts(rng, n_starts):
            if fun(start)[0] >= INFINITE:
                continue
            res = search(fun, hess, start)
            ends.append(res)
            if best is None or res.fun < best.fun:
                best = res
    if best is None:
        raise BayescaleError(
            f"spec {post.spec.name!r}: the log density is not finite at any starting point; check the priors and the runs"
        )
    cov, converged = inverse_hessian(hess(best.x))
    value = {k: float(val) for k, val in post.constrain_one(jnp.asarray(best.x, dtype=dtype)).items()}
    # An end point Newton did not take to a mode is where the search stopped, not a mode.
    others = [r for r in ends if r is not best and r.success]
    with threadpool_limits(1):
        modes = _local_modes(post, fun, hess, [best, *others], cov, dtype)
    return Laplace(
        mode=np.asarray(best.x, dtype=np.float64),
        cov=cov,
        value=value,
        log_density=-float(best.fun),
        converged=converged,
        modes=modes,
    )


def _local_modes(post: Posterior, fun: Callable, hess: Callable, ends: list, best_cov: np.ndarray, dtype: Any) -> tuple:
    """The distinct modes among the search's end points (best first; the others by density)."""
    others = sorted((r for r in ends[1:] if r.fun < INFINITE), key=lambda r: r.fun)

    def local(x: np.ndarray) -> tuple[np.ndarray, bool]:
        return inverse_hessian(hess(x))

    def constrain(x: np.ndarray) -> dict[str, float]:
        return {k: float(v) for k, v in post.constrain_one(jnp.asarray(x, dtype=dtype)).items()}

    return cluster([(r.x, float(r.fun)) for r in [ends[0], *others]], local, lambda x: fun(x)[0], constrain, best_cov)


def map_units(
    post: Posterior,
    data: Sequence[Any],
    rng: np.random.Generator,
    n_starts: int,
    max_sd: float,
    *,
    gtol: float = 1e-7,
    ftol: float = 1e-13,
    solver: str = "lbfgs",
) -> tuple[np.ndarray, np.ndarray]:
    """MAP and Laplace covariance of independent units, shape (U, dim) and (U, dim, dim).

    ``data`` are the potential's data arguments with a leading unit axis. Each unit keeps its
    best end point over several starts (the prior median, then prior draws). A direction the
    data do not curve gets a standard deviation of at most ``max_sd``.

    ``solver="lbfgs"``: one L-BFGS run on the sum of the units' potentials per start (``gtol``,
    ``ftol``: L-BFGS-B's tolerances). ``solver="newton"``: each unit its own damped Newton run
    (:func:`bayescale._optimise.newton_units`) until its largest gradient component is below ``gtol``."""
    U = np.shape(jax.tree_util.tree_leaves(data)[0])[0]
    args = jax.tree_util.tree_map(jnp.asarray, tuple(data))
    if solver == "newton":  # as many starts as restarts: both Newton phases share one compiled shape
        n_starts = max(n_starts, U - 1)
    starts = np.stack([post.starts(rng, n_starts) for _ in range(U)], axis=1)  # (start, U, dim)
    with threadpool_limits(1):
        if solver == "newton":
            best_x, best_v = newton_units(post, args, starts, gtol)
        else:
            best_x, best_v = _lbfgs_units(post, args, starts, gtol, ftol)
    if not np.all(np.isfinite(best_v)):
        raise BayescaleError(f"law {post.spec.law.name!r}: the log density is not finite at any start for some curves")
    hess = np.asarray(batched(post)[1](jnp.asarray(best_x), *args), dtype=np.float64)
    covs = np.stack([inverse_hessian(h, floor=max_sd**-2)[0] for h in hess])
    return best_x, covs


def _lbfgs_units(
    post: Posterior, args: tuple, starts: np.ndarray, gtol: float, ftol: float
) -> tuple[np.ndarray, np.ndarray]:
    """Best end point per unit of one L-BFGS run on the sum of the units' potentials per start."""
    U = starts.shape[1]
    vg = batched(post)[0]
    best_x = np.array(starts[0])
    best_v = np.full(U, np.inf)
    for j in range(len(starts)):
        x0 = np.array(starts[j])
        (_, v0), _ = vg(jnp.asarray(x0), *args)
        bad = ~np.isfinite(np.asarray(v0))
        x0[bad] = starts[0][bad]  # a start with no finite density falls back to the prior median

        def total(f: np.ndarray) -> tuple[Any, Any]:
            (tot, _), g = vg(jnp.asarray(f.reshape(U, -1)), *args)
            return tot, g

        res = minimise(guarded(total), x0.reshape(-1), maxiter=5000, gtol=gtol, ftol=ftol, maxcor=30)
        x = res.x.reshape(U, -1)
        (_, v), _ = vg(jnp.asarray(x), *args)
        v = np.where(np.isfinite(np.asarray(v)), np.asarray(v), np.inf)
        better = v < best_v
        best_x[better], best_v[better] = x[better], v[better]
    return best_x, best_v


# ------------------------------------------------------- importance sampling


def psis(
    post: Posterior,
    data: Sequence[Any],
    modes: np.ndarray,
    chols: np.ndarray,
    rng: np.random.Generator,
    n: int,
    *,
    units: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` draws per unit by adaptive Pareto-smoothed importance sampling from Laplace
    approximations (:mod:`bayescale._importance`): draws (U, n, dim) and Pareto k (U,).

    ``units=False``: one fit, ``data`` its arguments and ``modes``/``chols`` with a leading axis
    of one. ``units=True``: ``data`` have a leading unit axis, like ``modes`` and ``chols``."""
    key = "psis_units" if units else "psis"
    if key not in post.batched:
        many = jax.vmap(post.potential, in_axes=(0,) + (None,) * len(data))
        post.batched[key] = post._stored(jax.vmap(many) if units else many, key)
    many = post.batched[key]
    args = jax.tree_util.tree_map(jnp.asarray, tuple(data))
    if units:
        log_p = lambda x: -np.asarray(many(jnp.asarray(x), *args))  # noqa: E731
    else:
        log_p = lambda x: -np.asarray(many(jnp.asarray(x[0]), *args))[None]  # noqa: E731
    return _importance.draws(log_p, modes, chols, rng, n)


# --------------------------------------------------------------------- NUTS


def runner(
    post: Posterior,
    s: SamplerSettings,
    chain_method: str,
    n_data: int,
    per_chain_data: bool = False,
    rows: int | None = None,
    resume: bool = False,
) -> Any:
    """A compiled multi-chain NUTS run on ``post``, reused across fits of the same shapes.

    ``run(keys, u0, *data)`` with ``data = (logx, y, mode, chol[, mask])``: the data, the
    Laplace mode and its Cholesky factor are *arguments* of the compiled function (NumPyro's
    ``hmc`` with ``potential_fn_gen``), not constants baked into it, so a second fit of the
    same spec and table-size bucket (``rows``, :func:`padded`) skips compilation entirely, one
    compiled runner per key of ``post.runners``. With ``per_chain_data`` every chain
    has its own data (the (unit, chain) pairs of curve fits, vectorised). Returns the draws
    of ``u`` (chain, draw, dim), the :data:`EXTRA_FIELDS` (chain, draw), each chain's step size, last
    position and inverse mass matrix. ``resume``: ``run(keys, u_last, step, inverse_mass, *data)`` draws
    on from there without warmup (the adapted step size and mass matrix kept), for :func:`nuts`'s extra draws.
    """
    cache_key = (
        s.chains,
        s.warmup,
        s.draws,
        s.dense_mass,
        s.target_accept,
        s.max_tree_depth,
        chain_method,
        post.dim,
        n_data,
        per_chain_data,
        rows,
        resume,
    )
    if cache_key in post.runners:
        return post.runners[cache_key]

    def potential_gen(logx: Any, y: Any, mode: Any, chol: Any, *mask: Any) -> Any:
        return post.whitened_potential(mode, chol, logx, y, *mask)

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen, algo="NUTS")

    def one_chain(key: Any, u0: Any, *args: Any) -> Any:
        # Resumed: no warmup, so the step size and mass matrix passed in are used as they are.
        adapted = dict(step_size=args[0], inverse_mass_matrix=args[1]) if resume else {}
        args = args[2:] if resume else args
        state = init_kernel(
            u0,
            num_warmup=0 if resume else s.warmup,
            dense_mass=s.dense_mass,
            target_accept_prob=s.target_accept,
            max_tree_depth=s.max_tree_depth,
            model_args=args,
            rng_key=key,
            **adapted,
        )

        def warm(state: Any, _: Any) -> Any:
            return sample_kernel(state, model_args=args), None

        def draw(state: Any, _: Any) -> Any:
            state = sample_kernel(state, model_args=args)
            return state, (state.z, {k: getattr(state, k) for k in EXTRA_FIELDS})

        if not resume:
            state, _ = jax.lax.scan(warm, state, None, length=s.warmup)
        state, (z, extra) = jax.lax.scan(draw, state, None, length=s.draws)
        return z, extra, state.adapt_state.step_size, state.z, state.adapt_state.inverse_mass_matrix

    axes = (0, 0) + (0,) * (2 * resume) + (0 if per_chain_data else None,) * n_data
    if chain_method == "parallel":
        run = post._stored(one_chain, "nuts", in_axes=axes, extra=cache_key)
    else:
        if chain_method != "sequential":
            chains = jax.vmap(one_chain, in_axes=axes)
        elif per_chain_data:
            chains = lambda k, u, *a: jax.lax.map(lambda xs: one_chain(*xs), (k, u, *a))  # noqa: E731
        else:
            chains = lambda k, u, *a: jax.lax.map(lambda ku: one_chain(ku[0], ku[1], *a), (k, u))  # noqa: E731
        run = post._stored(chains, "nuts", extra=cache_key)
    post.runners[cache_key] = run
    return run


def _whitening(
    post: Posterior, lap: Laplace, centre: Mapping[str, Any], s: SamplerSettings, rng: np.random.Generator, dtype: Any
) -> tuple[Any, Any, Any]:
    """The sampler's mode, Cholesky factor and chains' starts in whitened coordinates."""
    d = lap.mode.size
    if s.init != "map":
        return (
            jnp.zeros(d, dtype=dtype),
            jnp.eye(d, dtype=dtype),
            jnp.asarray(rng.uniform(-2, 2, (s.chains, d)), dtype=dtype),
        )
    # The Laplace fit moved to the sampler's reference-scale coordinates: its mode mapped,
    # its covariance carried by the map's Jacobian (J cov J^T).
    mode0 = jnp.asarray(lap.mode, dtype=dtype)
    mode, jac = post.reference(mode0, centre)
    jac = np.asarray(jac, dtype=np.float64)
    cov = jac @ lap.cov @ jac.T
    chol = jnp.asarray(np.linalg.cholesky(0.5 * (cov + cov.T)), dtype=dtype)
    # Dispersed starts (1.5x the Laplace scale) so r-hat can see chains that disagree.
    u0 = 1.5 * rng.standard_normal((s.chains, d))
    if len(lap.modes) > 1:
        u0 = _mode_starts(post, lap, centre, (np.asarray(mode, np.float64), np.asarray(chol, np.float64)), u0, dtype)
    return mode, chol, jnp.asarray(u0, dtype=dtype)


def _mode_starts(
    post: Posterior, lap: Laplace, centre: Mapping[str, Any], whiten: tuple, eps: np.ndarray, dtype: Any
) -> np.ndarray:
    """Chains' starts spread over the modes (:func:`bayescale.modes.allocate`), in the whitened
    coordinates of the best mode: each chain at its mode, dispersed by that mode's own Laplace scale."""
    ref, chol = whiten
    out = np.array(eps)
    for c, k in enumerate(allocate([m.weight for m in lap.modes], eps.shape[0])):
        m = lap.modes[k]
        x = jnp.asarray(m.x, dtype=dtype)
        at, jac = (np.asarray(v, dtype=np.float64) for v in post.reference(x, centre))
        cov = jac @ m.cov @ jac.T
        own = np.linalg.cholesky(0.5 * (cov + cov.T))
        out[c] = np.linalg.solve(chol, at - ref + own @ eps[c])
    return out


@contextlib.contextmanager
def _x64_everywhere() -> Any:
    """64-bit on for every thread while inside ``jax.enable_x64(True)``: the progress bar's callback
    runs on another thread, which does not see the context, and returned a 32-bit counter where the
    traced run expected 64 bits (every fit with ``progress=True`` failed)."""
    wide = jax.dtypes.canonicalize_dtype(np.float64) == np.float64
    seen: list[bool] = []  # the process-wide setting is what a thread outside the context reads
    reader = threading.Thread(target=lambda: seen.append(bool(jax.config.values["jax_enable_x64"])))
    reader.start()
    reader.join()
    before = seen[0]
    if wide and not before:
        jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        if wide and not before:
            jax.config.update("jax_enable_x64", before)


def _progress_run(post: Posterior, s: SamplerSettings, chain_method: str, key: Any, init: Any, data: tuple) -> tuple:
    """The same run through NumPyro's driver, which shows a progress bar (and compiles anew for every fit)."""
    logx, y, mode, chol, mask = data
    kernel = NUTS(
        potential_fn=post.whitened_potential(mode, chol, logx, y, mask),
        dense_mass=s.dense_mass,
        target_accept_prob=s.target_accept,
        max_tree_depth=s.max_tree_depth,
    )
    mcmc = MCMC(
        kernel,
        num_warmup=s.warmup,
        num_samples=s.draws,
        num_chains=s.chains,
        chain_method=chain_method,
        progress_bar=True,
    )
    with _x64_everywhere():
        mcmc.run(key, init_params=init if s.chains > 1 else init[0], extra_fields=EXTRA_FIELDS)
        jax.block_until_ready(mcmc.last_state)  # the callbacks run while the results are computed
    last = mcmc.last_state
    return (
        mcmc.get_samples(group_by_chain=True),
        mcmc.get_extra_fields(group_by_chain=True),
        last.adapt_state.step_size,
        last.z,
        last.adapt_state.inverse_mass_matrix,
    )


def _restepped(out: tuple, accept: np.ndarray, target: float, rounds: int) -> tuple[tuple, list[int]] | None:
    """The runner's state ``out`` with every stuck chain (mean ``accept`` under :data:`STUCK_ACCEPT` x
    ``target``) given the step size and mass matrix of the healthy chain with the median step size (halved
    ``rounds`` times), at its own last position so that no draw is moved; ``None`` when no chain is stuck,
    or none is healthy to learn from."""
    stuck = is_stuck(accept.mean(axis=1), target)
    if not stuck.any() or stuck.all():
        return None
    step, mass = np.array(out[2]), np.array(out[4])
    healthy = np.flatnonzero(~stuck)
    donor = healthy[np.argsort(step[healthy], kind="stable")[(len(healthy) - 1) // 2]]
    # Never a larger step than the chain's own: its trouble may be its mass matrix, not its step.
    step[stuck], mass[stuck] = np.minimum(step[stuck], step[donor]) * 0.5**rounds, mass[donor]
    state = (out[0], out[1], jnp.asarray(step, dtype=out[2].dtype), out[3], jnp.asarray(mass, dtype=out[4].dtype))
    return state, np.flatnonzero(stuck).tolist()


def nuts(
    post: Posterior,
    logx: Mapping[str, Any],
    y: Any,
    lap: Laplace,
    rng: np.random.Generator,
    dtype: Any,
    chain_method: str,
    progress: bool,
    mixing_slowly: Callable[[np.ndarray], bool] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """NUTS for one fit in whitened coordinates ``z = mode + L u`` (L the Laplace Cholesky factor).

    In ``u`` the posterior is close to a standard normal, so step size and mass-matrix
    adaptation start near their answer and NumPyro's shrinkage of the mass matrix
    towards the identity is harmless. While ``mixing_slowly(draws so far)`` says so, the chains
    draw on from where they stopped, up to :data:`MAX_BATCHES` batches of ``draws``, and every
    batch-th draw is kept (a curved ridge needs longer chains, not a new warmup). A chain stuck after
    warmup (:func:`_restepped`) first draws on with a healthy chain's step size, and the draws so far
    are dropped. Returns unconstrained draws (chain, draw, d), the sampler statistics, and the number
    of ``batches`` kept, the chains ``restepped`` in each round and the ``dropped_divergences``.
    """
    s = post.spec.sampler
    d = lap.mode.size
    logx, y, mask, _ = padded(logx, y, dtype)  # one compiled runner per table-size bucket
    centre = post.centre(logx, mask)
    mode, chol, init = _whitening(post, lap, centre, s, rng, dtype)
    key = jax.random.PRNGKey(int(rng.integers(2**31)))
    data = (logx, y, mode, chol, mask)
    if progress:
        out = _progress_run(post, s, chain_method, key, init, data)
    else:
        out = runner(post, s, chain_method, 5, rows=y.shape[-1])(jax.random.split(key, s.chains), init, *data)
    zs: list[np.ndarray] = []  # each batch's draws, unconstrained (chain, draws, d)
    extras: list[dict[str, np.ndarray]] = []

    def keep_batch(out: tuple) -> None:
        u = np.asarray(out[0]).reshape(s.chains, s.draws, d)
        w = jnp.asarray(np.asarray(mode) + u @ np.asarray(chol).T, dtype=dtype)  # reference-scale draws
        zs.append(np.asarray(post.from_reference(w, centre), dtype=np.float64))
        extras.append({k: np.asarray(out[1][k]).reshape(s.chains, s.draws) for k in EXTRA_FIELDS})

    def draw_on(out: tuple) -> tuple:
        keys = jax.random.split(jax.random.PRNGKey(int(rng.integers(2**31))), s.chains)
        return runner(post, s, chain_method, 5, rows=y.shape[-1], resume=True)(keys, out[3], out[2], out[4], *data)

    keep_batch(out)
    restepped, dropped = [], 0  # the stuck chains of each round; the divergences among the draws dropped
    while True:
        # A chain may get stuck in any batch (Step Law's grid: the second after a first re-step), so re-stepping
        # is bounded by its rounds alone: at most (MAX_RESTEPS + 1) x (MAX_BATCHES + 1) batches in all.
        fixed = None if len(restepped) >= MAX_RESTEPS else _restepped(
            out, extras[-1]["accept_prob"], s.target_accept, len(restepped)
        )  # fmt: skip
        if fixed is not None:
            restepped.append(fixed[1])
            dropped += int(sum(e["diverging"].sum() for e in extras))
            zs.clear()  # the draws so far were warmup for the re-stepped chains: all chains start afresh,
            extras.clear()
            out = draw_on(fixed[0])  # after a batch of burn-in away from where the stuck chain sat
        elif mixing_slowly is None or len(zs) >= MAX_BATCHES or not mixing_slowly(np.concatenate(zs, axis=1)):
            break
        out = draw_on(out)
        keep_batch(out)
    keep = slice(len(zs) - 1, None, len(zs))  # every batch-th draw: (chain, draws) as the spec says
    z = np.concatenate(zs, axis=1)[:, keep]
    ex = {k: np.concatenate([e[k] for e in extras], axis=1)[:, keep] for k in EXTRA_FIELDS}
    step = np.asarray(out[2], dtype=np.float64).reshape(-1, 1)
    stats = {
        "diverging": ex["diverging"].astype(bool),
        "n_steps": ex["num_steps"].astype(np.int64),
        "tree_depth": np.ceil(np.log2(ex["num_steps"].astype(np.float64) + 1)).astype(np.int64),
        "acceptance_rate": ex["accept_prob"].astype(np.float64),
        "energy": ex["energy"].astype(np.float64),
        "lp": -ex["potential_energy"].astype(np.float64),
        "step_size": np.broadcast_to(step, (s.chains, s.draws)).copy(),
    }
    return z, stats, {"batches": len(zs), "restepped": restepped, "dropped_divergences": dropped}


def nuts_units(
    post: Posterior, data: Sequence[tuple], s: SamplerSettings, rng: np.random.Generator, batch: int
) -> tuple[np.ndarray, np.ndarray]:
    """NUTS for independent units (curves), ``batch`` units per vectorised call of one compiled
    sampler over (unit, chain) pairs. ``data[i] = (logx, y, mask, mode, chol)`` of unit ``i``.
    Returns unconstrained draws (U, chain, draw, dim) and divergences per (unit, chain)."""
    run = runner(post, s, "vectorized", 5, per_chain_data=True)
    flats = np.zeros((len(data), s.chains, s.draws, post.dim))
    div = np.zeros((len(data), s.chains), dtype=np.int64)
    for b0 in range(0, len(data), batch):
        chunk = data[b0 : b0 + batch]
        # Each unit's arguments, repeated for its chains, in the runner's order (logx, y, mode, chol, mask).
        args = [
            jax.tree_util.tree_map(
                lambda *a: jnp.asarray(np.repeat(np.stack(a), s.chains, axis=0)), *[c[j] for c in chunk]
            )
            for j in (0, 1, 3, 4, 2)
        ]
        key = jax.random.PRNGKey(int(rng.integers(2**31)))
        keys = jax.random.split(key, len(chunk) * s.chains)
        u0 = 1.5 * rng.standard_normal((len(chunk) * s.chains, post.dim))
        u, ex, *_ = run(keys, jnp.asarray(u0), *args)
        u = np.asarray(u).reshape(len(chunk), s.chains, s.draws, post.dim)
        chol = np.stack([c[4] for c in chunk])
        mode = np.stack([c[3] for c in chunk])
        flats[b0 : b0 + len(chunk)] = mode[:, None, None, :] + np.einsum("kcdj,kij->kcdi", u, chol)
        div[b0 : b0 + len(chunk)] = np.asarray(ex["diverging"]).reshape(len(chunk), s.chains, s.draws).sum(axis=2)
    return flats, div


__all__ = (  # one string: a name per line would take the module past its 650-line limit
    "GPU_MIN_RUNS Laplace MIN_BUCKET bucket enable_compilation_cache inverse_hessian laplace log_likelihood "
    "map_units nuts nuts_units padded psis runner"
).split()
