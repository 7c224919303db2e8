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
    per_decade = {dist = "HalfNormal", scale = 0.05}
    learned = true                     # per_decade is a hyperprior the runs' own leave-future-out splits update
    gap_per_decade = {dist = "LogUniform", low = 1e-4, high = 0.1}   # compare: a recipe's own drift (the default)
    gap_alike = 0.5                    # compare: prior probability that the recipes drift alike (no gap; the default)

    [sampler]
    chains = 4
    warmup = 1000
    draws = 1000
    target_accept = 0.9
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

#: Names of the registered likelihood families (a live view of :mod:`bayescale.likelihoods`' registry).
from ._spec_tables import (  # noqa: F401  (re-exported: their home before _spec_tables)
    CHAIN_METHODS,
    DEVICES,
    INITS,
    LIKELIHOODS,
    PRIOR_SCALES,
    Likelihood,
    SamplerSettings,
    _noise_value,
    _validate_keys,
)
from ._words import join_names
from .errors import LawError, SpecError
from .laws import Law, get_law
from .priors import Prior, as_prior

#: Runs-table columns no law may read, and why: a law fitted to its own loss predicts itself.
NOT_INPUTS = {
    "loss": "what the law predicts",
    "run_id": "a run's name",
    "derived": "a note of which columns were derived",
    "source": "text",
    "arch": "text",
    "notes": "text",
    "trunk_id": "a WSD trunk's name",
}


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
    #: True: ``extrapolation`` is the hyperprior of a drift scale learned from leave-future-out splits
    #: of the runs (:mod:`bayescale.discrepancy`); False: it is the drift scale's prior, used as is.
    learn_drift: bool = False
    #: The hyperprior of the scale of a recipe's own drift in a comparison (:func:`bayescale.compare`),
    #: in log loss per decade; None: :data:`bayescale.discrepancy.GAP_HYPERPRIOR`.
    gap_per_decade: Prior | None = None
    #: The prior probability that a comparison's recipes drift alike (a gap of exactly 0, beside the
    #: ``gap_per_decade`` slab); None: :data:`bayescale.discrepancy.GAP_ALIKE`.
    gap_alike: float | None = None
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
        for k, v in cols.items():  # the spec's mapping, or a registered law's own columns
            if v in NOT_INPUTS:
                raise SpecError(
                    f"law.inputs.{k}: {v!r} cannot be a law input (it is {NOT_INPUTS[v]}); name a column such as N, D or C"
                )
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
        if self.learn_drift and self.extrapolation is None:
            raise SpecError("extrapolation.learned: needs per_decade, the hyperprior of the learned drift scale")
        if self.extrapolation is not None and not self.extrapolation.is_positive():
            raise SpecError(f"extrapolation.per_decade: {self.extrapolation} allows values < 0; use e.g. HalfNormal")
        if self.gap_per_decade is not None and not self.gap_per_decade.is_positive():
            raise SpecError(
                f"extrapolation.gap_per_decade: {self.gap_per_decade} allows values < 0; use e.g. LogUniform or HalfNormal"
            )
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
            if self.learn_drift:
                out["extrapolation"]["learned"] = True
            if self.gap_per_decade is not None:
                out["extrapolation"]["gap_per_decade"] = self.gap_per_decade.to_dict()
            if self.gap_alike is not None:
                out["extrapolation"]["gap_alike"] = self.gap_alike
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


def _extrapolation(ex: Any) -> tuple[Prior, bool, Prior | None, float | None]:
    """The ``[extrapolation]`` table: the drift's prior, whether it is learned, the gap's hyperprior
    and the prior probability that recipes drift alike (None: the defaults)."""
    gap, alike = None, None
    if not isinstance(ex, Mapping):
        raise SpecError("extrapolation: must be a table with per_decade = {dist = ..., ...}")
    _validate_keys(ex, ("per_decade", "learned", "gap_per_decade", "gap_alike"), "extrapolation")
    if "per_decade" not in ex:
        raise SpecError(
            "extrapolation: missing per_decade (a prior on the law's drift in log loss per decade of distance "
            "from the runs in (log N, log D))"
        )
    extrapolation = as_prior(ex["per_decade"], where="extrapolation.per_decade")
    learn_drift = ex.get("learned", False)
    if not isinstance(learn_drift, bool):
        raise SpecError(f"extrapolation.learned: must be true or false, got {learn_drift!r}")
    if "gap_per_decade" in ex:
        gap = as_prior(ex["gap_per_decade"], where="extrapolation.gap_per_decade")
    if "gap_alike" in ex:
        alike = _probability(ex["gap_alike"], "extrapolation.gap_alike")
    return extrapolation, learn_drift, gap, alike


