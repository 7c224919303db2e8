"""Table-size buckets (issue 20): a fit pads its runs to the next bucket size with masked
likelihood terms, so tables of nearby sizes share one compiled MAP step and NUTS runner.

* the buckets and the padding: sizes, copies of the first run, mask, the masked reference scale;
* the padded potential and gradient equal the unpadded ones (to rounding);
* the same seed gives the same draws for the same table;
* a second table size in the same bucket reuses the compiled runner;
* the posterior with padding agrees with the unpadded one within Monte Carlo error.
"""

from __future__ import annotations

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import _engine
from bayescale.data import law_inputs
from bayescale.model import centre_of, posterior
from bayescale.testing import synthetic_runs

TRUTH = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
# 6 model sizes x 5 tokens-per-parameter ratios: 30 runs, bucket 32.
GRID = dict(N=np.geomspace(1e7, 3e10, 6), tokens_per_param=(2, 5, 20, 80, 320))
SAMPLER = dict(chains=2, warmup=300, draws=600)
LOG_PARAMS = ["E", "A", "B", "alpha", "beta", "sigma"]


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return synthetic_runs("chinchilla", TRUTH, sigma=0.01, seed=0, **GRID)


@pytest.fixture(scope="module")
def spec() -> bs.ModelSpec:
    return bs.load_spec("chinchilla")


@pytest.fixture(scope="module")
def fit29(spec, runs) -> bs.Fit:
    return bs.fit(spec, runs.iloc[:29], seed=3, **SAMPLER)


def test_bucket_sizes() -> None:
    assert [_engine.bucket(n) for n in (1, 16, 17, 24, 25, 29, 30, 33, 48, 49, 240, 300, 1000)] == [
        16, 16, 24, 24, 32, 32, 32, 48, 48, 64, 256, 384, 1024,
    ]  # fmt: skip
    for n in range(1, 2000):
        b = _engine.bucket(n)
        assert n <= b <= max(_engine.MIN_BUCKET, 1.5 * n)


def test_padding_copies_the_first_run_and_masks_it(spec, runs) -> None:
    with jax.enable_x64(True):
        logx = law_inputs(spec, runs.iloc[:29], np.float64)
        y = np.log(runs["loss"].to_numpy()[:29])
        px, py, mask, n = _engine.padded(logx, y, np.float64)
        assert n == 29 and py.shape == (32,) and mask.dtype == jnp.float64
        np.testing.assert_array_equal(np.asarray(mask), [1.0] * 29 + [0.0] * 3)
        np.testing.assert_array_equal(np.asarray(py)[29:], y[0])
        for k, v in logx.items():
            np.testing.assert_array_equal(np.asarray(px[k])[:29], v)
            np.testing.assert_array_equal(np.asarray(px[k])[29:], v[0])
        # The reference scale is the mean over the real runs, not the padded table.
        centre = centre_of(px, mask)
        for k, v in logx.items():
            assert float(centre[k]) == pytest.approx(float(np.mean(v)), rel=1e-14)


def test_padded_potential_and_gradient_are_the_unpadded_ones(spec, runs) -> None:
    with jax.enable_x64(True):
        post = posterior(spec, np.float64)
        logx = law_inputs(spec, runs.iloc[:29], np.float64)
        y = np.log(runs["loss"].to_numpy()[:29])
        px, py, mask, _ = _engine.padded(logx, y, np.float64)
        lx = {k: jnp.asarray(v) for k, v in logx.items()}
        for f in post.starts(np.random.default_rng(0), 4):
            f = jnp.asarray(f)
            v0, g0 = post.value_and_grad(f, lx, jnp.asarray(y))
            v1, g1 = post.value_and_grad(f, px, py, mask)
            assert float(v1) == pytest.approx(float(v0), rel=1e-12, abs=1e-9)
            np.testing.assert_allclose(np.asarray(g1), np.asarray(g0), rtol=1e-10, atol=1e-8)


def test_same_seed_same_draws_on_a_padded_table(fit29: bs.Fit, spec, runs) -> None:
    again = bs.fit(spec, runs.iloc[:29], seed=3, **SAMPLER)
    for v in LOG_PARAMS:
        np.testing.assert_array_equal(again.posterior[v].values, fit29.posterior[v].values)
    np.testing.assert_array_equal(
        again.idata.log_likelihood["log_loss"].values, fit29.idata.log_likelihood["log_loss"].values
    )
    assert again.idata.log_likelihood["log_loss"].shape[-1] == 29  # the padding is not in the result


def test_a_second_size_in_the_bucket_reuses_the_compiled_runner(fit29: bs.Fit, spec, runs) -> None:
    post = posterior(fit29.spec, np.float64)
    before = dict(post.runners)
    assert any(key[-2] == 32 for key in before)  # the runner of bucket 32 (rows, then resume, end the key)
    compiled = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, secs, **kw: compiled.append(secs) if name == "/jax/core/compile/backend_compile_duration" else None
    )
    f30 = bs.fit(spec, runs, seed=4, **SAMPLER)
    assert posterior(f30.spec, np.float64) is post
    assert post.runners == before  # no new runner, and the same compiled function objects
    # Nothing big compiled anew for 30 runs (the runner takes seconds to compile, a stray small op a fraction of one).
    assert max(compiled, default=0.0) < 1.0, sorted(compiled)[-3:]


@pytest.mark.slow  # a statistical comparison: an unpadded fit compiled anew: `make test-all`
def test_padded_posterior_agrees_with_the_unpadded_one(fit29: bs.Fit, spec, runs, monkeypatch) -> None:
    # Without buckets (each table its own size, the layout before issue 20) the posterior is the
    # padded one within Monte Carlo error: means of each log parameter within 4 MCSE.
    monkeypatch.setattr(_engine, "bucket", lambda n: n)
    plain = bs.fit(spec, runs.iloc[:29], seed=5, **SAMPLER)
    assert len(plain.posterior.chain) == 2
    for v in LOG_PARAMS:
        a, b = np.log(fit29.posterior[v].values), np.log(plain.posterior[v].values)
        se = [float(az.mcse(az.convert_to_dataset({"x": x}), method="mean")["x"]) for x in (a, b)]
        assert abs(a.mean() - b.mean()) < 4 * np.hypot(*se), v
