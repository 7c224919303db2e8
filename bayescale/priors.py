"""Declarative priors: a NumPyro distribution name and its parameters, verbatim.

A :class:`Prior` is data (it round-trips through TOML, JSON and netCDF
attributes) and becomes a NumPyro distribution only when a model is built.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpyro.distributions as dist
from numpyro.distributions import constraints

from .errors import SpecError

# Parameters of a distribution's constructor that are not distribution parameters.
_NOT_PARAMS = {"self", "validate_args", "support"}
# NumPyro exposes these as factory functions rather than classes.
_FACTORIES = ("TruncatedNormal", "TruncatedCauchy")


def _distribution_class(name: str, where: str) -> type[dist.Distribution]:
    cls = getattr(dist, name, None)
    if name in _FACTORIES:
        return cls
    if (
        not (inspect.isclass(cls) and issubclass(cls, dist.Distribution))
        or name.startswith("_")
        or cls is dist.Distribution
        or name == "Unit"
    ):
        known = ", ".join(available_distributions())
        raise SpecError(f"{where}: unknown distribution {name!r}; use a numpyro.distributions name: {known}")
    return cls


def available_distributions() -> list[str]:
    """Names of the NumPyro distributions a prior may use (scalar, continuous ones)."""
    names = []
    for name in dir(dist):
        cls = getattr(dist, name)
        if name.startswith("_") or not inspect.isclass(cls) or not issubclass(cls, dist.Distribution):
            continue
        if cls is dist.Distribution or name == "Unit":
            continue
        support = getattr(cls, "support", None)
        try:
            if isinstance(support, constraints.Constraint) and (support.is_discrete or support.event_dim > 0):
                continue
        except NotImplementedError:
            continue
        try:
            params = _constructor_params(cls)
        except (TypeError, ValueError):
            continue
        if params and all(p in getattr(cls, "arg_constraints", {}) for p in params):
            names.append(name)
    return sorted(names + list(_FACTORIES))


def _constructor_params(cls: type) -> list[str]:
    sig = inspect.signature(cls.__init__ if inspect.isclass(cls) else cls)
    return [
        p.name
        for p in sig.parameters.values()
        if p.name not in _NOT_PARAMS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


@dataclass(frozen=True)
class Prior:
    """A prior distribution, declared by NumPyro distribution name and parameters.

    Parameters
    ----------
    dist : str
        Name of a class in :mod:`numpyro.distributions`, e.g. ``"LogNormal"``.
    params : mapping of str to float
        Its constructor arguments with NumPyro's names, e.g. ``{"loc": 0.5, "scale": 0.3}``.

    Examples
    --------
    >>> p = Prior("LogNormal", {"loc": 0.5, "scale": 0.3})
    >>> p.to_dict()
    {'dist': 'LogNormal', 'loc': 0.5, 'scale': 0.3}
    """

    dist: str
    params: Mapping[str, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", dict(self.params))

    def __hash__(self) -> int:
        return hash((self.dist, tuple(sorted(self.params.items()))))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "prior") -> "Prior":
        """Build and validate a prior from ``{"dist": name, **params}``.

        Raises
        ------
        SpecError
            If the table is not a table, names no or an unknown distribution, has
            unknown or non-numeric parameters, or values outside their constraint.
        """
        if not isinstance(d, Mapping):
            raise SpecError(
                f'{where}: a prior must be a table like {{dist = "LogNormal", loc = 0, scale = 1}}, got {d!r}'
            )
        if "dist" not in d:
            raise SpecError(f"{where}: missing 'dist' (a numpyro.distributions name such as 'LogNormal')")
        prior = cls(str(d["dist"]), {k: v for k, v in d.items() if k != "dist"})
        prior.validate(where)
        return prior

    def validate(self, where: str = "prior") -> None:
        """Check the distribution exists and its parameters are allowed values."""
        cls = _distribution_class(self.dist, where)
        allowed = _constructor_params(cls)
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            raise SpecError(f"{where}: {self.dist} has no parameter {unknown}; allowed: {allowed}")
        for k, v in self.params.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise SpecError(f"{where}: parameter {k!r} of {self.dist} must be a finite number, got {v!r}")
        try:
            d = self.to_numpyro(validate_args=True)
        except (ValueError, TypeError) as e:
            raise SpecError(f"{where}: invalid {self.dist}{self.params}: {e}") from None
        if d.event_shape != () or d.batch_shape != () or d.support.is_discrete:
            raise SpecError(f"{where}: {self.dist} is not a scalar continuous distribution; a prior must be one")

    def to_numpyro(self, validate_args: bool | None = None) -> dist.Distribution:
        """The NumPyro distribution this prior declares."""
        cls = getattr(dist, self.dist)
        kwargs = {k: float(v) for k, v in self.params.items()}
        if validate_args is not None:
            kwargs["validate_args"] = validate_args
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """``{"dist": name, **params}``, the form used in spec files."""
        return {"dist": self.dist, **self.params}

    def is_positive(self) -> bool:
        """Whether every value the prior can take is > 0 (or >= 0)."""
        support = self.to_numpyro().support
        if support is constraints.positive or support is constraints.nonnegative:
            return True
        lower = getattr(support, "lower_bound", None)
        if lower is None:
            base = getattr(support, "base_constraint", None)
            lower = getattr(base, "lower_bound", None)
        try:
            return lower is not None and float(lower) >= 0.0
        except TypeError:
            return False

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.dist}({args})"


def as_prior(value: Prior | Mapping[str, Any], *, where: str = "prior") -> Prior:
    """Accept a :class:`Prior` or its dict form."""
    if isinstance(value, Prior):
        value.validate(where)
        return value
    return Prior.from_dict(value, where=where)


__all__ = ["Prior", "as_prior", "available_distributions"]
