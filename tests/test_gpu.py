"""GPU checks: skipped unless JAX sees a CUDA GPU (run them on a GPU machine with jax[cuda])."""

import jax
import numpy as np
import pytest

import bayescale as bs
from bayescale.testing import synthetic_runs

pytestmark = pytest.mark.gpu

HAS_GPU = jax.default_backend() == "gpu"
TRUTH = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}


@pytest.mark.skipif(not HAS_GPU, reason="no CUDA GPU visible to JAX")
def test_gpu_fit_matches_cpu_fit():
    runs = synthetic_runs("chinchilla", TRUTH, N=(1e7, 3e7, 1e8, 3e8, 1e9), tokens_per_param=(5, 20, 80), seed=1)
    spec = bs.load_spec("chinchilla")
    on_gpu = bs.fit(spec.with_sampler(device="gpu"), runs, seed=0)
    on_cpu = bs.fit(spec.with_sampler(device="cpu"), runs, seed=0)
    assert on_gpu.idata.attrs["device"].startswith("gpu")
    assert on_gpu.idata.attrs["dtype"] == "float32"
    assert on_cpu.idata.attrs["device"].startswith("cpu")
    g, c = on_gpu.summary(), on_cpu.summary()
    for p in TRUTH:
        # Same posterior up to Monte Carlo error: medians within 0.25 posterior sd.
        assert abs(g.loc[p, "median"] - c.loc[p, "median"]) < 0.25 * c.loc[p, "sd"], p
    assert on_gpu.diagnostics()["max_r_hat"] <= 1.01


@pytest.mark.skipif(not HAS_GPU, reason="no CUDA GPU visible to JAX")
# Which device, not how well it sampled: the GPU machine's CPU once gave the small fit one divergence.
@pytest.mark.filterwarnings("ignore::bayescale.errors.ConvergenceWarning")
def test_auto_device_uses_gpu_for_large_tables_only():
    small = synthetic_runs(
        "chinchilla", TRUTH, N=np.geomspace(1e7, 1e9, 12), tokens_per_param=np.geomspace(2, 200, 10), seed=2
    )
    assert len(small) < bs.inference.GPU_MIN_RUNS
    fit = bs.fit("chinchilla", small, seed=0)
    assert fit.idata.attrs["device"].startswith("cpu")
    n = np.geomspace(1e7, 1e9, 40)
    big = synthetic_runs("chinchilla", TRUTH, N=n, tokens_per_param=np.geomspace(2, 200, 50), seed=3)
    assert len(big) >= bs.inference.GPU_MIN_RUNS
    fit = bs.fit("chinchilla", big, seed=0)
    assert fit.idata.attrs["device"].startswith("gpu")
    assert fit.diagnostics()["max_r_hat"] <= 1.01


def test_requesting_gpu_without_one_is_a_clear_error():
    if HAS_GPU:
        pytest.skip("a GPU is present")
    with pytest.raises(bs.BayescaleError, match="no GPU"):
        bs.fit(bs.load_spec("chinchilla").with_sampler(device="gpu"), synthetic_runs("chinchilla", TRUTH), seed=0)
