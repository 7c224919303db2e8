"""What a user would do today: an Epoch-style point fit of the Chinchilla law, with bootstrap intervals.

This is the baseline the extrapolation benchmark compares bayescale against. It follows the recipe of
Hoffmann et al. (2022) as replicated by Epoch AI (Besiroglu et al. 2024, arXiv:2404.10102):

* the law ``L = E + A/N^alpha + B/D^beta`` in the log-sum-exp parametrisation
  ``log L = LSE(a - alpha log N, b - beta log D, e)`` with ``a = log A``, ``b = log B``, ``e = log E``;
* the Huber loss (``delta = 1e-3``) of the log-loss residuals, summed over runs;
* SciPy L-BFGS-B from a small set of starts, keeping the best: the objective is evaluated
  (vectorised) at every point of Hoffmann's grid (4500 points, a, b in 0..25, e in -1..1, alpha,
  beta in 0..2) and L-BFGS-B is run from the 8 best (``starts="screen"``, the default), or from a
  coarse 3-per-axis version of that grid (243 starts, ``starts="coarse"``; 20x slower, and on
  Epoch's Chinchilla data it finds the same optimum);
* prediction intervals from a *residual bootstrap*: resample the best fit's residuals with
  replacement, add them to its fitted values, refit (warm-started at the best fit's parameters), and
  for each new point take the quantiles of ``bootstrap prediction + a resampled residual``. The first
  term is parameter uncertainty, the second the run-to-run noise.

Nothing here is Bayesian and nothing here accounts for the law being wrong beyond the fitted range:
that is the point of the comparison. The objective is divided by ``delta`` (same minimiser) and the
tolerances are tight: with ``delta = 1e-3`` the raw objective and its gradient are so small that
L-BFGS-B with SciPy's default tolerances stops at its start, and warm-started bootstrap refits would
then all return the best fit (zero-width intervals).

Only NumPy and SciPy are used; the functions take arrays so the benchmark can call them on any data.

Examples
--------
>>> import numpy as np
>>> N = np.repeat([1e7, 3e7, 1e8, 3e8], 3); D = N * np.tile([5.0, 20.0, 80.0], 4)
>>> L = 1.8 + 480 / N**0.35 + 2000 / D**0.36
>>> fit = huber_fit(N, D, L)
>>> round(fit.params["E"], 2)
1.8
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.optimize
import scipy.special
import scipy.stats
from threadpoolctl import threadpool_limits

HUBER_DELTA = 1e-3
LBFGS_OPTIONS = {"ftol": 1e-12, "gtol": 1e-8, "maxiter": 20000}


def coarse_grid() -> np.ndarray:
    """Starts (a, b, e, alpha, beta): a, b in {0, 10, 20}, e in {-1, 0, 1}, alpha, beta in {0, 1, 2} (243).

    Hoffmann et al.'s grid (used by Epoch) has a, b in 0..25 step 5, e in -1..1 step 0.5 and alpha,
    beta in 0..2 step 0.5 (4500 starts); this is the same box, 3 values per axis.
    """
    ab, e, ex = [0.0, 10.0, 20.0], [-1.0, 0.0, 1.0], [0.0, 1.0, 2.0]
    return np.array(list(itertools.product(ab, ab, e, ex, ex)), dtype=float)


def hoffmann_grid() -> np.ndarray:
    """Hoffmann et al.'s grid of starts (a, b, e, alpha, beta), as used by Epoch: 6 x 6 x 5 x 5 x 5 = 4500."""
    ab, e, ex = np.arange(0.0, 26.0, 5.0), np.arange(-1.0, 1.01, 0.5), np.arange(0.0, 2.01, 0.5)
    return np.array(list(itertools.product(ab, ab, e, ex, ex)), dtype=float)


def screened_starts(logN: np.ndarray, logD: np.ndarray, y: np.ndarray, k: int = 8) -> np.ndarray:
    """The ``k`` points of :func:`hoffmann_grid` with the lowest Huber objective (evaluated vectorised)."""
    grid = hoffmann_grid()
    r = log_law(grid, logN, logD) - y[None, :]
    ar = np.abs(r)
    obj = np.where(ar <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (ar - 0.5 * HUBER_DELTA)).sum(axis=1)
    obj = np.where(np.isfinite(obj), obj, np.inf)
    return grid[np.argsort(obj, kind="stable")[:k]]


