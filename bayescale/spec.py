"""Model specs: which law, which priors, which likelihood, which sampler settings.

A :class:`ModelSpec` is a frozen description of a belief, loaded from TOML
(``models/*.toml``) or built in Python. Its :attr:`~ModelSpec.id` is a hash of its
canonical form, so a saved fit can tell when the spec it came from has changed.

Spec file format::

    name = "chinchilla"
    description = "Weakly informative priors; Student-t likelihood on log loss."
    law = "chinchilla"                 # or a table: [law] name = "power", inputs = {S = "N"}

    [priors]                           # NumPyro distribution names and parameters, verbatim
    E = {dist = "LogNormal", loc = 0.5, scale = 0.5}
    ...
    # or: scale = "runs" first, and the priors of the irreducible loss, coefficients and
    # exponents left out are placed on the scale of the runs when fitting (bayescale.scaled_priors)

    [likelihood]
    family = "StudentT"                # a registered family: "Normal", "StudentT" (robust), "ExGaussian"
    sigma = {dist = "HalfNormal", scale = 0.05}
    df = 4.0                           # StudentT only: a number or a prior table

    [extrapolation]                    # optional: how far the law may drift beyond the runs
    per_decade = {dist = "HalfNormal", scale = 0.01}

    [sampler]
    chains = 4
    warmup = 1000
    draws = 1000
    target_accept = 0.9
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from . import likelihoods
from .errors import LawError, SpecError
from .laws import Law, get_law
from .priors import Prior, as_prior

#: Names of the registered likelihood families (a live view of :mod:`bayescale.likelihoods`' registry).
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


@dataclass(frozen=True)
class ModelSpec:
    """What we believe: a law, priors on its parameters, a likelihood and sampler settings.

    Build one with :func:`load_spec` (TOML file or dict) or :meth:`from_law`.

    Examples
    --------
    >>> spec = ModelSpec.from_law("chinchilla")
    >>> spec.law.params
    ('E', 'A', 'B', 'alpha', 'beta')
    """

    name: str
    law: Law
    priors: Mapping[str, Prior]
    likelihood: Likelihood = field(default_factory=Likelihood)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    inputs: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    path: str | None = field(default=None, compare=False)
    extrapolation: Prior | None = None
    #: ``"runs"``: the priors of ``from_runs`` are placed on the runs' scale before fitting; until
    #: then (``placed`` False) they hold the law's defaults as placeholders.
    prior_scale: str = "fixed"
    from_runs: tuple[str, ...] = ()
    placed: bool = False

    def __post_init__(self) -> None:
        law = self.law
        object.__setattr__(self, "priors", dict(self.priors))
        object.__setattr__(self, "from_runs", tuple(self.from_runs))
        _validate_prior_scale(self)
        cols = dict(law.columns)
        unknown_inputs = sorted(set(self.inputs) - set(law.inputs))
        if unknown_inputs:
            raise SpecError(
                f"law.inputs: {unknown_inputs} are not inputs of law {law.name!r}; its inputs are {list(law.inputs)}"
            )
        for k, v in dict(self.inputs).items():
            if not isinstance(v, str) or not v:
                raise SpecError(f"law.inputs.{k}: must name a runs-table column, got {v!r}")
        cols.update(self.inputs)
        object.__setattr__(self, "inputs", cols)
        extra = sorted(set(self.priors) - set(law.params))
        if extra:
            raise SpecError(
                f"priors: {extra} are not parameters of law {law.name!r}; its parameters are {list(law.params)}"
            )
        missing = [p for p in law.params if p not in self.priors]
        if missing:
            hint = "; ".join(f"{p} = {_toml_inline(law.priors[p].to_dict())}" for p in missing)
            raise SpecError(
                f"priors: missing prior(s) for {missing} of law {law.name!r}; the law's defaults are: {hint}"
            )
        if self.extrapolation is not None and not self.extrapolation.is_positive():
            raise SpecError(f"extrapolation.per_decade: {self.extrapolation} allows values < 0; use e.g. HalfNormal")
        for p in law.positive:
            if not self.priors[p].is_positive():
                raise SpecError(
                    f"priors.{p}: {self.priors[p]} allows values <= 0 but {p!r} must be > 0 in law {law.name!r}; "
                    "use a positive distribution (LogNormal, HalfNormal, Gamma, ...)"
                )

    @classmethod
    def from_law(cls, law: str | Law, *, name: str | None = None, **kwargs: Any) -> "ModelSpec":
        """A spec with the law's default priors, a Student-t likelihood and default sampler settings."""
        law = get_law(law)
        if kwargs.get("prior_scale") == "runs":
            kwargs.setdefault("from_runs", law.scalable)
        return cls(name=name or law.name, law=law, priors=dict(law.priors), **kwargs)

    @property
    def columns(self) -> tuple[str, ...]:
        """Runs-table columns the law reads, in the law's input order."""
        return tuple(self.inputs[i] for i in self.law.inputs)

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain-data form (what :func:`load_spec` reads back)."""
        law: dict[str, Any] = {"name": self.law.name}
        custom = {k: v for k, v in self.inputs.items() if v != k}
        if custom:
            law["inputs"] = custom
        out = {
            "name": self.name,
            "description": self.description,
            "law": law,
            "priors": self._priors_dict(),
            "likelihood": self.likelihood.to_dict(),
            "sampler": self.sampler.to_dict(),
        }
        if self.extrapolation is not None:
            out["extrapolation"] = {"per_decade": self.extrapolation.to_dict()}
        return out

    def _priors_dict(self) -> dict[str, Any]:
        """The priors table: with ``scale = "runs"``, the scale first, then either the placed priors
        and which ones were placed (``from_runs``), or only the priors written (placeholders left out)."""
        if self.prior_scale == "fixed":
            return {p: self.priors[p].to_dict() for p in self.law.params}
        out: dict[str, Any] = {"scale": self.prior_scale}
        if self.placed:
            out["from_runs"] = list(self.from_runs)
        skip = () if self.placed else self.from_runs
        return out | {p: self.priors[p].to_dict() for p in self.law.params if p not in skip}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def id(self) -> str:
        """Short hash of the canonical form: equal specs have equal ids."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @property
    def model_id(self) -> str:
        """Hash of what the spec believes (law, inputs, priors, likelihood), ignoring name,
        description and sampler settings: two specs with equal ``model_id`` define the same posterior."""
        d = self.to_dict()
        core = {k: d[k] for k in ("law", "priors", "likelihood", "extrapolation") if k in d}
        return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def declared_id(self) -> str:
        """:attr:`model_id` of the spec as declared: equal for a ``scale = "runs"`` spec and the fits
        whose priors were placed from it (on any runs), so a saved fit can tell when its spec file changed."""
        if not self.placed:
            return self.model_id
        return replace(self, placed=False, priors={**self.priors, **_placeholders(self)}).model_id

    def with_sampler(self, **changes: Any) -> "ModelSpec":
        """A copy with some sampler settings changed (validated)."""
        sampler = replace(self.sampler, **changes)
        sampler.validate()
        return replace(self, sampler=sampler)

    def to_toml(self) -> str:
        """The spec as TOML text."""
        d = self.to_dict()
        lines = [f"name = {json.dumps(d['name'])}"]
        if d["description"]:
            lines.append(f"description = {json.dumps(d['description'])}")
        lines += ["", "[law]", f"name = {json.dumps(d['law']['name'])}"]
        if "inputs" in d["law"]:
            lines.append(f"inputs = {_toml_inline(d['law']['inputs'])}")
        lines += ["", "[priors]"] + [f"{k} = {_toml_value(v)}" for k, v in d["priors"].items()]
        lines += ["", "[likelihood]"] + [f"{k} = {_toml_value(v)}" for k, v in d["likelihood"].items()]
        if "extrapolation" in d:
            lines += ["", "[extrapolation]"] + [f"{k} = {_toml_value(v)}" for k, v in d["extrapolation"].items()]
        lines += ["", "[sampler]"] + [f"{k} = {_toml_value(v)}" for k, v in d["sampler"].items()]
        return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, Mapping):
        return _toml_inline(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (str, list)):
        return json.dumps(v)
    return repr(v)


