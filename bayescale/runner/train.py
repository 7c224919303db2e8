"""Train one pilot language model with the Hugging Face Trainer and append its result to a runs table.

Needs the ``runner`` extra (torch, transformers, tokenizers). :func:`run_pilot` builds the model
from a config (never downloaded), trains it on ``tokens`` tokens of the corpus's training split,
evaluates next-token cross-entropy (nats per token) on the fixed held-out split at log-spaced points
of training, and appends one row with full provenance. A killed pilot resumes from its last
checkpoint when the same call is made again; one run id never yields two rows.

A pilot is trained in three steps: :func:`build_pilot` (the model and its data), :func:`train_model`
(the Trainer; its eval-loss curve and timings) and :func:`record_pilot` (its row and record, written
to its work folder); :func:`save_pilot` appends the row to a runs table.

A pilot is planned by :mod:`bayescale.runner.plan`. torch, transformers and tokenizers (the ``runner``
extra) are imported inside the functions that use them, so that ``import bayescale.runner`` works, and
plans pilots, without them.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..data import append_run
from .corpus import _atomic_bytes, cache_dir
from .guards import checked_device, table_problem, training_lock, trains_on
from .hardware import mfu, peak_bf16_flops
from .models import PilotError, build_model, count_params, require_torch, token_windows
from .plan import CURVE_POINTS, EVAL_TOKENS, PilotPlan, micro_batch, plan_pilot, training_precision, unique_windows
from .shapes import forward_flops_per_token, training_flops

# --------------------------------------------------------------------------- training


def _eval_steps(steps: int, points: int) -> list[int]:
    if points <= 1:
        return [steps]
    grid = np.unique(np.round(np.geomspace(max(1, steps / 2 ** (points - 1)), steps, points)).astype(int))
    return sorted({int(s) for s in grid} | {steps})


def _device_name(torch) -> str:
    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{platform.processor() or platform.machine()}"


def _versions() -> dict[str, str]:
    import tokenizers
    import torch
    import transformers

    return {
        "bayescale": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "python": platform.python_version(),
    }


def _last_checkpoint(out: Path) -> str | None:
    """Newest complete checkpoint (its trainer_state.json, written last, parses)."""
    best = None
    for d in out.glob("checkpoint-*"):
        try:
            step = int(d.name.split("-")[1])
            json.loads((d / "trainer_state.json").read_text())
        except (ValueError, IndexError, OSError, json.JSONDecodeError):
            continue
        if best is None or step > best[0]:
            best = (step, d)
    return None if best is None else str(best[1])


def _checkpoint_micro_batch(checkpoint: str | None, batch: int) -> int:
    """The sequences per pass a checkpoint was trained with (its ``train_batch_size``), when they
    split ``batch``; 0 when there is no checkpoint or it does not say."""
    if checkpoint is None:
        return 0
    try:
        micro = int(json.loads((Path(checkpoint) / "trainer_state.json").read_text()).get("train_batch_size") or 0)
    except (OSError, ValueError, json.JSONDecodeError):
        return 0
    return micro if 0 < micro < batch and batch % micro == 0 else 0


def curves_dir(table: str | os.PathLike) -> Path:
    """Folder of eval-loss curves and hyperparameter records beside a runs table:
    ``data/pilot_runs.csv`` -> ``data/pilot_runs_curves/``."""
    t = Path(table)
    return t.with_name(t.stem + "_curves")


def _write_json(path: Path, obj: Any) -> None:
    _atomic_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode())


def _callbacks(
    run_id: str,
    eval_at: list[int],
    save_every_s: float,
    on_progress: Callable[[dict], None] | None,
    steps: int,
    wall_file: Path,
    wall_before: float,
    keep_at: tuple[int, ...] = (),
):
    from transformers import TrainerCallback

    class Schedule(TrainerCallback):
        """Evaluate at the log-spaced curve points; checkpoint every ``save_every_s`` seconds and record
        the wall time spent so far beside the checkpoints (a resumed run adds to it)."""

        def __init__(self):
            self.last_save = self.t0 = time.monotonic()

        def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kw):
            # A resumed run's next rate is its own schedule's, not the checkpoint's (a WSD trunk's last holds 0).
            sched = getattr(lr_scheduler, "scheduler", lr_scheduler)  # accelerate may wrap it
            for i, f in enumerate(getattr(sched, "lr_lambdas", []) if optimizer is not None else []):
                optimizer.param_groups[i]["lr"] = sched.base_lrs[i] * f(sched.last_epoch)

        def on_save(self, args, state, control, **kw):
            _write_json(wall_file, {"wall_s": wall_before + time.monotonic() - self.t0, "step": state.global_step})

        def on_step_end(self, args, state, control, **kw):
            if state.global_step in eval_at:
                control.should_evaluate = True
            if time.monotonic() - self.last_save >= save_every_s and state.global_step < steps:
                control.should_save = True
            if state.global_step in keep_at:
                control.should_save = True
            if control.should_save:
                self.last_save = time.monotonic()
            return control

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            if on_progress is not None and metrics:
                on_progress(
                    {"run_id": run_id, "step": state.global_step, "steps": steps, "eval_loss": metrics.get("eval_loss")}
                )

    return [Schedule()]


@dataclass(frozen=True)
class PilotResult:
    """One trained pilot: its runs-table row, its eval-loss curve and the full record of its settings."""

    row: dict[str, Any]
    curve: pd.DataFrame
    record: dict[str, Any]


def recorded_ids(table: str | os.PathLike) -> set[str]:
    """The run ids a runs CSV holds (none when it is absent, empty or has no ``run_id`` column)."""
    try:
        return set(pd.read_csv(table, dtype=str, keep_default_na=False, usecols=lambda c: c == "run_id")["run_id"])
    except (FileNotFoundError, KeyError, ValueError):  # pandas' EmptyDataError is a ValueError
        return set()


def save_pilot(result: PilotResult, table: str | os.PathLike) -> pd.DataFrame:
    """Append a pilot's row to ``table`` (a run id already there is left as it is) and write its curve
    and record to :func:`curves_dir` beside the table. Returns the whole table."""
    run_id = result.row["run_id"]
    cdir = curves_dir(table)
    cdir.mkdir(parents=True, exist_ok=True)
    _atomic_bytes(cdir / f"{run_id}.csv", result.curve.to_csv(index=False).encode())
    _write_json(cdir / f"{run_id}.json", {k: v for k, v in result.record.items() if k != "log_history"})
    return append_run(table, result.row, if_exists="skip")


def run_pilot(
    n_params: float,
    tokens: float,
    *,
    arch: str = "llama",
    seed: int = 0,
    append: str | os.PathLike | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Train one pilot and return its row; with ``append``, add the row to that runs table.

    Parameters
    ----------
    n_params : float
        Requested non-embedding parameters; the shape rule (:func:`bayescale.runner.shape_for`)
        picks depth, width and heads, and the built model's exact counts are recorded.
    tokens : float
        Training tokens (rounded up to whole optimizer steps; the row records the exact count).
    arch : {"llama", "gpt2", "lstm"}
    seed : int
        Seed of initialisation and data order.
    append : path, optional
        Runs CSV to append the row to (created if absent; :func:`bayescale.append_run` with
        ``if_exists="skip"``). The eval-loss curve and every hyperparameter go to
        :func:`curves_dir` beside it, as ``RUN_ID.csv`` and ``RUN_ID.json``.
    **kwargs
        The options of :func:`train_pilot` (corpus, vocab_size, seq_len, batch_size, lr_scale,
        eval_tokens, curve_points, unique_tokens, device, threads, work_dir, save_every_s, keep_checkpoints, on_progress).

    Returns
    -------
    dict
        The row: ``run_id, N, D, C, loss`` and provenance (see the README's pilot-runner section).

    Examples
    --------
    >>> row = run_pilot(3e5, 3e5, append="runs.csv")  # doctest: +SKIP
    >>> row["loss"] < row["unigram_entropy"]  # doctest: +SKIP
    True
    """
    if append is not None and (problem := table_problem(append)):  # said before the training, not after
        raise PilotError(f"append={os.fspath(append)!r}: {problem}; nothing was trained")
    result = train_pilot(n_params, tokens, arch=arch, seed=seed, **kwargs)
    if append is not None:
        save_pilot(result, append)
    return result.row


