"""Inference: the NumPyro model, the flat posterior, and the Fit API.

* Deterministic model evaluation: at fixed parameter values NumPyro's potential
  energy of :func:`make_model` equals the internal ``_Posterior.potential`` (the
  function MAP, Laplace and NUTS actually use), and the model's log density equals
  a hand computation with :mod:`scipy.stats`.
* The Fit API on a small synthetic Chinchilla data set (fitted once per module):
  InferenceData layout, prediction, summaries, diagnostics, save/load, staleness,
  seeds, errors, Laplace against NUTS, and the multiplicative law's identifiability.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pandas as pd
import pytest
import scipy.stats as st
import xarray as xr
from numpyro.infer.util import log_density, potential_energy

import bayescale as bs
from bayescale import _engine
from bayescale._engine import MAX_BATCHES
from bayescale._words import restepped_words
from bayescale.data import law_inputs, points_frame
from bayescale.errors import (
    BayescaleError,
    ConvergenceWarning,
    IdentifiabilityWarning,
    StaleFitError,
)
from bayescale.model import Posterior as _Posterior
from bayescale.model import make_model, noise_names
from bayescale.testing import synthetic_runs

REPO = Path(__file__).resolve().parents[1]

# Tests that fit (or use a module fixture that fits) take seconds each.
slow = pytest.mark.slow

# Near Epoch AI's fit of the Chinchilla runs (Besiroglu et al. 2024).
TRUTH = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
# 8 model sizes x 5 tokens-per-parameter ratios: enough spread that E, A and B
# are pinned down and 2 chains of 1000 draws converge (r-hat <= 1.01) for any seed.
GRID = dict(N=np.geomspace(1e7, 3e10, 8), tokens_per_param=(2, 5, 20, 80, 320))
SAMPLER = dict(chains=2, warmup=500, draws=1000)
PARAMS = ["E", "A", "B", "alpha", "beta"]
# The bundled chinchilla spec has an extrapolation prior: a drift per decade beyond the runs.
POSTERIOR_VARS = PARAMS + ["sigma", "drift"]


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return synthetic_runs("chinchilla", TRUTH, sigma=0.01, seed=0, **GRID)


@pytest.fixture(scope="module")
def spec() -> bs.ModelSpec:
    return bs.load_spec("chinchilla")


@pytest.fixture(scope="module")
def nuts_fit(spec, runs) -> bs.Fit:
    # Any warning here (ConvergenceWarning included) is an error under the test settings.
    return bs.fit(spec, runs, seed=0, **SAMPLER)


@pytest.fixture(scope="module")
def laplace_fit(spec, runs) -> bs.Fit:
    return bs.fit(spec, runs, seed=0, method="laplace", chains=2, draws=1000)


def _logx(spec: bs.ModelSpec, runs: pd.DataFrame) -> dict[str, jnp.ndarray]:
    # The fit's own reading of the inputs (a law input like U may fall back to another column).
    return {name: jnp.asarray(v) for name, v in law_inputs(spec, runs).items()}


# ------------------------------------------------ deterministic evaluation


def _spec_with_df_prior() -> bs.ModelSpec:
    d = bs.load_spec("chinchilla").to_dict()
    d["likelihood"]["df"] = {"dist": "Gamma", "concentration": 2.0, "rate": 0.1}
    return bs.load_spec(d)


def _power_in_N() -> bs.ModelSpec:
    d = bs.load_spec("power").to_dict()
    d["law"]["inputs"] = {"S": "N"}
    return bs.load_spec(d)


POTENTIAL_SPECS = {
    # Every bundled spec (so a new likelihood family or law in models/ is covered) ...
    **{
        name: (lambda name=name: bs.load_spec(name))
        for name in bs.bundled_specs()
        if isinstance(bs.load_spec(name), bs.ModelSpec)  # an average's members are bundled specs themselves
    },
    # ... and variants: Student-t df with a prior, a law input mapped to another column.
    "chinchilla-df-prior": _spec_with_df_prior,
    "power-in-N": _power_in_N,
}


@pytest.mark.parametrize("which", list(POTENTIAL_SPECS))
def test_potential_matches_numpyro(which: str, runs: pd.DataFrame) -> None:
    spec = POTENTIAL_SPECS[which]()
    model = make_model(spec)
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        post = _Posterior(spec)
        assert post.names == list(spec.law.params) + noise_names(spec)
        logx = _logx(spec, runs)
        y = jnp.asarray(np.log(runs["loss"].to_numpy(np.float64)))
        for flat in post.prior_draws(rng, 3):
            params = {n: jnp.asarray(flat[i]) for i, n in enumerate(post.names)}
            expected = float(potential_energy(model, (), {"logx": logx, "y": y}, params))
            got = post.potential(jnp.asarray(flat), logx, y)
            assert got.dtype == jnp.float64
            assert float(got) == pytest.approx(expected, rel=1e-12, abs=1e-8)
            assert math.isfinite(expected)


@pytest.mark.parametrize("which", ["chinchilla", "power", "multiplicative", "kaplan"])
def test_reference_scale_coordinates_keep_the_density(which: str, runs: pd.DataFrame) -> None:
    """NUTS samples each declared coefficient at the runs' mean log input (Law.power_terms).

    The map must be invertible with unit Jacobian, so the potential in the sampler's
    coordinates is NumPyro's at the mapped point, and each reference coordinate must be the
    declared term's value at the centre: log A - alpha * mean(log N) for Chinchilla's A/N^alpha.
    """
    spec = bs.load_spec(which)
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        post = _Posterior(spec)
        logx = _logx(spec, runs)
        centre = {k: jnp.mean(v) for k, v in logx.items()}
        flats = jnp.asarray(post.prior_draws(rng, 4))
        w = post.to_reference(flats, centre)
        np.testing.assert_allclose(post.to_reference(w, centre, inverse=True), flats, rtol=0, atol=1e-9)
        jac = jax.jacobian(lambda f: post.to_reference(f, centre))(flats[0])
        assert float(jnp.linalg.det(jac)) == pytest.approx(1.0, abs=1e-9)
        moved = {post.names[i] for i, *_ in post.reference_terms()}
        assert moved == set(spec.law.power_terms)  # kaplan and multiplicative declare none: nothing moves
        if which == "chinchilla":
            i, j = post.names.index("A"), post.names.index("alpha")
            want = flats[:, i] - jnp.exp(flats[:, j]) * centre["N"]
            np.testing.assert_allclose(w[:, i], want, rtol=1e-12)


def test_bad_power_terms_are_refused() -> None:
    law = bs.get_law("chinchilla")
    with pytest.raises(bs.LawError, match="power_terms entry 'A'"):
        bs.Law(
            name="bad",
            formula="",
            inputs=law.inputs,
            params=law.params,
            log_loss=law.log_loss,
            priors=law.priors,
            power_terms={"A": (("gamma", "N", -1.0),)},
        )


def test_model_sites(runs: pd.DataFrame) -> None:
    spec = _spec_with_df_prior()
    with jax.enable_x64(True):
        logx, y = _logx(spec, runs), jnp.asarray(np.log(runs["loss"].to_numpy()))
        tr = numpyro.handlers.trace(numpyro.handlers.seed(make_model(spec), 0)).get_trace(logx=logx, y=y)
        # Without y the model simulates log losses (prior predictive).
        pred = numpyro.infer.Predictive(make_model(spec), num_samples=7)(jax.random.PRNGKey(0), logx=logx)
    sample_sites = [k for k, s in tr.items() if s["type"] == "sample"]
    assert sample_sites == PARAMS + ["sigma", "df", "log_loss"]
    assert tr["log_loss"]["is_observed"] and tr["log_loss"]["value"].shape == (len(runs),)
    assert tr["run"]["type"] == "plate" and tr["run"]["args"][0] == len(runs)
    assert pred["log_loss"].shape == (7, len(runs))


def _hand_log_joint(values: dict, runs: pd.DataFrame, family: str, df: float | None = None) -> float:
    """log p(theta, sigma[, df]) + log p(y | ...) with scipy.stats and plain NumPy."""
    N, D = runs["N"].to_numpy(), runs["D"].to_numpy()
    y = np.log(runs["loss"].to_numpy())
    E, A, B, alpha, beta, sigma = (values[k] for k in ["E", "A", "B", "alpha", "beta", "sigma"])
    mu = np.log(E + A / N**alpha + B / D**beta)
    lp = (
        st.lognorm(s=0.5, scale=math.exp(0.5)).logpdf(E)
        + st.lognorm(s=3.0, scale=math.exp(6.0)).logpdf(A)
        + st.lognorm(s=3.0, scale=math.exp(7.0)).logpdf(B)
        + st.lognorm(s=0.5, scale=math.exp(-1.2)).logpdf(alpha)
        + st.lognorm(s=0.5, scale=math.exp(-1.2)).logpdf(beta)
        + st.halfnorm(scale=0.05).logpdf(sigma)
    )
    if family == "Normal":
        return float(lp + st.norm(mu, sigma).logpdf(y).sum())
    if "df" in values:
        lp += st.gamma(a=2.0, scale=1 / 0.1).logpdf(values["df"])
        df = values["df"]
    return float(lp + st.t(df=df, loc=mu, scale=sigma).logpdf(y).sum())


HAND = {"E": 1.8, "A": 450.0, "B": 2200.0, "alpha": 0.34, "beta": 0.37, "sigma": 0.02}


@pytest.mark.parametrize(
    "which,family,values,df",
    [
        ("chinchilla_normal", "Normal", HAND, None),
        ("chinchilla", "StudentT", HAND, 4.0),
        ("chinchilla-df-prior", "StudentT", dict(HAND, df=7.5), None),
    ],
)
def test_log_density_by_hand(which: str, family: str, values: dict, df, runs: pd.DataFrame) -> None:
    spec = POTENTIAL_SPECS[which]()
    expected = _hand_log_joint(values, runs, family, df)
    with jax.enable_x64(True):
        logx, y = _logx(spec, runs), jnp.asarray(np.log(runs["loss"].to_numpy()))
        vals = {k: jnp.asarray(v) for k, v in values.items()}
        ld, _ = log_density(make_model(spec), (), {"logx": logx, "y": y}, vals)
        # The same through substitute + trace, summing every sample site's log density.
        tr = numpyro.handlers.trace(numpyro.handlers.substitute(make_model(spec), data=vals)).get_trace(logx=logx, y=y)
        total = sum(float(jnp.sum(s["fn"].log_prob(s["value"]))) for s in tr.values() if s["type"] == "sample")
    assert float(ld) == pytest.approx(expected, rel=1e-10, abs=1e-8)
    assert total == pytest.approx(expected, rel=1e-10, abs=1e-8)


# ------------------------------------------------------------- the Fit API


@slow
def test_fit_recovers_truth_roughly(nuts_fit: bs.Fit) -> None:
    table = nuts_fit.summary(ci_prob=0.99)
    for k, v in TRUTH.items():
        assert table.loc[k, "0.5%"] < v < table.loc[k, "99.5%"], (k, v, table.loc[k].to_dict())


@slow
def test_idata_groups_and_dims(nuts_fit: bs.Fit, runs: pd.DataFrame) -> None:
    idata = nuts_fit.idata
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data", "constant_data"} <= set(idata.groups())
    post = idata.posterior
    assert set(post.data_vars) == set(POSTERIOR_VARS)  # df is fixed in this spec
    assert nuts_fit.var_names == POSTERIOR_VARS
    for v in post.data_vars:
        assert post[v].dims == ("chain", "draw")
        assert post[v].dtype == np.float64
    assert post.sizes == {"chain": 2, "draw": 1000}
    ll = idata.log_likelihood["log_loss"]
    assert ll.dims == ("chain", "draw", "run") and ll.shape == (2, 1000, len(runs))
    assert list(ll["run"].values) == list(runs["run_id"])
    obs = idata.observed_data["log_loss"]
    assert obs.dims == ("run",)
    np.testing.assert_allclose(obs.values, np.log(runs["loss"].to_numpy()), rtol=1e-14)
    for c in ("N", "D", "C"):
        assert idata.constant_data[c].dims == ("run",)
        np.testing.assert_allclose(idata.constant_data[c].values, runs[c].to_numpy(), rtol=1e-14)
    stats = idata.sample_stats
    assert {"diverging", "lp", "step_size", "tree_depth", "n_steps", "acceptance_rate", "energy"} <= set(
        stats.data_vars
    )
    assert stats["diverging"].dtype == bool
    a = idata.attrs
    assert a["spec_id"] == nuts_fit.spec.id and a["model_id"] == nuts_fit.spec.model_id
    assert a["method"] == "nuts" and a["seed"] == 0
    assert a["runs_hash"] == bs.data.runs_hash(bs.load_runs(runs))


@slow
def test_log_likelihood_matches_scipy(nuts_fit: bs.Fit, runs: pd.DataFrame) -> None:
    draw = {k: float(nuts_fit.posterior[k].values[1, 123]) for k in PARAMS + ["sigma"]}
    N, D, y = runs["N"].to_numpy(), runs["D"].to_numpy(), np.log(runs["loss"].to_numpy())
    mu = np.log(draw["E"] + draw["A"] / N ** draw["alpha"] + draw["B"] / D ** draw["beta"])
    expected = st.t(df=4.0, loc=mu, scale=draw["sigma"]).logpdf(y)
    np.testing.assert_allclose(nuts_fit.idata.log_likelihood["log_loss"].values[1, 123], expected, rtol=1e-9)


@slow
def test_fit_keeps_the_runs(nuts_fit: bs.Fit, runs: pd.DataFrame) -> None:
    assert list(nuts_fit.runs["run_id"]) == list(runs["run_id"])
    np.testing.assert_array_equal(nuts_fit.runs["loss"].to_numpy(), runs["loss"].to_numpy())


@slow
def test_positive_parameters_stay_positive(nuts_fit: bs.Fit) -> None:
    for k in PARAMS + ["sigma"]:
        assert np.all(nuts_fit.posterior[k].values > 0)


# ---- predict


@slow
def test_predict_dims_and_coords(nuts_fit: bs.Fit) -> None:
    band = nuts_fit.predict({"N": 7e10, "D": 1.4e12})
    assert isinstance(band, xr.DataArray) and band.name == "loss"
    assert band.dims == ("chain", "draw", "point") and band.shape == (2, 1000, 1)
    assert band["N"].values.tolist() == [7e10] and band["D"].values.tolist() == [1.4e12]
    assert band["C"].values[0] == pytest.approx(6 * 7e10 * 1.4e12, rel=1e-15)
    assert band["point"].values.tolist() == [0]


@slow
def test_predict_is_the_law_at_each_draw(nuts_fit: bs.Fit, runs: pd.DataFrame) -> None:
    # One point inside the runs' compute range, one 1.5 decades beyond it.
    c_max = runs["C"].max()
    N = np.array([1e8, 1e11])
    D = np.array([2e9, 10**1.5 * c_max / (6 * 1e11)])
    band = nuts_fit.predict({"N": N, "D": D})
    p = {k: nuts_fit.posterior[k].values[..., None] for k in POSTERIOR_VARS}
    law = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
    # Away from the runs the law may drift: exp(drift * distance from the nearest run in decades of (N, D)).
    decades = np.hypot(np.log10(N[:, None] / runs["N"].to_numpy()), np.log10(D[:, None] / runs["D"].to_numpy())).min(1)
    assert decades[0] == pytest.approx(0.0, abs=0.35) and decades[1] > 1.0
    np.testing.assert_allclose(band.values, law * np.exp(p["drift"] * decades), rtol=1e-12)
    # The drift is the spec's extrapolation prior, HalfNormal(0.02) * Normal(0, 1): sd 0.02.
    assert float(np.std(p["drift"])) == pytest.approx(0.02, rel=0.15)
    # And the band covers the truth.
    true = TRUTH["E"] + TRUTH["A"] / N ** TRUTH["alpha"] + TRUTH["B"] / D ** TRUTH["beta"]
    lo, hi = band.quantile([0.005, 0.995], dim=("chain", "draw")).values
    assert np.all(lo < true) and np.all(true < hi)


@slow
def test_predict_noise_is_wider(nuts_fit: bs.Fit) -> None:
    pts = {"N": [1e8, 1e9, 7e10], "D": [2e9, 2e10, 1.4e12]}
    law_band = nuts_fit.predict(pts)
    run_band = nuts_fit.predict(pts, noise=True)
    q = [0.05, 0.5, 0.95]
    a = law_band.quantile(q, dim=("chain", "draw")).values
    b = run_band.quantile(q, dim=("chain", "draw")).values
    assert np.all(b[2] - b[0] > a[2] - a[0])
    np.testing.assert_allclose(b[1], a[1], rtol=0.01)
    # Noise draws are seeded.
    np.testing.assert_array_equal(run_band.values, nuts_fit.predict(pts, noise=True).values)
    assert not np.array_equal(run_band.values, nuts_fit.predict(pts, noise=True, seed=1).values)


@slow
def test_predict_point_forms_agree(nuts_fit: bs.Fit) -> None:
    as_dict = nuts_fit.predict({"N": [1e9, 1e10], "D": [2e10, 2e11]})
    as_frame = nuts_fit.predict(pd.DataFrame({"N": [1e9, 1e10], "D": [2e10, 2e11]}))
    as_list = nuts_fit.predict([{"N": 1e9, "D": 2e10}, {"N": 1e10, "D": 2e11}])
    from_c = nuts_fit.predict({"N": [1e9, 1e10], "C": [6 * 1e9 * 2e10, 6 * 1e10 * 2e11]})
    for other in (as_frame, as_list, from_c):
        np.testing.assert_allclose(other.values, as_dict.values, rtol=1e-12)
        np.testing.assert_allclose(other["C"].values, as_dict["C"].values, rtol=1e-15)
        np.testing.assert_allclose(other["D"].values, as_dict["D"].values, rtol=1e-12)
    # Broadcasting: one D for several N.
    bc = nuts_fit.predict({"N": [1e9, 1e10, 1e11], "D": 2e11})
    assert bc.sizes["point"] == 3 and bc["D"].values.tolist() == [2e11] * 3


def test_points_frame_derives_columns() -> None:
    f = points_frame({"C": 6e20, "D": 1e10})
    assert f["N"].iloc[0] == pytest.approx(1e10)
    f = points_frame(pd.DataFrame({"N": [1e9], "D": [2e10]}))
    assert f["C"].iloc[0] == pytest.approx(1.2e20)


@slow
@slow
@pytest.mark.parametrize(
    "points,message",
    [
        (
            {"N": 1e9},
            r"needs column 'D' \(input 'D'\); the table has \['N'\]; give D, or two of N, D and C \(C = 6 N D",
        ),
        ({"N": -1e9, "D": 1e10}, r"points: 'N' must be in \[1, 1e\+15\]"),
        ({"N": [1e9, 1e10], "D": [1e10, 1e11, 1e12]}, r"points: inputs do not broadcast together"),
        ("N=1e9", r"law 'chinchilla' needs column 'D' \(input 'D'\); the table has \['N'\]"),  # text as --at
        ("N=1e9;D", r"points 'N=1e9;D'"),
        ([], r"points: no points given"),
        (7e9, r"points must be a mapping, a DataFrame, a list of mappings or text like 'N=7e9,D=1.4e12', got float"),
    ],
)
def test_predict_errors(nuts_fit: bs.Fit, points, message: str) -> None:
    with pytest.raises(BayescaleError, match=message):
        nuts_fit.predict(points)


# ---- summary and diagnostics


@slow
def test_summary_columns_and_values(nuts_fit: bs.Fit) -> None:
    table = nuts_fit.summary()
    assert list(table.index) == POSTERIOR_VARS
    assert list(table.columns) == ["mean", "sd", "5%", "median", "95%", "ess_bulk", "ess_tail", "r_hat"]
    x = nuts_fit.posterior["alpha"].values.reshape(-1)
    assert table.loc["alpha", "median"] == pytest.approx(np.median(x), rel=1e-12)
    assert table.loc["alpha", "5%"] == pytest.approx(np.quantile(x, 0.05), rel=1e-12)
    assert table.loc["alpha", "mean"] == pytest.approx(x.mean(), rel=1e-12)
    narrow = nuts_fit.summary(ci_prob=0.5, var_names=["alpha", "beta"])
    assert list(narrow.index) == ["alpha", "beta"]
    assert "25%" in narrow.columns and "75%" in narrow.columns
    assert np.all(narrow["25%"] > table.loc[["alpha", "beta"], "5%"])
    assert np.all(narrow["75%"] < table.loc[["alpha", "beta"], "95%"])


@slow
@pytest.mark.parametrize("ci", [0, 1, -0.1, 1.5, 90])
def test_summary_ci_prob_validated(nuts_fit: bs.Fit, ci) -> None:
    with pytest.raises(BayescaleError, match=r"ci_prob must be in \(0, 1\), got"):
        nuts_fit.summary(ci_prob=ci)


@slow
def test_summary_unknown_variable(nuts_fit: bs.Fit) -> None:
    with pytest.raises(BayescaleError, match=r"var_names \['gamma'\] are not in the posterior; it has \["):
        nuts_fit.summary(var_names=["alpha", "gamma"])


@slow
def test_diagnostics(nuts_fit: bs.Fit) -> None:
    d = nuts_fit.diagnostics()
    keys = {
        "method",
        "chains",
        "draws",
        "divergences",
        "max_tree_depth_hits",
        "table",
        "max_r_hat",
        "min_ess_bulk",
        "min_ess_tail",
        "sampling_seconds",
        "problems",
        "chain_method",
        "device",
    }
    assert keys <= set(d)
    assert d["method"] == "nuts" and d["chains"] == 2 and d["draws"] == 1000
    assert d["problems"] == [] and d["divergences"] == 0
    assert d["max_r_hat"] <= 1.01 and d["min_ess_bulk"] >= 200
    assert list(d["table"].index) == POSTERIOR_VARS
    assert {"r_hat", "ess_bulk", "ess_tail", "mcse_mean"} <= set(d["table"].columns)
    assert d["sampling_seconds"] > 0
    assert d["chain_method"] in ("parallel", "vectorized")


# ---- save / load


@slow
def test_save_load_round_trip(nuts_fit: bs.Fit, tmp_path: Path) -> None:
    path = nuts_fit.save(tmp_path / "sub" / "fit.nc")
    assert path == tmp_path / "sub" / "fit.nc" and path.is_file()
    loaded = bs.Fit.load(path)
    xr.testing.assert_equal(loaded.posterior, nuts_fit.posterior)
    xr.testing.assert_equal(loaded.idata.log_likelihood, nuts_fit.idata.log_likelihood)
    assert loaded.spec.id == nuts_fit.spec.id and loaded.spec == nuts_fit.spec
    assert loaded.method == "nuts" and loaded.seed == 0
    assert list(loaded.runs["run_id"]) == list(nuts_fit.runs["run_id"])
    np.testing.assert_allclose(loaded.runs["loss"].to_numpy(), nuts_fit.runs["loss"].to_numpy(), rtol=1e-14)
    for c in ("N", "D", "C"):
        np.testing.assert_array_equal(loaded.runs[c].to_numpy(), nuts_fit.runs[c].to_numpy())
    pts = {"N": 7e10, "D": 1.4e12}
    np.testing.assert_array_equal(loaded.predict(pts).values, nuts_fit.predict(pts).values)
    pd.testing.assert_frame_equal(loaded.summary(), nuts_fit.summary())
    assert loaded.diagnostics()["problems"] == []
    # The spec it was fitted with is accepted explicitly too.
    assert bs.Fit.load(path, spec="chinchilla").spec.id == nuts_fit.spec.id
    # A path that names another format is refused before anything is written (runs.csv would be lost).
    runs_csv = tmp_path / "runs.csv"
    runs_csv.write_text("N,D,loss\n")
    with pytest.raises(bs.BayescaleError, match=r"fits are written as netCDF: .*runs\.csv' names a \.csv file"):
        nuts_fit.save(runs_csv)
    assert runs_csv.read_text() == "N,D,loss\n"


@slow
def test_load_with_changed_spec_is_stale(nuts_fit: bs.Fit, tmp_path: Path) -> None:
    path = nuts_fit.save(tmp_path / "fit.nc")
    saved = nuts_fit.spec
    d = saved.to_dict()
    d["priors"]["alpha"]["scale"] = 0.3
    changed = bs.load_spec(d)
    assert changed.model_id != saved.model_id
    with pytest.raises(
        StaleFitError,
        match=rf"was fitted with spec 'chinchilla' but the given spec now defines another model \(changed: priors; model "
        rf"id {saved.model_id} -> {changed.model_id}\): refit it \(`bayescale fit`\), or in Python load with "
        r"check_spec=False",  # a spec given as a dict has no file to put back
    ):
        bs.Fit.load(path, spec=changed)
    assert bs.Fit.load(path, spec=changed, check_spec=False).spec.id == saved.id


@slow
def test_load_ignores_sampler_name_and_description(nuts_fit: bs.Fit, tmp_path: Path) -> None:
    # Sampler settings, name and description do not change the model: the fit is not stale.
    path = nuts_fit.save(tmp_path / "fit.nc")
    d = nuts_fit.spec.to_dict()
    d["sampler"]["draws"] = 50
    d["name"], d["description"] = "renamed", "other words"
    other = bs.load_spec(d)
    assert other.id != nuts_fit.spec.id and other.model_id == nuts_fit.spec.model_id
    assert bs.Fit.load(path, spec=other).spec.id == nuts_fit.spec.id


@slow
def test_load_notices_an_edited_spec_file(runs: pd.DataFrame, tmp_path: Path) -> None:
    spec_path = tmp_path / "my_spec.toml"
    shutil.copy(REPO / "models" / "chinchilla.toml", spec_path)
    csv = tmp_path / "runs.csv"
    runs.drop(columns=["loss_true"]).to_csv(csv, index=False)
    # fit reads the spec and the runs from files (as str or Path).
    fit = bs.fit(str(spec_path), csv, seed=0, method="laplace", chains=2, draws=50)
    assert fit.spec.path == str(spec_path)
    assert list(fit.runs["run_id"]) == list(runs["run_id"])
    fit_path = fit.save(tmp_path / "fit.nc")
    assert bs.Fit.load(fit_path).spec.id == fit.spec.id  # unchanged file: fine
    text = spec_path.read_text()
    assert 'sigma = {dist = "HalfNormal", scale = 0.05}' in text
    spec_path.write_text(
        text.replace('sigma = {dist = "HalfNormal", scale = 0.05}', 'sigma = {dist = "HalfNormal", scale = 0.1}')
    )
    edited = bs.load_spec(spec_path)
    with pytest.raises(
        StaleFitError,
        match=rf"{spec_path} now defines another model \(changed: likelihood; model id \w+ -> {edited.model_id}\): refit it",
    ):
        bs.Fit.load(fit_path)
    old = bs.Fit.load(fit_path, check_spec=False)
    assert old.spec.id == fit.spec.id
    assert old.spec.likelihood.sigma.params == {"scale": 0.05}
    # A spec file that has gone away cannot be compared: the fit loads.
    spec_path.unlink()
    assert bs.Fit.load(fit_path).spec.id == fit.spec.id


@slow
def test_save_is_atomic(nuts_fit: bs.Fit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = nuts_fit.save(tmp_path / "fit.nc")
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        nuts_fit.save(path)
    with pytest.raises(OSError, match="disk full"):
        nuts_fit.save(tmp_path / "new.nc")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]  # no temporary files left behind
    xr.testing.assert_equal(bs.Fit.load(path).posterior, nuts_fit.posterior)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(BayescaleError, match=r"fit file '.*missing.nc' not found"):
        bs.Fit.load(tmp_path / "missing.nc")
    with pytest.raises(BayescaleError, match=r"fit file '.*' is a folder, not a fit file"):
        bs.Fit.load(tmp_path)
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not a netcdf file")
    with pytest.raises(BayescaleError, match=r"junk.nc is not a bayescale fit file"):
        bs.Fit.load(junk)
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"x": ("a", np.arange(3.0))}).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(BayescaleError, match=r"foreign.nc is not a bayescale fit file"):
        bs.Fit.load(foreign)


# ---- convergence warnings


@slow
def test_convergence_warning_in_words(spec, runs) -> None:
    # 5 warmup steps and 20 draws per chain: the chains cannot agree yet (r-hat ~1.2 here).
    with pytest.warns(ConvergenceWarning, match=r"r-hat above 1.01 for [a-zA-Z]") as rec:
        f = bs.fit(spec, runs, seed=2, chains=2, warmup=5, draws=20)
    msg = str(rec[0].message)
    assert msg.startswith("sampling may not be trustworthy: ")
    # The chains drew on from where they stopped (batches of 20) and still disagree, or sat apart (no batches).
    batches = f.diagnostics()["nuts_batches"]
    said = "the chains disagree" + (f", even after {batches} batches of draws per chain" if batches > 1 else "")
    assert said + ". Run more warmup and draws (sampler.warmup / sampler.draws; CLI: --warmup / --draws)" in msg
    assert "effective sample size below 200" in msg and "Increase sampler.draws" in msg
    # The fit is still returned, and its diagnostics say the same.
    problems = f.diagnostics()["problems"]
    assert any(p.startswith("r-hat above 1.01") for p in problems)
    assert f.diagnostics()["max_r_hat"] > 1.01


def test_slowly_mixing_chains_draw_on_from_where_they_stopped(spec, runs, monkeypatch, nuts_fit) -> None:
    """While r-hat is high in one mode the chains continue (no new warmup) for up to MAX_BATCHES
    batches of draws, and every batch-th draw is kept: the spec's shape, the same posterior."""
    seen = []

    def always(post, flat):  # as if r-hat stayed above 1.01
        seen.append(flat.shape)
        return True

    monkeypatch.setattr(bs.inference, "_mixing_slowly", always)
    batches = 3  # of the library's MAX_BATCHES: each batch costs 2000 more draws
    assert batches < MAX_BATCHES
    monkeypatch.setattr(_engine, "MAX_BATCHES", batches)
    longer = bs.fit(spec, runs, seed=0, **SAMPLER)
    c, d = SAMPLER["chains"], SAMPLER["draws"]
    assert [s[:2] for s in seen] == [(c, k * d) for k in range(1, batches)]
    assert longer.diagnostics()["nuts_batches"] == batches and longer.posterior.sizes["draw"] == d
    assert longer.idata.sample_stats["diverging"].shape == (c, d)
    for p in PARAMS:
        a, b = longer.posterior[p].values, nuts_fit.posterior[p].values
        assert abs(a.mean() - b.mean()) < 5 * math.hypot(a.std(), b.std()) / math.sqrt(c * d / 10), p
    assert nuts_fit.diagnostics()["nuts_batches"] == 1  # a fit that mixes well draws once


