"""A fit's result in ArviZ layout and its provenance: the draws, sampler statistics, pointwise
log likelihood and log prior, the runs, and what made them (spec, data hash, method, seed, versions).
Shared by the NumPyro fit (:mod:`bayescale.inference`), the PyMC backend and fits from fixed draws
(:mod:`bayescale.testing`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
import numpyro
import pandas as pd

from . import __version__, _arviz
from ._words import join_names
from .data import runs_hash
from .errors import BayescaleError
from .model import OBS, log_prior
from .spec import ModelSpec


def _stringify(x: Any) -> str:
    return json.dumps(x, sort_keys=True, default=str)


def fit_attrs(
    spec: ModelSpec,
    table: pd.DataFrame,
    *,
    method: str,
    seed: int,
    seconds: float,
    identified: Sequence[str],
    extra_versions: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Provenance stored with every fit: spec, its ids, data hash, method, seed, timings, versions."""
    return {
        "bayescale_spec": spec.to_json(),
        "spec_id": spec.id,
        "model_id": spec.model_id,
        "spec_path": spec.path or "",
        "method": method,
        "seed": int(seed),
        "runs_hash": runs_hash(table),
        "flops_convention": table.attrs.get("flops_convention", ""),
        "sampling_seconds": float(seconds),
        "identified": json.dumps(list(identified)),
        "versions": _stringify({**_versions(), **(extra_versions or {})}),
        **extra,
    }


def build_idata(
    spec: ModelSpec,
    table: pd.DataFrame,
    samples: Mapping[str, np.ndarray],
    stats: Mapping[str, np.ndarray] | None,
    ll: np.ndarray,
    y: np.ndarray,
    attrs: Mapping[str, Any],
) -> Any:
    """The result in ArviZ layout: posterior, sample_stats, log_likelihood, log_prior (the spec's
    priors at each draw, for power-scaling sensitivity), observed and constant data."""
    const_cols = [c for c in dict.fromkeys(["N", "D", "C", *spec.columns]) if c in table.columns]
    kept = {c: table[c].to_numpy(dtype=np.float64) for c in const_cols} | _other_columns(table, const_cols)
    return _arviz.from_draws(
        samples,
        log_prior=log_prior(spec, samples),
        sample_stats=stats or None,
        log_likelihood={OBS: np.asarray(ll, dtype=np.float64)},
        observed_data={OBS: np.asarray(y, dtype=np.float64)},
        constant_data=kept,
        coords={"run": table["run_id"].astype(str).tolist()},
        dims={OBS: ["run"], **{c: ["run"] for c in kept}},
        attrs=attrs,
    )


def _other_columns(table: pd.DataFrame, law_columns: list[str]) -> dict[str, np.ndarray]:
    """The runs table's other columns (``seed``, ``trunk_id``, ``C_branch``, a recipe, notes...), so that
    a saved fit keeps the whole table it was fitted to: ``suggest`` prices a WSD branch from its trunk's
    rows. Numbers as floats, anything else as text (blank cells as ""). A name HDF5 cannot hold (with
    "/") is left out."""
    out = {}
    for c in table.columns:
        if not isinstance(c, str) or c in law_columns or c in ("run_id", "loss") or "/" in c:
            continue
        col = table[c]
        numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        out[c] = col.to_numpy(dtype=np.float64) if numeric else col.astype("string").fillna("").to_numpy(dtype=str)
    return out


def _versions() -> dict[str, str]:
    return {"bayescale": __version__, "numpyro": numpyro.__version__, "jax": jax.__version__, "arviz": _arviz.version()}


def require_fit_groups(idata: Any, path: Any) -> None:
    """A :class:`BayescaleError` unless the fit file at ``path`` holds the groups a fit is read from."""
    missing = [g for g in ("posterior", "constant_data", "observed_data") if g not in idata.groups()]
    if missing:
        raise BayescaleError(
            f"{path} is not a whole bayescale fit file: it lacks the group{'s' * (len(missing) > 1)} "
            f"{join_names(missing, quoted=True)} (a file edited or cut short); fit again (`bayescale fit`)"
        )


def runs_from_idata(idata: Any) -> pd.DataFrame:
    """The runs table a saved fit was fitted to, from its ``constant_data`` and ``observed_data``."""
    const = idata.constant_data
    frame = pd.DataFrame({"run_id": [str(r) for r in const["run"].values]})
    for v in const.data_vars:
        values = const[v].values
        # Text columns come back as text, blank cells as missing (as a CSV's are read).
        frame[v] = values if values.dtype.kind == "f" else pd.Series(values.astype(str)).replace("", np.nan).to_numpy()
    frame["loss"] = np.exp(idata.observed_data[OBS].values)
    return frame