def train_pilot(
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
    device: str = "auto",
    compile: bool = False,
    threads: int | None = None,
    work_dir: str | os.PathLike | None = None,
    save_every_s: float = 60.0,
    keep_checkpoints: bool = False,
    on_progress: Callable[[dict], None] | None = None,
) -> PilotResult:
    """Train one pilot (or finish a killed one) and return its row, curve and record: :func:`plan_pilot`,
    then :func:`build_pilot`, :func:`train_model` and :func:`record_pilot`.

    Parameters
    ----------
    n_params, tokens, arch, seed
        As for :func:`run_pilot`.
    corpus : str
        ``"stdlib"`` (default), a text file/folder/glob, or ``"hf:NAME"`` (see :mod:`bayescale.runner.corpus`).
    vocab_size, seq_len, batch_size, lr_scale, eval_tokens, curve_points
        Tokenizer vocabulary, context length, sequences per step (default: the batch rule), a factor on
        the learning-rate rule, held-out tokens per evaluation, points on the eval-loss curve.
    unique_tokens : float, optional
        Repeated data: train on a fixed pool of this many tokens (the row records ``U``, epochs = D/U).
    device : {"auto", "cpu", "cuda"}
        ``auto`` trains on a GPU when torch sees one (bf16 where supported, fused AdamW), else on the CPU.
    compile : bool
        Compile the model with ``torch.compile`` (the Trainer's ``torch_compile``): the same training,
        faster on a GPU once compiled (BENCHMARKS.md, "Pilot runner on a GPU"); the compilation takes
        a minute or more per model, so it pays on long pilots only. The row records ``compiled``.
    threads : int, optional
        torch CPU threads (the sweep gives one per pilot).
    work_dir : path, optional
        Where checkpoints go (default: the bayescale cache, ``pilots/RUN_ID``). Calling again with the
        same arguments resumes from the newest complete checkpoint there.
    save_every_s : float
        Seconds between checkpoints.
    keep_checkpoints : bool
        Keep the checkpoints (and the final model) after a successful run; by default they are deleted.
    on_progress : callable, optional
        Called with ``{"run_id", "step", "steps", "eval_loss"}`` after each evaluation.

    Returns
    -------
    PilotResult
    """
    torch = checked_device(device, threads)
    plan = plan_pilot(
        n_params,
        tokens,
        arch=arch,
        seed=seed,
        corpus=corpus,
        vocab_size=vocab_size,
        seq_len=seq_len,
        batch_size=batch_size,
        lr_scale=lr_scale,
        eval_tokens=eval_tokens,
        curve_points=curve_points,
        unique_tokens=unique_tokens,
    )
    out = Path(work_dir) if work_dir is not None else cache_dir() / "pilots" / plan.run_id
    out.mkdir(parents=True, exist_ok=True)
    with training_lock(out, plan.run_id):
        if (out / "result.json").exists():  # trained before (the save may have been interrupted)
            return load_result(out)
        model, data = build_pilot(plan, trains_on(torch, device))
        trained = train_model(
            model, data, plan, out, device=device, compile=compile, save_every_s=save_every_s, on_progress=on_progress
        )
        result = record_pilot(plan, count_params(model, plan.arch), trained, out)
        for d in [] if keep_checkpoints else out.glob("checkpoint-*"):
            shutil.rmtree(d, ignore_errors=True)
    return result


