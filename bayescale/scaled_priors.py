"""Data-scaled priors: a spec's priors placed on the scale of the runs it is fitted to.

Default priors written in nats for language-model losses of 2-4 pull a fit on losses of 0.4 (or
in bits, or of another kind of model) towards the wrong place: on a sweep whose losses are
0.44-0.71, an irreducible-loss prior with median 1.65 and an exponent prior with median 0.30
held the posterior away from an exponent optimum of 1.5. A spec that says ``[priors] scale =
"runs"`` leaves out the priors of the law's irreducible loss, coefficients and exponents (those
the law declares in ``Law.irreducible`` and ``Law.power_terms``), and :func:`place_priors` writes
them from the runs before fitting:

* the irreducible loss ``E``: ``LogNormal(log(E_FRACTION * L_min), E_SCALE)``, below the smallest
  observed loss ``L_min`` (median 0.6 L_min, 95% 0.22-1.6 L_min): the loss cannot fall below E;
* each exponent: ``LogNormal(log EXPONENT_MEDIAN, EXPONENT_SCALE)`` (median 0.35, 95% 0.07-1.7),
  or, for an exponent the law lets take either sign, ``Normal(-sign * 0.35, 0.8)`` in the
  direction in which the loss falls. Language-model exponents reported so far lie in 0.05-0.8 and
  other sweeps reach 1.5; at 1.5 this prior's log density (in log exponent, the space the MAP
  search and the sampler work in) is 1.7 nats below its peak, far less than what a few dozen runs
  with 1-2% noise say about an exponent (hundreds of nats over that range), so it does not pull;
* each coefficient ``A`` of a term ``A * x^(sign * alpha)``: ``LogNormal(m, s)`` with ``m`` such
  that at the exponent's prior median the term equals the observed loss range at the runs'
  centre (mean log input ``c``), and ``s = sqrt(TERM_SCALE^2 + sum (EXPONENT_REACH * c)^2)``.
  The runs pin the term's value at their centre, ``log A + sign * alpha * c``, so along that
  ridge the prior on ``log A`` acts as a prior on ``alpha`` of sd ``s / c``, about one unit of
  exponent: it leaves the exponent to its own prior and the data (0.7 nats from 0.35 to 1.5).

Everything is computed from log losses and log inputs, so the placement is units-free: the same
spec fitted to losses in nats and in bits (``x / ln 2``) gets priors shifted by ``log(1 / ln 2)``
in ``log E`` and in each ``log A``, and the same exponent priors, hence the same fit up to the
unit change. The placed spec is concrete: ``fit.spec`` and a saved fit carry the priors used
(``ModelSpec.placed``, ``from_runs``), and :attr:`ModelSpec.declared_id` still matches the spec
file it came from. Laws that declare neither an irreducible loss nor power terms keep their
priors; a spec asking to scale them is refused when it is read.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .data import law_inputs
from .laws import Law
from .priors import Prior
from .spec import ModelSpec

#: E's prior median as a fraction of the smallest observed loss, and its log-scale sd.
E_FRACTION = 0.6
E_SCALE = 0.5
#: Exponent prior: median and log-scale sd (Normal sd for an exponent of either sign).
EXPONENT_MEDIAN = 0.35
EXPONENT_SCALE = 0.8
#: Coefficient prior: sd of the term's log value at the runs' centre, and the exponent range (per
#: unit of mean log input) the coefficient's prior must leave open.
TERM_SCALE = 1.0
EXPONENT_REACH = 1.0
#: Smallest loss range used, as a fraction of the smallest loss (a sweep of near-equal losses).
MIN_RANGE = 0.1


def place_priors(spec: ModelSpec, runs: pd.DataFrame) -> ModelSpec:
    """The spec with its ``from_runs`` priors placed on the scale of ``runs`` (a validated runs table).

    A spec without ``scale = "runs"``, or whose priors are already placed, is returned as is.
    """
    if spec.prior_scale != "runs" or spec.placed:
        return spec
    logx = law_inputs(spec, runs, np.float64)
    loss = runs["loss"].to_numpy(dtype=np.float64)
    placed = runs_priors(spec.law, spec.priors, spec.from_runs, logx, loss)
    return replace(spec, priors={**spec.priors, **placed}, placed=True)


def runs_priors(
    law: Law,
    priors: Mapping[str, Prior],
    names: tuple[str, ...],
    logx: Mapping[str, np.ndarray],
    loss: np.ndarray,
) -> dict[str, Prior]:
    """Priors for ``names`` (some of ``law.scalable``) on the scale of runs with log inputs ``logx``
    and losses ``loss``; the other priors in ``priors`` (the ones the spec wrote) are kept and read
    where a coefficient's prior depends on its exponent's."""
    l_min = float(np.min(loss))
    l_range = max(float(np.max(loss)) - l_min, MIN_RANGE * l_min)
    out: dict[str, Prior] = {}
    if law.irreducible in names:
        out[law.irreducible] = _lognormal(math.log(E_FRACTION * l_min), E_SCALE)
    signs = {e: sign for entries in law.power_terms.values() for e, _, sign in entries}
    for e, sign in signs.items():
        if e in names:
            out[e] = (
                _lognormal(math.log(EXPONENT_MEDIAN), EXPONENT_SCALE)
                if e in law.positive
                else Prior("Normal", {"loc": -sign * EXPONENT_MEDIAN, "scale": EXPONENT_SCALE})
            )
    current = {**priors, **out}
    for coef, entries in law.power_terms.items():
        if coef not in names:
            continue
        shift, var = 0.0, TERM_SCALE**2
        for e, x, sign in entries:
            centre = float(np.mean(logx[x]))
            shift += sign * _median(current[e]) * centre
            var += (EXPONENT_REACH * centre) ** 2
        out[coef] = _lognormal(math.log(l_range) - shift, math.sqrt(var))
    return out


def _lognormal(loc: float, scale: float) -> Prior:
    # Rounded so the placed spec reads well in a saved fit and a TOML file (4 significant digits
    # of a log-scale location are far finer than the prior's width).
    return Prior("LogNormal", {"loc": float(f"{loc:.4g}"), "scale": float(f"{scale:.4g}")})


def _median(prior: Prior) -> float:
    """The prior's median (exact where NumPyro has an inverse CDF, else from 4001 draws)."""
    d = prior.to_numpyro()
    try:
        return float(d.icdf(jnp.asarray(0.5)))
    except (NotImplementedError, AttributeError, ImportError):
        return float(jnp.median(d.sample(jax.random.PRNGKey(0), (4001,))))


__all__ = ["place_priors", "runs_priors"]
