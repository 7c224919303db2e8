"""Scaling laws as pure functions, and the registry.

Three layers:

* each built-in law's value at hand-computed points (expected values from plain
  Python ``math``, never from the law's own code);
* a conformance suite parametrised over :func:`bayescale.list_laws`, so a newly
  registered law is checked automatically: broadcasting, finite positive loss
  under prior draws, monotonicity, float32 accuracy, natural-scale call;
* a user-registered law gets fitting and prediction for free, and registry errors
  say what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayescale as bs
from bayescale._laws_nd import bending_monotone_when, farseer_monotone_when
from bayescale.errors import BayescaleError, LawError
from bayescale.laws import (
    INPUT_COLUMNS,
    Law,
    get_law,
    list_laws,
    logsumexp,
    register_law,
)
from bayescale.testing import synthetic_runs, verify_law

# Model sizes and token counts spanning today's pilot runs to frontier runs.
N_GRID = np.geomspace(1e7, 1e11, 9)
D_GRID = np.geomspace(1e8, 1e13, 11)

# Laws that fall with N and D only for some parameter signs. The condition is
# applied to prior draws (arrays); laws not listed must be monotone for every draw
# of their default priors. A newly registered law that is not monotone everywhere
# must declare its condition here.
MONOTONE_WHEN: dict[str, Callable[[Mapping[str, np.ndarray]], np.ndarray]] = {
    "power": lambda p: p["b"] < 0,
    # With C = 6ND the exponents of N and D are b + d and c + d.
    "multiplicative": lambda p: (p["b"] + p["d"] < 0) & (p["c"] + p["d"] < 0),
    "farseer": farseer_monotone_when,
    "chinchilla_bending": bending_monotone_when,
}


# ----------------------------------------------------------------- helpers


def log_inputs(law: Law, N: Any, D: Any, dtype: Any = np.float64) -> dict[str, np.ndarray]:
    """``log_inputs`` for ``law.log_loss`` at the given N and D, via the law's default columns."""
    N, D = np.broadcast_arrays(np.asarray(N, dtype=np.float64), np.asarray(D, dtype=np.float64))
    return {name: v.astype(dtype) for name, v in law.log_inputs({"N": N, "D": D}).items()}


def prior_medians(law: Law) -> dict[str, float]:
    """Median of each default prior."""
    out = {}
    for name, prior in law.priors.items():
        d = prior.to_numpyro()
        try:
            out[name] = float(d.icdf(jnp.asarray(0.5)))
        except (NotImplementedError, AttributeError, ImportError):  # Gamma.icdf needs tensorflow_probability
            out[name] = float(np.median(np.asarray(d.sample(jax.random.PRNGKey(0), (20001,)))))
    return out


