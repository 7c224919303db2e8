"""The N-D laws of issue 15: data-constrained (Muennighoff et al. 2023), Farseer (Li et al. 2025)
and the bending Chinchilla law.

Values at hand-computed points (plain ``math``), the unique-tokens column ``U`` (absent or
blank means ``U = D``, and the data-constrained law is then Chinchilla's), numerics at
extreme epochs, and parameter recovery from synthetic runs with known truth: the posterior
(PSIS) covers the true loss at held-out larger runs and the key parameters. The conformance
suite runs over these laws in ``tests/test_laws.py`` (it parametrises over the registry).
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale._laws_nd import bending_monotone_when, farseer_monotone_when, farseer_paper_params, log_effective
from bayescale.data import law_inputs, load_runs
from bayescale.errors import ConvergenceWarning
from bayescale.laws import get_law
from bayescale.spec import ModelSpec, load_spec
from bayescale.testing import synthetic_runs, verify_law

# Muennighoff et al.'s C4 fit (datablations SOURCE.md): Chinchilla step, then R*_D.
DC = {"E": 1.869, "A": 520.8, "B": 1487.7, "alpha": 0.3527, "beta": 0.3527, "R_D": 15.39}
DCF = dict(DC, R_N=5.31)
# The paper's a1 = 0.1, b1 = -1.2, a2 = 0.3, b2 = 6.5 as value and slope at 1e9 (c = a + b, s = a k).
FARSEER = {
    "c1": -1.1,
    "s1": 0.02,
    "alpha": 0.2,
    "c2": 6.8,
    "s2": -0.06,
    "beta": -0.2,
    "a3": 0.15,
    "b3": 0.5,
    "gamma": -0.3,
}
BENDING = {"E": 1.7, "A": 0.35, "B": 0.55, "alpha0": 0.34, "alpha1": 0.02, "beta0": 0.28, "beta1": -0.01}
POINTS = [(1e7, 2e8, 2e8), (7e8, 1.4e10, 1.4e9), (7e10, 1.4e12, 1e10), (3e11, 1e13, 2.5e11)]


def _d_eff(D: float, U: float, r: float) -> float:
    R = D / U - 1.0
    return U + U * r * (1.0 - math.exp(-R / r))


def _hand(name: str, p: dict, N: float, D: float, U: float) -> float:
    if name == "data_constrained":
        return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / _d_eff(D, U, p["R_D"]) ** p["beta"]
    if name == "data_constrained_full":
        a, b = p["alpha"], p["beta"]
        g = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
        u_n = min(N, g * (g * U) ** (b / a))
        return p["E"] + p["A"] / _d_eff(N, u_n, p["R_N"]) ** a + p["B"] / _d_eff(D, U, p["R_D"]) ** b
    if name == "farseer":  # the paper's form, in its own a1, b1, a2, b2
        q = {k: float(v) for k, v in farseer_paper_params(p).items()}
        n = N / 1e9
        e = math.exp(q["a1"] * n ** p["alpha"] + q["b1"])
        return math.exp(p["a3"] * n ** p["gamma"] + p["b3"]) + math.exp(q["a2"] * n ** p["beta"] + q["b2"]) * D**-e
    if name == "chinchilla_bending":
        a = p["alpha0"] + p["alpha1"] * math.log(N / 1e9) / 2
        b = p["beta0"] + p["beta1"] * math.log(D / 2e10) / 2
        return p["E"] + p["A"] * (N / 1e9) ** -a + p["B"] * (D / 2e10) ** -b
    raise AssertionError(name)


CASES = [
    ("data_constrained", DC),
    ("data_constrained_full", DCF),
    ("farseer", FARSEER),
    ("chinchilla_bending", BENDING),
]


@pytest.mark.parametrize("name,params", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("N,D,U", POINTS)
def test_value_at_hand_computed_point(name: str, params: dict, N: float, D: float, U: float) -> None:
    law = get_law(name)
    with jax.enable_x64(True):
        got = float(law(params, N=N, D=D, U=U))
    assert got == pytest.approx(_hand(name, params, N, D, U), rel=1e-10)


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_conformance(name: str) -> None:
    when = {"farseer": farseer_monotone_when, "chinchilla_bending": bending_monotone_when}.get(name)
    verify_law(name, monotone_when=when)


# ------------------------------------------------------- U: unique tokens


def test_data_constrained_without_U_is_chinchilla() -> None:
    chin = {k: DC[k] for k in ("E", "A", "B", "alpha", "beta")}
    N, D = np.geomspace(1e7, 1e11, 5), np.geomspace(1e8, 1e12, 5)
    with jax.enable_x64(True):
        want = bs.laws.chinchilla(chin, N=N, D=D)
        assert np.allclose(bs.laws.data_constrained(DC, N=N, D=D), want, rtol=1e-12)
        assert np.allclose(bs.laws.data_constrained(DC, N=N, D=D, U=np.full(5, np.nan)), want, rtol=1e-12)
        assert np.allclose(bs.laws.data_constrained(DC, N=N, D=D, U=D), want, rtol=1e-12)
    # Through the runs table: no U column, and a blank U cell, both read as U = D.
    spec = ModelSpec.from_law("data_constrained")
    table = load_runs(pd.DataFrame({"N": N, "D": D, "loss": 3.0}))
    logx = law_inputs(spec, table)
    assert np.allclose(logx["U"], np.log(D))
    mixed = load_runs(pd.DataFrame({"N": N, "D": D, "loss": 3.0, "U": [D[0] / 4, None, "", D[3], None]}))
    logx = law_inputs(spec, mixed)
    assert np.allclose(logx["U"], np.log([D[0] / 4, D[1], D[2], D[3], D[4]]))
    pred = np.exp(spec.law.log_loss(DC, logx, np))
    assert pred[0] > want[0] and np.allclose(pred[1:], want[1:], rtol=1e-12)


def test_full_law_discounts_only_parameters_beyond_the_optimum() -> None:
    chin = {k: DC[k] for k in ("E", "A", "B", "alpha", "beta")}
    D = 2e10  # one epoch; Chinchilla-optimal size for it is about D / 20 here
    g = (DC["A"] / DC["B"]) ** (1 / (2 * DC["alpha"]))
    n_opt = g * g * D
    with jax.enable_x64(True):
        small = bs.laws.data_constrained_full(DCF, N=0.5 * n_opt, D=D)
        assert small == pytest.approx(bs.laws.chinchilla(chin, N=0.5 * n_opt, D=D), rel=1e-12)
        big = bs.laws.data_constrained_full(DCF, N=50 * n_opt, D=D)
        assert big > bs.laws.chinchilla(chin, N=50 * n_opt, D=D)
        assert big < bs.laws.data_constrained_full(DCF, N=5 * n_opt, D=D)  # still falls with N


def test_repeated_tokens_are_worth_less_and_saturate() -> None:
    U = 1e9
    D = U * np.array([1.0, 2.0, 4.0, 16.0, 64.0, 1e3, 1e5])
    with np.errstate(all="raise"):
        eff = np.exp(log_effective(np, np.log(D), np.log(U), 15.39))
    assert eff[0] == pytest.approx(U, rel=1e-14)
    assert np.all(np.diff(eff) >= 0) and np.all(np.diff(eff[:5]) > 0) and np.all(eff <= D * (1 + 1e-12))
    assert eff[1] == pytest.approx(2 * U, rel=0.04)  # one repeat is worth nearly a fresh epoch
    assert eff[-1] == pytest.approx(U * (1 + 15.39), rel=1e-9)  # saturates at U (1 + R*)


def test_data_constrained_float32_and_gradients_at_extreme_epochs() -> None:
    N = np.array([1e7, 1e9, 1e11, 1e11])
    D = np.array([1e9, 1e11, 1e13, 1e13])
    U = D / np.array([1.0, 40.0, 1e4, 1e15])
    x32 = {k: jnp.asarray(np.log(v), jnp.float32) for k, v in {"N": N, "D": D, "U": U}.items()}
    p32 = {k: jnp.asarray(v, jnp.float32) for k, v in DC.items()}
    law = bs.laws.data_constrained
    lo32 = np.asarray(law.log_loss(p32, x32, jnp), float)
    lo64 = np.asarray(law.log_loss(DC, {k: np.asarray(v, float) for k, v in x32.items()}, np), float)
    assert np.all(np.isfinite(lo32)) and np.allclose(lo32, lo64, rtol=0, atol=2e-6)
    grad = jax.grad(lambda p: jnp.sum(law.log_loss(p, x32, jnp)))(p32)
    assert all(np.isfinite(float(g)) for g in grad.values())


def test_bending_with_constant_exponents_is_chinchilla() -> None:
    p = dict(BENDING, alpha1=0.0, beta1=0.0)
    chin = {"E": p["E"], "A": p["A"] * 1e9 ** p["alpha0"], "B": p["B"] * 2e10 ** p["beta0"]}
    chin.update(alpha=p["alpha0"], beta=p["beta0"])
    N, D = np.geomspace(1e7, 1e11, 5), np.geomspace(1e8, 1e13, 5)
    with jax.enable_x64(True):
        assert np.allclose(bs.laws.chinchilla_bending(p, N=N, D=D), bs.laws.chinchilla(chin, N=N, D=D), rtol=1e-12)


def test_farseer_is_smooth_where_its_curvatures_are_zero() -> None:
    """At alpha = beta = 0 each term is linear in log N (the paper's a n^k + b has no such point: a = s/k);
    the value is the limit of nearby curvatures and the gradient is finite in float32 and float64."""
    law = bs.laws.farseer
    N, D = np.geomspace(1e7, 1e11, 5), np.geomspace(1e8, 1e13, 5)
    flat = dict(FARSEER, alpha=0.0, beta=0.0)
    near = dict(FARSEER, alpha=1e-3, beta=-1e-3)
    with jax.enable_x64(True):
        assert np.allclose(law(flat, N=N, D=D), law(near, N=N, D=D), rtol=1e-3)
    x32 = {"N": jnp.log(jnp.asarray(N, jnp.float32)), "D": jnp.log(jnp.asarray(D, jnp.float32))}
    p32 = {k: jnp.float32(v) for k, v in flat.items()}
    grad = jax.grad(lambda p: jnp.sum(law.log_loss(p, x32, jnp)))(p32)
    assert all(np.isfinite(float(g)) for g in grad.values()) and float(grad["alpha"]) != 0.0


def test_bundled_specs_load() -> None:
    for name in ("data_constrained", "farseer", "chinchilla_bending"):
        spec = load_spec(name)
        assert spec.law is get_law(name) and dict(spec.priors) == dict(spec.law.priors)


# ------------------------------------------------------------ recovery


def _recover(name: str, train: pd.DataFrame, test: pd.DataFrame, method: str = "psis") -> tuple[bs.Fit, np.ndarray]:
    with warnings.catch_warnings():
        # A Pareto k a little over 0.7 warns; the test asserts the bound it needs (below 1) instead.
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = bs.fit(ModelSpec.from_law(name), train, method=method, seed=0, chains=2, draws=1000)
    if method == "psis":
        assert fit.idata.attrs["pareto_k"] < 1.0, fit.idata.attrs["pareto_k"]
    # 98% bands and intervals: the held-out points share the parameters, so whether they are covered is
    # nearly one event per data seed, and a 90% band misses all of them for about one seed in ten.
    band = fit.predict(test.drop(columns=["loss", "loss_true"])).quantile([0.01, 0.99], dim=("chain", "draw")).values
    inside = (band[0] <= test["loss_true"].to_numpy()) & (test["loss_true"].to_numpy() <= band[1])
    return fit, inside


def _ci(fit: bs.Fit, name: str) -> tuple[float, float, float]:
    d = np.asarray(fit.posterior[name].values).reshape(-1)
    return tuple(np.quantile(d, [0.01, 0.5, 0.99]))


@pytest.mark.slow  # parameter recovery: a NUTS fit of its own: `make test-all`
def test_data_constrained_recovers_R_D() -> None:
    train = synthetic_runs("data_constrained", DC, N=(1e7, 3e7, 1e8, 3e8), epochs=(1, 4, 15, 40), seed=1)
    test = synthetic_runs("data_constrained", DC, N=(1e9, 3e9), tokens_per_param=(20,), epochs=(1, 10, 40), seed=2)
    assert len(train) == 48 and train["U"].iloc[3] == pytest.approx(train["D"].iloc[3] / 40)
    fit, inside = _recover("data_constrained", train, test)
    assert inside.mean() >= 5 / 6, inside
    lo, med, hi = _ci(fit, "R_D")
    assert lo <= DC["R_D"] <= hi and 0.6 * DC["R_D"] < med < 1.6 * DC["R_D"], (lo, med, hi)
    lo, med, hi = _ci(fit, "E")
    assert lo <= DC["E"] <= hi, (lo, med, hi)


@pytest.mark.slow  # parameter recovery: a NUTS fit of its own: `make test-all`
def test_data_constrained_full_recovers_R_N() -> None:
    """The full law also discounts parameters beyond the compute-optimal size for U unique tokens:
    at 15 and 40 epochs the grid's larger models are past it, which pins R_N."""
    train = synthetic_runs("data_constrained_full", DCF, N=(1e7, 3e7, 1e8, 3e8), epochs=(1, 4, 15, 40), seed=7)
    test = synthetic_runs(
        "data_constrained_full", DCF, N=(1e9, 3e9), tokens_per_param=(20,), epochs=(1, 10, 40), seed=8
    )
    fit, inside = _recover("data_constrained_full", train, test)
    assert inside.mean() >= 5 / 6, inside
    for name in ("R_D", "R_N", "E"):
        lo, _, hi = _ci(fit, name)
        assert lo <= DCF[name] <= hi, (name, lo, hi)


@pytest.mark.slow  # parameter recovery: a NUTS fit of its own: `make test-all`
def test_farseer_recovers_held_out_losses() -> None:
    grid = dict(tokens_per_param=(5, 10, 20, 40, 80))
    train = synthetic_runs("farseer", FARSEER, N=(1e7, 2e7, 5e7, 1e8, 2e8, 5e8), seed=3, **grid)
    test = synthetic_runs("farseer", FARSEER, N=(2e9, 5e9), seed=4, **grid)
    # Laplace for speed (PSIS's Pareto k is > 1 with nine parameters). On other data seeds Laplace's band
    # can miss every held-out point where NUTS (2 chains, 300 draws) covers them all: fit Farseer with NUTS.
    fit, inside = _recover("farseer", train, test, "laplace")
    assert inside.mean() >= 0.8, inside
    # The data exponent at 1e9 parameters, exp(c1), is what the grid pins down.
    expo = np.quantile(np.exp(np.asarray(fit.posterior["c1"].values).reshape(-1)), [0.01, 0.99])
    true = math.exp(FARSEER["c1"])
    assert expo[0] <= true <= expo[1], (expo, true)


@pytest.mark.slow  # parameter recovery: a NUTS fit of its own: `make test-all`
def test_bending_recovers_exponent_slopes() -> None:
    grid = dict(tokens_per_param=(5, 20, 80))
    train = synthetic_runs("chinchilla_bending", BENDING, N=(1e7, 3e7, 1e8, 3e8, 1e9, 3e9), seed=5, **grid)
    test = synthetic_runs("chinchilla_bending", BENDING, N=(1e10, 3e10), seed=6, **grid)
    fit, inside = _recover("chinchilla_bending", train, test)  # the Laplace band is too narrow here: PSIS
    assert inside.mean() >= 5 / 6, inside
    for name in ("alpha0", "beta0", "alpha1", "beta1"):
        lo, _, hi = _ci(fit, name)
        assert lo <= BENDING[name] <= hi, (name, lo, hi)