def test_a_stuck_chain_draws_on_with_a_healthy_chains_step_size(spec, runs, monkeypatch, nuts_fit) -> None:
    """A chain whose step size is far too large for where it sits barely moves (its acceptance falls far
    under the target) and alone gives r-hat well above 1.01. It draws on with a healthy chain's step size
    and mass matrix from its own last position; the stuck draws are dropped."""
    real = _engine.runner

    def stuck_after_warmup(post, s, chain_method, n_data, per_chain_data=False, rows=None, resume=False):
        run = real(post, s, chain_method, n_data, per_chain_data, rows, resume)
        if resume:
            return run

        def first(keys, u0, *data):  # warmup as usual, then chain 0 draws with a step 30x too large
            out = run(keys, u0, *data)
            again = real(post, s, chain_method, n_data, per_chain_data, rows, True)
            return again(keys, out[3], out[2].at[0].multiply(30.0), out[4], *data)

        return first

    monkeypatch.setattr(_engine, "runner", stuck_after_warmup)
    fixed = bs.fit(spec, runs, seed=0, **SAMPLER)  # any ConvergenceWarning is an error here
    d = fixed.diagnostics()
    assert d["nuts_restepped"] == [[0]] and d["max_r_hat"] <= 1.01 and d["divergences"] == 0
    assert d["nuts_dropped_divergences"] >= 0 and "chain 0 stuck after warmup and re-stepped" in restepped_words(d)
    accept = fixed.idata.sample_stats["acceptance_rate"].mean("draw").values
    assert (accept > _engine.STUCK_ACCEPT * spec.sampler.target_accept).all(), accept
    step = fixed.idata.sample_stats["step_size"].isel(draw=0).values
    assert step[0] == step[1]  # the healthy chain's step size (of two chains, the one with the smaller)
    c, n = SAMPLER["chains"], SAMPLER["draws"]
    for p in PARAMS:
        a, b = fixed.posterior[p].values, nuts_fit.posterior[p].values
        assert abs(a.mean() - b.mean()) < 5 * math.hypot(a.std(), b.std()) / math.sqrt(c * n / 10), p
    assert nuts_fit.diagnostics()["nuts_restepped"] == []  # healthy chains are left as they were
    # Where the step size cannot be given (here: no rounds allowed), the stuck chain is named in words,
    # and never as a mode of its own (its tiny spread sets it apart from every moving chain).
    monkeypatch.setattr(_engine, "MAX_RESTEPS", 0)
    with pytest.warns(ConvergenceWarning, match="chain 0 barely moved \\(mean acceptance 0\\.[0-4]"):
        stuck = bs.fit(spec, runs, seed=0, **SAMPLER)
    assert len(stuck.diagnostics()["modes"]) == 1


