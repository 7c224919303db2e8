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

from ._style import BAND_PROBS, EXTEND
from ._style import LOG_AXIS_SPAN as LOG_AXIS_SPAN
from ._style import MAX_RATIOS as MAX_RATIOS
from .checks import plot_holdout, plot_loo_pit, plot_ppc
from .compare import plot_comparison
from .law import plot_decision, plot_frontier, plot_law, representative_ratios
from .posterior import plot_pair, plot_posteriors, plot_rank, plot_trace

__all__ = [
    "BAND_PROBS",
    "EXTEND",
    "plot_comparison",
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
