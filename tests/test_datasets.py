"""Tests of bayescale.datasets. They never touch the network.

The tests that need real data use the public data folder ``shared/data`` beside the
repository (through ``BAYESCALE_DATA``) and are skipped when it is absent. The
download path is tested with fakes of ``pooch.retrieve``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pooch
import pytest

from bayescale import datasets
from bayescale.datasets import (
    REGISTRY,
    data_home,
    fetch,
    list_datasets,
    load_chinchilla,
    load_datablations,
    load_steplaw,
)
from bayescale.errors import BayescaleError, DatasetError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

CHINCHILLA = REGISTRY["chinchilla-epoch"]
REAL_RETRIEVE = pooch.retrieve


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    """No test sees the caller's data or cache settings, or the real network."""
    monkeypatch.delenv("BAYESCALE_DATA", raising=False)
    monkeypatch.setenv("BAYESCALE_CACHE", str(tmp_path_factory.mktemp("cache")))

    def no_network(*args, **kwargs):
        raise AssertionError("test tried to download with pooch.retrieve")

    monkeypatch.setattr(pooch, "retrieve", no_network)


@pytest.fixture
def local_data(monkeypatch):
    """Point BAYESCALE_DATA at shared/data, or skip if it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip("public data not available: set BAYESCALE_DATA to a local copy of shared/data")
    monkeypatch.setenv("BAYESCALE_DATA", str(SHARED_DATA))
    return SHARED_DATA


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


# --- registry -------------------------------------------------------------------


def test_list_datasets():
    names = list_datasets()
    assert names == sorted(REGISTRY)
    assert "chinchilla-epoch" in names
    assert all(isinstance(name, str) for name in names)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_entries_are_well_formed(name):
    info = REGISTRY[name]
    folder, file = info.path.split("/")
    assert folder and file
    assert re.fullmatch(r"https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/\S+", info.url), info.url
    assert info.url.endswith(file.removeprefix("colpret_"))
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", info.known_hash)


def test_chinchilla_epoch_origin():
    assert CHINCHILLA.path == "chinchilla-epoch/svg_extracted_data.csv"
    assert CHINCHILLA.url == (
        "https://raw.githubusercontent.com/epoch-research/analyzing-chinchilla/"
        "92258837425e1b5f2851d624287f0120583a3d0e/data/svg_extracted_data.csv"
    )


def test_chinchilla_epoch_md5_matches_source_md(local_data):
    # SOURCE.md states the md5 of the upstream file; the registered sha256 is of the
    # same bytes.
    path = local_data / CHINCHILLA.path
    assert hashlib.md5(path.read_bytes()).hexdigest() == "0e6c634f7ff189463f2638cb60fc32ab"
    assert _sha256(path) == CHINCHILLA.known_hash


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_fetch_every_registered_file_from_local_copy(local_data, name):
    path = fetch(name)
    assert path == local_data / REGISTRY[name].path
    assert _sha256(path) == REGISTRY[name].known_hash


# --- fetch from BAYESCALE_DATA --------------------------------------------------


def test_unknown_name_lists_available_datasets():
    with pytest.raises(DatasetError, match="unknown dataset 'nope'") as err:
        fetch("nope")
    for name in list_datasets():
        assert name in str(err.value)
    assert isinstance(err.value, ValueError)
    assert isinstance(err.value, BayescaleError)


def test_tampered_local_copy_raises_hash_mismatch(local_data, tmp_path, monkeypatch):
    copy = tmp_path / CHINCHILLA.path
    copy.parent.mkdir(parents=True)
    shutil.copyfile(local_data / CHINCHILLA.path, copy)
    data = bytearray(copy.read_bytes())
    data[100] = ord("7") if data[100] != ord("7") else ord("8")
    copy.write_bytes(bytes(data))
    monkeypatch.setenv("BAYESCALE_DATA", str(tmp_path))

    with pytest.raises(DatasetError, match="hash mismatch") as err:
        fetch("chinchilla-epoch")
    message = str(err.value)
    assert str(copy) in message
    assert CHINCHILLA.known_hash in message
    assert _sha256(copy) in message
    with pytest.raises(DatasetError, match="hash mismatch"):
        load_chinchilla()


def test_untampered_copy_elsewhere_is_accepted(local_data, tmp_path, monkeypatch):
    copy = tmp_path / CHINCHILLA.path
    copy.parent.mkdir(parents=True)
    shutil.copyfile(local_data / CHINCHILLA.path, copy)
    monkeypatch.setenv("BAYESCALE_DATA", str(tmp_path))
    assert fetch("chinchilla-epoch") == copy


def test_missing_file_in_local_copy_raises_without_download(tmp_path, monkeypatch):
    (tmp_path / "chinchilla-epoch").mkdir()
    monkeypatch.setenv("BAYESCALE_DATA", str(tmp_path))
    # pooch.retrieve is replaced by a fake that fails the test if called.
    with pytest.raises(DatasetError, match="missing") as err:
        fetch("chinchilla-epoch")
    message = str(err.value)
    assert "BAYESCALE_DATA" in message
    assert CHINCHILLA.path in message


def test_local_copy_that_is_not_a_directory_raises(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESCALE_DATA", str(tmp_path / "does-not-exist"))
    with pytest.raises(DatasetError, match="not a directory"):
        fetch("chinchilla-epoch")


# --- fetch by download (faked) --------------------------------------------------


def test_data_home_uses_env_var_or_pooch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESCALE_CACHE", str(tmp_path))
    assert data_home() == tmp_path
    monkeypatch.delenv("BAYESCALE_CACHE")
    assert data_home() == Path(pooch.os_cache("bayescale"))


def test_fetch_downloads_with_pooch(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESCALE_CACHE", str(tmp_path))
    calls = []

    def fake_retrieve(url, known_hash=None, fname=None, path=None, **kwargs):
        calls.append(url)
        assert url == CHINCHILLA.url
        assert known_hash == CHINCHILLA.known_hash
        assert Path(path) == tmp_path / "chinchilla-epoch"
        assert fname == "svg_extracted_data.csv"
        target = Path(path) / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("x\n")
        return str(target)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    path = fetch("chinchilla-epoch")
    assert isinstance(path, Path)
    assert path == tmp_path / CHINCHILLA.path
    assert calls == [CHINCHILLA.url]


def test_fetch_uses_verified_cache_with_real_pooch(local_data, tmp_path, monkeypatch):
    # A cached file with the right hash is returned by the real pooch.retrieve
    # without any download.
    monkeypatch.delenv("BAYESCALE_DATA")
    monkeypatch.setenv("BAYESCALE_CACHE", str(tmp_path))
    cached = tmp_path / CHINCHILLA.path
    cached.parent.mkdir(parents=True)
    shutil.copyfile(local_data / CHINCHILLA.path, cached)
    monkeypatch.setattr(pooch, "retrieve", REAL_RETRIEVE)
    monkeypatch.setattr(pooch.core, "stream_download", lambda *a, **k: pytest.fail("tried to download"))
    assert fetch("chinchilla-epoch") == cached
    assert len(load_chinchilla()) == 240


def test_empty_bayescale_data_means_download(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESCALE_DATA", "")
    monkeypatch.setattr(pooch, "retrieve", lambda url, **kwargs: str(tmp_path / "f.csv"))
    assert fetch("gpt3-curves") == tmp_path / "f.csv"


@pytest.mark.parametrize("exc", [OSError("Network is unreachable"), ValueError("SHA256 hash of downloaded file")])
def test_download_failure_suggests_local_copy(monkeypatch, exc):
    def failing_retrieve(*args, **kwargs):
        raise exc

    monkeypatch.setattr(pooch, "retrieve", failing_retrieve)
    with pytest.raises(DatasetError) as err:
        fetch("chinchilla-epoch")
    message = str(err.value)
    assert "'chinchilla-epoch'" in message
    assert CHINCHILLA.url in message
    assert "BAYESCALE_DATA" in message
    assert str(exc) in message
    assert err.value.__cause__ is exc


def test_loader_wraps_download_failure(monkeypatch):
    def failing_retrieve(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(pooch, "retrieve", failing_retrieve)
    with pytest.raises(DatasetError, match="BAYESCALE_DATA"):
        load_chinchilla()


# --- loaders --------------------------------------------------------------------


def test_load_chinchilla(local_data):
    runs = load_chinchilla()
    assert len(runs) == 240
    assert runs.columns.tolist() == ["run_id", "N", "D", "C", "loss", "source"]
    assert isinstance(runs.index, pd.RangeIndex)
    assert runs.index.tolist() == list(range(240))
    for col in ["N", "D", "C", "loss"]:
        assert np.isfinite(runs[col]).all()
        assert (runs[col] > 0).all()
    np.testing.assert_allclose(runs["D"], runs["C"] / (6 * runs["N"]), rtol=1e-12)
    assert (runs["source"] == "chinchilla-epoch").all()
    assert runs["run_id"].is_unique
    assert runs["run_id"].str.fullmatch(r"chinchilla-\d{3}").all()

    raw = pd.read_csv(local_data / CHINCHILLA.path)
    assert len(raw) == 245
    dropped = raw["loss"].nlargest(5)
    assert runs["loss"].max() < dropped.min()
    # The kept runs are the file's other rows, in file order, with ids by file row.
    kept = raw.drop(index=dropped.index)
    np.testing.assert_array_equal(runs["loss"], kept["loss"])
    np.testing.assert_array_equal(runs["N"], kept["Model Size"])
    np.testing.assert_array_equal(runs["C"], kept["Training FLOP"])
    assert runs["run_id"].tolist() == [f"chinchilla-{i:03d}" for i in kept.index]


def test_load_chinchilla_drop_highest(local_data):
    full = load_chinchilla(drop_highest=0)
    assert len(full) == 245
    assert full["run_id"].tolist()[:2] == ["chinchilla-000", "chinchilla-001"]
    fewer = load_chinchilla(drop_highest=2)
    assert len(fewer) == 243
    assert fewer["loss"].max() == pytest.approx(full["loss"].nlargest(3).iloc[-1])
    # Ids refer to the same run whatever is dropped.
    merged = fewer.merge(full, on="run_id", suffixes=("", "_full"))
    np.testing.assert_array_equal(merged["loss"], merged["loss_full"])


@pytest.mark.parametrize("bad", [-1, 245, 1000, 2.5, "5", True, None])
def test_load_chinchilla_rejects_bad_drop_highest(local_data, bad):
    with pytest.raises(DatasetError, match="drop_highest"):
        load_chinchilla(drop_highest=bad)


def test_load_datablations(local_data):
    runs = load_datablations()
    assert len(runs) == 229
    for col in ["run_id", "run_name", "N", "D", "C", "loss", "epochs", "unique_tokens"]:
        assert col in runs.columns
    for col in ["N", "D", "C", "loss", "epochs", "unique_tokens"]:
        assert (runs[col] > 0).all()
    np.testing.assert_allclose(runs["C"], 6 * runs["N"] * runs["D"], rtol=1e-12)
    np.testing.assert_allclose(runs["unique_tokens"] * runs["epochs"], runs["D"], rtol=1e-12)
    assert runs["run_id"].is_unique
    assert runs["run_name"].is_unique
    assert (runs["source"] == "datablations").all()
    assert (runs["data"] == "c4").all()
    first = runs.iloc[0]
    assert first["run_name"] == "2b84b4b"
    assert first["N"] == pytest.approx(2.81e9)
    assert first["D"] == pytest.approx(4e9)
    assert first["unique_tokens"] == pytest.approx(4e9)
    fixed = runs.set_index("run_name").loc["2b855b1b25"]
    assert fixed["epochs"] == 44
    assert fixed["unique_tokens"] == pytest.approx(1.25e9, rel=1e-2)


def test_load_steplaw_best_lr_matches_source_table(local_data):
    runs = load_steplaw()
    assert len(runs) == 17
    assert runs["run_id"].is_unique
    best = pd.read_csv(local_data / "steplaw" / "dense_best_lr.csv").sort_values(["N", "D"], kind="stable")
    assert runs["exp_name"].tolist() == best["exp_name"].tolist()
    np.testing.assert_allclose(runs["loss"], best["smooth loss"])
    np.testing.assert_allclose(runs["C"], 6 * runs["N"] * runs["D"])
    full = load_steplaw(best_lr=False)
    assert len(full) == 1911
    assert set(runs["run_id"]) <= set(full["run_id"])


def test_module_exports():
    for name in datasets.__all__:
        assert hasattr(datasets, name)
    assert {"fetch", "list_datasets", "data_home", "load_chinchilla"} <= set(datasets.__all__)
