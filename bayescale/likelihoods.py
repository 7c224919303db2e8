"""Observation models for log loss around the law, kept in a registry of families.

A :class:`Family` declares everything bayescale needs to know about one observation
model: its noise parameters (:class:`NoiseParam`: which spec fields hold priors or
fixed values), the NumPyro distribution of observed log loss given the law's log loss
``mu``, the predictive variance per draw, and how to build the same likelihood in
PyMC. Specs, the NumPyro engine and the PyMC backend all ask the registry, so adding
a family is one :func:`register_family` call::

    register_family(Family(
        name="Laplace",
        noise=(SIGMA,),
        numpyro_dist=lambda mu, p: dist.Laplace(mu, p["sigma"]),
        variance=lambda p: 2.0 * p["sigma"] ** 2,
        pymc_build=lambda pm, name, mu, p, **kw: pm.Laplace(name, mu=mu, b=p["sigma"], **kw),
    ))

Built in: ``Normal``, ``StudentT`` (robust to outlying runs) and ``ExGaussian``, the
one-sided "inefficiency" model: a scaling law is a lower envelope of achievable loss,
and an under-tuned pilot lands above it. The observed log loss is ``law + e + eps``
with ``e ~ Exponential(mean = excess)`` and ``eps ~ Normal(0, sigma)``; runs above the
law are explained by ``e`` without dragging the law up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax import random
from jax.scipy.special import log_ndtr, ndtr
from numpyro.distributions import constraints
from numpyro.distributions.util import promote_shapes
from scipy import stats

from .errors import BayescaleError
from .priors import Prior


class ExGaussian(dist.Distribution):
    """Exponentially modified Gaussian: ``Normal(loc, scale) + Exponential(rate)``.

    Log density ``log(rate) + rate (loc - x) + (rate scale)^2 / 2 + log Phi((x - loc)/scale - rate scale)``,
    written with ``log_ndtr`` so it is finite far into both tails.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive, "rate": constraints.positive}
    support = constraints.real
    reparametrized_params = ["loc", "scale", "rate"]

    def __init__(self, loc: Any = 0.0, scale: Any = 1.0, rate: Any = 1.0, *, validate_args: bool | None = None) -> None:
        self.loc, self.scale, self.rate = promote_shapes(loc, scale, rate)
        batch_shape = jnp.broadcast_shapes(jnp.shape(loc), jnp.shape(scale), jnp.shape(rate))
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    def sample(self, key: Any, sample_shape: tuple = ()) -> Any:
        k1, k2 = random.split(key)
        shape = sample_shape + self.batch_shape
        return self.loc + self.scale * random.normal(k1, shape) + random.exponential(k2, shape) / self.rate

    def log_prob(self, value: Any) -> Any:
        z = (value - self.loc) / self.scale
        ls = self.rate * self.scale
        return jnp.log(self.rate) - self.rate * (value - self.loc) + 0.5 * ls**2 + log_ndtr(z - ls)

    def cdf(self, value: Any) -> Any:
        z = (value - self.loc) / self.scale
        ls = self.rate * self.scale
        return ndtr(z) - jnp.exp(-self.rate * (value - self.loc) + 0.5 * ls**2 + log_ndtr(z - ls))

    @property
    def mean(self) -> Any:
        return self.loc + 1.0 / self.rate

    @property
    def variance(self) -> Any:
        return self.scale**2 + 1.0 / self.rate**2


# ------------------------------------------------------------------ registry


@dataclass(frozen=True)
class NoiseParam:
    """A noise parameter of one or more families, held in the spec's ``[likelihood]`` table.

    Parameters
    ----------
    name : str
        Spec field and posterior variable name, e.g. ``"sigma"``.
    default : float or Prior
        Used when the spec leaves the field out.
    fixed : bool
        The spec may give a fixed number > 0 instead of a prior.
    advice : str
        Ends the error message when a prior allows values <= 0 (``"use e.g. Gamma"``).
    accepted_by_all : bool
        Specs of families without this parameter may still give it; it is validated and
        then ignored (``df``: Normal specs written before the registry carry one).
    """

    name: str
    default: float | Prior
    fixed: bool = False
    advice: str = "use e.g. HalfNormal"
    accepted_by_all: bool = False


