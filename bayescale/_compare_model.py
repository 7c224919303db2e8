"""The grouped model of a recipe comparison: one law per recipe, in ONE spec that the ordinary
engine fits (:func:`bayescale.inference.fit`).

A comparison does not get its own sampler. :func:`grouped_spec` turns a spec and a list of
groups (recipes) into a :class:`~bayescale.ModelSpec` whose law is the base law with a group
dimension, written out as ordinary parameters, each with an ordinary independent prior:

* **shared** parameter ``E``: one value for every recipe (the base prior);
* **free** parameter ``A``: ``A_g0, A_g1, ...``, one per recipe, each with the base prior;
* **pooled** parameter ``alpha`` (hierarchical, non-centred, as the learning-curve fits pool
  exponents, :mod:`bayescale.model`): ``alpha_mu ~ Normal(loc, scale)`` (the base LogNormal's),
  ``alpha_tau ~ HalfNormal(TAU_SCALE)`` and ``alpha_z0, alpha_z1, ... ~ Normal(0, 1)``, with
  ``alpha_g = exp(alpha_mu + alpha_tau * alpha_zg)``.

Because the hierarchy is non-centred, the joint prior is a product of independent priors, so
the grouped model IS a spec: MAP/Laplace, PSIS, the whitened NUTS runner, modes, misfit, the
drift and the diagnostics all apply unchanged. The group of a run enters the law as one more
input, ``group``, read from the column :data:`GROUP_COLUMN` holding ``exp(group index)`` (law
inputs are read as logs, so the law sees the index itself and selects each run's parameters).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._words import join_names, quote
from .errors import BayescaleError
from .laws import Law
from .model import TAU_SCALE
from .priors import Prior
from .spec import ModelSpec

#: The runs-table column that carries each run's group to the grouped law (``exp(index)``).
GROUP_COLUMN = "group_code"
#: The grouped law's extra input.
GROUP_INPUT = "group"
#: How a parameter can vary between groups.
POOLING_KINDS = ("share", "pool", "free")


@dataclass(frozen=True)
class Pooling:
    """Which law parameters are shared by every group, pooled hierarchically, or free per group.

    Parameters not named in ``share`` or ``pool`` are free. ``Pooling.default(law)`` shares the
    law's irreducible loss (one data distribution, one entropy floor) and leaves coefficients
    and exponents free: a recipe may differ in efficiency and in how fast it improves. It is
    the default because it needs no hierarchy: the Laplace approximation (quick looks, loops
    over many datasets) is good for it, and NUTS keeps its reference-scale coordinates for every
    power term. ``pool=["alpha", "beta"]`` lets a recipe with few runs borrow its exponents
    from the others; decide with NUTS then (the Laplace Gaussian is poor in the hierarchy's funnel).
    """

    share: tuple[str, ...] = ()
    pool: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "share", tuple(self.share))
        object.__setattr__(self, "pool", tuple(self.pool))

    @classmethod
    def default(cls, law: Law) -> "Pooling":
        """Share the irreducible loss (when the law declares one); everything else free."""
        return cls(share=(law.irreducible,) if law.irreducible else ())

    @classmethod
    def parse(cls, value: Any, law: Law) -> "Pooling":
        """A :class:`Pooling` from ``None`` (the default), a Pooling, or a mapping
        ``{"share": [...], "pool": [...], "free": [...]}``. Names not listed are free; a mapping
        without a ``share`` key shares the irreducible loss as the default does, unless it pools or
        frees it (``{"pool": ["alpha"]}`` must not silently give each recipe its own floor)."""
        if value is None:
            return cls.default(law)
        if isinstance(value, Pooling):
            return value.checked(law)
        if not isinstance(value, Mapping):
            raise BayescaleError(f"pooling must be a mapping with keys {list(POOLING_KINDS)}, got {value!r}")
        unknown = [k for k in value if k not in POOLING_KINDS]
        if unknown:
            raise BayescaleError(f"pooling: unknown key(s) {join_names(unknown)}; allowed: {join_names(POOLING_KINDS)}")
        names = {k: [value[k]] if isinstance(value.get(k), str) else list(value.get(k) or ()) for k in POOLING_KINDS}
        if "share" not in value:
            named = {*names["pool"], *names["free"]}
            names["share"] = [p for p in cls.default(law).share if p not in named]
        return cls(share=tuple(names["share"]), pool=tuple(names["pool"])).checked(law, free=names["free"])

    def checked(self, law: Law, free: Sequence[str] = ()) -> "Pooling":
        """This pooling, after checking that it names the law's parameters, each once."""
        named = [*self.share, *self.pool, *free]
        bad = [p for p in named if p not in law.params]
        if bad:
            raise BayescaleError(
                f"pooling: {join_names(bad)} not parameters of law {law.name!r}; its parameters are "
                f"{join_names(law.params)}"
            )
        twice = sorted({p for p in named if named.count(p) > 1})
        if twice:
            raise BayescaleError(f"pooling: {join_names(twice)} named more than once (share, pool or free)")
        return self

    def kind(self, param: str) -> str:
        return "share" if param in self.share else "pool" if param in self.pool else "free"

    def free(self, law: Law) -> tuple[str, ...]:
        return tuple(p for p in law.params if self.kind(p) == "free")

    def to_dict(self, law: Law) -> dict[str, list[str]]:
        return {"share": list(self.share), "pool": list(self.pool), "free": list(self.free(law))}

    def describe(self, law: Law) -> str:
        parts = [
            f"{what} {join_names(names)}"
            for what, names in (
                ("shared", self.share),
                ("pooled hierarchically", self.pool),
                ("free per recipe", self.free(law)),
            )
            if names
        ]
        return "; ".join(parts)


def grouped_names(law: Law, pooling: Pooling, n_groups: int) -> dict[str, list[str]]:
    """The grouped law's parameter names behind each base parameter, in order."""
    out = {}
    for p in law.params:
        kind = pooling.kind(p)
        if kind == "share":
            out[p] = [p]
        elif kind == "free":
            out[p] = [f"{p}_g{k}" for k in range(n_groups)]
        else:
            out[p] = [f"{p}_mu", f"{p}_tau"] + [f"{p}_z{k}" for k in range(n_groups)]
    return out


def _select(xp: Any, g: Any, values: Sequence[Any]) -> Any:
    """Each run's value of a per-group parameter: ``values[k]`` where the run's group index is ``k``."""
    out = values[0]
    for k in range(1, len(values)):
        out = xp.where(xp.abs(g - k) < 0.5, values[k], out)
    return out


def _grouped_priors(spec: ModelSpec, pooling: Pooling, n_groups: int) -> dict[str, Prior]:
    priors: dict[str, Prior] = {}
    for p, names in grouped_names(spec.law, pooling, n_groups).items():
        base = spec.priors[p]
        if pooling.kind(p) != "pool":
            priors.update({n: base for n in names})
            continue
        if base.dist != "LogNormal":
            raise BayescaleError(
                f"pooling: {p!r} can be pooled only with a LogNormal prior (pooled on the log scale); "
                f"spec {spec.name!r} gives it {base}; share it or leave it free"
            )
        priors[names[0]] = Prior("Normal", {"loc": base.params["loc"], "scale": base.params["scale"]})
        priors[names[1]] = Prior("HalfNormal", {"scale": TAU_SCALE})
        priors.update({n: Prior("Normal", {"loc": 0.0, "scale": 1.0}) for n in names[2:]})
    return priors


def _power_terms(law: Law, pooling: Pooling, n_groups: int) -> dict[str, tuple]:
    """The base law's power terms, per group where the coefficient is free; a term whose
    coefficient or exponent is pooled is left out (its exponent is not one parameter)."""
    out: dict[str, tuple] = {}
    names = grouped_names(law, pooling, n_groups)
    for coef, entries in law.power_terms.items():
        if pooling.kind(coef) == "pool" or any(pooling.kind(e) == "pool" for e, _, _ in entries):
            continue
        for k, c in enumerate(names[coef]):
            out[c] = tuple((names[e][0 if pooling.kind(e) == "share" else k], x, s) for e, x, s in entries)
    return out


def _law_name(law: Law, n_groups: int, pooling: Pooling) -> str:
    return f"{law.name}|groups={n_groups}|share={','.join(pooling.share)}|pool={','.join(pooling.pool)}"


_LAWS: dict[tuple, Law] = {}


def grouped_law(spec: ModelSpec, groups: Sequence[str], pooling: Pooling) -> Law:
    """The base law with a group dimension (cached by the number of groups, not their names: every
    comparison of as many recipes with the same spec and pooling reuses one law, so its compiled
    MAP, Hessian and NUTS runner are reused across fits, e.g. in a loop over datasets)."""
    base, K = spec.law, len(groups)
    priors = _grouped_priors(spec, pooling, K)
    key = (base.name, id(base), K, pooling, tuple(sorted((k, str(v)) for k, v in priors.items())))
    if key in _LAWS:
        return _LAWS[key]
    names = grouped_names(base, pooling, K)

    def log_loss(p: Mapping[str, Any], x: Mapping[str, Any], xp: Any) -> Any:
        theta = {}
        g = x[GROUP_INPUT]
        for q, qn in names.items():
            kind = pooling.kind(q)
            if kind == "share":
                theta[q] = p[q]
            elif kind == "free":
                theta[q] = _select(xp, g, [p[n] for n in qn])
            else:
                theta[q] = xp.exp(p[qn[0]] + p[qn[1]] * _select(xp, g, [p[n] for n in qn[2:]]))
        return base.log_loss(theta, {i: x[i] for i in base.inputs}, xp)

    positive = [n for q in base.positive if pooling.kind(q) != "pool" for n in names[q]]
    positive += [names[q][1] for q in pooling.pool]
    law = Law(
        name=_law_name(base, K, pooling),
        formula=f"{base.formula}, one law per group ({pooling.describe(base)})",
        inputs=(*base.inputs, GROUP_INPUT),
        params=tuple(n for q in base.params for n in names[q]),
        log_loss=log_loss,
        priors=priors,
        positive=tuple(positive),
        columns={**dict(base.columns), GROUP_INPUT: GROUP_COLUMN},
        description=f"{base.name}, one law per group of runs ({K} groups)",
        power_terms=_power_terms(base, pooling, K),
        irreducible=base.irreducible if base.irreducible in pooling.share else None,
    )
    _LAWS[key] = law
    return law


def grouped_spec(spec: ModelSpec, groups: Sequence[str], pooling: Pooling) -> ModelSpec:
    """``spec`` with its law given a group dimension (:func:`grouped_law`); priors fixed (a
    ``scale = "runs"`` spec must be placed on the runs first), likelihood, drift and sampler kept."""
    if spec.prior_scale == "runs" and not spec.placed:
        raise BayescaleError(f"spec {spec.name!r}: place its priors on the runs before grouping")
    law = grouped_law(spec, groups, pooling)
    return ModelSpec(
        name=f"{spec.name} by group",
        law=law,
        priors=dict(law.priors),
        likelihood=spec.likelihood,
        sampler=spec.sampler,
        inputs={**dict(spec.inputs), GROUP_INPUT: GROUP_COLUMN},
        description=f"{spec.name}, one law per group ({pooling.describe(spec.law)})",
        extrapolation=spec.extrapolation,
        learn_drift=spec.learn_drift,
        gap_per_decade=spec.gap_per_decade,
        gap_alike=spec.gap_alike,
    )


def base_spec(spec: ModelSpec) -> ModelSpec:
    """The spec as one recipe's law sees it: its priors fixed where they were placed on the runs."""
    return replace(spec, prior_scale="fixed", from_runs=(), placed=False) if spec.placed else spec


def group_values(
    law: Law, pooling: Pooling, n_groups: int, draws: Mapping[str, np.ndarray], k: int
) -> dict[str, np.ndarray]:
    """Group ``k``'s draws of the base law's parameters from the grouped fit's draws."""
    out = {}
    for q, qn in grouped_names(law, pooling, n_groups).items():
        kind = pooling.kind(q)
        if kind == "share":
            out[q] = np.asarray(draws[q])
        elif kind == "free":
            out[q] = np.asarray(draws[qn[k]])
        else:
            out[q] = np.exp(np.asarray(draws[qn[0]]) + np.asarray(draws[qn[1]]) * np.asarray(draws[qn[2 + k]]))
    return out


def safe_group_name(name: Any) -> str:
    """A group's name as text (non-empty)."""
    text = str(name)
    if not text.strip():
        raise BayescaleError(f"group name {quote(name)} must not be empty")
    return text


__all__ = [
    "GROUP_COLUMN",
    "GROUP_INPUT",
    "POOLING_KINDS",
    "Pooling",
    "base_spec",
    "group_values",
    "grouped_law",
    "grouped_names",
    "grouped_spec",
    "safe_group_name",
]