def log_law(theta: np.ndarray, logN: np.ndarray, logD: np.ndarray) -> np.ndarray:
    """``log L`` for parameters ``theta = (a, b, e, alpha, beta)``; theta may be (5,) or (K, 5) (-> (K, n))."""
    th = np.asarray(theta, dtype=float)
    if th.ndim == 1:
        a, b, e, al, be = th
        return np.logaddexp(np.logaddexp(a - al * logN, b - be * logD), e)
    a, b, e, al, be = (th[:, i : i + 1] for i in range(5))
    return np.logaddexp(np.logaddexp(a - al * logN[None, :], b - be * logD[None, :]), e)


def huber_objective(
    theta: np.ndarray, logN: np.ndarray, logD: np.ndarray, y: np.ndarray, delta: float = HUBER_DELTA
) -> tuple[float, np.ndarray]:
    """Sum of Huber losses of the log-loss residuals divided by ``delta``, and its gradient."""
    a, b, e, alpha, beta = theta
    t = np.stack([a - alpha * logN, b - beta * logD, np.full_like(logN, e)])
    m = t.max(axis=0)
    w = np.exp(t - m)
    s = w.sum(axis=0)
    r = m + np.log(s) - y
    ar = np.abs(r)
    loss = np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta)).sum() / delta
    g = np.clip(r, -delta, delta) / delta
    p = w / s
    grad = np.array(
        [
            (g * p[0]).sum(),
            (g * p[1]).sum(),
            (g * p[2]).sum(),
            -(g * p[0] * logN).sum(),
            -(g * p[1] * logD).sum(),
        ]
    )
    if not math.isfinite(loss):
        return 1e30, np.zeros(5)
    return float(loss), grad


def lbfgs(x0: np.ndarray, logN: np.ndarray, logD: np.ndarray, y: np.ndarray) -> Any:
    # One BLAS thread: SciPy's L-BFGS-B calls BLAS on 5-vectors, and a multi-threaded BLAS makes each
    # step ~10x slower (thread wake-ups), far worse on a busy machine.
    with threadpool_limits(1):
        return scipy.optimize.minimize(
            huber_objective, x0, args=(logN, logD, y), jac=True, method="L-BFGS-B", options=LBFGS_OPTIONS
        )


@dataclass(frozen=True)
class PointFit:
    """The best Huber fit, its residuals and (after :func:`bootstrap`) the bootstrap refits.

    Attributes
    ----------
    theta : ndarray (5,)
        ``(a, b, e, alpha, beta)`` of the best fit.
    residuals : ndarray (n,)
        ``log L_observed - log L_fitted`` of the training runs.
    objective : float
        Huber objective at the best fit (in units of delta).
    boot_theta : ndarray (B, 5) or None
        Parameters refitted on each bootstrap resample.
    """

    theta: np.ndarray
    residuals: np.ndarray
    objective: float
    n_starts: int
    seconds: float = 0.0
    boot_theta: np.ndarray | None = field(default=None, repr=False)
    boot_failures: int = 0
    boot_seconds: float = 0.0

    @property
    def params(self) -> dict[str, float]:
        """The best fit on the natural scale: E, A, B, alpha, beta."""
        a, b, e, al, be = self.theta
        return {"E": math.exp(e), "A": math.exp(a), "B": math.exp(b), "alpha": float(al), "beta": float(be)}

    @property
    def residual_sd(self) -> float:
        """Residual standard deviation of log loss, ``sqrt(sum r^2 / (n - 5))``."""
        n = self.residuals.size
        return float(math.sqrt(np.sum(self.residuals**2) / max(n - 5, 1)))

    def predict_log(self, N: Any, D: Any) -> np.ndarray:
        """Point prediction of log loss."""
        return log_law(self.theta, np.log(np.asarray(N, float)), np.log(np.asarray(D, float)))


