#!/usr/bin/env python
"""Sampler alternatives side by side on Epoch's Chinchilla runs (issue 20).

In one process, on the same 240 runs and the same model (the bundled ``chinchilla`` spec: its
priors and Student-t likelihood, checked against bayescale's log density as ``bench_fit`` does),
each method fits 4 chains x 1000 warmup + 1000 draws (where it is MCMC), one cold fit and then
warm fits on new seeds:

- ``bayescale``: ``bs.fit(spec, runs, seed=s)``, the default (whitened dense NUTS after a Laplace fit);
- ``numpyro`` / ``numpyro_dense``: plain NumPyro ``NUTS(model)`` (diagonal mass) and ``dense_mass=True``;
- ``blackjax``: BlackJAX NUTS with Stan's window adaptation (diagonal), on the plain model's
  potential from ``numpyro.infer.util.initialize_model``;
- ``blackjax_lowrank``: BlackJAX NUTS with the low-rank-modified mass matrix adaptation
  (``blackjax.window_adaptation_low_rank``, nutpie's algorithm), sampling from the state the warmup
  returns (its translation mu*); ``blackjax_lowrank_last`` samples on from the warmup's last position;
- ``blackjax_pathfinder``: BlackJAX NUTS started from Pathfinder (``blackjax.pathfinder_adaptation``:
  a start drawn from each chain's Pathfinder fit, its L-BFGS inverse Hessian as the inverse mass
  matrix, then step-size adaptation only);
- ``nutpie`` / ``nutpie_lowrank``: nutpie on bayescale's PyMC model (``pymc_backend.to_pymc``), diagonal
  and low-rank-modified mass matrix adaptation (nutpie 0.16.8's default is diagonal), and
  ``nutpie_lowrank_09`` with the spec's ``target_accept = 0.9`` (nutpie's default is 0.8);
- ``psis`` / ``laplace``: ``bs.fit(..., method="psis")`` (PSIS-corrected Laplace) and ``"laplace"``.

Per method: cold and warm wall seconds, min bulk / tail ESS, min bulk ESS per warm second, max r-hat,
divergences, gradient evaluations (leapfrog steps) per draw, and agreement with bayescale's default
posterior (pooled over its fits): per parameter |mean difference| / reference sd and the ratio of sds.
A missing optional package (blackjax, nutpie, pymc) skips its rows with the reason printed.

The results go into the subsection ``### Sampler alternatives side by side (issue 20)`` at the end of
``## Fit speed: Chinchilla (Epoch) data`` in ``--out`` (default BENCHMARKS.md); the rest is left as it is.
A re-run replaces the whole marked subsection, including the reading written by hand below its table.

Usage::

    pip install -e ".[bench]"      # or: pip install --no-deps --target DIR blackjax optax absl-py nutpie ... (PYTHONPATH)
    python benchmarks/bench_samplers.py --quick --out /tmp/q.md                     # debugging: about 3 min
    python benchmarks/bench_samplers.py --method-budget 200 --json /tmp/samplers.json   # about 10 min on 2 cores
    python benchmarks/bench_samplers.py --render-json /tmp/samplers.json    # re-render an earlier run
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_fit  # noqa: E402  (the plain model, metrics, timer and machine helpers)
from bench_fit import PARAMS, SECTION, Timer, check_same_model, machine_info, plain_numpyro_model, posterior_metrics

REPO = Path(__file__).resolve().parents[1]
LABEL = "Sampler alternatives side by side (issue 20)"
MARKERS = (f"<!-- bench_fit:device:{LABEL}:start -->", f"<!-- bench_fit:device:{LABEL}:end -->")
CHAINS = bench_fit.CHAINS
# A sampler agrees with the reference when every parameter's mean is within this many reference sds
# and its sd within this ratio range (Monte Carlo error at these ESS is well inside both).
MAX_SHIFT, SD_RATIO = 0.1, (0.9, 1.1)

METHODS: dict[str, str] = {
    "bayescale": "bayescale `fit` (default: Laplace-whitened dense NUTS)",
    "numpyro": "plain NumPyro `NUTS(model)` (diagonal)",
    "numpyro_dense": "plain NumPyro `NUTS(model, dense_mass=True)`",
    "blackjax": "BlackJAX NUTS, window adaptation (diagonal)",
    "blackjax_lowrank": "BlackJAX NUTS, low-rank mass matrix adaptation",
    "blackjax_lowrank_last": "BlackJAX NUTS, low-rank adaptation, sampling on from the warmup's last state",
    "blackjax_pathfinder": "BlackJAX NUTS, Pathfinder init + inverse mass matrix",
    "nutpie": "nutpie on bayescale's PyMC model (diagonal)",
    "nutpie_lowrank": "nutpie on bayescale's PyMC model, `low_rank_modified_mass_matrix=True`",
    "nutpie_lowrank_09": "nutpie, low-rank, `target_accept=0.9` (the spec's, as bayescale uses)",
    "psis": 'bayescale `fit(method="psis")` (PSIS-corrected Laplace)',
    "laplace": 'bayescale `fit(method="laplace")`',
}
NEEDS = {
    "blackjax": ("blackjax",),
    "blackjax_lowrank": ("blackjax",),
    "blackjax_lowrank_last": ("blackjax",),
    "blackjax_pathfinder": ("blackjax",),
    "nutpie": ("nutpie", "pymc"),
    "nutpie_lowrank": ("nutpie", "pymc"),
    "nutpie_lowrank_09": ("nutpie", "pymc"),
}
NOT_MCMC = ("psis", "laplace")


# ------------------------------------------------------------- agreement


def agreement(reference: Mapping[str, Any], draws: Mapping[str, Any], params: Sequence[str] = PARAMS) -> dict:
    """Per parameter: |mean difference| / reference sd (``shift``) and sd / reference sd (``sd_ratio``),
    draws pooled over chains; plus the worst of each and whether all are within the bounds."""
    import numpy as np

    shift, ratio = {}, {}
    for p in params:
        ref = np.asarray(reference[p], dtype=np.float64).ravel()
        x = np.asarray(draws[p], dtype=np.float64).ravel()
        sd = ref.std()
        shift[p] = float(abs(x.mean() - ref.mean()) / sd)
        ratio[p] = float(x.std() / sd)
    worst_shift = max(shift, key=shift.get)
    worst_ratio = max(ratio, key=lambda p: abs(np.log(ratio[p])))
    return {
        "shift": shift,
        "sd_ratio": ratio,
        "max_shift": shift[worst_shift],
        "max_shift_param": worst_shift,
        "worst_sd_ratio": ratio[worst_ratio],
        "worst_sd_ratio_param": worst_ratio,
        "agrees": all(v < MAX_SHIFT for v in shift.values())
        and all(SD_RATIO[0] <= v <= SD_RATIO[1] for v in ratio.values()),
    }


def pooled(fits: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The draws of several fits as one (chain, draw) array per parameter (fits' chains stacked)."""
    import numpy as np

    return {p: np.concatenate([np.asarray(f["draws"][p]) for f in fits], axis=0) for p in PARAMS}


