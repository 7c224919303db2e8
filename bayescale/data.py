"""The runs table: one row per training run, loaded, validated and appended safely.

A runs table has the columns ``N`` (parameters), ``D`` (training tokens) and/or ``C`` (training
FLOPs) and ``loss`` (final loss, nats/token), plus the optional columns ``run_id``, ``seed``,
``source``, ``arch``, ``notes`` and ``U`` (unique training tokens of a repeated-data run, 0 < U <= D);
any other column is kept as it is. :func:`load_runs` validates a table and derives the missing one
of ``C`` and ``D`` from the FLOP convention (``C = 6*N*D``); :func:`append_run` adds rows to a CSV
file so that many processes may append at once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayescale._io import atomic_write, locked, real_target, refuse_special
from bayescale._runs_input import column_hints, read_runs_csv
from bayescale._words import join_names, parse_pairs, quote
from bayescale.errors import BayescaleError, RunsTableError
from bayescale.laws import FALLBACK_COLUMNS

if TYPE_CHECKING:
    from bayescale.spec import ModelSpec

REQUIRED_COLUMNS = ("N", "loss")
"""Columns every runs table needs; it also needs ``D`` or ``C`` (the other is derived)."""
OPTIONAL_COLUMNS = ("run_id", "seed", "source", "arch", "notes", "U", "trunk_id", "C_branch")
"""Optional columns with a meaning in bayescale; other extra columns are kept as they are."""
FLOPS_CONVENTIONS = ("6ND",)
"""Supported FLOP conventions: ``"6ND"`` means ``C = 6*N*D``."""

FLOPS_TOLERANCE = 2.0
"""A ``C`` given together with ``N`` and ``D`` must lie within this factor of ``6 N D``. Published
tables count FLOPs by other conventions (attention, embeddings), within about 30% of ``6 N D``; a C
further off is a typo or another quantity, and silently changes every answer that reads it."""
PLAUSIBLE = {"N": (1.0, 1e15), "D": (1.0, 1e17), "C": (6.0, 6e32), "loss": (0.0, 20.0)}
"""Plausible ranges (low, high) of a language model's ``N`` (parameters), ``D`` (tokens), ``C``
(FLOPs) and ``loss`` (nats/token): far beyond any model trained or planned (the largest today are
~1e12 parameters on ~1e14 tokens; a loss above 20 nats is over e^20 perplexity). Values outside are
rejected as typos or unit mistakes."""

_NUMERIC = ("N", "D", "C", "loss")
_LEAD = ("run_id", "N", "D", "C", "loss")
_MAX_SHOWN = 10

__all__ = [
    "FLOPS_CONVENTIONS",
    "FLOPS_TOLERANCE",
    "PLAUSIBLE",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "append_run",
    "law_inputs",
    "load_runs",
    "points_frame",
    "runs_hash",
    "save_runs",
]


def _fail(message: str) -> RunsTableError:
    return RunsTableError(f"runs table: {message}")


def _shown(values: list) -> str:
    """Values as words (``'p02' and 'p04'``, ``0, 3 and 5``: text quoted, numbers not), cut to the first few."""
    return join_names((quote(v) if isinstance(v, str) else v for v in values), limit=_MAX_SHOWN)


def _rows(mask: np.ndarray, ids: pd.Series | None) -> str:
    """Name the rows where ``mask`` is true, by run id or else by position."""
    if ids is not None:
        return f"rows with run_id {_shown(list(ids[mask]))}"
    return f"rows at 0-based positions {_shown(np.flatnonzero(mask).tolist())}"


def _validate_flops(flops: str) -> None:
    if flops not in FLOPS_CONVENTIONS:
        raise _fail(
            f"flops={flops!r} is not a supported FLOP convention; allowed: {join_names(FLOPS_CONVENTIONS, 'or', quoted=True)}"
        )


def _blank(values: pd.Series) -> np.ndarray:
    """True where a cell is missing: NaN/None or a blank string."""
    missing = values.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(values):
        return missing
    return missing | values.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)


def load_runs(source: str | os.PathLike | pd.DataFrame, *, flops: str = "6ND") -> pd.DataFrame:
    """Load and validate a runs table, deriving ``C`` or ``D`` where missing.

    Parameters
    ----------
    source : str, os.PathLike or pandas.DataFrame
        Path to a CSV file, or a table (copied, never modified).
    flops : {"6ND"}, default "6ND"
        FLOP convention used to derive ``C = 6*N*D`` or ``D = C/(6*N)``.

    Returns
    -------
    pandas.DataFrame
        Columns ``run_id, N, D, C, loss``, then the other columns as given, then
        ``derived`` (``""``, ``"C=6ND"`` or ``"D=C/(6N)"`` per row). ``N, D, C,
        loss`` are float64, ``run_id`` is str (``run000, run001, ...`` when the
        source has none) and ``attrs["flops_convention"]`` records ``flops``.
        A ``derived`` column in the source is recomputed.

    Raises
    ------
    RunsTableError
        If the file is missing, the table is empty, a required column is
        missing, a value of N, D, C or loss is non-numeric, NaN, infinite or
        <= 0, a run id is empty or duplicated, or ``flops`` is unknown. The
        message names the column and the offending rows by run id.

    Examples
    --------
    >>> runs = load_runs(pd.DataFrame({"N": [1e8, 4e8], "D": [2e9, 8e9], "loss": [3.1, 2.8]}))
    >>> runs[["run_id", "C", "derived"]]
       run_id             C derived
    0  run000  1.200000e+18   C=6ND
    1  run001  1.920000e+19   C=6ND
    """
    _validate_flops(flops)
    df = _read_source(source)
    _validate_columns(df)
    ids = _run_ids(df)
    for col in _NUMERIC:
        if col in df.columns:
            df[col] = _numeric_column(df[col], col, ids)
    for message in _implausible(df, ids):  # as given, then as derived
        raise _fail(message)
    derive_c, derive_d = _derive_flops(df, ids)
    for message in _implausible(df, ids):
        raise _fail(message + " (derived by C = 6 N D)")
    _validate_unique_tokens(df, ids)
    # Ids this module made from row positions stay "generated" through a reload of its own table.
    generated = ids is None or (isinstance(source, pd.DataFrame) and source.attrs.get("ids_generated") is True)
    if ids is None:
        width = max(3, len(str(len(df))))
        ids = pd.Series([f"run{i:0{width}d}" for i in range(len(df))], dtype=object)
    df["run_id"] = ids.to_numpy(dtype=object)
    df["derived"] = np.where(derive_c, "C=6ND", np.where(derive_d, "D=C/(6N)", ""))
    df["derived"] = df["derived"].astype(object)
    others = [c for c in df.columns if c not in _LEAD and c != "derived"]
    df = df[[*_LEAD, *others, "derived"]]
    df.attrs["flops_convention"] = flops
    df.attrs["ids_generated"] = generated  # from row positions: they name no run outside this table
    return df


def _read_source(source: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """A copy of the table (or the CSV read), without a stale ``derived`` column; never empty."""
    if isinstance(source, pd.DataFrame):
        df = source.copy()
    elif isinstance(source, (str, os.PathLike)):
        df = read_runs_csv(source)
    else:
        raise _fail(f"source must be a CSV path or a pandas DataFrame, not {type(source).__name__}")
    df = df.reset_index(drop=True).drop(columns="derived", errors="ignore")
    if len(df) == 0:
        if len(df.columns):  # a header that is no runs table's (a JSON file read as CSV): say that, not "empty"
            _validate_columns(df)
        raise _fail("the table is empty; it needs at least one run (row)")
    return df


def _validate_columns(df: pd.DataFrame) -> None:
    if df.columns.duplicated().any():
        raise _fail(f"column names must be unique; {_shown(list(df.columns[df.columns.duplicated()]))} repeat")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if "D" not in df.columns and "C" not in df.columns:
        missing.append("D or C")
    if missing:
        raise _fail(
            f"missing required column(s) {join_names(missing, quoted=True)}; columns present: "
            f"{join_names(df.columns, quoted=True, limit=20)}; "
            "required: 'N', 'loss' and at least one of 'D' or 'C' (the other is derived)"
            + column_hints(list(df.columns), missing)
        )


def _run_ids(df: pd.DataFrame) -> pd.Series | None:
    """The run ids as strings (checked non-empty and unique), or None when the table has none."""
    if "run_id" not in df.columns:
        return None
    empty = _blank(df["run_id"])
    if empty.any():
        raise _fail(f"column 'run_id' must not be empty; {_rows(empty, None)} are")
    ids = df["run_id"].map(_id_text).astype(str)
    dup = ids.map(id_key).duplicated(keep=False).to_numpy()
    if dup.any():
        raise _fail(f"column 'run_id' must be unique; run ids {_shown(sorted(set(ids[dup])))} appear more than once")
    return ids


def _numeric_column(raw: pd.Series, col: str, ids: pd.Series | None) -> pd.Series:
    """A numeric column as float64: finite, > 0, and present where the column is required."""
    blank = _blank(raw)
    num = pd.to_numeric(raw.mask(blank), errors="coerce").astype("float64")
    values = num.to_numpy()
    bad = ~blank & np.isnan(values)
    if bad.any():
        raise _fail(f"column {col!r} must be numeric; {_rows(bad, ids)} are not (values {_shown(list(raw[bad]))})")
    if np.isinf(values).any():
        raise _fail(f"column {col!r} must be finite, not +-inf; {_rows(np.isinf(values), ids)} are not")
    if col in REQUIRED_COLUMNS and blank.any():
        raise _fail(f"column {col!r} must be a number, not empty or NaN; {_rows(blank, ids)} are empty or NaN")
    if (values <= 0).any():
        raise _fail(f"column {col!r} must be > 0; {_rows(values <= 0, ids)} are not")
    return num


def _derive_flops(df: pd.DataFrame, ids: pd.Series | None) -> tuple[np.ndarray, np.ndarray]:
    """Fill the missing one of D and C by ``C = 6 N D`` (in place); the rows where C and D were derived."""
    for col in ("D", "C"):
        if col not in df.columns:
            df[col] = np.nan
    derive_c = df["C"].isna().to_numpy() & df["D"].notna().to_numpy()
    derive_d = df["D"].isna().to_numpy() & df["C"].notna().to_numpy()
    neither = df["D"].isna().to_numpy() & df["C"].isna().to_numpy()
    if neither.any():
        raise _fail(f"columns 'D' and 'C' are both empty for {_rows(neither, ids)}; each run needs D or C")
    with np.errstate(over="ignore"):
        df.loc[derive_c, "C"] = 6.0 * df.loc[derive_c, "N"] * df.loc[derive_c, "D"]
        df.loc[derive_d, "D"] = df.loc[derive_d, "C"] / (6.0 * df.loc[derive_d, "N"])
    for col in ("D", "C"):
        overflow = ~np.isfinite(df[col].to_numpy()) | (df[col].to_numpy() <= 0)
        if overflow.any():
            raise _fail(f"derived column {col!r} must be finite and > 0; {_rows(overflow, ids)} are not")
    return derive_c, derive_d


def _implausible(frame: pd.DataFrame, ids: pd.Series | None, *, what: str = "column") -> Iterator[str]:
    """Messages for values of N, D, C and loss outside :data:`PLAUSIBLE`, and for rows whose given C
    is further than :data:`FLOPS_TOLERANCE` from ``6 N D``; each names the rows."""
    if all(c in frame for c in ("N", "D", "C")):
        n, d, c = (frame[k].to_numpy(dtype=float) for k in ("N", "D", "C"))
        sized = (
            (n >= PLAUSIBLE["N"][0]) & (n <= PLAUSIBLE["N"][1]) & (d >= PLAUSIBLE["D"][0]) & (d <= PLAUSIBLE["D"][1])
        )
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ratio = c / (6.0 * n * d)
        off = sized & np.isfinite(ratio) & ((ratio > FLOPS_TOLERANCE) | (ratio < 1.0 / FLOPS_TOLERANCE))
        if off.any():
            yield (
                f"{what} 'C' is not consistent with C = 6 N D for {_rows(off, ids)}: C / (6 N D) = "
                f"{_shown([float(f'{r:.3g}') for r in ratio[off]])}, allowed within a factor of {FLOPS_TOLERANCE:g} "
                "(FLOP conventions differ by ~30%); give two of N, D and C and the third is derived"
            )
    for col, (lo, hi) in PLAUSIBLE.items():
        if col not in frame:
            continue
        values = frame[col].to_numpy(dtype=float)
        out = np.isfinite(values) & ((values < lo) | (values > hi)) if lo > 0 else np.isfinite(values) & (values > hi)
        if out.any():
            bounds = f"in [{lo:g}, {hi:g}]" if lo > 0 else f"<= {hi:g}"
            small = col in ("N", "D", "C") and lo > 0 and bool(np.all(values[out] < lo))
            yield (
                f"{what} {col!r} must be {bounds} (a plausible language model); {_rows(out, ids)} are not "
                f"(values {_shown([float(v) for v in values[out]])})"
                + (f"; is {col} in millions or billions? It is a count" if small else "")
            )


def _validate_unique_tokens(df: pd.DataFrame, ids: pd.Series | None) -> None:
    """Make the optional column ``U`` (unique training tokens of a repeated-data run), where present,
    numeric: each cell blank (no repetition) or a finite number in (0, D]."""
    if "U" not in df.columns:
        return
    raw = df["U"]
    blank = _blank(raw)
    num = pd.to_numeric(raw.mask(blank), errors="coerce").astype("float64")
    values = num.to_numpy()
    bad = ~blank & ~np.isfinite(values)
    if bad.any():
        raise _fail(f"column 'U' (unique tokens) must be a finite number or empty; {_rows(bad, ids)} are not")
    out = ~blank & ((values <= 0) | (values > df["D"].to_numpy()))
    if out.any():
        raise _fail(f"column 'U' (unique tokens) must be > 0 and <= D; {_rows(out, ids)} are not")
    df["U"] = num


def _write_atomic(df: pd.DataFrame, path: str | os.PathLike, validate: str | None = None) -> pd.DataFrame | None:
    """Write ``df`` to a temporary file beside ``path``, fsync it, and rename it onto ``path``.

    With ``validate`` (a FLOP convention) the temporary file is first loaded with
    :func:`load_runs`, so a table that would not load never replaces ``path``.
    """

    def write(tmp: str) -> pd.DataFrame | None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            df.to_csv(fh, index=False, lineterminator="\n")
        return load_runs(tmp, flops=validate) if validate else None

    return atomic_write(path, write)


def save_runs(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a table to CSV atomically: readers see the old file or the new one, never a mix.

    Parameters
    ----------
    df : pandas.DataFrame
        The table to write (without its index).
    path : str or os.PathLike
        Destination CSV file; its sidecar ``path + ".lock"`` is held while writing.

    Returns
    -------
    None

    Raises
    ------
    RunsTableError
        If ``df`` is not a DataFrame.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.csv"
    >>> save_runs(pd.DataFrame({"N": [1e8], "D": [2e9], "loss": [3.1]}), path)
    >>> print(path.read_text(), end="")
    N,D,loss
    100000000.0,2000000000.0,3.1
    """
    if not isinstance(df, pd.DataFrame):
        raise _fail(f"save_runs needs a pandas DataFrame, not {type(df).__name__}")
    with locked(path):
        _write_atomic(df, path)


