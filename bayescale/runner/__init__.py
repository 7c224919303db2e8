"""The pilot runner: train real pilot language models and add them to a runs table.

``bayescale.runner`` needs the ``runner`` extra (torch, transformers, tokenizers); importing it
imports none of them until a pilot is trained, and ``import bayescale`` never does.

- :func:`run_pilot` trains one pilot (Llama-style or GPT-2 decoder from a ``transformers`` config, or a
  torch LSTM) with the ``transformers`` Trainer on a locally tokenized corpus and appends its row.
- :func:`train_wsd` trains a warmup-stable-decay trunk and a cooldown branch per point (one row each);
  :func:`train_branch` trains one more branch later, off a trunk that kept its checkpoints.
- :func:`run_sweep` runs a sweep of pilots (a TOML file, :func:`load_sweep`) on a local process pool,
  a Ray cluster or Slurm (see :mod:`bayescale.runner.sweep` for which to use when).
- :func:`shape_for`, :func:`hyper_for` and :func:`training_flops` are the documented rules for shape,
  hyperparameters and FLOPs.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "run_pilot": "train",
    "train_pilot": "train",
    "build_pilot": "train",
    "train_model": "train",
    "record_pilot": "train",
    "pilot_row": "train",
    "save_pilot": "train",
    "plan_pilot": "plan",
    "build_model": "models",
    "count_params": "models",
    "curves_dir": "train",
    "plain_torch_loop": "plain_loop",
    "peak_bf16_flops": "hardware",
    "mfu": "hardware",
    "unique_windows": "plan",
    "PilotData": "train",
    "PilotError": "models",
    "PilotPlan": "plan",
    "PilotResult": "train",
    "Trained": "train",
    "run_sweep": "sweep",
    "run_slurm": "sweep",
    "train_wsd": "wsd",
    "plan_wsd": "wsd",
    "train_branch": "wsd",
    "plan_branch": "wsd",
    "load_sweep": "sweep",
    "Sweep": "sweep",
    "SweepError": "sweep",
    "SweepReport": "sweep",
    # earlier names of load_sweep, Sweep and SweepError
    "load_plan": "sweep",
    "Plan": "sweep",
    "PlanError": "sweep",
    "shape_for": "shapes",
    "hyper_for": "shapes",
    "training_flops": "shapes",
    "forward_flops_per_token": "shapes",
    "non_embedding_params": "shapes",
    "Shape": "shapes",
    "Hyper": "shapes",
    "ShapeError": "shapes",
    "ARCHES": "shapes",
    "token_streams": "corpus",
    "load_corpus": "corpus",
    "CorpusError": "corpus",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)  # noqa: PLE0605 (the lazy names)
