"""Tests for bayescale.data: loading, validating and appending runs tables."""

from __future__ import annotations

import multiprocessing
import os
import re
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import spawned

import bayescale as bs
from bayescale.data import (
    FLOPS_CONVENTIONS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    append_run,
    law_inputs,
    load_runs,
    points_frame,
    runs_hash,
    save_runs,
)
from bayescale.errors import BayescaleError, RunsTableError
from bayescale.spec import load_spec


def _table(**overrides) -> pd.DataFrame:
    base = {
        "run_id": ["p01", "p02", "p03", "p04"],
        "N": [1e7, 3e7, 1e8, 3e8],
        "D": [2e8, 6e8, 2e9, 6e9],
        "loss": [4.0, 3.6, 3.2, 2.9],
    }
    base.update(overrides)
    return pd.DataFrame(base)


# --- loading and derivation ----------------------------------------------------------


def test_constants():
    assert FLOPS_CONVENTIONS == ("6ND",)
    assert set(REQUIRED_COLUMNS) == {"N", "loss"}
    assert {"run_id", "seed", "source", "arch", "notes"} <= set(OPTIONAL_COLUMNS)


def test_derives_c_and_records_it():
    runs = load_runs(_table())
    np.testing.assert_allclose(runs["C"], 6 * runs["N"] * runs["D"])
    assert list(runs["derived"]) == ["C=6ND"] * 4
    assert runs.attrs["flops_convention"] == "6ND"
    assert list(runs.columns) == ["run_id", "N", "D", "C", "loss", "derived"]
    assert all(runs[c].dtype == np.float64 for c in ["N", "D", "C", "loss"])


def test_derives_d_from_c():
    df = _table(C=[1.2e16, 1.08e17, 1.2e18, 1.08e19]).drop(columns="D")
    runs = load_runs(df)
    np.testing.assert_allclose(runs["D"], runs["C"] / (6 * runs["N"]))
    np.testing.assert_allclose(runs["D"], [2e8, 6e8, 2e9, 6e9])
    assert list(runs["derived"]) == ["D=C/(6N)"] * 4


def test_derives_missing_cells_only():
    df = _table(C=[np.nan, 9.0e16, 1.2e18, np.nan], D=[2e8, 6e8, np.nan, 6e9])
    runs = load_runs(df)
    assert list(runs["derived"]) == ["C=6ND", "", "D=C/(6N)", "C=6ND"]
    assert runs["C"].iloc[1] == 9.0e16  # a given C is kept, not recomputed
    assert runs["D"].iloc[2] == pytest.approx(1.2e18 / 6e8)


def test_column_order_extras_and_index():
    df = _table(notes=["a", "b", "c", "d"], seed=[0, 1, 2, 3]).iloc[::-1]
    df = df[["notes", "loss", "N", "seed", "D", "run_id"]]
    runs = load_runs(df)
    assert list(runs.columns) == ["run_id", "N", "D", "C", "loss", "notes", "seed", "derived"]
    assert list(runs.index) == [0, 1, 2, 3]
    assert list(runs["run_id"]) == ["p04", "p03", "p02", "p01"]
    assert list(runs["seed"]) == [3, 2, 1, 0]


def test_auto_run_ids():
    runs = load_runs(_table().drop(columns="run_id"))
    assert list(runs["run_id"]) == ["run000", "run001", "run002", "run003"]
    big = pd.DataFrame({"N": np.full(1200, 1e8), "D": 1e9, "loss": 3.0})
    ids = load_runs(big)["run_id"]
    assert ids.iloc[0] == "run0000" and ids.iloc[-1] == "run1199" and ids.is_unique


def test_run_ids_stored_as_str():
    runs = load_runs(_table(run_id=[1, 2, 3, 4]))
    assert list(runs["run_id"]) == ["1", "2", "3", "4"]


def test_dataframe_input_not_mutated():
    df = _table(C=[np.nan, 9.0e16, 1.2e18, np.nan])
    before = df.copy()
    load_runs(df)
    pd.testing.assert_frame_equal(df, before)
    assert "derived" not in df.columns and not df.attrs


