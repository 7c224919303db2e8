"""Recipe comparisons under law uncertainty (:func:`bayescale.compare` with a law average).

Each law of the average is fitted per recipe exactly as a single-law comparison is (its grouped
spec, default pooling: its irreducible loss shared), and the laws are weighted as
:mod:`bayescale.averaging` weighs them, by stacking of leave-future-out predictive densities,
here on the grouped runs (every recipe's runs above each compute cut, predicted by the law
fitted to every recipe's runs below it). The same splits give each law's learned drift and
its recipes' gap slopes, so nothing is fitted twice. The comparison's draws (losses,
multipliers, curves) are then mixed: each draw slot holds one law's draw, chosen with
probability equal to its weight, so a multiplier that depends on which law holds gets an
interval that says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from . import _compare_fit as cf
from . import _slots, averaging, discrepancy
from ._compare_model import Pooling, base_spec, grouped_spec
from .errors import BayescaleError
from .scaled_priors import place_priors
from .spec import AverageSpec, ModelSpec, recorded_spec

#: The parts of a comparison that are draws, mixed across laws: name -> dict of recipe -> (draw, ...).
MIXED = ("losses", "multipliers", "clipped", "curves")


def members_for(
    avg: AverageSpec, table: pd.DataFrame, by: str, groups: Sequence[str]
) -> tuple[list[ModelSpec], list[str]]:
    """The laws of ``avg`` that can be compared on these runs (priors placed, as single-law
    comparisons place them), and why any were left out."""
    counts = table[by].astype(str).value_counts()
    fewest = int(min(counts[g] for g in groups))
    members, notes = [], []
    for m in avg.members:
        reason = averaging.uninformed(m, table)
        free = Pooling.default(m.law).free(m.law)
        if reason is None and fewest < len(free):
            reason = f"{m.name} left out: a recipe has {fewest} runs, fewer than its {len(free)} free parameters"
        if reason:
            notes.append(reason)
            continue
        members.append(base_spec(place_priors(m, table)))
    if not members:
        raise BayescaleError(f"average {avg.name!r}: no law can compare these recipes ({' '.join(notes)})")
    return members, notes


def fit_laws(
    avg: AverageSpec,
    members: Sequence[ModelSpec],
    table: pd.DataFrame,
    by: str,
    groups: Sequence[str],
    rho: float | str,
    seed: int,
    **kw: Any,
) -> tuple[dict[str, dict[str, Any]], dict[str, float], list[str]]:
    """Weigh the laws on the grouped runs' leave-future-out splits and fit those with weight.

    Returns, per law, what a single-law comparison is assembled from (``gfit``, ``recipes``,
    ``pooling``, ``slopes``, ``warnings``), the weights, and notes on laws left out."""
    pools = {m.name: Pooling.default(m.law) for m in members}
    gspecs = {m.name: grouped_spec(m, groups, pools[m.name]) for m in members}
    gtable = cf.grouped_table(table, by, groups)
    weights, _, learned, splits, notes = averaging.weigh_members(
        avg, list(gspecs.values()), gtable, np.random.default_rng(seed), kw.get("method", "laplace")
    )
    name_of = {g.name: name for name, g in gspecs.items()}
    labels = gtable[by].astype(str).to_numpy()
    laws = {}
    for gname, w in weights.items():
        m = next(s for s in members if s.name == name_of[gname])
        label = f"law {m.name} (weight {w:.2f})"
        gfit, caught = cf.fit_grouped(
            m, table, groups, pools[m.name], label, by=by, seed=seed, learned=learned[gname], **kw
        )
        slopes = ()
        if rho == cf.LEARNED and m.extrapolation is not None:
            slopes = tuple(discrepancy.group_slopes(splits[gname], labels))
        laws[m.name] = {
            "gfit": gfit,
            "spec": m,
            "pooling": pools[m.name],
            "slopes": slopes,
            "recipes": cf.recipe_fits(gfit, m, pools[m.name], groups, rho, seed, slopes),
            "warnings": tuple(f"{label}: {d}" for d in caught if w >= averaging.MINOR_WEIGHT),
        }
    for gname, name in name_of.items():  # notes name the laws, not their grouped specs
        notes = [n.replace(gname, name) for n in notes]
    return laws, {name_of[k]: v for k, v in weights.items()}, notes


def slots(weights: Sequence[float], n: int, seed: int) -> np.ndarray:
    """Law index per draw: counts proportional to the weights, shuffled by seed (a law average's slots, flat)."""
    return _slots.slots((1, n), weights, seed).reshape(-1)


def mix(per_law: Sequence[np.ndarray], where: np.ndarray) -> np.ndarray:
    """One array of draws (draw, ...), slot ``i`` from law ``where[i]``; a law with another number
    of draws (chains that sat in different modes come back mixed) gives its draws evenly spread."""
    flat = [np.asarray(v, dtype=float)[None] for v in per_law]  # one "chain": the law average's mixing
    return _slots.mixed(flat, where, (1, where.size))


def mixed(parts: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]], where: np.ndarray) -> dict[str, dict]:
    """The draws of :data:`MIXED` of every law's comparison (``parts[law][name][recipe]``), mixed."""
    laws = list(parts)
    out = {}
    for name in MIXED:
        recipes = parts[laws[0]][name]
        out[name] = {g: mix([np.asarray(parts[law][name][g]) for law in laws], where) for g in recipes}
    return out


