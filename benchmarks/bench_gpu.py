"""Where does a GPU pay? bayescale's NUTS fit on the CPU vs the GPU as the runs table grows.

Synthetic Chinchilla-law runs (Epoch's fit, 1% noise), 4 chains x 1000 warmup + 1000 draws.
For each table size and device: one cold fit (compiles) and the median of ``--warm`` warm fits
(the compiled runner is reused). Writes a Markdown table to ``--out``.

    python benchmarks/bench_gpu.py --sizes 240,2000,10000,50000 --out gpu.md
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

import bayescale as bs  # noqa: E402
from bayescale.testing import synthetic_runs  # noqa: E402

TRUTH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def runs_of_size(n: int, seed: int = 0):
    k = int(np.ceil(np.sqrt(n / 2)))
    r = synthetic_runs(
        "chinchilla", TRUTH, N=np.geomspace(1e7, 1e9, 2 * k), tokens_per_param=np.geomspace(2, 200, k), seed=seed
    )
    return r.iloc[:n].reset_index(drop=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="240,2000,10000,50000")
    ap.add_argument("--devices", default="cpu,gpu")
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--out", default="gpu.md")
    a = ap.parse_args()
    rows = []
    gpu = jax.default_backend() == "gpu"
    for n in [int(x) for x in a.sizes.split(",")]:
        runs = runs_of_size(n)
        for dev in a.devices.split(","):
            if dev == "gpu" and not gpu:
                continue
            spec = bs.load_spec("chinchilla").with_sampler(device=dev)
            times, ess, div, rhat = [], [], [], []
            for i in range(1 + a.warm):
                t = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    f = bs.fit(spec, runs, seed=i)
                times.append(time.perf_counter() - t)
                d = f.diagnostics()
                ess.append(d["min_ess_bulk"])
                div.append(d["divergences"])
                rhat.append(d["max_r_hat"])
            warm = statistics.median(times[1:]) if a.warm else float("nan")
            rows.append(
                {
                    "runs": n,
                    "device": f.idata.attrs["device"],
                    "chain_method": f.idata.attrs["chain_method"],
                    "dtype": f.idata.attrs["dtype"],
                    "cold_s": times[0],
                    "warm_s": warm,
                    "min_ess_bulk": min(ess),
                    "ess_per_s_warm": statistics.median(ess[1:]) / warm if a.warm else float("nan"),
                    "divergences": div,
                    "max_r_hat": max(rhat),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    lines = [
        f"Machine: {platform.node()} {platform.processor()}; JAX {jax.__version__} devices {[str(d) for d in jax.devices()]}; "
        f"numpyro {__import__('numpyro').__version__}; Python {platform.python_version()}.",
        f"Command: `python benchmarks/bench_gpu.py --sizes {a.sizes} --warm {a.warm}`",
        "",
        "| runs | device | chains | dtype | cold (s) | warm (s) | min bulk ESS | ESS/s warm | divergences | max r-hat |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['runs']} | {r['device']} | {r['chain_method']} | {r['dtype']} | {r['cold_s']:.1f} | {r['warm_s']:.2f} | "
            f"{r['min_ess_bulk']:.0f} | {r['ess_per_s_warm']:.0f} | {r['divergences']} | {r['max_r_hat']:.3f} |"
        )
    Path(a.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
