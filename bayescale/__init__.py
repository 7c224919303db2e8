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
import os as _os
from typing import Any

__version__ = "0.1.0"

# Four host CPU devices so NUTS runs its four default chains in parallel (one
# thread each) instead of vectorised in one. This only takes effect when JAX has
# not started yet and the user has not chosen a device count; it does not touch GPUs.
if "xla_force_host_platform_device_count" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (
        _os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()

from .errors import (  # noqa: E402
    BayescaleError,
    ConvergenceWarning,
    DatasetError,
    IdentifiabilityWarning,
    LawError,
    RunsTableError,
    SpecError,
    StaleFitError,
)

# Public name -> module that defines it; imported on first access.
_LAZY = {
    "append_run": "data",
    "load_runs": "data",
    "save_runs": "data",
    "Fit": "inference",
    "fit": "inference",
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
    "compute_optimal": "decisions",
    "check": "checks",
    "leave_largest_out": "checks",
    "suggest": "active",
    "run_loop": "active",
    "Target": "active",
    "Curve": "curves",
    "fit_curves": "curves",
    "fit_ensemble": "curves",
}
_SUBMODULES = {"active", "checks", "curves", "data", "datasets", "decisions", "inference", "laws", "likelihoods", "plots", "priors", "report", "spec", "testing"}


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
    "ConvergenceWarning",
    "DatasetError",
    "IdentifiabilityWarning",
    "LawError",
    "RunsTableError",
    "SpecError",
    "StaleFitError",
    "__version__",
    *sorted(_LAZY),
]
