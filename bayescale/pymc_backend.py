"""Optional PyMC backend: the same spec compiled to a PyMC model and sampled with PyMC.

A :class:`~bayescale.ModelSpec` declares its priors with NumPyro distribution names;
:func:`to_pymc` translates each to the matching PyMC distribution (see
:data:`PYMC_DISTRIBUTIONS`) and calls the law's ``log_loss`` with
``xp = pytensor.tensor``, so the PyMC model has the same variables, the same
likelihood and the same log density as :func:`bayescale.inference.make_model`.
:func:`fit_pymc` samples it with PyMC's NUTS (or nutpie) and returns a
:class:`bayescale.Fit` laid out exactly like a NumPyro fit, so ``predict``,
``summary``, ``save`` and ``Fit.load`` work the same.

PyMC is optional: ``import bayescale`` never imports it, and this module imports
it only when a function is called. Install it with ``pip install 'bayescale[pymc]'``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import json
import logging
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpyro.distributions as ndist

from . import likelihoods
from ._idata import build_idata, fit_attrs
from .data import law_inputs, load_runs
from .errors import (
    BayescaleError,
    SpecError,
    check_seed,
)
from .inference import Fit, add_identified, warn_if_unconverged
from .misfit import warn_if_misfit
from .model import OBS, add_drift, noise_names
from .priors import Prior
from .scaled_priors import place_priors
from .spec import ModelSpec, load_spec

SAMPLERS = ("pymc", "nutpie")

#: NumPyro distribution name -> (PyMC distribution name, {NumPyro parameter: PyMC parameter}).
#: Each pair has the same density on the same support (a test checks every entry).
PYMC_DISTRIBUTIONS: dict[str, tuple[str, dict[str, str]]] = {
    "Normal": ("Normal", {"loc": "mu", "scale": "sigma"}),
    "LogNormal": ("LogNormal", {"loc": "mu", "scale": "sigma"}),
    "HalfNormal": ("HalfNormal", {"scale": "sigma"}),
    "HalfCauchy": ("HalfCauchy", {"scale": "beta"}),
    "Cauchy": ("Cauchy", {"loc": "alpha", "scale": "beta"}),
    "StudentT": ("StudentT", {"df": "nu", "loc": "mu", "scale": "sigma"}),
    "Gamma": ("Gamma", {"concentration": "alpha", "rate": "beta"}),
    "InverseGamma": ("InverseGamma", {"concentration": "alpha", "rate": "beta"}),
    "Exponential": ("Exponential", {"rate": "lam"}),
    "Uniform": ("Uniform", {"low": "lower", "high": "upper"}),
    "Beta": ("Beta", {"concentration1": "alpha", "concentration0": "beta"}),
    "TruncatedNormal": ("TruncatedNormal", {"loc": "mu", "scale": "sigma", "low": "lower", "high": "upper"}),
    "Laplace": ("Laplace", {"loc": "mu", "scale": "b"}),
    "Logistic": ("Logistic", {"loc": "mu", "scale": "s"}),
    "Weibull": ("Weibull", {"concentration": "alpha", "scale": "beta"}),
    "Gumbel": ("Gumbel", {"loc": "mu", "scale": "beta"}),
    "Pareto": ("Pareto", {"alpha": "alpha", "scale": "m"}),
    "Chi2": ("ChiSquared", {"df": "nu"}),
    "Kumaraswamy": ("Kumaraswamy", {"concentration1": "a", "concentration0": "b"}),
}

_INSTALL_PYMC = "pip install 'bayescale[pymc]'"


# ------------------------------------------------------------------ imports


def _import_pymc() -> Any:
    """Import PyMC lazily, with an install hint when it is missing."""
    try:
        with warnings.catch_warnings():
            # PyMC imports ArviZ, and ArviZ 0.23 announces its 1.x refactor on import.
            warnings.filterwarnings(
                "ignore", message=".*ArviZ is undergoing a major refactor.*", category=FutureWarning
            )
            import pymc  # optional heavy dependency: imported only when the backend is used
    except ImportError as e:
        raise BayescaleError(
            f"the PyMC backend needs PyMC, which is not installed ({e}); install it with: {_INSTALL_PYMC}"
        ) from None
    return pymc


def _validate_nutpie() -> None:
    if importlib.util.find_spec("nutpie") is None:
        raise BayescaleError(
            "sampler='nutpie' needs nutpie, which is not installed; install it with: pip install nutpie (or use sampler='pymc')"
        )


# ------------------------------------------------------------------- priors


def _numpyro_defaults(name: str) -> dict[str, float]:
    """Default parameter values of a NumPyro distribution's constructor (``None`` ones left out)."""
    cls = getattr(ndist, name)
    sig = inspect.signature(cls if not inspect.isclass(cls) else cls.__init__)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.default is not inspect.Parameter.empty and p.default is not None and p.name != "validate_args"
    }