def _as_rows(row: Mapping | pd.DataFrame | list) -> pd.DataFrame:
    if isinstance(row, pd.DataFrame):
        new = row.reset_index(drop=True)
    elif isinstance(row, Mapping):
        new = pd.DataFrame([dict(row)])
    elif isinstance(row, (list, tuple)) and all(isinstance(r, Mapping) for r in row):
        new = pd.DataFrame([dict(r) for r in row])
    else:
        raise _fail(f"row must be a mapping, a list of mappings or a DataFrame, not {type(row).__name__}")
    if len(new) == 0:
        raise _fail("no rows to append; row is empty")
    new = new.astype(object)
    if "run_id" in new.columns:
        new["run_id"] = new["run_id"].map(_id_text)
    return new


def _id_text(value: Any) -> Any:
    """A run id as the CSV will hold it: a whole number given as a float (pandas turns an integer column
    with a blank into floats) is written as the integer, so run 7 resumed as 7.0 is still run "7"."""
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return value


def id_key(value: Any) -> str:
    """What makes two run ids the same run: their text, with a whole number's ``.0`` dropped (``"7.0"``,
    which earlier versions wrote for a float id, is run ``"7"``)."""
    text = str(_id_text(value))
    return text[: text.index(".")] if re.fullmatch(r"-?\d+\.0+", text) else text


