"""bayescale: Bayesian scaling laws with honest uncertainty.

Fit a scaling law to small pilot runs, get the posterior, and extrapolate with
credible bands::

    import bayescale as bs
    spec = bs.load_spec("models/chinchilla.toml")
    runs = bs.load_runs("data/pilot_runs.csv")
    fit = bs.fit(spec, runs, seed=0)
    band = fit.predict({"N": 7e9, "D": 1.4e12})

Importing bayescale never imports torch or transformers.
"""

__version__ = "0.1.0"

import os as _os

# Four host CPU devices so NUTS runs its four default chains in parallel (one
# thread each) instead of vectorised in one. This only takes effect when JAX has
# not started yet and the user has not chosen a device count; it does not touch GPUs.
if "xla_force_host_platform_device_count" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (
        _os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()

from . import datasets, laws
from .data import append_run, load_runs, save_runs
from .errors import (
    BayescaleError,
    ConvergenceWarning,
    DatasetError,
    IdentifiabilityWarning,
    LawError,
    RunsTableError,
    SpecError,
    StaleFitError,
)
from .inference import Fit, fit
from .laws import Law, get_law, list_laws, register_law
from .priors import Prior
from .spec import ModelSpec, bundled_specs, load_spec

__all__ = [
    "BayescaleError",
    "ConvergenceWarning",
    "DatasetError",
    "Fit",
    "IdentifiabilityWarning",
    "Law",
    "LawError",
    "ModelSpec",
    "Prior",
    "RunsTableError",
    "SpecError",
    "StaleFitError",
    "__version__",
    "append_run",
    "bundled_specs",
    "datasets",
    "fit",
    "get_law",
    "laws",
    "list_laws",
    "load_runs",
    "load_spec",
    "register_law",
    "save_runs",
]