def test_one_chain_is_a_problem_said_in_words(spec, runs, caplog) -> None:
    with pytest.warns(ConvergenceWarning, match="one chain: r-hat cannot see a stuck chain or a second mode"):
        one = bs.fit(spec, runs, seed=0, chains=1, warmup=300, draws=300)
    assert np.isnan(one.diagnostics()["max_r_hat"])
    assert "Shape validation failed" not in caplog.text  # ArviZ is not asked for an r-hat of one chain


def test_restepped_gives_stuck_chains_the_median_healthy_step() -> None:
    accept = np.array([[0.9, 0.9], [0.1, 0.2], [0.85, 0.95], [0.92, 0.9], [0.3, 0.3]])  # chains 1 and 4 stuck
    step = jnp.array([0.1, 0.9, 0.3, 0.2, 0.15])
    mass = jnp.arange(5.0)[:, None] * jnp.ones((5, 3))
    out = ("draws", "stats", step, "last", mass)
    state, stuck = _engine._restepped(out, accept, 0.9, rounds=0)
    assert stuck == [1, 4]
    # The median healthy chain (3, step 0.2) gives its mass matrix, and its step unless the chain's own is smaller.
    assert np.allclose(state[2], [0.1, 0.2, 0.3, 0.2, 0.15]) and np.allclose(state[4][:, 0], [0, 3, 2, 3, 3])
    assert state[3] == "last"  # every chain stays where it was
    again, _ = _engine._restepped(out, accept, 0.9, rounds=1)
    assert np.allclose(np.asarray(again[2])[[1, 4]], [0.1, 0.075])  # a second round halves the step
    assert _engine._restepped(out, np.full((5, 2), 0.9), 0.9, 0) is None  # none stuck
    assert _engine._restepped(out, np.full((5, 2), 0.1), 0.9, 0) is None  # none healthy to learn from