@dataclass(frozen=True)
class PilotData:
    """What a pilot trains and evaluates on: torch datasets of token windows (see :func:`build_pilot`)."""

    train: Any
    heldout: Any
    micro_batch: int | None = None  # sequences per forward pass (None: the plan's whole batch)

    @property
    def train_tokens(self) -> int:
        """Tokens the training windows hold (one epoch)."""
        return len(self.train) * self.train.seq_len


def build_pilot(plan: PilotPlan, device: str = "cpu") -> tuple[Any, PilotData]:
    """The model of ``plan`` (initialised with its seed) and its training and held-out windows (the
    training windows of a repeated-data pilot are its pool, :func:`unique_windows`), once the memory
    free where it will train (``device``: "cpu" or "cuda") is known to be enough for one sequence per
    pass. The passes per batch are chosen here, before the model is allocated (:func:`micro_batch`)."""
    micro = micro_batch(plan, device)
    seq = plan.shape.seq_len
    model = build_model(plan.shape, seed=plan.seed)
    pool = plan.streams.train
    if plan.unique_tokens is not None:
        pool = unique_windows(pool, seq, plan.unique_tokens)
    train = token_windows(pool, seq)
    heldout = token_windows(plan.streams.heldout, seq, limit=plan.eval_tokens // seq)
    return model, PilotData(train, heldout, micro)


@dataclass(frozen=True)
class Trained:
    """What :func:`train_model` measured: the eval-loss curve, the training log and the timings."""

    curve: pd.DataFrame
    log_history: list[dict[str, Any]]
    training_arguments: dict[str, Any]
    eval_at: list[int]
    wall_s: float  # this process's training and evaluation time plus that of the killed runs it resumed
    train_s: float  # this process's training time (evaluation excluded)
    resumed: bool
    precision: str
    device: str
    epoch_tokens: int  # tokens in one pass over the training windows
    compiled: bool = False
    micro_batch: int = 0  # sequences per forward pass


@dataclass(frozen=True)
class Segment:
    """A stretch of training :func:`train_model` runs: up to step ``steps`` under the learning-rate
    schedule ``schedule`` (a ``transformers`` scheduler name and its kwargs), evaluating at ``eval_at``,
    keeping the checkpoints at ``keep_at``, starting from the checkpoint ``start`` (or from scratch)."""

    steps: int
    schedule: str
    schedule_kwargs: dict[str, Any]
    eval_at: list[int]
    keep_at: tuple[int, ...] = ()
    start: str | None = None


def whole_run(plan: PilotPlan) -> Segment:
    """The one segment of an ordinary pilot: all of ``plan``'s steps under its schedule."""
    h = plan.hyper
    return Segment(h.steps, h.schedule, {"min_lr_rate": h.min_lr_ratio}, _eval_steps(h.steps, plan.curve_points))


def _training_arguments(
    plan: PilotPlan, seg: Segment, out: Path, use_cuda: bool, bf16: bool, compile: bool | str, micro: int
):
    from transformers import TrainingArguments

    h = plan.hyper
    return TrainingArguments(
        output_dir=str(out),
        max_steps=seg.steps,
        # The batch in passes of `micro` sequences where it does not fit at once (plan.micro_batch).
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=h.batch_size // micro,
        per_device_eval_batch_size=micro if micro < h.batch_size else max(h.batch_size, 16),
        learning_rate=h.lr,
        lr_scheduler_type=seg.schedule,
        lr_scheduler_kwargs=seg.schedule_kwargs,
        warmup_steps=h.warmup_steps,
        weight_decay=h.weight_decay,
        adam_beta1=h.adam_beta1,
        adam_beta2=h.adam_beta2,
        max_grad_norm=h.grad_clip,
        # One fused kernel for the whole AdamW step on a GPU (the same update, fewer launches).
        optim="adamw_torch_fused" if use_cuda else "adamw_torch",
        torch_compile=bool(compile),
        torch_compile_mode=compile if isinstance(compile, str) else None,
        eval_strategy="no",
        save_strategy="no",
        save_total_limit=None if seg.keep_at else 1,
        logging_strategy="steps",
        logging_steps=max(1, seg.steps // 50),
        report_to="none",
        disable_tqdm=True,
        seed=plan.seed,
        data_seed=plan.seed,
        bf16=bf16,
        use_cpu=not use_cuda,
        dataloader_num_workers=0,
        prediction_loss_only=True,
        remove_unused_columns=False,
    )


def train_model(
    model: Any,
    data: PilotData,
    plan: PilotPlan,
    out: Path,
    *,
    device: str = "auto",
    compile: bool | str = False,
    save_every_s: float = 60.0,
    on_progress: Callable[[dict], None] | None = None,
    segment: Segment | None = None,
    callbacks: Sequence[Any] = (),
) -> Trained:
    """Train ``model`` on ``data`` with the Hugging Face Trainer as ``plan`` says, checkpointing to ``out``
    (and resuming from the newest complete checkpoint there), evaluating at the curve points.

    ``segment`` (default :func:`whole_run`) trains a part of a run instead (see :mod:`bayescale.runner.wsd`).
    ``compile`` compiles the model with ``torch.compile`` (see :func:`train_pilot`; a string is a
    ``torch.compile`` mode, e.g. "max-autotune-no-cudagraphs", as the benchmarks try). ``callbacks`` are
    more ``transformers.TrainerCallback`` objects (``benchmarks/bench_runner.py`` times steps with one).
    """
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils import logging as hf_logging

    torch = require_torch()
    hf_logging.disable_progress_bar()  # "Writing model shards" at every checkpoint
    use_cuda = trains_on(torch, device) == "cuda"
    bf16 = training_precision("cuda" if use_cuda else "cpu") == "bf16"
    h, seq = plan.hyper, plan.shape.seq_len
    seg = segment or whole_run(plan)
    eval_at = seg.eval_at
    resume = _last_checkpoint(out)
    # A resumed run keeps its checkpoint's passes (older transformers restore them whatever is asked).
    micro = _checkpoint_micro_batch(resume or seg.start, h.batch_size) or data.micro_batch or h.batch_size
    args = _training_arguments(plan, seg, out, use_cuda, bf16, compile, micro)
    if use_cuda and compile:
        # Compiling on a GPU, the Trainer turns TF32 on through torch's new per-backend API, which leaves
        # the legacy reading that inductor's autotuning does raising (pytorch#196728); the legacy setter
        # states the same choice in both.
        torch.set_float32_matmul_precision("high")
    wall_before = 0.0
    if resume is not None and (out / "wall.json").exists():
        wall_before = float(json.loads((out / "wall.json").read_text()).get("wall_s", 0.0))
    resume = resume or seg.start
    wall_file = out / "wall.json"
    callbacks = _callbacks(
        plan.run_id, eval_at, save_every_s, on_progress, seg.steps, wall_file, wall_before, seg.keep_at
    ) + list(callbacks)
    trainer = Trainer(model=model, args=args, train_dataset=data.train, eval_dataset=data.heldout, callbacks=callbacks)
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    if not evals or evals[-1].get("step") != seg.steps:
        trainer.evaluate()
        evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    wall = time.perf_counter() - t0
    eval_wall = sum(float(e.get("eval_runtime", 0.0)) for e in evals)
    curve = pd.DataFrame(
        {
            "step": [int(e["step"]) for e in evals],
            "tokens": [int(e["step"]) * h.batch_size * seq for e in evals],
            "eval_loss": [float(e["eval_loss"]) for e in evals],
        }
    ).drop_duplicates("step", keep="last")
    return Trained(
        curve=curve,
        log_history=trainer.state.log_history,
        training_arguments=args.to_dict(),
        eval_at=eval_at,
        wall_s=wall + wall_before,
        train_s=wall - eval_wall,
        resumed=resume is not None,
        precision="bf16" if bf16 else "fp32",
        device=_device_name(torch) if use_cuda else f"cpu:{torch.get_num_threads()} threads",
        epoch_tokens=data.train_tokens,
        compiled=bool(compile),
        micro_batch=micro,
    )


def pilot_row(plan: PilotPlan, counts: dict[str, int], trained: Trained, replayed_steps: int = 0) -> dict[str, Any]:
    """The runs-table row of a trained pilot (``counts`` from :func:`count_params`): ``run_id, N, D, C,
    loss`` and its provenance; a repeated-data pilot's row adds ``U``, its unique tokens, and a WSD
    branch's its trunk and ``C_branch``: what it cost beyond the trunk that existed, its cooldown and
    the ``replayed_steps`` of trunk it had to train again (a branch trained later, :func:`bayescale.runner.train_branch`)."""
    h, s = plan.hyper, plan.shape
    train_losses = [e for e in trained.log_history if "loss" in e and "eval_loss" not in e]
    loss = float(trained.curve["eval_loss"].iloc[-1])
    D = plan.tokens_trained
    row = {
        "run_id": plan.run_id,
        "N": counts["N"],
        "D": D,
        "C": 6.0 * counts["N"] * D,
        "loss": loss,
        "perplexity": math.exp(loss),
        "N_total": counts["N_total"],
        "N_embedding": counts["N_embedding"],
        "C_analytic": training_flops(s, D),
        "C_6ND_total": 6.0 * counts["N_total"] * D,
        "flops_per_token_fwd": forward_flops_per_token(s),
        "tokens_per_param": D / counts["N"],
        "n_params_requested": plan.n_params,
        "tokens_requested": plan.tokens,
        "arch": plan.arch,
        "seed": plan.seed,
        "n_layer": s.n_layer,
        "d_model": s.d_model,
        "n_head": s.n_head,
        "d_ff": s.d_ff,
        "seq_len": s.seq_len,
        "vocab_size": s.vocab_size,
        "batch_size": h.batch_size,
        "steps": h.steps,
        "lr": h.lr,
        "warmup_steps": h.warmup_steps,
        "schedule": h.schedule,
        "min_lr_ratio": h.min_lr_ratio,
        "weight_decay": h.weight_decay,
        "epochs": D / trained.epoch_tokens,
        "final_train_loss": float(train_losses[-1]["loss"]) if train_losses else float("nan"),
        "eval_tokens": plan.eval_tokens,
        "unigram_entropy": plan.streams.unigram_entropy(),
        "corpus": plan.corpus,
        "corpus_hash": plan.streams.corpus_hash[:12],
        "tokenizer_hash": plan.streams.tokenizer_hash,
        "config_hash": plan.config_hash,
        "precision": trained.precision,
        "device": trained.device,
        "wall_s": trained.wall_s,
        "train_tokens_per_s": D / max(trained.train_s, 1e-9) if not trained.resumed else float("nan"),
        # Model FLOPs utilisation against the GPU's datasheet peak (hardware.py); NaN on a CPU, a GPU not
        # in the table, or a resumed run (whose training time is split over processes).
        "peak_tflops": peak_bf16_flops(trained.device) / 1e12 if trained.device.startswith("cuda") else float("nan"),
        "mfu": (
            mfu(training_flops(s, D), trained.train_s, trained.device)
            if trained.device.startswith("cuda") and not trained.resumed
            else float("nan")
        ),
        "compiled": trained.compiled,
        "micro_batch_size": trained.micro_batch,
        "resumed": trained.resumed,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **{f"version_{k}": v for k, v in _versions().items()},
    }
    if plan.unique_tokens is not None:  # a repeated-data pilot: epochs = D / U
        row["U"] = plan.unique_tokens
    if plan.branch is not None:  # a WSD branch: C counts its share of the trunk and its cooldown once
        b = plan.branch
        row.update(trunk_id=b["trunk_id"], cooldown_steps=b["cooldown_steps"], branch_step=b["branch_step"])
        row["C_branch"] = 6.0 * counts["N"] * (b["cooldown_steps"] + replayed_steps) * h.batch_size * s.seq_len
    return row


def record_pilot(
    plan: PilotPlan, counts: dict[str, int], trained: Trained, out: Path, replayed_steps: int = 0
) -> PilotResult:
    """Make a trained pilot's row (:func:`pilot_row`) and record and write them to its work folder ``out``;
    the result file, written last, marks the pilot as trained (calling :func:`train_pilot` again only loads it)."""
    row = pilot_row(plan, counts, trained, replayed_steps)
    record = {
        "row": row,
        "config": plan.config,
        "training_arguments": trained.training_arguments,
        "eval_at_steps": trained.eval_at,
        "log_history": trained.log_history,
    }
    trained.curve.to_csv(out / "curve.csv", index=False)
    _write_json(out / "record.json", record)
    _write_json(out / "result.json", row)  # marks the training as done: a rerun only saves
    return PilotResult(row, trained.curve, record)


def load_result(out: Path) -> PilotResult:
    """The result :func:`record_pilot` wrote to ``out``."""
    return PilotResult(
        json.loads((out / "result.json").read_text()),
        pd.read_csv(out / "curve.csv"),
        json.loads((out / "record.json").read_text()),
    )


__all__ = [
    "PilotData",
    "PilotError",
    "PilotPlan",
    "PilotResult",
    "Segment",
    "Trained",
    "build_model",
    "build_pilot",
    "checked_device",
    "count_params",
    "curves_dir",
    "load_result",
    "pilot_row",
    "plan_pilot",
    "record_pilot",
    "run_pilot",
    "save_pilot",
    "train_model",
    "train_pilot",
    "trains_on",
    "unique_windows",
    "whole_run",
]