def missing_packages(method: str) -> list[str]:
    """The optional packages ``method`` needs that are not importable here."""
    return [m for m in NEEDS.get(method, ()) if importlib.util.find_spec(m) is None]


# --------------------------------------------------------------- timing


def time_fits(
    name: str,
    fit_once: Callable[[int], dict[str, Any]],
    seeds: Sequence[int],
    log: Callable[[str], None],
    budget: float | None,
) -> list[dict[str, Any]]:
    """Call ``fit_once(seed)`` per seed (the first cold), timed; stop repeating past ``budget`` seconds
    once one warm fit is in. ``fit_once`` returns draws (chain, draw) per parameter and statistics."""
    fits: list[dict[str, Any]] = []
    for i, seed in enumerate(seeds):
        if budget is not None and len(fits) >= 2 and sum(f["wall"] for f in fits) > budget:
            log(f"{name}: {sum(f['wall'] for f in fits):.0f} s spent, over the {budget:.0f} s budget: no more fits")
            break
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Timer() as tm:
                rec = fit_once(seed)
        rec.update(seed=seed, cold=i == 0, wall=tm.wall, cpu=tm.cpu, load=tm.load, compile=tm.compile)
        rec["warnings"] = sorted({f"{w.category.__name__}: {str(w.message)[:300]}" for w in caught})
        if name not in NOT_MCMC:
            rec.update(posterior_metrics(rec["draws"]))
        fits.append(rec)
        ess = (
            f", min bulk ESS {rec['min_ess_bulk']:.0f}, max r-hat {rec['max_r_hat']:.4f}"
            if "min_ess_bulk" in rec
            else ""
        )
        log(
            f"{name} seed={seed} {'cold' if i == 0 else 'warm'}: {tm.wall:.2f}s (cpu {tm.cpu:.1f}s, jax compile "
            f"{tm.compile:.1f}s, load {tm.load:.1f}){ess}, div {rec.get('divergences', 0)}, "
            f"grad/draw {rec.get('grad_per_draw', float('nan')):.1f}"
        )
    return fits


