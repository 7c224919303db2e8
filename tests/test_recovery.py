"""Parameter recovery and interval coverage on synthetic runs with known truth.

* Recovery: for every built-in law, NUTS on one synthetic data set drawn from the
  model itself (Student-t noise with the spec's df = 4) puts the truth inside the
  95% interval of every identified quantity.
* Coverage: over many seeded data sets, 90% intervals cover the truth about 90% of
  the time, and their width matches the seed-to-seed spread of the estimates
  (neither over- nor under-confident). Laplace for the 20-seed loops, NUTS for a
  smaller loop.

The whole file takes about two to three minutes on two cores.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import scipy.stats as st

import bayescale as bs
from bayescale.errors import ConvergenceWarning, IdentifiabilityWarning
from bayescale.laws import Law
from bayescale.testing import synthetic_runs

pytestmark = pytest.mark.slow

# 8 model sizes (10M to 30B parameters) x 5 tokens-per-parameter ratios = 40 runs.
GRID = dict(N=np.geomspace(1e7, 3e10, 8), tokens_per_param=(2, 5, 20, 80, 320))
SIGMA = 0.01  # noise scale on log loss: about 1%, typical of seed-to-seed variation
DF = 4.0  # the bundled specs' Student-t df: the data are drawn from the model itself
NUTS = dict(chains=2, warmup=500, draws=1000)


def _spec(name: str, inputs: Mapping[str, str] | None = None) -> bs.ModelSpec:
    d = bs.load_spec(name).to_dict()
    if inputs:
        d["law"]["inputs"] = dict(inputs)
    return bs.load_spec(d)


# law -> (spec, truth, law inputs -> columns, extra identified truths)
CASES: dict[str, dict[str, Any]] = {
    "chinchilla": dict(
        spec=lambda: _spec("chinchilla"),
        # Epoch AI's refit of the Chinchilla runs (Besiroglu et al. 2024).
        truth={"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366},
    ),
    "kaplan": dict(
        spec=lambda: _spec("kaplan"),
        # Kaplan et al. 2020.
        truth={"Nc": 8.8e13, "Dc": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095},
    ),
    "power": dict(
        spec=lambda: _spec("power", {"S": "N"}),
        # Loss against model size alone: L = 1.7 + 300 N^-0.3.
        truth={"E": 1.7, "a": 300.0, "b": -0.3},
        columns={"S": "N"},
    ),
    "multiplicative": dict(
        spec=lambda: _spec("multiplicative"),
        truth={"E": 1.7, "a": 400.0, "b": -0.13, "c": -0.13, "d": -0.02},
        # With C = 6ND only these are identified; a, b, c, d follow the prior along a ridge.
        identified={
            "N_exponent": -0.13 - 0.02,
            "D_exponent": -0.13 - 0.02,
            "log_coefficient": math.log(400.0) - 0.02 * math.log(6.0),
        },
        checked=["E", "sigma", "N_exponent", "D_exponent", "log_coefficient"],
    ),
}


def _runs(case: dict, seed: int, law: Law):
    return synthetic_runs(law, case["truth"], sigma=SIGMA, df=DF, columns=case.get("columns"), seed=seed, **GRID)


def _truth(case: dict) -> dict[str, float]:
    return {**case["truth"], "sigma": SIGMA, **case.get("identified", {})}


def _noise_scale(runs) -> float:
    """Scale MLE (Student-t, df = DF) of the standardised noise actually drawn: ~1, sd ~0.15."""
    eps = np.log(runs["loss"] / runs["loss_true"]).to_numpy() / SIGMA
    return float(st.t.fit(eps, f0=DF, floc=0)[2])


def _typical_runs(case: dict, law: Law, start: int):
    """The first data set from seed ``start`` on whose noise draw is typical (scale within 15%).

    A single data set decides a recovery test; screening on the noise alone (never on a
    fit) keeps a rare draw, which moves every interval at once, from deciding it. The
    coverage tests below use every seed, unusual draws included.
    """
    for seed in range(start, start + 10):
        runs = _runs(case, seed, law)
        if abs(math.log(_noise_scale(runs))) < 0.15:
            return runs
    raise AssertionError("no typical noise draw in 10 seeds: check synthetic_runs")


#: The N-D laws of issue 15 are recovered in the fast tier, on designs their extra terms need
#: (repeated data for the data-constrained laws; held-out larger models for Farseer and the bending law).
RECOVERED_IN_TEST_LAWS_ND = {
    "data_constrained": "test_data_constrained_recovers_R_D",
    "data_constrained_full": "test_data_constrained_full_recovers_R_N",
    "farseer": "test_farseer_recovers_held_out_losses",
    "chinchilla_bending": "test_bending_recovers_exponent_slopes",
}


def test_every_builtin_law_has_a_recovery_case() -> None:
    import test_laws_nd

    builtins = {v.name for v in vars(bs.laws).values() if isinstance(v, Law)}
    covered = set(CASES) | set(RECOVERED_IN_TEST_LAWS_ND)
    assert builtins == covered, f"add a recovery case for {sorted(builtins - covered)}"
    assert all(callable(getattr(test_laws_nd, t, None)) for t in RECOVERED_IN_TEST_LAWS_ND.values())


def _fit(spec: bs.ModelSpec, runs, **kw) -> bs.Fit:
    if spec.law.identified is not None:
        with pytest.warns(IdentifiabilityWarning, match="cannot separate"):
            return bs.fit(spec, runs, **kw)
    return bs.fit(spec, runs, **kw)


@pytest.mark.parametrize("law", list(CASES))
def test_recovery_nuts(law: str) -> None:
    case = CASES[law]
    spec = case["spec"]()
    runs = _typical_runs(case, spec.law, start=21 + 10 * list(CASES).index(law))
    fit = _fit(spec, runs, seed=0, **NUTS)  # a ConvergenceWarning here is an error
    truth = _truth(case)
    checked = case.get("checked", list(truth))
    # Every checked parameter at once: 95% family-wise (Bonferroni), not 95% each, which some
    # parameter of six misses for about one data set in four.
    prob = 1 - 0.05 / len(checked)
    table = fit.summary(var_names=checked, ci_prob=prob)
    lo_col, hi_col = table.columns[table.columns.str.endswith("%")][:2]
    outside = {
        k: (truth[k], table.loc[k, lo_col], table.loc[k, hi_col])
        for k in checked
        if not table.loc[k, lo_col] < truth[k] < table.loc[k, hi_col]
    }
    assert not outside, f"{law}: truth outside the {prob:.1%} interval: {outside}"
    d = fit.diagnostics()
    assert d["divergences"] == 0 and d["max_r_hat"] <= 1.01
    # The fitted law reproduces the noise-free losses of the runs: better than one run
    # does on average (40 runs pin the curve), and within 3 noise sd at the corners.
    med = fit.predict(runs).median(dim=("chain", "draw")).values
    err = np.log(med / runs["loss_true"].to_numpy())
    assert np.sqrt(np.mean(err**2)) < SIGMA and np.max(np.abs(err)) < 3 * SIGMA, err


# --------------------------------------------------------------- coverage


def _coverage(fits: list[bs.Fit], truth: Mapping[str, float], names: list[str], nominal: float) -> dict[str, Any]:
    """Covered count, total, and per-parameter spread of estimates vs posterior width."""
    lo_q, hi_q = (1 - nominal) / 2, 1 - (1 - nominal) / 2
    covered, total = 0, 0
    medians: dict[str, list[float]] = {k: [] for k in names}
    sds: dict[str, list[float]] = {k: [] for k in names}
    misses: list[tuple[int, str]] = []
    for i, fit in enumerate(fits):
        for k in names:
            x = fit.posterior[k].values.reshape(-1)
            lo, hi = np.quantile(x, [lo_q, hi_q])
            total += 1
            if lo < truth[k] < hi:
                covered += 1
            else:
                misses.append((i, k))
            # Positive parameters on the log scale, where their posteriors are near-Gaussian.
            z = np.log(x) if np.all(x > 0) else x
            medians[k].append(float(np.median(z)))
            sds[k].append(float(np.std(z)))
    # Seed-to-seed sd of the posterior medians over the typical posterior sd: ~1 when calibrated.
    ratio = {k: float(np.std(medians[k], ddof=1) / np.sqrt(np.mean(np.square(sds[k])))) for k in names}
    return {"covered": covered, "total": total, "misses": misses, "ratio": ratio}


def _lower_bound(n_seeds: int, nominal: float, alpha: float = 0.001) -> float:
    """Smallest coverage fraction not rejected at level ``alpha``.

    The parameters of one data set are correlated (one noise draw moves them all),
    so the seed, not the parameter, is the independent unit: the bound is the
    binomial one for ``n_seeds`` trials, applied to the fraction over all parameters.
    """
    return float(st.binom.ppf(alpha, n_seeds, nominal)) / n_seeds


@pytest.mark.parametrize("law", ["chinchilla", "power"])
def test_coverage_laplace(law: str) -> None:
    case, n_seeds, nominal = CASES[law], 20, 0.9
    spec = case["spec"]()
    truth = _truth(case)
    names = list(truth)
    fits = [
        bs.fit(spec, _runs(case, seed=1000 + s, law=spec.law), seed=s, method="laplace", chains=2, draws=1000)
        for s in range(n_seeds)
    ]
    cov = _coverage(fits, truth, names, nominal)
    frac = cov["covered"] / cov["total"]
    assert frac >= _lower_bound(n_seeds, nominal), (
        f"{law}: 90% intervals cover {cov['covered']}/{cov['total']}; misses {cov['misses']}"
    )
    # Intervals as wide as the estimates actually vary: with 20 seeds the sd ratio is
    # known to about +-16% (1 sd), so 0.55-1.6 flags only real over- or under-confidence.
    bad = {k: r for k, r in cov["ratio"].items() if not 0.55 < r < 1.6}
    assert not bad, f"{law}: spread of estimates / posterior sd out of range: {bad} (all: {cov['ratio']})"


def test_coverage_nuts() -> None:
    case, n_seeds, nominal = CASES["chinchilla"], 8, 0.9
    spec = case["spec"]()
    truth = _truth(case)
    names = list(truth)
    fits, warned = [], []
    for s in range(n_seeds):
        runs = _runs(case, seed=2000 + s, law=spec.law)
        # Two chains are few for r-hat <= 1.01 on every one of 8 data sets; a warning is
        # recorded here rather than raised, and bounded below.
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always", ConvergenceWarning)
            fit = bs.fit(spec, runs, seed=s, **NUTS)
        if any(issubclass(r.category, ConvergenceWarning) for r in rec):
            warned.append(s)
        others = [r for r in rec if not issubclass(r.category, ConvergenceWarning)]
        assert not others, [str(r.message) for r in others]
        d = fit.diagnostics()
        assert d["divergences"] == 0 and d["max_r_hat"] < 1.03, (s, d["problems"])
        fits.append(fit)
    assert len(warned) <= 2, f"ConvergenceWarning on seeds {warned}"
    cov = _coverage(fits, truth, names, nominal)
    frac = cov["covered"] / cov["total"]
    assert frac >= _lower_bound(n_seeds, nominal), (
        f"90% intervals cover {cov['covered']}/{cov['total']}; misses {cov['misses']}"
    )
    bad = {k: r for k, r in cov["ratio"].items() if not 0.4 < r < 2.0}  # 8 seeds: sd ratio known to ~+-27%
    assert not bad, f"spread of estimates / posterior sd out of range: {bad}"
