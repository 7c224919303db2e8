"""The loop config file's checks (:func:`bayescale.loop.load_loop_config`): the file read as TOML, and every key,
table and value well-typed and known, so that a bad config fails in one line before round 0, not as a traceback
when the first pilot trains."""

from __future__ import annotations

import inspect
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from ._io import toml_text
from ._words import join_names
from .design.planners import PlanOptions
from .design.selection import StopRule
from .errors import BayescaleError
from .runner.train import train_pilot  # no torch: that is imported only when a pilot trains
from .spec import ModelSpec


def config_dict(source: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, Any], Path]:
    """The config as a dict, and the folder its paths are relative to (the file's; "." for a mapping)."""
    if isinstance(source, Mapping):
        return dict(source), Path(".")
    path = Path(source)
    if path.is_dir():
        raise BayescaleError(f"loop config {str(path)!r} is a folder; give the loop's TOML file")
    if not path.is_file():
        raise BayescaleError(f"loop config file {str(path)!r} not found")
    try:
        return tomllib.loads(toml_text(path, "loop config")), path.resolve().parent
    except tomllib.TOMLDecodeError as e:
        raise BayescaleError(f"loop config {path}: not valid TOML ({e})") from None
    except ValueError as e:  # not UTF-8
        raise BayescaleError(str(e)) from None


def _number(value: Any, where: str, *, integer: bool = False, zero: bool = False) -> None:
    """``value`` is a finite number > 0 (an integer, >= 0 with ``zero``), or one line saying it is not."""
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and (value >= 0 if zero else value > 0)):
        raise BayescaleError(f"loop config: {where} must be {kind} {'>= 0' if zero else '> 0'}, got {value!r}")


def validate_values(d: Mapping[str, Any]) -> None:
    """The loop config's scalars and tables well-typed, and the options of [fit], [suggest] and
    [simulate] known, so a bad config fails before round 0 (the law's parameters in [simulate]
    are checked against the spec by :func:`run_loop`)."""
    if d.get("tolerance") is not None:
        _number(d["tolerance"], "tolerance")
    for key in ("seed", "max_rounds"):
        if key in d:
            _number(d[key], key, integer=True, zero=True)
    for key in ("fit", "trainer", "simulate", "suggest"):
        if key in d and not isinstance(d[key], Mapping):
            raise BayescaleError(f"loop config: [{key}] must be a table, got {d[key]!r}")
    for key, kinds, what in (
        ("runs", (str, os.PathLike), "a path"),
        ("spec", (str, os.PathLike, Mapping, ModelSpec), "a spec's name or path"),
    ):
        if not isinstance(d[key], kinds):
            raise BayescaleError(f"loop config: {key} must be {what} (a quoted string), got {d[key]!r}")
    options = {f.name for f in (*fields(PlanOptions), *fields(StopRule))} - {"tolerance"}
    allowed = {
        "fit": {"chains", "warmup", "draws", "progress"},
        "suggest": options | {"candidates", "cost", "planner"},
        "trainer": _trainer_keys(),
    }
    for key, names in allowed.items():
        unknown = sorted(set(d.get(key, {})) - names)
        if unknown:
            raise BayescaleError(
                f"loop config: [{key}] has unknown keys {join_names(unknown, quoted=True)}; "
                f"allowed {join_names(sorted(names), quoted=True, limit=40)}"
            )
    for name, value in d.get("simulate", {}).items():
        if name == "seed":
            _number(value, "[simulate] seed", integer=True, zero=True)
        else:
            _number(value, f"[simulate] {name}")


def _trainer_keys() -> set[str]:
    """What [trainer] may set: :func:`bayescale.runner.train_pilot`'s options (the loop gives each pilot its size)."""
    return set(inspect.signature(train_pilot).parameters) - {"n_params", "tokens"}


def validate_simulate(sim: Mapping[str, Any], spec: ModelSpec) -> None:
    """[simulate] gives every parameter of the spec's law and nothing else (besides sigma, seed, df)."""
    params = list(spec.law.params)
    missing = [p for p in params if p not in sim]
    unknown = sorted(set(sim) - set(params) - {"sigma", "seed", "df"})
    if missing or unknown:
        raise BayescaleError(
            f"loop config: [simulate] must give each parameter of law {spec.law.name!r} ({join_names(params)}), "
            "and optionally sigma, seed and df; "
            + "; ".join(
                [f"missing {join_names(missing)}"] * bool(missing)
                + [f"unknown {join_names(unknown, quoted=True)}"] * bool(unknown)
            )
        )
