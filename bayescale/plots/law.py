"""The scaling views: the law against the runs, the compute-optimal frontier, a decision's losses."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.colors import LogNorm
from scipy.stats import gaussian_kde

from ..errors import BayescaleError
from ..frontier import band_table, frontier
from ._style import (
    _CMAP,
    _LOSS_LABEL,
    _X_LABELS,
    BAND_PROBS,
    EXTEND,
    MAX_RATIOS,
    _expect,
    _log_labels,
    _loss_axis,
    _plain,
    _runs_frame,
    _x_log,
    plt,
)

if TYPE_CHECKING:  # annotations only: no import at run time
    from ..inference import Fit


def _quantiles(draws: Any, probs: Sequence[float]) -> dict[str, np.ndarray]:
    """Median and ``lo{p}``/``hi{p}`` quantiles over (chain, draw) of a ``Fit.predict`` result."""
    table = band_table(draws, ci_probs=probs)
    return {c: table[c].to_numpy(float) for c in table.columns}


def _bands(
    ax: Any, x: np.ndarray, q: Mapping[str, np.ndarray], color: Any, label: str | None, probs: Sequence[float]
) -> None:
    """Filled credible bands (wider ones lighter) and the median line."""
    for p in sorted(probs, reverse=True):
        alpha = 0.15 if p == max(probs) else 0.32
        ax.fill_between(x, q[f"lo{100 * p:g}"], q[f"hi{100 * p:g}"], color=color, alpha=alpha, linewidth=0)
    ax.plot(x, q["median"], color=color, linewidth=1.8, label=label)


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
    >>> representative_ratios([5, 5, 10, 20, 40, 40.1]).round(1)
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
    ax.text(
        xmax, 0.98, " extrapolation", transform=ax.get_xaxis_transform(), ha="left", va="top", fontsize=8, color="0.35"
    )


def _has_inputs(fit: Fit, *cols: str) -> bool:
    return set(cols) <= set(fit.spec.columns)


def _ratio_bands(
    ax: Any, fit: Fit, x: str, grid_n: np.ndarray, ratios: np.ndarray, color: Any, ci_probs: Sequence[float]
) -> float:
    """One band per tokens-per-parameter ratio along ``grid_n``, against ``x``; the largest x drawn."""
    n_grid = len(grid_n)
    pts_n = np.concatenate([grid_n] * len(ratios))
    pts_d = np.concatenate([r * grid_n for r in ratios])
    q = _quantiles(fit.predict({"N": pts_n, "D": pts_d}), ci_probs)
    xend = 0.0
    for k, r in enumerate(ratios):
        sl = slice(k * n_grid, (k + 1) * n_grid)
        xs = {"N": grid_n, "D": r * grid_n, "C": 6.0 * r * grid_n**2}[x]
        _bands(ax, xs, {c: v[sl] for c, v in q.items()}, color(r), f"{r:.3g} tokens/param", ci_probs)
        xend = max(xend, float(xs[-1]))
    return xend


def plot_law(
    fit: Fit,
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

    - ``x="C"``: along the compute-optimal frontier (the optimal loss, each draw at its own
      optimal split, as ``bayescale optimal`` gives it), from the smallest run's compute to
      ``extend`` times the largest;
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
        budgets = np.geomspace(C.min(), C.max() * extend, n_grid)
        # the optimal loss as `bayescale optimal` and the report's table give it: each draw at its own optimum
        fr = frontier(fit, budgets, ci_probs=ci_probs)
        q = {c.removeprefix("loss_opt_"): fr[c].to_numpy(float) for c in fr.columns if c.startswith("loss_opt_")}
        _bands(ax, budgets, q, "k", "compute-optimal frontier", ci_probs)
        xend = budgets[-1]
    else:
        ratios = representative_ratios(ratio, max_ratios)
        grid_n = np.geomspace(N.min(), N.max() * math.sqrt(extend), n_grid)
        xend = _ratio_bands(ax, fit, x, grid_n, ratios, lambda r: cmap(norm(r)), ci_probs)
    sc = ax.scatter(
        xs_run,
        runs["loss"].to_numpy(float),
        c=ratio,
        cmap=cmap,
        norm=norm,
        s=28,
        edgecolor="k",
        linewidth=0.5,
        zorder=4,
        label="runs",
    )
    cb = fig.colorbar(sc, ax=ax, label="tokens per parameter D/N", pad=0.01)
    _log_labels(cb.ax.yaxis)
    _extrapolation_marks(ax, float(xs_run.max()), xend)
    _x_log(ax, _X_LABELS[x])
    _loss_axis(ax)
    bands = "/".join(f"{100 * p:g}" for p in sorted(ci_probs))
    ax.set_title(
        f"{_plain(fit.spec.law.name)} law: {_plain(fit.spec.law.formula)}\nposterior median and {bands}% bands, {extend:g}x beyond the largest run's compute",
        fontsize=10,
    )
    ax.legend(fontsize=8, frameon=False, loc="lower left")
    return fig


def plot_frontier(fit: Fit, budgets: Any = None, *, ci_probs: Sequence[float] = BAND_PROBS) -> Any:
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
    fig.suptitle(
        f"Compute-optimal allocation (tokens per parameter {mid[0]:.3g} at the smallest budget, {mid[-1]:.3g} at the largest)",
        fontsize=11,
    )
    return fig


def _decision_draws(decision: Any, fit: Fit, noise: bool, seed: int) -> dict[str, np.ndarray] | None:
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


def _loss_grid(decision: Any, draws: Mapping[str, np.ndarray] | None) -> np.ndarray:
    """The loss axis of :func:`plot_decision`: every option's draws (or interval and CVaR) and the threshold."""
    t = decision.table
    lo_all = float(t["lo"].min())
    hi_all = float(max(t["hi"].max(), t["cvar"].max()))
    if draws is not None:
        allx = np.concatenate(list(draws.values()))
        lo_all, hi_all = float(np.quantile(allx, 0.002)), float(np.quantile(allx, 0.998))
    if decision.threshold is not None:
        lo_all, hi_all = min(lo_all, decision.threshold), max(hi_all, decision.threshold)
    pad = 0.05 * (hi_all - lo_all or abs(hi_all) or 1.0)
    grid = np.linspace(lo_all - pad, hi_all + pad, 300)
    return grid


