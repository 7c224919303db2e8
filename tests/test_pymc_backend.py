"""Tests for the optional PyMC backend: same model, same density, same posterior, same Fit layout."""

from __future__ import annotations

import math
import sys
import warnings

import jax
import numpy as np
import pytest
from numpyro.infer.util import log_density

import bayescale as bs
from bayescale.errors import (
    BayescaleError,
    ConvergenceWarning,
    IdentifiabilityWarning,
    RunsTableError,
    SpecError,
)
from bayescale.model import (
    OBS,
    make_model,
    noise_names,
)
from bayescale.model import (
    log_likelihood as _log_likelihood,
)
from bayescale.model import (
    posterior as _posterior,
)
from bayescale.priors import Prior
from bayescale.pymc_backend import (
    PYMC_DISTRIBUTIONS,
    fit_pymc,
    pymc_prior,
    to_pymc,
)
from bayescale.testing import synthetic_runs

# bayescale.pymc_backend imports PyMC only when called; without PyMC the whole module is skipped.
pm = pytest.importorskip("pymc")

pytestmark = [
    pytest.mark.pymc,
    # A pip-installed PyTensor says once per process that it found no BLAS (slower linear algebra
    # in compiled graphs; these models have none). That is about the machine, not bayescale.
    pytest.mark.filterwarnings("ignore:PyTensor could not link to a BLAS:UserWarning"),
]

TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36}


def _chinchilla_runs(seed: int = 1):
    return synthetic_runs(
        "chinchilla", TRUTH, N=(1e7, 3e7, 1e8, 3e8, 1e9, 3e9), tokens_per_param=(5.0, 20.0, 80.0), sigma=0.01, seed=seed
    )


def _power_runs(column: str = "C"):
    return synthetic_runs("power", {"E": 1.7, "a": 40.0, "b": -0.12}, columns={"S": column}, sigma=0.02, seed=3)


def _spec(name: str, **changes):
    d = bs.load_spec(name).to_dict()
    for key, value in changes.items():
        section, _, item = key.partition(".")
        if item:
            d[section][item] = value
        else:
            d[section] = value
    return bs.load_spec(d)


# ------------------------------------------------------------- optional import


# That importing bayescale imports no pymc: tests/test_plots.py, in the one fresh process it starts.


def test_missing_pymc_raises_with_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymc", None)  # makes `import pymc` raise ImportError
    runs = _power_runs()
    with pytest.raises(BayescaleError, match=r"pip install 'bayescale\[pymc\]'"):
        to_pymc("power", runs)
    with pytest.raises(BayescaleError, match=r"pip install 'bayescale\[pymc\]'"):
        fit_pymc("power", runs)


# ------------------------------------------------------------------- priors

# Parameters for every translated distribution, and points inside its support.
PRIOR_CASES = {
    "Normal": ({"loc": 0.3, "scale": 1.7}, [-2.0, 0.1, 3.5]),
    "LogNormal": ({"loc": 0.5, "scale": 0.4}, [0.2, 1.6, 7.0]),
    "HalfNormal": ({"scale": 0.05}, [0.001, 0.04, 0.2]),
    "HalfCauchy": ({"scale": 2.0}, [0.01, 1.0, 30.0]),
    "Cauchy": ({"loc": -1.0, "scale": 0.5}, [-10.0, -1.2, 4.0]),
    "StudentT": ({"df": 3.5, "loc": 1.0, "scale": 0.3}, [-2.0, 0.9, 5.0]),
    "Gamma": ({"concentration": 2.5, "rate": 0.7}, [0.1, 3.0, 12.0]),
    "InverseGamma": ({"concentration": 3.0, "rate": 0.5}, [0.05, 0.3, 4.0]),
    "Exponential": ({"rate": 3.0}, [0.01, 0.5, 2.0]),
    "Uniform": ({"low": -1.0, "high": 2.5}, [-0.9, 0.0, 2.4]),
    "Beta": ({"concentration1": 2.0, "concentration0": 5.0}, [0.02, 0.3, 0.9]),
    "TruncatedNormal": ({"loc": 0.2, "scale": 0.5, "low": 0.0, "high": 1.0}, [0.01, 0.3, 0.99]),
    "Laplace": ({"loc": 0.5, "scale": 2.0}, [-3.0, 0.4, 6.0]),
    "Logistic": ({"loc": -0.5, "scale": 0.7}, [-4.0, 0.0, 2.0]),
    "Weibull": ({"scale": 2.0, "concentration": 1.5}, [0.1, 1.8, 6.0]),
    "Gumbel": ({"loc": 1.0, "scale": 2.0}, [-3.0, 1.5, 9.0]),
    "Pareto": ({"scale": 0.5, "alpha": 3.0}, [0.6, 1.0, 5.0]),
    "Chi2": ({"df": 4.0}, [0.3, 3.0, 10.0]),
    "Kumaraswamy": ({"concentration1": 2.0, "concentration0": 3.0}, [0.05, 0.4, 0.95]),
}