def _toml_inline(d: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in d.items()) + "}"


def _placeholders(spec: ModelSpec) -> dict[str, Prior]:
    """The law's default priors for the parameters a ``scale = "runs"`` spec places from the runs."""
    return {p: spec.law.priors[p] for p in spec.from_runs}


def _validate_prior_scale(spec: ModelSpec) -> None:
    law = spec.law
    if spec.prior_scale not in PRIOR_SCALES:
        raise SpecError(f"priors.scale: {spec.prior_scale!r} is not one of {list(PRIOR_SCALES)}")
    if spec.prior_scale == "fixed":
        if spec.from_runs or spec.placed:
            raise SpecError('priors.from_runs: only a spec with scale = "runs" places priors from the runs')
        return
    if not law.scalable:
        raise SpecError(
            f'priors.scale: "runs" places the priors of a law\'s irreducible loss and power terms on the scale of '
            f"the runs, and law {law.name!r} declares neither (Law.irreducible, Law.power_terms); write its priors"
        )
    bad = [p for p in spec.from_runs if p not in law.scalable]
    if bad:
        raise SpecError(
            f"priors.from_runs: {bad} cannot be placed on the runs' scale in law {law.name!r}; "
            f"its scalable parameters are {list(law.scalable)}"
        )


def _prior_scale_of(table: Mapping[str, Any], law: Law) -> tuple[str, tuple[str, ...], bool]:
    """``[priors] scale`` (and ``from_runs``, which a saved fit's spec records) of a priors table:
    the scale, the parameters placed from the runs, and whether their priors are already placed."""
    scale = table.get("scale", "fixed")
    if not isinstance(scale, str) or scale not in PRIOR_SCALES:
        raise SpecError(f"priors.scale: {scale!r} is not one of {list(PRIOR_SCALES)}")
    if "from_runs" in table:
        placed = table["from_runs"]
        if not isinstance(placed, list) or not all(isinstance(p, str) for p in placed):
            raise SpecError(f"priors.from_runs: must be a list of parameter names, got {placed!r}")
        return scale, tuple(placed), True
    if scale == "runs":
        return scale, tuple(p for p in law.scalable if p not in table), False
    return scale, (), False


