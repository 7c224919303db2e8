"""The registry of observation families: the built-ins by hand, registry errors, and a
new family (registered here, in this file only) that specs, the NumPyro engine and the
PyMC backend use with no change anywhere else."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.stats as st

import bayescale as bs
from bayescale import likelihoods
from bayescale.errors import BayescaleError, SpecError
from bayescale.likelihoods import (
    DF,
    SIGMA,
    Family,
    NoiseParam,
    get_family,
    noise_priors,
    observation_dist,
    predictive_variance,
    register_family,
)
from bayescale.priors import Prior
from bayescale.spec import Likelihood, load_spec
from bayescale.testing import synthetic_runs

HALF = Prior("HalfNormal", {"scale": 0.05})
GAMMA = Prior("Gamma", {"concentration": 2.0, "rate": 0.1})
TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36}


def _lik(**d) -> Likelihood:
    return Likelihood.from_dict(d)


# ------------------------------------------------------------- built-ins


def test_builtin_families_in_order() -> None:
    assert list(likelihoods.FAMILIES) == ["Normal", "StudentT", "ExGaussian"]
    assert [get_family(f).noise_names for f in likelihoods.FAMILIES] == [
        ("sigma",),
        ("sigma", "df"),
        ("sigma", "excess"),
    ]
    assert list(likelihoods.noise_params()) == ["sigma", "df", "excess"]


def test_noise_priors_by_family() -> None:
    assert noise_priors(_lik(family="Normal")) == {"sigma": HALF}
    assert noise_priors(_lik(family="StudentT", df=4.0)) == {"sigma": HALF}
    assert noise_priors(_lik(family="StudentT", df=GAMMA.to_dict())) == {"sigma": HALF, "df": GAMMA}
    assert noise_priors(_lik(family="ExGaussian")) == {"sigma": HALF, "excess": Prior("HalfNormal", {"scale": 0.02})}
    # A Normal spec may still carry a df (older specs do); it is ignored.
    assert noise_priors(_lik(family="Normal", df=GAMMA.to_dict())) == {"sigma": HALF}


def test_observation_dist_log_density_by_hand() -> None:
    y, mu, sigma = np.array([0.61, 0.7, 0.95]), 0.7, 0.05
    with jax.enable_x64(True):
        normal = observation_dist(_lik(family="Normal"), jnp.asarray(mu), {"sigma": sigma}).log_prob(y)
        fixed_t = observation_dist(_lik(family="StudentT", df=3.0), jnp.asarray(mu), {"sigma": sigma}).log_prob(y)
        drawn_t = observation_dist(
            _lik(family="StudentT", df=GAMMA.to_dict()), mu, {"sigma": sigma, "df": 7.0}
        ).log_prob(y)
        exg = observation_dist(_lik(family="ExGaussian"), mu, {"sigma": sigma, "excess": 0.1}).log_prob(y)
    np.testing.assert_allclose(normal, st.norm.logpdf(y, mu, sigma), rtol=1e-12)
    np.testing.assert_allclose(fixed_t, st.t.logpdf(y, 3.0, mu, sigma), rtol=1e-12)
    np.testing.assert_allclose(drawn_t, st.t.logpdf(y, 7.0, mu, sigma), rtol=1e-12)
    np.testing.assert_allclose(exg, st.exponnorm.logpdf(y, 0.1 / sigma, mu, sigma), rtol=1e-9)


def test_observation_dist_broadcasts_over_draws_and_runs() -> None:
    mu = jnp.zeros((2, 3, 5))
    sigma = jnp.full((2, 3, 1), 0.1)
    d = observation_dist(
        _lik(family="StudentT", df=GAMMA.to_dict()), mu, {"sigma": sigma, "df": jnp.full((2, 3, 1), 4.0)}
    )
    assert d.batch_shape == (2, 3, 5)


def test_predictive_variance_by_hand() -> None:
    sigma = np.array([0.1, 0.2])
    np.testing.assert_allclose(predictive_variance(_lik(family="Normal"), {"sigma": sigma}), sigma**2)
    np.testing.assert_allclose(predictive_variance(_lik(family="StudentT", df=4.0), {"sigma": sigma}), sigma**2 * 2.0)
    # df <= 2.2: the variance is capped at 5.5 sigma^2 (its value at df = 2.2).
    df = np.array([2.0, 30.0])
    got = predictive_variance(_lik(family="StudentT", df=GAMMA.to_dict()), {"sigma": sigma, "df": df})
    np.testing.assert_allclose(got, sigma**2 * np.array([5.5, 30.0 / 28.0]))
    got = predictive_variance(_lik(family="ExGaussian"), {"sigma": sigma, "excess": np.array([0.3, 0.0])})
    np.testing.assert_allclose(got, sigma**2 + np.array([0.09, 0.0]))


def test_likelihood_constructed_directly_gets_the_family_defaults() -> None:
    assert Likelihood(family="ExGaussian") == _lik(family="ExGaussian")
    assert Likelihood(family="ExGaussian").excess == Prior("HalfNormal", {"scale": 0.02})
    assert Likelihood().to_dict() == {"family": "StudentT", "sigma": HALF.to_dict(), "df": 4.0}


# -------------------------------------------------------- registry errors


def test_unknown_family() -> None:
    with pytest.raises(
        BayescaleError,
        match=r"unknown likelihood family 'Cauchy'; registered families: \['Normal', 'StudentT', 'ExGaussian'\]",
    ):
        get_family("Cauchy")
    with pytest.raises(BayescaleError, match="unknown likelihood family"):
        noise_priors(Likelihood(family="Cauchy"))


def test_register_family_errors() -> None:
    with pytest.raises(BayescaleError, match="register_family takes a Family, got dict"):
        register_family({"name": "x"})
    normal = get_family("Normal")
    with pytest.raises(
        BayescaleError, match=r"a likelihood family named 'Normal' is already registered; pass overwrite=True"
    ):
        register_family(Family("Normal", (SIGMA,), normal.numpyro_dist, normal.variance))
    assert register_family(normal) is normal  # the same family again is harmless
    other_df = NoiseParam("df", 10.0, fixed=True)
    with pytest.raises(
        BayescaleError, match=r"likelihood family 'T10': noise parameter\(s\) \['df'\] are declared differently"
    ):
        register_family(Family("T10", (SIGMA, other_df), normal.numpyro_dist, normal.variance))
    with pytest.raises(BayescaleError, match=r"\['family'\] cannot name a noise parameter"):
        register_family(Family("Bad", (SIGMA, NoiseParam("family", 1.0)), normal.numpyro_dist, normal.variance))
    with pytest.raises(BayescaleError, match="noise must be distinct NoiseParam declarations"):
        register_family(Family("Bad", (SIGMA, SIGMA), normal.numpyro_dist, normal.variance))
    assert list(likelihoods.FAMILIES) == ["Normal", "StudentT", "ExGaussian"]


# ------------------------------------------------------ a new family


def _laplace_variance(p):
    # AsymmetricLaplace(loc, scale, k): exponential tails of means scale*k and scale/k.
    k = np.asarray(p["asymmetry"], dtype=float)
    return p["sigma"] ** 2 * (k**2 + k**-2)


# Logistic: smooth, with heavier tails than Normal. (A Laplace likelihood is not smooth at its
# mode, so the Laplace approximation's Hessian there is singular; NUTS would fit it.)
LOGISTIC = Family(
    name="Logistic",
    noise=(SIGMA,),
    numpyro_dist=lambda mu, p: dist.Logistic(mu, p["sigma"]),
    variance=lambda p: np.pi**2 / 3.0 * p["sigma"] ** 2,
    pymc_build=lambda pm, name, mu, p, **kw: pm.Logistic(name, mu=mu, s=p["sigma"], **kw),
    description="Logistic noise on log loss (a test family).",
)
ASYMMETRY = NoiseParam("asymmetry", 1.0, fixed=True, advice="use e.g. LogNormal")
ASYMMETRIC = Family(
    name="AsymmetricLaplace",
    noise=(SIGMA, ASYMMETRY),
    numpyro_dist=lambda mu, p: dist.AsymmetricLaplace(mu, p["sigma"], p["asymmetry"]),
    variance=_laplace_variance,
    pymc_build=lambda pm, name, mu, p, **kw: pm.AsymmetricLaplace(
        name, kappa=p["asymmetry"], mu=mu, b=p["sigma"], **kw
    ),
    description="Asymmetric Laplace noise on log loss (a test family with its own noise parameter).",
)


@pytest.fixture
def toy_families():
    """Register the test families for one test and remove them afterwards (the registry is global)."""
    register_family(LOGISTIC)
    register_family(ASYMMETRIC)
    try:
        yield
    finally:
        likelihoods._FAMILIES.pop(LOGISTIC.name, None)
        likelihoods._FAMILIES.pop(ASYMMETRIC.name, None)


def _spec(likelihood: dict) -> bs.ModelSpec:
    return load_spec(
        {
            "law": "chinchilla",
            "priors": {k: v.to_dict() for k, v in bs.laws.chinchilla.priors.items()},
            "likelihood": likelihood,
        }
    )


def test_new_family_is_a_valid_spec_and_round_trips(toy_families, tmp_path: Path) -> None:
    assert list(likelihoods.FAMILIES)[-2:] == ["Logistic", "AsymmetricLaplace"]
    spec = _spec({"family": "Logistic", "sigma": {"dist": "HalfNormal", "scale": 0.1}})
    assert spec.likelihood.to_dict() == {"family": "Logistic", "sigma": {"dist": "HalfNormal", "scale": 0.1}}
    asym = _spec({"family": "AsymmetricLaplace", "asymmetry": {"dist": "LogNormal", "loc": 0.0, "scale": 0.3}})
    assert asym.likelihood.value("asymmetry") == Prior("LogNormal", {"loc": 0.0, "scale": 0.3})
    assert list(noise_priors(asym.likelihood)) == ["sigma", "asymmetry"]
    assert _spec({"family": "AsymmetricLaplace"}).likelihood.value("asymmetry") == 1.0  # the declared default
    for s in (spec, asym):
        path = tmp_path / f"{s.likelihood.family}.toml"
        path.write_text(s.to_toml())
        assert load_spec(path).id == s.id and load_spec(path).likelihood == s.likelihood


def test_new_family_fields_are_validated(toy_families) -> None:
    with pytest.raises(SpecError, match=r"likelihood.asymmetry: must be a number > 0 or a prior table, got -1"):
        _spec({"family": "AsymmetricLaplace", "asymmetry": -1})
    with pytest.raises(
        SpecError, match=r"likelihood.asymmetry: prior Normal\(loc=1, scale=1\) allows values <= 0; use e.g. LogNormal"
    ):
        _spec({"family": "AsymmetricLaplace", "asymmetry": {"dist": "Normal", "loc": 1.0, "scale": 1.0}})
    with pytest.raises(
        SpecError,
        match=r"likelihood.asymmetry: only the AsymmetricLaplace family has an asymmetry term \(family is 'StudentT'\)",
    ):
        _spec({"family": "StudentT", "asymmetry": 2.0})
    with pytest.raises(
        SpecError,
        match=r"likelihood: unknown key\(s\) \['skew'\]; allowed: \['family', 'sigma', 'df', 'excess', 'asymmetry'\]",
    ):
        _spec({"family": "AsymmetricLaplace", "skew": 2.0})
    with pytest.raises(
        SpecError,
        match=r"likelihood.family: 'Cauchy' is not supported; use one of \[.*'Logistic', 'AsymmetricLaplace'\]",
    ):
        _spec({"family": "Cauchy"})


def test_new_family_predictive_variance_and_density(toy_families) -> None:
    lik = _spec({"family": "AsymmetricLaplace", "asymmetry": 2.0}).likelihood
    np.testing.assert_allclose(predictive_variance(lik, {"sigma": np.array([0.1])}), 0.01 * 4.25)
    with jax.enable_x64(True):
        lp = observation_dist(lik, 0.0, {"sigma": 0.1}).log_prob(jnp.array([-0.05, 0.05]))
    # Density (1/b) k/(1+k^2) exp(-x k/b) above mu, exp(x/(k b)) below (numpyro's asymmetry k).
    k, b = 2.0, 0.1
    want = np.log(k / (b * (1 + k**2))) + np.array([-0.05 / (k * b), -0.05 * k / b])
    np.testing.assert_allclose(lp, want, rtol=1e-12)


def test_new_family_fits_with_the_laplace_method(toy_families) -> None:
    runs = synthetic_runs(
        "chinchilla", TRUTH, N=np.geomspace(1e7, 1e10, 6), tokens_per_param=(4, 20, 100), sigma=0.01, seed=3
    )
    spec = _spec({"family": "Logistic", "sigma": {"dist": "HalfNormal", "scale": 0.05}})
    fit = bs.fit(spec, runs, seed=0, method="laplace", chains=2, draws=400)
    assert fit.var_names == ["E", "A", "B", "alpha", "beta", "sigma"]
    table = fit.summary(ci_prob=0.99)
    for k in ("E", "alpha", "beta"):
        assert table.loc[k, "0.5%"] < TRUTH[k] < table.loc[k, "99.5%"], (k, table.loc[k])
    # The log likelihood stored is the Logistic family's: recompute one draw by hand.
    post = fit.idata.posterior
    mu = np.log(
        bs.laws.chinchilla(
            {k: float(post[k].values[0, 0]) for k in bs.laws.chinchilla.params},
            N=runs["N"].to_numpy(),
            D=runs["D"].to_numpy(),
        )
    )
    want = st.logistic.logpdf(np.log(runs["loss"].to_numpy()), mu, float(post["sigma"].values[0, 0]))
    np.testing.assert_allclose(
        fit.idata.log_likelihood["log_loss"].values[0, 0], want, rtol=1e-4, atol=1e-4
    )  # stored from a float32 fit


@pytest.mark.skipif(importlib.util.find_spec("pymc") is None, reason="PyMC not installed")
def test_new_family_builds_in_pymc(toy_families) -> None:
    from bayescale.pymc_backend import to_pymc

    runs = synthetic_runs("chinchilla", TRUTH, seed=1)
    spec = _spec({"family": "AsymmetricLaplace", "asymmetry": {"dist": "LogNormal", "loc": 0.0, "scale": 0.3}})
    model = to_pymc(spec, runs)
    assert [v.name for v in model.free_RVs] == ["E", "A", "B", "alpha", "beta", "sigma", "asymmetry"]
    fixed = to_pymc(_spec({"family": "AsymmetricLaplace", "asymmetry": 2.0}), runs)
    assert "asymmetry" not in [v.name for v in fixed.free_RVs]


def test_family_without_pymc_builder_is_refused_by_the_pymc_backend(toy_families) -> None:
    pytest.importorskip("pymc")
    from bayescale.pymc_backend import to_pymc

    register_family(Family("NoPyMC", (SIGMA,), LOGISTIC.numpyro_dist, LOGISTIC.variance))
    try:
        with pytest.raises(
            SpecError,
            match=r"likelihood.family: 'NoPyMC' has no PyMC builder in the PyMC backend; fit it with bayescale.fit",
        ):
            to_pymc(_spec({"family": "NoPyMC"}), synthetic_runs("chinchilla", TRUTH, seed=1))
    finally:
        likelihoods._FAMILIES.pop("NoPyMC", None)


def test_df_is_one_declaration_shared_by_name() -> None:
    assert get_family("StudentT").noise[1] is DF and DF.accepted_by_all