def test_every_translated_distribution_has_a_test_case():
    assert set(PRIOR_CASES) == set(PYMC_DISTRIBUTIONS)


def _compare_prior(prior: Prior, points: list[float]) -> None:
    with pm.Model():
        rv = pymc_prior(prior, "x")
        got = np.array([float(pm.logp(rv, np.float64(v)).eval()) for v in points])
    with jax.enable_x64(True):
        want = np.array([float(prior.to_numpyro().log_prob(np.float64(v))) for v in points])
    # 1e-7: PyMC's truncated-normal normaliser differs from NumPyro's (and SciPy's) by ~1e-8;
    # a wrong parameterisation (rate for scale, swapped concentrations) is off by far more.
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-10, err_msg=str(prior))


@pytest.mark.parametrize("name", sorted(PRIOR_CASES))
def test_prior_translation_has_numpyro_density(name):
    params, points = PRIOR_CASES[name]
    _compare_prior(Prior.from_dict({"dist": name, **params}), points)


@pytest.mark.parametrize(
    "prior, points",
    [
        (Prior("Normal", {}), [-1.0, 0.0, 2.0]),  # NumPyro's defaults loc=0, scale=1
        (Prior("Exponential", {}), [0.1, 1.0]),
        (Prior("Gamma", {"concentration": 2.0}), [0.5, 3.0]),  # rate defaults to 1
        (Prior("TruncatedNormal", {"loc": 0.3, "scale": 0.2, "low": 0.0}), [0.01, 0.3, 1.5]),  # one-sided
    ],
    ids=str,
)
def test_prior_translation_fills_numpyro_defaults(prior, points):
    _compare_prior(prior, points)


def test_unsupported_distribution_raises_spec_error_with_supported_list():
    runs = _power_runs()
    spec = _spec("power", **{"priors.E": {"dist": "LogUniform", "low": 0.5, "high": 5.0}})
    with pytest.raises(SpecError) as err:
        to_pymc(spec, runs)
    msg = str(err.value)
    assert "priors.E" in msg and "'LogUniform'" in msg
    for name in PYMC_DISTRIBUTIONS:
        assert name in msg
    # The same check covers the noise priors, and fit_pymc fails before sampling.
    spec = _spec("power", **{"likelihood.sigma": {"dist": "LogUniform", "low": 1e-3, "high": 1.0}})
    with pytest.raises(SpecError, match=r"likelihood\.sigma.*'LogUniform'.*supported"):
        fit_pymc(spec, runs)


# --------------------------------------------------------------- the model


def _natural_logp(model, values):
    from pymc.model.transform.conditioning import remove_value_transforms

    plain = remove_value_transforms(model)
    return float(plain.compile_logp()({k: np.float64(v) for k, v in values.items()}))


def _numpyro_logp(spec, logx, y, values):
    with jax.enable_x64(True):
        lp, _ = log_density(make_model(spec), (), {"logx": logx, "y": y}, values)
        return float(lp)


