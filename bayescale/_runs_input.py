"""What a user's runs table goes through besides validation: its CSV file read, hints for a header
that does not name the columns, and warnings about a valid table that would mislead a fit.

:mod:`bayescale.data` validates what is read here. This module knows the file (how it is split into
fields, why a header a user wrote may not match: another separator, another name) and the rows (a
copied row, several learning-rate schedules), not the law.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import re
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayescale._words import join_names, quote
from bayescale.errors import BayescaleError, RunsTableError, RunsTableWarning, user_stacklevel

#: Column names users write for the runs table's columns (compared in lower case, stripped).
SYNONYMS = {
    "N": ("params", "parameters", "n_params", "num_params", "model_size", "size"),
    "D": ("tokens", "n_tokens", "num_tokens", "data", "train_tokens", "dataset_size"),
    "C": ("flops", "compute", "train_flops"),
    "loss": ("val_loss", "eval_loss", "train_loss", "validation_loss", "test_loss", "final_loss"),
}


def _fail(message: str) -> RunsTableError:
    return RunsTableError(f"runs table: {message}")


def read_runs_csv(path: str | os.PathLike, as_text: bool = False) -> pd.DataFrame:
    """Read a runs CSV; run ids are read verbatim (``"NA"`` stays a string), and with ``as_text`` every
    cell (blank as ""), as :func:`bayescale.append_run` rewrites the rows it keeps.

    The file is read once and parsed twice, so a concurrent replace cannot mix versions. A row with
    more fields than the header is refused (pandas would take the first column as an index and shift
    every column by one); empty fields past the header (a trailing comma) are dropped.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        text = raw.decode("utf-8-sig")
        names, skip = _header_and_check(text, os.fspath(path))
        text_cells = {"dtype": str, "keep_default_na": False} if as_text else {}
        df = pd.read_csv(io.BytesIO(raw), index_col=False, skiprows=skip, **text_cells)
        if "run_id" in df.columns and not as_text:
            ids = pd.read_csv(
                io.BytesIO(raw), index_col=False, skiprows=skip, usecols=["run_id"], dtype=str, keep_default_na=False
            )
            df["run_id"] = ids["run_id"].to_numpy(dtype=object)
    except FileNotFoundError:
        raise _fail(f"file not found: {os.fspath(path)!r}") from None
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, csv.Error) as exc:
        raise _fail(f"could not read CSV {os.fspath(path)!r}: {exc}") from exc
    return df if names else pd.DataFrame()


def _header_and_check(text: str, where: str) -> tuple[list[str], int]:
    """The header's names and how many lines before it to skip (blank, or separators only, as a
    spreadsheet writes them), after refusing a repeated name, a file separated by another character
    and rows with extra non-empty fields."""
    records = enumerate(csv.reader(io.StringIO(text, newline="")), start=1)  # newline="": old Mac files too
    rows = ((i, row) for i, row in records if any(f.strip() for f in row))
    first, header = next(rows, (1, []))
    names = [n.strip() for n in header]
    twice = sorted({n for n in names if n and names.count(n) > 1})
    if twice:  # pandas would keep the second as "loss.1": which one is the loss?
        raise _fail(f"{where!r}: column {join_names(twice, quoted=True)} appears more than once in the header")
    other = _separator_hint(names)
    if other:  # before the field count: a decimal comma would read as an extra field
        raise _fail(f"{where!r}: the header {quote(names[0])} is one column{other}")
    longer = [i for i, row in rows if len(row) > len(names) and any(f.strip() for f in row[len(names) :])]
    if longer:
        lines = join_names(longer[:5]) + (f" (and {len(longer) - 5} more)" if len(longer) > 5 else "")
        raise _fail(
            f"{where!r}: {'line' if len(longer) == 1 else 'lines'} {lines} {'has' if len(longer) == 1 else 'have'} more fields than the header's "
            f"{len(names)} ({join_names(names, quoted=True)}); a value without a column would shift the others: "
            "name the extra column in the header, or remove the extra values"
        )
    return names, first - 1


