"""Pilot plans: everything that determines one pilot (shape, hyperparameters, data, seed and run id),
resolved from a request without training anything (:func:`plan_pilot`; ``bayescale pilot --dry-run``
prints one). Needs neither torch nor transformers.
"""

from __future__ import annotations

import gc
import math
import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .corpus import TokenStreams, config_hash, token_streams
from .models import PilotError
from .shapes import ARCHES, Hyper, Shape, check_size, hyper_for, memory_bytes, non_embedding_params, shape_for

#: Held-out tokens evaluated at each point of the loss curve (a fixed prefix of the held-out split).
EVAL_TOKENS = 65536
#: Points of the eval-loss curve, log-spaced in steps (the last is the end of training).
CURVE_POINTS = 8


@dataclass(frozen=True)
class PilotPlan:
    """Everything that determines one pilot, resolved from the user's request (see :func:`plan_pilot`)."""

    arch: str
    n_params: float
    tokens: float
    seed: int
    corpus: str
    shape: Shape
    hyper: Hyper
    eval_tokens: int
    curve_points: int
    streams: TokenStreams
    unique_tokens: int | None = None  # repeated data: train on a fixed pool of this many tokens
    branch: dict[str, Any] | None = None  # a WSD cooldown branch off a trunk (see bayescale.runner.wsd)

    @property
    def config(self) -> dict[str, Any]:
        """The hashed configuration: shape, hyperparameters, data and seed."""
        repeated = {} if self.unique_tokens is None else {"unique_tokens": self.unique_tokens}
        branch = {} if self.branch is None else {"branch": self.branch}
        return {
            "arch": self.arch,
            "n_params_requested": self.n_params,
            "seed": self.seed,
            "shape": self.shape.to_dict(),
            "hyper": self.hyper.to_dict(),
            "eval_tokens": self.eval_tokens,
            "corpus_hash": self.streams.corpus_hash,
            "tokenizer_hash": self.streams.tokenizer_hash,
            **repeated,
            **branch,
        }

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    @property
    def run_id(self) -> str:
        u = "" if self.unique_tokens is None else f"-U{self.unique_tokens:.3g}"
        u += "" if self.branch is None else "-wsd"
        return f"{self.arch}-N{self.n_params:.3g}-D{self.tokens:.3g}{u}-s{self.seed}-{self.config_hash[:8]}".replace(
            "+", ""
        )

    @property
    def memory(self) -> dict[str, float]:
        """Estimated training memory in bytes (``state``, ``activations``, ``total``;
        :func:`bayescale.runner.shapes.memory_bytes`)."""
        return memory_bytes(self.shape, self.hyper.batch_size)

    @property
    def tokens_trained(self) -> int:
        return self.hyper.steps * self.hyper.batch_size * self.shape.seq_len


