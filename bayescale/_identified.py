"""Collinear law inputs (e.g. ``C = 6 N D`` in every run): detect them and add the combinations
of parameters the runs do identify to a fit's draws, with an :class:`IdentifiabilityWarning`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._words import join_names
from .errors import IdentifiabilityWarning, user_stacklevel
from .spec import ModelSpec


def _validate_identifiability(spec: ModelSpec, logx: Mapping[str, np.ndarray]) -> tuple[bool, float]:
    """Whether the law's log inputs are collinear (e.g. C = 6ND), and log k for C = k N D."""
    if len(logx) < 2:
        return False, 0.0
    cols = list(logx.values())
    X = np.column_stack([np.ones_like(cols[0])] + cols)
    sv = np.linalg.svd(X - 0, compute_uv=False)
    collinear = sv[-1] < 1e-8 * sv[0] * math.sqrt(X.shape[0])
    log_k = 0.0
    if {"N", "D", "C"} <= set(logx):
        log_k = float(np.median(logx["C"] - logx["N"] - logx["D"]))
    return bool(collinear), log_k


def add_identified(spec: ModelSpec, samples: dict[str, np.ndarray], logx: Mapping[str, np.ndarray]) -> list[str]:
    """Warn when the law's inputs are collinear in these runs and add the identified
    combinations (if the law declares them) to ``samples``; returns their names."""
    collinear, log_k = _validate_identifiability(spec, logx)
    if not collinear:
        return []
    law = spec.law
    if law.identified is None:
        warnings.warn(
            f"the inputs {list(logx)} of law {law.name!r} are collinear in log space in these runs, so some "
            "parameters are identified only through their combinations and the priors.",
            IdentifiabilityWarning,
            stacklevel=user_stacklevel(),
        )
        return []
    identified = []
    for k, v in law.identified({p: samples[p] for p in law.params}, log_k).items():
        samples[k] = np.asarray(v, dtype=np.float64)
        identified.append(k)
    warnings.warn(
        f"the runs cannot separate all parameters of law {law.name!r}: its inputs are collinear in log "
        f"space (C = {math.exp(log_k):.3g}·N·D in every run). Only these combinations are identified by "
        f"the data: {identified} (reported in the posterior and summary); the individual parameters "
        f"{list(law.params)} follow the priors along that ridge. ({law.description})",
        IdentifiabilityWarning,
        stacklevel=user_stacklevel(),
    )
    return identified


__all__ = ["COLLAPSED_NOISE", "add_identified", "collapsed_noise", "too_few_runs", "unspanned_inputs"]


def too_few_runs(spec: ModelSpec, n_runs: int) -> list[str]:
    """The problem, in words, of a fit with no more runs than its law has parameters (none otherwise)."""
    k = len(spec.law.params)
    if n_runs > k:
        return []
    return [
        f"{n_runs} run{'s' if n_runs != 1 else ''} for {k} law parameters ({', '.join(spec.law.params)}): the law "
        "can pass through every run, so its bands rest on the priors, not on the runs. Add runs before deciding."
    ]


def unspanned_inputs(spec: ModelSpec, runs: Any) -> list[str]:
    """The problem, in words, of runs that all share one value of an input the law reads (one N, one D,
    one point): the law's dependence on it comes from the priors alone (none otherwise). ``U`` is left to
    the repeated-data notes: blank is a run without repetition."""
    at = {}  # input: its one value
    for col in spec.columns:
        if col == "U" or col not in runs:
            continue
        values = np.asarray(runs[col], dtype=float)
        if len(values) > 1 and np.unique(np.round(np.log10(values), 3)).size == 1:
            at[col] = values[0]
    if not at:
        return []
    names = list(at)
    single = [f"{col}={value:.3g}" for col, value in at.items()]
    if len(single) == len([c for c in spec.columns if c != "U"]) and len(single) > 1:
        where, elsewhere = f"at one point ({', '.join(single)})", "anywhere else"
    else:
        where, elsewhere = f"at one {' and one '.join(single)}", f"at another {join_names(names, 'or')}"
    return [
        f"every run sits {where}: how the loss changes with {join_names(names)} comes from the priors, not the "
        f"runs, so a prediction {elsewhere} is the priors' guess. Train runs that vary "
        f"{'it' if len(names) == 1 else 'them'} before deciding."
    ]


#: How a degenerate Laplace approximation is said (the fit's own warning recognises the problem by it).
DEGENERATE = "the Laplace approximation is degenerate"
#: A noise scale below this at a Laplace fit's mode: the law passes through the runs, the Gaussian has no width.
COLLAPSED_NOISE = 1e-4


def collapsed_noise(method: str, posterior: Any) -> list[str]:
    """The problem, in words, of a Laplace (or PSIS) fit whose noise scale collapsed at the mode (none otherwise).
    Read from the draws, so it stays with a saved fit: ``summary``, ``decide`` and ``predict`` say it,
    not only the fit's own warning."""
    if method not in ("laplace", "psis") or "sigma" not in posterior:
        return []
    scale = float(np.median(posterior["sigma"].values))
    if scale >= COLLAPSED_NOISE:
        return []
    return [
        f"{DEGENERATE} (the noise scale sigma collapsed to {scale:.2g}), so its bands are "
        "far too narrow; fit with method='nuts' or add runs."
    ]
