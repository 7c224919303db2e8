"""Declarations of the N-D laws beyond Chinchilla and Kaplan: data-constrained, Farseer, bending.

This module holds plain data (keyword arguments of :class:`bayescale.laws.Law`) and pure
functions; :mod:`bayescale.laws` turns each entry of :data:`DECLARATIONS` into a registered
``Law`` when it is imported (so this module never imports it, and there is no cycle). Each
``log_loss`` maps parameters on their natural scale and the logarithms of the inputs to the
logarithm of the loss, with ``logaddexp``/``log1p``/``expm1`` so it stays finite in float32.

Priors are weakly informative for language-model loss in nats per token (losses of about
1.5-5), the scale the built-in Chinchilla priors assume; each is explained where it is set.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .priors import Prior

#: Reference scales the Farseer and bending laws measure N and D in (their coefficients are
#: the terms' values there, so the data pin them down nearly independently of the exponents).
N_REF = 1e9
D_REF = 2e10
_LOG_N_REF = math.log(N_REF)
_LOG_D_REF = math.log(D_REF)

#: Repetitions beyond which ``exp(-R / R*)`` is zero in float64 for any plausible ``R*``: the
#: count is clipped there so ``expm1`` never overflows (values and gradients stay finite).
_MAX_LOG_EPOCHS = 30.0


def _p(dist: str, **params: float) -> Prior:
    return Prior(dist, params)


def _lse(xp: Any, *terms: Any) -> Any:
    out = terms[0]
    for t in terms[1:]:
        out = xp.logaddexp(out, t)
    return out


# ------------------------------------------------------------- data-constrained


def log_effective(xp: Any, log_total: Any, log_unique: Any, r_star: Any) -> Any:
    """``log(U + U R* (1 - exp(-R/R*)))`` with ``R = total/unique - 1`` (Muennighoff et al. 2023).

    The effective count of a resource (tokens, parameters) of which only ``unique`` is new:
    each repetition beyond the first is worth less, by a factor ``exp(-1/R*)`` per repetition,
    so the effective count saturates at ``U (1 + R*)``. Exactly ``log U`` when ``total = unique``.
    """
    log_epochs = xp.minimum(log_total - log_unique, _MAX_LOG_EPOCHS)
    repeats = xp.expm1(log_epochs)  # R = total/unique - 1, accurate near 0
    return log_unique + xp.log1p(-r_star * xp.expm1(-repeats / r_star))


def _data_constrained_log_loss(p: Mapping[str, Any], x: Mapping[str, Any], xp: Any) -> Any:
    log_d_eff = log_effective(xp, x["D"], x["U"], p["R_D"])
    return _lse(
        xp,
        xp.log(p["E"]) + 0.0 * log_d_eff,
        xp.log(p["A"]) - p["alpha"] * x["N"],
        xp.log(p["B"]) - p["beta"] * log_d_eff,
    )


def _chinchilla_optimal_N(p: Mapping[str, Any], C: Any) -> Any:
    g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1.0 / (p["alpha"] + p["beta"]))
    return g * (np.asarray(C) / 6.0) ** (p["beta"] / (p["alpha"] + p["beta"]))


def _chinchilla_allocation(p: Mapping[str, Any]) -> tuple[Any, Any]:
    return p["beta"] / (p["alpha"] + p["beta"]), p["alpha"] / (p["alpha"] + p["beta"])


DATA_CONSTRAINED = dict(
    name="data_constrained",
    formula="L = E + A/N^alpha + B/D'^beta, D' = U + U R_D (1 - exp(-(D/U - 1)/R_D))",
    inputs=("N", "D", "U"),
    params=("E", "A", "B", "alpha", "beta", "R_D"),
    log_loss=_data_constrained_log_loss,
    priors={
        # E, A, B, alpha, beta: the Chinchilla law's defaults (the law is Chinchilla's at one epoch).
        "E": _p("LogNormal", loc=0.5, scale=0.5),
        "A": _p("LogNormal", loc=6.0, scale=3.0),
        "B": _p("LogNormal", loc=7.0, scale=3.0),
        "alpha": _p("LogNormal", loc=-1.2, scale=0.5),
        "beta": _p("LogNormal", loc=-1.2, scale=0.5),
        # R_D (the paper's R*_D): Muennighoff et al. fit 15.4 on C4; median 15, 95% 2-105 epochs.
        "R_D": _p("LogNormal", loc=2.7, scale=1.0),
    },
    positive=("E", "A", "B", "alpha", "beta", "R_D"),
    # Only the model-size term is a pure power; the data term's base is D', not D.
    power_terms={"A": (("alpha", "N", -1.0),)},
    irreducible="E",
    description=(
        "Muennighoff et al. 2023, 'Scaling Data-Constrained Language Models': Chinchilla's law with the tokens "
        "D replaced by effective tokens D' of U unique tokens repeated D/U times (the data part of their law; "
        "N' = N). R_D is their R*_D: repeated tokens decay in value by exp(-1/R_D) per epoch. Without a U "
        "column (or with a blank U) U = D: one epoch, and the law equals Chinchilla's. The compute-optimal "
        "frontier assumes unrepeated data (U = D)."
    ),
    optimal_N=_chinchilla_optimal_N,
    allocation_exponents=_chinchilla_allocation,
)


def _data_constrained_full_log_loss(p: Mapping[str, Any], x: Mapping[str, Any], xp: Any) -> Any:
    a, b = p["alpha"], p["beta"]
    log_g = (xp.log(a * p["A"]) - xp.log(b * p["B"])) / (a + b)
    # U_N: the compute-optimal size for U unique tokens (Chinchilla's allocation), capped at N.
    log_un = xp.minimum(x["N"], log_g + (b / a) * (log_g + x["U"]))
    log_n_eff = log_effective(xp, x["N"], log_un, p["R_N"])
    log_d_eff = log_effective(xp, x["D"], x["U"], p["R_D"])
    return _lse(xp, xp.log(p["E"]) + 0.0 * log_d_eff, xp.log(p["A"]) - a * log_n_eff, xp.log(p["B"]) - b * log_d_eff)


DATA_CONSTRAINED_FULL = dict(
    DATA_CONSTRAINED,
    name="data_constrained_full",
    formula=(
        "L = E + A/N'^alpha + B/D'^beta, D' = U + U R_D (1 - exp(-(D/U - 1)/R_D)), "
        "N' = U_N + U_N R_N (1 - exp(-(N/U_N - 1)/R_N)), U_N = min(N, N_opt(U))"
    ),
    params=("E", "A", "B", "alpha", "beta", "R_D", "R_N"),
    log_loss=_data_constrained_full_log_loss,
    # R_N (the paper's R*_N): they fit 5.3; median 5.5, 95% 0.8-39.
    priors={**DATA_CONSTRAINED["priors"], "R_N": _p("LogNormal", loc=1.7, scale=1.0)},
    positive=("E", "A", "B", "alpha", "beta", "R_D", "R_N"),
    power_terms={},
    description=(
        "Muennighoff et al. 2023, the full data-constrained law: effective tokens D' as in 'data_constrained', "
        "and effective parameters N': parameters beyond U_N = min(N, G (G U)^(beta/alpha)), the Chinchilla-optimal "
        "size for U unique tokens (G = (alpha A / (beta B))^(1/(alpha+beta))), are worth less, with decay constant "
        "R_N. Unlike 'data_constrained' it is not Chinchilla's law at one epoch: a model larger than compute-optimal "
        "for its tokens is discounted even then. Without a U column U = D."
    ),
)


# ------------------------------------------------------------------- Farseer


def _grown(xp: Any, k: Any, u: Any) -> Any:
    """``(exp(k u) - 1) / k``: equal to ``u`` at ``k = 0`` and smooth through it (a series there, so
    the value and its gradients stay finite), the growth of ``a n^k`` per unit of its slope at ``n = 1``."""
    x = k * u
    small = xp.abs(x) < 1e-4
    safe = xp.where(small, 1.0, x)
    return u * xp.where(small, 1.0 + x / 2.0 + x * x / 6.0, xp.expm1(safe) / safe)


def _farseer_log_loss(p: Mapping[str, Any], x: Mapping[str, Any], xp: Any) -> Any:
    u = x["N"] - _LOG_N_REF  # log(N / 1e9)
    size = p["a3"] * xp.exp(p["gamma"] * u) + p["b3"]
    # The paper's a n^k + b as its value c and slope s at n = 1: c + s (n^k - 1) / k.
    log_coef = p["c2"] + p["s2"] * _grown(xp, p["beta"], u)
    exponent = xp.exp(p["c1"] + p["s1"] * _grown(xp, p["alpha"], u))
    return xp.logaddexp(size + 0.0 * x["D"], log_coef - exponent * x["D"])


def farseer_paper_params(p: Mapping[str, Any]) -> dict[str, Any]:
    """The paper's ``a1, b1, a2, b2`` from ``c1, s1, alpha, c2, s2, beta`` (``a = s / k``, ``b = c - a``):
    infinite where the curvature ``k`` is 0, which is why the law is not sampled in them."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a1 = np.asarray(p["s1"]) / np.asarray(p["alpha"])
        a2 = np.asarray(p["s2"]) / np.asarray(p["beta"])
    return {"a1": a1, "b1": np.asarray(p["c1"]) - a1, "a2": a2, "b2": np.asarray(p["c2"]) - a2}


