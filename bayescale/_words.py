"""Names in prose: ``7B and 13B``, not ``['7B', '13B']``.

Messages, verdicts and report text name the user's things (run ids, option names, columns). A
Python repr of a list reads as code, and a repr of a string with an invisible character shows an
escape (``'\\u202e'``) that means nothing to most readers. Here are the two ways bayescale writes
names into sentences: :func:`join_names` for a list, :func:`quote` for one name that must stand
out from the words around it (an error naming the user's item). And one way bayescale reads
values the user typed as text: :func:`parse_pairs` (``"N=7e9,D=1.4e12"``), for the CLI's ``--at``
and the API's points alike.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable

from .errors import BayescaleError

#: At most this many names are written out; the rest are counted ("and 7 more").
MAX_NAMED = 8


def _visible(text: str) -> str:
    """``text`` with control, format and other invisible characters written as ``<U+202E>``: a
    right-to-left override or a NUL in a run id must not rearrange or hide the message around it."""
    out = []
    for ch in text:
        if unicodedata.category(ch)[0] in "CZ" and ch != " ":
            out.append(f"<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    return "".join(out)


def quote(name: object) -> str:
    """One name in single quotes, invisible characters made visible.

    Examples
    --------
    >>> quote("p03")
    "'p03'"
    >>> quote("p\\u202e03")
    "'p<U+202E>03'"
    """
    return f"'{_visible(str(name))}'"


def count(n: int, noun: str) -> str:
    """``"1 run"``, ``"29 runs"``: a number with its noun (an ``s`` added past one)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def join_names(names: Iterable[object], conj: str = "and", *, quoted: bool = False, limit: int = MAX_NAMED) -> str:
    """Names as words: ``a``, ``a and b``, ``a, b and c``; past ``limit`` names, ``and N more``.

    Parameters
    ----------
    names : iterable
        Anything with a ``str``; invisible characters are made visible as in :func:`quote`.
    conj : str
        The word before the last name (``"and"``, ``"or"``).
    quoted : bool
        Quote each name (for names that could be mistaken for words, such as column names).
    limit : int
        Write at most this many names.

    Examples
    --------
    >>> join_names(["7B", "13B"])
    '7B and 13B'
    >>> join_names(["N", "D", "C"], "or", quoted=True)
    "'N', 'D' or 'C'"
    >>> join_names([f"r{i}" for i in range(10)], limit=3)
    'r0, r1, r2 and 7 more'
    """
    items = [quote(n) if quoted else _visible(str(n)) for n in names]
    if not items:
        return "none"
    if len(items) > limit:
        return f"{', '.join(items[:limit])} and {len(items) - limit} more"
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {conj} {items[-1]}"


__all__ = ["MAX_NAMED", "join_names", "quote"]


def restepped_words(diagnostics: dict) -> str:
    """The chains a NUTS fit re-stepped (stuck after warmup; :func:`bayescale._engine.nuts`), as a clause to
    append to a line of diagnostics; ``""`` when none was."""
    stuck = sorted({c for chains in diagnostics.get("nuts_restepped", []) for c in chains})
    if not stuck:
        return ""
    return (
        f"; chain {join_names([str(c) for c in stuck])} stuck after warmup and re-stepped, its earlier draws "
        f"dropped ({diagnostics.get('nuts_dropped_divergences', 0)} divergences among them)"
    )


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse_pairs(text: str, where: str) -> dict[str, float]:
    """``"N=7e9,D=1.4e12"`` as ``{"N": 7e9, "D": 1.4e12}``; ``where`` (the flag or argument and the
    text as the user gave them) heads the :class:`~bayescale.errors.BayescaleError` raised for text
    that is not comma-separated ``NAME=NUMBER`` pairs, a name given twice, or a number not finite and > 0."""
    point: dict[str, float] = {}
    if not text.strip():
        raise BayescaleError(f"{where}: empty; expected NAME=VALUE pairs separated by commas, e.g. N=7e9,D=1.4e12")
    for item in text.split(","):
        name, eq, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not _NAME.match(name) or not value:
            raise BayescaleError(f"{where}: {item.strip()!r} is not NAME=VALUE; expected e.g. N=7e9,D=1.4e12")
        if name in point:
            raise BayescaleError(f"{where}: {name} is given twice")
        try:
            number = float(value)
        except ValueError:
            raise BayescaleError(f"{where}: {name}={value!r} is not a number") from None
        if not (math.isfinite(number) and number > 0):
            raise BayescaleError(f"{where}: {name} must be a finite number > 0, got {value}")
        point[name] = number
    return point