def column_hints(present: Sequence[object], missing: Sequence[str]) -> str:
    """Why the header may not name ``missing`` columns, in words ("" when nothing looks close):
    one column holding several names (another separator), or a name close to a required one."""
    names = [str(c) for c in present]
    if names and names[0].lstrip().startswith(("{", "[")):  # JSON read as CSV: its keys and values became names
        return "; the file looks like JSON, not CSV: a runs table is comma-separated text, a header line (run_id,N,D,loss) and one row per run"
    other = _separator_hint(names)
    if other:
        return other
    hints = []
    for want in (m for c in missing for m in c.split(" or ")):
        close = _close_names(want, names)
        if close:
            hints.append(f"{join_names(close, 'or', quoted=True)} for {want!r}")
    return f"; did you mean {join_names(hints)}? (rename the column)" if hints else ""


def _separator_hint(names: Sequence[str]) -> str:
    """For a header read as one column that holds another separator: what to do ("" otherwise)."""
    if len(names) != 1:
        return ""
    for sep, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
        if sep in names[0]:
            return (
                f"; the file looks separated by {label}, not commas: save it as comma-separated CSV (in pandas: "
                f"pd.read_csv(path, sep={sep!r}), with decimal=',' if its numbers have decimal commas, and pass the "
                "DataFrame)"
            )
    return ""


def _close_names(want: str, names: Sequence[str]) -> list[str]:
    """Present names that may mean ``want``: equal but for case or spaces, a known synonym, holding it as
    a word (``loss_c4_en``, ``val loss``), or close in spelling."""
    key = want.lower()
    out = [n for n in names if n.strip().lower() == key or n.strip().lower() in SYNONYMS.get(want, ())]
    if not out and len(key) > 2:  # a one-letter name is close to every other one-letter name
        out = [n for n in names if key in re.split(r"[^a-z0-9]+", n.lower())][:3]
    if not out and len(key) > 2:
        lowered = {n.strip().lower(): n for n in names}
        out = [lowered[m] for m in difflib.get_close_matches(key, list(lowered), n=2, cutoff=0.75)]
    return out


#: Columns a copied row may differ in: the ids (a copy may get its own) and what load_runs derives.
NOT_DISTINGUISHING = ("run_id", "derived", "C")


def warn_about_table(runs: pd.DataFrame, law_columns: Sequence[str] | None = None, law: str = "") -> None:
    """Warn (:class:`RunsTableWarning`) about what in a loaded table (as :func:`bayescale.data.load_runs`
    returns it) would mislead a fit of it: rows equal in every column but their ids (a copy counts twice
    and narrows the bands; two training runs rarely end at the same loss to every digit, and replicates
    differ in their seed), rows of several learning-rate schedules (a WSD cooldown's loss is not a
    cosine run's), tokens per parameter no training run has (N or D in other units), and repeated data
    (``U``) that the fitted law (``law``, reading ``law_columns``) does not read."""
    for message in table_notes(runs, law_columns, law):
        warnings.warn(f"runs table: {message}", RunsTableWarning, stacklevel=user_stacklevel())


def table_notes(
    runs: pd.DataFrame,
    law_columns: Sequence[str] | None = None,
    law: str = "",
    *,
    fitted: bool = True,
    alone: bool = True,
) -> list[str]:
    """What :func:`warn_about_table` warns about, as sentences (``check`` says them of new runs; copies and
    mixed schedules only where the rows will be ``fitted``; a constant loss only where they are fitted
    ``alone``, not joined to a fit's runs), the units first."""
    constant = _constant_loss(runs) if fitted and alone else []
    said = unit_notes(runs) + constant + (_copies_and_schedules(runs) if fitted else [])
    if law_columns is not None:
        said += _repeats_unread(runs, law_columns, law)
    return said