def _logs(N: Any, D: Any, loss: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    logN, logD, y = (np.log(np.asarray(v, dtype=float)).reshape(-1) for v in (N, D, loss))
    if not (logN.size == logD.size == y.size) or not np.all(np.isfinite(np.concatenate([logN, logD, y]))):
        raise ValueError("N, D and loss must be positive, finite and of one length")
    return logN, logD, y


def huber_fit(N: Any, D: Any, loss: Any, *, starts: str | np.ndarray = "screen") -> PointFit:
    """Epoch-style point fit: Huber (delta 1e-3) on log loss, L-BFGS-B from each start, best kept.

    ``starts``: ``"screen"`` (the 8 best points of Hoffmann's grid), ``"coarse"`` (243-point grid)
    or an array of starts (K, 5).
    """
    import time

    logN, logD, y = _logs(N, D, loss)
    if isinstance(starts, str):
        if starts not in ("screen", "coarse"):
            raise ValueError(f"starts must be 'screen', 'coarse' or an array, got {starts!r}")
        grid = screened_starts(logN, logD, y) if starts == "screen" else coarse_grid()
    else:
        grid = np.asarray(starts, dtype=float)
    t0 = time.perf_counter()
    best = None
    for x0 in grid:
        res = lbfgs(x0, logN, logD, y)
        if np.all(np.isfinite(res.x)) and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        raise RuntimeError("no start of the grid gave a finite fit")
    theta = np.asarray(best.x, dtype=float)
    resid = y - log_law(theta, logN, logD)
    return PointFit(
        theta=theta, residuals=resid, objective=float(best.fun), n_starts=len(grid), seconds=time.perf_counter() - t0
    )


def bootstrap(fit: PointFit, N: Any, D: Any, *, n_boot: int = 500, seed: int = 0) -> PointFit:
    """Residual bootstrap: ``y* = fitted + resampled residuals``, refit from the best fit's parameters."""
    import dataclasses
    import time

    logN, logD, _ = _logs(N, D, np.ones(np.size(N)))
    rng = np.random.default_rng(seed)
    fitted = log_law(fit.theta, logN, logD)
    n = fitted.size
    thetas = np.empty((n_boot, 5))
    failures = 0
    t0 = time.perf_counter()
    for i in range(n_boot):
        ystar = fitted + fit.residuals[rng.integers(0, n, n)]
        res = lbfgs(fit.theta, logN, logD, ystar)
        failures += not (res.success and np.all(np.isfinite(res.x)))
        thetas[i] = res.x if np.all(np.isfinite(res.x)) else fit.theta
    return dataclasses.replace(
        fit, boot_theta=thetas, boot_failures=int(failures), boot_seconds=time.perf_counter() - t0
    )


def predictive_log_draws(fit: PointFit, N: Any, D: Any, *, per_boot: int = 8, seed: int = 0) -> np.ndarray:
    """Draws of a new run's log loss at each point: bootstrap prediction + a resampled residual.

    Returns an array (B * per_boot, n_points).
    """
    if fit.boot_theta is None:
        raise ValueError("run bootstrap() first")
    logN = np.log(np.asarray(N, float)).reshape(-1)
    logD = np.log(np.asarray(D, float)).reshape(-1)
    rng = np.random.default_rng(seed)
    pred = log_law(fit.boot_theta, logN, logD)  # (B, n)
    pred = np.repeat(pred, per_boot, axis=0)
    noise = fit.residuals[rng.integers(0, fit.residuals.size, pred.shape)]
    return pred + noise


def score_draws(draws: np.ndarray, observed_log: np.ndarray) -> dict[str, np.ndarray]:
    """PIT, equal-tailed 90% interval, median and log predictive density (Gaussian KDE of the draws)
    of each observed log loss under predictive draws shaped (S, n)."""
    observed_log = np.asarray(observed_log, float).reshape(-1)
    pit = np.mean(draws <= observed_log[None, :], axis=0)
    lpd = np.empty(observed_log.size)
    lpd_gauss = np.empty(observed_log.size)
    for j in range(observed_log.size):
        x = draws[:, j]
        sd = x.std()
        if sd > 0:
            lpd[j] = float(scipy.stats.gaussian_kde(x).logpdf(observed_log[j])[0])
        else:
            lpd[j] = -np.inf
        lpd_gauss[j] = float(scipy.stats.norm.logpdf(observed_log[j], x.mean(), sd)) if sd > 0 else -np.inf
    return {
        "pit": pit,
        "median": np.median(draws, axis=0),
        "lo90": np.quantile(draws, 0.05, axis=0),
        "hi90": np.quantile(draws, 0.95, axis=0),
        "log_pred_density": lpd,
        "log_pred_density_gauss": lpd_gauss,
    }


def plugin_probability(fit: PointFit, N: float, D: float, threshold: float) -> float:
    """P(loss <= threshold) from the point prediction and the residual sd (a Normal on log loss)."""
    mu = float(fit.predict_log(N, D).reshape(-1)[0])
    return float(scipy.stats.norm.cdf((math.log(threshold) - mu) / max(fit.residual_sd, 1e-12)))


def bootstrap_probability(fit: PointFit, N: float, D: float, threshold: float, *, seed: int = 0) -> float:
    """P(loss <= threshold) as the fraction of bootstrap predictive draws at or below it."""
    draws = predictive_log_draws(fit, [N], [D], seed=seed)[:, 0]
    return float(np.mean(draws <= math.log(threshold)))


__all__ = [
    "HUBER_DELTA",
    "PointFit",
    "bootstrap",
    "bootstrap_probability",
    "coarse_grid",
    "hoffmann_grid",
    "huber_fit",
    "huber_objective",
    "log_law",
    "plugin_probability",
    "predictive_log_draws",
    "score_draws",
    "screened_starts",
]