def prior_draws(law: Law, n: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` draws of each parameter from the law's default priors, with NumPyro, in float64."""
    key = jax.random.PRNGKey(seed)
    out = {}
    with jax.enable_x64(True):
        for name in law.params:
            key, sub = jax.random.split(key)
            out[name] = np.asarray(law.priors[name].to_numpyro().sample(sub, (n,)), dtype=np.float64)
    return out


def natural_log_loss(law: Law, params: Mapping[str, Any], N: Any, D: Any) -> np.ndarray:
    """log L with NumPy in float64."""
    return np.asarray(law.log_loss(params, log_inputs(law, N, D), np), dtype=np.float64)


# --------------------------------------------------- built-ins by hand


HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
KAPLAN = {"Nc": 8.8e13, "Dc": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}
POWER = {"E": 1.7, "a": 52.0, "b": -0.12}
MULT = {"E": 1.6, "a": 900.0, "b": -0.2, "c": -0.15, "d": -0.05}
POINTS = [(1e7, 2e8), (7e8, 1.4e10), (7e10, 1.4e12), (3e11, 1e13)]


def _hand(name: str, p: Mapping[str, float], N: float, D: float) -> float:
    C = 6.0 * N * D
    if name == "chinchilla":
        return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
    if name == "kaplan":
        return ((p["Nc"] / N) ** (p["alpha_N"] / p["alpha_D"]) + p["Dc"] / D) ** p["alpha_D"]
    if name == "power":  # default input column: C
        return p["E"] + p["a"] * C ** p["b"]
    if name == "multiplicative":
        return p["E"] + p["a"] * N ** p["b"] * D ** p["c"] * C ** p["d"]
    raise AssertionError(name)


BUILTIN_CASES = [("chinchilla", HOFFMANN), ("kaplan", KAPLAN), ("power", POWER), ("multiplicative", MULT)]


@pytest.mark.parametrize("name,params", BUILTIN_CASES, ids=[c[0] for c in BUILTIN_CASES])
@pytest.mark.parametrize("N,D", POINTS)
def test_builtin_value_at_hand_computed_point(name: str, params: dict, N: float, D: float) -> None:
    law = get_law(name)
    expected = _hand(name, params, N, D)
    got = math.exp(float(natural_log_loss(law, params, N, D)))
    assert got == pytest.approx(expected, rel=1e-12)
    with jax.enable_x64(True):
        assert float(law(params, N=N, D=D)) == pytest.approx(expected, rel=1e-12)


def test_chinchilla_hoffmann_value() -> None:
    # Hoffmann et al.'s fit at Chinchilla's size (70B params, 1.4T tokens), by hand:
    # 1.69 + 406.4 / 7e10**0.34 + 410.7 / 1.4e12**0.28 = 1.9367...
    law = get_law("chinchilla")
    expected = 1.69 + 406.4 / 7e10**0.34 + 410.7 / 1.4e12**0.28
    with jax.enable_x64(True):
        assert float(law(HOFFMANN, N=7e10, D=1.4e12)) == pytest.approx(expected, rel=1e-12)


def test_power_law_reads_the_mapped_input() -> None:
    law = get_law("power")
    p = {"E": 2.0, "a": 30.0, "b": -0.25}
    for S in (1e6, 1e9, 1e20):
        expected = 2.0 + 30.0 * S**-0.25
        got = math.exp(float(law.log_loss(p, {"S": math.log(S)}, np)))
        assert got == pytest.approx(expected, rel=1e-12)
    # The natural-scale call reads the default column C, derived from N and D when absent.
    with jax.enable_x64(True):
        assert float(law(p, C=1e20)) == pytest.approx(2.0 + 30.0 * 1e20**-0.25, rel=1e-12)
        assert float(law(p, N=1e9, D=1e11 / 6)) == pytest.approx(2.0 + 30.0 * 1e20**-0.25, rel=1e-12)


def test_natural_call_derives_D_from_C_and_N() -> None:
    law = get_law("chinchilla")
    with jax.enable_x64(True):
        a = float(law(HOFFMANN, N=1e9, D=2e10))
        b = float(law(HOFFMANN, N=1e9, C=6 * 1e9 * 2e10))
    assert a == pytest.approx(b, rel=1e-12)


def test_natural_call_missing_input_names_it() -> None:
    with pytest.raises(LawError, match=r"law input column 'D' is missing; given \['N'\]"):
        get_law("chinchilla")(HOFFMANN, N=1e9)


def test_logsumexp_is_stable() -> None:
    # Far beyond float64's exp range: a naive log(sum(exp)) overflows.
    terms = [np.float64(1000.0), np.float64(1000.0), np.float64(-1000.0)]
    assert logsumexp(np, terms) == pytest.approx(1000.0 + math.log(2.0), abs=1e-12)
    assert logsumexp(np, [np.float64(0.5)]) == 0.5


# ------------------------------------------------------------ conformance


def check_declaration(law: Law) -> None:
    assert get_law(law.name) is law
    assert law.name in list_laws()
    assert isinstance(law.formula, str) and law.formula
    assert set(law.priors) == set(law.params)
    assert set(law.positive) <= set(law.params)
    assert set(law.columns) == set(law.inputs)
    assert set(law.columns.values()) <= set(INPUT_COLUMNS), law.columns
    for p in law.positive:
        assert law.priors[p].is_positive(), f"{law.name}: prior of positive {p} allows <= 0"


def check_broadcasting(law: Law) -> None:
    """Parameters shaped (chain, draw, 1) and inputs (point,) give (chain, draw, point)."""
    draws = prior_draws(law, n=6, seed=1)
    params = {k: v.reshape(2, 3, 1) for k, v in draws.items()}
    N = np.array([1e7, 1e8, 1e9, 1e10, 1e11])
    D = np.array([2e8, 2e9, 2e10, 2e11, 2e12])
    out = natural_log_loss(law, params, N, D)
    assert out.shape == (2, 3, 5)
    # Element by element, with scalars, the same numbers.
    for c in range(2):
        for d in range(3):
            scalar = {k: float(v[c, d, 0]) for k, v in params.items()}
            for i in range(5):
                assert out[c, d, i] == pytest.approx(
                    float(natural_log_loss(law, scalar, N[i], D[i])), rel=1e-12, abs=1e-12
                )
    # JAX agrees with NumPy, and so does the natural-scale call.
    with jax.enable_x64(True):
        out_j = np.asarray(
            law.log_loss(
                {k: jnp.asarray(v) for k, v in params.items()},
                {k: jnp.asarray(v) for k, v in log_inputs(law, N, D).items()},
                jnp,
            )
        )
        nat = law(params, N=N, D=D)
    assert out_j.shape == (2, 3, 5)
    np.testing.assert_allclose(out_j, out, rtol=1e-12, atol=1e-12)
    assert nat.shape == (2, 3, 5)
    # A grid of points: inputs shaped (n_N, n_D) broadcast too.
    grid = natural_log_loss(law, {k: float(v[0]) for k, v in draws.items()}, N_GRID[:, None], D_GRID[None, :])
    assert grid.shape == (N_GRID.size, D_GRID.size)


def check_finite_positive_under_prior_draws(law: Law) -> None:
    draws = prior_draws(law, n=200, seed=2)
    params = {k: v[:, None, None] for k, v in draws.items()}
    logl = natural_log_loss(law, params, N_GRID[None, :, None], D_GRID[None, None, :])
    assert logl.shape == (200, N_GRID.size, D_GRID.size)
    assert np.all(np.isfinite(logl)), f"{law.name}: non-finite log loss under prior draws"
    loss = np.exp(logl)
    assert np.all(np.isfinite(loss)) and np.all(loss > 0)
    # The natural-scale call agrees and is positive.
    with jax.enable_x64(True):
        nat = law(params, N=N_GRID[None, :, None], D=D_GRID[None, None, :])
    assert np.all(nat > 0)
    # (A law that ignores D returns no D axis: compare after broadcasting.)
    np.testing.assert_allclose(np.broadcast_to(nat, loss.shape), loss, rtol=1e-10)


def _assert_non_increasing(values: np.ndarray, axis: int, what: str) -> None:
    diffs = np.diff(values, axis=axis)
    tol = 1e-12 * np.abs(values).max()
    worst = float(diffs.max())
    assert worst <= tol, f"{what}: loss rises by {worst:g} somewhere"


def check_monotone(law: Law) -> None:
    when = MONOTONE_WHEN.get(law.name, lambda p: np.ones_like(next(iter(p.values())), dtype=bool))
    # At the prior medians (which must have the right signs) ...
    med = prior_medians(law)
    assert bool(when({k: np.asarray(v) for k, v in med.items()})), f"{law.name}: prior medians have the wrong signs"
    grid = np.exp(natural_log_loss(law, med, N_GRID[:, None], D_GRID[None, :]))
    _assert_non_increasing(grid, 0, f"{law.name} at prior medians, in N")
    _assert_non_increasing(grid, 1, f"{law.name} at prior medians, in D")
    # ... and for every prior draw with the right signs.
    draws = prior_draws(law, n=200, seed=3)
    keep = np.asarray(when(draws), dtype=bool)
    assert keep.sum() >= 50, f"{law.name}: too few prior draws with the right signs ({keep.sum()})"
    params = {k: v[keep][:, None, None] for k, v in draws.items()}
    vals = np.exp(natural_log_loss(law, params, N_GRID[None, :, None], D_GRID[None, None, :]))
    _assert_non_increasing(vals, 1, f"{law.name} under prior draws, in N")
    _assert_non_increasing(vals, 2, f"{law.name} under prior draws, in D")


def check_float32_matches_float64(law: Law) -> None:
    med = prior_medians(law)
    N, D = np.meshgrid(N_GRID, D_GRID, indexing="ij")
    with jax.enable_x64(False):
        p32 = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in med.items()}
        x32 = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in log_inputs(law, N, D, np.float32).items()}
        out32 = law.log_loss(p32, x32, jnp)
        assert out32.dtype == jnp.float32
        loss32 = np.asarray(jnp.exp(out32), dtype=np.float64)
        nat32 = law(med, N=N, D=D)
        assert nat32.dtype == np.float32
    with jax.enable_x64(True):
        p64 = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in med.items()}
        x64 = {k: jnp.asarray(v) for k, v in log_inputs(law, N, D).items()}
        out64 = law.log_loss(p64, x64, jnp)
        assert out64.dtype == jnp.float64
        loss64 = np.asarray(jnp.exp(out64))
    assert np.all(np.isfinite(loss32))
    np.testing.assert_allclose(loss32, loss64, rtol=1e-5)
    np.testing.assert_allclose(nat32, loss64, rtol=1e-5)


def check_natural_call(law: Law) -> None:
    draws = prior_draws(law, n=20, seed=4)
    N, D = np.meshgrid(N_GRID, D_GRID, indexing="ij")
    for i in range(0, 20, 5):
        p = {k: float(v[i]) for k, v in draws.items()}
        with jax.enable_x64(True):
            nat = law(p, N=N, D=D)
        assert isinstance(nat, np.ndarray) and nat.shape == N.shape
        np.testing.assert_allclose(nat, np.exp(natural_log_loss(law, p, N, D)), rtol=1e-12)


def check_gradients_finite(law: Law) -> None:
    """NUTS needs finite gradients of log L with respect to every parameter."""
    med = prior_medians(law)
    x = {k: jnp.asarray(v) for k, v in log_inputs(law, N_GRID, N_GRID * 20).items()}
    with jax.enable_x64(True):
        grad = jax.grad(lambda p: jnp.sum(law.log_loss(p, x, jnp)))(
            {k: jnp.asarray(v, dtype=jnp.float64) for k, v in med.items()}
        )
    assert set(grad) == set(law.params)
    for k, g in grad.items():
        assert np.isfinite(float(g)), f"{law.name}: gradient in {k} is not finite"


CHECKS = [
    check_declaration,
    check_broadcasting,
    check_finite_positive_under_prior_draws,
    check_monotone,
    check_float32_matches_float64,
    check_natural_call,
    check_gradients_finite,
]


@pytest.mark.parametrize("name", list_laws())
class TestConformance:
    """Every registered law (built-ins, and any law registered before collection)."""

    def test_declaration(self, name: str) -> None:
        check_declaration(get_law(name))

    def test_broadcasting_over_chain_draw_point(self, name: str) -> None:
        check_broadcasting(get_law(name))

    def test_finite_positive_under_prior_draws(self, name: str) -> None:
        check_finite_positive_under_prior_draws(get_law(name))

    def test_monotone_non_increasing_in_N_and_D(self, name: str) -> None:
        check_monotone(get_law(name))

    def test_float32_matches_float64(self, name: str) -> None:
        check_float32_matches_float64(get_law(name))

    def test_natural_call_is_exp_of_log_loss(self, name: str) -> None:
        check_natural_call(get_law(name))

    def test_gradients_finite(self, name: str) -> None:
        check_gradients_finite(get_law(name))


def test_builtins_are_registered() -> None:
    assert {"chinchilla", "kaplan", "power", "multiplicative"} <= set(list_laws())
    assert list_laws() == sorted(list_laws())


# -------------------------------------------------- a user-registered law

SHARED = "test_chinchilla_shared_exponent"


def _shared_exponent_law(name: str = SHARED) -> Law:
    return Law(
        name=name,
        formula="L = E + A/N^alpha + B/D^alpha",
        inputs=("N", "D"),
        params=("E", "A", "B", "alpha"),
        log_loss=lambda p, x, xp: logsumexp(
            xp, [xp.log(p["E"]), xp.log(p["A"]) - p["alpha"] * x["N"], xp.log(p["B"]) - p["alpha"] * x["D"]]
        ),
        priors={
            "E": {"dist": "LogNormal", "loc": 0.5, "scale": 0.5},
            "A": {"dist": "LogNormal", "loc": 6.0, "scale": 3.0},
            "B": {"dist": "LogNormal", "loc": 7.0, "scale": 3.0},
            "alpha": {"dist": "LogNormal", "loc": -1.2, "scale": 0.5},
        },
        positive=("E", "A", "B", "alpha"),
        description="Chinchilla with one exponent for N and D (a test law).",
    )


@pytest.fixture
def user_law():
    """Register a user law for one test and remove it afterwards (the registry is global)."""
    from bayescale.laws import _REGISTRY

    law = register_law(_shared_exponent_law())
    try:
        yield law
    finally:
        _REGISTRY.pop(SHARED, None)


def test_user_law_registers_and_passes_conformance(user_law: Law) -> None:
    assert SHARED in list_laws()
    assert get_law(SHARED) is user_law
    for check in CHECKS:
        check(user_law)


def test_user_law_fits_and_predicts(user_law: Law) -> None:
    truth = {"E": 1.8, "A": 400.0, "B": 900.0, "alpha": 0.33}
    runs = synthetic_runs(
        user_law, truth, N=np.geomspace(1e7, 1e10, 6), tokens_per_param=(4, 20, 100), sigma=0.005, seed=5
    )
    # A spec names the law like any built-in: in a file or dict, or from its defaults.
    spec = bs.load_spec({"law": SHARED, "priors": {k: v.to_dict() for k, v in user_law.priors.items()}})
    assert spec.id == bs.ModelSpec.from_law(SHARED).id
    fit = bs.fit(spec, runs, seed=0, method="laplace", chains=2, draws=500)
    assert fit.var_names == ["E", "A", "B", "alpha", "sigma"]
    table = fit.summary(ci_prob=0.99)
    for k, v in truth.items():
        assert table.loc[k, "0.5%"] < v < table.loc[k, "99.5%"], (k, v, table.loc[k])
    assert table.loc["alpha", "median"] == pytest.approx(0.33, abs=0.02)
    band = fit.predict({"N": [1e9, 7e10], "D": [2e10, 1.4e12]})
    assert band.dims == ("chain", "draw", "point") and band.shape == (2, 500, 2)
    with jax.enable_x64(True):
        true_loss = user_law(truth, N=np.array([1e9, 7e10]), D=np.array([2e10, 1.4e12]))
    lo, hi = band.quantile([0.005, 0.995], dim=("chain", "draw")).values
    assert np.all(lo < true_loss) and np.all(true_loss < hi)


def test_user_law_spec_round_trips(user_law: Law, tmp_path) -> None:
    spec = bs.ModelSpec.from_law(SHARED)
    path = tmp_path / "shared.toml"
    path.write_text(spec.to_toml())
    assert bs.load_spec(path).id == spec.id


# --------------------------------------------------------- registry errors


def test_duplicate_name_is_refused() -> None:
    clash = _shared_exponent_law(name="chinchilla")
    with pytest.raises(LawError, match=r"a law named 'chinchilla' is already registered; pass overwrite=True"):
        register_law(clash)
    assert get_law("chinchilla") is bs.laws.chinchilla


def test_registering_the_same_law_twice_is_harmless() -> None:
    assert register_law(bs.laws.chinchilla) is bs.laws.chinchilla


def test_overwrite_replaces(user_law: Law) -> None:
    replacement = _shared_exponent_law()
    with pytest.raises(LawError, match="already registered"):
        register_law(replacement)
    assert register_law(replacement, overwrite=True) is replacement
    assert get_law(SHARED) is replacement


def test_unknown_law_lists_registered_ones() -> None:
    with pytest.raises(LawError, match=r"unknown law 'chinchila'; registered laws: \[") as info:
        get_law("chinchila")
    for name in list_laws():
        assert repr(name) in str(info.value)


def test_get_law_passes_a_law_through() -> None:
    assert get_law(bs.laws.kaplan) is bs.laws.kaplan


def test_register_needs_a_law() -> None:
    with pytest.raises(LawError, match="register_law takes a Law, got dict"):
        register_law({"name": "x"})


def _law_kwargs(**changes: Any) -> dict[str, Any]:
    law = _shared_exponent_law("test_bad")
    kw = dict(
        name=law.name,
        formula=law.formula,
        inputs=law.inputs,
        params=law.params,
        log_loss=law.log_loss,
        priors={k: v.to_dict() for k, v in law.priors.items()},
        positive=law.positive,
    )
    kw.update(changes)
    return kw


def test_missing_default_prior() -> None:
    priors = {k: v for k, v in _law_kwargs()["priors"].items() if k != "alpha"}
    with pytest.raises(LawError, match=r"default priors must cover exactly .*missing \['alpha'\], unknown \[\]"):
        Law(**_law_kwargs(priors=priors))


def test_extra_default_prior() -> None:
    priors = dict(_law_kwargs()["priors"], gamma={"dist": "Normal", "loc": 0.0, "scale": 1.0})
    with pytest.raises(LawError, match=r"missing \[\], unknown \['gamma'\]"):
        Law(**_law_kwargs(priors=priors))


def test_positive_must_name_parameters() -> None:
    with pytest.raises(LawError, match=r"positive names \['F'\] are not parameters"):
        Law(**_law_kwargs(positive=("E", "F")))


def test_params_distinct_and_non_empty() -> None:
    with pytest.raises(LawError, match="params must be distinct and non-empty"):
        Law(**_law_kwargs(params=("E", "E", "A", "B")))
    with pytest.raises(LawError, match="params must be distinct and non-empty"):
        Law(**_law_kwargs(params=()))


def test_law_needs_inputs_and_name() -> None:
    with pytest.raises(LawError, match="needs at least one input"):
        Law(**_law_kwargs(inputs=()))
    with pytest.raises(LawError, match="non-empty string name"):
        Law(**_law_kwargs(name=""))


def test_bad_default_prior_is_refused() -> None:
    priors = dict(_law_kwargs()["priors"], alpha={"dist": "LogNormel", "loc": 0.0, "scale": 1.0})
    with pytest.raises(BayescaleError, match=r"law 'test_bad': prior for 'alpha': unknown distribution 'LogNormel'"):
        Law(**_law_kwargs(priors=priors))


# ------------------------------------------- bayescale.testing.verify_law


@pytest.mark.parametrize("name", list_laws())
def test_check_law_passes_every_registered_law(name: str) -> None:
    verify_law(name, monotone_when=MONOTONE_WHEN.get(name))


def test_check_law_reads_monotonicity_from_power_terms() -> None:
    # power declares the term a * S^b, so the loss must fall exactly where b < 0: no hint needed.
    verify_law("power", properties=["monotone"])


def test_check_law_on_a_user_law(user_law: Law) -> None:
    verify_law(user_law)  # registered by the fixture, so the spec round trip is checked too


def test_multiplicative_law_needs_its_sign_condition() -> None:
    # Nothing in its declaration says when it falls with N and D; without the condition it does not always.
    with pytest.raises(
        LawError, match=r"law 'multiplicative' fails the 'monotone' check: loss rises by .* with [ND] at N="
    ):
        verify_law("multiplicative", properties=["monotone"])


def _broken_law(name: str, log_loss: Callable) -> Law:
    """Chinchilla's declaration with a faulty ``log_loss`` (not registered)."""
    return Law(
        name=name,
        formula="L = E + A/N^alpha + B/D^beta",
        inputs=("N", "D"),
        params=("E", "A", "B", "alpha", "beta"),
        log_loss=log_loss,
        priors=dict(bs.laws.chinchilla.priors),
        positive=("E", "A", "B", "alpha", "beta"),
        power_terms={"A": (("alpha", "N", -1.0),), "B": (("beta", "D", -1.0),)},
    )


BROKEN = [
    # (id, log_loss, message regex)
    (
        "rises with N",  # the sign of the N term flipped
        lambda p, x, xp: logsumexp(
            xp, [xp.log(p["E"]), xp.log(p["A"]) + p["alpha"] * x["N"], xp.log(p["B"]) - p["beta"] * x["D"]]
        ),
        r"law 'test_broken' fails the 'monotone' check: loss rises by \S+ with N at N=.*for prior draw \{'E': ",
    ),
    (
        "NaN",  # log of a negative number for most draws
        lambda p, x, xp: xp.log(p["E"] - 2.0) + 0.0 * x["N"] + 0.0 * x["D"],
        r"law 'test_broken' fails the 'finite_positive' check: \d+ of \d+ losses at prior draws are not finite and > 0; e\.g\. log loss nan",
    ),
    (
        "does not broadcast",  # averages over the points
        lambda p, x, xp: xp.logaddexp(
            xp.log(p["E"]), xp.log(p["A"]) - p["alpha"] * xp.mean(x["N"]) - p["beta"] * xp.mean(x["D"])
        ),
        r"law 'test_broken' fails the 'broadcasting' check: parameters shaped \(chain, draw, 1\) = \(2, 3, 1\) and 5 points gave shape \(2, 3, 1\)",
    ),
    (
        "overflows in float32",  # exp of a large number before the log
        lambda p, x, xp: (
            xp.log(
                xp.exp(
                    logsumexp(
                        xp, [xp.log(p["E"]), xp.log(p["A"]) - p["alpha"] * x["N"], xp.log(p["B"]) - p["beta"] * x["D"]]
                    )
                    + 100.0
                )
            )
            - 100.0
        ),
        r"law 'test_broken' fails the 'float32' check: log_loss in float32 gives loss (inf|nan), float64 ",
    ),
    (
        "raises",  # uses a function NumPy does not have
        lambda p, x, xp: xp.log(p["E"]) + xp.no_such_function(x["N"]),
        r"law 'test_broken' fails the 'broadcasting' check: AttributeError: .*no_such_function",
    ),
]


@pytest.mark.parametrize("log_loss,message", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_check_law_catches_a_broken_law(log_loss: Callable, message: str) -> None:
    with pytest.raises(LawError, match=message):
        verify_law(_broken_law("test_broken", log_loss))


def test_check_law_refuses_unknown_properties() -> None:
    with pytest.raises(LawError, match=r"verify_law: unknown properties \['speed'\]; known: \['declaration', "):
        verify_law("chinchilla", properties=["speed"])


def test_check_law_needs_a_known_law() -> None:
    with pytest.raises(LawError, match="unknown law 'chinchila'"):
        verify_law("chinchila")


def test_a_fit_of_a_law_registered_elsewhere_says_to_register_it(tmp_path) -> None:
    """A saved fit names its law; in a process that has not registered it, loading says what to do."""
    import dataclasses
    import tomllib
    from pathlib import Path

    from bayescale.laws import _REGISTRY

    register_law(dataclasses.replace(bs.laws.chinchilla, name="chinchilla_mine"))
    try:
        truth = {"E": 1.8, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.28}
        runs = synthetic_runs("chinchilla", truth, N=(1e7, 3e7, 1e8), tokens_per_param=(5, 20, 80), sigma=0.01, seed=0)
        spec = tomllib.loads((Path(__file__).parents[1] / "models" / "chinchilla.toml").read_text())
        spec["law"] = {"name": "chinchilla_mine"}
        bs.fit(spec, runs, method="laplace").save(tmp_path / "f.nc")
    finally:
        del _REGISTRY["chinchilla_mine"]  # as a new process, which has not registered it, sees the registry
    with pytest.raises(bs.errors.BayescaleError, match="register it again before loading a fit that names it"):
        bs.load_fit(tmp_path / "f.nc")