#: Tokens per parameter outside which a row is more likely N or D in other units (millions,
#: billions) than a training run: the published sweeps span about 0.2-10,000 (data-constrained
#: and over-trained small models included).
RATIO_PLAUSIBLE = (1e-2, 1e5)
#: Epochs (D / U) above which repeated data changes the loss beyond fresh data's (Muennighoff et
#: al. 2023: up to about 4 epochs are nearly as good as new tokens; the warning counts any repetition).
EPOCHS_SAID = 1.05


def unit_notes(runs: pd.DataFrame) -> list[str]:
    """Rows whose tokens per parameter, or whose N or D, no training run has."""
    ratio = (runs["D"] / runs["N"]).to_numpy(dtype=float)
    lo, hi = RATIO_PLAUSIBLE
    odd = (ratio < lo) | (ratio > hi)
    if not odd.any():
        return _swapped_note(ratio) + _tiny_note(runs)
    return [
        f"{_named(runs, odd)} train {ratio[odd].min():.3g}-{ratio[odd].max():.3g} tokens per parameter (D / N), "
        f"outside the {lo:g}-{hi:g} that training runs have: is N or D in other units (millions, "
        "billions)? Both are counts (parameters, tokens)"
    ]


#: Fewer parameters (N) or tokens (D) than any language model's training run has: a table in millions or
#: billions (N = 1.28 for a 1.28B model) keeps a plausible ratio D / N, and only its size gives it away.
#: The smallest pilots anywhere in ``shared/data`` have N = 1.3e4 and D = 6e4.
TINY = {"N": 1e3, "D": 1e4}


def _tiny_note(runs: pd.DataFrame) -> list[str]:
    said = []
    for col, what in (("N", "parameters"), ("D", "tokens")):
        values = runs[col].to_numpy(dtype=float)
        small = values < TINY[col]
        if small.any():
            said.append(
                f"{_named(runs, small)} have {col} = {values[small].min():.3g}-{values[small].max():.3g}, fewer "
                f"{what} than any language model's training run ({TINY[col]:g}): is {col} in millions or billions? "
                f"It is a count of {what}"
            )
    return said


#: A sweep none of whose runs trains this many tokens per parameter more likely has N and D swapped: the
#: lowest such maximum among the published sweeps in ``shared/data`` is 40 (a 2-core machine's pilots), and
#: no sweep trains every model on fewer tokens than it has parameters.
SWAPPED_BELOW = 1.0


def _swapped_note(ratio: np.ndarray) -> list[str]:
    """A table whose every run trains fewer tokens than parameters: N and D swapped, most likely."""
    if ratio.size < 3 or not np.nanmax(ratio) < SWAPPED_BELOW:
        return []
    return [
        f"every row trains fewer tokens than parameters ({np.nanmin(ratio):.3g}-{np.nanmax(ratio):.3g} tokens per "
        "parameter, D / N), which no published sweep does: are the N and D columns swapped? N is the model's "
        "parameters, D the tokens it trained on"
    ]


def repeated_rows(runs: pd.DataFrame) -> np.ndarray:
    """Which rows repeat their data: ``D / U`` above :data:`EPOCHS_SAID` (none without a ``U`` column)."""
    if "U" not in runs.columns:
        return np.zeros(len(runs), dtype=bool)
    epochs = (runs["D"] / runs["U"]).to_numpy(dtype=float)
    return np.isfinite(epochs) & (epochs > EPOCHS_SAID)


def _repeats_unread(runs: pd.DataFrame, law_columns: Sequence[str], law: str) -> list[str]:
    """Repeated data (``U`` below D) fitted by a law that does not read ``U``."""
    if "U" in law_columns:
        return []
    repeated = repeated_rows(runs)
    if not repeated.any():
        return []
    epochs = (runs["D"] / runs["U"]).to_numpy(dtype=float)
    return [
        f"{int(repeated.sum())} rows repeat their data (column 'U': up to {np.nanmax(epochs):.3g} epochs), but "
        f"{law or 'the law'} does not read U and fits them as if every token were new; fit the data-constrained "
        "law (spec 'data_constrained') or the law average (spec 'recommended'), which read it"
    ]


