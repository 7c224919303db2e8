"""MCMC and posterior figures: trace with rank bars, rank plots, posteriors against priors, pair plot.

The generic plots go through ArviZ (via :mod:`bayescale._arviz`); this module adds the priors,
the log axes of positive parameters and the ridge correlations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, NullLocator

from .. import _arviz
from .._words import join_names
from ..errors import BayescaleError
from ..likelihoods import noise_priors
from ._style import LOG_AXIS_SPAN, plt

if TYPE_CHECKING:  # annotations only: no import at run time
    from ..inference import Fit


def _noise_priors(fit: Fit) -> dict[str, Any]:
    return dict(noise_priors(fit.spec.likelihood))


def _default_vars(fit: Fit) -> list[str]:
    """Law parameters then noise parameters (not the prior-only extrapolation drift)."""
    return list(fit.spec.law.params) + [v for v in _noise_priors(fit) if v in fit.posterior]


def _validate_vars(fit: Fit, names: Sequence[str]) -> list[str]:
    names = list(names)
    unknown = [v for v in names if v not in fit.posterior]
    if unknown or not names:
        raise BayescaleError(
            f"var_names {unknown or names} are not in the posterior; it has {list(fit.posterior.data_vars)}"
        )
    return names


def _priors(fit: Fit) -> dict[str, Any]:
    """The spec's prior of every posterior variable that has one."""
    out = {p: fit.spec.priors[p] for p in fit.spec.law.params}
    out.update(_noise_priors(fit))
    return out


def _is_positive(fit: Fit, name: str) -> bool:
    prior = _priors(fit).get(name)
    if name in fit.spec.law.positive:
        return True
    return bool(prior is not None and prior.is_positive())


def _spans_decades(x: np.ndarray, factor: float = 10.0) -> bool:
    lo, hi = np.quantile(x, [0.005, 0.995])
    return bool(lo > 0 and hi / lo > factor)


def _prior_density(prior: Any, x: np.ndarray) -> np.ndarray:
    """The prior's exact density at ``x`` (0 outside its support)."""
    with jax.enable_x64(True):
        d = prior.to_numpyro()
        xs = jnp.asarray(x, dtype=jnp.float64)
        inside = np.asarray(d.support(xs), dtype=bool)
        lp = np.asarray(
            d.log_prob(jnp.where(inside, xs, jnp.asarray(np.median(x[inside]) if inside.any() else 1.0))), dtype=float
        )
    dens = np.where(inside & np.isfinite(lp), np.exp(lp), 0.0)
    return dens


def _constrained(fig: Any) -> Any:
    """Constrained layout for a figure ArviZ made, so titles and tick labels do not collide."""
    try:
        fig.set_layout_engine("constrained")
    except RuntimeError:  # a figure whose layout engine cannot change: keep it
        pass
    return fig


def plot_trace(fit: Fit, var_names: Sequence[str] | None = None) -> Any:
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
    names = _validate_vars(fit, var_names or _default_vars(fit))
    fig = _constrained(_arviz.plot_trace_rank(fit.idata, names, figsize=(10, 1.7 * len(names) + 0.6)))
    fig.suptitle(
        f"Trace (rank bars) - {fit.posterior.sizes['chain']} chains x {fit.posterior.sizes['draw']} draws", fontsize=11
    )
    return fig


def plot_rank(fit: Fit, var_names: Sequence[str] | None = None) -> Any:
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
    names = _validate_vars(fit, var_names or _default_vars(fit))
    return _constrained(_arviz.plot_rank(fit.idata, names))


def plot_posteriors(
    fit: Fit, var_names: Sequence[str] | None = None, *, hdi_prob: float = 0.9, n_grid: int = 400
) -> Any:
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
    names = _validate_vars(fit, var_names or _default_vars(fit))
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


#: At most this many labelled ticks per pair-plot axis: a panel is about 2 inches wide, and more
#: labels than this overlap once rotated.
PAIR_TICKS = 4
#: Mantissas tried for log-axis ticks, sparsest first: the first set that gives three labels (or the
#: densest one within :data:`PAIR_TICKS`) wins.
_LOG_SUBS = ((1.0,), (1.0, 3.0), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0))


def _log_ticks(lo: float, hi: float) -> list[float]:
    """At most :data:`PAIR_TICKS` round numbers (1, 2, 3, 5 times a power of ten) inside ``[lo, hi]``."""
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    best: list[float] = []
    for subs in _LOG_SUBS:
        ticks = [m * 10.0**e for e in decades for m in subs if lo <= m * 10.0**e <= hi]
        if len(ticks) > PAIR_TICKS:
            break
        best = ticks
        if len(ticks) >= 3:
            break
    return best


def _pair_ticks(axis: Any, log: bool) -> None:
    """Few, evenly sized plain-number labels on one axis of a pair-plot panel.

    Matplotlib's log formatter labels majors and minors in two sizes and, over one or two decades,
    labels so many minors that they overlap; a pair-plot panel is small, so its ticks are chosen
    here: round numbers on a log axis, at most :data:`PAIR_TICKS` on a linear one.
    """
    if not log:
        axis.set_major_locator(MaxNLocator(PAIR_TICKS))
        return
    lo, hi = sorted(axis.get_view_interval())
    axis.set_major_locator(FixedLocator(_log_ticks(lo, hi)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def plot_pair(fit: Fit, var_names: Sequence[str] | None = None) -> Any:
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
    names = _validate_vars(fit, var_names or list(fit.spec.law.params))
    if len(names) < 2:
        raise BayescaleError(f"a pair plot needs at least two variables, got {join_names(names) if names else 'none'}")
    stats = _arviz.group(fit.idata, "sample_stats")
    divergences = bool(stats is not None and "diverging" in stats and bool(stats["diverging"].values.any()))
    k = len(names)
    ax = _arviz.plot_pair(fit.idata, names, divergences=divergences, figsize=(2.3 * (k - 1) + 1, 2.3 * (k - 1) + 0.6))
    positive = {v: _is_positive(fit, v) and bool(np.all(fit.posterior[v].values > 0)) for v in names}
    logaxis = {v: positive[v] and _spans_decades(fit.posterior[v].values, factor=LOG_AXIS_SPAN) for v in names}
    values = {
        v: np.log(fit.posterior[v].values.ravel()) if positive[v] else fit.posterior[v].values.ravel() for v in names
    }
    for j in range(k - 1):
        for i in range(j + 1):
            a = ax[j, i]
            xv, yv = names[i], names[j + 1]
            for axis, v, setter in ((a.xaxis, xv, a.set_xscale), (a.yaxis, yv, a.set_yscale)):
                if logaxis[v]:
                    setter("log")
                _pair_ticks(axis, logaxis[v])
            a.tick_params(which="both", labelsize=8)
            if j == k - 2:
                for label in a.get_xticklabels(which="both"):
                    label.set_rotation(30)
                    label.set_horizontalalignment("right")
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.corrcoef(values[xv], values[yv])[0, 1]
            if np.isfinite(r):
                a.text(
                    0.04,
                    0.94,
                    f"r={r:+.2f}",
                    transform=a.transAxes,
                    fontsize=8,
                    va="top",
                    color="C3" if abs(r) > 0.9 else "0.25",
                )
    fig = _constrained(ax.ravel()[0].get_figure())
    logged = [v for v in names if logaxis[v]]
    fig.suptitle(
        "Pair plot of the law's parameters" + (f" (log axes: {', '.join(logged)})" if logged else ""), fontsize=11
    )
    return fig


__all__ = ["plot_pair", "plot_posteriors", "plot_rank", "plot_trace"]
