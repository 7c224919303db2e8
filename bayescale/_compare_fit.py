"""Fitting the recipes of a comparison (:mod:`bayescale.comparison`): one joint fit of the grouped
spec, each recipe's law as a :class:`~bayescale.Fit` drawn from it, and each recipe's drift.

The extrapolation drift (the spec's ``[extrapolation]``: how far the true curve may bend away
from the fitted law beyond the runs) applies to every recipe, at its distance from its own runs.
Recipes fitted with one law form share part of its error, which cancels in a difference; part
is their own. By default (``drift_correlation="learned"``) the part that is their own is learned
from the runs: the leave-future-out splits of :mod:`bayescale.discrepancy` fit every recipe below
a compute cut, and how much the recipes' held-out residual slopes on distance *differ* gives the
scale of a recipe's own drift (:func:`bayescale.discrepancy.learn_gap`: a spike and slab, no gap
at all with the spec's ``gap_alike`` probability, 0.5 by default, else the spec's ``gap_per_decade``,
log-uniform on 1e-4-0.1 by default). Recipe ``g``'s drift is then ``d + u_g``: ``d`` the fit's drift
draws (shared, it cancels in a difference) and ``u_g = tau_gap z_g`` its own. Recipes whose curves
bend alike beyond their cuts make "no gap" more probable and learn a small one, and their multiplier
is as sure as the runs make it; recipes that bend differently rule "no gap" out and learn a large
one. A number ``rho`` in [0, 1] instead states the correlation: recipe ``g``'s drift is
``sqrt(rho) d + sqrt(1 - rho) d_g``, with ``d_g`` an independent permutation of the fit's drift
draws (the spec's drift is not informed by the data, so a permutation is an independent draw of the
same distribution); 1 shares one drift (the usual practice of reading a multiplier off two fitted
curves), 0 draws them independently (the most cautious), 0.5 lets the gap drift as much as one curve.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from . import _arviz, discrepancy
from ._compare_model import GROUP_COLUMN, Pooling, group_values, grouped_spec
from .data import law_inputs
from .errors import ConvergenceWarning, IdentifiabilityWarning, MisfitWarning, user_stacklevel
from .inference import Fit, build_idata, fit_attrs
from .inference import fit as fit_one
from .model import DRIFT, log_likelihood, noise_names
from .spec import ModelSpec

#: The fit's warnings that become the verdict's doubts (others, e.g. a library's RuntimeWarning, are only re-raised).
DOUBTS = (ConvergenceWarning, IdentifiabilityWarning, MisfitWarning)
#: ``drift_correlation`` that learns how much each recipe's drift is its own.
LEARNED = "learned"


def recipe_fit(gfit: Fit, spec: ModelSpec, pooling: Pooling, groups: Sequence[str], k: int, drift: Any) -> Fit:
    """Recipe ``k``'s law as a :class:`Fit` of the base spec: its draws of the base law's
    parameters, the shared noise, the drift, and its own runs (for distances and plots)."""
    draws = gfit.draws()
    samples = group_values(spec.law, pooling, len(groups), draws, k)
    samples.update({n: draws[n] for n in noise_names(spec)})
    if drift is not None:
        samples[DRIFT] = drift
    runs = gfit.runs[gfit.runs[GROUP_COLUMN].round(6) == round(math.exp(k), 6)].reset_index(drop=True)
    runs = runs.drop(columns=[GROUP_COLUMN])
    y = np.log(runs["loss"].to_numpy(float))
    ll = log_likelihood(spec, samples, law_inputs(spec, runs), y)
    parent = _arviz.attrs(gfit.idata)
    extra = {k_: parent[k_] for k_ in ("conformal_factor",) if k_ in parent}
    attrs = fit_attrs(spec, runs, method=gfit.method, seed=gfit.seed, seconds=float("nan"), identified=[], **extra)
    return Fit(spec=spec, idata=build_idata(spec, runs, samples, None, ll, y, attrs), runs=runs, method=gfit.method)


def drifts(gfit: Fit, n: int, rho: float | str, seed: int, gap: discrepancy.DriftScale | None) -> list[Any]:
    """Each recipe's drift draws: the shared drift plus a learned gap (``rho="learned"``), or
    correlated ``rho`` between recipes (see the module notes)."""
    if DRIFT not in gfit.posterior:
        return [None] * n
    d = gfit.posterior[DRIFT].values
    rng = np.random.default_rng([seed, 17])
    if rho == LEARNED:
        return [d + gap.sample(rng, d.shape) * rng.standard_normal(d.shape) for _ in range(n)]
    own = [rng.permutation(d.reshape(-1)).reshape(d.shape) for _ in range(n)]
    return [math.sqrt(rho) * d + math.sqrt(1 - rho) * o for o in own]


def held_out(spec: ModelSpec, table: pd.DataFrame, seed: int, method: str) -> list[discrepancy.Holdout]:
    """The grouped table's leave-future-out splits, scored once: they give both the law's learned
    drift and each recipe's residual slopes, the evidence for the learned gap
    (:func:`bayescale.discrepancy.group_slopes`)."""
    masks = discrepancy.split_masks([spec], table)
    return discrepancy.holdouts(spec, table, masks, np.random.default_rng([seed, 23]), method)


def gap_scale(spec: ModelSpec, slopes: Sequence[tuple[Any, Any]]) -> discrepancy.DriftScale | None:
    """The learned scale of a recipe's own drift (None without an extrapolation drift)."""
    if spec.extrapolation is None:
        return None
    pairs = [(np.asarray(b, dtype=float), np.asarray(s, dtype=float)) for b, s in slopes]
    return discrepancy.learn_gap(pairs, spec.gap_per_decade or discrepancy.GAP_HYPERPRIOR, gap_alike(spec))