_TOP_KEYS = ("name", "description", "law", "priors", "likelihood", "sampler", "extrapolation")


def spec_from_dict(d: Mapping[str, Any], *, path: str | None = None) -> ModelSpec:
    """Build and validate a :class:`ModelSpec` from its plain-data form."""
    where = f"spec {path}" if path else "spec"
    if not isinstance(d, Mapping):
        raise SpecError(f"{where}: must be a table")
    _validate_keys(d, _TOP_KEYS, where)
    if "law" not in d:
        raise SpecError(f"{where}: missing 'law' (one of the registered laws)")
    law_table = d["law"]
    if isinstance(law_table, str):
        law_table = {"name": law_table}
    if not isinstance(law_table, Mapping):
        raise SpecError(f"{where}: 'law' must be a law name or a table with 'name'")
    _validate_keys(law_table, ("name", "inputs"), "law")
    try:
        law = get_law(law_table.get("name"))
    except LawError as e:
        raise SpecError(f"law.name: {e}") from None
    inputs = law_table.get("inputs", {})
    if not isinstance(inputs, Mapping):
        raise SpecError('law.inputs: must be a table mapping law inputs to runs-table columns, e.g. {S = "N"}')
    priors_table = d.get("priors")
    if not isinstance(priors_table, Mapping):
        raise SpecError(
            f"{where}: missing [priors] table; give one prior per parameter of law {law.name!r}: {list(law.params)}"
        )
    prior_scale, from_runs, placed = _prior_scale_of(priors_table, law)
    priors = {k: as_prior(v, where=f"priors.{k}") for k, v in priors_table.items() if k not in ("scale", "from_runs")}
    if not placed:
        priors |= {p: law.priors[p] for p in from_runs}  # placeholders until the runs are seen
    likelihood = Likelihood.from_dict(d.get("likelihood", {}))
    extrapolation = None
    if "extrapolation" in d:
        ex = d["extrapolation"]
        if not isinstance(ex, Mapping):
            raise SpecError("extrapolation: must be a table with per_decade = {dist = ..., ...}")
        _validate_keys(ex, ("per_decade",), "extrapolation")
        if "per_decade" not in ex:
            raise SpecError(
                "extrapolation: missing per_decade (a prior on the law's drift in log loss per decade of compute)"
            )
        extrapolation = as_prior(ex["per_decade"], where="extrapolation.per_decade")
    sampler = SamplerSettings.from_dict(d.get("sampler", {}))
    name = d.get("name", law.name)
    if not isinstance(name, str) or not name:
        raise SpecError(f"{where}: 'name' must be a non-empty string")
    description = d.get("description", "")
    return ModelSpec(
        name=name,
        law=law,
        priors=priors,
        likelihood=likelihood,
        sampler=sampler,
        inputs=dict(inputs),
        description=str(description),
        path=path,
        extrapolation=extrapolation,
        prior_scale=prior_scale,
        from_runs=from_runs,
        placed=placed,
    )


def load_spec(source: str | os.PathLike | Mapping[str, Any] | ModelSpec) -> ModelSpec:
    """Load and validate a model spec.

    Parameters
    ----------
    source : path, mapping or ModelSpec
        A TOML file (``models/chinchilla.toml``), the name of a bundled spec
        (``"chinchilla"``), its parsed dict, or a spec (returned as is).

    Returns
    -------
    ModelSpec

    Raises
    ------
    SpecError
        If the file is missing or not TOML, or the spec has unknown keys, an unknown
        law or distribution, priors for parameters the law lacks, or missing priors.

    Examples
    --------
    >>> spec = load_spec("chinchilla")
    >>> spec.likelihood.family
    'StudentT'
    """
    if isinstance(source, ModelSpec):
        return source
    if isinstance(source, Mapping):
        return spec_from_dict(source)
    path = Path(source)
    if not path.exists() and path.suffix == "" and (bundled := _bundled_spec(str(source))) is not None:
        path = bundled
    if not path.is_file():
        raise SpecError(f"spec file {str(source)!r} not found; bundled specs: {bundled_specs()}")
    try:
        d = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"spec {path}: not valid TOML: {e}") from None
    return spec_from_dict(d, path=str(path.resolve()))


def _models_dir() -> Path:
    """Bundled specs: the package copy, or ``models/`` of a source checkout."""
    here = Path(__file__).resolve().parent
    for cand in (here / "models", here.parent / "models"):
        if cand.is_dir():
            return cand
    return here / "models"


def bundled_specs() -> list[str]:
    """Names of the specs shipped in ``models/``."""
    return sorted(p.stem for p in _models_dir().glob("*.toml"))


def _bundled_spec(name: str) -> Path | None:
    p = _models_dir() / f"{name}.toml"
    return p if p.is_file() else None


__all__ = ["PRIOR_SCALES", "Likelihood", "ModelSpec", "SamplerSettings", "bundled_specs", "load_spec", "spec_from_dict"]
