"""The figure of a recipe comparison (:func:`bayescale.compare`): each recipe's compute-optimal
loss with its bands, and the compute multiplier over the baseline against compute."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._style import _X_LABELS, BAND_PROBS, _expect, _loss_axis, _plain, _x_log, plt

if TYPE_CHECKING:  # annotations only
    from ..comparison import Comparison


def _quantiles(draws: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
    return np.nanquantile(draws, (1 - p) / 2, axis=0), np.nanquantile(draws, (1 + p) / 2, axis=0)


def plot_comparison(cmp: Comparison, *, ci_probs: Any = BAND_PROBS) -> Any:
    """Left: each recipe's compute-optimal loss against compute (median and bands), its runs,
    the target and the median crossing. Right: each other recipe's compute multiplier over the
    baseline at the comparison's compute levels (median and bands; 1 = no difference).

    Returns
    -------
    matplotlib.figure.Figure
    """
    _expect(cmp, ("recipes", "curves", "curve_C", "target"), "a Comparison (from bayescale.compare)", "plot_comparison")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained")
    ax = axes[0]
    for i, (name, fit) in enumerate(cmp.recipes.items()):
        color = f"C{i}"
        loss = np.exp(cmp.curves[name])
        for p in sorted(ci_probs, reverse=True):
            lo, hi = _quantiles(loss, p)
            ax.fill_between(cmp.curve_C, lo, hi, color=color, alpha=0.15 if p > 0.6 else 0.25, lw=0)
        ax.plot(cmp.curve_C, np.median(loss, axis=0), color=color, label=_plain(name))
        ax.scatter(fit.runs["C"], fit.runs["loss"], s=10, color=color, alpha=0.6, zorder=3)
    ax.axvline(cmp.target.C, color="0.3", ls="--", lw=1, label="target")
    table = cmp.table()
    for g in cmp.others:
        if table.loc[g, "p_cross"] >= 0.05 and 0 < table.loc[g, "cross_C"] < np.inf:
            ax.axvline(table.loc[g, "cross_C"], color="0.5", ls=":", lw=1, label=f"median crossing ({_plain(g)})")
    _x_log(ax, _X_LABELS["C"])
    _loss_axis(ax)
    ax.set_title("compute-optimal loss by recipe", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    ax = axes[1]
    for i, g in enumerate(cmp.recipes):
        if g == cmp.baseline:
            continue
        k = cmp.multipliers[g]
        for p in sorted(ci_probs, reverse=True):
            lo, hi = _quantiles(k, p)
            ax.fill_between(cmp.levels, lo, hi, color=f"C{i}", alpha=0.15 if p > 0.6 else 0.25, lw=0)
        ax.plot(cmp.levels, np.median(k, axis=0), "o-", color=f"C{i}", label=f"{_plain(g)} over {_plain(cmp.baseline)}")
    ax.axhline(1.0, color="0.3", lw=1)
    _x_log(ax, _X_LABELS["C"])
    ax.set_yscale("log")
    ax.set_ylabel("effective compute multiplier")
    ax.set_title("compute multiplier against compute", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return fig


__all__ = ["plot_comparison"]