CASES = {
    # chinchilla: Student-t likelihood with fixed df
    "chinchilla": (
        lambda: bs.load_spec("chinchilla"),
        _chinchilla_runs,
        lambda r: {"N": np.log(r["N"].to_numpy()), "D": np.log(r["D"].to_numpy())},
    ),
    # power in C with a Normal likelihood
    "power_normal": (
        lambda: _spec("power", likelihood={"family": "Normal", "sigma": {"dist": "HalfNormal", "scale": 0.05}}),
        _power_runs,
        lambda r: {"S": np.log(r["C"].to_numpy())},
    ),
    # power in N (the spec's input mapping) with a prior on the Student-t df
    "power_in_N_df_prior": (
        lambda: _spec(
            "power",
            law={"name": "power", "inputs": {"S": "N"}},
            likelihood={
                "family": "StudentT",
                "sigma": {"dist": "HalfCauchy", "scale": 0.05},
                "df": {"dist": "Gamma", "concentration": 2.0, "rate": 0.1},
            },
        ),
        lambda: _power_runs("N"),
        lambda r: {"S": np.log(r["N"].to_numpy())},
    ),
}

POINTS = {
    "chinchilla": [
        {"E": 1.7, "A": 400.0, "B": 2100.0, "alpha": 0.33, "beta": 0.37, "sigma": 0.012},
        {"E": 2.5, "A": 30.0, "B": 9e4, "alpha": 0.1, "beta": 0.6, "sigma": 0.2},
    ],
    "power_normal": [{"E": 1.6, "a": 35.0, "b": -0.11, "sigma": 0.02}, {"E": 0.9, "a": 4.0, "b": 0.2, "sigma": 0.3}],
    "power_in_N_df_prior": [
        {"E": 1.6, "a": 35.0, "b": -0.11, "sigma": 0.02, "df": 7.0},
        {"E": 3.0, "a": 900.0, "b": -0.5, "sigma": 0.1, "df": 1.3},
    ],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_model_variables_match_numpyro(case):
    make_spec, make_runs, _ = CASES[case]
    spec, runs = make_spec(), make_runs()
    model = to_pymc(spec, runs)
    assert [v.name for v in model.free_RVs] == list(spec.law.params) + noise_names(spec)
    assert [v.name for v in model.observed_RVs] == [OBS]
    assert model.named_vars_to_dims[OBS] == ("run",)
    assert list(model.coords["run"]) == list(runs["run_id"])
    np.testing.assert_allclose(model.rvs_to_values[model[OBS]].data, np.log(runs["loss"].to_numpy()))


@pytest.mark.parametrize("case", sorted(CASES))
def test_log_density_equals_numpyro_on_natural_scale(case):
    make_spec, make_runs, make_logx = CASES[case]
    spec, runs = make_spec(), make_runs()
    model = to_pymc(spec, runs)
    logx, y = make_logx(runs), np.log(runs["loss"].to_numpy())
    for values in POINTS[case]:
        got = _natural_logp(model, values)
        want = _numpyro_logp(spec, logx, y, values)
        assert math.isfinite(want)
        assert got == pytest.approx(want, rel=1e-6, abs=1e-8), values
    # And the density is not constant: a different point gives a different value.
    a, b = (_natural_logp(model, v) for v in POINTS[case])
    assert abs(a - b) > 1.0


@pytest.mark.parametrize("case", ["chinchilla", "power_normal"])
def test_sampled_density_equals_numpyro_potential(case):
    """With Jacobians: PyMC's log/identity transforms are NumPyro's, so logp = -potential."""
    make_spec, make_runs, make_logx = CASES[case]
    spec, runs = make_spec(), make_runs()
    model = to_pymc(spec, runs)
    logp = model.compile_logp()  # transformed space, with the log |Jacobian|
    logx, y = make_logx(runs), np.log(runs["loss"].to_numpy())
    with jax.enable_x64(True):
        post = _posterior(spec, np.float64)
        for values in POINTS[case]:
            flat = np.array([float(t.inv(values[n])) for n, t in zip(post.names, post.transforms)])
            want = -float(post.potential(flat, logx, y))
            point = {}
            for rv in model.free_RVs:
                value_var = model.rvs_to_values[rv]
                transformed = value_var.name != rv.name
                assert not transformed or value_var.name == f"{rv.name}_log__"
                point[value_var.name] = math.log(values[rv.name]) if transformed else values[rv.name]
            assert float(logp(point)) == pytest.approx(want, rel=1e-6, abs=1e-8)


def test_runs_table_is_validated():
    runs = _power_runs().drop(columns="loss")
    with pytest.raises(RunsTableError, match="loss"):
        to_pymc("power", runs)


def test_bad_arguments():
    runs = _power_runs()
    with pytest.raises(BayescaleError, match=r"sampler must be one of \['pymc', 'nutpie'\]"):
        fit_pymc("power", runs, sampler="stan")
    with pytest.raises(BayescaleError, match="seed"):
        fit_pymc("power", runs, seed=-1)
    with pytest.raises(BayescaleError, match="draws"):
        fit_pymc("power", runs, draws=0)


def test_nutpie_missing_says_how_to_install():
    try:
        import nutpie  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("nutpie is installed")
    with pytest.raises(BayescaleError, match="pip install nutpie"):
        fit_pymc("power", _power_runs(), sampler="nutpie")


# ------------------------------------------------------------ sampling (slow)


@pytest.fixture(scope="module")
def fits():
    """The same synthetic Chinchilla runs fitted with NumPyro (the reference) and with PyMC."""
    runs = _chinchilla_runs()
    spec = bs.load_spec("chinchilla")
    reference = bs.fit(spec, runs, seed=0)  # 4 x 1000 draws: MCSE small next to PyMC's
    with warnings.catch_warnings(record=True) as caught:
        # 2 x 500 draws is little for r-hat <= 1.01; the quality the comparison needs is
        # asserted in test_pymc_sampling_quality rather than hidden.
        warnings.simplefilter("always", ConvergenceWarning)
        fit = fit_pymc(spec, runs, seed=0, chains=2, warmup=500, draws=500)
    other = [w for w in caught if not issubclass(w.category, ConvergenceWarning)]
    assert not other, [str(w.message) for w in other]
    return reference, fit


@pytest.mark.slow
def test_pymc_sampling_quality(fits):
    _, fit = fits
    d = fit.diagnostics()
    assert d["method"] == "pymc"
    assert d["chains"] == 2 and d["draws"] == 500
    assert d["divergences"] == 0
    assert d["max_tree_depth_hits"] == 0
    assert d["max_r_hat"] < 1.05
    assert d["min_ess_bulk"] > 80 and d["min_ess_tail"] > 80


def _log_scale(spec, name, x):
    positive = name in spec.law.positive or name in ("sigma", "df")
    return np.log(x) if positive else x


def _quantile_se(x: np.ndarray, q: float, ess: float) -> float:
    """Monte Carlo standard error of the q-quantile, normal approximation: sqrt(q(1-q)) / density / sqrt(ESS)."""
    sd = np.std(x, ddof=1)
    z = {0.05: -1.6448536, 0.5: 0.0, 0.95: 1.6448536}[q]
    density = math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi) / sd
    return math.sqrt(q * (1 - q)) / density / math.sqrt(ess)