@dataclass(frozen=True)
class Family:
    """An observation model of log loss around the law's log loss ``mu``.

    Parameters
    ----------
    name : str
        The spec's ``likelihood.family``.
    noise : tuple of NoiseParam
        Its noise parameters, in the order they become posterior variables.
    numpyro_dist : callable
        ``numpyro_dist(mu, noise) -> numpyro Distribution``; ``noise`` maps every noise
        parameter to its value (a draw, or the spec's fixed number); arrays broadcast.
    variance : callable
        ``variance(noise) -> array``: the variance of one run's log loss around the law,
        per draw (NumPy; ``noise`` as above, arrays broadcast). Used to plan new runs.
    pymc_build : callable, optional
        ``pymc_build(pm, name, mu, noise, **kwargs) -> observed variable``: the same
        likelihood in PyMC (``noise`` holds PyMC variables or fixed numbers; ``kwargs``
        carry ``observed`` and ``dims``). Without it the PyMC backend refuses the family.
    description : str
    """

    name: str
    noise: tuple[NoiseParam, ...]
    numpyro_dist: Callable[[Any, Mapping[str, Any]], dist.Distribution]
    variance: Callable[[Mapping[str, Any]], Any]
    pymc_build: Callable[..., Any] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise", tuple(self.noise))

    @property
    def noise_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.noise)


_FAMILIES: dict[str, Family] = {}

#: Names of the registered families (a live view of the registry).
FAMILIES = _FAMILIES.keys()

#: Names of the spec's ``Likelihood`` attributes that are no noise parameter (its fields
#: ``sigma``, ``df`` and ``excess`` are; other families' noise parameters live in ``extra``).
_RESERVED = ("family", "extra", "value", "to_dict", "from_dict")


def register_family(family: Family, *, overwrite: bool = False) -> Family:
    """Add an observation family so specs can name it in ``likelihood.family``.

    A noise parameter name shared by several families must be declared the same way
    (one :class:`NoiseParam`), since a spec field has one meaning.

    Raises
    ------
    BayescaleError
        If ``family`` is not a :class:`Family`, its noise parameters clash with other
        families', or a different family of the same name is registered and ``overwrite`` is False.
    """
    if not isinstance(family, Family):
        raise BayescaleError(f"register_family takes a Family, got {type(family).__name__}")
    if not family.name or not isinstance(family.name, str):
        raise BayescaleError("a likelihood family needs a non-empty string name")
    where = f"likelihood family {family.name!r}"
    names = family.noise_names
    if len(set(names)) != len(names) or any(not isinstance(p, NoiseParam) for p in family.noise):
        raise BayescaleError(f"{where}: noise must be distinct NoiseParam declarations, got {names}")
    if reserved := sorted(set(names) & set(_RESERVED)):
        raise BayescaleError(f"{where}: {reserved} cannot name a noise parameter")
    known = noise_params(exclude=family.name)
    clash = [p.name for p in family.noise if p.name in known and known[p.name] != p]
    if clash:
        raise BayescaleError(f"{where}: noise parameter(s) {clash} are declared differently by other families")
    if family.name in _FAMILIES and _FAMILIES[family.name] is not family and not overwrite:
        raise BayescaleError(
            f"a likelihood family named {family.name!r} is already registered; pass overwrite=True to replace it"
        )
    _FAMILIES[family.name] = family
    return family


def is_bundled(family: Family) -> bool:
    """Whether ``family`` is one bayescale ships (registered under its name, defined here)."""
    return _FAMILIES.get(family.name) is family and getattr(family.numpyro_dist, "__module__", "") == __name__


def get_family(name: str) -> Family:
    """The registered family called ``name``.

    Raises
    ------
    BayescaleError
        If no family has that name; the message lists the registered ones.
    """
    try:
        return _FAMILIES[name]
    except (KeyError, TypeError):
        raise BayescaleError(f"unknown likelihood family {name!r}; registered families: {list(_FAMILIES)}") from None