FARSEER = dict(
    name="farseer",
    formula=(
        "L = exp(a3 n^gamma + b3) + exp(c2 + s2 (n^beta - 1)/beta) * D^-exp(c1 + s1 (n^alpha - 1)/alpha), n = N/1e9"
    ),
    inputs=("N", "D"),
    params=("c1", "s1", "alpha", "c2", "s2", "beta", "a3", "b3", "gamma"),
    log_loss=_farseer_log_loss,
    priors={
        # Size term exp(a3 n^gamma + b3): with gamma < 0 it falls to exp(b3), the irreducible loss
        # (median 1.65 nats as Chinchilla's E); a3 is its excess in log loss at 1e9 parameters.
        "b3": _p("Normal", loc=0.5, scale=0.5),
        "a3": _p("LogNormal", loc=-2.0, scale=1.0),  # median 0.14: 14% above exp(b3) at 1e9
        "gamma": _p("Normal", loc=-0.3, scale=0.15),
        # Data term: log coefficient c2 + s2 (n^beta - 1)/beta (D in tokens, so c2 ~ log B of Chinchilla) ...
        "c2": _p("Normal", loc=7.0, scale=3.0),
        # Slopes per e-fold of N at 1e9, s2 = a2 beta and s1 = a1 alpha: the medians of |s| (0.10, 0.034) are
        # those of the products under the earlier priors on the paper's terms (a2 ~ N(0, 1); a1, alpha,
        # beta ~ N(0, 0.3): 0.11, 0.033), without the funnel those products made at a -> 0.
        "s2": _p("Normal", loc=0.0, scale=0.15),
        "beta": _p("Normal", loc=0.0, scale=0.3),
        # ... and data exponent exp(c1 + s1 (n^alpha - 1)/alpha): median 0.30 at 1e9, as Chinchilla's beta.
        "c1": _p("Normal", loc=-1.2, scale=0.5),
        "s1": _p("Normal", loc=0.0, scale=0.05),
        "alpha": _p("Normal", loc=0.0, scale=0.3),
    },
    positive=("a3",),
    description=(
        "Farseer (Li et al. 2025, arXiv 2506.10972): the data term's coefficient and exponent vary with model "
        "size, so the law follows (N, D) grids where Chinchilla's bends. The paper's family with N in units of "
        "1e9 parameters and D in raw tokens; each of its terms a n^k + b is written as its value c = a + b and "
        "slope s = a k at 1e9 parameters, c + s (n^k - 1)/k, because a and k trade off along a hyperbola "
        "(a -> 0 frees k) that NUTS could not cross (r-hat up to 1.5, BENCHMARKS.md). "
        "`bayescale.laws.farseer_paper_params` gives the paper's a1, b1, a2, b2. The paper's fitted values were not checked here."
    ),
)


