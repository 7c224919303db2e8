"""The tables of a spec besides the law and its priors: ``[likelihood]`` (:class:`Likelihood`) and
``[sampler]`` (:class:`SamplerSettings`), with the key validation every table shares.
:mod:`bayescale.spec` re-exports them; this module keeps that one under its size budget."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from . import likelihoods
from .errors import SpecError
from .priors import Prior, as_prior

LIKELIHOODS = likelihoods.FAMILIES
CHAIN_METHODS = ("auto", "vectorized", "parallel", "sequential")
INITS = ("map", "prior")
DEVICES = ("auto", "cpu", "gpu")
#: Values of ``[priors] scale``: "fixed" (the priors as written) or "runs" (priors left out of the
#: table for the law's irreducible loss, coefficients and exponents are placed on the runs' scale).
PRIOR_SCALES = ("fixed", "runs")


def _validate_keys(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown}; allowed: {list(allowed)}")


@dataclass(frozen=True)
class Likelihood:
    """Observation model for log loss: ``log L_obs ~ family(log L_law, sigma[, df])``.

    ``family`` names a registered observation family (:mod:`bayescale.likelihoods`):
    built in are ``"Normal"``, ``"StudentT"`` (robust to outlying runs, the Bayesian
    counterpart of the Huber loss published fits use) and ``"ExGaussian"`` (one-sided
    inefficiency: under-tuned runs land above the law by an exponential excess whose
    mean has the prior ``excess``). ``df`` is a fixed number or a :class:`Prior`, used
    by ``"StudentT"`` only. Noise parameters of families registered later live in
    ``extra`` (``(name, value)`` pairs, sorted); :meth:`value` reads any of them.
    """

    family: str = "StudentT"
    sigma: Prior = field(default_factory=lambda: likelihoods.SIGMA.default)
    df: float | Prior = likelihoods.DF.default
    excess: Prior | None = None
    extra: tuple[tuple[str, float | Prior], ...] = ()

    def __post_init__(self) -> None:
        extra = dict(self.extra)
        declared = likelihoods.get_family(self.family).noise if self.family in likelihoods.FAMILIES else ()
        for p in declared:
            if likelihoods.noise_value(self, p.name) is None:  # the family's default, as from_dict gives
                if p.name in _LIKELIHOOD_FIELDS:
                    object.__setattr__(self, p.name, p.default)
                else:
                    extra[p.name] = p.default
        object.__setattr__(self, "extra", tuple(sorted(extra.items())))

    def value(self, name: str) -> Any:
        """The value of noise parameter ``name`` (a :class:`Prior` or a fixed number), or None."""
        return likelihoods.noise_value(self, name)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "likelihood") -> "Likelihood":
        if not isinstance(d, Mapping):
            raise SpecError(f"{where}: must be a table")
        known = likelihoods.noise_params()
        _validate_keys(d, ("family", *known), where)
        family = d.get("family", "StudentT")
        if family not in likelihoods.FAMILIES:
            raise SpecError(f"{where}.family: {family!r} is not supported; use one of {list(likelihoods.FAMILIES)}")
        declared = likelihoods.get_family(family).noise_names
        values: dict[str, Any] = {}
        for name, param in known.items():
            if name in d and name not in declared and not param.accepted_by_all:
                owners = likelihoods.families_with(name)
                what = (
                    f"the {owners[0]} family has" if len(owners) == 1 else f"the {' and '.join(owners)} families have"
                )
                article = "an" if name[0] in "aeiou" else "a"
                raise SpecError(f"{where}.{name}: only {what} {article} {name} term (family is {family!r})")
            if name in d or name in declared:
                values[name] = _noise_value(param, d[name], f"{where}.{name}") if name in d else param.default
        fields_ = {k: v for k, v in values.items() if k in _LIKELIHOOD_FIELDS}
        extra = tuple(sorted((k, v) for k, v in values.items() if k not in _LIKELIHOOD_FIELDS))
        return cls(family=family, **fields_, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"family": self.family}
        for p in likelihoods.get_family(self.family).noise:
            v = self.value(p.name)
            out[p.name] = v.to_dict() if isinstance(v, Prior) else v
        return out


_LIKELIHOOD_FIELDS = ("sigma", "df", "excess")


def _noise_value(param: likelihoods.NoiseParam, raw: Any, where: str) -> float | Prior:
    """A spec's value for a noise parameter: a positive prior, or a number > 0 where the parameter may be fixed."""
    if param.fixed and not isinstance(raw, (Mapping, Prior)):
        if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw > 0:
            return float(raw)
        raise SpecError(f"{where}: must be a number > 0 or a prior table, got {raw!r}")
    prior = as_prior(raw, where=where)
    if not prior.is_positive():
        raise SpecError(f"{where}: prior {prior} allows values <= 0; {param.advice}")
    return prior


@dataclass(frozen=True)
class SamplerSettings:
    """NUTS settings. ``chain_method="auto"`` picks the fastest correct setup for the machine."""

    chains: int = 4
    warmup: int = 1000
    draws: int = 1000
    target_accept: float = 0.9
    max_tree_depth: int = 10
    dense_mass: bool = True
    init: str = "map"
    chain_method: str = "auto"
    device: str = "auto"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "sampler") -> "SamplerSettings":
        if not isinstance(d, Mapping):
            raise SpecError(f"{where}: must be a table")
        names = tuple(f.name for f in fields(cls))
        _validate_keys(d, names, where)
        out = cls(**d)
        out.validate(where)
        return out

    def validate(self, where: str = "sampler") -> None:
        for name in ("chains", "warmup", "draws", "max_tree_depth"):
            v = getattr(self, name)
            low = 0 if name == "warmup" else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise SpecError(f"{where}.{name}: must be an integer >= {low}, got {v!r}")
        ta = self.target_accept
        if isinstance(ta, bool) or not isinstance(ta, (int, float)) or not 0 < ta < 1:
            raise SpecError(f"{where}.target_accept: must be a number in (0, 1), got {ta!r}")
        if not isinstance(self.dense_mass, bool):
            raise SpecError(f"{where}.dense_mass: must be true or false, got {self.dense_mass!r}")
        if self.init not in INITS:
            raise SpecError(f"{where}.init: {self.init!r} is not one of {list(INITS)}")
        if self.device not in DEVICES:
            raise SpecError(f"{where}.device: {self.device!r} is not one of {list(DEVICES)}")
        if self.chain_method not in CHAIN_METHODS:
            raise SpecError(f"{where}.chain_method: {self.chain_method!r} is not one of {list(CHAIN_METHODS)}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