def plan_pilot(
    n_params: float,
    tokens: float,
    *,
    arch: str = "llama",
    seed: int = 0,
    corpus: str = "stdlib",
    vocab_size: int = 2048,
    seq_len: int = 128,
    batch_size: int | None = None,
    lr_scale: float | None = None,
    eval_tokens: int = EVAL_TOKENS,
    curve_points: int = CURVE_POINTS,
    unique_tokens: float | None = None,
) -> PilotPlan:
    """Resolve a pilot request into its shape, hyperparameters, data and run id (no training).

    The shape rule builds a model near ``n_params``; the hyperparameter rules (learning rate, warmup)
    then take that model's non-embedding count, the ``N`` its row records.

    With ``unique_tokens`` U, the pilot trains on a fixed pool of about U tokens (whole windows of
    ``seq_len``, see :func:`unique_windows`) repeated for D/U epochs: a repeated-data pilot.

    Examples
    --------
    >>> p = plan_pilot(2e6, 2e7)  # doctest: +SKIP
    >>> p.run_id  # doctest: +SKIP
    'llama-N2e06-D2e07-s0-...'
    """
    if arch not in ARCHES:
        raise PilotError(f"arch={arch!r} is not supported; allowed: {list(ARCHES)}")
    for name, v in (("n_params", n_params), ("tokens", tokens)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise PilotError(f"{name}={v!r} must be a finite number > 0")
    if not (isinstance(seed, int) and seed >= 0):
        raise PilotError(f"seed={seed!r} must be a non-negative integer")
    if not (isinstance(seq_len, int) and 8 <= seq_len <= 8192):
        raise PilotError(f"seq_len={seq_len!r} must be an integer in [8, 8192]")
    if not (isinstance(curve_points, int) and curve_points >= 1):
        raise PilotError(f"curve_points={curve_points!r} must be a positive integer")
    if lr_scale is not None and not (isinstance(lr_scale, (int, float)) and lr_scale > 0):
        raise PilotError(f"lr_scale={lr_scale!r} must be a positive number")
    check_size(float(n_params), arch)  # before the tokenizer is built: a refused size answers at once
    streams = token_streams(corpus, vocab_size)
    shape = shape_for(float(n_params), arch, vocab_size=streams.vocab_size, seq_len=seq_len)
    # The rules' N is the built model's (the row's N), not the request: sizes that build one model train alike.
    built = non_embedding_params(arch, shape.n_layer, shape.d_model)
    hyper = hyper_for(float(built), float(tokens), seq_len, lr_scale=lr_scale, batch_size=batch_size, arch=arch)
    if not (isinstance(eval_tokens, int) and seq_len <= eval_tokens):
        raise PilotError(f"eval_tokens={eval_tokens!r} must be an integer >= seq_len ({seq_len})")
    eval_tokens = min(eval_tokens, (len(streams.heldout) // seq_len) * seq_len)
    plan = PilotPlan(
        arch, float(n_params), float(tokens), seed, corpus, shape, hyper, int(eval_tokens), curve_points, streams
    )
    if unique_tokens is None:
        return plan
    return replace(plan, unique_tokens=_unique_tokens(unique_tokens, plan))


def _unique_tokens(requested: float, plan: PilotPlan) -> int:
    """The repeated-data pool of ``plan``: ``requested`` tokens rounded down to whole windows, checked."""
    if isinstance(requested, bool) or not (isinstance(requested, (int, float)) and math.isfinite(requested)):
        raise PilotError(f"unique_tokens={requested!r} must be a positive number")
    seq = plan.shape.seq_len
    u = int(requested // seq) * seq
    if u < seq:
        raise PilotError(f"unique_tokens={requested!r} must be at least one window of seq_len={seq} tokens")
    available = (len(plan.streams.train) // seq) * seq
    if u > available:
        raise PilotError(f"unique_tokens={requested!r} exceeds the {available:,} training tokens of the corpus")
    if u > plan.tokens_trained:
        raise PilotError(
            f"unique_tokens={requested!r} exceeds the {plan.tokens_trained:,} tokens the pilot trains on "
            "(nothing would repeat; leave unique_tokens out)"
        )
    return u


#: Seed of the permutation that picks a repeated-data pool's windows (fixed, so that pilots with the
#: same U share their pool, whatever their seed, and a smaller pool is part of a larger one).
POOL_SEED = 0


def unique_windows(tokens: np.ndarray, seq_len: int, unique_tokens: int) -> np.ndarray:
    """The repeated-data pool: ``unique_tokens // seq_len`` windows of ``tokens``, chosen by a fixed
    permutation (:data:`POOL_SEED`) from the whole stream, concatenated in stream order."""
    n = len(tokens) // seq_len
    k = unique_tokens // seq_len
    pick = np.sort(np.random.default_rng(POOL_SEED).permutation(n)[:k])
    return np.asarray(tokens[: n * seq_len]).reshape(n, seq_len)[pick].reshape(-1)


def available_memory() -> float | None:
    """Bytes of memory this machine has free (``MemAvailable`` of /proc/meminfo, else the physical
    memory), or None where neither can be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except (OSError, ValueError, IndexError):
        pass
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


#: GPU memory the estimate leaves out, kept free: cuBLAS's workspaces, the fused optimizer's and the
#: clipping's temporaries, the evaluation pass (a 1e6-parameter pilot on an H100 peaked 10 MiB above
#: :func:`~bayescale.runner.shapes.memory_bytes`).
GPU_WORKSPACE_BYTES = 256 * 2**20


def micro_batch(plan: PilotPlan, device: str = "cpu") -> int:
    """Sequences per forward pass: the plan's batch, or where its training memory
    (:func:`bayescale.runner.shapes.memory_bytes`) exceeds what is free where it trains, the largest
    divisor of it that fits; the Trainer accumulates gradients over the rest, so the optimizer sees
    the same batch (the batch rule is the same on every device, and so are the results). Raises
    :class:`PilotError` when even one sequence does not fit.

    On the CPU all the memory is this machine's; on a GPU (``device="cuda"``) the weights and optimizer
    state must also fit in this machine's (the model is built there first) and everything in the GPU's.
    """
    batch, host = plan.hyper.batch_size, available_memory()
    precision = training_precision(device)
    state = memory_bytes(plan.shape, 1)["state"]
    if device == "cuda" and host is not None and state > host:
        raise PilotError(_too_big(plan, state, host, "this machine has", per_pass=0))
    free, place = (available_gpu_memory(), "the GPU has") if device == "cuda" else (host, "this machine has")
    reserve = GPU_WORKSPACE_BYTES if device == "cuda" else 0.0
    for micro in (d for d in range(batch, 0, -1) if batch % d == 0):
        if free is None or memory_bytes(plan.shape, micro, precision)["total"] + reserve <= free:
            return micro
    raise PilotError(_too_big(plan, memory_bytes(plan.shape, 1, precision)["total"] + reserve, free, place, per_pass=1))


def training_precision(device: str) -> str:
    """The precision the runner trains in on ``device`` ("cpu" or "cuda"): "bf16" (autocast, fp32
    weights) on a CUDA GPU that supports it, else "fp32"."""
    if device != "cuda":
        return "fp32"
    import torch

    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def _too_big(plan: PilotPlan, need: float, free: float, place: str, per_pass: int) -> str:
    what = " and activations at one sequence per pass" if per_pass else ""
    return (
        f"pilot {plan.run_id} needs about {need / 2**30:.3g} GiB to train (weights, gradients, AdamW state{what}); "
        f"{place} {free / 2**30:.3g} GiB free. Ask for a smaller --n-params or --seq-len"
    )


def check_memory(plan: PilotPlan, device: str = "cpu") -> None:
    """Refuse, before allocating, a pilot that does not fit where it trains even one sequence per pass
    (:func:`micro_batch`)."""
    micro_batch(plan, device)


def available_gpu_memory() -> float | None:
    """Bytes free on the current CUDA GPU (``torch.cuda.mem_get_info``), or None without one; memory
    torch holds for models no longer referenced (an earlier pilot of this process) is released first."""
    import torch

    if not torch.cuda.is_available():
        return None
    gc.collect()
    torch.cuda.empty_cache()
    return float(torch.cuda.mem_get_info()[0])


__all__ = [
    "CURVE_POINTS",
    "EVAL_TOKENS",
    "GPU_WORKSPACE_BYTES",
    "POOL_SEED",
    "PilotPlan",
    "available_gpu_memory",
    "available_memory",
    "check_memory",
    "micro_batch",
    "plan_pilot",
    "training_precision",
    "unique_windows",
]