# ------------------------------------------------------------------- bending


def _bending_log_loss(p: Mapping[str, Any], x: Mapping[str, Any], xp: Any) -> Any:
    u = x["N"] - _LOG_N_REF
    v = x["D"] - _LOG_D_REF
    size = xp.log(p["A"]) - u * (p["alpha0"] + 0.5 * p["alpha1"] * u)
    data = xp.log(p["B"]) - v * (p["beta0"] + 0.5 * p["beta1"] * v)
    return _lse(xp, xp.log(p["E"]) + 0.0 * (u + v), size, data)


BENDING = dict(
    name="chinchilla_bending",
    formula=(
        "L = E + A (N/N0)^-(alpha0 + alpha1 log(N/N0)/2) + B (D/D0)^-(beta0 + beta1 log(D/D0)/2), N0 = 1e9, D0 = 2e10"
    ),
    inputs=("N", "D"),
    params=("E", "A", "B", "alpha0", "alpha1", "beta0", "beta1"),
    log_loss=_bending_log_loss,
    priors={
        "E": _p("LogNormal", loc=0.5, scale=0.5),  # as Chinchilla's E: median 1.65 nats
        # A, B: the terms' values at N0 = 1e9 and D0 = 2e10 (Hoffmann et al.'s fit gives 0.35 and 0.54).
        "A": _p("LogNormal", loc=-1.0, scale=1.5),
        "B": _p("LogNormal", loc=-0.7, scale=1.5),
        "alpha0": _p("LogNormal", loc=-1.2, scale=0.5),  # the local exponents at N0, D0: as Chinchilla's
        "beta0": _p("LogNormal", loc=-1.2, scale=0.5),
        # Change of the local exponent per e-fold of N (D): centred on Chinchilla (0), small: +-0.07 per decade.
        "alpha1": _p("Normal", loc=0.0, scale=0.03),
        "beta1": _p("Normal", loc=0.0, scale=0.03),
    },
    positive=("E", "A", "B", "alpha0", "beta0"),
    irreducible="E",
    description=(
        "Chinchilla's law with exponents that change with scale: the local log-log slope of the model-size term "
        "is alpha(N) = alpha0 + alpha1 log(N/N0), of the data term beta(D) = beta0 + beta1 log(D/D0) (each "
        "term's log is quadratic in log N or log D). alpha1 = beta1 = 0 is Chinchilla with A_chin = A N0^alpha0. "
        "The loss falls while alpha(N) and beta(D) stay > 0."
    ),
)


def bending_monotone_when(p: Mapping[str, np.ndarray], N: Any = (1e7, 1e11), D: Any = (1e8, 1e13)) -> np.ndarray:
    """Draws whose local exponents ``alpha(N)``, ``beta(D)`` stay > 0 over the given ranges (the loss falls there)."""
    ok = np.ones(np.shape(p["alpha0"]), dtype=bool)
    for n in np.log(np.asarray(N, float)) - _LOG_N_REF:
        ok &= p["alpha0"] + p["alpha1"] * n > 0
    for d in np.log(np.asarray(D, float)) - _LOG_D_REF:
        ok &= p["beta0"] + p["beta1"] * d > 0
    return ok


def farseer_monotone_when(p: Mapping[str, np.ndarray]) -> np.ndarray:
    """Draws whose loss falls with N and D everywhere: the size term falls (gamma < 0 with a3 > 0), the
    data term's log coefficient does not rise with N (s2 <= 0) and its exponent does not fall (s1 >= 0).
    """
    return (p["gamma"] < 0) & (p["s2"] <= 0) & (p["s1"] >= 0)


DECLARATIONS = (DATA_CONSTRAINED, DATA_CONSTRAINED_FULL, FARSEER, BENDING)