def unread_unique_tokens(points: pd.DataFrame, law_columns: Sequence[str], law: str) -> list[str]:
    """A caution for points (named by the index) that repeat their data (``U`` below D) asked of a law that
    does not read ``U``: its bands there are for fresh tokens, and repeated tokens teach less."""
    if "U" in law_columns or not {"U", "D"} <= set(points.columns) or not (repeated := repeated_rows(points)).any():
        return []
    epochs = float(np.nanmax((points["D"] / points["U"]).to_numpy(dtype=float)[repeated]))
    one = int(repeated.sum()) == 1
    return [
        f"Caution: {join_names([str(i) for i in points.index[repeated]])} repeat{'s its' if one else ' their'} "
        f"data (U: up to {epochs:.3g} epochs), but {law} does not read U: "
        "the bands are for fresh tokens, and repeated tokens teach less; fit the data-constrained law (spec "
        "'data_constrained') or the law average (spec 'recommended'), which read it."
    ]


def _constant_loss(runs: pd.DataFrame) -> list[str]:
    """Every row at one loss: a fit learns nothing from it but a collapsed noise scale."""
    loss = runs["loss"].to_numpy(dtype=float) if "loss" in runs else np.array([])
    if loss.size < 3 or np.ptp(loss) > 0:
        return []
    return [
        f"every row has the same loss ({loss[0]:.6g}): no law can be learned from it, and the fit's noise "
        "collapses; is 'loss' the column of each run's final loss?"
    ]


def _copies_and_schedules(runs: pd.DataFrame) -> list[str]:
    """Copied rows, and rows of several schedules."""
    cols = [c for c in runs.columns if c not in NOT_DISTINGUISHING]
    copied = runs.duplicated(subset=cols, keep="first").to_numpy()
    said = []
    if copied.any():
        first = runs.duplicated(subset=cols, keep=False).to_numpy() & ~copied
        said.append(
            f"{_named(runs, copied)} repeat {_named(runs, first)} in every column but their "
            "ids; a copied row counts twice in the fit and narrows its bands: remove the copy (replicates differ "
            "in their seed)"
        )
    schedules = schedules_of(runs)
    if len(schedules) > 1:
        said.append(
            f"the 'schedule' column holds {join_names(sorted(schedules), quoted=True)}: one law through runs of "
            "several learning-rate schedules is biased (their losses differ by more than the noise); fit each "
            "schedule's rows alone"
        )
    return said


def schedules_of(runs: pd.DataFrame) -> set[str]:
    """The learning-rate schedules a table's ``schedule`` column names (none without the column)."""
    if "schedule" not in runs.columns:
        return set()
    return {str(v).strip().lower() for v in runs["schedule"].dropna()} - {""}


def _named(runs: pd.DataFrame, mask: np.ndarray) -> str:
    """The rows of ``mask`` by run id, or by their position when load_runs made the ids up."""
    if runs.attrs.get("ids_generated"):
        return f"rows at 0-based positions {join_names([int(i) for i in np.flatnonzero(mask)])}"
    return f"rows with run_id {join_names(runs['run_id'].astype(str)[mask], quoted=True)}"


def read_points_csv(path: str | os.PathLike, what: str) -> pd.DataFrame:
    """A CSV of points (candidates, pending runs: columns N and D, or N and C), read as a runs table is,
    its errors naming ``what`` (the option or argument it came from)."""
    try:
        return read_runs_csv(path)
    except BayescaleError as e:
        raise BayescaleError(f"{what}: {str(e).removeprefix('runs table: ')}") from None
