"""Do neighbouring runs sit off the law together? A spatial-autocorrelation test of residuals.

A law that misses the shape of the runs (an isoFLOP curve flatter or sharper than the law's, a
wave the law cannot follow) leaves residuals that runs close in (log N, log D) share, even where
no single trend or curvature describes them: the misfit the added-term tests of
:mod:`bayescale.misfit` can miss. Noise does not: independent errors, after the fit, have no
neighbour structure. The statistic is Moran's I of the residuals over the runs' k nearest
neighbours (in log N and log D, each scaled by its spread over the runs); its null distribution is
simulated exactly for Gaussian noise after the same least-squares projection the fit applies
(what the law and a constant can absorb), so the test does not need the noise scale, which a misfit
inflates. Replicate runs (same N and D) are each other's nearest neighbours: they share a misfit
at their point, and not their noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

#: Neighbours per run (the graph is made symmetric, so some runs have more).
K_NEIGHBOURS = 3
#: Fewest runs for the test: with fewer, neighbours are far apart and the test has little power.
MIN_RUNS = 12
#: Simulated null draws (the smallest p-value the test can report is 1 / (SIMULATIONS + 1)).
SIMULATIONS = 1999


@dataclass(frozen=True)
class NeighbourTest:
    """Moran's I of the projected residuals, its simulated p-value, and the runs most off the law.

    ``shared`` is the residual part neighbours share, as a scale in log loss (the square root of the
    mean product of neighbouring residuals; 0 when it is negative), from ``residual`` (n,) or per
    posterior draw (S,). ``local`` is each run's residual averaged with its neighbours'; ``worst``
    the run where that average is largest in size."""

    moran: float
    p_value: float
    shared: np.ndarray
    local: np.ndarray
    worst: int


def neighbour_graph(log_n: np.ndarray, log_d: np.ndarray, k: int = K_NEIGHBOURS) -> np.ndarray:
    """Symmetric 0/1 adjacency (n, n) of each run's ``k`` nearest runs in scaled (log N, log D)."""
    x = np.column_stack([log_n, log_d]).astype(float)
    spread = x.std(axis=0)
    x = x[:, spread > 0] / spread[spread > 0]
    dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1))
    np.fill_diagonal(dist, np.inf)
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]
    adj = np.zeros(dist.shape)
    np.put_along_axis(adj, nearest, 1.0, axis=1)
    return np.maximum(adj, adj.T)


def _moran(r: np.ndarray, adj: sparse.csr_array) -> np.ndarray:
    """Moran's I (up to the constant n / sum(adj), which the simulated null shares) per column of ``r``."""
    return np.sum(r * (adj @ r), axis=0) / np.maximum(np.sum(r * r, axis=0), 1e-300)


def neighbour_test(
    residual: np.ndarray, draws: np.ndarray, basis: np.ndarray, adj: np.ndarray, rng: np.random.Generator
) -> NeighbourTest:
    """Test the residuals' neighbour structure.

    ``residual`` (n,): observed minus the law at the posterior median; ``draws`` (S, n): the same
    per posterior draw; ``basis`` (n, p): orthonormal columns the fit can absorb (a constant and the
    law's tangent space), projected out of everything; ``adj``: :func:`neighbour_graph`."""
    # Sparse: a run has a handful of neighbours, and dense products over 3000 runs took 93 s of a 127 s fit.
    adj = sparse.csr_array(adj)
    r = residual - basis @ (basis.T @ residual)
    stat = float(_moran(r, adj))
    eps = rng.standard_normal((r.size, SIMULATIONS))
    null = _moran(eps - basis @ (basis.T @ eps), adj)
    p = float((1 + np.sum(null >= stat)) / (SIMULATIONS + 1))
    rd = draws - (draws @ basis) @ basis.T
    shared = np.sqrt(np.maximum(np.sum(rd.T * (adj @ rd.T), axis=0) / adj.sum(), 0.0))
    local = (r + adj @ r) / (1.0 + np.asarray(adj.sum(axis=1)))
    return NeighbourTest(stat, p, shared, local, int(np.argmax(np.abs(local))))


__all__ = ["K_NEIGHBOURS", "MIN_RUNS", "NeighbourTest", "neighbour_graph", "neighbour_test"]