@pytest.mark.slow
def test_pymc_posterior_agrees_with_numpyro(fits):
    """Medians and 90% interval ends agree within Monte Carlo error (4 combined standard errors).

    Positive parameters are compared on the log scale, where the posteriors are close to
    normal, so the normal-approximation standard error of a quantile applies.
    """
    reference, fit = fits
    spec = fit.spec
    ess_ref = reference.diagnostics()["table"]
    ess_pm = fit.diagnostics()["table"]
    for name in fit.var_names:
        a = _log_scale(spec, name, reference.posterior[name].values.ravel())
        b = _log_scale(spec, name, fit.posterior[name].values.ravel())
        sd = np.std(a, ddof=1)
        for q in (0.05, 0.5, 0.95):
            ess = "ess_bulk" if q == 0.5 else "ess_tail"
            se = math.hypot(_quantile_se(a, q, ess_ref.loc[name, ess]), _quantile_se(b, q, ess_pm.loc[name, ess]))
            diff = np.quantile(a, q) - np.quantile(b, q)
            assert abs(diff) < 4 * se, (name, q, diff, se)
            assert abs(diff) < 0.5 * sd, (name, q, diff, sd)  # and a few tenths of a posterior sd at most
        assert np.std(b, ddof=1) / sd == pytest.approx(1.0, abs=0.3), name