def plot_decision(decision: Any, fit: Fit = None, *, noise: bool = True, seed: int = 0) -> Any:
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
    _expect(decision, ("table", "threshold", "best"), "a Decision (from bayescale.decide)", "plot_decision")
    t = decision.table
    names = [str(n) for n in t.index]
    draws = _decision_draws(decision, fit, noise, seed)
    fig, ax = plt.subplots(figsize=(9, 1.1 * len(names) + 1.6), layout="constrained")
    grid = _loss_grid(decision, draws)
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
        ax.hlines(
            i,
            row["lo"],
            row["hi"],
            color=color,
            linewidth=3.5,
            label=f"{100 * decision.ci_prob:g}% interval" if i == 0 else None,
        )
        ax.plot(row["median"], i, "o", color="white", markeredgecolor="k", zorder=4, label="median" if i == 0 else None)
        ax.plot(row["cvar"], i, "D", color="k", markersize=5, zorder=4, label="CVaR" if i == 0 else None)
        note = f"P(best) {row['p_best']:.2f}"
        if decision.threshold is not None:
            note = f"P(loss <= {decision.threshold:.3g}) {row['p_below']:.2f}, " + note
        if name == decision.best:
            note += "  [best]"
        ax.text(
            1.0,
            i + 0.15,
            " " + note,
            transform=ax.get_yaxis_transform(),
            fontsize=8,
            va="bottom",
            ha="right",
            color="0.2",
        )
    if decision.threshold is not None:
        ax.axvline(
            decision.threshold, color="C3", linestyle="--", linewidth=1.5, label=f"threshold {decision.threshold:.3g}"
        )
    ax.set_yticks(range(len(names)), [_plain(n) for n in names])
    ax.set_ylim(-0.5, len(names) - 0.05)
    ax.set_xlim(grid[0], grid[-1])
    ax.set_xlabel(_LOSS_LABEL)
    ax.legend(fontsize=8, frameon=False, loc="lower right", ncols=2)
    what = "posterior draws" if draws is not None else "summary (no draws)"
    ax.set_title(
        f"Loss of each option ({what}); best by {_plain(decision.risk_label)}: {_plain(decision.best)}", fontsize=10
    )
    return fig


__all__ = ["plot_decision", "plot_frontier", "plot_law", "representative_ratios"]
