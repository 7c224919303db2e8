"""Figures of a fit: sampler diagnostics, priors against posteriors, predictive checks,
and the scaling-specific views (the law against the runs, the compute-optimal frontier,
a decision's loss distributions and leave-largest-out validation).

Every function returns a :class:`matplotlib.figure.Figure` and leaves showing or saving it
to the caller (:mod:`bayescale.report` embeds them in one HTML file). The generic MCMC
plots go through ArviZ (via :mod:`bayescale._arviz`, the one module that imports it).
Without a display, matplotlib is set to its non-interactive ``Agg`` backend.

Examples
--------
>>> from bayescale import plots                                   # doctest: +SKIP
>>> fig = plots.plot_law(fit, x="C")                              # doctest: +SKIP
>>> fig.savefig("law.png")                                        # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd


def _headless_backend() -> None:
    """Use Agg when there is no display and nobody chose a backend (before pyplot is imported)."""
    if "MPLBACKEND" in os.environ or "matplotlib.pyplot" in sys.modules:
        return
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        matplotlib.use("Agg")


_headless_backend()

import matplotlib.pyplot as plt
from matplotlib.colors import LogNorm
from matplotlib.ticker import LogFormatter, MaxNLocator, NullFormatter

from . import _arviz
from .errors import BayescaleError

#: Central credible intervals drawn as bands (darker for the narrower one).
BAND_PROBS = (0.5, 0.9)
#: How far beyond the largest run the law is drawn, as a factor of its compute.
EXTEND = 1000.0
#: Positive parameters whose posterior spans more than this factor get log axes in the pair plot
#: (over a narrower range a log axis looks like a linear one, with unreadable ticks).
LOG_AXIS_SPAN = 2.0
#: At most this many tokens-per-parameter bands in :func:`plot_law` for x = N or D.
MAX_RATIOS = 4

_X_LABELS = {
    "C": "compute C = 6ND (FLOPs)",
    "N": "parameters N",
    "D": "training tokens D",
}
_LOSS_LABEL = "loss (nats/token)"
_CMAP = "viridis"


# ------------------------------------------------------------------ helpers


def _plain(text: Any) -> str:
    """User text for a matplotlib label: ``$`` escaped so it is never read as mathtext."""
    return str(text).replace("$", r"\$")


def _noise_priors(fit: Any) -> dict[str, Any]:
    from .likelihoods import noise_priors

    return dict(noise_priors(fit.spec.likelihood))


def _default_vars(fit: Any) -> list[str]:
    """Law parameters then noise parameters (not the prior-only extrapolation drift)."""
    return list(fit.spec.law.params) + [v for v in _noise_priors(fit) if v in fit.posterior]


def _check_vars(fit: Any, names: Sequence[str]) -> list[str]:
    names = list(names)
    unknown = [v for v in names if v not in fit.posterior]
    if unknown or not names:
        raise BayescaleError(f"var_names {unknown or names} are not in the posterior; it has {list(fit.posterior.data_vars)}")
    return names


def _priors(fit: Any) -> dict[str, Any]:
    """The spec's prior of every posterior variable that has one."""
    out = {p: fit.spec.priors[p] for p in fit.spec.law.params}
    out.update(_noise_priors(fit))
    return out


def _is_positive(fit: Any, name: str) -> bool:
    prior = _priors(fit).get(name)
    if name in fit.spec.law.positive:
        return True
    return bool(prior is not None and prior.is_positive())


def _spans_decades(x: np.ndarray, factor: float = 10.0) -> bool:
    lo, hi = np.quantile(x, [0.005, 0.995])
    return bool(lo > 0 and hi / lo > factor)


