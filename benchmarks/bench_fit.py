#!/usr/bin/env python
"""Fit-speed benchmark on Epoch's Chinchilla runs (240 runs after dropping the 5 highest losses).

In one process (PyMC in a child process of this one), on the same data and machine, it times:

0. bayescale: ``bayescale.fit(load_spec("chinchilla"), runs, seed=s)`` (4 chains x 1000 warmup +
   1000 draws): cold (the first fit in the process, JIT compilation included) and warm (median over
   further seeds), and ``method="laplace"``.
a. NumPyro NUTS written plainly: the same model, priors and likelihood as a plain numpyro model,
   ``NUTS(model)`` with its defaults and ``MCMC(num_warmup=1000, num_samples=1000, num_chains=4)``
   with NumPyro's default ``chain_method``.
b. PyMC's default sampler, ``pm.sample(draws=1000, tune=1000, chains=4, cores=2)``, on the same model
   written plainly in PyMC (run in a child process so its worker processes fork from a process
   without JAX threads).
c. An Epoch-style bootstrap point fit: Huber loss (delta 1e-3) on log-loss residuals, log-sum-exp
   parametrisation, SciPy L-BFGS-B from the Hoffmann/Epoch grid of starts on the full data, then
   1000 bootstrap resamples each warm-started from the full-data fit.

For each Bayesian method: wall time, min bulk and tail ESS over (E, A, B, alpha, beta, sigma), ESS per
second, max r-hat, divergences and posterior medians with 95% intervals. Results go into the section
``## Fit speed: Chinchilla (Epoch) data`` of ``--out`` (default BENCHMARKS.md); other sections are
left as they are.

Usage::

    .venv/bin/python benchmarks/bench_fit.py                  # full run (about 30 min on 2 cores), writes BENCHMARKS.md
    .venv/bin/python benchmarks/bench_fit.py --quick          # fewer repeats and resamples
    .venv/bin/python benchmarks/bench_fit.py --only bayescale,numpyro --fits 3

    # on a GPU machine (bayescale on the host CPU by default and forced onto the GPU, plain NumPyro):
    python3 benchmarks/bench_fit.py --only bayescale,numpyro --bayescale-devices auto,gpu \
        --method-budget 120 --device-label "GPU (H100)" --out $OUT/BENCHMARKS.md --json $OUT/gpu.json
    # back here: copy that subsection into BENCHMARKS.md (other sections and subsections stay)
    .venv/bin/python benchmarks/bench_fit.py --merge-from path/to/BENCHMARKS.md [--note "..."]
    # re-render a section from the raw results of an earlier run
    .venv/bin/python benchmarks/bench_fit.py --render-json results.json [--device-label LABEL]
    # table sizes and compilation (issue 20): cold fits in fresh processes (empty vs warm persistent
    # cache, another size in the same bucket; --baseline: also without buckets) and warm fits, per size;
    # writes the subsection "### Table sizes and compilation (issue 20)" (about 7 min on 2 busy cores)
    .venv/bin/python benchmarks/bench_fit.py --sizes 10,30,100,300,1000 --size-fits 2 --baseline

``BAYESCALE_DATA`` defaults to ``../shared/data`` beside the repository when that exists.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Fit speed: Chinchilla (Epoch) data"
PARAMS = ("E", "A", "B", "alpha", "beta", "sigma")
LAW_PARAMS = PARAMS[:5]
METHODS = ("bayescale", "numpyro", "pymc", "epoch")
CHAINS, WARMUP, DRAWS = 4, 1000, 1000
HUBER_DELTA = 1e-3

# The spec's priors and likelihood (models/chinchilla.toml), written out plainly for NumPyro and
# PyMC; check_same_model() verifies they give bayescale's log density.
PRIORS = {
    "E": (0.5, 0.5),  # LogNormal(loc, scale)
    "A": (6.0, 3.0),
    "B": (7.0, 3.0),
    "alpha": (-1.2, 0.5),
    "beta": (-1.2, 0.5),
}
SIGMA_SCALE = 0.05  # HalfNormal
STUDENT_DF = 4.0


def _set_data_env() -> None:
    if not os.environ.get("BAYESCALE_DATA"):
        cand = REPO.parent / "shared" / "data"
        if cand.is_dir():
            os.environ["BAYESCALE_DATA"] = str(cand)


# --------------------------------------------------------------- metrics


def posterior_metrics(draws: Mapping[str, Any]) -> dict[str, Any]:
    """ESS (bulk, tail), r-hat and quantiles from arrays shaped (chain, draw)."""
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

    ds = az.convert_to_dataset({k: np.asarray(draws[k], dtype=np.float64) for k in PARAMS})
    bulk = az.ess(ds, method="bulk")
    tail = az.ess(ds, method="tail")
    rhat = az.rhat(ds)
    out: dict[str, Any] = {
        "ess_bulk": {k: float(bulk[k]) for k in PARAMS},
        "ess_tail": {k: float(tail[k]) for k in PARAMS},
        "r_hat": {k: float(rhat[k]) for k in PARAMS},
        "median": {},
        "q025": {},
        "q975": {},
    }
    for k in PARAMS:
        x = np.asarray(draws[k], dtype=np.float64).ravel()
        out["median"][k], out["q025"][k], out["q975"][k] = (float(v) for v in np.quantile(x, [0.5, 0.025, 0.975]))
    out["min_ess_bulk"] = min(out["ess_bulk"].values())
    out["min_ess_tail"] = min(out["ess_tail"].values())
    out["max_r_hat"] = max(out["r_hat"].values())
    return out


def _record(wall: float, draws: Mapping[str, Any], divergences: int, **extra: Any) -> dict[str, Any]:
    m = posterior_metrics(draws)
    m.update(wall=wall, divergences=int(divergences), ess_per_s=m["min_ess_bulk"] / wall, **extra)
    return m


# ------------------------------------------------------------ bayescale


_COMPILE = [0.0]  # seconds JAX spent lowering and compiling (XLA backend), summed by a monitoring listener


def _watch_jax_compiles() -> None:
    try:
        from jax import monitoring
    except ImportError:  # pragma: no cover
        return

    def listen(name: str, secs: float, **_: Any) -> None:
        if name in ("/jax/core/compile/jaxpr_to_mlir_module_duration", "/jax/core/compile/backend_compile_duration"):
            _COMPILE[0] += secs

    monitoring.register_event_duration_secs_listener(listen)


class Timer:
    """Wall and CPU time (all threads of this process, plus waited-for children), JAX compile time, load average."""

    def __enter__(self) -> Self:
        self.load0 = os.getloadavg()[0]
        self.c0 = _cpu_seconds()
        self.j0 = _COMPILE[0]
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = _cpu_seconds() - self.c0
        self.compile = _COMPILE[0] - self.j0
        self.load = max(self.load0, os.getloadavg()[0])


def _cpu_seconds() -> float:
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _over_budget(
    fits: Sequence[Mapping[str, Any]], budget: float | None, what: str, log: Callable[[str], None]
) -> bool:
    spent = sum(f["wall"] for f in fits)
    if budget is not None and fits and spent > budget:
        log(f"{what}: {spent:.0f} s spent, over the {budget:.0f} s budget: no more repeats")
        return True
    return False


def bench_bayescale(
    runs: Any, seeds: Sequence[int], log: Callable[[str], None], device: str = "auto", budget: float | None = None
) -> dict[str, Any]:
    import numpy as np

    import bayescale as bs

    spec = bs.load_spec("chinchilla")
    if device != "auto":
        spec = spec.with_sampler(device=device)
    fits: list[dict[str, Any]] = []
    for i, seed in enumerate(seeds):
        if _over_budget(fits, budget, f"bayescale[{device}]", log):
            break
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Timer() as tm:
                f = bs.fit(spec, runs, seed=seed)
            wall = tm.wall
        d = f.diagnostics()
        stats = f.idata.sample_stats
        rec = _record(
            wall,
            {k: f.posterior[k].values for k in PARAMS},
            int(stats["diverging"].values.sum()),
            seed=seed,
            cold=i == 0,
            cpu=tm.cpu,
            load=tm.load,
            compile=tm.compile,
            internal_seconds=d["sampling_seconds"],
            chain_method=d["chain_method"],
            device=d["device"],
            mean_steps=float(np.mean(stats["n_steps"].values)),
            step_size=float(np.mean(stats["step_size"].values[:, 0])),
            warnings=[
                f"{w.category.__name__}: {str(w.message)[:200]}"
                for w in caught
                if not issubclass(w.category, FutureWarning)
            ],
        )
        fits.append(rec)
        log(
            f"bayescale[{device}] nuts seed={seed} {'cold' if i == 0 else 'warm'}: {wall:.2f}s (cpu {tm.cpu:.1f}s, jax compile {tm.compile:.1f}s, load {tm.load:.1f}), min bulk ESS {rec['min_ess_bulk']:.0f}, "
            f"tail {rec['min_ess_tail']:.0f}, max r-hat {rec['max_r_hat']:.4f}, div {rec['divergences']}, "
            f"{rec['chain_method']} on {rec['device']}, mean leapfrog steps {rec['mean_steps']:.1f}"
        )
    laplace = []
    for seed in [f["seed"] for f in fits] if device == "auto" else []:
        with Timer() as tm:
            f = bs.fit(spec, runs, seed=seed, method="laplace")
        wall = tm.wall
        post = f.posterior
        laplace.append(
            {
                "seed": seed,
                "wall": wall,
                "cpu": tm.cpu,
                "load": tm.load,
                "median": {k: float(np.median(post[k].values)) for k in PARAMS},
                "q025": {k: float(np.quantile(post[k].values, 0.025)) for k in PARAMS},
                "q975": {k: float(np.quantile(post[k].values, 0.975)) for k in PARAMS},
            }
        )
        log(f"bayescale laplace seed={seed}: {wall:.2f}s")
    return {"fits": fits, "laplace": laplace, "spec_id": spec.id, "device": device}


# ------------------------------------------------- table sizes (issue 20)

SIZES_LABEL = "Table sizes and compilation (issue 20)"
SIZE_TRUTH = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}


def size_table(n: int, seed: int = 0) -> Any:
    """``n`` synthetic runs of the Chinchilla law (Epoch's fit as truth, noise 0.01 on log loss):
    about sqrt(2n) model sizes from 1e7 to 3e10 at enough tokens-per-parameter ratios from 2 to
    320, then ``n`` of those rows chosen at random (so every table spans the same design)."""
    import numpy as np

    from bayescale.testing import synthetic_runs

    k = max(3, math.ceil(math.sqrt(2 * n)))
    m = max(2, math.ceil(n / k))
    runs = synthetic_runs(
        "chinchilla",
        SIZE_TRUTH,
        sigma=0.01,
        seed=seed,
        N=np.geomspace(1e7, 3e10, k),
        tokens_per_param=tuple(np.geomspace(2, 320, m)),
    )
    keep = np.sort(np.random.default_rng(seed).choice(len(runs), size=n, replace=False))
    return runs.iloc[keep].reset_index(drop=True)


def size_worker(n: int, cache: str, fits: int, out: str, no_buckets: bool = False) -> None:
    """In a fresh process: fit ``n`` runs ``fits`` times (the first cold), with JAX's persistent
    compilation cache in ``cache``; write the times, ESS and compile seconds as JSON to ``out``."""
    t0 = time.perf_counter()
    import bayescale as bs

    bs.set_host_device_count(4)  # as the command line does
    from bayescale import _engine

    bs.enable_compilation_cache(cache)
    if no_buckets:  # every table its own compiled size, as before issue 20
        _engine.bucket = lambda n: n
    _watch_jax_compiles()
    spec = bs.load_spec("chinchilla")
    runs = size_table(n)
    imported = time.perf_counter() - t0
    rows = []
    for i in range(fits):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Timer() as tm:
                f = bs.fit(spec, runs, seed=i)
        d = f.diagnostics()
        rows.append(
            {
                "wall": tm.wall,
                "cpu": tm.cpu,
                "compile": tm.compile,
                "load": tm.load,
                "min_ess_bulk": d["min_ess_bulk"],
                "max_r_hat": d["max_r_hat"],
                "divergences": d["divergences"],
            }
        )
    Path(out).write_text(json.dumps({"n": n, "import": imported, "fits": rows}))


def _size_process(n: int, cache: Path, fits: int, log: Callable[[str], None], no_buckets: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "size.json"
        cmd = [sys.executable, __file__, "--size-worker", str(n), str(cache), str(fits), str(out)]
        t0 = time.perf_counter()
        subprocess.run(cmd + (["--no-buckets"] if no_buckets else []), check=True, env=os.environ.copy())
        res = json.loads(out.read_text())
    res["process"] = time.perf_counter() - t0
    f = res["fits"]
    log(
        f"  {n} runs{' (no buckets)' if no_buckets else ''}: process {res['process']:.1f}s (import {res['import']:.1f}s), "
        f"fits {', '.join('%.2fs' % r['wall'] for r in f)}, jax compile {f[0]['compile']:.1f}s, min ESS {f[0]['min_ess_bulk']:.0f}"
    )
    return res


def bench_sizes(sizes: Sequence[int], fits: int, log: Callable[[str], None], baseline: bool) -> dict[str, Any]:
    """Per table size, fresh processes: (1) an empty persistent cache, (2) the cache (1) left,
    (3) a table of one run fewer (another size in the same bucket) on that cache; with
    ``baseline``, (4) that smaller table without buckets on a cache of the larger one (the
    behaviour before issue 20: a new size compiles anew)."""
    out: dict[str, Any] = {"sizes": list(sizes), "fits": fits, "rows": {}}
    for n in sizes:
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as plain:
            log(f"{n} runs (bucket {_bucket(n)})")
            row = {"empty": _size_process(n, Path(cache), fits, log)}
            row["cached"] = _size_process(n, Path(cache), fits, log)
            row["neighbour"] = _size_process(n - 1, Path(cache), 1, log)
            if baseline:
                _size_process(n, Path(plain), 1, log, no_buckets=True)
                row["neighbour_plain"] = _size_process(n - 1, Path(plain), 1, log, no_buckets=True)
        out["rows"][str(n)] = row
    return out


def _bucket(n: int) -> int:
    from bayescale._engine import bucket

    return bucket(n)


def render_sizes(res: Mapping[str, Any], command: str, machine: Mapping[str, str]) -> str:
    """The markdown of the table-size benchmark (without the heading)."""
    med = statistics.median
    lines = [
        f"`{command}` on {machine.get('CPU', '?')} ({os.cpu_count()} cores, shared with other work: "
        f"1-minute load {max(r['empty']['fits'][0]['load'] for r in res['rows'].values()):.1f} at most), "
        f"{res['fits']} fits per process (the first cold, the others warm), bundled `chinchilla` spec "
        "(4 chains x 1000 warmup + 1000 draws, NUTS), synthetic Chinchilla-law tables (`size_table`).",
        "",
        "Each fit pads its runs to a table-size bucket (16, 24, 32, 48, 64, ...) with masked likelihood terms, so "
        "the MAP step, the NUTS runner and the pointwise log likelihood compile once per bucket. Columns: *warm*, "
        "the median of the later fits in one process; *cold, empty cache*, the first fit in a fresh process "
        "(`bs.enable_compilation_cache` on an empty folder); *cold, cached*, the first fit in a second fresh "
        "process on the cache the first left; *cold, other size* a fresh process fitting one run fewer (the same "
        "bucket) on that cache; *other size, no buckets*, the same with buckets off (`--baseline`: each size its "
        "own shape, as before issue 20) on a cache of the larger size. Import of bayescale and JAX (about the "
        "same for every size) is not in the fit times; the process column includes it. One process per cell on "
        "a shared machine: single cold timings vary by seconds with the load.",
        "",
    ]
    base = any("neighbour_plain" in r for r in res["rows"].values())
    head = "| runs | bucket | warm s | cold, empty cache s | cold, cached s | cold/warm (cached) | cold, other size s |"
    sep = "|---:|---:|---:|---:|---:|---:|---:|"
    if base:
        head += " other size, no buckets s |"
        sep += "---:|"
    head += " process (cached) s | min bulk ESS | min ESS/s (warm) |"
    sep += "---:|---:|---:|"
    lines += [head, sep]
    for n, r in res["rows"].items():
        warm_fits = r["empty"]["fits"][1:] + r["cached"]["fits"][1:]
        warm = med([f["wall"] for f in warm_fits]) if warm_fits else float("nan")
        cold_c = r["cached"]["fits"][0]["wall"]
        ess = med([f["min_ess_bulk"] for f in r["empty"]["fits"] + r["cached"]["fits"]])
        cells = [
            n,
            _bucket(int(n)),
            _fmt(warm),
            _fmt(r["empty"]["fits"][0]["wall"]),
            _fmt(cold_c),
            f"{cold_c / warm:.1f}x",
            _fmt(r["neighbour"]["fits"][0]["wall"]),
        ]
        if base:
            cells.append(_fmt(r["neighbour_plain"]["fits"][0]["wall"]) if "neighbour_plain" in r else "")
        cells += [_fmt(r["cached"]["process"]), _fmt(ess), _fmt(ess / warm)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n\n" + size_words(res) + "\n"


def size_words(res: Mapping[str, Any]) -> str:
    """What the table-size numbers say, in words."""
    med = statistics.median
    ratio, warm, cold, plain = {}, {}, {}, {}
    for n, r in res["rows"].items():
        warm[n] = med([f["wall"] for f in r["empty"]["fits"][1:] + r["cached"]["fits"][1:]])
        cold[n] = r["cached"]["fits"][0]["wall"]
        ratio[n] = cold[n] / warm[n]
        if "neighbour_plain" in r:
            plain[n] = r["neighbour_plain"]["fits"][0]["wall"]
    ok = [n for n in ratio if ratio[n] <= 3]
    bad = [n for n in ratio if ratio[n] > 3]
    out = [
        f"Cold in a fresh process on a warm cache is within 3x of warm at {', '.join(ok) or 'no size'} runs"
        + (
            f"; not at {', '.join(bad)} runs, where a warm fit takes {min(warm[n] for n in bad):.1f}-"
            f"{max(warm[n] for n in bad):.1f} s and a fresh process pays a floor of about "
            f"{min(cold[n] for n in bad):.0f} s that the cache does not remove: JAX traces and lowers the NUTS "
            "runner and the MAP's gradient and Hessian again in every process (the persistent cache skips XLA's "
            "compilation only), and ArviZ's first diagnostics load."
            if bad
            else "."
        ),
        "A table of another size in the same bucket fits as fast as the cached size itself (the *other size* "
        "column), so the cache hits across table sizes.",
    ]
    if plain:
        other = {n: res["rows"][n]["neighbour"]["fits"][0]["wall"] for n in plain}
        out.append(
            "Without buckets (every size its own shape, the behaviour before issue 20) that other size compiled "
            f"anew: {', '.join(f'{_fmt(plain[n])} s' for n in plain)} for {', '.join(plain)} runs, against "
            f"{', '.join(_fmt(other[n]) + ' s' for n in plain)} with them."
        )
    out.append(
        "Padding costs little: the warm times grow slower than the table (a leapfrog step on a small table is "
        "mostly fixed overhead) and the bucket adds at most half a table of masked terms."
    )
    return " ".join(out)


# --------------------------------------------------------- plain NumPyro


def plain_numpyro_model(logN, logD, y=None):  # written as a user would
    """Chinchilla law on log loss, Student-t(4) likelihood: models/chinchilla.toml written plainly."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    E = numpyro.sample("E", dist.LogNormal(0.5, 0.5))
    A = numpyro.sample("A", dist.LogNormal(6.0, 3.0))
    B = numpyro.sample("B", dist.LogNormal(7.0, 3.0))
    alpha = numpyro.sample("alpha", dist.LogNormal(-1.2, 0.5))
    beta = numpyro.sample("beta", dist.LogNormal(-1.2, 0.5))
    sigma = numpyro.sample("sigma", dist.HalfNormal(0.05))
    mu = jnp.logaddexp(jnp.logaddexp(jnp.log(E), jnp.log(A) - alpha * logN), jnp.log(B) - beta * logD)
    with numpyro.plate("run", logN.shape[0]):
        numpyro.sample("log_loss", dist.StudentT(4.0, mu, sigma), obs=y)


def check_same_model(logN: Any, logD: Any, y: Any) -> float:
    """Max |difference| of the log joint density between the plain model and bayescale's make_model."""
    import jax
    import numpy as np
    from numpyro.infer.util import log_density

    import bayescale as bs
    from bayescale.model import make_model

    spec = bs.load_spec("chinchilla")
    for p, (loc, scale) in PRIORS.items():
        assert spec.priors[p].to_dict() == {"dist": "LogNormal", "loc": loc, "scale": scale}, (
            p,
            spec.priors[p].to_dict(),
        )
    bs_model = make_model(spec)
    worst = 0.0
    with jax.enable_x64(True):
        for point in (
            {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.37, "sigma": 0.02},
            {"E": 1.2, "A": 50.0, "B": 90.0, "alpha": 0.2, "beta": 0.25, "sigma": 0.1},
        ):
            a, _ = log_density(plain_numpyro_model, (np.asarray(logN), np.asarray(logD), np.asarray(y)), {}, point)
            b, _ = log_density(bs_model, ({"N": np.asarray(logN), "D": np.asarray(logD)}, np.asarray(y)), {}, point)
            worst = max(worst, abs(float(a) - float(b)))
    return worst


def bench_numpyro(
    logN: Any, logD: Any, y: Any, seeds: Sequence[int], log: Callable[[str], None], budget: float | None = None
) -> dict[str, Any]:
    import jax
    import numpy as np
    import numpyro
    from numpyro.infer import MCMC, NUTS

    fits: list[dict[str, Any]] = []
    logN, logD, y = (jax.numpy.asarray(v) for v in (logN, logD, y))  # NumPyro's default float32
    for i, seed in enumerate(seeds):
        if _over_budget(fits, budget, "numpyro", log):
            break
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Timer() as tm:
                mcmc = MCMC(
                    NUTS(plain_numpyro_model),
                    num_warmup=WARMUP,
                    num_samples=DRAWS,
                    num_chains=CHAINS,
                    progress_bar=False,
                )
                mcmc.run(jax.random.PRNGKey(seed), logN, logD, y, extra_fields=("diverging", "num_steps"))
                samples = mcmc.get_samples(group_by_chain=True)
                samples = {k: np.asarray(v) for k, v in samples.items()}  # blocks until ready
            wall = tm.wall
        ex = mcmc.get_extra_fields(group_by_chain=True)
        step = mcmc.last_state.adapt_state.step_size
        rec = _record(
            wall,
            samples,
            int(np.asarray(ex["diverging"]).sum()),
            seed=seed,
            cold=i == 0,
            cpu=tm.cpu,
            load=tm.load,
            compile=tm.compile,
            chain_method=str(mcmc.chain_method),
            device=f"{jax.default_backend()}:{jax.devices()[0].device_kind} x{jax.local_device_count()}",
            dtype=str(np.asarray(samples["E"]).dtype),
            mean_steps=float(np.mean(np.asarray(ex["num_steps"]))),
            step_size=float(np.mean(np.asarray(step))),
            warnings=[
                f"{w.category.__name__}: {str(w.message)[:200]}"
                for w in caught
                if not issubclass(w.category, FutureWarning)
            ],
        )
        fits.append(rec)
        log(
            f"numpyro seed={seed} {'cold' if i == 0 else 'warm'}: {wall:.2f}s (cpu {tm.cpu:.1f}s, jax compile {tm.compile:.1f}s, load {tm.load:.1f}), min bulk ESS {rec['min_ess_bulk']:.0f}, "
            f"tail {rec['min_ess_tail']:.0f}, max r-hat {rec['max_r_hat']:.4f}, div {rec['divergences']}, "
            f"chain_method={rec['chain_method']} ({rec['dtype']}), mean leapfrog steps {rec['mean_steps']:.1f}"
        )
    return {"fits": fits, "numpyro_version": numpyro.__version__}


# ------------------------------------------------------------------ PyMC


def pymc_worker(data_path: str, seeds: Sequence[int], out_path: str) -> None:
    """Run in a child process: the Chinchilla model written plainly in PyMC, timed per pm.sample call."""
    import numpy as np
    import pymc as pm

    data = np.load(data_path)
    logN, logD, y = data["logN"], data["logD"], data["y"]
    fits = []
    for i, seed in enumerate(seeds):
        tm = Timer().__enter__()
        with pm.Model():
            E = pm.LogNormal("E", mu=0.5, sigma=0.5)
            A = pm.LogNormal("A", mu=6.0, sigma=3.0)
            B = pm.LogNormal("B", mu=7.0, sigma=3.0)
            alpha = pm.LogNormal("alpha", mu=-1.2, sigma=0.5)
            beta = pm.LogNormal("beta", mu=-1.2, sigma=0.5)
            sigma = pm.HalfNormal("sigma", sigma=0.05)
            mu = pm.math.logaddexp(
                pm.math.logaddexp(pm.math.log(E), pm.math.log(A) - alpha * logN), pm.math.log(B) - beta * logD
            )
            pm.StudentT("log_loss", nu=4.0, mu=mu, sigma=sigma, observed=y)
            idata = pm.sample(draws=DRAWS, tune=WARMUP, chains=CHAINS, cores=2, random_seed=seed, progressbar=False)
        tm.__exit__()
        wall = tm.wall
        st = idata.sample_stats
        rec = _record(
            wall,
            {k: idata.posterior[k].values for k in PARAMS},
            int(st["diverging"].values.sum()),
            seed=seed,
            cold=i == 0,
            cpu=tm.cpu,
            load=tm.load,
            mean_steps=float(np.mean(st["n_steps"].values)),
            step_size=float(np.mean(st["step_size"].values)),
        )
        fits.append(rec)
        print(
            f"pymc seed={seed} {'cold' if i == 0 else 'warm'}: {wall:.2f}s (cpu {tm.cpu:.1f}s, load {tm.load:.1f}), min bulk ESS {rec['min_ess_bulk']:.0f}, "
            f"tail {rec['min_ess_tail']:.0f}, max r-hat {rec['max_r_hat']:.4f}, div {rec['divergences']}, "
            f"mean leapfrog steps {rec['mean_steps']:.1f}",
            flush=True,
        )
    Path(out_path).write_text(json.dumps({"fits": fits}))


def bench_pymc(logN: Any, logD: Any, y: Any, seeds: Sequence[int], log: Callable[[str], None]) -> dict[str, Any]:
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.npz"
        out = Path(tmp) / "pymc.json"
        np.savez(
            data,
            logN=np.asarray(logN, dtype=np.float64),
            logD=np.asarray(logD, dtype=np.float64),
            y=np.asarray(y, dtype=np.float64),
        )
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--pymc-worker",
            str(data),
            ",".join(map(str, seeds)),
            str(out),
        ]
        env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        total = time.perf_counter() - t0
        for line in proc.stdout.splitlines():
            log("  " + line)
        if proc.returncode != 0:
            raise RuntimeError(f"PyMC worker failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
        res = json.loads(out.read_text())
    res["process_seconds"] = total
    res["stderr_tail"] = proc.stderr[-1500:]
    return res


# ----------------------------------------------------- Epoch-style bootstrap


# The Huber objective (scaled by delta so L-BFGS-B converges), its L-BFGS-B settings and the grid
# of starts are shared with the extrapolation benchmark: benchmarks/baselines.py.


def bench_epoch(logN: Any, logD: Any, y: Any, n_boot: int, seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    import numpy as np

    logN, logD, y = (np.asarray(v, dtype=np.float64) for v in (logN, logD, y))
    from baselines import coarse_grid, lbfgs

    grid = coarse_grid()
    c0, load0 = _cpu_seconds(), os.getloadavg()[0]
    t0 = time.perf_counter()
    best = None
    for x0 in grid:
        res = lbfgs(x0, logN, logD, y)
        if best is None or res.fun < best.fun:
            best = res
    t_grid = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    n = len(y)
    boots = np.empty((n_boot, 5))
    failures = 0
    t1 = time.perf_counter()
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        res = lbfgs(best.x, logN[idx], logD[idx], y[idx])
        failures += not res.success
        boots[i] = res.x
    t_boot = time.perf_counter() - t1
    cpu, load = _cpu_seconds() - c0, max(load0, os.getloadavg()[0])

    def natural(x: Any) -> dict[str, Any]:
        x = np.asarray(x)
        return {
            "E": np.exp(x[..., 2]),
            "A": np.exp(x[..., 0]),
            "B": np.exp(x[..., 1]),
            "alpha": x[..., 3],
            "beta": x[..., 4],
        }

    point = {k: float(v) for k, v in natural(best.x).items()}
    nb = natural(boots)
    out = {
        "grid_starts": len(grid),
        "grid_seconds": t_grid,
        "boot_seconds": t_boot,
        "wall": t_grid + t_boot,
        "cpu": cpu,
        "load": load,
        "objective": float(best.fun) * HUBER_DELTA,
        "n_boot": n_boot,
        "boot_failures": int(failures),
        "point": point,
        "median": {k: float(np.median(v)) for k, v in nb.items()},
        "q025": {k: float(np.quantile(v, 0.025)) for k, v in nb.items()},
        "q975": {k: float(np.quantile(v, 0.975)) for k, v in nb.items()},
    }
    log(
        f"epoch bootstrap: grid {len(grid)} starts {t_grid:.2f}s, {n_boot} resamples {t_boot:.2f}s "
        f"({failures} not converged), point {point}"
    )
    return out


# ------------------------------------------------------------- reporting


def write_records(path: Any, t0: float, records: list) -> None:
    """A benchmark's records with the command, machine, versions and wall time, as JSON at ``path`` (if given)."""
    if path:
        out = {
            "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
            "machine": machine_info(),
            "versions": versions(),
            "wall_s": time.time() - t0,
            "records": records,
        }
        Path(path).write_text(json.dumps(out, indent=1))


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {
        "CPU": cpu,
        "cores": f"{os.cpu_count()} logical ({usable} usable by this process)",
        "RAM": ram,
        "OS": platform.platform(),
        "Python": platform.python_version(),
    }
    try:
        import jax

        devs = jax.devices()
        info["JAX devices"] = f"{jax.default_backend()}: {len(devs)} x {devs[0].device_kind}"
    except (ImportError, RuntimeError) as e:  # pragma: no cover - informational
        info["JAX devices"] = f"unavailable ({e})"
    return info


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("bayescale", "numpyro", "jax", "jaxlib", "pymc", "pytensor", "arviz", "scipy", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            try:
                mod = __import__(name)
                out[name] = getattr(mod, "__version__", "?") + " (not installed as a distribution)"
            except ImportError:
                out[name] = "not installed"
    return out


def _fmt(x: float, digits: int = 3) -> str:
    if math.isnan(x):
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.{digits}g}"


def _summ(fits: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    cold = fits[0]
    warm = list(fits[1:]) or [cold]
    med = statistics.median
    return {
        "n": len(fits),
        "cold_wall": cold["wall"],
        "warm_wall": med([f["wall"] for f in warm]),
        "best_warm_wall": min(f["wall"] for f in warm),
        "cold_cpu": cold.get("cpu", float("nan")),
        "warm_cpu": med([f.get("cpu", float("nan")) for f in warm]),
        "load": max(f.get("load", float("nan")) for f in fits),
        "cold_compile": cold.get("compile", float("nan")),
        "warm_compile": med([f.get("compile", float("nan")) for f in warm]),
        "min_ess_bulk": med([f["min_ess_bulk"] for f in fits]),
        "min_ess_tail": med([f["min_ess_tail"] for f in fits]),
        "cold_ess_per_s": cold["ess_per_s"],
        "warm_ess_per_s": med([f["ess_per_s"] for f in warm]),
        "warm_ess_per_cpu": med([f["min_ess_bulk"] / f["cpu"] if f.get("cpu") else float("nan") for f in warm]),
        "max_r_hat": max(f["max_r_hat"] for f in fits),
        "divergences": [f["divergences"] for f in fits],
        "mean_steps": med([f["mean_steps"] for f in fits]),
        "median": {k: med([f["median"][k] for f in fits]) for k in PARAMS},
        "q025": {k: med([f["q025"][k] for f in fits]) for k in PARAMS},
        "q975": {k: med([f["q975"][k] for f in fits]) for k in PARAMS},
    }


def _bayes_keys(results: Mapping[str, Any]) -> list[str]:
    return [k for k in results if k == "bayescale" or k.startswith("bayescale@")] + [
        m for m in ("numpyro", "pymc") if m in results
    ]


def _name(key: str) -> str:
    if key == "bayescale":
        return "bayescale `fit` (defaults: NUTS, dense mass, Laplace-whitened)"
    if key.startswith("bayescale@"):
        return f'bayescale `fit`, `sampler.device="{key.split("@", 1)[1]}"`'
    return {"numpyro": "plain NumPyro `NUTS(model)`, defaults", "pymc": "PyMC `pm.sample(cores=2)`, defaults"}[key]


def render(results: Mapping[str, Any], args: argparse.Namespace, command: str) -> str:
    """The markdown body (without the section heading) for one run."""
    L: list[str] = []
    info, vers = results["machine"], results["versions"]
    L.append(
        f"Run on {results['date']} with `{command}`{' (quick mode: fewer repeats and resamples)' if args.quick else ''}."
    )
    L.append("")
    L.append("| machine | |")
    L.append("| --- | --- |")
    for k, v in info.items():
        L.append(f"| {k} | {v} |")
    L.append("| packages | " + ", ".join(f"{k} {v}" for k, v in vers.items()) + " |")
    L.append("")
    keys = _bayes_keys(results)
    S = {m: _summ(results[m]["fits"]) for m in keys}
    if S or "epoch" in results:
        L.append(
            f"{CHAINS} chains x {WARMUP} warmup + {DRAWS} draws each, on {results['n_runs']} runs. *Cold*: the first fit "
            "in the process (JIT/C compilation included). *Warm*: median over the later fits (new seeds, same process), "
            "with the fastest in brackets. "
            "ESS and r-hat by ArviZ over (E, A, B, alpha, beta, sigma); ESS/s = min bulk ESS / wall time. "
            "CPU s: processor time of all threads (and child processes) of the fit. JAX compile: seconds JAX spent lowering and "
            "compiling with XLA inside the fit (tracing not included). Load: the highest 1-minute load "
            "average seen at the start or end of a fit (above the core count means other work shared the machine)."
        )
        L.append("")
        L.append(
            "| method | fits | wall cold (s) | wall warm (s) (best) | JAX compile cold / warm (s) | CPU s warm | min bulk ESS | min tail ESS | ESS/s cold | ESS/s warm | max r-hat | divergences per fit | leapfrog steps/draw | load |"
        )
        L.append("|" + " --- |" * 14)
        for m, s in S.items():
            comp = "n/a (C, cached on disk)" if m == "pymc" else f"{s['cold_compile']:.1f} / {s['warm_compile']:.1f}"
            L.append(
                f"| {_name(m)} | {s['n']} | {s['cold_wall']:.2f} | {s['warm_wall']:.2f} ({s['best_warm_wall']:.2f}) | {comp} | {s['warm_cpu']:.1f} | {s['min_ess_bulk']:.0f} | "
                f"{s['min_ess_tail']:.0f} | {s['cold_ess_per_s']:.0f} | {s['warm_ess_per_s']:.0f} | {s['max_r_hat']:.4f} | "
                f"{', '.join(map(str, s['divergences']))} | {s['mean_steps']:.1f} | {s['load']:.1f} |"
            )
        lap = results.get("bayescale", {}).get("laplace")
        if lap:
            lw = [x["wall"] for x in lap]
            L.append(
                f'| bayescale `fit(method="laplace")` | {len(lw)} | {lw[0]:.2f} | {statistics.median(lw[1:] or lw):.2f} | | '
                f"{statistics.median([x['cpu'] for x in lap[1:] or lap]):.1f} | (independent draws) | | | | | | | {max(x['load'] for x in lap):.1f} |"
            )
        if "epoch" in results:
            e = results["epoch"]
            L.append(
                f"| Epoch-style Huber + L-BFGS-B, {e['n_boot']} bootstrap resamples | 1 | {e['wall']:.2f} | | | {e['cpu']:.1f} | | | | | | | | {e['load']:.1f} |"
            )
        L.append("")
        if "epoch" in results:
            e = results["epoch"]
            L.append(
                f"Epoch-style fit: L-BFGS-B from each of {e['grid_starts']} grid starts on the full data took "
                f"{e['grid_seconds']:.2f} s; {e['n_boot']} bootstrap resamples, each warm-started from the full-data "
                f"fit, {e['boot_seconds']:.2f} s ({e['boot_failures']} did not report convergence)."
            )
            L.append("")
    detail = []
    for m in keys:
        f0 = results[m]["fits"][0]
        if "chain_method" in f0:
            detail.append(
                f"{m}: chain_method `{f0.get('chain_method')}` on `{f0.get('device')}`"
                + (f", dtype {f0['dtype']}" if "dtype" in f0 else "")
            )
    if detail:
        L.append("Setup seen: " + "; ".join(detail) + ".")
        L.append("")
    # ratios and targets
    if "bayescale" in S:
        b = S["bayescale"]
        L.append("| target | cold | warm | met? |")
        L.append("| --- | --- | --- | --- |")
        for m, goal in (("numpyro", 3.0), ("pymc", 10.0)):
            if m in S:
                rc = b["cold_ess_per_s"] / S[m]["cold_ess_per_s"]
                rw = b["warm_ess_per_s"] / S[m]["warm_ess_per_s"]
                met = (
                    "yes"
                    if min(rc, rw) >= goal
                    else ("warm only" if rw >= goal else ("cold only" if rc >= goal else "no"))
                )
                L.append(
                    f"| bayescale ESS/s >= {goal:g}x {'plain NumPyro' if m == 'numpyro' else 'PyMC default'} | {rc:.1f}x | {rw:.1f}x | {met} |"
                )
        for m in ("numpyro", "pymc"):
            if m in S:
                L.append(
                    f"| (cross-check, less sensitive to a shared machine) ESS per CPU-second vs {m}, warm | | "
                    f"{b['warm_ess_per_cpu'] / S[m]['warm_ess_per_cpu']:.1f}x | |"
                )
        lim = 5.0
        met = "yes" if b["cold_wall"] < lim else ("warm only" if b["warm_wall"] < lim else "no")
        L.append(f"| whole bayescale fit < {lim:g} s | {b['cold_wall']:.2f} s | {b['warm_wall']:.2f} s | {met} |")
        L.append("")
    # parameters
    cols = list(S)
    lap = results.get("bayescale", {}).get("laplace")
    have_epoch = "epoch" in results
    if cols or have_epoch:
        L.append(
            "Posterior medians [95% equal-tailed intervals] (median over fits)"
            + (", and the Epoch-style full-data point fit [95% bootstrap percentile intervals]:" if have_epoch else ":")
        )
        L.append("")
        header = ["param"] + [{"bayescale": "bayescale NUTS"}.get(m, m) for m in cols]
        header += ["bayescale Laplace"] if lap else []
        header += ["Epoch-style bootstrap"] if have_epoch else []
        L.append("| " + " | ".join(header) + " |")
        L.append("|" + " --- |" * len(header))
        for p in PARAMS:
            row = [p]
            for m in cols:
                row.append(f"{_fmt(S[m]['median'][p])} [{_fmt(S[m]['q025'][p])}, {_fmt(S[m]['q975'][p])}]")
            if lap:
                row.append(f"{_fmt(lap[0]['median'][p])} [{_fmt(lap[0]['q025'][p])}, {_fmt(lap[0]['q975'][p])}]")
            if have_epoch:
                e = results["epoch"]
                row.append(
                    "(no noise model)"
                    if p == "sigma"
                    else f"{_fmt(e['point'][p])} [{_fmt(e['q025'][p])}, {_fmt(e['q975'][p])}]"
                )
            L.append("| " + " | ".join(row) + " |")
        L.append("")
    L.append(words(results, S))
    L.append("")
    warns = []
    for m in keys:
        fits = results[m]["fits"]
        n_warned = sum(bool(f.get("warnings")) for f in fits)
        if n_warned:
            problems = sorted({_first_sentence(w) for f in fits for w in f.get("warnings", [])})
            warns.append(f"{m}, {n_warned} of {len(fits)} fits: " + "; ".join(problems))
    if warns:
        L.append("Warnings raised during the fits (first sentence of each): " + " / ".join(warns) + ".")
        L.append("")
    return "\n".join(L).rstrip() + "\n"


def _first_sentence(msg: str) -> str:
    msg = msg.replace("sampling may not be trustworthy: ", "")
    return re.split(r"(?<=[a-z0-9)\]]):? (?=[A-Z])|\. ", msg, maxsplit=1)[0].rstrip(".")


def words(results: Mapping[str, Any], S: Mapping[str, Any]) -> str:
    """A plain-words paragraph generated from the numbers."""
    out = []
    if "bayescale" in S:
        b = S["bayescale"]
        out.append(
            f"A warm bayescale fit took {b['warm_wall']:.1f} s ({b['cold_wall']:.1f} s for the first fit in a fresh "
            f"process, which compiles) and gave a minimum bulk ESS of {b['min_ess_bulk']:.0f} from "
            f"{CHAINS * DRAWS} draws, {b['warm_ess_per_s']:.0f} effective draws per second."
        )
        if b["warm_compile"] > 0.25 * b["warm_wall"]:
            out.append(
                f"JAX compilation took {b['warm_compile']:.1f} s of a warm fit ({b['cold_compile']:.1f} s of the cold "
                "one): the sampler is compiled again on every fit, not only the first."
            )
        lap = results["bayescale"].get("laplace")
        if lap:
            out.append(
                f"The Laplace approximation alone took {statistics.median([x['wall'] for x in lap[1:] or lap]):.2f} s warm."
            )
        for m, label in (("numpyro", "Plain NumPyro"), ("pymc", "PyMC's default sampler")):
            if m in S:
                s = S[m]
                out.append(
                    f"{label} took {s['warm_wall']:.1f} s warm ({s['cold_wall']:.1f} s cold) for a minimum bulk ESS of "
                    f"{s['min_ess_bulk']:.0f} ({s['warm_ess_per_s']:.0f}/s; {s['mean_steps']:.0f} leapfrog steps per draw "
                    f"against bayescale's {b['mean_steps']:.0f}), max r-hat {s['max_r_hat']:.3f} and "
                    f"{sum(s['divergences'])} divergences over {s['n']} fits: bayescale gives "
                    f"{b['warm_ess_per_s'] / s['warm_ess_per_s']:.1f}x its effective draws per second warm "
                    f"({b['cold_ess_per_s'] / s['cold_ess_per_s']:.1f}x cold)."
                )
    if "epoch" in results:
        e = results["epoch"]
        out.append(
            f"The Epoch-style point fit with {e['n_boot']} bootstrap resamples took {e['wall']:.1f} s; its intervals "
            "describe how the point estimate moves under resampling of the runs, with no noise model and no priors."
        )
    loads = [s["load"] for s in S.values()] + ([results["epoch"]["load"]] if "epoch" in results else [])
    cores = os.cpu_count() or 1
    if loads and max(loads) > cores + 0.5:
        out.append(
            f"Caution: the 1-minute load average reached {max(loads):.1f} on {cores} cores during this run, so other "
            "work shared the machine and wall times (not ESS) are inflated, unevenly across methods; the CPU-seconds "
            "column is less affected."
        )
    return " ".join(out)


# ------------------------------------------------------- section surgery

_MAIN = ("<!-- bench_fit:main:start -->", "<!-- bench_fit:main:end -->")


def _dev_markers(label: str) -> tuple[str, str]:
    return (f"<!-- bench_fit:device:{label}:start -->", f"<!-- bench_fit:device:{label}:end -->")


def _split_doc(text: str) -> tuple[str, str, str]:
    """(before, section body, after) around SECTION; body is '' when the section is absent."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        before = text if not text or text.endswith("\n") else text + "\n"
        return before, "", ""
    end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    return "".join(lines[:start]), "".join(lines[start + 1 : end]), "".join(lines[end:])


def _blocks(body: str) -> tuple[str | None, dict[str, str]]:
    """The main block and the device blocks (label -> full text with markers) of a section body."""
    main = None
    m = re.search(re.escape(_MAIN[0]) + r".*?" + re.escape(_MAIN[1]), body, flags=re.DOTALL)
    if m:
        main = m.group(0)
    devices = {}
    for d in re.finditer(
        r"<!-- bench_fit:device:(.+?):start -->.*?<!-- bench_fit:device:\1:end -->", body, flags=re.DOTALL
    ):
        devices[d.group(1)] = d.group(0)
    return main, devices


def write_section(out: Path, *, main: str | None = None, devices: Mapping[str, str] | None = None) -> None:
    """Replace the main block and/or named device blocks of our section; everything else stays."""
    text = out.read_text() if out.exists() else "# Benchmarks\n\n"
    before, body, after = _split_doc(text)
    old_main, old_devices = _blocks(body)
    new_main = f"{_MAIN[0]}\n{main.rstrip()}\n{_MAIN[1]}" if main is not None else old_main
    new_devices = dict(old_devices)
    for label, block in (devices or {}).items():
        s, e = _dev_markers(label)
        new_devices[label] = block if block.startswith(s) else f"{s}\n{block.rstrip()}\n{e}"
    parts = [p for p in [new_main, *new_devices.values()] if p]
    section = SECTION + "\n\n" + "\n\n".join(parts) + "\n"
    if before and not before.endswith("\n\n"):
        before = before.rstrip("\n") + "\n\n"
    if after:
        section += "\n"
    out.write_text(before + section + after)


def merge_from(src: Path, out: Path, note: str | None = None) -> list[str]:
    """Copy the device subsections of ``src``'s section into ``out``, each with ``note`` appended."""
    _, body, _ = _split_doc(src.read_text())
    _, devices = _blocks(body)
    if not devices:
        raise SystemExit(f"{src}: no device subsections in section {SECTION!r}")
    if note:
        for label, block in devices.items():
            end = _dev_markers(label)[1]
            devices[label] = block[: -len(end)].rstrip() + "\n\n" + note.strip() + "\n" + end
    write_section(out, devices=devices)
    return list(devices)


# ------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and bootstrap resamples")
    ap.add_argument(
        "--out", default=str(REPO / "BENCHMARKS.md"), help="markdown file to update (default BENCHMARKS.md)"
    )
    ap.add_argument("--only", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    ap.add_argument(
        "--device-label", default=None, help='write the results as subsection "### LABEL" (e.g. "GPU (H100)")'
    )
    ap.add_argument(
        "--bayescale-devices",
        default="auto",
        help='comma-separated sampler.device values to time bayescale with, e.g. "auto,gpu"',
    )
    ap.add_argument("--fits", type=int, default=None, help="fits per NUTS method, the first cold (default 4, quick 2)")
    ap.add_argument("--pymc-fits", type=int, default=None, help="PyMC fits, the first cold (default 2, quick 1)")
    ap.add_argument("--boot", type=int, default=None, help="bootstrap resamples (default 1000, quick 200)")
    ap.add_argument(
        "--method-budget", type=float, default=None, help="stop repeating a method once its fits took this many seconds"
    )
    ap.add_argument("--json", default=None, help="also write the raw results as JSON here")
    ap.add_argument(
        "--render-json", default=None, help="re-render the section from a --json file of an earlier run and exit"
    )
    ap.add_argument(
        "--merge-from", default=None, help="copy the device subsections of this file's section into --out and exit"
    )
    ap.add_argument("--note", default=None, help="with --merge-from: a paragraph to append to each merged subsection")
    ap.add_argument("--pymc-worker", nargs=3, metavar=("DATA", "SEEDS", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--sizes",
        default=None,
        help="e.g. 10,30,100,300,1000: cold (fresh process, empty vs warm persistent cache) and warm fit times per "
        f"table size, written as subsection {SIZES_LABEL!r}; nothing else runs",
    )
    ap.add_argument("--size-fits", type=int, default=3, help="with --sizes: fits per process, the first cold")
    ap.add_argument("--baseline", action="store_true", help="with --sizes: also time a new size without buckets")
    ap.add_argument("--size-worker", nargs=4, metavar=("N", "CACHE", "FITS", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--no-buckets", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.size_worker:
        n, cache, fits, out_json = args.size_worker
        _set_data_env()
        size_worker(int(n), cache, int(fits), out_json, no_buckets=args.no_buckets)
        return 0
    if args.sizes:
        return main_sizes(args, argv)
    if args.pymc_worker:
        data, seeds, out = args.pymc_worker
        pymc_worker(data, [int(s) for s in seeds.split(",")], out)
        return 0
    out = Path(args.out)
    if args.merge_from:
        labels = merge_from(Path(args.merge_from), out, args.note)
        print(f"merged device subsections {labels} into {out}")
        return 0

    if args.render_json:
        results = json.loads(Path(args.render_json).read_text())
        args.quick = results.get("quick", args.quick)
        body = render(results, args, results.get("command", "python benchmarks/bench_fit.py"))
        if args.device_label:
            write_section(out, devices={args.device_label: f"### {args.device_label}\n\n{body}"})
        else:
            write_section(out, main=body)
        print(body)
        return 0

    only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = sorted(set(only) - set(METHODS))
    if unknown:
        ap.error(f"--only: unknown {unknown}; choose from {list(METHODS)}")
    devices = [d.strip() for d in args.bayescale_devices.split(",") if d.strip()]
    n_fit = args.fits or (2 if args.quick else 4)
    n_pymc = args.pymc_fits or (1 if args.quick else 2)
    n_boot = args.boot or (200 if args.quick else 1000)
    script = os.path.relpath(__file__, REPO) if Path(__file__).resolve().is_relative_to(REPO) else __file__
    command = "python " + " ".join(shlex.quote(a) for a in [script, *(argv if argv is not None else sys.argv[1:])])

    _set_data_env()
    import numpy as np

    import bayescale as bs

    bs.set_host_device_count(4)  # four host devices (parallel chains), as the CLI, before JAX starts

    _watch_jax_compiles()

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    runs = bs.datasets.load_chinchilla()
    logN = np.log(runs["N"].to_numpy(dtype=np.float64))
    logD = np.log(runs["D"].to_numpy(dtype=np.float64))
    y = np.log(runs["loss"].to_numpy(dtype=np.float64))
    log(f"{len(runs)} Chinchilla runs (BAYESCALE_DATA={os.environ.get('BAYESCALE_DATA')})")

    results: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine_info(),
        "versions": versions(),
        "n_runs": len(runs),
        "command": command,
        "quick": args.quick,
    }

    def save() -> str:
        """Write what has been measured so far (a run cut short still leaves its results)."""
        body = render(results, args, command)
        if args.device_label:
            write_section(out, devices={args.device_label: f"### {args.device_label}\n\n{body}"})
        else:
            write_section(out, main=body)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))
        return body

    if "bayescale" in only:
        for dev in devices:
            key = "bayescale" if dev == "auto" else f"bayescale@{dev}"
            results[key] = bench_bayescale(runs, list(range(n_fit)), log, device=dev, budget=args.method_budget)
            save()
    if "numpyro" in only:
        diff = check_same_model(logN, logD, y)
        log(f"plain NumPyro model vs bayescale make_model: max |log density difference| = {diff:.2e}")
        if diff > 1e-6:
            raise SystemExit(f"the plain NumPyro model is not bayescale's model (log density differs by {diff})")
        results["numpyro"] = bench_numpyro(logN, logD, y, list(range(n_fit)), log, budget=args.method_budget)
        save()
    if "pymc" in only:
        results["pymc"] = bench_pymc(logN, logD, y, list(range(n_pymc)), log)
        save()
    if "epoch" in only:
        results["epoch"] = bench_epoch(logN, logD, y, n_boot, 0, log)
    body = save()
    print(body)
    log(f"wrote section {SECTION!r} of {out}")
    return 0


def main_sizes(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """``--sizes``: the table-size benchmark, written as its own subsection of the fit-speed section."""
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    script = os.path.relpath(__file__, REPO) if Path(__file__).resolve().is_relative_to(REPO) else __file__
    command = "python " + " ".join(shlex.quote(a) for a in [script, *(argv if argv is not None else sys.argv[1:])])

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    if args.render_json:  # re-render an earlier run's JSON
        res = json.loads(Path(args.render_json).read_text())
        body = f"### {SIZES_LABEL}\n\n{res['date']}. " + render_sizes(res, res["command"], res["machine"])
        write_section(Path(args.out), devices={SIZES_LABEL: body})
        print(body)
        return 0
    res = bench_sizes(sizes, args.size_fits, log, args.baseline)
    res.update(
        command=command, machine=machine_info(), date=_dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    )
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    body = f"### {SIZES_LABEL}\n\n{res['date']}. " + render_sizes(res, command, res["machine"])
    write_section(Path(args.out), devices={SIZES_LABEL: body})
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