def test_drawing_on_with_the_progress_bar(spec, runs, monkeypatch) -> None:
    # The module's sampler settings: a sampler compiled for them already is reused, not compiled anew.
    monkeypatch.setattr(bs.inference, "_mixing_slowly", lambda post, flat: flat.shape[1] < 2 * SAMPLER["draws"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = bs.fit(spec, runs, seed=0, progress=True, **SAMPLER)
    assert f.diagnostics()["nuts_batches"] == 2 and f.posterior.sizes["draw"] == SAMPLER["draws"]


# ---- Laplace, seeds, errors


@slow
def test_laplace(laplace_fit: bs.Fit, nuts_fit: bs.Fit) -> None:
    assert laplace_fit.method == "laplace"
    assert (
        laplace_fit.describe()
        == f"one law, chinchilla (chinchilla), fitted by laplace to {len(laplace_fit.runs)} runs."
    )
    assert laplace_fit.posterior.sizes == {"chain": 2, "draw": 1000}
    assert "sample_stats" not in laplace_fit.idata.groups()
    d = laplace_fit.diagnostics()
    assert d["method"] == "laplace" and d["problems"] == [] and "Laplace approximation" in d["note"]
    lap, nuts = laplace_fit.summary(), nuts_fit.summary()
    # Independent draws have no chains to diagnose: no ESS or r-hat columns that would read as MCMC's.
    assert "r_hat" in nuts and not {"ess_bulk", "ess_tail", "r_hat"} & set(lap.columns)
    for k in PARAMS:
        # Medians agree to a fraction of the posterior sd, and so do the widths.
        assert abs(lap.loc[k, "median"] - nuts.loc[k, "median"]) < 0.3 * nuts.loc[k, "sd"], k
        assert 0.7 < lap.loc[k, "sd"] / nuts.loc[k, "sd"] < 1.4, k
    # sigma: a Gaussian in log sigma at the mode sits a little low (the posterior of a scale is
    # right-skewed even in the log); within 15% and the same width.
    assert lap.loc["sigma", "median"] == pytest.approx(nuts.loc["sigma", "median"], rel=0.15)
    assert 0.7 < lap.loc["sigma", "sd"] / nuts.loc["sigma", "sd"] < 1.4
    assert laplace_fit.laplace is not None and laplace_fit.laplace.converged
    assert set(laplace_fit.laplace.value) == set(PARAMS + ["sigma"])


@slow
def test_psis_agrees_with_nuts(nuts_fit: bs.Fit, spec, runs) -> None:
    f = bs.fit(spec, runs, seed=0, method="psis", chains=2, draws=1000)
    assert f.method == "psis" and f.posterior.sizes == {"chain": 2, "draw": 1000}
    d = f.diagnostics()
    assert 0 < d["pareto_k"] <= 0.7 and d["problems"] == [] and "importance sampling" in d["note"]
    ps, nuts = f.summary(), nuts_fit.summary()
    for k in PARAMS + ["sigma"]:
        assert abs(ps.loc[k, "median"] - nuts.loc[k, "median"]) < 0.3 * nuts.loc[k, "sd"], k
        assert 0.7 < ps.loc[k, "sd"] / nuts.loc[k, "sd"] < 1.4, k
    again = bs.fit(spec, runs, seed=0, method="psis", chains=2, draws=1000)
    np.testing.assert_array_equal(again.posterior["E"].values, f.posterior["E"].values)


@slow
def test_psis_follows_a_skewed_posterior_where_laplace_does_not() -> None:
    # Nine runs up to N = 1e8: E and beta are barely constrained and their posterior is skewed.
    # The Gaussian at the mode is far too narrow in beta (sd 0.4x NUTS's here); the importance-
    # sampling correction recovers NUTS's width and moves E's median most of the way to NUTS's.
    truth = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
    few = synthetic_runs("chinchilla", truth, N=(1e7, 3e7, 1e8), tokens_per_param=(5, 20, 80), seed=1)
    fits = {}
    for m in ("nuts", "laplace", "psis"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits[m] = bs.fit("chinchilla", few, method=m, seed=0).summary()
    ref = fits["nuts"]
    assert fits["laplace"].loc["beta", "sd"] < 0.6 * ref.loc["beta", "sd"]  # the check has power
    assert 0.7 < fits["psis"].loc["beta", "sd"] / ref.loc["beta", "sd"] < 1.3
    gap = {m: abs(fits[m].loc["E", "median"] - ref.loc["E", "median"]) for m in ("laplace", "psis")}
    assert gap["psis"] < 0.5 * gap["laplace"], gap


@slow
def test_same_seed_same_draws(nuts_fit: bs.Fit, spec, runs) -> None:
    again = bs.fit(spec, runs, seed=0, **SAMPLER)
    for v in nuts_fit.var_names:
        np.testing.assert_array_equal(again.posterior[v].values, nuts_fit.posterior[v].values)
    other = bs.fit(spec, runs, seed=1, **SAMPLER)
    for v in nuts_fit.var_names:
        assert not np.array_equal(other.posterior[v].values, nuts_fit.posterior[v].values)
    assert other.seed == 1 and other.idata.attrs["seed"] == 1


@slow
def test_laplace_seeded(laplace_fit: bs.Fit, spec, runs) -> None:
    again = bs.fit(spec, runs, seed=0, method="laplace", chains=2, draws=1000)
    other = bs.fit(spec, runs, seed=np.int64(5), method="laplace", chains=2, draws=1000)
    for v in laplace_fit.var_names:
        np.testing.assert_array_equal(again.posterior[v].values, laplace_fit.posterior[v].values)
        assert not np.array_equal(other.posterior[v].values, laplace_fit.posterior[v].values)


def test_laplace_warns_when_runs_can_be_interpolated(spec, runs) -> None:
    # 4 runs and 5 law parameters: the law passes through every run, the mode sends sigma to
    # zero and the Gaussian there would claim certainty. The user is told, in words.
    few = runs.sort_values("C").iloc[[0, 7, 14, 21]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = bs.fit(spec, few, seed=0, method="laplace", chains=1, draws=200)
    said = " ".join(str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning))
    assert re.search(r"Laplace approximation is degenerate \(the noise scale sigma collapsed to .*method='nuts'", said)
    assert "4 runs for 5 law parameters (E, A, B, alpha, beta): the law can pass through every run" in said
    assert said.count("sigma collapsed") == 1, said  # said once, not by two warnings
    problems = " ".join(f.diagnostics()["problems"])  # said again where used, and by a saved fit
    assert "4 runs for 5 law parameters" in problems and "sigma collapsed" in problems
    assert float(np.median(f.posterior["sigma"])) < 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        psis = bs.fit(spec, few, seed=0, method="psis", chains=1, draws=200)
    assert float(np.median(psis.posterior["sigma"])) < 1e-4  # importance sampling keeps the collapse
    assert "sigma collapsed" in " ".join(psis.diagnostics()["problems"])  # and says it as Laplace does
    # Enough runs: no warning (filterwarnings=error would raise).
    bs.fit(spec, runs, seed=0, method="laplace", chains=1, draws=200)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0", None, 2**64])
def test_bad_seed(spec, runs, seed) -> None:
    """A seed past 2**32 - 1 was refused only after the whole fit, by the file it could not be saved in."""
    with pytest.raises(BayescaleError, match=r"seed must be an integer in \[0, 4294967295\], got"):
        bs.fit(spec, runs, seed=seed)


def test_a_bad_seed_on_the_command_line_is_a_usage_error(capsys) -> None:
    from bayescale import cli

    for argv in (
        ["predict", "x.nc", "--at", "N=1e9,D=2e10", "--seed", "-1"],
        ["fit", "chinchilla", "r.csv", "--seed", "18446744073709551616"],
    ):
        assert cli.main(argv) == 2
        assert "--seed: must be an integer in [0, 4294967295]" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["mcmc", "NUTS", "vi"])
def test_bad_method(spec, runs, method) -> None:
    with pytest.raises(BayescaleError, match=rf"method must be one of \['nuts', 'laplace', 'psis'\], got '{method}'"):
        bs.fit(spec, runs, method=method)


def test_bad_sampler_override(spec, runs) -> None:
    with pytest.raises(BayescaleError, match=r"sampler.chains: must be an integer >= 1, got 0"):
        bs.fit(spec, runs, chains=0)
    with pytest.raises(BayescaleError, match=r"sampler.draws: must be an integer >= 1, got 2.5"):
        bs.fit(spec, runs, draws=2.5)


def test_missing_input_column(runs) -> None:
    d = bs.load_spec("power").to_dict()
    d["law"]["inputs"] = {"S": "tokens"}
    with pytest.raises(BayescaleError, match=r"law 'power' needs column 'tokens' \(input 'S'\); the table has \["):
        bs.fit(d, runs, method="laplace")


@slow
@slow
@pytest.mark.parametrize("where", ["df", "E"])
def test_fit_with_gamma_prior(runs, where: str) -> None:
    d = bs.load_spec("chinchilla").to_dict()
    if where == "df":
        d["likelihood"]["df"] = {"dist": "Gamma", "concentration": 2.0, "rate": 0.1}
    else:
        d["priors"]["E"] = {"dist": "Gamma", "concentration": 8.0, "rate": 4.0}
    f = bs.fit(d, runs, seed=0, method="laplace", chains=2, draws=100)
    assert f.summary(ci_prob=0.99).loc["E", "0.5%"] < TRUTH["E"] < f.summary(ci_prob=0.99).loc["E", "99.5%"]
    if where == "df":
        assert "df" in f.posterior and f.var_names[f.var_names.index("sigma") + 1] == "df"


# ------------------------------------------------ multiplicative law, C = 6ND

MULT_TRUTH = {"E": 1.7, "a": 400.0, "b": -0.13, "c": -0.13, "d": -0.02}
MULT_IDENTIFIED = {
    "N_exponent": MULT_TRUTH["b"] + MULT_TRUTH["d"],
    "D_exponent": MULT_TRUTH["c"] + MULT_TRUTH["d"],
    "log_coefficient": math.log(MULT_TRUTH["a"]) + MULT_TRUTH["d"] * math.log(6.0),
}


@pytest.fixture(scope="module")
def mult_fit():
    runs = synthetic_runs("multiplicative", MULT_TRUTH, sigma=0.01, seed=1, **GRID)
    with pytest.warns(IdentifiabilityWarning) as rec:
        fit = bs.fit("multiplicative", runs, seed=0, **SAMPLER)
    return fit, [str(r.message) for r in rec if issubclass(r.category, IdentifiabilityWarning)]


@slow
def test_multiplicative_warns_in_words(mult_fit) -> None:
    _, messages = mult_fit
    assert len(messages) == 1
    msg = messages[0]
    assert "the runs cannot separate all parameters of law 'multiplicative'" in msg
    assert "C = 6·N·D in every run" in msg
    assert "['N_exponent', 'D_exponent', 'log_coefficient']" in msg


@slow
@slow
def test_multiplicative_warning_says_what_the_combinations_are(mult_fit) -> None:
    _, messages = mult_fit
    assert all(s in messages[0].replace(" ", "") for s in ("b+d", "c+d", "log(a)+d*log"))


@slow
def test_multiplicative_identified_combinations(mult_fit) -> None:
    fit, _ = mult_fit
    assert fit.identified_names == ["N_exponent", "D_exponent", "log_coefficient"]
    post = fit.posterior
    # The combinations are exactly the declared functions of each draw.
    np.testing.assert_allclose(post["N_exponent"].values, post["b"].values + post["d"].values, rtol=1e-12)
    np.testing.assert_allclose(post["D_exponent"].values, post["c"].values + post["d"].values, rtol=1e-12)
    np.testing.assert_allclose(
        post["log_coefficient"].values, np.log(post["a"].values) + post["d"].values * math.log(6.0), rtol=1e-12
    )
    table = fit.summary(ci_prob=0.99)
    assert list(table.index) == ["E", "a", "b", "c", "d", "sigma", *MULT_IDENTIFIED]
    for k, v in {**MULT_IDENTIFIED, "E": MULT_TRUTH["E"]}.items():
        assert table.loc[k, "0.5%"] < v < table.loc[k, "99.5%"], (k, v, table.loc[k].to_dict())
    assert table.loc["N_exponent", "median"] == pytest.approx(-0.15, abs=0.01)
    assert table.loc["D_exponent", "median"] == pytest.approx(-0.15, abs=0.01)
    # The identified combinations are sharp; the separate exponents are not.
    assert table.loc["N_exponent", "sd"] < 0.1 * table.loc["b", "sd"]
    # Along the ridge d follows its prior, Normal(0, 0.1): the sampler explored it.
    assert 0.07 < table.loc["d", "sd"] < 0.13
    assert abs(table.loc["d", "median"]) < 0.05
    d = fit.diagnostics()
    assert d["problems"] == [] and d["max_r_hat"] <= 1.01


@slow
def test_multiplicative_predictions_are_sharp(mult_fit) -> None:
    fit, _ = mult_fit
    N, D = np.array([1e9, 7e10]), np.array([2e10, 1.4e12])
    band = fit.predict({"N": N, "D": D})
    t = MULT_TRUTH
    true = t["E"] + t["a"] * N ** t["b"] * D ** t["c"] * (6 * N * D) ** t["d"]
    lo, med, hi = band.quantile([0.005, 0.5, 0.995], dim=("chain", "draw")).values
    assert np.all(lo < true) and np.all(true < hi)
    assert np.all((hi - lo) / med < 0.05)  # the ridge does not blur predictions


def test_a_fit_with_the_progress_bar_samples_what_one_without_it_does(spec, runs, nuts_fit, capsys) -> None:
    """NumPyro's progress bar runs a callback on another thread; under bayescale's 64-bit context it
    once returned a 32-bit counter and every ``progress=True`` fit failed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shown = bs.fit(spec, runs, seed=0, progress=True, **SAMPLER)
    plain = nuts_fit  # the same fit without the bar
    assert not jax.config.values["jax_enable_x64"], "the process-wide 64-bit setting must be restored"
    for p in PARAMS:
        a, b = shown.idata.posterior[p].values, plain.idata.posterior[p].values
        assert a.shape == b.shape == (SAMPLER["chains"], SAMPLER["draws"])
        assert abs(a.mean() - b.mean()) < 4 * math.hypot(a.std(), b.std()) / math.sqrt(100)


def test_a_fit_file_without_its_groups_is_refused_on_load(tmp_path) -> None:
    """A file cut short or edited (its posterior deleted) loaded, then failed deep inside a command."""
    import arviz as az

    from bayescale._idata import require_fit_groups

    posterior_only = az.from_dict(posterior={"E": np.ones((2, 5))})
    with pytest.raises(BayescaleError, match=r"lacks the groups 'constant_data' and 'observed_data'.*fit again"):
        require_fit_groups(posterior_only, tmp_path / "cut.nc")
