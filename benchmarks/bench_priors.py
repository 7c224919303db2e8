#!/usr/bin/env python
"""Data-scaled priors against the bundled ones and a Huber point fit, leave-largest-out on public data.

For Chinchilla (Epoch's digitisation), the GPT-3 curves and each Porian et al. configuration (the
datasets and split of ``bench_extrapolation.py``: fit on the 80% of runs with the least compute,
predict the 20% with the most), three point predictions of each held-out run's loss:

* ``fixed``: the posterior median of ``models/chinchilla.toml`` (its written priors);
* ``runs``: the same spec with ``[priors] scale = "runs"`` and the five law priors left out, so
  they are placed on the scale of the training runs (:mod:`bayescale.scaled_priors`);
* ``huber``: the Epoch-style Huber fit of ``benchmarks/baselines.py``.

Scored by the median |relative error| of the predicted loss on the held-out runs. Bayesian fits use
``method="laplace"`` (seconds per fit); pass ``--method nuts`` for the full posterior.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_priors.py --data ../shared/data [--method laplace] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import baselines  # noqa: E402
import bench_extrapolation as bx  # noqa: E402

import bayescale as bs  # noqa: E402


def specs() -> dict[str, bs.ModelSpec]:
    """The bundled Chinchilla spec, and the same spec with its law priors placed on the runs' scale."""
    d = tomllib.loads((REPO / "models" / "chinchilla.toml").read_text())
    scaled = dict(d, name="chinchilla_runs", priors={"scale": "runs"})
    return {"fixed": bs.load_spec(d), "runs": bs.load_spec(scaled)}


def score(name: str, runs, method: str, seed: int) -> dict[str, float]:
    train, test = bx.split(runs)
    truth = test["loss"].to_numpy(float)
    out: dict[str, float] = {"n_train": len(train), "n_test": len(test)}
    for label, spec in specs().items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = bs.fit(spec, train, method=method, seed=seed)
        pred = np.median(fit.predict(test[["N", "D", "C"]]).values.reshape(-1, len(test)), axis=0)
        out[label] = float(np.median(np.abs(pred / truth - 1)))
        out[f"{label}_alpha"] = float(fit.posterior["alpha"].median())
        out[f"{label}_E"] = float(fit.posterior["E"].median())
    hub = baselines.huber_fit(train["N"], train["D"], train["loss"])
    pred = np.exp(hub.predict_log(test["N"], test["D"]))
    out["huber"] = float(np.median(np.abs(pred / truth - 1)))
    out["huber_alpha"] = float(hub.params["alpha"])
    out["huber_E"] = float(hub.params["E"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--method", default="laplace", choices=("laplace", "psis", "nuts"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    data = bx.load_datasets(Path(args.data), quick=False)
    results = {}
    for name, item in data.items():
        if item["group"] not in ("chinchilla", "gpt3", "porian"):
            continue
        t0 = time.perf_counter()
        results[name] = score(name, item["runs"], args.method, args.seed)
        r = results[name]
        print(
            f"{name:45s} fixed {r['fixed']:.4f}  runs {r['runs']:.4f}  huber {r['huber']:.4f}   "
            f"alpha {r['fixed_alpha']:.3f}/{r['runs_alpha']:.3f}/{r['huber_alpha']:.3f}  "
            f"E {r['fixed_E']:.3f}/{r['runs_E']:.3f}/{r['huber_E']:.3f}  ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    porian = [r for k, r in results.items() if k.startswith("porian")]
    if porian:
        print(
            "porian, median over configurations: "
            + "  ".join(f"{m} {np.median([r[m] for r in porian]):.4f}" for m in ("fixed", "runs", "huber"))
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