# ------------------------------------------------------------ bayescale


def bayescale_fitter(runs: Any, method: str, warmup: int, draws: int) -> Callable[[int], dict[str, Any]]:
    import numpy as np

    import bayescale as bs

    spec = bs.load_spec("chinchilla")

    def fit_once(seed: int) -> dict[str, Any]:
        f = bs.fit(spec, runs, seed=seed, method=method, warmup=warmup, draws=draws)
        out: dict[str, Any] = {"draws": {p: np.asarray(f.posterior[p].values) for p in PARAMS}, "dtype": "float64"}
        if method == "nuts":
            stats = f.idata.sample_stats
            out["divergences"] = int(stats["diverging"].values.sum())
            out["grad_per_draw"] = float(np.mean(stats["n_steps"].values))
        if method == "psis":
            out["pareto_k"] = float(f.diagnostics()["pareto_k"])
        return out

    return fit_once


# --------------------------------------------------------------- NumPyro


def numpyro_fitter(data: tuple, dense: bool, warmup: int, draws: int) -> Callable[[int], dict[str, Any]]:
    """Plain NumPyro as a user writes it (a new ``MCMC`` per fit, NumPyro's default float32)."""
    import jax
    import numpy as np
    from numpyro.infer import MCMC, NUTS

    logN, logD, y = (jax.numpy.asarray(v) for v in data)

    def fit_once(seed: int) -> dict[str, Any]:
        mcmc = MCMC(
            NUTS(plain_numpyro_model, dense_mass=dense),
            num_warmup=warmup,
            num_samples=draws,
            num_chains=CHAINS,
            progress_bar=False,
        )
        mcmc.run(jax.random.PRNGKey(seed), logN, logD, y, extra_fields=("diverging", "num_steps"))
        samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
        ex = mcmc.get_extra_fields(group_by_chain=True)
        return {
            "draws": samples,
            "divergences": int(np.asarray(ex["diverging"]).sum()),
            "grad_per_draw": float(np.mean(np.asarray(ex["num_steps"]))),
            "dtype": str(samples["E"].dtype),
        }

    return fit_once


# --------------------------------------------------------------- BlackJAX


def _blackjax_warmup(kind: str, logdensity: Callable) -> Any:
    import blackjax

    if kind == "blackjax":
        return blackjax.window_adaptation(blackjax.nuts, logdensity, is_mass_matrix_diagonal=True)
    if kind in ("blackjax_lowrank", "blackjax_lowrank_last"):
        return blackjax.window_adaptation_low_rank(blackjax.nuts, logdensity)
    if kind == "blackjax_pathfinder":
        return blackjax.pathfinder_adaptation(blackjax.nuts, logdensity)
    raise ValueError(kind)


