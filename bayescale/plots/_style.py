"""What every figure of :mod:`bayescale.plots` shares: the headless backend, the constants, axis helpers.

Importing this module sets matplotlib's non-interactive ``Agg`` backend when there is no display
and nobody chose a backend; it does so before :mod:`matplotlib.pyplot` is imported, which is
why the pyplot import below follows code. Modules that need pyplot take it from here.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import matplotlib
import pandas as pd

from .._words import join_names
from ..errors import BayescaleError


def _headless_backend() -> None:
    """Use Agg when there is no display and nobody chose a backend (before pyplot is imported)."""
    if "MPLBACKEND" in os.environ or "matplotlib.pyplot" in sys.modules:
        return
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        matplotlib.use("Agg")


_headless_backend()

import matplotlib.pyplot as plt  # noqa: E402 (after the backend choice)
from matplotlib.ticker import LogFormatter, NullFormatter  # noqa: E402

if TYPE_CHECKING:  # annotations only: no import at run time
    from ..inference import Fit

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


def _expect(obj: Any, attrs: tuple[str, ...], what: str, fn: str) -> None:
    """Refuse, in words, an argument that is not the result ``fn`` draws (not a raw AttributeError)."""
    if not all(hasattr(obj, a) for a in attrs):
        raise BayescaleError(f"{fn} takes {what}, got {type(obj).__name__}")


def _plain(text: Any) -> str:
    """User text for a matplotlib label: ``$`` escaped so it is never read as mathtext."""
    return str(text).replace("$", r"\$")


def _runs_frame(fit: Fit) -> pd.DataFrame:
    runs = fit.runs
    missing = [c for c in ("N", "D", "C", "loss") if c not in runs]
    if missing:
        raise BayescaleError(
            f"the fit's runs table lacks columns {join_names(missing)}; scaling plots need N, D, C and loss"
        )
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


__all__ = ["BAND_PROBS", "EXTEND", "LOG_AXIS_SPAN", "MAX_RATIOS", "plt"]