def pymc_prior(prior: Prior, name: str, *, where: str | None = None, **kwargs: Any) -> Any:
    """Create the PyMC random variable for a NumPyro-style prior (inside a model context).

    Parameters
    ----------
    prior : Prior
        Distribution name and parameters with NumPyro's names.
    name : str
        Name of the PyMC variable.
    where : str, optional
        What the prior belongs to, for error messages (default ``"prior for <name>"``).
    **kwargs
        Passed to the PyMC distribution (e.g. ``dims``).

    Returns
    -------
    pytensor.tensor.TensorVariable

    Raises
    ------
    SpecError
        If the distribution has no PyMC counterpart in :data:`PYMC_DISTRIBUTIONS`.
    BayescaleError
        If PyMC is not installed.

    Examples
    --------
    >>> import pymc as pm                                             # doctest: +SKIP
    >>> with pm.Model():                                              # doctest: +SKIP
    ...     E = pymc_prior(Prior("LogNormal", {"loc": 0.5, "scale": 0.5}), "E")
    """
    pm = _import_pymc()
    where = where or f"prior for {name!r}"
    if prior.dist not in PYMC_DISTRIBUTIONS:
        raise SpecError(
            f"{where}: distribution {prior.dist!r} has no PyMC translation in the PyMC backend; "
            f"supported: {sorted(PYMC_DISTRIBUTIONS)} (or fit it with bayescale.fit, which supports every NumPyro distribution)"
        )
    pm_name, names = PYMC_DISTRIBUTIONS[prior.dist]
    values = {**_numpyro_defaults(prior.dist), **prior.params}
    unknown = sorted(set(values) - set(names))
    if unknown:  # Prior.validate already refuses these; kept so the table cannot silently drop one.
        raise SpecError(f"{where}: {prior.dist} parameters {unknown} have no PyMC translation; known: {sorted(names)}")
    # NumPy float64, not Python floats: PyTensor stores a Python float that float32 holds exactly
    # (0.5, 2.5, ...) as a float32 constant, and e.g. log(scale) would then be computed in float32.
    args = {names[k]: np.float64(v) for k, v in values.items()}
    return getattr(pm, pm_name)(name, **args, **kwargs)


# -------------------------------------------------------------------- model


def _observations(spec: ModelSpec, runs: Any) -> tuple[Any, dict[str, np.ndarray], np.ndarray]:
    table = load_runs(runs)
    logx = law_inputs(spec, table, np.float64)
    y = np.log(table["loss"].to_numpy(dtype=np.float64))
    return table, logx, y


def _build(spec: ModelSpec, logx: Mapping[str, np.ndarray], y: np.ndarray, run_ids: list[str]) -> Any:
    pm = _import_pymc()
    import pytensor.tensor as pt  # optional heavy dependency, installed with PyMC

    law, lik = spec.law, spec.likelihood
    family = likelihoods.get_family(lik.family)
    if family.pymc_build is None:
        raise SpecError(
            f"likelihood.family: {family.name!r} has no PyMC builder in the PyMC backend; fit it with bayescale.fit"
        )
    with pm.Model(coords={"run": run_ids}) as model:
        theta = {p: pymc_prior(spec.priors[p], p, where=f"priors.{p}") for p in law.params}
        x = {k: pt.as_tensor_variable(np.asarray(v, dtype=np.float64)) for k, v in logx.items()}
        mu = law.log_loss(theta, x, pt)
        noise = {}
        for name in family.noise_names:  # in the family's order, as the NumPyro model samples them
            value = lik.value(name)
            if isinstance(value, Prior):
                noise[name] = pymc_prior(value, name, where=f"likelihood.{name}")
            else:
                noise[name] = np.float64(value)
        family.pymc_build(pm, OBS, mu, noise, observed=y, dims="run")
    return model


