"""bayescale: Bayesian scaling laws with honest uncertainty.

Fit a scaling law to small pilot runs, get the posterior, and extrapolate with
credible bands::

    import bayescale as bs
    spec = bs.load_spec("models/chinchilla.toml")
    runs = bs.load_runs("data/pilot_runs.csv")
    fit = bs.fit(spec, runs, seed=0)
    band = fit.predict({"N": 7e9, "D": 1.4e12})

Importing bayescale is cheap: JAX, NumPyro and ArviZ load on first use of what needs
them, and torch/transformers only with the pilot runner.
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Any

__version__ = "0.1.0"

from .errors import (
    BayescaleError,
    ConvergenceWarning,
    DatasetError,
    IdentifiabilityWarning,
    LawError,
    MisfitWarning,
    MultimodalWarning,
    RunsTableError,
    RunsTableWarning,
    SpecError,
    StaleFitError,
)

# Public name -> module that defines it; imported on first access.
_LAZY = {
    "append_run": "data",
    "load_runs": "data",
    "save_runs": "data",
    "Fit": "inference",
    "enable_compilation_cache": "inference",
    "fit": "averaging",
    "load_fit": "averaging",
    "AveragedFit": "averaging",
    "AverageSpec": "spec",
    "Law": "laws",
    "get_law": "laws",
    "list_laws": "laws",
    "register_law": "laws",
    "Prior": "priors",
    "ModelSpec": "spec",
    "bundled_specs": "spec",
    "load_spec": "spec",
    "decide": "decisions",
    "Expectation": "decisions",
    "Quantile": "decisions",
    "VaR": "decisions",
    "CVaR": "decisions",
    "Utility": "decisions",
    "compute_optimal": "frontier",
    "check": "checks",
    "leave_largest_out": "checks",
    "suggest": "design",
    "run_loop": "loop",
    "Target": "design",
    "Curve": "curves",
    "fit_curves": "curves",
    "fit_ensemble": "curves",
    "compare": "comparison",
    "Comparison": "comparison",
    "Pooling": "comparison",
}
_SUBMODULES = {
    "active",
    "averaging",
    "checks",
    "comparison",
    "curves",
    "data",
    "datasets",
    "decisions",
    "discrepancy",
    "design",
    "frontier",
    "inference",
    "laws",
    "likelihoods",
    "loop",
    "misfit",
    "model",
    "modes",
    "plots",
    "priors",
    "report",
    "spec",
    "testing",
}


_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def set_host_device_count(n: int = 4) -> None:
    """Let JAX see ``n`` CPU devices, so NUTS runs ``n`` chains in parallel (one thread each).

    The same as :func:`numpyro.set_host_device_count`, without importing JAX: it sets the
    ``XLA_FLAGS`` environment variable, which JAX reads once, when it starts. Call it first
    thing in a script or notebook; after JAX has started it changes nothing. Without it, chains
    run vectorised on one device (the same posterior, a different random stream). The
    ``bayescale`` command line calls it with 4 unless ``XLA_FLAGS`` already sets a count.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_host_device_count: n must be a positive integer, got {n!r}")
    flags = re.sub(rf"{_DEVICE_FLAG}=\S*", "", os.environ.get("XLA_FLAGS", "")).strip()
    os.environ["XLA_FLAGS"] = f"{flags} {_DEVICE_FLAG}={n}".strip()


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayescale' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)


__all__ = [
    "BayescaleError",
    "set_host_device_count",
    "ConvergenceWarning",
    "DatasetError",
    "IdentifiabilityWarning",
    "LawError",
    "MisfitWarning",
    "RunsTableWarning",
    "MultimodalWarning",
    "RunsTableError",
    "SpecError",
    "StaleFitError",
    "__version__",
    *sorted(_LAZY),
]