@pytest.mark.slow
def test_pymc_fit_has_numpyro_layout(fits):
    reference, fit = fits
    idata, ref = fit.idata, reference.idata
    assert set(idata.groups()) == set(ref.groups())
    # The bundled chinchilla spec has an extrapolation prior, so both carry its `drift` draws.
    assert (
        set(idata.posterior.data_vars)
        == set(ref.posterior.data_vars)
        == {"E", "A", "B", "alpha", "beta", "sigma", "drift"}
    )
    for group in idata.groups():
        new, old = getattr(idata, group), getattr(ref, group)
        assert set(new.data_vars) == set(old.data_vars), group
        for v in new.data_vars:
            assert new[v].dims == old[v].dims, (group, v)
            assert new[v].dtype == old[v].dtype, (group, v)
    assert list(idata.posterior["E"].dims) == ["chain", "draw"]
    assert idata.posterior.sizes["chain"] == 2 and idata.posterior.sizes["draw"] == 500
    assert list(idata.log_likelihood[OBS].coords["run"].values) == list(fit.runs["run_id"])
    np.testing.assert_array_equal(idata.observed_data[OBS].values, ref.observed_data[OBS].values)
    for c in ("N", "D", "C"):
        np.testing.assert_array_equal(idata.constant_data[c].values, ref.constant_data[c].values)
    # "modes": the NumPyro fit's multi-start mode search (bayescale.modes), and "nuts_batches": its chains
    # drawing on while r-hat is high; the PyMC backend runs neither, and a fit without them reads as having
    # no recorded modes (modes.modes_of) and one batch of draws (Fit.diagnostics).
    assert set(ref.attrs) - {"created_at", "arviz_version", "modes", "nuts_batches"} <= set(idata.attrs)
    assert fit.diagnostics()["nuts_batches"] == 1
    assert idata.attrs["method"] == "pymc" and idata.attrs["sampler"] == "pymc"
    # Same model and runs; the spec itself differs only in its sampler settings (2 x 500 draws here).
    for key in ("model_id", "spec_path", "runs_hash", "seed", "identified", "flops_convention"):
        assert idata.attrs[key] == ref.attrs[key], key
    assert idata.attrs["bayescale_spec"] == fit.spec.to_json() and idata.attrs["spec_id"] == fit.spec.id
    assert fit.spec.sampler.chains == 2 and fit.spec.sampler.draws == 500
    assert fit.method == "pymc" and fit.seed == 0
    assert '"pymc"' in idata.attrs["versions"]


