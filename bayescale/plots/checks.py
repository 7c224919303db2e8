"""Predictive-check figures: posterior predictive check, LOO-PIT calibration, leave-largest-out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from ..checks import loo_pit, posterior_predictive
from ..errors import BayescaleError
from ._style import _X_LABELS, BAND_PROBS, _expect, _loss_axis, _runs_frame, _x_log, plt

if TYPE_CHECKING:  # annotations only: no import at run time
    from ..inference import Fit


def plot_ppc(fit: Fit, *, seed: int = 0, ci_probs: Sequence[float] = BAND_PROBS) -> Any:
    """Posterior predictive check: each run's observed loss against its replicated losses.

    Left: loss against compute, with each run's replicated 50% and 90% intervals (the
    law plus observation noise) and the observed loss (red when outside the 90%
    interval). Right: the same as observed / replicated median, which shows systematic
    misfit (a trend with compute) that the log axes hide.

    Parameters
    ----------
    fit : Fit
    seed : int
        Seed of the replicated noise.
    ci_probs : pair of float
        The inner and outer intervals.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_ppc(fit)                                        # doctest: +SKIP
    """
    runs = _runs_frame(fit)
    rep = posterior_predictive(fit, seed=seed).values.reshape(-1, len(runs))
    probs = sorted(ci_probs)
    qs = {"median": np.median(rep, axis=0)}
    for p in probs:
        qs[f"lo{100 * p:g}"] = np.quantile(rep, (1 - p) / 2, axis=0)
        qs[f"hi{100 * p:g}"] = np.quantile(rep, 1 - (1 - p) / 2, axis=0)
    C = runs["C"].to_numpy(float)
    y = runs["loss"].to_numpy(float)
    outer = probs[-1]
    lo_o, hi_o = qs[f"lo{100 * outer:g}"], qs[f"hi{100 * outer:g}"]
    outside = (y < lo_o) | (y > hi_o)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for ax, scale in ((a1, np.ones_like(y)), (a2, qs["median"])):
        for p, lw in zip(probs, (3.2, 1.2) if len(probs) == 2 else [1.5] * len(probs)):
            ax.vlines(
                C,
                qs[f"lo{100 * p:g}"] / scale,
                qs[f"hi{100 * p:g}"] / scale,
                color="C0",
                alpha=0.45 if lw > 2 else 0.7,
                linewidth=lw,
                label=f"replicated {100 * p:g}%",
            )
        ax.scatter(C[~outside], y[~outside] / scale[~outside], s=14, color="k", zorder=3, label="observed")
        if outside.any():
            ax.scatter(
                C[outside],
                y[outside] / scale[outside],
                s=22,
                color="C3",
                marker="D",
                zorder=4,
                label=f"observed, outside {100 * outer:g}%",
            )
        _x_log(ax, _X_LABELS["C"])
    _loss_axis(a1)
    a1.set_title("observed vs replicated loss per run", fontsize=10)
    a2.axhline(1.0, color="0.4", linewidth=1)
    a2.set_ylabel("loss / replicated median")
    a2.set_title(
        f"ratio to the replicated median ({int(outside.sum())} of {len(y)} outside {100 * outer:g}%)", fontsize=10
    )
    a1.legend(fontsize=8, frameon=False)
    fig.suptitle("Posterior predictive check", fontsize=11)
    return fig


def plot_loo_pit(fit: Fit, pit: Any = None, *, ci_prob: float = 0.95) -> Any:
    """LOO-PIT calibration: histogram and ECDF difference against the uniform distribution.

    Each run's leave-one-out PIT (:func:`bayescale.checks.loo_pit`) is where its observed
    loss falls in the predictive distribution of the fit without it. Calibrated
    predictions give uniform PIT values: a U shape means intervals too narrow, a hump
    too wide, a slope a bias. The shaded bands are the ``ci_prob`` range of a uniform
    sample of the same size (binomial, pointwise).

    Parameters
    ----------
    fit : Fit
    pit : array-like, optional
        LOO-PIT values, when already computed.
    ci_prob : float

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_loo_pit(fit)                                    # doctest: +SKIP
    """
    if pit is None:
        pit = loo_pit(fit)
    u = np.clip(np.asarray(pit, dtype=float).ravel(), 0.0, 1.0)
    n = u.size
    if n == 0:
        raise BayescaleError("no LOO-PIT values to plot")
    alpha = 1.0 - ci_prob
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    bins = int(np.clip(round(math.sqrt(n)), 4, 20))
    lo_c, hi_c = stats.binom.ppf([alpha / 2, 1 - alpha / 2], n, 1.0 / bins)
    a1.axhspan(lo_c, hi_c, color="0.5", alpha=0.2, linewidth=0, label=f"uniform, {100 * ci_prob:g}% range")
    a1.axhline(n / bins, color="0.3", linewidth=1)
    a1.hist(u, bins=bins, range=(0, 1), color="C0", alpha=0.8, edgecolor="white", label="LOO-PIT")
    a1.set_xlim(0, 1)
    a1.set_xlabel("LOO-PIT")
    a1.set_ylabel("runs")
    a1.legend(fontsize=8, frameon=False)
    grid = np.linspace(0, 1, 201)
    ecdf = np.searchsorted(np.sort(u), grid, side="right") / n
    band_lo = stats.binom.ppf(alpha / 2, n, grid) / n - grid
    band_hi = stats.binom.ppf(1 - alpha / 2, n, grid) / n - grid
    a2.fill_between(
        grid,
        band_lo,
        band_hi,
        color="0.5",
        alpha=0.2,
        linewidth=0,
        step="mid",
        label=f"uniform, {100 * ci_prob:g}% pointwise",
    )
    a2.axhline(0, color="0.3", linewidth=1)
    a2.step(grid, ecdf - grid, where="post", color="C0", linewidth=1.6, label="ECDF - uniform")
    a2.set_xlim(0, 1)
    a2.set_xlabel("LOO-PIT")
    a2.set_ylabel("ECDF difference")
    a2.legend(fontsize=8, frameon=False)
    fig.suptitle(f"LOO-PIT of {n} runs (uniform when calibrated)", fontsize=11)
    return fig


def plot_holdout(validation: Any) -> Any:
    """Leave-largest-out: each held-out run against the band predicted for it.

    Left: loss against compute, the training runs (grey, when the validation keeps its
    fit), the compute cut, and for each held-out run its predicted median and 90%
    interval (with observation noise) and its observed loss (red when outside).
    Right: observed / predicted median with the interval, which makes misses legible.

    Parameters
    ----------
    validation : Validation
        From :func:`bayescale.leave_largest_out`.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> val = bs.leave_largest_out("chinchilla", runs)             # doctest: +SKIP
    >>> fig = plot_holdout(val)                                    # doctest: +SKIP
    """
    _expect(validation, ("table", "cut", "fit"), "a Validation (from bayescale.leave_largest_out)", "plot_holdout")
    t = validation.table
    if len(t) == 0:
        raise BayescaleError("the validation has no held-out runs")
    C = t["C"].to_numpy(float)
    y = t["observed"].to_numpy(float)
    med = t["median"].to_numpy(float)
    lo, hi = t["lo90"].to_numpy(float), t["hi90"].to_numpy(float)
    outside = (y < lo) | (y > hi)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    if validation.fit is not None:
        tr = validation.fit.runs
        a1.scatter(tr["C"], tr["loss"], s=12, color="0.6", label=f"training runs ({len(tr)})", zorder=2)
    for ax, scale in ((a1, np.ones_like(y)), (a2, med)):
        ax.vlines(C, lo / scale, hi / scale, color="C0", linewidth=3, alpha=0.5, label="predicted 90%")
        ax.scatter(C, med / scale, marker="_", s=120, color="C0", zorder=3, label="predicted median")
        ax.scatter(C[~outside], y[~outside] / scale[~outside], s=22, color="k", zorder=4, label="observed")
        if outside.any():
            ax.scatter(
                C[outside],
                y[outside] / scale[outside],
                s=30,
                marker="D",
                color="C3",
                zorder=5,
                label="observed, outside 90%",
            )
        ax.axvline(validation.cut, color="0.4", linestyle=":", linewidth=1)
        _x_log(ax, _X_LABELS["C"])
    a1.text(validation.cut, 0.98, " cut", transform=a1.get_xaxis_transform(), fontsize=8, va="top", color="0.35")
    _loss_axis(a1)
    a1.legend(fontsize=8, frameon=False)
    # At least a decade wide, so the axis has a labelled power of ten.
    a2.set_xlim(min(validation.cut, float(C.min())) / 3.2, float(C.max()) * 3.2)
    a2.axhline(1.0, color="0.4", linewidth=1)
    a2.set_ylabel("loss / predicted median")
    cov = validation.coverage.get(0.9, float(np.mean(~outside)))
    fig.suptitle(
        f"Leave-largest-out: {len(t)} held-out runs, 90% coverage {cov:.2f} (fit on {validation.n_train} runs with C <= {validation.cut:.3g})",
        fontsize=11,
    )
    return fig


__all__ = ["plot_holdout", "plot_loo_pit", "plot_ppc"]
