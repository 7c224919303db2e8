"""The committed pilot sweep (data/pilot_runs.csv, made by `bayescale pilot sweep data/pilot_sweep.toml`):
its design, and the Chinchilla spec's fit and leave-largest-out check on it."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import checks
from bayescale.errors import ConvergenceWarning
from bayescale.runner.sweep import load_plan

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "data" / "pilot_runs.csv"
PLAN = ROOT / "data" / "pilot_sweep.toml"


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return bs.load_runs(TABLE)


def test_sweep_design(runs):
    assert len(runs) >= 16
    assert math.log10(runs["N"].max() / runs["N"].min()) >= 1.5
    ratios = (runs["tokens_requested"] / runs["n_params_requested"]).round().unique()
    assert len(ratios) >= 3
    # Every row came from the committed plan, with its provenance and its curve beside the table.
    plan = load_plan(PLAN)
    assert len(runs) == len(plan.jobs) and plan.table == TABLE
    assert set(runs["corpus"]) == {"stdlib"} and runs["config_hash"].is_unique
    for col in (
        "seed",
        "arch",
        "corpus_hash",
        "tokenizer_hash",
        "wall_s",
        "device",
        "version_torch",
        "C_analytic",
        "N_total",
    ):
        assert runs[col].notna().all(), col
    curves = TABLE.with_name("pilot_runs_curves")
    for rid, loss in zip(runs["run_id"], runs["loss"]):
        curve = pd.read_csv(curves / f"{rid}.csv")
        assert curve["eval_loss"].iloc[-1] == pytest.approx(loss)
        assert json.loads((curves / f"{rid}.json").read_text())["row"]["run_id"] == rid
    assert (runs["loss"] < runs["unigram_entropy"]).all()


def test_more_compute_more_data_lower_loss(runs):
    # At each size, more tokens gave lower held-out loss.
    for _, g in runs.groupby("n_params_requested"):
        assert np.all(np.diff(g.sort_values("D")["loss"].to_numpy()) < 0)


@pytest.mark.slow
def test_chinchilla_fit_converges_and_covers_the_largest_runs(runs):
    spec = bs.load_spec(ROOT / "models" / "chinchilla.toml")
    fit = bs.fit(spec, runs, seed=0)
    summary = fit.summary()
    assert summary["r_hat"].max() <= 1.01, summary
    assert fit.diagnostics()["divergences"] <= 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        val = checks.leave_largest_out(spec, runs, seed=0, holdout_top=0.2)
    # The 23-run training fit may warn about a low tail ESS of A; it must still have converged.
    assert all(issubclass(w.category, ConvergenceWarning) for w in caught), [str(w.message) for w in caught]
    assert val.fit.summary()["r_hat"].max() <= 1.01
    assert len(val.table) >= 5
    # Every held-out (largest-compute) run falls inside its 90% predictive interval.
    assert val.coverage[0.9] == 1.0, val.table


def test_a_spec_can_fit_the_analytic_flop_count(runs):
    # The FLOP convention is a recorded column; a spec names the one it wants.
    raw = bs.load_spec("power").to_dict()
    raw["law"] = {"name": "power", "inputs": {"S": "C_analytic"}}
    spec = bs.load_spec(raw)
    assert spec.columns == ("C_analytic",)
    fit = bs.fit(spec, runs, method="laplace", seed=0)
    assert np.allclose(fit.idata.constant_data["C_analytic"].values, runs["C_analytic"].to_numpy())
    med = fit.summary()["median"]
    assert med["b"] < 0 < med["E"]