def blackjax_fitter(kind: str, data: tuple, warmup: int, draws: int) -> Callable[[int], dict[str, Any]]:
    """BlackJAX NUTS on the plain model's potential (float64), one compiled run of all chains
    (``pmap`` over the host devices, as NumPyro's parallel chains), reused by every fit."""
    import blackjax
    import jax
    import jax.numpy as jnp
    import numpy as np
    from numpyro.infer.util import initialize_model

    with jax.enable_x64(True):
        args = tuple(jnp.asarray(v, dtype=jnp.float64) for v in data)
        info = initialize_model(jax.random.PRNGKey(0), plain_numpyro_model, model_args=args, dynamic_args=True)
    potential_gen, constrain_gen = info.potential_fn, info.postprocess_fn
    names = sorted(info.param_info.z)

    def one_chain(key: Any, z0: Any, *args: Any) -> Any:
        def logdensity(z: Any) -> Any:
            return -potential_gen(*args)(z)

        warm_key, draw_key = jax.random.split(key)
        (state, params), trace = _blackjax_warmup(kind, logdensity).run(warm_key, z0, num_steps=warmup)
        if kind == "blackjax_lowrank_last":
            # Sample on from the warmup's last position, not from the translation mu* the low-rank
            # warmup re-initialises its chain at (which left chains outside the typical set here).
            state = blackjax.nuts.init(jax.tree.map(lambda x: x[-1], trace.state.position), logdensity)
        nuts = blackjax.nuts(logdensity, **params)

        def step(st: Any, k: Any) -> Any:
            st, inf = nuts.step(k, st)
            return st, (constrain_gen(*args)(st.position), inf.num_integration_steps, inf.is_divergent)

        _, out = jax.lax.scan(step, state, jax.random.split(draw_key, draws))
        return out

    run = jax.pmap(one_chain, in_axes=(0, 0) + (None,) * len(args))

    def fit_once(seed: int) -> dict[str, Any]:
        rng = np.random.default_rng(seed)
        with jax.enable_x64(True):
            # NumPyro's default start: uniform(-2, 2) in the unconstrained space, one point per chain.
            z0 = {n: jnp.asarray(rng.uniform(-2, 2, CHAINS)) for n in names}
            keys = jax.random.split(jax.random.PRNGKey(seed), CHAINS)
            pos, steps, div = run(keys, z0, *args)
            pos = {p: np.asarray(pos[p]) for p in PARAMS}
        return {
            "draws": pos,
            "divergences": int(np.asarray(div).sum()),
            "grad_per_draw": float(np.mean(np.asarray(steps))),
            "dtype": str(pos["E"].dtype),
        }

    return fit_once


# ----------------------------------------------------------------- nutpie


def nutpie_fitter(
    runs: Any, low_rank: bool, warmup: int, draws: int, target_accept: float | None = None
) -> Callable[[int], dict[str, Any]]:
    """nutpie on bayescale's PyMC model; the first fit compiles it (numba), so the cold fit's time
    includes the compilation and warm fits reuse it. ``target_accept`` None: nutpie's default (0.8)."""
    options = {} if target_accept is None else {"target_accept": target_accept}
    import numpy as np
    import nutpie

    import bayescale as bs
    from bayescale.pymc_backend import to_pymc

    compiled: list[Any] = []

    def fit_once(seed: int) -> dict[str, Any]:
        if not compiled:
            compiled.append(nutpie.compile_pymc_model(to_pymc(bs.load_spec("chinchilla"), runs)))
        idata = nutpie.sample(
            compiled[0],
            draws=draws,
            tune=warmup,
            chains=CHAINS,
            cores=CHAINS,
            seed=seed,
            save_warmup=False,
            progress_bar=False,
            low_rank_modified_mass_matrix=low_rank,
            **options,
        )
        stats = idata.sample_stats
        return {
            "draws": {p: np.asarray(idata.posterior[p].values) for p in PARAMS},
            "divergences": int(stats["diverging"].values.sum()),
            "grad_per_draw": float(np.mean(stats["n_steps"].values)),
            "dtype": str(idata.posterior["E"].dtype),
        }

    return fit_once


