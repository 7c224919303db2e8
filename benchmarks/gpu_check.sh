#!/usr/bin/env bash
# The GPU checks in one call, for a lent GPU machine whose python3 has torch, transformers, JAX and
# numpyro (bayescale's other pure-Python needs may come as wheels in .whl/): the runner's steady-state
# throughput and MFU at 1e7, 1e8 and 3e8 parameters (eager at the batch rule's batch; compiled, and at
# 3e8 compiled with autotuned kernels, at 256 sequences), and the tests marked gpu. Logs and tables go
# to $OUT. Each stage has its own time limit (the *_S variables), so one slow stage costs only itself.
#
#     OUT=/tmp/gpu bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-/tmp/bayescale-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export BAYESCALE_CACHE=${BAYESCALE_CACHE:-/tmp/bayescale-cache}
export PYTHONPATH=$PWD
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:$PWD
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    python3 -c "import torch, transformers, jax, numpyro; print('torch', torch.__version__, 'transformers', transformers.__version__, 'jax', jax.__version__, jax.devices(), 'numpyro', numpyro.__version__)"
    nproc
} 2>&1 | tee "$OUT/machine.txt"

bench() {  # one bench_runner call, bounded, its table appended to runner_gpu.md
    local limit=$1
    shift
    timeout "$limit" python3 benchmarks/bench_runner.py --device cuda --steps "${STEPS:-60}" --warmup-steps 20 \
        --json "$OUT/runner_gpu.jsonl" --out "$OUT/runner_gpu.md" "$@" 2>&1 | tee -a "$OUT/bench.log" | grep -v "^{" | tail -n 15
}

# The target first (MFU at 3e8 compiled, and compiled with autotuned kernels), then the GPU tests, the
# default path's MFU at the batch rule's batch, and the compiled path at the smaller sizes.
bench "${TARGET_S:-240}" --sizes 3e8 --paths runner-compiled,runner-autotuned --batch-sizes 256
timeout "${TESTS_S:-110}" python3 -m pytest -p no:cacheprovider -q -m gpu tests/test_gpu.py tests/test_runner.py \
    -W ignore::DeprecationWarning -W ignore::FutureWarning 2>&1 | tee "$OUT/gpu_tests.log" | tail -n 15
bench "${EAGER_S:-100}" --sizes 1e7,1e8,3e8 --paths runner --batch-sizes rule
bench "${COMPILED_S:-120}" --sizes 1e7,1e8 --paths runner-compiled --batch-sizes 256
echo "gpu_check done"
