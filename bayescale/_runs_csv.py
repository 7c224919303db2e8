"""Reading a runs table's CSV file, and hints for a header that does not name the columns.

:mod:`bayescale.data` validates what is read here; this module knows only the file: how it is split
into fields, and why a header a user wrote may not match (another separator, another name).
"""

from __future__ import annotations

import csv
import difflib
import io
import os
from collections.abc import Sequence

import pandas as pd

from bayescale._words import join_names
from bayescale.errors import RunsTableError

#: Column names users write for the runs table's columns (compared in lower case, stripped).
SYNONYMS = {
    "N": ("params", "parameters", "n_params", "num_params", "model_size", "size"),
    "D": ("tokens", "n_tokens", "num_tokens", "data", "train_tokens", "dataset_size"),
    "C": ("flops", "compute", "train_flops"),
    "loss": ("val_loss", "eval_loss", "train_loss", "validation_loss", "test_loss", "final_loss"),
}


def _fail(message: str) -> RunsTableError:
    return RunsTableError(f"runs table: {message}")


def read_runs_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a runs CSV; run ids are read verbatim (``"NA"`` stays a string).

    The file is read once and parsed twice, so a concurrent replace cannot mix versions. A row with
    more fields than the header is refused (pandas would take the first column as an index and shift
    every column by one); empty fields past the header (a trailing comma) are dropped.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        text = raw.decode("utf-8-sig")
        names = _header_and_check(text, os.fspath(path))
        df = pd.read_csv(io.BytesIO(raw), index_col=False)
        if "run_id" in df.columns:
            ids = pd.read_csv(io.BytesIO(raw), index_col=False, usecols=["run_id"], dtype=str, keep_default_na=False)
            df["run_id"] = ids["run_id"].to_numpy(dtype=object)
    except FileNotFoundError:
        raise _fail(f"file not found: {os.fspath(path)!r}") from None
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise _fail(f"could not read CSV {os.fspath(path)!r}: {exc}") from exc
    return df if names else pd.DataFrame()


def _header_and_check(text: str, where: str) -> list[str]:
    """The header's names, after refusing a repeated name and rows with extra non-empty fields."""
    rows = csv.reader(io.StringIO(text))
    names = [n.strip() for n in next(rows, [])]
    twice = sorted({n for n in names if n and names.count(n) > 1})
    if twice:  # pandas would keep the second as "loss.1": which one is the loss?
        raise _fail(f"{where!r}: column {join_names(twice, quoted=True)} appears more than once in the header")
    longer = [
        i for i, row in enumerate(rows, start=2) if len(row) > len(names) and any(f.strip() for f in row[len(names) :])
    ]
    if longer:
        lines = join_names(longer[:5]) + (f" (and {len(longer) - 5} more)" if len(longer) > 5 else "")
        raise _fail(
            f"{where!r}: {'line' if len(longer) == 1 else 'lines'} {lines} {'has' if len(longer) == 1 else 'have'} more fields than the header's "
            f"{len(names)} ({join_names(names, quoted=True)}); a value without a column would shift the others: "
            "name the extra column in the header, or remove the extra values"
        )
    return names


def column_hints(present: Sequence[object], missing: Sequence[str]) -> str:
    """Why the header may not name ``missing`` columns, in words ("" when nothing looks close):
    one column holding several names (another separator), or a name close to a required one."""
    names = [str(c) for c in present]
    if len(names) == 1:
        for sep, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if sep in names[0]:
                return (
                    f"; the header looks separated by {label}, not commas: save the table as comma-separated CSV "
                    f"(in pandas: pd.read_csv(path, sep={sep!r}) and pass the DataFrame)"
                )
    hints = []
    for want in (m for c in missing for m in c.split(" or ")):
        close = _close_names(want, names)
        if close:
            hints.append(f"{join_names(close, 'or', quoted=True)} for {want!r}")
    return f"; did you mean {join_names(hints)}? (rename the column)" if hints else ""


def _close_names(want: str, names: Sequence[str]) -> list[str]:
    """Present names that may mean ``want``: equal but for case or spaces, a known synonym, or close in spelling."""
    key = want.lower()
    out = [n for n in names if n.strip().lower() == key or n.strip().lower() in SYNONYMS.get(want, ())]
    if not out and len(key) > 2:  # a one-letter name is close to every other one-letter name
        lowered = {n.strip().lower(): n for n in names}
        out = [lowered[m] for m in difflib.get_close_matches(key, list(lowered), n=2, cutoff=0.75)]
    return out
