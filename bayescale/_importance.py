"""Adaptive, Pareto-smoothed importance sampling from a Laplace approximation.

Used by ``method="psis"`` in :func:`bayescale.fit` and :func:`bayescale.curves.fit_curves`:
scaling-law posteriors are skewed and ridge-shaped (an asymptote traded against a coefficient
and an exponent), so the Gaussian at the mode misplaces the tails of an extrapolation. Proposals
come from a Student-t at the Laplace approximation; each further round refits a t to the
weighted draws and proposes from an equal mixture of it and the Laplace t (which keeps the tails
covered); the last round's weights are Pareto-smoothed (Vehtari et al. 2024, via ArviZ) and the
draws resampled. The Pareto k of the last round says whether the result can be trusted
(k <= 0.7).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.linalg
import scipy.special

from . import _arviz

#: Degrees of freedom of the Student-t proposals.
DF = 4.0
#: Proposals per kept draw.
PROPOSALS = 8
#: Rounds (the first from the Laplace approximation).
ROUNDS = 6
#: Pareto k above which the importance weights are unreliable.
K_MAX = 0.7


def t_logpdf(x: np.ndarray, mean: np.ndarray, chol: np.ndarray, df: float = DF) -> np.ndarray:
    """Log density of the multivariate Student-t (scale ``chol chol^T``) at ``x`` (m, dim), up to
    a constant that depends only on ``df`` and ``dim``."""
    z = scipy.linalg.solve_triangular(chol, (x - mean).T, lower=True).T
    return -np.sum(np.log(np.abs(np.diag(chol)))) - 0.5 * (df + x.shape[1]) * np.log1p(np.sum(z * z, axis=1) / df)


def draws(
    log_p: Callable[[np.ndarray], np.ndarray],
    modes: np.ndarray,
    chols: np.ndarray,
    rng: np.random.Generator,
    n: int,
    *,
    df: float = DF,
    proposals: int = PROPOSALS,
    rounds: int = ROUNDS,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` approximate posterior draws for each of ``U`` independent targets.

    ``log_p(x)`` maps proposals of shape (U, m, dim) to unnormalised log densities (U, m)
    (-inf or NaN where undefined); ``modes`` (U, dim) and ``chols`` (U, dim, dim) are the Laplace
    approximations in the same coordinates. Returns draws (U, n, dim) and the Pareto k of each
    target's final weights (U,).
    """
    U, dim = modes.shape
    m = proposals * n

    def t_draws(mean: np.ndarray, chol: np.ndarray, size: int) -> np.ndarray:
        z = rng.standard_normal((size, dim)) / np.sqrt(rng.chisquare(df, (size, 1)) / df)
        return mean + z @ chol.T

    base = [(modes[u], chols[u]) for u in range(U)]
    comps = [[b] for b in base]
    for r in range(rounds):
        x = np.zeros((U, m, dim))
        log_q = np.zeros((U, m))
        for u in range(U):
            c = comps[u]
            sizes = np.full(len(c), m // len(c))
            sizes[0] += m - sizes.sum()
            x[u] = np.concatenate([t_draws(mu, L, k) for (mu, L), k in zip(c, sizes)])
            log_q[u] = scipy.special.logsumexp(np.stack([t_logpdf(x[u], mu, L, df) for mu, L in c]), axis=0) - math.log(
                len(c)
            )
        lp = np.asarray(log_p(x), dtype=np.float64)
        lw = np.where(np.isfinite(lp), lp - log_q, -np.inf)
        lw = lw - np.max(lw, axis=1, keepdims=True)
        slw, k = _arviz.psis_smooth(np.where(np.isfinite(lw), lw, -1e3))
        w = np.exp(slw - scipy.special.logsumexp(slw, axis=1, keepdims=True))
        if r == rounds - 1:
            break
        for u in range(U):
            mu = w[u] @ x[u]
            dx = x[u] - mu
            # floor: a quarter of the Laplace covariance, so a few heavy weights cannot collapse it
            cov = (w[u][:, None] * dx).T @ dx + 0.25 * base[u][1] @ base[u][1].T
            comps[u] = [base[u], (mu, np.linalg.cholesky(0.5 * (cov + cov.T)))]
    out = np.zeros((U, n, dim))
    for u in range(U):
        pos = (rng.random() + np.arange(n)) / n  # systematic resampling
        idx = np.minimum(np.searchsorted(np.cumsum(w[u]), pos), m - 1)
        out[u] = x[u, rng.permutation(idx)]
    return out, np.asarray(k, dtype=np.float64)