def _probability(value: Any, where: str) -> float:
    """A prior probability in [0, 1) (1 would rule the alternative out before any run is seen)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= float(value) < 1:
        raise SpecError(f"{where}: must be a probability from 0 up to (not including) 1, got {value!r}")
    return float(value)


def recorded_spec(d: Mapping[str, Any], *, path: str | None = None) -> ModelSpec:
    """The spec a saved fit recorded (:func:`spec_from_dict`); a law it names that this process has not
    registered (one of the user's own, :func:`bayescale.register_law`) is said to need registering."""
    try:
        return spec_from_dict(d, path=path)
    except SpecError as e:
        if "unknown law" not in str(e):
            raise
        raise SpecError(
            f"{e} (a law added by bayescale.register_law lasts only as long as the Python process that added it: "
            "register it again before loading a fit that names it)"
        ) from None


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
    extrapolation, learn_drift, gap, alike = (
        _extrapolation(d["extrapolation"]) if "extrapolation" in d else (None, False, None, None)
    )
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
        learn_drift=learn_drift,
        gap_per_decade=gap,
        gap_alike=alike,
        prior_scale=prior_scale,
        from_runs=from_runs,
        placed=placed,
    )


@dataclass(frozen=True)
class AverageSpec:
    """Several laws fitted to the same runs and averaged by their leave-future-out predictions.

    TOML::

        name = "recommended"
        [average]
        laws = ["chinchilla", "kaplan", "farseer"]   # bundled spec names, or spec files beside this one
        weights = "stacking"                         # or "equal"
        concentration = 1.0                          # Dirichlet prior on the stacking weights (>= 1)
        calibrate = "none"                           # or "conformal" (split-conformal bands)

        [extrapolation]                              # optional: replaces every member's drift
        per_decade = {dist = "HalfNormal", scale = 0.05}
        learned = true

    Every member must use the same likelihood family (their noise draws are mixed).
    """

    name: str
    members: tuple[ModelSpec, ...]
    weights: str = "stacking"
    calibrate: str | None = None
    description: str = ""
    #: Concentration of a symmetric Dirichlet prior on the stacking weights: 1 is plain stacking,
    #: larger values pull the weights towards equal when the splits' evidence is weak.
    concentration: float = 1.0
    path: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise SpecError("average.laws: name at least two specs to average")
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise SpecError(
                f"average.laws: each spec once; {join_names([n for n in names if names.count(n) > 1])} repeat"
            )
        families = sorted({m.likelihood.family for m in self.members})
        if len(families) > 1:
            raise SpecError(f"average.laws: the members must share one likelihood family, got {join_names(families)}")
        if self.weights not in AVERAGE_WEIGHTS:
            raise SpecError(f"average.weights: one of {join_names(AVERAGE_WEIGHTS)}, got {self.weights!r}")
        if self.calibrate not in (None, "conformal"):
            raise SpecError(f"average.calibrate: 'none' or 'conformal', got {self.calibrate!r}")
        if (
            isinstance(self.concentration, bool)
            or not isinstance(self.concentration, (int, float))
            or not math.isfinite(self.concentration)
            or self.concentration < 1
        ):
            raise SpecError(
                f"average.concentration: a number of at least 1 (1 = plain stacking), got {self.concentration!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain-data form (what :func:`load_spec` reads back); members are written whole."""
        return {
            "name": self.name,
            "description": self.description,
            "average": {
                "laws": [m.to_dict() for m in self.members],
                "weights": self.weights,
                "calibrate": self.calibrate or "none",
                **({"concentration": self.concentration} if self.concentration != 1 else {}),
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def to_toml(self) -> str:
        """The average as TOML text: each member written whole, one inline table per line."""
        lines = [f"name = {json.dumps(self.name)}", f"description = {json.dumps(self.description)}", "", "[average]"]
        lines += ["laws = ["] + [f"    {_toml_inline(m.to_dict())}," for m in self.members] + ["]"]
        lines += [f"weights = {json.dumps(self.weights)}", f"calibrate = {json.dumps(self.calibrate or 'none')}"]
        if self.concentration != 1:
            lines += [f"concentration = {float(self.concentration)!r}"]
        return "\n".join(lines) + "\n"

    @property
    def columns(self) -> tuple[str, ...]:
        """Runs-table columns any of the laws reads, sorted."""
        return tuple(sorted({c for m in self.members for c in m.columns}))

    @property
    def family(self) -> str:
        """The likelihood family every member shares."""
        return self.members[0].likelihood.family

    @property
    def id(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @property
    def model_id(self) -> str:
        """Hash of what the average believes: its members' model ids, the weighting and the calibration."""
        core = [[m.model_id for m in self.members], self.weights, self.calibrate]
        if self.concentration != 1:  # so that the ids of averages written before the option stay the same
            core.append(float(self.concentration))
        return hashlib.sha256(json.dumps(core).encode()).hexdigest()[:16]


#: How an :class:`AverageSpec` weighs its laws.
AVERAGE_WEIGHTS = ("stacking", "equal")


def _average_from_dict(d: Mapping[str, Any], path: str | None) -> AverageSpec:
    _validate_keys(d, ("name", "description", "average", "extrapolation"), "average spec")
    av = d["average"]
    if not isinstance(av, Mapping):
        raise SpecError("average: must be a table with laws = [...]")
    _validate_keys(av, ("laws", "weights", "calibrate", "concentration"), "average")
    laws = av.get("laws")
    if not isinstance(laws, list) or not laws:
        raise SpecError('average.laws: a list of spec names or files, e.g. ["chinchilla", "kaplan"]')
    here = Path(path).parent if path else None
    members = []
    for i, item in enumerate(laws):
        if isinstance(item, Mapping):
            members.append(spec_from_dict(item))
        elif isinstance(item, str) and item:
            local = here / item if here is not None else None
            member = load_spec(local if local is not None and local.is_file() else item)
            if isinstance(member, AverageSpec):
                raise SpecError(f"average.laws[{i}]: {item!r} is itself an average; name single-law specs")
            members.append(member)
        else:
            raise SpecError(f"average.laws[{i}]: a spec name or file, got {item!r}")
    if "extrapolation" in d:
        # One statement of the drift for every law: parsed as a single spec's, then given to each member.
        probe = spec_from_dict({**members[0].to_dict(), "extrapolation": d["extrapolation"]})
        # The members no longer say what their files say: they keep no path (no stale check against it).
        members = [
            replace(
                m,
                extrapolation=probe.extrapolation,
                learn_drift=probe.learn_drift,
                gap_per_decade=probe.gap_per_decade,
                gap_alike=probe.gap_alike,
                path=None,
            )
            for m in members
        ]
    calibrate = av.get("calibrate", "none")
    return AverageSpec(
        name=str(d.get("name", "average")),
        members=tuple(members),
        weights=av.get("weights", "stacking"),
        calibrate=None if calibrate == "none" else calibrate,
        description=str(d.get("description", "")),
        concentration=av.get("concentration", 1.0),
        path=path,
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
    ModelSpec, or AverageSpec for a file with an ``[average]`` table (several laws; fit it with
    ``bayescale.fit``, which returns an :class:`~bayescale.averaging.AveragedFit`)

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
    if isinstance(source, (ModelSpec, AverageSpec)):
        return source
    if isinstance(source, Mapping):
        return _average_from_dict(source, None) if "average" in source else spec_from_dict(source)
    path = Path(source)
    if not path.exists() and path.suffix == "" and (bundled := _bundled_spec(str(source))) is not None:
        path = bundled
    if not path.is_file():
        what = "is a folder, not a TOML file" if path.is_dir() else "not found"
        raise SpecError(
            f"spec file {str(source)!r} {what}; the bundled specs are {join_names(bundled_specs(), quoted=True, limit=20)}"
        )
    try:
        d = tomllib.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # not valid TOML, or not UTF-8 text as TOML must be
        raise SpecError(f"spec {path}: not valid TOML (UTF-8 text): {e}") from None
    if "average" in d:
        return _average_from_dict(d, str(path.resolve()))
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


__all__ = [
    "AVERAGE_WEIGHTS",
    "AverageSpec",
    "Likelihood",
    "ModelSpec",
    "SamplerSettings",
    "bundled_specs",
    "load_spec",
    "spec_from_dict",
]
__all__ = ["PRIOR_SCALES", "Likelihood", "ModelSpec", "SamplerSettings", "bundled_specs", "load_spec", "spec_from_dict"]
