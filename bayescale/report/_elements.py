"""What a report is made of: its content blocks, number formatting, PNG figures and progress line.

The blocks are format-neutral; :mod:`bayescale.report` renders them as HTML or Markdown.
"""

from __future__ import annotations

import io
import math
import struct
import sys
from dataclasses import dataclass
from typing import Any

from ..errors import BayescaleError
from ..plots._style import plt  # pyplot as bayescale.plots imports it: after the headless backend choice

#: Resolution of the embedded figures.
REPORT_DPI = 96
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ content blocks


@dataclass(frozen=True)
class _Heading:
    text: str
    anchor: str = ""
    level: int = 2


@dataclass(frozen=True)
class _Para:
    text: str
    cls: str = ""


@dataclass(frozen=True)
class _List:
    items: tuple[str, ...]
    cls: str = ""


@dataclass(frozen=True)
class _Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()
    collapsed: str = ""  # when set, the table is folded under this summary line
    cls: str = ""


@dataclass(frozen=True)
class _Pre:
    text: str
    summary: str = ""


@dataclass(frozen=True)
class _Answer:
    """The summary box at the top: the answer, what it was fitted from, and the reasons to doubt it."""

    headline: str
    fitted: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Figure:
    key: str
    title: str
    caption: str
    png: bytes


# ------------------------------------------------------------------ progress


class _Progress:
    """One-line progress on stderr, only when stderr is a terminal (quiet in logs and tests)."""

    def __init__(self, total: int, label: str, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total, self.label, self.i, self.width = total, label, 0, 0

    def step(self, what: str) -> None:
        self.i += 1
        if self.enabled:
            text = f"\r{self.label} [{min(self.i, self.total)}/{self.total}] {what}"
            self.width = max(self.width, len(text))
            self.stream.write(text.ljust(self.width))
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


# ------------------------------------------------------------------ formatting


def _num(x: Any, digits: int = 4) -> str:
    """A number in ``digits`` significant figures; missing or NaN as ``-``."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "-" if x is None else str(x)
    if not math.isfinite(v):
        return "-"
    return f"{v:.{digits}g}"


def _fixed(x: Any, decimals: int = 4) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "-"
    return f"{v:.{decimals}f}" if math.isfinite(v) else "-"


def _interval(lo: Any, hi: Any, decimals: int = 4) -> str:
    return f"{_fixed(lo, decimals)} - {_fixed(hi, decimals)}"


def _short(text: Any, limit: int = 80) -> str:
    s = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG image from its header.

    Raises
    ------
    BayescaleError
        If ``data`` is not a PNG.

    Examples
    --------
    >>> png_size(b"\\x89PNG\\r\\n\\x1a\\n" + b"\\x00\\x00\\x00\\rIHDR" + (640).to_bytes(4, "big") + (480).to_bytes(4, "big"))
    (640, 480)
    """
    if len(data) < 24 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise BayescaleError("not a PNG image (bad signature or header)")
    return struct.unpack(">II", data[16:24])


def figure_png(fig: Any, *, dpi: int = REPORT_DPI) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed afterwards."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    finally:
        plt.close(fig)
    return buf.getvalue()


__all__ = ["PNG_SIGNATURE", "REPORT_DPI", "figure_png", "png_size"]
