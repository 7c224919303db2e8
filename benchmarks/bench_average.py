#!/usr/bin/env python
"""What the recommended law average costs against one law (issue 20), on Epoch's Chinchilla runs.

In one process: a single-law fit (``models/chinchilla.toml``) and the recommended average
(``models/recommended.toml``: five laws, leave-future-out splits, stacking, a fit of each law that
carries weight), each fitted ``--fits`` times with seeds 0, 1, ...; the first fit of each is cold
(compilation, on an empty persistent cache), the later ones warm. The average's wall time is split
into its stages (the splits' MAPs, the stacking weights, the members' fits, the misfit checks) by
timing those functions as they run. The issue's target: the whole average in at most 5x one warm
single-law fit.

Usage::

    BAYESCALE_DATA=../shared/data PYTHONPATH=. .venv/bin/python benchmarks/bench_average.py --method nuts --fits 3
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import json
import os
import shlex
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fit import machine_info, versions  # noqa: E402

import bayescale as bs  # noqa: E402
from bayescale import averaging, datasets  # noqa: E402

START, END = "<!-- bench_average:start -->", "<!-- bench_average:end -->"
#: (module, function name, stage label): the average's stages, timed where they run.
STAGES = [
    (averaging, "holdouts", "splits' MAPs"),
    (averaging, "stacking_weights", "stacking"),
    (averaging, "_fit_member", "members' fits"),
    (averaging, "warn_if_misfit", "misfit checks"),
]


def _timed(stage: str, fn: Callable, spent: dict[str, float]) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[stage] += time.perf_counter() - t

    return wrapper


def _instrument(spent: dict[str, float]) -> None:
    for module, name, stage in STAGES:
        setattr(module, name, _timed(stage, getattr(module, name), spent))


def run(method: str, fits: int) -> dict:
    spent: dict[str, float] = defaultdict(float)
    _instrument(spent)
    runs = datasets.load_chinchilla()
    out: dict = {"runs": len(runs), "method": method, "single": [], "average": [], "stages": [], "weights": None}
    for label, spec in (("single", "models/chinchilla.toml"), ("average", "models/recommended.toml")):
        for seed in range(fits):
            spent.clear()
            load = os.getloadavg()[0]
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = bs.fit(str(REPO / spec), runs, method=method, seed=seed)
            wall = time.perf_counter() - t
            out[label].append({"wall": wall, "load": max(load, os.getloadavg()[0])})
            if label == "average":
                out["stages"].append(dict(spent))
                out["weights"] = {k: round(float(v), 3) for k, v in fit.weights.items()}
            print(f"{label} seed {seed}: {wall:.2f} s {dict(spent) if label == 'average' else ''}", flush=True)
    return out


def render(res: dict, command: str) -> str:
    single_warm = float(np.median([f["wall"] for f in res["single"][1:]]))
    avg_warm = float(np.median([f["wall"] for f in res["average"][1:]]))
    stages = {k: float(np.median([s.get(k, 0.0) for s in res["stages"][1:]])) for _, _, k in STAGES}
    m = machine_info()
    v = versions()
    loads = [f["load"] for f in res["single"] + res["average"]]
    lines = [
        START,
        "### The recommended law average against one law (issue 20)",
        "",
        f"{res['date']}. `{command}` on {m['CPU']} ({m['cores']}), {m['OS']}; jax {v['jax']}, numpyro {v['numpyro']}, "
        f'scipy {v["scipy"]}. Epoch\'s Chinchilla runs ({res["runs"]}), `method="{res["method"]}"`, '
        f"{len(res['single'])} fits each in one process (the first cold on an empty compilation cache). "
        f"1-minute load average {min(loads):.1f}-{max(loads):.1f} on 2 cores (above 2: other work shared the machine).",
        "",
        "| fit | cold s | warm s (median) | warm / one warm law |",
        "|---|---:|---:|---:|",
        f"| one law (`chinchilla`) | {res['single'][0]['wall']:.2f} | {single_warm:.2f} | 1.0x |",
        f"| recommended average | {res['average'][0]['wall']:.2f} | {avg_warm:.2f} | {avg_warm / single_warm:.1f}x |",
        "",
        "Warm average by stage (median s): "
        + ", ".join(f"{k} {stages[k]:.2f}" for k in stages)
        + f"; the rest (splits, weights, draws mixing) {max(avg_warm - sum(stages.values()), 0):.2f}. "
        + f"Weights: {', '.join(f'{k} {w}' for k, w in res['weights'].items())}.",
        "",
        f"Target (average within 5x one warm law): **{'met' if avg_warm <= 5 * single_warm else 'missed'}** "
        f"({avg_warm / single_warm:.1f}x).",
        END,
    ]
    return "\n".join(lines)


def write(section: str, path: Path) -> None:
    text = path.read_text()
    if START in text:
        a, b = text.index(START), text.index(END) + len(END)
        text = text[:a] + section + text[b:]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="nuts", choices=("nuts", "laplace", "psis"))
    ap.add_argument("--fits", type=int, default=3, help="fits of each, the first cold (at least 2)")
    ap.add_argument("--json", default=None, help="also write the raw results here")
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing BENCHMARKS.md")
    args = ap.parse_args(argv)
    if args.fits < 2:
        ap.error("--fits must be at least 2 (the first fit is cold)")
    bs.set_host_device_count(4)
    bs.enable_compilation_cache(tempfile.mkdtemp(prefix="bench_average_cache_"))
    res = run(args.method, args.fits)
    res["date"] = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    section = render(
        res, "python benchmarks/bench_average.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    )
    if args.no_write:
        print(section)
    else:
        write(section, REPO / "BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