def law_setup(c: Any) -> dict[str, Any]:
    """What one law's comparison needs besides its fit to be rebuilt (``comparison._rebuild``)."""
    return {
        "pooling": {"share": list(c.pooling.share), "pool": list(c.pooling.pool)},
        "drift_correlation": c.drift_correlation,
        "gap_slopes": [[list(map(float, b)), list(map(float, s))] for b, s in c.gap_slopes],
        "spec": _spec_as_used(c.spec),
        "warnings": list(c.warnings),
    }


def _spec_as_used(spec: Any) -> dict[str, Any]:
    """The spec's plain form with the gap's prior probability of "alike" as used, so that a later default
    does not change the numbers of a saved comparison."""
    out = spec.to_dict()
    if "extrapolation" in out:
        out["extrapolation"] = {**out["extrapolation"], "gap_alike": cf.gap_alike(spec)}
    return out


def saved_spec(saved: Mapping[str, Any]) -> ModelSpec:
    """The spec :func:`law_setup` saved. A comparison saved before the gap's spike (2026-12-06) has no
    ``gap_alike``: it was fitted with the slab alone, which ``gap_alike = 0`` restores."""
    if "extrapolation" in saved and "gap_alike" not in saved["extrapolation"]:
        saved = {**saved, "extrapolation": {**saved["extrapolation"], "gap_alike": 0.0}}
    return recorded_spec(saved)


def average(per: Mapping[str, Any], weights: Mapping[str, float], notes: Sequence[str], seed: int) -> Any:
    """Several laws' comparisons (:class:`~bayescale.comparison.Comparison`, one per law) as one:
    the leading law's, with the draws of :data:`MIXED` mixed by weight and every law's doubts."""
    order = list(per)
    lead = per[max(weights, key=weights.get)]
    where = slots([weights[k] for k in order], len(lead.losses[lead.baseline]), seed)
    draws = mixed({k: {name: getattr(per[k], name) for name in MIXED} for k in order}, where)
    draws["clipped"] = {g: v > 0.5 for g, v in draws["clipped"].items()}
    doubts = tuple(dict.fromkeys(w for k in order for w in per[k].warnings))
    return replace(
        lead,
        **draws,
        warnings=doubts,
        laws=dict(per),
        law_weights=dict(weights),
        law_notes=tuple(notes),
        slots=where,
        _table=None,
    )


__all__ = ["MIXED", "average", "fit_laws", "law_setup", "members_for", "mix", "mixed", "slots"]
