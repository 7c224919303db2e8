"""Checks and likelihoods: hand-computed cases from fixed draws, plus small real fits."""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd
import pytest
import scipy.optimize
import scipy.stats as st

import bayescale as bs
from bayescale import checks
from bayescale.data import load_runs
from bayescale.likelihoods import ExGaussian
from bayescale.model import distance_from_runs
from bayescale.testing import fit_from_draws, synthetic_runs

TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36}
NORMAL = {
    "law": "chinchilla",
    "priors": bs.ModelSpec.from_law("chinchilla").to_dict()["priors"],
    "likelihood": {"family": "Normal", "sigma": {"dist": "HalfNormal", "scale": 0.05}},
}


def _law(p, N, D):
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


@pytest.fixture(scope="module")
def runs():
    return synthetic_runs("chinchilla", TRUTH, seed=0)


@pytest.fixture(scope="module")
def fixed(runs):
    draws = {k: [v, v] for k, v in TRUTH.items()}
    draws["sigma"] = [0.01, 0.02]
    return fit_from_draws(NORMAL, runs, draws), draws


# ------------------------------------------------------------------ likelihoods


def test_exgaussian_matches_scipy():
    with jax.enable_x64(True):
        d = ExGaussian(0.1, 0.02, 1 / 0.03)
        x = np.linspace(-0.2, 0.8, 11)
        ref = st.exponnorm(K=0.03 / 0.02, loc=0.1, scale=0.02)
        np.testing.assert_allclose(np.asarray(d.log_prob(jnp.asarray(x))), ref.logpdf(x), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(np.asarray(d.cdf(jnp.asarray(x))), ref.cdf(x), atol=1e-12)
        s = np.asarray(d.sample(jax.random.PRNGKey(0), (100_000,)))
    assert s.mean() == pytest.approx(0.13, abs=1e-3)
    assert s.std() == pytest.approx(np.hypot(0.02, 0.03), rel=0.02)


def test_exgaussian_spec_errors():
    bad = dict(NORMAL, likelihood={"family": "Normal", "excess": {"dist": "HalfNormal", "scale": 0.1}})
    with pytest.raises(bs.SpecError, match="only the ExGaussian family has an excess"):
        bs.load_spec(bad)
    bad = dict(NORMAL, likelihood={"family": "ExGaussian", "excess": {"dist": "Normal", "loc": 0, "scale": 1}})
    with pytest.raises(bs.SpecError, match="excess.*<= 0"):
        bs.load_spec(bad)
    assert bs.load_spec("chinchilla_inefficiency").likelihood.family == "ExGaussian"


# ------------------------------------------------------------------ predictive table


def test_predictive_table_hand_computed(fixed, runs):
    fit, draws = fixed
    new = synthetic_runs("chinchilla", TRUTH, N=(2e9,), tokens_per_param=(20,), seed=5)
    new["run_id"] = ["new0"]
    t = checks.predictive_table(fit, new, seed=0)
    y = np.log(new["loss"].iloc[0])
    mu = np.log(_law(TRUTH, 2e9, 4e10))
    pit = np.mean([st.norm.cdf(y, mu, s) for s in draws["sigma"]])
    lpd = np.log(np.mean([st.norm.pdf(y, mu, s) for s in draws["sigma"]]))
    assert t["pit"].iloc[0] == pytest.approx(pit, rel=1e-9)
    assert t["p_value"].iloc[0] == pytest.approx(2 * min(pit, 1 - pit), rel=1e-9)
    assert t["log_pred_density"].iloc[0] == pytest.approx(lpd, rel=1e-9)
    assert t["surprise"].iloc[0] == (pit < 0.05 or pit > 0.95)
    # the band is the same mixture's quantiles (an equal mix of two normals here), so a run just inside
    # its printed edge is not flagged and one just outside is
    mix = lambda x: np.mean([st.norm.cdf(x, mu, s) for s in draws["sigma"]])  # noqa: E731
    hi = scipy.optimize.brentq(lambda x: mix(x) - 0.95, mu, mu + 1.0, xtol=1e-14)
    assert t["hi90"].iloc[0] == pytest.approx(np.exp(hi), rel=1e-9) and t["median"].iloc[0] == pytest.approx(np.exp(mu))
    edge = pd.concat([new, new], ignore_index=True).assign(
        run_id=["in", "out"], loss=np.exp(hi) * np.array([0.9999, 1.0001])
    )
    assert list(checks.predictive_table(fit, edge, seed=0)["surprise"]) == [False, True]


def test_band_names_and_coverage():
    pit = np.array([0.5, 0.7, 0.85, 0.93, 0.96, 0.999])
    assert checks._band(pit) == ["inside 50%", "inside 50%", "inside 80%", "inside 90%", "inside 95%", "outside 95%"]
    cov = checks.coverage(pit)
    assert cov[0.5] == pytest.approx(2 / 6) and cov[0.95] == pytest.approx(5 / 6)


def test_surprise_flags_a_run_far_off(fixed):
    fit, _ = fixed
    new = pd.DataFrame(
        {
            "run_id": ["ok", "bad"],
            "N": [1e9, 1e9],
            "D": [2e10, 2e10],
            "loss": [_law(TRUTH, 1e9, 2e10), 1.3 * _law(TRUTH, 1e9, 2e10)],
        }
    )
    res = checks.check(fit, new)
    assert list(res.table["surprise"]) == [False, True]
    assert "SURPRISE" in res.summary().splitlines()[1] and "SURPRISE" not in res.summary().splitlines()[0]
    with pytest.raises(bs.BayescaleError, match="repeat runs of the fit"):
        checks.check(fit, fit.runs.iloc[:2])


def test_check_says_what_the_table_cannot_show_and_stays_quiet_on_honest_runs(runs):
    """Against a posterior unsure of the law's level (E sd 0.01; what chance gives is counted over its joint
    draws): honest runs get no notes; runs all 5% above, alternating 5% off, N in millions, repeated data the
    law does not read, and runs far beyond the fit each get theirs, with what to do."""
    rng = np.random.default_rng(1)
    draws = {k: np.full(400, v) for k, v in TRUTH.items()} | {"sigma": np.full(400, 0.005)}
    fit = fit_from_draws(NORMAL, runs, draws | {"E": 1.8 + 0.01 * rng.standard_normal(400)})
    n = np.geomspace(2e8, 2e9, 8)
    honest = pd.DataFrame({"run_id": [f"h{i}" for i in range(8)], "N": n, "D": 20 * n})
    honest["loss"] = _law(TRUTH, honest["N"], honest["D"]) * np.exp(np.resize([0.003, -0.003], 8))
    quiet = checks.check(fit, honest)
    assert quiet.notes == () and not quiet.table["surprise"].any()
    level = checks.check(fit, honest.assign(loss=honest["loss"] * 1.05)).notes  # a law 5% too low
    assert any(x.startswith("the 8 new runs sit 5.1% above the median prediction on average") for x in level)
    assert any("too low, a bias the bands do not cover" in x for x in level)
    scattered = honest.assign(loss=honest["loss"] * np.resize([1.05, 1 / 1.05], 8))  # off both ways: no level
    (many,) = checks.check(fit, scattered).notes
    assert many.startswith("8 of 8 new runs are surprises where about 0.8 would be by chance (p < 0.0025)")
    (units,) = checks.check(fit, honest.assign(N=honest["N"] / 1e6)).notes  # nothing else is said
    assert "tokens per parameter" in units and "other units" in units
    bits = honest.assign(loss=honest["loss"] / np.log(2))  # every loss 1.44x: log2, not the natural log
    (units,) = checks.check(fit, bits).notes
    assert (
        units.startswith("the new runs' table: the new runs' losses are 1.44x their predicted medians")
        and "bits" in units
    )
    assert checks.check(fit, bits, update=True).notes[-1] == checks.NOT_REFITTED
    # a run's own prediction error scatters it about the factor (a held-out pilot sat 0.052 off it): still bits
    scatter = bits.assign(loss=bits["loss"] * np.resize([1.07, 1.0, 0.97, 1.02], 8))
    assert (
        "bits" in checks.check(fit, scatter).notes[0]
        and checks.check(fit, scatter, update=True).notes[-1] == checks.NOT_REFITTED
    )
    assert not any("bits" in x for x in checks.check(fit, honest.assign(loss=honest["loss"] * 1.25)).notes)
    assert any("does not read U" in x for x in checks.check(fit, honest.assign(U=honest["D"] / 20)).notes)
    far = pd.DataFrame({"run_id": ["far"], "N": [1e12], "D": [2e13]})
    far["loss"] = _law(TRUTH, far["N"], far["D"])
    assert any(x.startswith("far extrapolates up to") for x in checks.check(fit, far).notes)
    # z: the p-value as a normal z, signed by the run's side, so z, p and the flag read alike
    table = checks.check(fit, scattered).table
    assert np.all(np.sign(table["z"]) == np.sign(table["pit"] - 0.5)) and np.all(np.abs(table["z"]) > 1.645)
    assert np.allclose(2 * st.norm.sf(np.abs(table["z"])), table["p_value"], rtol=1e-9)
    mixed = checks.check(fit, honest).table
    assert np.array_equal(np.abs(mixed["z"]) > 1.645, mixed["surprise"])


def test_the_largest_new_runs_off_together_are_said_though_the_whole_set_is_not(runs):
    """Ten new runs whose mean sits on the prediction, but whose three largest all sit 4% below: the sign of a
    law that drifts from the runs with compute, which a level over all runs averages away."""
    rng = np.random.default_rng(3)
    draws = {k: np.full(400, v) for k, v in TRUTH.items()} | {"sigma": np.full(400, 0.02)}
    fit = fit_from_draws(NORMAL, runs, draws | {"E": 1.8 + 0.01 * rng.standard_normal(400)})
    n = np.geomspace(2e8, 2e9, 10)
    new = pd.DataFrame({"run_id": [f"n{i}" for i in range(10)], "N": n, "D": 20 * n})
    honest = new.assign(loss=_law(TRUTH, new["N"], new["D"]))
    assert checks.check(fit, honest).notes == ()
    drifted = honest.assign(loss=honest["loss"] * np.r_[np.full(7, 1.017), np.full(3, 0.96)])
    notes = checks.check(fit, drifted).notes
    (said,) = notes
    assert said.startswith("the 3 new runs at the largest compute") and "predicts the largest runs too high" in said
    assert "4% below the median prediction on average" in said, said


def test_new_runs_are_told_from_the_fits_by_content_not_row_position(fixed, tmp_path):
    """Neither table names its runs: ids made from row positions collide (run000 in both) but name no
    run, so the new ones are renumbered; a run the fit has seen is refused whatever its id."""
    fit = fit_from_draws(NORMAL, fixed[0].runs.drop(columns=["run_id", "derived"]), fixed[1])
    assert "run000" in set(fit.runs["run_id"])
    new = pd.DataFrame({"N": [1e9, 2e9], "D": [2e10, 4e10]})
    new["loss"] = _law(TRUTH, new["N"], new["D"])
    new.to_csv(tmp_path / "new.csv", index=False)
    res = checks.check(fit, tmp_path / "new.csv")
    assert len(res.table) == 2 and not set(res.table.index.astype(str)) & set(fit.runs["run_id"])
    assert len(checks.check(fit, load_runs(tmp_path / "new.csv")).table) == 2  # loaded first: the same
    seen = fit.runs.iloc[[3]].drop(columns=["run_id"]).assign(run_id="renamed")
    with pytest.raises(bs.BayescaleError, match=r"new runs 'renamed' repeat runs of the fit .* as its 'run003'"):
        checks.check(fit, seen)
    named = new.assign(run_id=list(fit.runs["run_id"][:2]))  # ids the user gave that name fitted runs
    with pytest.raises(bs.BayescaleError, match="already in the fit \\(by run_id\\)"):
        checks.check(fit, named)


def test_loo_pit_matches_direct_formula_when_weights_are_flat(runs):
    # With identical draws PSIS weights are uniform, so LOO-PIT is the plain predictive CDF.
    draws = {k: [v] * 4 for k, v in TRUTH.items()}
    draws["sigma"] = [0.01] * 4
    fit = fit_from_draws(NORMAL, runs, draws)
    pit = checks.loo_pit(fit)
    y = np.log(runs["loss"].to_numpy())
    mu = np.log(_law(TRUTH, runs["N"].to_numpy(), runs["D"].to_numpy()))
    np.testing.assert_allclose(pit.to_numpy(), st.norm.cdf(y, mu, 0.01), rtol=1e-6)
    assert list(pit.index) == list(runs["run_id"])


def test_drift_widens_only_away_from_the_runs(runs):
    spec = bs.load_spec(dict(NORMAL, extrapolation={"per_decade": {"dist": "HalfNormal", "scale": 0.02}}))
    table = bs.load_runs(runs)
    pts = pd.DataFrame({"N": [1e8, 1e10], "D": [2e9, 2e11]})
    pts["C"] = 6 * pts["N"] * pts["D"]
    dec = distance_from_runs(spec, table, pts)
    assert dec[0] == 0.0 if ((table["N"] == 1e8) & (table["D"] == 2e9)).any() else dec[0] < dec[1]
    nearest = np.hypot(np.log10(1e10 / table["N"]), np.log10(2e11 / table["D"])).min()
    assert dec[1] == pytest.approx(nearest)
    draws = {k: [v] * 3 for k, v in TRUTH.items()}
    draws["sigma"] = [0.01] * 3
    draws["drift"] = [-0.01, 0.0, 0.02]
    fit = fit_from_draws(spec, runs, draws)
    band = fit.predict(pts)
    law = _law(TRUTH, pts["N"].to_numpy(), pts["D"].to_numpy())
    np.testing.assert_allclose(band.values[0, :, 0], law[0])  # inside: no drift
    np.testing.assert_allclose(band.values[0, :, 1], law[1] * np.exp(np.array([-0.01, 0.0, 0.02]) * dec[1]))


def test_design_warning_for_a_single_ratio():
    one_ratio = synthetic_runs("chinchilla", TRUTH, tokens_per_param=(20,), seed=0)
    draws = {k: [v, v * 1.01] for k, v in TRUTH.items()}
    draws["sigma"] = [0.01, 0.01]
    fit = fit_from_draws(NORMAL, one_ratio, draws)
    w = checks.design_warnings(fit)
    assert any("one tokens-per-parameter ratio" in m for m in w)


def test_prior_predictive_shapes_and_spread():
    pp = checks.prior_predictive("chinchilla", {"N": [1e8, 1e9], "D": [2e9, 2e10]}, draws=500, seed=1)
    assert pp.dims == ("chain", "draw", "point") and pp.shape == (1, 500, 2)
    assert np.all(np.isfinite(pp.values)) and np.all(pp.values > 0)
    assert np.quantile(pp.values, 0.95) / np.quantile(pp.values, 0.05) > 2  # weakly informative: wide


# ------------------------------------------------------------------ small real fits


@pytest.mark.slow
def test_loo_compare_and_validation_on_a_small_fit():
    runs = synthetic_runs(
        "chinchilla", TRUTH, N=(1e7, 3e7, 1e8, 3e8, 1e9), tokens_per_param=(5, 20, 80), sigma=0.01, seed=3
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        t_fit = bs.fit("chinchilla", runs, seed=0, chains=2, warmup=500, draws=500)
        n_fit = bs.fit(NORMAL, runs, seed=0, chains=2, warmup=500, draws=500)
    res = checks.loo(t_fit)
    assert np.isfinite(res.elpd) and res.se > 0 and len(res.pareto_k) == len(runs)
    with pytest.warns(checks.ComparisonWarning, match="do not tell these models apart"):
        table = checks.compare({"studentt": t_fit, "normal": n_fit})
    assert set(table.index) == {"studentt", "normal"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        v = checks.leave_largest_out("chinchilla", runs, holdout_top=0.2, chains=2, warmup=500, draws=500)
    assert v.n_train == 12 and len(v.table) == 3
    assert (v.table["C"] > v.cut).all()
    assert set(v.coverage) == {0.5, 0.8, 0.9, 0.95}
    assert "held out 3" in v.summary()
    with pytest.raises(bs.BayescaleError, match="holdout_top"):
        checks.leave_largest_out("chinchilla", runs, holdout_top=1.5)


def test_loo_on_laplace_draws_says_it_reflects_the_approximation():
    """PSIS-LOO of a Laplace fit flags every run and inflates p_loo: the API says why, as the CLI does."""
    runs = synthetic_runs("chinchilla", TRUTH, N=(1e7, 3e7, 1e8, 3e8), tokens_per_param=(5, 20, 80), sigma=0.01, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        fits = {name: bs.fit(name, runs, seed=0, method="laplace") for name in ("chinchilla", "kaplan")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = checks.loo(fits["chinchilla"])
    assert res.flagged and res.p_loo > len(runs)  # the Gaussian's tails
    assert res.method == "laplace" and "reflect the approximation" in res.note and res.note in str(res)
    assert any(issubclass(w.category, checks.ComparisonWarning) for w in caught)
    with pytest.warns(checks.ComparisonWarning, match="LOO-PIT from a Laplace"):
        checks.loo_pit(fits["chinchilla"])
    with pytest.warns(checks.ComparisonWarning, match="'chinchilla' and 'kaplan' drew from a Laplace approximation"):
        checks.compare(fits)


def test_check_update_refits_with_the_fits_own_method(fixed, monkeypatch):
    """The shifts must show what the new runs moved, not a change of method: the refit repeats the fit's
    method unless one is given; a fit from given draws ("fixed") is refitted with the default (NUTS)."""
    seen = []
    monkeypatch.setattr(checks, "_fit", lambda spec, table, **kw: seen.append(kw.get("method")) or fixed[0])
    monkeypatch.setattr(checks, "_shifts", lambda *a: None)
    new = synthetic_runs("chinchilla", TRUTH, N=(1e9,), seed=5, prefix="new")
    laplace_fit = dataclasses.replace(fixed[0], method="laplace")
    checks.check(laplace_fit, new, update=True)
    checks.check(laplace_fit, new, update=True, method="psis")
    checks.check(fixed[0], new, update=True)
    assert seen == ["laplace", "psis", "nuts"]


def test_check_update_refuses_runs_in_other_units_and_says_each_table_note_once(fixed, monkeypatch):
    """A refit through runs whose N looks like millions would move the law by the error alone: none is
    made, and the notes say why. A refit that is made says the new runs' table notes once (the refit's own
    RunsTableWarnings are not repeated), and names a schedule the fit's runs lack."""
    refits = []
    monkeypatch.setattr(checks, "_fit", lambda spec, table, **kw: refits.append(table) or fixed[0])
    monkeypatch.setattr(checks, "_shifts", lambda *a: None)
    new = synthetic_runs("chinchilla", TRUTH, N=(1e9,), seed=5, prefix="new")
    res = checks.check(fixed[0], new.assign(N=new["N"] / 1e6).drop(columns="C"), update=True)
    assert res.updated is None and not refits
    assert "other units" in res.notes[0] and res.notes[-1] == checks.NOT_REFITTED
    # new runs at one loss (a rounded table) are joined to the fit's runs: no "the fit's noise collapses"
    rounded = checks.check(fixed[0], new.assign(loss=float(new["loss"].round(1).iloc[0])), update=True)
    assert not any("same loss" in n for n in rounded.notes), rounded.notes
    old = dataclasses.replace(fixed[0], runs=fixed[0].runs.assign(schedule="cosine"))
    monkeypatch.setattr(
        checks, "_fit", lambda spec, table, **kw: warnings.warn("runs table: x", bs.RunsTableWarning) or fixed[0]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.RunsTableWarning)
        res = checks.check(old, new.assign(schedule="wsd"), update=True)
    assert res.updated is fixed[0]
    assert any(n.startswith("the new runs' schedule 'wsd' is not the fit's ('cosine')") for n in res.notes)
    assert not any("schedule" in n for n in checks.check(old, new.assign(schedule="cosine"), update=True).notes)


def test_check_update_keeps_the_columns_only_one_table_has(fixed, monkeypatch):
    """New runs without ``U`` (trained on fresh data) must not erase the repeated-data column of the fit's
    runs, which the data-constrained law reads; a column only the new runs have is kept too."""
    refits = []
    monkeypatch.setattr(checks, "_fit", lambda spec, table, **kw: refits.append(table) or fixed[0])
    monkeypatch.setattr(checks, "_shifts", lambda *a: None)
    runs = fixed[0].runs
    repeated = runs["D"].to_numpy() / np.where(np.arange(len(runs)) % 2, 4.0, 1.0)
    old = dataclasses.replace(fixed[0], runs=runs.assign(U=repeated))
    new = synthetic_runs("chinchilla", TRUTH, N=(1e9,), seed=5, prefix="new").assign(notes="fresh")
    checks.check(old, new, update=True)
    table = refits[0]
    assert list(table["U"][: len(runs)]) == list(repeated) and table["U"][len(runs) :].isna().all()
    assert table["notes"][len(runs) :].eq("fresh").all() and "derived" not in table.columns


@pytest.mark.slow
def test_check_update_reports_shifts():
    runs = synthetic_runs("chinchilla", TRUTH, N=(1e7, 3e7, 1e8, 3e8), tokens_per_param=(5, 20, 80), sigma=0.01, seed=4)
    new = synthetic_runs("chinchilla", TRUTH, N=(1e9,), tokens_per_param=(5, 20, 80), sigma=0.01, seed=5)
    new["run_id"] = ["n0", "n1", "n2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        fit = bs.fit("chinchilla", runs, seed=0, chains=2, warmup=500, draws=500)
        res = checks.check(fit, new, update=True)
    assert res.updated is not None and len(res.updated.runs) == len(runs) + 3
    assert {"alpha", "beta"} <= set(res.shifts.index)
    # New, larger runs should not make us less sure of the size exponent.
    assert res.shifts.loc["alpha", "sd_after"] <= 1.1 * res.shifts.loc["alpha", "sd_before"]


@pytest.mark.slow
def test_exgaussian_resists_under_tuned_runs():
    runs = synthetic_runs(
        "chinchilla", TRUTH, N=(1e7, 3e7, 1e8, 3e8, 1e9), tokens_per_param=(5, 10, 20, 40, 80), sigma=0.005, seed=0
    )
    rng = np.random.default_rng(1)
    bad = rng.random(len(runs)) < 0.3
    runs.loc[bad, "loss"] *= np.exp(rng.exponential(0.05, bad.sum()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        ex = bs.fit("chinchilla_inefficiency", runs, seed=0).summary()
        normal = bs.fit(NORMAL, runs, seed=0).summary()
    err = lambda s: abs(np.log(s.loc["E", "median"] / TRUTH["E"])) + abs(s.loc["alpha", "median"] - TRUTH["alpha"])  # noqa: E731
    assert err(ex) < err(normal)
    assert ex.loc["E", "5%"] <= TRUTH["E"] <= ex.loc["E", "95%"]


@pytest.mark.parametrize(
    "family",
    [
        lambda loc, scale: (dist.Normal(loc, scale), [st.norm(loc=m, scale=s) for m, s in zip(loc[:, 0], scale[:, 0])]),
        lambda loc, scale: (
            dist.StudentT(np.array([[1.0], [3.0]]), loc, scale),
            [st.t(df, loc=m, scale=s) for df, m, s in zip((1.0, 3.0), loc[:, 0], scale[:, 0])],
        ),
        lambda loc, scale: (
            ExGaussian(loc, scale, 1 / (2 * scale)),
            [st.exponnorm(2.0, loc=m, scale=s) for m, s in zip(loc[:, 0], scale[:, 0])],
        ),
    ],
    ids=["normal", "student-t df 1 and 3", "exgaussian"],
)
def test_the_printed_band_is_the_mixtures_quantiles_however_heavy_its_tails(family):
    """The band ``check`` prints is the predictive mixture's own quantiles (the flag's), found from a start
    far off (two draws' sampled quantiles can miss a Cauchy tail by decades: 0.56-13.2 printed for
    0.10-55.7 before the bracket was widened until it held them)."""
    from bayescale.likelihoods import mixture_quantiles

    loc, scale = np.array([[0.0], [0.1]]), np.array([[0.5], [0.2]])
    d, parts = family(loc, scale)
    probs = (0.05, 0.5, 0.95)
    with jax.enable_x64(True):
        got = mixture_quantiles(d, probs, np.zeros((3, 1)))
    for p, q in zip(probs, got[:, 0]):
        mix = lambda x: np.mean([c.cdf(x) for c in parts]) - p  # noqa: E731
        assert q == pytest.approx(scipy.optimize.brentq(mix, -1e4, 1e4, xtol=1e-13), abs=1e-8)