def to_pymc(spec: ModelSpec | str | Any, runs: Any) -> Any:
    """Compile a spec and a runs table to a PyMC model.

    The model has the same variables as :func:`bayescale.inference.make_model`:
    one per law parameter (natural scale), ``sigma``, ``df`` when the Student-t
    degrees of freedom have a prior, and the observed ``log_loss`` with dim
    ``"run"`` (the run ids are its coordinates). Priors are translated from their
    NumPyro names with :data:`PYMC_DISTRIBUTIONS`; the log density on the natural
    scale equals the NumPyro model's.

    Parameters
    ----------
    spec : ModelSpec, path or name
        The model; a path or bundled name is loaded with :func:`bayescale.load_spec`.
    runs : DataFrame or path
        The runs table; validated with :func:`bayescale.load_runs`. The law's
        inputs are read from the columns the spec maps them to (``spec.inputs``).

    Returns
    -------
    pymc.Model

    Raises
    ------
    SpecError
        If a prior's distribution has no PyMC translation (the message lists the supported ones).
    RunsTableError, BayescaleError
        For a bad runs table, or when PyMC is not installed.

    Examples
    --------
    >>> import bayescale as bs                                              # doctest: +SKIP
    >>> from bayescale.pymc_backend import to_pymc                          # doctest: +SKIP
    >>> runs = bs.testing.synthetic_runs("chinchilla", {"E": 1.8, "A": 480, "B": 2000, "alpha": 0.35, "beta": 0.36})  # doctest: +SKIP
    >>> model = to_pymc("chinchilla", runs)                                 # doctest: +SKIP
    >>> sorted(v.name for v in model.free_RVs)                              # doctest: +SKIP
    ['A', 'B', 'E', 'alpha', 'beta', 'sigma']
    """
    _import_pymc()
    spec = place_priors(load_spec(spec), load_runs(runs))  # [priors] scale = "runs", as bs.fit
    table, logx, y = _observations(spec, runs)
    return _build(spec, logx, y, table["run_id"].astype(str).tolist())


# ---------------------------------------------------------------------- fit

# Sample statistics a NumPyro fit stores, with its dtypes; PyMC's NUTS reports them under the same names.
_STATS = {
    "diverging": np.bool_,
    "n_steps": np.int64,
    "tree_depth": np.int64,
    "acceptance_rate": np.float64,
    "energy": np.float64,
    "lp": np.float64,
    "step_size": np.float64,
}
# nutpie's names for some of them.
_NUTPIE_STATS = {"depth": "tree_depth", "logp": "lp", "mean_tree_accept": "acceptance_rate"}


@contextlib.contextmanager
def _quiet_pymc(quiet: bool):
    """Hold back PyMC's INFO log lines ("Initializing NUTS...", "Sampling 4 chains...") when quiet."""
    logger = logging.getLogger("pymc")
    level = logger.level
    if quiet:
        logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _sample(pm: Any, model: Any, spec: ModelSpec, sampler: str, seed: int, progressbar: bool) -> tuple[Any, str]:
    s = spec.sampler
    common = {
        "draws": s.draws,
        "tune": s.warmup,
        "chains": s.chains,
        "random_seed": seed,
        "progressbar": progressbar,
        "compute_convergence_checks": False,  # bayescale's own checks warn with ConvergenceWarning instead
        "target_accept": s.target_accept,
        "model": model,
    }
    if sampler == "nutpie":
        with _quiet_pymc(not progressbar):
            # nutpie ignores idata_kwargs (and warns if given); the log likelihood is computed afterwards.
            idata = pm.sample(nuts_sampler="nutpie", **common)
            idata = pm.compute_log_likelihood(idata, model=model, progressbar=False)
        stats = idata.sample_stats
        renamed = {k: v for k, v in _NUTPIE_STATS.items() if k in stats and v not in stats}
        if renamed:
            idata.sample_stats = stats.rename(renamed)
        return idata, "nutpie"
    with _quiet_pymc(not progressbar), warnings.catch_warnings():
        # A dense mass matrix is what makes scaling-law posteriors (log A against alpha, E against
        # everything) cheap; PyMC labels its dense adaptation experimental on every call.
        warnings.filterwarnings(
            "ignore", message="QuadPotentialFullAdapt is an experimental feature", category=UserWarning
        )
        idata = pm.sample(
            nuts_sampler="pymc",
            init="jitter+adapt_full" if s.dense_mass else "jitter+adapt_diag",
            # Chains run one after another in this process: PyMC's parallel chains fork, which can
            # deadlock once JAX (imported by bayescale) has started its threads, and for models
            # this small starting worker processes costs more than it saves.
            cores=1,
            idata_kwargs={"log_likelihood": True},
            nuts={"max_treedepth": s.max_tree_depth},
            **common,
        )
    return idata, "sequential"