def _prior_density(prior: Any, x: np.ndarray) -> np.ndarray:
    """The prior's exact density at ``x`` (0 outside its support)."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        d = prior.to_numpyro()
        xs = jnp.asarray(x, dtype=jnp.float64)
        inside = np.asarray(d.support(xs), dtype=bool)
        lp = np.asarray(d.log_prob(jnp.where(inside, xs, jnp.asarray(np.median(x[inside]) if inside.any() else 1.0))), dtype=float)
    dens = np.where(inside & np.isfinite(lp), np.exp(lp), 0.0)
    return dens


def _quantiles(draws: Any, probs: Sequence[float]) -> dict[str, np.ndarray]:
    """Median and ``lo{p}``/``hi{p}`` quantiles over (chain, draw) of a ``Fit.predict`` result."""
    from .frontier import band_table

    table = band_table(draws, ci_probs=probs)
    return {c: table[c].to_numpy(float) for c in table.columns}


def _bands(ax: Any, x: np.ndarray, q: Mapping[str, np.ndarray], color: Any, label: str | None, probs: Sequence[float]) -> None:
    """Filled credible bands (wider ones lighter) and the median line."""
    for p in sorted(probs, reverse=True):
        alpha = 0.15 if p == max(probs) else 0.32
        ax.fill_between(x, q[f"lo{100 * p:g}"], q[f"hi{100 * p:g}"], color=color, alpha=alpha, linewidth=0)
    ax.plot(x, q["median"], color=color, linewidth=1.8, label=label)


def _runs_frame(fit: Any) -> pd.DataFrame:
    runs = fit.runs
    missing = [c for c in ("N", "D", "C", "loss") if c not in runs]
    if missing:
        raise BayescaleError(f"the fit's runs table lacks columns {missing}; scaling plots need N, D, C and loss")
    return runs


def _log_labels(axis: Any) -> None:
    """Plain-number labels (``2``, ``3``, ``20``) on a log axis; minor ticks labelled when it spans
    less than two decades, so a loss axis from 2 to 7 reads as numbers, not as powers of ten."""
    axis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _loss_axis(ax: Any) -> None:
    ax.set_yscale("log")
    _log_labels(ax.yaxis)
    ax.set_ylabel(_LOSS_LABEL)


def _x_log(ax: Any, label: str) -> None:
    """A log x axis labelled at powers of ten only (callers keep it wider than a decade)."""
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(label)


def _constrained(fig: Any) -> Any:
    """Constrained layout for a figure ArviZ made, so titles and tick labels do not collide."""
    try:
        fig.set_layout_engine("constrained")
    except RuntimeError:  # a figure whose layout engine cannot change: keep it
        pass
    return fig


def _ratio_norm(ratio: np.ndarray) -> LogNorm:
    lo, hi = float(np.min(ratio)), float(np.max(ratio))
    if hi / lo < 1.5:
        lo, hi = lo / 1.5, hi * 1.5
    return LogNorm(vmin=lo, vmax=hi)


def representative_ratios(ratios: Sequence[float], max_ratios: int = MAX_RATIOS) -> np.ndarray:
    """The runs' distinct tokens-per-parameter ratios (to 0.05 decades), thinned to at most
    ``max_ratios`` spread evenly in log space.

    Examples
    --------
    >>> representative_ratios([5, 5, 10, 20, 40, 40.1])
    array([ 5., 10., 20., 40.])
    """
    logr = np.log10(np.asarray(ratios, dtype=float))
    if logr.size == 0 or not np.all(np.isfinite(logr)):
        raise BayescaleError("tokens-per-parameter ratios must be finite and > 0")
    # Group ratios within 0.05 decades; each group is represented by its median.
    order = np.sort(logr)
    groups: list[list[float]] = [[order[0]]]
    for v in order[1:]:
        if v - groups[-1][0] <= 0.05:
            groups[-1].append(v)
        else:
            groups.append([v])
    centres = np.array([np.median(g) for g in groups])
    if centres.size > max_ratios:
        targets = np.quantile(logr, np.linspace(0, 1, max_ratios))
        centres = np.unique([centres[np.argmin(np.abs(centres - t))] for t in targets])
    return np.round(10.0**centres, 10)


def _extrapolation_marks(ax: Any, xmax: float, xend: float) -> None:
    ax.axvline(xmax, color="0.4", linestyle=":", linewidth=1)
    ax.axvspan(xmax, xend, color="0.5", alpha=0.06, linewidth=0)
    ax.text(xmax, 0.98, " extrapolation", transform=ax.get_xaxis_transform(), ha="left", va="top", fontsize=8, color="0.35")


def _has_inputs(fit: Any, *cols: str) -> bool:
    return set(cols) <= set(fit.spec.columns)


# ------------------------------------------------------------ MCMC diagnostics


def plot_trace(fit: Any, var_names: Sequence[str] | None = None) -> Any:
    """Trace plot with rank bars: per variable, each chain's density and its rank histogram.

    Chains that sample the same distribution give overlapping densities and flat,
    similar rank bars; a chain stuck elsewhere shows as a skewed rank histogram.
    Divergent transitions, when the fit has sampler statistics, are marked.

    Parameters
    ----------
    fit : Fit
    var_names : sequence of str, optional
        Default: the law's parameters and the noise parameters.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_trace(fit)                                     # doctest: +SKIP
    """
    names = _check_vars(fit, var_names or _default_vars(fit))
    fig = _constrained(_arviz.plot_trace_rank(fit.idata, names, figsize=(10, 1.7 * len(names) + 0.6)))
    fig.suptitle(f"Trace (rank bars) - {fit.posterior.sizes['chain']} chains x {fit.posterior.sizes['draw']} draws", fontsize=11)
    return fig


def plot_rank(fit: Any, var_names: Sequence[str] | None = None) -> Any:
    """Rank plots through ArviZ: per variable, the histogram of each chain's ranks among all draws.

    Uniform histograms mean the chains mix; see :func:`plot_trace` for the same bars beside
    the densities.

    Parameters
    ----------
    fit : Fit
    var_names : sequence of str, optional
        Default: the law's parameters and the noise parameters.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_rank(fit, ["alpha", "beta"])                   # doctest: +SKIP
    """
    names = _check_vars(fit, var_names or _default_vars(fit))
    return _constrained(_arviz.plot_rank(fit.idata, names))


def plot_posteriors(fit: Any, var_names: Sequence[str] | None = None, *, hdi_prob: float = 0.9, n_grid: int = 400) -> Any:
    """Posterior density of each parameter with its prior density overlaid.

    The posterior (ArviZ: density, median, ``hdi_prob`` highest-density interval) against
    the spec's prior (its exact density, dashed). A posterior that looks like its prior was
    not informed by the runs. Positive parameters whose posterior spans more than a decade
    (typically ``A`` and ``B``) are drawn as ``log10``, with the prior transformed alike.

    Parameters
    ----------
    fit : Fit
    var_names : sequence of str, optional
        Default: the law's parameters and the noise parameters.
    hdi_prob : float
    n_grid : int
        Points at which the prior density is evaluated.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_posteriors(fit)                                 # doctest: +SKIP
    """
    import xarray as xr

    names = _check_vars(fit, var_names or _default_vars(fit))
    priors = _priors(fit)
    labels, data = [], {}
    logged = {}
    for v in names:
        x = fit.posterior[v].values
        logged[v] = _is_positive(fit, v) and _spans_decades(x)
        label = f"log10({v})" if logged[v] else v
        labels.append(label)
        data[label] = (("chain", "draw"), np.log10(x) if logged[v] else x)
    ds = xr.Dataset(data)
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.7 * nrows), layout="constrained", squeeze=False)
    flat = axes.ravel()
    _arviz.plot_posterior(ds, labels, ax=flat[: len(names)], hdi_prob=hdi_prob)
    for ax in flat[len(names) :]:
        ax.remove()
    for v, label, ax in zip(names, labels, flat):
        prior = priors.get(v)
        if prior is None:
            continue
        lo, hi = ax.get_xlim()
        u = np.linspace(lo, hi, n_grid)
        if logged[v]:
            x = 10.0**u
            dens = _prior_density(prior, x) * x * math.log(10.0)
        else:
            dens = _prior_density(prior, u)
        ax.plot(u, dens, linestyle="--", color="C1", linewidth=1.4, label="prior")
        ax.set_xlim(lo, hi)
        ax.set_title(label, fontsize=10)
    flat[0].legend(loc="upper right", fontsize=8, frameon=False)
    fig.suptitle(f"Posterior (blue, median and {100 * hdi_prob:g}% HDI) against the prior (dashed)", fontsize=11)
    return fig


def plot_pair(fit: Any, var_names: Sequence[str] | None = None) -> Any:
    """Pair plot of the law's parameters (ArviZ), log axes for positive ones.

    Scaling-law posteriors are ridges: ``A`` trades against ``alpha`` and ``B`` against
    ``beta`` (and ``E`` against both). Each panel gives the correlation of the two
    parameters (of their logs when positive; red above 0.9 in absolute value). Positive
    parameters whose posterior spans more than a factor :data:`LOG_AXIS_SPAN` get log
    axes (typically ``A`` and ``B``, which span decades). Divergent transitions are
    marked when the fit has sampler statistics.

    Parameters
    ----------
    fit : Fit
    var_names : sequence of str, optional
        At least two; default the law's parameters.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_pair(fit)                                       # doctest: +SKIP
    """
    names = _check_vars(fit, var_names or list(fit.spec.law.params))
    if len(names) < 2:
        raise BayescaleError(f"a pair plot needs at least two variables, got {names}")
    stats = _arviz.group(fit.idata, "sample_stats")
    divergences = bool(stats is not None and "diverging" in stats and bool(stats["diverging"].values.any()))
    k = len(names)
    ax = _arviz.plot_pair(fit.idata, names, divergences=divergences, figsize=(2.3 * (k - 1) + 1, 2.3 * (k - 1) + 0.6))
    positive = {v: _is_positive(fit, v) and bool(np.all(fit.posterior[v].values > 0)) for v in names}
    logaxis = {v: positive[v] and _spans_decades(fit.posterior[v].values, factor=LOG_AXIS_SPAN) for v in names}
    values = {v: np.log(fit.posterior[v].values.ravel()) if positive[v] else fit.posterior[v].values.ravel() for v in names}
    for j in range(k - 1):
        for i in range(j + 1):
            a = ax[j, i]
            xv, yv = names[i], names[j + 1]
            for axis, v, setter in ((a.xaxis, xv, a.set_xscale), (a.yaxis, yv, a.set_yscale)):
                if logaxis[v]:
                    setter("log")
                    _log_labels(axis)
                else:
                    axis.set_major_locator(MaxNLocator(4))
            if j == k - 2:
                for label in a.get_xticklabels(which="both"):
                    label.set_rotation(30)
                    label.set_horizontalalignment("right")
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.corrcoef(values[xv], values[yv])[0, 1]
            if np.isfinite(r):
                a.text(0.04, 0.94, f"r={r:+.2f}", transform=a.transAxes, fontsize=8, va="top", color="C3" if abs(r) > 0.9 else "0.25")
    fig = _constrained(ax.ravel()[0].get_figure())
    logged = [v for v in names if logaxis[v]]
    fig.suptitle("Pair plot of the law's parameters" + (f" (log axes: {', '.join(logged)})" if logged else ""), fontsize=11)
    return fig


# ------------------------------------------------------------ predictive checks


def plot_ppc(fit: Any, *, seed: int = 0, ci_probs: Sequence[float] = BAND_PROBS) -> Any:
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
    from .checks import posterior_predictive

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
            ax.vlines(C, qs[f"lo{100 * p:g}"] / scale, qs[f"hi{100 * p:g}"] / scale, color="C0", alpha=0.45 if lw > 2 else 0.7, linewidth=lw, label=f"replicated {100 * p:g}%")
        ax.scatter(C[~outside], y[~outside] / scale[~outside], s=14, color="k", zorder=3, label="observed")
        if outside.any():
            ax.scatter(C[outside], y[outside] / scale[outside], s=22, color="C3", marker="D", zorder=4, label=f"observed, outside {100 * outer:g}%")
        _x_log(ax, _X_LABELS["C"])
    _loss_axis(a1)
    a1.set_title("observed vs replicated loss per run", fontsize=10)
    a2.axhline(1.0, color="0.4", linewidth=1)
    a2.set_ylabel("loss / replicated median")
    a2.set_title(f"ratio to the replicated median ({int(outside.sum())} of {len(y)} outside {100 * outer:g}%)", fontsize=10)
    a1.legend(fontsize=8, frameon=False)
    fig.suptitle("Posterior predictive check", fontsize=11)
    return fig


def plot_loo_pit(fit: Any, pit: Any = None, *, ci_prob: float = 0.95) -> Any:
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
    from scipy import stats

    if pit is None:
        from .checks import loo_pit

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
    a2.fill_between(grid, band_lo, band_hi, color="0.5", alpha=0.2, linewidth=0, step="mid", label=f"uniform, {100 * ci_prob:g}% pointwise")
    a2.axhline(0, color="0.3", linewidth=1)
    a2.step(grid, ecdf - grid, where="post", color="C0", linewidth=1.6, label="ECDF - uniform")
    a2.set_xlim(0, 1)
    a2.set_xlabel("LOO-PIT")
    a2.set_ylabel("ECDF difference")
    a2.legend(fontsize=8, frameon=False)
    fig.suptitle(f"LOO-PIT of {n} runs (uniform when calibrated)", fontsize=11)
    return fig


# ------------------------------------------------------------ scaling views


def plot_law(
    fit: Any,
    x: str = "C",
    *,
    extend: float = EXTEND,
    ci_probs: Sequence[float] = BAND_PROBS,
    max_ratios: int = MAX_RATIOS,
    n_grid: int = 60,
) -> Any:
    """The runs and the fitted law with credible bands, extended far beyond the runs.

    Observed runs on log axes, coloured by tokens per parameter (D/N). The law's
    posterior median and ``ci_probs`` bands (the law's loss, without run-to-run noise,
    including the spec's extrapolation drift when it has one) are drawn:

    - ``x="C"``: along the compute-optimal frontier (the posterior-median allocation
      of each budget), from the smallest run's compute to ``extend`` times the largest;
    - ``x="N"`` or ``"D"``: one band per tokens-per-parameter ratio of the runs (at most
      ``max_ratios``, coloured as the runs), up to ``sqrt(extend)`` times the largest
      run's N (``extend`` times its compute, since C grows as N^2 at a fixed ratio).

    Parameters
    ----------
    fit : Fit
    x : {"C", "N", "D"}
    extend : float
        How far beyond the largest run, as a factor of compute (default 1000).
    ci_probs : sequence of float
    max_ratios : int
    n_grid : int
        Points along each band.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_law(fit, x="N")                                 # doctest: +SKIP
    """
    if x not in _X_LABELS:
        raise BayescaleError(f"x must be one of {list(_X_LABELS)}, got {x!r}")
    if not (isinstance(extend, (int, float)) and math.isfinite(extend) and extend >= 1):
        raise BayescaleError(f"extend must be a number >= 1, got {extend!r}")
    runs = _runs_frame(fit)
    N, D, C = (runs[c].to_numpy(float) for c in ("N", "D", "C"))
    ratio = D / N
    norm = _ratio_norm(ratio)
    cmap = plt.get_cmap(_CMAP)
    fig, ax = plt.subplots(figsize=(8.5, 5.2), layout="constrained")
    xs_run = {"N": N, "D": D, "C": C}[x]
    if x == "C" and _has_inputs(fit, "N", "D"):
        from .frontier import frontier

        budgets = np.geomspace(C.min(), C.max() * extend, n_grid)
        fr = frontier(fit, budgets, ci_probs=[0.5])
        n_opt = fr["N_opt_median"].to_numpy(float)
        q = _quantiles(fit.predict({"N": n_opt, "D": budgets / (6.0 * n_opt)}), ci_probs)
        _bands(ax, budgets, q, "k", "compute-optimal frontier (median allocation)", ci_probs)
        xend = budgets[-1]
    else:
        ratios = representative_ratios(ratio, max_ratios)
        grid_n = np.geomspace(N.min(), N.max() * math.sqrt(extend), n_grid)
        pts_n = np.concatenate([grid_n] * len(ratios))
        pts_d = np.concatenate([r * grid_n for r in ratios])
        q = _quantiles(fit.predict({"N": pts_n, "D": pts_d}), ci_probs)
        xend = 0.0
        for k, r in enumerate(ratios):
            sl = slice(k * n_grid, (k + 1) * n_grid)
            xs = {"N": grid_n, "D": r * grid_n, "C": 6.0 * r * grid_n**2}[x]
            _bands(ax, xs, {c: v[sl] for c, v in q.items()}, cmap(norm(r)), f"{r:.3g} tokens/param", ci_probs)
            xend = max(xend, float(xs[-1]))
    sc = ax.scatter(xs_run, runs["loss"].to_numpy(float), c=ratio, cmap=cmap, norm=norm, s=28, edgecolor="k", linewidth=0.5, zorder=4, label="runs")
    cb = fig.colorbar(sc, ax=ax, label="tokens per parameter D/N", pad=0.01)
    _log_labels(cb.ax.yaxis)
    _extrapolation_marks(ax, float(xs_run.max()), xend)
    _x_log(ax, _X_LABELS[x])
    _loss_axis(ax)
    bands = "/".join(f"{100 * p:g}" for p in sorted(ci_probs))
    ax.set_title(f"{_plain(fit.spec.law.name)} law: {_plain(fit.spec.law.formula)}\nposterior median and {bands}% bands, {extend:g}x beyond the largest run's compute", fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="lower left")
    return fig


def plot_frontier(fit: Any, budgets: Any = None, *, ci_probs: Sequence[float] = BAND_PROBS) -> Any:
    """The compute-optimal allocation ``N_opt(C)`` and ``D_opt(C)`` with credible bands.

    Per posterior draw the budget ``C = 6 N D`` is split into the model size and token
    count that minimise the law's loss (:func:`bayescale.decisions.compute_optimal`); the
    bands are over draws. The runs are shown for reference.

    Parameters
    ----------
    fit : Fit
    budgets : array-like, optional
        FLOP budgets; default 40 from the smallest run's compute to 1000x the largest.
    ci_probs : sequence of float

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_frontier(fit, [1e21, 1e22, 1e23, 1e24])          # doctest: +SKIP
    """
    from .frontier import frontier

    runs = _runs_frame(fit)
    if budgets is None:
        budgets = np.geomspace(runs["C"].min(), runs["C"].max() * EXTEND, 40)
    budgets = np.sort(np.atleast_1d(np.asarray(budgets, dtype=float)))
    fr = frontier(fit, budgets, ci_probs=ci_probs)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained")
    for ax, var, col, label in ((axes[0], "N_opt", "N", "parameters N"), (axes[1], "D_opt", "D", "training tokens D")):
        q = {"median": fr[f"{var}_median"].to_numpy(float)}
        for p in ci_probs:
            q[f"lo{100 * p:g}"] = fr[f"{var}_lo{100 * p:g}"].to_numpy(float)
            q[f"hi{100 * p:g}"] = fr[f"{var}_hi{100 * p:g}"].to_numpy(float)
        _bands(ax, budgets, q, "C0", f"{var} (median and bands)", ci_probs)
        ax.scatter(runs["C"], runs[col], s=14, color="0.35", zorder=3, label="runs")
        _extrapolation_marks(ax, float(runs["C"].max()), float(budgets[-1]))
        _x_log(ax, _X_LABELS["C"])
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.legend(fontsize=8, frameon=False, loc="upper left")
    mid = fr["tokens_per_param_median"].to_numpy(float)
    fig.suptitle(f"Compute-optimal allocation (tokens per parameter {mid[0]:.3g} at the smallest budget, {mid[-1]:.3g} at the largest)", fontsize=11)
    return fig


def _decision_draws(decision: Any, fit: Any, noise: bool, seed: int) -> dict[str, np.ndarray] | None:
    """Re-draw each option's loss as :func:`~bayescale.decide` did; None unless they reproduce its table."""
    t = decision.table
    if fit is None or not {"N", "D"} <= set(t.columns) or t[["N", "D"]].isna().any().any():
        return None
    frame = t[[c for c in ("N", "D", "C") if c in t.columns]].reset_index(drop=True)
    for nz in dict.fromkeys([noise, True, False]):
        pred = fit.predict(frame, noise=nz, seed=seed)
        x = pred.transpose("chain", "draw", "point").values.reshape(-1, len(t))
        if np.allclose(np.median(x, axis=0), t["median"].to_numpy(float), rtol=1e-9, atol=0):
            return {str(name): x[:, i] for i, name in enumerate(t.index)}
    return None


def plot_decision(decision: Any, fit: Any = None, *, noise: bool = True, seed: int = 0) -> Any:
    """Loss distribution of each scale-up option, with the threshold marked.

    With the ``fit`` the decision was made from, each option's posterior draws of loss
    are re-drawn exactly as :func:`bayescale.decide` drew them (same points, ``noise``
    and ``seed``; checked against the decision's medians) and shown as a density.
    Without it, or if they do not reproduce, the decision's table is drawn: median,
    interval, VaR and CVaR. The threshold is the red dashed line; each option is
    annotated with P(loss <= threshold) and P(best).

    Parameters
    ----------
    decision : Decision
        From :func:`bayescale.decide`.
    fit : Fit, optional
    noise, seed
        As given to :func:`bayescale.decide`.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> dec = bs.decide(options, fit=fit, threshold=2.2)           # doctest: +SKIP
    >>> fig = plot_decision(dec, fit)                              # doctest: +SKIP
    """
    from scipy.stats import gaussian_kde

    t = decision.table
    names = [str(n) for n in t.index]
    draws = _decision_draws(decision, fit, noise, seed)
    fig, ax = plt.subplots(figsize=(9, 1.1 * len(names) + 1.6), layout="constrained")
    lo_all = float(t["lo"].min())
    hi_all = float(max(t["hi"].max(), t["cvar"].max()))
    if draws is not None:
        allx = np.concatenate(list(draws.values()))
        lo_all, hi_all = float(np.quantile(allx, 0.002)), float(np.quantile(allx, 0.998))
    if decision.threshold is not None:
        lo_all, hi_all = min(lo_all, decision.threshold), max(hi_all, decision.threshold)
    pad = 0.05 * (hi_all - lo_all or abs(hi_all) or 1.0)
    grid = np.linspace(lo_all - pad, hi_all + pad, 300)
    for i, name in enumerate(names):
        row = t.loc[t.index[i]]
        color = f"C{i % 10}"
        if draws is not None:
            x = draws[name]
            if np.ptp(x) > 0:
                dens = gaussian_kde(x)(grid)
                dens = 0.8 * dens / dens.max()
                ax.fill_between(grid, i, i + dens, color=color, alpha=0.35, linewidth=0)
                ax.plot(grid, i + dens, color=color, linewidth=1)
        ax.hlines(i, row["lo"], row["hi"], color=color, linewidth=3.5, label=f"{100 * decision.ci_prob:g}% interval" if i == 0 else None)
        ax.plot(row["median"], i, "o", color="white", markeredgecolor="k", zorder=4, label="median" if i == 0 else None)
        ax.plot(row["cvar"], i, "D", color="k", markersize=5, zorder=4, label="CVaR" if i == 0 else None)
        note = f"P(best) {row['p_best']:.2f}"
        if decision.threshold is not None:
            note = f"P(loss <= {decision.threshold:.3g}) {row['p_below']:.2f}, " + note
        if name == decision.best:
            note += "  [best]"
        ax.text(1.0, i + 0.15, " " + note, transform=ax.get_yaxis_transform(), fontsize=8, va="bottom", ha="right", color="0.2")
    if decision.threshold is not None:
        ax.axvline(decision.threshold, color="C3", linestyle="--", linewidth=1.5, label=f"threshold {decision.threshold:.3g}")
    ax.set_yticks(range(len(names)), [_plain(n) for n in names])
    ax.set_ylim(-0.5, len(names) - 0.05)
    ax.set_xlim(grid[0], grid[-1])
    ax.set_xlabel(_LOSS_LABEL)
    ax.legend(fontsize=8, frameon=False, loc="lower right", ncols=2)
    what = "posterior draws" if draws is not None else "summary (no draws)"
    ax.set_title(f"Loss of each option ({what}); best by {_plain(decision.risk_label)}: {_plain(decision.best)}", fontsize=10)
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
            ax.scatter(C[outside], y[outside] / scale[outside], s=30, marker="D", color="C3", zorder=5, label="observed, outside 90%")
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
    fig.suptitle(f"Leave-largest-out: {len(t)} held-out runs, 90% coverage {cov:.2f} (fit on {validation.n_train} runs with C <= {validation.cut:.3g})", fontsize=11)
    return fig


__all__ = [
    "BAND_PROBS",
    "EXTEND",
    "plot_decision",
    "plot_frontier",
    "plot_holdout",
    "plot_law",
    "plot_loo_pit",
    "plot_pair",
    "plot_posteriors",
    "plot_ppc",
    "plot_rank",
    "plot_trace",
    "representative_ratios",
]