def fill_ids(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Give run ids to new rows lacking one, ``run<k>`` past every existing ``run<number>``."""
    if "run_id" not in new.columns:
        new = new.assign(run_id=np.nan)
    used = {str(v) for v in (*old.get("run_id", []), *new["run_id"]) if not pd.isna(v)}
    width = max(3, len(str(len(old) + len(new))))
    nums = [int(m.group(1)) for v in used if (m := re.fullmatch(r"run(\d+)", v))]
    k = max(nums, default=len(old) - 1) + 1
    ids = list(new["run_id"])
    for i in np.flatnonzero(_blank(new["run_id"])):
        while f"run{k:0{width}d}" in used:
            k += 1
        ids[i] = f"run{k:0{width}d}"
        used.add(ids[i])
    return new.assign(run_id=pd.Series(ids, index=new.index, dtype=object))


def append_run(
    path: str | os.PathLike, row: Mapping | pd.DataFrame | list, *, flops: str = "6ND", if_exists: str = "error"
) -> pd.DataFrame:
    """Append one or more runs to a runs CSV, safely with many processes appending at once.

    Under an exclusive lock on ``path + ".lock"`` the file is read as written, the
    new rows are added (columns are the union; missing values are left empty),
    the combined table is validated with :func:`load_runs`, and it is written to a
    temporary file that atomically replaces ``path``. A rejected row leaves the
    file unchanged, and readers never see a half-written file.

    Parameters
    ----------
    path : str or os.PathLike
        The runs CSV; created with a header if absent.
    row : mapping, list of mappings or pandas.DataFrame
        The run(s) to append, with the user's raw values (``C`` is not filled in).
        A row without ``run_id`` gets a fresh, unique ``run<number>`` id when the
        file or the other new rows have run ids. If the file has no ``run_id``
        column but new rows do, its rows get the ids :func:`load_runs` gave them.
    flops : {"6ND"}, default "6ND"
        FLOP convention used to validate the table.
    if_exists : {"error", "skip"}, default "error"
        What to do with a new row whose ``run_id`` is already in the file:
        ``"error"`` rejects the whole append, ``"skip"`` leaves the recorded row
        and drops the new one (the check and the write happen under one lock, so
        a run id never yields two rows, whoever appends it).

    Returns
    -------
    pandas.DataFrame
        The whole table after the append, as :func:`load_runs` returns it.

    Raises
    ------
    RunsTableError
        If the combined table is invalid (duplicate run id, bad value, missing
        column) or ``row`` is empty or of the wrong type; the file is unchanged.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.csv"
    >>> _ = append_run(path, {"run_id": "a", "N": 1e8, "D": 2e9, "loss": 3.1})
    >>> runs = append_run(path, {"N": 4e8, "C": 1.92e19, "loss": 2.8})
    >>> runs[["run_id", "D", "derived"]]
       run_id             D   derived
    0       a  2.000000e+09     C=6ND
    1  run001  8.000000e+09  D=C/(6N)
    """
    _validate_flops(flops)
    if if_exists not in ("error", "skip"):
        raise _fail(f"if_exists={if_exists!r} is not allowed; allowed: 'error', 'skip'")
    new = _as_rows(row)
    refuse_special(real_target(path))  # before reading it: reading a pipe waits for a writer
    with locked(path):
        # read as load_runs reads it (a row with extra fields refused, not shifted), every cell kept as text
        try:
            old = read_runs_csv(path, as_text=True) if os.path.exists(path) else pd.DataFrame()
        except RunsTableError as e:
            raise RunsTableError(f"{e}; nothing was written") from None
        check_runs_header(old, path)
        if if_exists == "skip" and "run_id" in old.columns and "run_id" in new.columns:
            new = new[~new["run_id"].map(id_key).isin(set(old["run_id"].map(id_key)))]
            if new.empty:
                return load_runs(path, flops=flops)
        if "run_id" in old.columns or "run_id" in new.columns:
            if len(old) and "run_id" not in old.columns:  # give old rows the ids load_runs gave them
                width = max(3, len(str(len(old))))
                old.insert(0, "run_id", [f"run{i:0{width}d}" for i in range(len(old))])
            new = fill_ids(old, new)
        if len(old.columns):
            combined = pd.concat([old.astype(object), new], ignore_index=True)
        else:
            combined = new[[*(c for c in _LEAD if c in new.columns), *(c for c in new.columns if c not in _LEAD)]]
        return _write_atomic(combined, path, validate=flops)


def check_runs_header(old: pd.DataFrame, path: str | os.PathLike) -> None:
    """A non-empty file whose header is not a runs table's (a JSON file, another delimiter) is never
    rewritten as one: its content would become column names."""
    try:
        if len(old.columns):
            _validate_columns(old)
    except RunsTableError as e:
        raise _fail(
            f"{os.fspath(path)!r} is not a runs table; nothing was written: {str(e)[len('runs table: ') :]}"
        ) from None


def runs_hash(df: pd.DataFrame) -> str:
    """SHA-256 of the canonical CSV of ``run_id, N, D, C, loss``, for provenance.

    Rows are sorted by run id and numbers written with ``repr`` precision, so the
    hash depends only on the runs, not on row order, extra columns or formatting.

    Parameters
    ----------
    df : pandas.DataFrame
        A runs table (normally from :func:`load_runs`; it is validated again).

    Returns
    -------
    str
        64 hexadecimal digits.

    Raises
    ------
    RunsTableError
        If ``df`` is not a valid runs table.

    Examples
    --------
    >>> runs = load_runs(pd.DataFrame({"N": [1e8], "D": [2e9], "loss": [3.1]}))
    >>> len(runs_hash(runs)) == 64 and runs_hash(runs) == runs_hash(runs.iloc[::-1])
    True
    """
    runs = load_runs(df, flops=df.attrs.get("flops_convention", "6ND") if isinstance(df, pd.DataFrame) else "6ND")
    runs = runs.sort_values("run_id", kind="mergesort")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_LEAD)
    for rid, *nums in runs[list(_LEAD)].itertuples(index=False):
        writer.writerow([rid, *(repr(float(x)) for x in nums)])
    return hashlib.sha256(buf.getvalue().encode("utf-8")).hexdigest()


# ------------------------------------------------------------ points and law inputs


def points_frame(points: Any) -> pd.DataFrame:
    """Prediction targets as a DataFrame with N, D and C filled in by ``C = 6 N D``.

    Raises :class:`~bayescale.errors.BayescaleError` naming the points whose N, D or C (given or
    derived) lies outside :data:`PLAUSIBLE`, or whose given C is further than
    :data:`FLOPS_TOLERANCE` from ``6 N D`` (give two of the three and the third is derived)."""
    if isinstance(points, str):  # "N=7e9,D=1.4e12", as the CLI's --at
        points = parse_pairs(points, f"points {points!r}")
    if isinstance(points, pd.DataFrame):
        frame = points.copy()
    elif isinstance(points, Mapping):
        arrays = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in points.items()}
        try:
            shape = np.broadcast_shapes(*(a.shape for a in arrays.values()))
        except ValueError as e:
            raise BayescaleError(f"points: inputs do not broadcast together: {e}") from None
        frame = pd.DataFrame({k: np.broadcast_to(a, shape).reshape(-1) for k, a in arrays.items()})
    elif isinstance(points, Sequence) and not isinstance(points, str):
        frame = pd.DataFrame(list(points))
    else:
        raise BayescaleError(
            f"points must be a mapping, a DataFrame, a list of mappings or text like 'N=7e9,D=1.4e12', "
            f"got {type(points).__name__}"
        )
    if len(frame) == 0:
        raise BayescaleError("points: no points given")
    # Fill each missing N, D or C (a whole column or single cells) from the other two by C = 6 N D.
    given = [col for col in ("N", "D", "C") if col in frame]
    for col in ("N", "D", "C"):
        if col not in frame:
            frame[col] = np.nan
    frame[["N", "D", "C"]] = frame[["N", "D", "C"]].astype(float)
    frame = frame.reset_index(drop=True)
    for message in _implausible(frame, None, what="points:"):  # as given, before C = 6 N D fills the gaps
        raise BayescaleError(_pointwise(message, len(frame)))
    n, d, c = frame["N"], frame["D"], frame["C"]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        frame["C"] = c.fillna(6.0 * n * d)
        frame["D"] = d.fillna(frame["C"] / (6.0 * n))
        frame["N"] = n.fillna(frame["C"] / (6.0 * frame["D"]))
    for message in _implausible(frame, None, what="points:"):  # the derived ones
        raise BayescaleError(_pointwise(message, len(frame)) + " (derived by C = 6 N D)")
    for col in given:  # a value given as NaN that the other two could not fill: never dropped silently
        if (blank := frame[col].isna().to_numpy()).any():
            rows = f"rows at 0-based positions {_shown(np.flatnonzero(blank).tolist())}"
            message = f"points: {col!r} is NaN for {rows}; give a number, or two of N, D and C (C = 6 N D)"
            raise BayescaleError(_pointwise(message, len(frame)))
    try:  # unique tokens as in a runs table: blank (one epoch) or in (0, D]
        _validate_unique_tokens(frame, None)
    except RunsTableError as e:
        raise BayescaleError(_pointwise(str(e).replace("runs table: ", "points: "), len(frame))) from None
    return frame.dropna(axis=1, how="all")


def _pointwise(message: str, n: int) -> str:
    """A runs-table message about points: "points at positions [...]", or for a single point no positions."""
    if n == 1:
        return message.replace(" for rows at 0-based positions 0", "").replace(
            "; rows at 0-based positions 0 are not", "; the point is not"
        )
    return message.replace("rows at", "points at")


def law_inputs(spec: ModelSpec, frame: pd.DataFrame, dtype: Any = np.float64) -> dict[str, np.ndarray]:
    """The log of each law input (``spec.law.inputs``, read from the column ``spec.inputs`` maps it to),
    one value per row of ``frame``; every value must be finite and > 0.

    An optional column (:data:`bayescale.laws.FALLBACK_COLUMNS`) that is absent, or blank in a
    row, takes its stand-in's value there: unique tokens ``U`` missing means the run saw each
    token once, ``U = D`` (one epoch; the data-constrained law is then Chinchilla's).
    """
    out = {}
    for name in spec.law.inputs:
        col = spec.inputs[name]
        standin = FALLBACK_COLUMNS.get(col)
        if col not in frame.columns and standin is None:
            cased = [c for c in frame.columns if str(c).lower() == col.lower()]
            hint = f" (column names are case-sensitive: {cased[0]!r} is not {col!r})" if cased else ""
            if not cased and col in ("N", "D", "C"):
                hint = f"; give {col}, or two of N, D and C (C = 6 N D gives the third)"
            raise RunsTableError(
                f"law {spec.law.name!r} needs column {col!r} (input {name!r}); the table has {list(frame.columns)}{hint}"
            )
        values = _column_or_standin(frame, col, standin)
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            ids = list(frame["run_id"][bad]) if "run_id" in frame else list(np.flatnonzero(bad))
            raise RunsTableError(
                f"column {col!r} must be finite and > 0 for law input {name!r}; rows {ids[:10]} are not"
            )
        out[name] = np.log(values).astype(dtype)
    return out


def _column_or_standin(frame: pd.DataFrame, col: str, standin: str | None) -> np.ndarray:
    """Column ``col`` as float64, its absent or blank cells filled from column ``standin`` (when given)."""
    values = (
        pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64, copy=True)
        if col in frame.columns
        else np.full(len(frame), np.nan)
    )
    if standin is not None and standin in frame.columns:
        blank = np.isnan(values)
        values[blank] = pd.to_numeric(frame[standin], errors="coerce").to_numpy(dtype=np.float64)[blank]
    return values
