"""The misfit check's findings in words: sizes as percentages, intervals, sides, and which runs
(:mod:`bayescale.misfit` tests; this says what a test found)."""

from __future__ import annotations

import numpy as np

#: Each input's name in words.
LABEL = {"N": "model size N", "D": "data size D", "D/N": "tokens per parameter D/N", "C": "compute C"}


def pct(x: float) -> str:
    return f"{100 * abs(x):.2g}%" if abs(x) < 0.1 else f"{100 * abs(x):.0f}%"


def interval(lo: float, hi: float, level: float) -> str:
    if lo * hi > 0:
        a, b = sorted((abs(lo), abs(hi)))
        return f"{100 * level:g}% interval {100 * a:.2g}-{100 * b:.2g}%"
    return f"{100 * level:g}% interval {100 * lo:+.2g}% to {100 * hi:+.2g}%"


def side(e: float) -> str:
    return "below" if e < 0 else "above"


def where(kind: str, name: str, hi: np.ndarray, x: np.ndarray) -> str:
    edge = float(np.exp(x[hi].min()))
    if kind == "largest":
        return f"your {int(hi.sum())} largest runs (C >= {edge:.3g} FLOPs)"
    return f"the {int(hi.sum())} runs at the highest {name} ({name} >= {edge:.3g})"


def message(
    kind: str, name: str, where: str, med: float, a: float, b: float, low: float, level: float, fires: bool
) -> str:
    iv = interval(a, b, level)
    if kind == "largest":
        verb = "over-predicts" if med < 0 else "under-predicts"
        text = f"the law {verb} the loss of {where}: they sit {pct(med)} {side(med)} it ({iv})" + (
            "; extrapolation beyond them is unreliable" if fires else ""
        )
    elif kind == "trend":
        text = f"residuals trend with {LABEL[name]}: {where} sit {pct(med)} {side(med)} the law ({iv})" + (
            f", the lowest {pct(low)} {side(low)}" if low * med < 0 else ""
        )
    else:
        text = (
            f"the loss bends in {LABEL[name]} differently from the law: {where} sit {pct(med)} {side(med)} "
            f"it ({iv}), the lowest {pct(low)} {side(low)}"
            + (", the middle ones on the other side" if low * med > 0 else "")
        )
    if fires and kind != "largest":
        text += "; extrapolation in this direction is unreliable"
    return text