def check_same_pymc_model(runs: Any, data: tuple) -> float:
    """Max |difference| of the log joint density (natural scale, no Jacobian) between bayescale's
    PyMC model and the plain NumPyro model, at two points."""
    import jax
    import numpy as np
    from numpyro.infer.util import log_density

    import bayescale as bs
    from bayescale.pymc_backend import to_pymc

    model = to_pymc(bs.load_spec("chinchilla"), runs)
    logp = model.compile_logp(jacobian=False)
    worst = 0.0
    for point in (
        {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.37, "sigma": 0.02},
        {"E": 1.2, "A": 50.0, "B": 90.0, "alpha": 0.2, "beta": 0.25, "sigma": 0.1},
    ):
        values = {v.name: np.log(point[v.name.removesuffix("_log__")]) for v in model.value_vars}
        with jax.enable_x64(True):
            plain, _ = log_density(plain_numpyro_model, tuple(np.asarray(v) for v in data), {}, point)
        worst = max(worst, abs(float(logp(values)) - float(plain)))
    return worst


# ------------------------------------------------------------- summaries


def summarise(fits: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Cold and warm times, ESS, r-hat, divergences and gradient evaluations of one method's fits."""
    med = statistics.median
    nan = float("nan")
    warm = list(fits[1:]) or list(fits)
    out: dict[str, Any] = {
        "n": len(fits),
        "cold_wall": fits[0]["wall"],
        "warm_wall": med([f["wall"] for f in warm]),
        "warm_cpu": med([f["cpu"] for f in warm]),
        "warm_compile": med([f["compile"] for f in warm]),
        "load": max(f["load"] for f in fits),
        "dtype": fits[0].get("dtype", ""),
        "divergences": [f.get("divergences", 0) for f in fits],
        "grad_per_draw": med([f.get("grad_per_draw", nan) for f in fits]),
        "pareto_k": med([f.get("pareto_k", nan) for f in fits]),
    }
    if "min_ess_bulk" in fits[0]:
        out.update(
            min_ess_bulk=med([f["min_ess_bulk"] for f in fits]),
            min_ess_tail=med([f["min_ess_tail"] for f in fits]),
            ess_per_s=med([f["min_ess_bulk"] / f["wall"] for f in warm]),
            ess_per_cpu=med([f["min_ess_bulk"] / f["cpu"] for f in warm]),
            max_r_hat=max(f["max_r_hat"] for f in fits),
            clean=sum(f["max_r_hat"] <= 1.01 and f.get("divergences", 0) == 0 for f in fits),
        )
    return out


def compare_to_reference(results: dict[str, Any], drawn: Mapping[str, list], log: Callable[[str], None]) -> None:
    """Each method's pooled draws against bayescale's pooled default fits; bayescale's own row: its
    first fit against the pool of its others (the Monte Carlo noise of one fit)."""
    ref_fits = drawn.get("bayescale")
    if not ref_fits:
        return
    reference = pooled(ref_fits)
    for name, fits in drawn.items():
        if name == "bayescale":
            if len(fits) < 2:
                continue
            agree = agreement(pooled(fits[1:]), fits[0]["draws"])
            agree["what"] = "first fit against its other fits"
        else:
            agree = agreement(reference, pooled(fits))
        results["methods"][name]["agreement"] = agree
        log(
            f"{name}: max |mean diff|/sd {agree['max_shift']:.3f} ({agree['max_shift_param']}), worst sd ratio "
            f"{agree['worst_sd_ratio']:.3f} ({agree['worst_sd_ratio_param']}): {'agrees' if agree['agrees'] else 'DISAGREES'}"
        )


# ------------------------------------------------------------- rendering


def _f(x: float, fmt: str = ".2f") -> str:
    return "n/a" if x is None or x != x else format(x, fmt)


def render(results: Mapping[str, Any]) -> str:
    """The subsection's markdown (heading included) for one run."""
    m = results["methods"]
    vers = results["versions"]
    machine = results["machine"]
    S = {k: summarise(v["fits"]) for k, v in m.items() if v.get("fits")}
    base = S.get("numpyro", {}).get("ess_per_s")
    s = results["settings"]
    L = [
        f"### {LABEL}",
        "",
        f"Run on {results['date']} at commit `{results['commit']}` with `{results['command']}`"
        + (" (**quick mode**: fewer draws and fits)" if results.get("quick") else "")
        + f", on {machine.get('CPU', '?')}, {machine.get('cores', '?')}, {machine.get('RAM', '?')}, JAX "
        f"{machine.get('JAX devices', '?')} (`bs.set_host_device_count(4)`: one XLA host device per chain), "
        f"BLAS limited to one thread; `uptime` before: {results['uptime_before']}; after: {results.get('uptime_after', '?')}.",
        "",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + ".",
        "",
        f"{CHAINS} chains x {s['warmup']} warmup + {s['draws']} draws for every MCMC method, on "
        f"{results['n_runs']} runs, the same model (priors and Student-t likelihood of the bundled `chinchilla` "
        f"spec; the plain NumPyro model's log density differs from bayescale's by {results['model_check']['numpyro']:.1e} "
        f"and the PyMC model's from the plain one by {_f(results['model_check'].get('pymc', float('nan')), '.1e')}). "
        "*Cold*: the first fit in the process (compilation included; for nutpie the numba compilation of the model). "
        "*Warm*: median over the later fits (new seeds). ESS and r-hat by ArviZ over (E, A, B, alpha, beta, sigma), "
        "the median over fits; ESS/s = min bulk ESS / wall seconds of each warm fit, median. *Grad/draw*: leapfrog "
        "steps per draw after warmup (one gradient each). *Clean fits*: fits with max r-hat <= 1.01 and no divergence. "
        "*Agreement*: the method's draws pooled over its fits against "
        "bayescale's default fits pooled, per parameter |mean difference| / reference sd (the largest shown, with its "
        f"parameter) and sd / reference sd (the one furthest from 1); *agrees* when every shift < {MAX_SHIFT} and every "
        f"sd ratio within {SD_RATIO[0]}-{SD_RATIO[1]}. bayescale's own row compares its first fit with its other fits.",
        "",
        "| method | fits | dtype | wall cold (s) | wall warm (s) | CPU s warm | min bulk ESS | min tail ESS | min ESS / warm s | vs plain NumPyro | min ESS / CPU s | max r-hat | divergences per fit | clean fits | grad/draw | max shift / sd | sd ratio | agrees? | Pareto k |",
        "|" + " --- |" * 19,
    ]
    for name, v in m.items():
        if v.get("skipped"):
            L.append(f"| {METHODS[name]} | skipped: {v['skipped']} |" + " |" * 17)
            continue
        L.append(_row(name, S[name], v.get("agreement"), base))
    L.append("")
    L += _warnings(m)
    return "\n".join(L).rstrip() + "\n"


def _row(name: str, s: Mapping[str, Any], agree: Mapping[str, Any] | None, base: float | None) -> str:
    mcmc = "min_ess_bulk" in s
    rel = s["ess_per_s"] / base if mcmc and base else float("nan")
    shift = f"{agree['max_shift']:.3f} ({agree['max_shift_param']})" if agree else "n/a (no reference run)"
    ratio = f"{agree['worst_sd_ratio']:.3f} ({agree['worst_sd_ratio_param']})" if agree else ""
    agrees = ("yes" if agree["agrees"] else "**no**") if agree else ""
    cells = [
        METHODS[name],
        str(s["n"]),
        s["dtype"],
        _f(s["cold_wall"]),
        _f(s["warm_wall"]),
        _f(s["warm_cpu"], ".1f"),
        _f(s["min_ess_bulk"], ".0f") if mcmc else "(independent draws)",
        _f(s["min_ess_tail"], ".0f") if mcmc else "",
        _f(s["ess_per_s"], ".0f") if mcmc else "",
        f"{rel:.1f}x" if rel == rel else "",
        _f(s["ess_per_cpu"], ".0f") if mcmc else "",
        _f(s["max_r_hat"], ".4f") if mcmc else "",
        ", ".join(map(str, s["divergences"])) if mcmc else "",
        f"{s['clean']}/{s['n']}" if mcmc else "",
        _f(s["grad_per_draw"], ".1f") if mcmc else "",
        shift,
        ratio,
        agrees,
        _f(s["pareto_k"], ".2f") if name == "psis" else "",
    ]
    return "| " + " | ".join(cells) + " |"


def _warnings(m: Mapping[str, Any]) -> list[str]:
    out = []
    for name, v in m.items():
        # One line per kind of warning: the message up to its numbers (" (F = 3.6, ...") or first full stop.
        seen = sorted(
            {re.split(r" \(|\. ", w, maxsplit=1)[0] for f in v.get("fits", []) for w in f.get("warnings", [])}
        )
        if seen:
            out.append(f"- {name}: " + "; ".join(seen))
    return ["Warnings raised during the fits:", "", *out, ""] if out else []


# ------------------------------------------------------- BENCHMARKS.md


def write_subsection(out: Path, block: str) -> None:
    """Replace this benchmark's marked block in the fit-speed section, or insert it at the section's
    end (before the next ``## `` heading); everything else in the file stays as it is."""
    text = out.read_text() if out.exists() else "# Benchmarks\n\n"
    marked = f"{MARKERS[0]}\n{block.rstrip()}\n{MARKERS[1]}\n"
    if MARKERS[0] in text:
        head, rest = text.split(MARKERS[0], 1)
        tail = rest.split(MARKERS[1], 1)[1].lstrip("\n")
        out.write_text(head + marked + tail)
        return
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        out.write_text(text.rstrip("\n") + f"\n\n{SECTION}\n\n" + marked)
        return
    end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    before = "".join(lines[:end]).rstrip("\n") + "\n\n"
    after = "".join(lines[end:])
    out.write_text(before + marked + ("\n" + after if after else ""))


# ------------------------------------------------------------------ main


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = bench_fit.versions()
    for name in ("blackjax", "nutpie", "optax"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    except OSError:
        return "?"
    return sha.strip() + (" + uncommitted changes" if dirty.strip() else "")


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _fitter(name: str, runs: Any, data: tuple, warmup: int, draws: int) -> Callable[[int], dict[str, Any]]:
    if name == "bayescale":
        return bayescale_fitter(runs, "nuts", warmup, draws)
    if name in NOT_MCMC:
        return bayescale_fitter(runs, name, warmup, draws)
    if name.startswith("numpyro"):
        return numpyro_fitter(data, name == "numpyro_dense", warmup, draws)
    if name.startswith("blackjax"):
        return blackjax_fitter(name, data, warmup, draws)
    return nutpie_fitter(runs, name != "nutpie", warmup, draws, 0.9 if name == "nutpie_lowrank_09" else None)


def run_all(args: argparse.Namespace, command: str, log: Callable[[str], None]) -> dict[str, Any]:
    import numpy as np

    import bayescale as bs

    runs = bs.datasets.load_chinchilla()
    data = tuple(np.log(runs[c].to_numpy(dtype=np.float64)) for c in ("N", "D", "loss"))  # log N, log D, log loss
    results: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "command": command,
        "quick": args.quick,
        "machine": machine_info(),
        "versions": _versions(),
        "uptime_before": _uptime(),
        "n_runs": len(runs),
        "settings": {"warmup": args.warmup, "draws": args.draws, "fits": args.fits},
        "model_check": {"numpyro": check_same_model(*data)},
        "methods": {},
    }
    if results["model_check"]["numpyro"] > 1e-6:
        raise SystemExit(f"the plain NumPyro model is not bayescale's: {results['model_check']['numpyro']:.2e}")
    if not missing_packages("nutpie"):
        results["model_check"]["pymc"] = check_same_pymc_model(runs, data)
        if results["model_check"]["pymc"] > 1e-6:
            raise SystemExit(f"bayescale's PyMC model is not the plain model: {results['model_check']['pymc']:.2e}")
    log(f"{len(runs)} runs; model checks {results['model_check']}")
    drawn: dict[str, list] = {}
    for name in args.only:
        lacking = missing_packages(name)
        if lacking:
            reason = f"{', '.join(lacking)} not installed"
            log(f"{name}: skipped ({reason})")
            results["methods"][name] = {"skipped": reason}
            continue
        fit_once = _fitter(name, runs, data, args.warmup, args.draws)
        fits = time_fits(name, fit_once, range(args.fits), log, args.method_budget)
        drawn[name] = fits
        results["methods"][name] = {"fits": [{k: v for k, v in f.items() if k != "draws"} for f in fits]}
    compare_to_reference(results, drawn, log)
    results["uptime_after"] = _uptime()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 fits each, 300 warmup + 300 draws: for debugging")
    ap.add_argument("--only", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    ap.add_argument("--fits", type=int, default=None, help="fits per method, the first cold (default 4, quick 2)")
    ap.add_argument("--warmup", type=int, default=None, help=f"warmup steps (default {bench_fit.WARMUP}, quick 300)")
    ap.add_argument("--draws", type=int, default=None, help=f"draws per chain (default {bench_fit.DRAWS}, quick 300)")
    ap.add_argument("--method-budget", type=float, default=None, help="no more fits of a method past this many s")
    ap.add_argument("--out", default=str(REPO / "BENCHMARKS.md"), help="markdown file to update")
    ap.add_argument("--json", default=None, help="also write the raw results (no draws) as JSON here")
    ap.add_argument("--render-json", default=None, help="re-render the subsection from an earlier --json and exit")
    args = ap.parse_args(argv)
    if args.render_json:
        body = render(json.loads(Path(args.render_json).read_text()))
        write_subsection(Path(args.out), body)
        print(body)
        return 0
    args.only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = sorted(set(args.only) - set(METHODS))
    if unknown:
        ap.error(f"--only: unknown {unknown}; choose from {list(METHODS)}")
    if "bayescale" in args.only:  # the reference first
        args.only = ["bayescale"] + [m for m in args.only if m != "bayescale"]
    args.fits = args.fits or (2 if args.quick else 4)
    args.warmup = args.warmup or (300 if args.quick else bench_fit.WARMUP)
    args.draws = args.draws or (300 if args.quick else bench_fit.DRAWS)
    script = os.path.relpath(__file__, REPO) if Path(__file__).resolve().is_relative_to(REPO) else __file__
    command = "python " + " ".join(shlex.quote(a) for a in [script, *(argv if argv is not None else sys.argv[1:])])

    bench_fit._set_data_env()
    import bayescale as bs

    bs.set_host_device_count(CHAINS)  # one XLA host device per chain, before JAX starts (as bench_fit)
    bench_fit._watch_jax_compiles()
    from threadpoolctl import threadpool_limits

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    with threadpool_limits(1):  # one BLAS thread for every method
        results = run_all(args, command, log)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    body = render(results)
    write_subsection(Path(args.out), body)
    print(body)
    log(f"wrote subsection {LABEL!r} of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