def noise_params(*, exclude: str | None = None) -> dict[str, NoiseParam]:
    """Every registered family's noise parameters by name, in registration order."""
    out: dict[str, NoiseParam] = {}
    for fam in _FAMILIES.values():
        if fam.name != exclude:
            for p in fam.noise:
                out.setdefault(p.name, p)
    return out


def families_with(name: str) -> list[str]:
    """Names of the registered families that have the noise parameter ``name``."""
    return [f.name for f in _FAMILIES.values() if name in f.noise_names]


def noise_value(likelihood: Any, name: str) -> Any:
    """The spec's value of noise parameter ``name``: a :class:`Prior` or a fixed number."""
    value = getattr(likelihood, name, None) if name not in _RESERVED else None
    if value is None:
        value = dict(getattr(likelihood, "extra", ())).get(name)
    return value


def _values(family: Family, likelihood: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """Every noise parameter: the draw in ``params`` where there is one, else the spec's fixed value."""
    return {p.name: params[p.name] if p.name in params else noise_value(likelihood, p.name) for p in family.noise}


# ---------------------------------------------------------------- the API


def noise_priors(likelihood: Any) -> dict[str, Prior]:
    """The likelihood's noise parameters that have priors, by posterior variable name."""
    family = get_family(likelihood.family)
    values = {p.name: noise_value(likelihood, p.name) for p in family.noise}
    return {k: v for k, v in values.items() if isinstance(v, Prior)}


def observation_dist(likelihood: Any, mu: Any, params: Mapping[str, Any]) -> dist.Distribution:
    """Distribution of observed log loss around the law's log loss ``mu``; arrays broadcast."""
    family = get_family(likelihood.family)
    return family.numpyro_dist(mu, _values(family, likelihood, params))


def predictive_variance(likelihood: Any, params: Mapping[str, Any]) -> Any:
    """Variance of one run's log loss around the law, per draw of the noise parameters.

    ``params`` holds draws of the noise parameters (arrays that broadcast); fixed ones
    come from the spec. Student-t's ``sigma^2 df / (df - 2)`` is capped at ``5.5 sigma^2``
    (its value at ``df = 2.2``): with fewer degrees of freedom the variance is infinite and
    useless for planning.
    """
    family = get_family(likelihood.family)
    return family.variance(_values(family, likelihood, params))


def mixture_cdf(d: dist.Distribution, x: Any) -> tuple[np.ndarray, np.ndarray]:
    """The predictive mixture's CDF and density at ``x`` (leading axes, then one per run): the mean over
    ``d``'s draws (its batch is draws x runs) of each draw's. Normal and Student-t go through SciPy:
    JAX's Student-t CDF (an incomplete beta) is two orders of magnitude slower on a CPU."""
    x = np.asarray(x, dtype=float)[..., None, :]
    if isinstance(d, (dist.StudentT, dist.Normal)):
        loc, scale = np.asarray(d.loc, dtype=float), np.asarray(d.scale, dtype=float)
        ref = stats.t(np.asarray(d.df, dtype=float)) if isinstance(d, dist.StudentT) else stats.norm()
        t = (x - loc) / scale
        return ref.cdf(t).mean(axis=-2), (ref.pdf(t) / scale).mean(axis=-2)
    xj = jnp.asarray(x)
    return np.asarray(d.cdf(xj)).mean(axis=-2), np.asarray(jnp.exp(d.log_prob(xj))).mean(axis=-2)


def mixture_quantiles(d: dist.Distribution, probs: Any, start: np.ndarray) -> np.ndarray:
    """Quantiles (one row per prob, one column per run) of the predictive mixture of ``d``, by Newton's
    method from ``start`` (rows like the result: the replicated draws' own quantiles, within their
    sampling error of the answer), kept inside a bracket that holds the quantile (a step leaving it
    bisects), to 1e-10 in probability."""
    p = np.asarray(probs, dtype=float)[:, None]
    lo, hi, width = start - 0.01, start + 0.01, 0.01
    f_lo, f_hi = mixture_cdf(d, lo)[0], mixture_cdf(d, hi)[0]
    for _ in range(_MAX_STEPS):  # widen until the bracket holds each quantile, however heavy the tails
        if np.all(f_lo <= p) and np.all(f_hi >= p):
            break
        width *= 4
        lo, hi = np.where(f_lo > p, lo - width, lo), np.where(f_hi < p, hi + width, hi)
        f_lo, f_hi = mixture_cdf(d, lo)[0], mixture_cdf(d, hi)[0]
    x = np.clip(start, lo, hi)
    for _ in range(_MAX_STEPS):
        F, f = mixture_cdf(d, x)
        if np.all(np.abs(F - p) < _TOLERANCE):
            break
        lo, hi = np.where(F < p, x, lo), np.where(F < p, hi, x)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = x - (F - p) / f
        inside = np.isfinite(step) & (step >= lo) & (step <= hi)
        x = np.where(inside, step, 0.5 * (lo + hi))
    return x


#: Most widenings of the bracket, and most Newton steps, of :func:`mixture_quantiles`, and the distance in
#: probability at which a quantile is found (a band edge then within about 1e-9 nats).
_MAX_STEPS = 60
_TOLERANCE = 1e-10


# --------------------------------------------------------------- built-ins

SIGMA = NoiseParam(
    "sigma", Prior("HalfNormal", {"scale": 0.05}), advice="use a positive distribution such as HalfNormal"
)
DF = NoiseParam("df", 4.0, fixed=True, advice="use e.g. Gamma", accepted_by_all=True)
EXCESS = NoiseParam("excess", Prior("HalfNormal", {"scale": 0.02}), advice="use e.g. HalfNormal")


def _student_t_variance(p: Mapping[str, Any]) -> Any:
    df = np.asarray(p["df"], dtype=float)
    return p["sigma"] ** 2 * np.where(df > 2.2, df / np.maximum(df - 2.0, 1e-9), 5.5)


register_family(
    Family(
        name="Normal",
        noise=(SIGMA,),
        numpyro_dist=lambda mu, p: dist.Normal(mu, p["sigma"]),
        variance=lambda p: p["sigma"] ** 2,
        pymc_build=lambda pm, name, mu, p, **kw: pm.Normal(name, mu=mu, sigma=p["sigma"], **kw),
        description="Gaussian noise on log loss.",
    )
)
register_family(
    Family(
        name="StudentT",
        noise=(SIGMA, DF),
        numpyro_dist=lambda mu, p: dist.StudentT(p["df"], mu, p["sigma"]),
        variance=_student_t_variance,
        pymc_build=lambda pm, name, mu, p, **kw: pm.StudentT(name, nu=p["df"], mu=mu, sigma=p["sigma"], **kw),
        description="Student-t noise on log loss: robust to outlying runs (the Bayesian counterpart of a Huber loss).",
    )
)
register_family(
    Family(
        name="ExGaussian",
        noise=(SIGMA, EXCESS),
        numpyro_dist=lambda mu, p: ExGaussian(mu, p["sigma"], 1.0 / p["excess"]),
        variance=lambda p: p["sigma"] ** 2 + p["excess"] ** 2,
        # PyMC's nu is the exponential component's mean: bayescale's `excess`.
        pymc_build=lambda pm, name, mu, p, **kw: pm.ExGaussian(name, mu=mu, sigma=p["sigma"], nu=p["excess"], **kw),
        description="One-sided inefficiency: Normal noise plus an exponential excess above the law.",
    )
)


__all__ = [
    "mixture_cdf",
    "mixture_quantiles",
    "DF",
    "EXCESS",
    "FAMILIES",
    "SIGMA",
    "ExGaussian",
    "Family",
    "NoiseParam",
    "families_with",
    "get_family",
    "noise_params",
    "noise_priors",
    "noise_value",
    "observation_dist",
    "predictive_variance",
    "register_family",
]