def gap_alike(spec: ModelSpec) -> float:
    """The prior probability that the recipes drift alike: the spec's, else the default."""
    return discrepancy.GAP_ALIKE if spec.gap_alike is None else spec.gap_alike


def recipe_fits(
    gfit: Fit, spec: ModelSpec, pooling: Pooling, groups: Sequence[str], rho: float | str, seed: int, slopes: Sequence
) -> dict[str, Fit]:
    """Every recipe's :class:`Fit` (:func:`recipe_fit`) with its drift (:func:`drifts`)."""
    own = drifts(gfit, len(groups), rho, seed, gap_scale(spec, slopes))
    return {g: recipe_fit(gfit, spec, pooling, groups, i, own[i]) for i, g in enumerate(groups)}


def grouped_table(table: pd.DataFrame, by: str, groups: Sequence[str]) -> pd.DataFrame:
    """``table`` with each run's group as the grouped law's input (``exp(index)``, read as a log)."""
    code = {g: math.exp(i) for i, g in enumerate(groups)}
    return table.assign(**{GROUP_COLUMN: table[by].astype(str).map(code)})


def fit_grouped(
    spec: ModelSpec, table: pd.DataFrame, groups: Sequence[str], pooling: Pooling, label: str = "", **kw: Any
) -> tuple:
    """The joint fit of every recipe, and the warnings it raised (re-raised to the caller too, each
    after ``label``: in a law average, the law and its weight, so that no warning speaks for the average)."""
    gspec = grouped_spec(spec, groups, pooling)
    table = grouped_table(table, kw.pop("by"), groups)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gfit = fit_one(gspec, table, **kw)
    for w in caught:
        warnings.warn(f"{label}: {w.message}" if label else str(w.message), w.category, stacklevel=user_stacklevel())
    doubts = [str(w.message) for w in caught if issubclass(w.category, DOUBTS)]
    return gfit, tuple(dict.fromkeys(doubts))


def alike_words(gap: Mapping[str, float]) -> str:
    """How probable the runs make it that the recipes drift alike (the gap's spike at 0)."""
    p = gap.get("p_zero")
    if p is None or not gap.get("alike_prior") or not gap.get("splits"):  # no spike, or no runs' say on it
        return ""
    return f"; probability {p:.2f} that the recipes drift alike (no drift of their own)"


#: A learned gap whose 95% quantile is above this share of its hyperprior's upper bound presses the bound.
GAP_AT_BOUND = 0.9


def gap_at_bound(spec: ModelSpec, gap: Mapping[str, float]) -> str:
    """Said when the learned gap presses its hyperprior's upper bound: the runs' gaps drift at least as
    much as the bound allows, so the bands may be too narrow (Porian's settings pressed 0.1)."""
    high = (spec.gap_per_decade or discrepancy.GAP_HYPERPRIOR).params.get("high")
    if high is None or not gap.get("splits") or gap["q95"] < GAP_AT_BOUND * float(high):  # the runs, not the prior
        return ""
    return (
        f"; it presses its hyperprior's upper bound ({float(high):g}), so the recipes' gap may drift more than "
        "these bands allow: state a wider gap_per_decade in the spec's [extrapolation]"
    )


__all__ = [
    "alike_words",
    "gap_alike",
    "gap_at_bound",
    "DOUBTS",
    "LEARNED",
    "drifts",
    "fit_grouped",
    "gap_scale",
    "held_out",
    "grouped_table",
    "recipe_fit",
    "recipe_fits",
]