def test_load_from_csv_path(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("run_id,N,C,loss,arch\n001,1e8,1.2e18,3.1,dense\nNA,4e8,1.92e19,2.8,moe\n")
    for source in (path, str(path)):
        runs = load_runs(source)
        assert list(runs["run_id"]) == ["001", "NA"]  # ids read verbatim
        np.testing.assert_allclose(runs["D"], [2e9, 8e9])
        assert list(runs["arch"]) == ["dense", "moe"]


def test_numeric_strings_accepted():
    runs = load_runs(_table(N=["1e7", "3e7", " 1e8 ", "300000000"]))
    assert runs["N"].tolist() == [1e7, 3e7, 1e8, 3e8]


# --- bad input ---------------------------------------------------------------------


def test_empty_table(tmp_path):
    with pytest.raises(RunsTableError, match="empty.*at least one run"):
        load_runs(_table().iloc[:0])
    path = tmp_path / "header_only.csv"
    path.write_text("run_id,N,D,loss\n")
    with pytest.raises(RunsTableError, match="empty.*at least one run"):
        load_runs(path)
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(RunsTableError, match="empty"):
        load_runs(tmp_path / "blank.csv")
    # a one-line JSON file reads as a header without rows: it is not a runs table, which says more than "empty"
    (tmp_path / "x.json").write_text('{"a": 1}\n')
    with pytest.raises(RunsTableError, match=r"missing required column\(s\) 'N'.*columns present: '\{\"a\": 1\}'"):
        load_runs(tmp_path / "x.json")


@pytest.mark.parametrize(
    ("drop", "missing"),
    [(["loss"], "'loss'"), (["N"], "'N'"), (["D"], "'D or C'")],
)
def test_missing_columns(drop, missing):
    with pytest.raises(RunsTableError, match=re.escape(missing)) as info:
        load_runs(_table().drop(columns=drop))
    message = str(info.value)
    assert "columns present" in message and "required" in message
    for col in set(_table().columns) - set(drop):
        assert repr(col) in message


@pytest.mark.parametrize("col", ["N", "D", "loss"])
def test_non_numeric(col):
    df = _table().astype({col: object})
    df.loc[[1, 3], col] = "abc"
    with pytest.raises(RunsTableError, match=rf"column '{col}' must be numeric; rows with run_id 'p02' and 'p04'"):
        load_runs(df)


def test_non_numeric_c_in_csv(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("run_id,N,C,loss\na,1e8,1.2e18,3.1\nb,4e8,lots,2.8\n")
    with pytest.raises(RunsTableError, match=r"column 'C' must be numeric; rows with run_id 'b'.*'lots'"):
        load_runs(path)


@pytest.mark.parametrize("col", ["N", "loss"])
def test_nan_in_required(col):
    df = _table()
    df.loc[2, col] = np.nan
    with pytest.raises(
        RunsTableError, match=rf"column '{col}' must be a number, not empty or NaN; rows with run_id 'p03'"
    ):
        load_runs(df)


@pytest.mark.parametrize(("col", "value"), [("N", np.inf), ("D", -np.inf), ("C", np.inf), ("loss", np.inf)])
def test_infinite(col, value):
    df = _table(C=[1e16, 1e17, 1e18, 1e19])
    df.loc[[0, 2], col] = value
    with pytest.raises(RunsTableError, match=rf"column '{col}' must be finite.*rows with run_id 'p01' and 'p03'"):
        load_runs(df)


def test_d_and_c_both_missing():
    df = _table(C=[np.nan, 1e17, np.nan, 1e19], D=[np.nan, np.nan, np.nan, 6e9])
    with pytest.raises(RunsTableError, match=r"'D' and 'C'.*rows with run_id 'p01' and 'p03'"):
        load_runs(df)


@pytest.mark.parametrize(("col", "value"), [("N", 0.0), ("D", -1.0), ("C", 0.0), ("loss", -0.5)])
def test_non_positive(col, value):
    df = _table(C=[1e16, 1e17, 1e18, 1e19])
    df.loc[[1, 2], col] = value
    with pytest.raises(RunsTableError, match=rf"column '{col}' must be > 0; rows with run_id 'p02' and 'p03' are not"):
        load_runs(df)


def test_rows_named_by_position_without_run_id():
    df = _table().drop(columns="run_id")
    df.loc[[0, 3], "D"] = 0
    with pytest.raises(RunsTableError, match=r"column 'D' must be > 0; rows at 0-based positions 0 and 3"):
        load_runs(df)


def test_duplicate_run_ids():
    df = _table(run_id=["a", "b", "a", "b"])
    with pytest.raises(RunsTableError, match=r"column 'run_id' must be unique; run ids 'a' and 'b' appear"):
        load_runs(df)


def test_empty_run_id():
    with pytest.raises(RunsTableError, match=r"column 'run_id' must not be empty; rows at 0-based positions 1"):
        load_runs(_table(run_id=["a", " ", "c", "d"]))


def test_file_not_found(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(RunsTableError, match=re.escape(str(path))):
        load_runs(path)


def test_unknown_flops_convention():
    with pytest.raises(RunsTableError, match=r"flops='8ND'.*allowed: '6ND'"):
        load_runs(_table(), flops="8ND")


def test_bad_source_type():
    with pytest.raises(RunsTableError, match="source must be"):
        load_runs([1, 2, 3])


# --- saving and hashing ------------------------------------------------------------------


def test_save_runs_round_trip(tmp_path):
    path = tmp_path / "runs.csv"
    runs = load_runs(_table(seed=[1, 2, 3, 4]))
    save_runs(runs, path)
    again = load_runs(path)
    pd.testing.assert_frame_equal(again.drop(columns="derived"), runs.drop(columns="derived"))
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_runs_hash():
    runs = load_runs(_table(notes=list("abcd")))
    h = runs_hash(runs)
    assert re.fullmatch(r"[0-9a-f]{64}", h)
    assert runs_hash(runs.iloc[::-1]) == h  # row order does not matter
    assert runs_hash(runs.drop(columns="notes")) == h  # extra columns do not matter
    changed = runs.copy()
    changed.loc[0, "loss"] = np.nextafter(changed.loc[0, "loss"], 10.0)  # repr precision
    assert runs_hash(changed) != h


# --- appending ---------------------------------------------------------------------------


def test_append_creates_and_appends(tmp_path):
    path = tmp_path / "runs.csv"
    out = append_run(path, {"run_id": "a", "N": 1e8, "D": 2e9, "loss": 3.1})
    assert path.read_text().splitlines() == ["run_id,N,D,loss", "a,100000000.0,2000000000.0,3.1"]
    assert list(out["run_id"]) == ["a"]
    out = append_run(
        path, [{"run_id": "b", "N": 2e8, "D": 4e9, "loss": 3.0}, {"run_id": "c", "N": 4e8, "D": 8e9, "loss": 2.9}]
    )
    assert list(out["run_id"]) == ["a", "b", "c"]
    pd.testing.assert_frame_equal(out, load_runs(path))
    assert "C" not in pd.read_csv(path).columns  # the derived C is not written


def test_append_keeps_raw_values_and_adds_columns(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("run_id,N,D,loss\n001,1e8,2e9,3.1\n")
    out = append_run(
        path, pd.DataFrame({"run_id": ["002"], "N": [4e8], "C": [1.92e19], "loss": [2.8], "arch": ["moe"]})
    )
    lines = path.read_text().splitlines()
    assert lines[0] == "run_id,N,D,loss,C,arch"
    assert lines[1] == "001,1e8,2e9,3.1,,"  # the existing row is written as it was
    assert lines[2] == "002,400000000.0,,2.8,1.92e+19,moe"
    assert list(out["derived"]) == ["C=6ND", "D=C/(6N)"]
    assert out["arch"].isna().iloc[0] and out["arch"].iloc[1] == "moe"


def test_append_refuses_duplicate_leaving_file_unchanged(tmp_path):
    path = tmp_path / "runs.csv"
    append_run(path, {"run_id": "a", "N": 1e8, "D": 2e9, "loss": 3.1})
    before = path.read_bytes()
    with pytest.raises(RunsTableError, match=r"run ids 'a' appear"):
        append_run(path, {"run_id": "a", "N": 2e8, "D": 4e9, "loss": 3.0})
    with pytest.raises(RunsTableError, match=r"column 'loss' must be > 0; rows with run_id 'b'"):
        append_run(path, {"run_id": "b", "N": 2e8, "D": 4e9, "loss": -3.0})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv", "runs.csv.lock"]


def test_append_generates_unique_run_ids(tmp_path):
    path = tmp_path / "runs.csv"
    append_run(
        path, [{"run_id": "run001", "N": 1e8, "D": 2e9, "loss": 3.1}, {"run_id": "x", "N": 1e8, "D": 2e9, "loss": 3.1}]
    )
    out = append_run(path, [{"N": 2e8, "D": 4e9, "loss": 3.0}, {"N": 4e8, "D": 8e9, "loss": 2.9}])
    assert list(out["run_id"]) == ["run001", "x", "run002", "run003"]
    assert out["run_id"].is_unique


def test_append_without_run_ids(tmp_path):
    path = tmp_path / "runs.csv"
    append_run(path, {"N": 1e8, "D": 2e9, "loss": 3.1})
    out = append_run(path, {"N": 2e8, "D": 4e9, "loss": 3.0})
    assert path.read_text().splitlines()[0] == "N,D,loss"
    assert list(out["run_id"]) == ["run000", "run001"]


@pytest.mark.parametrize(
    "content",
    ['[{"run_id":"j1","N":1e6,"D":2e7,"loss":3.5}]\n', "N\tD\tloss\n1e8\t2e9\t3.1\n", "just some notes\n"],
    ids=["json", "tsv", "text"],
)
def test_append_never_rewrites_a_file_that_is_not_a_runs_table(tmp_path, content):
    path = tmp_path / "table.csv"
    path.write_text(content)
    said = r"is not a runs table; nothing was written: missing required column|separated by tabs.*nothing was written"
    with pytest.raises(RunsTableError, match=said):
        append_run(path, {"run_id": "a", "N": 1e8, "D": 2e9, "loss": 3.1})
    assert path.read_text() == content


def test_append_bad_row_type(tmp_path):
    with pytest.raises(RunsTableError, match="row must be"):
        append_run(tmp_path / "runs.csv", "N=1")
    with pytest.raises(RunsTableError, match="no rows"):
        append_run(tmp_path / "runs.csv", [])
    with pytest.raises(RunsTableError, match=r"allowed: '6ND'"):
        append_run(tmp_path / "runs.csv", {"N": 1e8, "D": 2e9, "loss": 3.1}, flops="20ND")
    assert not (tmp_path / "runs.csv").exists()


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_append_failing_write_leaves_file_unchanged(tmp_path, monkeypatch, failing):
    path = tmp_path / "runs.csv"
    append_run(path, {"run_id": "a", "N": 1e8, "D": 2e9, "loss": 3.1})
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk on fire")

    with monkeypatch.context() as patch:
        patch.setattr(os, failing, boom)
        with pytest.raises(OSError, match="disk on fire"):
            append_run(path, {"run_id": "b", "N": 2e8, "D": 4e9, "loss": 3.0})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv", "runs.csv.lock"]  # no temp file left
    out = append_run(path, {"run_id": "b", "N": 2e8, "D": 4e9, "loss": 3.0})  # the lock was released
    assert list(out["run_id"]) == ["a", "b"]


def test_concurrent_appends(tmp_path):
    path = str(tmp_path / "runs.csv")
    n_workers, n_rows = 4, 50  # each spawned worker pays a Python start and bayescale's imports (2 s)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(n_workers)
    procs = [ctx.Process(target=spawned.append_after_barrier, args=(path, w, n_rows, start)) for w in range(n_workers)]
    try:
        for p in procs:
            p.start()
        deadline = time.monotonic() + 300
        while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
            if os.path.exists(path):  # meanwhile, a reader never sees a torn or half-written file
                assert load_runs(path)["run_id"].is_unique
            time.sleep(0.01)
        for p in procs:
            p.join(timeout=max(1.0, deadline - time.monotonic()))
        assert [p.exitcode for p in procs] == [0] * n_workers
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    runs = load_runs(path)
    assert len(runs) == n_workers * n_rows + 1
    expected = {f"w{w}-{i:02d}" for w in range(n_workers) for i in range(n_rows)} | {"shared"}
    assert runs["run_id"].value_counts().max() == 1 and set(runs["run_id"]) == expected
    with open(path, encoding="utf-8") as fh:
        assert len(fh.read().splitlines()) == n_workers * n_rows + 2  # header + one line per run


# ------------------------------------------------------------ plausibility and C = 6 N D


def test_runs_c_far_from_6nd_is_refused_naming_the_row():
    with pytest.raises(
        RunsTableError, match=r"'C' is not consistent with C = 6 N D for rows with run_id 'p02'.*two of N, D and C"
    ):
        load_runs(_table(C=[np.nan, 1.0, 1.2e18, np.nan]))


def test_runs_c_within_a_flop_convention_is_kept():
    runs = load_runs(_table(C=[1.2e16 * 1.3, np.nan, np.nan, np.nan]))  # 30% over 6ND: another convention
    assert runs["C"].iloc[0] == pytest.approx(1.56e16)


@pytest.mark.parametrize(
    ("column", "value", "allowed"),
    [
        ("loss", 1e300, "<= 20"),
        ("loss", 25.0, "<= 20"),
        ("N", 1e300, r"in \[1, 1e\+15\]"),
        ("N", 0.5, r"in \[1"),
        ("D", 1e18, r"in \[1, 1e\+17\]"),
    ],
)
def test_runs_implausible_values_are_refused_naming_the_row(column, value, allowed):
    df = _table()
    df.loc[2, column] = value
    with np.errstate(all="raise"):  # no NumPy warning on the way
        with pytest.raises(RunsTableError, match=rf"column '{column}' must be {allowed}.*run_id 'p03'"):
            load_runs(df)


def test_runs_derived_value_outside_range_is_refused():
    df = _table(D=[2e8, np.nan, 2e9, 6e9], C=[np.nan, 1e40, np.nan, np.nan])
    with pytest.raises(RunsTableError, match=r"'C' must be in .*p02"):
        load_runs(df)


def test_a_column_named_twice_is_refused(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("N,D,loss,loss\n1e8,2e9,3.1,3.0\n2e8,4e9,2.9,2.8\n")
    with pytest.raises(RunsTableError, match=r"column 'loss' appears more than once in the header"):
        load_runs(path)  # pandas alone would read the second as 'loss.1' and fit the first
    path.write_text("N,D,loss,loss.1\n1e8,2e9,3.1,3.0\n2e8,4e9,2.9,2.8\n")
    assert list(load_runs(path)["loss"]) == [3.1, 2.9]  # distinct names are the user's own columns


def test_points_c_far_from_6nd_is_refused():
    with pytest.raises(BayescaleError, match=r"points: 'C' is not consistent with C = 6 N D .*positions 1"):
        points_frame([{"N": 5e6, "D": 1e8}, {"N": 5e6, "D": 1e8, "C": 1.0}])
    assert points_frame({"N": 5e6, "D": 1e8, "C": 3.5e15})["C"].iloc[0] == 3.5e15


def test_points_unique_tokens_are_checked_as_in_a_runs_table():
    with pytest.raises(BayescaleError, match=r"points: column 'U' \(unique tokens\) must be > 0 and <= D; the point"):
        points_frame({"N": 1e10, "D": 2e11, "U": 4e11})
    with pytest.raises(BayescaleError, match=r"<= D; points at 0-based positions 1 are not"):
        points_frame({"N": [1e10, 2e10], "D": [2e11, 2e11], "U": [1e11, 0.0]})
    assert points_frame({"N": 1e10, "D": 2e11, "U": 1e11})["U"].iloc[0] == 1e11


def test_points_implausible_are_refused_without_numpy_warnings():
    with np.errstate(all="raise"):
        with pytest.raises(BayescaleError, match=r"points: 'N' must be in \[1, 1e\+15\]"):
            points_frame({"N": 1e300, "D": 1e300})
        with pytest.raises(BayescaleError, match=r"'D' must be in .*derived by C = 6 N D"):
            points_frame({"N": 1e3, "C": 1e32})


def test_points_given_as_nan_are_named_not_dropped():
    with pytest.raises(BayescaleError, match=r"points: 'N' is NaN; give a number, or two of N, D and C"):
        points_frame({"N": np.nan, "D": 1e8})
    with pytest.raises(BayescaleError, match=r"'N' is NaN for points at 0-based positions 1; give a number"):
        points_frame({"N": [1e8, np.nan], "D": [1e9, 1e9]})
    # A blank the other two fill is derived, as in a runs table.
    assert points_frame({"N": [1e8, np.nan], "D": [1e9, 1e9], "C": [np.nan, 6e18]})["N"].iloc[1] == 1e9


def test_a_column_named_in_another_case_is_pointed_out():
    with pytest.raises(RunsTableError, match=r"case-sensitive: 'n' is not 'N'"):
        law_inputs(load_spec("chinchilla"), pd.DataFrame({"n": [1e8], "D": [1e9]}))
    # a point with N alone (the API's predict({"N": 7e9})) is told what the CLI's --at is told
    with pytest.raises(RunsTableError, match=r"needs column 'D' .*; give D, or two of N, D and C \(C = 6 N D"):
        law_inputs(load_spec("chinchilla"), points_frame({"N": 7e9}))


def test_synthetic_tables_with_their_own_prefixes_concatenate():
    from bayescale.testing import synthetic_runs

    truth = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36}
    a = synthetic_runs("chinchilla", truth, seed=0, prefix="a")
    b = synthetic_runs("chinchilla", truth, seed=1, prefix="b")
    both = load_runs(pd.concat([a.assign(recipe="A"), b.assign(recipe="B")], ignore_index=True))
    assert len(both) == len(a) + len(b) and both["run_id"].iloc[0] == "a000" and both["run_id"].iloc[-1] == "b014"


def test_points_as_text_read_as_the_cli_reads_them():
    assert points_frame("N=5e6,D=1e8").to_dict("list") == points_frame({"N": 5e6, "D": 1e8}).to_dict("list")
    with pytest.raises(BayescaleError, match=r"points 'N=5e6,D=x': D='x' is not a number"):
        points_frame("N=5e6,D=x")


def test_a_row_with_more_fields_than_the_header_is_refused(tmp_path):
    path = tmp_path / "runs.csv"
    # pandas alone takes the first column as the index: N would be the tokens and loss the extra value
    path.write_text("N,D,loss\n1e8,2e9,3.1,2\n2e8,4e9,2.9,3\n4e8,8e9,2.7\n")
    with pytest.raises(RunsTableError, match=r"lines 2 and 3 have more fields than the header's 3"):
        load_runs(path)
    path.write_text("run_id,N,D,loss\na,1e8,2e9,3.1,\nb,2e8,4e9,2.9,\n")  # a trailing comma: nothing is lost
    runs = load_runs(path)
    assert list(runs["run_id"]) == ["a", "b"] and list(runs["loss"]) == [3.1, 2.9]


def test_a_json_file_given_as_a_runs_table_is_said_to_be_json(tmp_path):
    path = tmp_path / "runs.json"
    path.write_text('{"N":[1e8,2e8],"D":[2e9,4e9],"loss":[3.1,2.9]}\n')
    with pytest.raises(RunsTableError, match="the file looks like JSON, not CSV"):
        load_runs(path)


@pytest.mark.parametrize(
    "header, hint",
    [
        (
            "run_id,params,tokens,eval_loss",
            "did you mean 'params' for 'N', 'eval_loss' for 'loss' and 'tokens' for 'D'?",
        ),
        ("run_id,n,D,Loss", "did you mean 'n' for 'N' and 'Loss' for 'loss'?"),
        ("run_id,N,D,loss_c4_en", "did you mean 'loss_c4_en' for 'loss'?"),  # the OLMo ladder's table
    ],
)
def test_a_header_that_misses_the_columns_gets_a_hint(tmp_path, header, hint):
    path = tmp_path / "runs.csv"
    sep = ";" if ";" in header else "\t" if "\t" in header else ","
    path.write_text(header + "\n" + sep.join(["a", "1e8", "2e9", "3.1"]) + "\n")
    with pytest.raises(RunsTableError, match="missing required column") as info:
        load_runs(path)
    assert hint in str(info.value)


def test_append_through_a_symlink_reaches_the_file_it_names(tmp_path):
    real = tmp_path / "real_runs.csv"
    append_run(real, {"run_id": "a", "N": 1e8, "D": 2e9, "loss": 3.1})
    link = tmp_path / "my_runs.csv"
    link.symlink_to(real)
    append_run(link, {"run_id": "b", "N": 2e8, "D": 4e9, "loss": 3.0})
    assert link.is_symlink()  # the link is kept, not replaced by a copy that leaves the real table behind
    assert list(load_runs(real)["run_id"]) == ["a", "b"]


def test_a_read_only_table_is_refused_not_replaced(tmp_path):
    path = tmp_path / "runs.csv"
    append_run(path, {"run_id": "a", "N": 1e8, "D": 2e9, "loss": 3.1})
    before = path.read_bytes()
    path.chmod(0o444)
    with pytest.raises(PermissionError, match="read-only file, not replaced"):
        append_run(path, {"run_id": "b", "N": 2e8, "D": 4e9, "loss": 3.0})
    assert path.read_bytes() == before


def test_a_copied_row_and_mixed_schedules_are_said_when_fitting(tmp_path):
    from bayescale._runs_input import warn_about_table

    runs = load_runs(_table(D=[2e9, 4e9, 8e9, 1.6e10]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_about_table(runs)  # distinct runs: nothing to say
        warn_about_table(runs.assign(schedule=["wsd", "WSD", "wsd ", ""]))  # one schedule, spelled three ways
        swept = pd.concat([_table(), _table()]).assign(lr=[1e-3] * 4 + [3e-3] * 4, run_id=[f"r{i}" for i in range(8)])
        warn_about_table(load_runs(swept))  # equal N, D and loss, another learning rate: not a copy
    copied = pd.concat([_table(), _table().iloc[[1]].assign(run_id="p02-again")])
    with pytest.warns(bs.RunsTableWarning, match=r"rows with run_id 'p02-again' repeat rows with run_id 'p02'"):
        warn_about_table(load_runs(copied))
    no_ids = load_runs(pd.concat([_table(), _table().iloc[[1]]]).drop(columns="run_id"))
    with pytest.warns(bs.RunsTableWarning, match=r"rows at 0-based positions 4 repeat rows at 0-based positions 1"):
        warn_about_table(no_ids)  # ids load_runs made up are not named: the user's table has none
    with pytest.warns(bs.RunsTableWarning, match=r"'schedule' column holds 'cosine' and 'wsd'"):
        warn_about_table(runs.assign(schedule=["wsd", "cosine", "wsd", "wsd"]))


def test_a_constant_loss_column_is_said_and_its_collapsed_fit_leaks_no_library_warning():
    """Every row at one loss (a wrong column): a RunsTableWarning says so; the collapsed fit's zero-variance
    diagnostics are NaN without numpy's or scipy's warnings about the 0 / 0 behind them."""
    from bayescale._runs_input import warn_about_table

    runs = load_runs(_table())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_about_table(runs.iloc[:2].assign(loss=3.0))  # two rows may share a loss by chance
    n = np.geomspace(1e7, 2e9, 8)
    constant = load_runs(pd.DataFrame({"N": n, "D": n * np.array([5, 40, 10, 80, 20, 5, 40, 10]), "loss": 3.0}))
    with pytest.warns(bs.RunsTableWarning, match=r"every row has the same loss \(3\): no law can be learned"):
        warn_about_table(constant)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = bs.fit("chinchilla", constant, method="laplace")
        fit.summary()
    leaked = [w for w in caught if not issubclass(w.category, (bs.RunsTableWarning, bs.ConvergenceWarning))]
    assert not leaked, [str(w.message) for w in leaked]


def test_sizes_in_other_units_and_repeats_a_law_cannot_read_are_said():
    from bayescale._runs_input import warn_about_table

    runs = load_runs(_table())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_about_table(runs, law_columns=["N", "D"])  # 20 tokens per parameter: nothing to say
        warn_about_table(runs.assign(U=runs["D"]), law_columns=["N", "D"])  # one epoch: no repetition
        warn_about_table(runs.assign(U=runs["D"] / 8), law_columns=["N", "D", "U"])  # the law reads U
    with pytest.warns(
        bs.RunsTableWarning, match=r"rows with run_id 'p01', 'p02', 'p03' and 'p04' train 2e\+07-2e\+07 "
    ):
        warn_about_table(load_runs(_table(N=[10.0, 30.0, 100.0, 300.0])))  # N in millions
    # N and D both in billions keep a plausible ratio: only their size gives them away, each named
    billions = _table(N=[1.0, 3.0, 10.0, 30.0], D=[20.0, 60.0, 200.0, 600.0])
    with pytest.warns(bs.RunsTableWarning) as said:
        warn_about_table(load_runs(billions))
    texts = [str(w.message) for w in said]
    assert any("have N = 1-30, fewer parameters than any language model's training run" in t for t in texts)
    assert any("have D = 20-600, fewer tokens" in t and "is D in millions or billions?" in t for t in texts)
    with pytest.raises(bs.RunsTableError, match=r"must be in \[1, .*is N in millions or billions\? It is a count"):
        load_runs(_table(N=[0.01, 0.03, 0.1, 0.3]))
    swapped = runs.rename(columns={"N": "D", "D": "N"})  # 0.05 tokens per parameter in every row
    with pytest.warns(
        bs.RunsTableWarning, match=r"every row trains fewer tokens than parameters \(0.05-0.05 .*swapped"
    ):
        warn_about_table(load_runs(swapped[["run_id", "N", "D", "loss"]]))
    with pytest.warns(
        bs.RunsTableWarning, match=r"4 rows repeat their data \(column 'U': up to 8 epochs\), but spec 'x'"
    ):
        warn_about_table(runs.assign(U=runs["D"] / 8), law_columns=["N", "D"], law="spec 'x'")
    n = np.geomspace(1e7, 2e9, 8)
    d = n * np.array([5, 40, 10, 80, 20, 5, 40, 10])  # N and D apart: each law identified
    spread = pd.DataFrame({"N": n, "D": d, "loss": 1.8 + 400 / n**0.34 + 2000 / d**0.37})
    spread["loss"] *= np.exp(np.random.default_rng(0).normal(0, 0.01, len(n)))
    with pytest.warns(bs.RunsTableWarning, match="does not read U"):
        bs.fit("chinchilla", spread.assign(U=spread["D"] / np.tile([1, 2, 4, 8], 2)), method="laplace")
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.RunsTableWarning)
        bs.fit("data_constrained", spread.assign(U=spread["D"] / np.tile([1, 2, 4, 8], 2)), method="laplace")


def test_blank_lines_before_the_header_are_skipped(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("\n\nN,D,loss\n1e8,2e9,3.1\n\n2e8,4e9,2.9\n")
    assert list(load_runs(path)["loss"]) == [3.1, 2.9]
    path.write_text("\nN,D,loss\n1e8,2e9,3.1,7\n")
    with pytest.raises(RunsTableError, match="line 3 has more fields than the header's 3"):
        load_runs(path)


def test_append_through_a_dangling_folder_link_makes_no_folder(tmp_path):
    (tmp_path / "data").symlink_to(tmp_path / "unmounted" / "share")
    with pytest.raises(FileNotFoundError, match="whose folder does not exist"):
        append_run(tmp_path / "data" / "runs.csv", {"run_id": "a", "N": 1e8, "D": 2e9, "loss": 3.1})
    assert not (tmp_path / "unmounted").exists()


def test_spreadsheet_line_endings_and_separator_lines_are_read(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_bytes(b"N,D,loss\r1e8,2e9,3.1\r2e8,4e9,2.9\r")  # old Mac line endings
    assert list(load_runs(path)["loss"]) == [3.1, 2.9]
    path.write_text(",,\nN,D,loss\n1e8,2e9,3.1\n2e8,4e9,2.9\n")  # a line of separators before the header
    assert list(load_runs(path)["loss"]) == [3.1, 2.9]


def test_append_to_a_new_folder_and_through_a_dangling_link(tmp_path):
    append_run(tmp_path / "new" / "runs.csv", {"run_id": "a", "N": 1e8, "D": 2e9, "loss": 3.1})
    assert list(load_runs(tmp_path / "new" / "runs.csv")["run_id"]) == ["a"]
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "unmounted" / "runs.csv")
    with pytest.raises(FileNotFoundError, match="whose folder does not exist"):
        append_run(link, {"run_id": "a", "N": 1e8, "D": 2e9, "loss": 3.1})
    assert not (tmp_path / "unmounted").exists()  # no folder made where the link's target should be


def test_append_reads_the_table_as_load_runs_does(tmp_path):
    """A row with more fields than the header is refused by name, not read shifted (a run id read as N)."""
    path = tmp_path / "runs.csv"
    path.write_text("run_id,N,D,loss\nx,1e6,2e7,3.0,extra\n")
    before = path.read_bytes()
    with pytest.raises(RunsTableError, match="line 2 has more fields than the header's 4"):
        append_run(path, {"run_id": "y", "N": 2e6, "D": 4e7, "loss": 2.9})
    assert path.read_bytes() == before
    path.write_text("\nrun_id,N,D,loss,notes\nNA,1e6,2e7,3.0,\n")  # a blank line before the header, an id "NA"
    runs = append_run(path, {"run_id": "y", "N": 2e6, "D": 4e7, "loss": 2.9})
    assert list(runs["run_id"]) == ["NA", "y"] and list(runs["loss"]) == [3.0, 2.9]


def test_a_run_id_resumed_as_a_float_is_the_same_run(tmp_path):
    """pandas turns an integer column with a blank into floats: run 7 given back as 7.0 is still run "7",
    so ``if_exists="skip"`` keeps one row, not two."""
    path = tmp_path / "runs.csv"
    append_run(path, {"run_id": 7, "N": 1e8, "D": 2e9, "loss": 3.1})
    resumed = pd.DataFrame({"run_id": [7.0, np.nan], "N": [1e8, 2e8], "D": [2e9, 3e9], "loss": [3.1, 3.0]})
    runs = append_run(path, resumed, if_exists="skip")
    assert list(runs["run_id"]) == ["7", "run001"]
    with pytest.raises(RunsTableError, match="unique"):
        append_run(path, {"run_id": 7.0, "N": 1e8, "D": 2e9, "loss": 3.1})
    assert append_run(path, {"run_id": 7.5, "N": 3e8, "D": 2e9, "loss": 2.9})["run_id"].iloc[-1] == "7.5"
    # a table an earlier version wrote with the float's text: "7.0" is the same run as 7
    old = tmp_path / "old.csv"
    old.write_text("run_id,N,D,loss\n7.0,1e8,2e9,3.1\n")
    assert list(append_run(old, resumed.iloc[:1], if_exists="skip")["run_id"]) == ["7.0"]
    with pytest.raises(RunsTableError, match="unique"):
        append_run(old, {"run_id": "7", "N": 1e8, "D": 2e9, "loss": 3.1})


def test_a_writer_killed_mid_write_leaves_no_temporary_file_behind(tmp_path):
    """``kill -9`` during a write leaves the table as it was and a temporary file beside it, which the
    next write on this host removes (its writer no longer exists)."""
    import signal
    import subprocess
    import sys

    path = tmp_path / "runs.csv"
    append_run(path, {"run_id": "a", "N": 1e8, "D": 2e9, "loss": 3.1})
    before = path.read_bytes()
    writer = (
        "import sys, time\n"
        "from bayescale._io import atomic_write\n"
        "def stall(tmp):\n"
        "    open(tmp, 'w').write('half a table')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(120)\n"
        "atomic_write(sys.argv[1], stall)\n"
    )
    with subprocess.Popen([sys.executable, "-c", writer, str(path)], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout.readline().strip() == "writing"
        finally:
            proc.send_signal(signal.SIGKILL)
    left = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and path.read_bytes() == before
    runs = append_run(path, {"run_id": "b", "N": 2e8, "D": 4e9, "loss": 3.0})
    assert list(runs["run_id"]) == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv", "runs.csv.lock"]


def test_a_write_keeps_the_files_mode_and_never_replaces_a_pipe(tmp_path):
    """A file replaced keeps its mode, a new one gets what ``open`` gives (0666 less the umask: mkstemp
    made fits private); a pipe or device at the path is refused, not turned into a plain file."""
    import stat

    from bayescale._io import atomic_write_bytes

    shared = tmp_path / "shared.nc"
    shared.write_bytes(b"old")
    shared.chmod(0o664)
    atomic_write_bytes(shared, b"new")
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o664 and shared.read_bytes() == b"new"
    old_mask = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "fresh.nc", b"x")
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE(os.stat(tmp_path / "fresh.nc").st_mode) == 0o640
    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    with pytest.raises(OSError, match="not a regular file"):
        append_run(pipe, {"run_id": "a", "N": 1e8, "D": 2e9, "loss": 3.1})
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)


def test_the_cleanup_leaves_live_writers_and_other_hosts_temporary_files_alone(tmp_path):
    """Only a dead writer's temporary file from this host and pid namespace is removed: this process's
    own (alive) and another host's (whose pid means nothing here) stay."""
    import subprocess

    from bayescale._io import _owner, remove_orphans

    path = tmp_path / "runs.csv"
    with subprocess.Popen(["true"]) as dead:
        pass
    mine = _owner()
    files = {
        "dead": tmp_path / f".runs.csv.{mine}-{dead.pid}.a1.tmp",
        "alive": tmp_path / f".runs.csv.{mine}-{os.getpid()}.b2.tmp",
        "other host": tmp_path / f".runs.csv.elsewhere-{mine.rsplit('-', 1)[1]}-{dead.pid}.c3.tmp",
        "other file": tmp_path / f".runs2.csv.{mine}-{dead.pid}.d4.tmp",
    }
    for f in files.values():
        f.write_text("x")
    assert remove_orphans(path) == [files["dead"]]
    assert all(f.exists() for name, f in files.items() if name != "dead")
