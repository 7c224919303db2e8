"""Observation models for log loss around the law: Normal, Student-t, and ExGaussian.

``ExGaussian`` is the one-sided "inefficiency" model: a scaling law is a lower
envelope of achievable loss, and an under-tuned pilot lands above it. The observed
log loss is ``law + e + eps`` with ``e ~ Exponential(mean = excess)`` and
``eps ~ Normal(0, sigma)``; runs above the law are explained by ``e`` without
dragging the law up.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax import random
from jax.scipy.special import log_ndtr, ndtr
from numpyro.distributions import constraints
from numpyro.distributions.util import promote_shapes

from .priors import Prior

FAMILIES = ("Normal", "StudentT", "ExGaussian")


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


def noise_priors(likelihood: Any) -> dict[str, Prior]:
    """The likelihood's noise parameters that have priors, by posterior variable name."""
    out = {"sigma": likelihood.sigma}
    if likelihood.family == "StudentT" and isinstance(likelihood.df, Prior):
        out["df"] = likelihood.df
    if likelihood.family == "ExGaussian":
        out["excess"] = likelihood.excess
    return out


def observation_dist(likelihood: Any, mu: Any, params: Mapping[str, Any]) -> dist.Distribution:
    """Distribution of observed log loss around the law's log loss ``mu``; arrays broadcast."""
    sigma = params["sigma"]
    if likelihood.family == "Normal":
        return dist.Normal(mu, sigma)
    if likelihood.family == "StudentT":
        return dist.StudentT(params["df"] if "df" in params else likelihood.df, mu, sigma)
    return ExGaussian(mu, sigma, 1.0 / params["excess"])


def predictive_variance(likelihood: Any, params: Mapping[str, Any]) -> Any:
    """Variance of one run's log loss around the law, per draw of the noise parameters.

    ``params`` holds draws of the noise parameters (arrays that broadcast). Student-t's
    ``sigma^2 df / (df - 2)`` is capped at ``5.5 sigma^2`` (its value at ``df = 2.2``): with
    fewer degrees of freedom the variance is infinite and useless for planning.
    """
    sigma = params["sigma"]
    var = sigma**2
    if likelihood.family == "StudentT":
        df = params["df"] if "df" in params else float(likelihood.df)
        df = np.asarray(df, dtype=float)
        var = var * np.where(df > 2.2, df / np.maximum(df - 2.0, 1e-9), 5.5)
    if likelihood.family == "ExGaussian":
        var = var + params["excess"] ** 2
    return var


__all__ = ["FAMILIES", "ExGaussian", "noise_priors", "observation_dist", "predictive_variance"]