def fit_pymc(
    spec: ModelSpec | str | Any,
    runs: Any,
    *,
    seed: int = 0,
    sampler: str = "pymc",
    chains: int | None = None,
    warmup: int | None = None,
    draws: int | None = None,
    progressbar: bool = False,
) -> Fit:
    """Fit a scaling law with PyMC instead of NumPyro.

    Same model, same result layout: the returned :class:`bayescale.Fit` has the
    groups, variable names, dims and attributes of a :func:`bayescale.fit` result
    (``attrs["method"] == "pymc"``), so ``predict``, ``summary``, ``save`` and
    ``Fit.load`` work on it. Chains start from PyMC's jittered initial point (not
    the MAP) and adapt a dense mass matrix when ``spec.sampler.dense_mass`` is set
    (PyMC's ``jitter+adapt_full``), else a diagonal one. PyMC's chains run one
    after another in this process: its parallel chains fork, which is unsafe once
    JAX has started its threads.

    Parameters
    ----------
    spec : ModelSpec, path or name
    runs : DataFrame or path
    seed : int
        The one seed for the sampler.
    sampler : {"pymc", "nutpie"}
        PyMC's own NUTS (default) or nutpie's (``pip install nutpie``), through ``pm.sample``.
    chains, warmup, draws : int, optional
        Override the spec's sampler settings.
    progressbar : bool
        Show PyMC's progress bar.

    Returns
    -------
    Fit

    Raises
    ------
    SpecError
        If a prior has no PyMC translation.
    BayescaleError
        For bad arguments, or when PyMC (or nutpie, for ``sampler="nutpie"``) is not installed.

    Warns
    -----
    ConvergenceWarning
        When r-hat > 1.01, ESS is low, or there were divergences or tree-depth hits.
    IdentifiabilityWarning
        When the runs cannot separate some parameters.

    Examples
    --------
    >>> import bayescale as bs                                              # doctest: +SKIP
    >>> from bayescale.pymc_backend import fit_pymc                         # doctest: +SKIP
    >>> fit = fit_pymc("chinchilla", bs.datasets.load_chinchilla(), seed=0)  # doctest: +SKIP
    >>> fit.summary()                                                       # doctest: +SKIP
    >>> fit.predict({"N": 7e9, "D": 1.4e12}).median().item()                # doctest: +SKIP
    """
    pm = _import_pymc()
    spec = _checked(load_spec(spec), sampler, seed, {"chains": chains, "warmup": warmup, "draws": draws})
    spec = place_priors(spec, load_runs(runs))  # [priors] scale = "runs": on the runs' scale, as bs.fit
    table, logx, y = _observations(spec, runs)
    t0 = time.perf_counter()
    model = _build(spec, logx, y, table["run_id"].astype(str).tolist())
    raw, chain_method = _sample(pm, model, spec, sampler, int(seed), progressbar)
    seconds = time.perf_counter() - t0
    result = _to_fit(
        pm, spec, table, logx, y, raw, seed=seed, sampler=sampler, chain_method=chain_method, seconds=seconds
    )
    warn_if_unconverged(result)
    warn_if_misfit(result)  # as bs.fit does: a pattern the law cannot follow, in words
    return result


def _checked(spec: ModelSpec, sampler: str, seed: Any, overrides: Mapping[str, int | None]) -> ModelSpec:
    """Validate :func:`fit_pymc`'s arguments; the spec with the sampler overrides applied."""
    if sampler not in SAMPLERS:
        raise BayescaleError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    check_seed(seed)
    if sampler == "nutpie":
        _validate_nutpie()
    changes = {k: v for k, v in overrides.items() if v is not None}
    if changes:
        try:
            spec = spec.with_sampler(**changes)
        except SpecError as e:
            raise BayescaleError(str(e)) from None
    return spec


def _to_fit(
    pm: Any,
    spec: ModelSpec,
    table: Any,
    logx: Mapping[str, np.ndarray],
    y: np.ndarray,
    raw: Any,
    *,
    seed: int,
    sampler: str,
    chain_method: str,
    seconds: float,
) -> Fit:
    """PyMC's InferenceData laid out as a NumPyro fit's: same groups, names, dims and attributes."""
    names = list(spec.law.params) + noise_names(spec)
    dtype = str(raw.posterior[names[0]].dtype)
    samples = {v: np.asarray(raw.posterior[v].values, dtype=np.float64) for v in names}
    ll = np.asarray(raw.log_likelihood[OBS].transpose("chain", "draw", "run").values, dtype=np.float64)
    stats = {k: raw.sample_stats[k].values.astype(t) for k, t in _STATS.items() if k in raw.sample_stats}
    identified = add_identified(spec, samples, logx)
    add_drift(spec, samples, np.random.default_rng(seed))
    versions = {"pymc": pm.__version__, "pytensor": importlib.import_module("pytensor").__version__}
    if sampler == "nutpie":
        versions["nutpie"] = importlib.import_module("nutpie").__version__
    attrs = fit_attrs(
        spec,
        table,
        method="pymc",
        seed=seed,
        seconds=seconds,
        identified=identified,
        extra_versions=versions,
        sampler=sampler,
        chain_method=chain_method,
        device="cpu:pytensor",
        dtype=dtype,
        laplace_mode=json.dumps({}),
    )
    idata = build_idata(spec, table, samples, stats, ll, y, attrs)
    return Fit(spec=spec, idata=idata, runs=table, method="pymc", seed=int(seed))


__all__ = ["PYMC_DISTRIBUTIONS", "SAMPLERS", "fit_pymc", "pymc_prior", "to_pymc"]