@pytest.mark.slow
def test_pymc_log_likelihood_is_pointwise_log_density(fits):
    _, fit = fits
    samples = fit.draws()
    logx = {"N": np.log(fit.runs["N"].to_numpy()), "D": np.log(fit.runs["D"].to_numpy())}
    with jax.enable_x64(True):
        want = _log_likelihood(fit.spec, samples, logx, fit.idata.observed_data[OBS].values)
    np.testing.assert_allclose(fit.idata.log_likelihood[OBS].values, want, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_predict_summary_and_save_work_on_a_pymc_fit(fits, tmp_path):
    reference, fit = fits
    band = fit.predict({"N": 7e9, "D": 1.4e12})
    assert band.dims == ("chain", "draw", "point") and band.shape == (2, 500, 1)
    assert np.all(np.isfinite(band.values)) and np.all(band.values > 0)
    ref_band = reference.predict({"N": 7e9, "D": 1.4e12})
    a, b = np.log(ref_band.values.ravel()), np.log(band.values.ravel())
    assert abs(np.median(a) - np.median(b)) < 0.4 * np.std(a)
    noisy = fit.predict({"N": 7e9, "D": 1.4e12}, noise=True, seed=1)
    assert np.std(np.log(noisy.values)) > np.std(b)

    table = fit.summary()
    assert list(table.index) == fit.var_names
    assert {"mean", "sd", "5%", "median", "95%", "ess_bulk", "ess_tail", "r_hat"} <= set(table.columns)
    assert np.all(table["5%"] < table["median"]) and np.all(table["median"] < table["95%"])
    np.testing.assert_allclose(table.loc["alpha", "median"], np.median(fit.posterior["alpha"].values))

    path = fit.save(tmp_path / "pymc_fit.nc")
    back = bs.Fit.load(path, spec=fit.spec)
    assert back.method == "pymc" and back.seed == 0
    np.testing.assert_array_equal(back.posterior["alpha"].values, fit.posterior["alpha"].values)
    assert list(back.runs["run_id"]) == list(fit.runs["run_id"])


@pytest.mark.slow
def test_fit_diagnostics_reports_mcmc_for_pymc(fits):
    _, fit = fits
    d = fit.diagnostics()
    assert "table" in d and d["max_r_hat"] < 1.05


@pytest.mark.slow
def test_pymc_fit_reports_identified_combinations():
    """The multiplicative law with C = 6ND: same IdentifiabilityWarning and combinations as bayescale.fit.

    The ridge along ``d`` makes PyMC's sampler slow here, so the run is short: only the
    identified combinations, which the data pin down, are checked against the truth.
    """
    truth = {"E": 1.7, "a": 300.0, "b": -0.15, "c": -0.2, "d": 0.0}
    runs = synthetic_runs(
        "multiplicative", truth, N=(1e6, 1e7, 1e8, 1e9, 1e10), tokens_per_param=(2.0, 20.0, 200.0), sigma=0.005, seed=2
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IdentifiabilityWarning)
        warnings.simplefilter("always", ConvergenceWarning)
        fit = fit_pymc("multiplicative", runs, seed=1, chains=2, warmup=100, draws=50)
    kinds = [w.category for w in caught]
    assert kinds.count(IdentifiabilityWarning) == 1
    message = next(str(w.message) for w in caught if w.category is IdentifiabilityWarning)
    assert "N_exponent" in message and "C = 6" in message
    assert fit.identified_names == ["N_exponent", "D_exponent", "log_coefficient"]
    post = fit.posterior
    np.testing.assert_allclose(post["N_exponent"].values, post["b"].values + post["d"].values)
    np.testing.assert_allclose(
        post["log_coefficient"].values, np.log(post["a"].values) + post["d"].values * math.log(6.0)
    )
    assert abs(float(post["N_exponent"].median()) - (truth["b"] + truth["d"])) < 0.03
    assert abs(float(post["D_exponent"].median()) - (truth["c"] + truth["d"])) < 0.03
    assert set(fit.summary().index) == set(fit.var_names + fit.identified_names)


@pytest.mark.slow
def test_spec_sampler_settings_reach_pymc():
    """chains/warmup/draws overrides and the spec's max_tree_depth are what PyMC runs with."""
    spec = bs.load_spec("power").with_sampler(max_tree_depth=2)
    with pytest.warns(ConvergenceWarning, match="maximum tree depth"):
        fit = fit_pymc(spec, _power_runs(), seed=3, chains=1, warmup=60, draws=40)
    stats = fit.idata.sample_stats
    assert fit.posterior.sizes["chain"] == 1 and fit.posterior.sizes["draw"] == 40
    assert int(stats["tree_depth"].max()) == 2 and int(stats["n_steps"].max()) <= 3
    assert fit.diagnostics()["max_tree_depth_hits"] > 0
