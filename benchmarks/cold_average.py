"""A law average's first fit in a fresh process against its second (issue 20).

For each method, two fresh processes fit the bundled ``recommended`` spec to Epoch's Chinchilla
runs on one compilation cache: the first fills the cache, the second's first fit is the *cold* time
a user sees in a new process (``bayescale fit``), and its second fit the *warm* time. Run it with
``PYTHONPATH`` at another checkout to time that version on the same machine::

    BAYESCALE_DATA=../shared/data PYTHONPATH=. .venv/bin/python benchmarks/cold_average.py
    PYTHONPATH=/tmp/old .venv/bin/python benchmarks/cold_average.py   # an older checkout
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings

WORKER = "--worker"


def worker(cache: str, method: str) -> dict[str, float]:
    """In this process: two fits of ``recommended`` (the first cold), their wall times."""
    import bayescale as bs
    from bayescale.datasets import load_chinchilla

    bs.set_host_device_count(4)  # as the command line does
    bs.enable_compilation_cache(cache)
    runs = load_chinchilla()
    times = []
    for seed in (0, 1):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bs.fit("recommended", runs, seed=seed, method=method)
        times.append(time.perf_counter() - t0)
    return {"cold": times[0], "warm": times[1]}


def run(method: str, cache: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, WORKER, cache, method], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="laplace,nuts")
    args, rest = ap.parse_known_args()
    if rest[:1] == [WORKER]:
        print(json.dumps(worker(rest[1], rest[2])))
        return
    import bayescale

    print(f"bayescale from {bayescale.__file__}")
    for method in args.methods.split(","):
        with tempfile.TemporaryDirectory() as cache:
            first = run(method, cache)
            second = run(method, cache)
        print(
            f"{method}: empty cache {first['cold']:.2f} s; fresh process on that cache: cold {second['cold']:.2f} s, "
            f"warm {second['warm']:.2f} s ({second['cold'] / second['warm']:.1f}x)",
            flush=True,
        )


if __name__ == "__main__":
    main()
