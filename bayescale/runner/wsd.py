"""WSD pilots: one warmup-stable-decay trunk and a cooldown branch off it at several points
(Hägele et al. 2024, arXiv 2405.18392), so one run of N parameters yields losses at several D.

The trunk trains at a constant learning rate after the usual warmup (the pilot's own rules,
:func:`bayescale.runner.hyper_for` for the longest D) and keeps a checkpoint where each branch leaves
it. A branch at fraction f of the requested D trains ``f * S`` steps in all (S: the steps of D):
``(1 - cooldown) f S`` on the trunk and ``cooldown f S`` of its own, decaying the learning rate to 0
(1-sqrt shape). Each branch is one row of the runs table, with its own ``D``, the trunk's id
(``trunk_id``), ``C = 6 N D`` (its share of the trunk plus its cooldown, each counted once) and
``C_branch`` (its cooldown alone: what it costs once the trunk exists). Everything resumes: the trunk
from its checkpoints, each branch from its own or else from the trunk's (so a branch's row says
``resumed``, and like any resumed pilot has no ``train_tokens_per_s``).

torch and transformers are imported by :mod:`bayescale.runner.train`, only to train.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes
from .corpus import cache_dir, config_hash
from .models import PilotError, count_params
from .options import COOLDOWN
from .plan import PilotPlan, plan_pilot
from .train import (
    PilotResult,
    Segment,
    build_pilot,
    checked_device,
    load_result,
    record_pilot,
    train_model,
)

#: Shape of the cooldown (``transformers``' WSD ``decay_type``; Hägele et al. find 1-sqrt best).
DECAY = "1-sqrt"
SCHEDULE = "warmup_stable_decay"
#: Where the branches end by default, as fractions of the requested tokens.
DEFAULT_COOLDOWNS = (0.25, 0.5, 1.0)


@dataclass(frozen=True)
class Branch:
    """One cooldown branch: at ``fraction`` of the requested tokens, ``steps`` steps in all, the last
    ``cooldown_steps`` of them its own."""

    fraction: float
    steps: int
    cooldown_steps: int

    @property
    def start(self) -> int:
        """The trunk step it branches off."""
        return self.steps - self.cooldown_steps


def branches(steps: int, warmup: int, cooldowns: Sequence[float], cooldown: float = COOLDOWN) -> list[Branch]:
    """The branches of a trunk whose full length would be ``steps``, one per fraction in ``cooldowns``."""
    if not (isinstance(cooldown, (int, float)) and 0 < cooldown <= 0.5):
        raise PilotError(f"cooldown={cooldown!r} must be a fraction in (0, 0.5] (the usual is 0.1-0.2)")
    fractions = sorted({float(f) for f in cooldowns}) if cooldowns else []
    if not fractions or not all(math.isfinite(f) and 0 < f <= 1 for f in fractions):
        raise PilotError(f"cooldowns={list(cooldowns or [])!r} must be fractions of the tokens in (0, 1]")
    out = []
    for f in fractions:
        total = max(1, round(f * steps))
        k = max(1, round(cooldown * total))
        if total - k < warmup:
            raise PilotError(
                f"the branch at {f:g} of the tokens leaves the trunk after {total - k} steps, before the "
                f"{warmup} warmup steps end; drop it or train more tokens"
            )
        out.append(Branch(f, total, k))
    return out


def plan_wsd(
    n_params: float,
    tokens: float,
    *,
    cooldowns: Sequence[float] = DEFAULT_COOLDOWNS,
    cooldown: float = COOLDOWN,
    **options: Any,
) -> tuple[PilotPlan, list[PilotPlan]]:
    """The trunk's pilot plan and one pilot plan per branch (``options``: those of
    :func:`bayescale.runner.plan_pilot`). Trains nothing."""
    base = plan_pilot(n_params, tokens, **options)
    hyper = replace(base.hyper, schedule=SCHEDULE, min_lr_ratio=0.0)
    bs = branches(hyper.steps, hyper.warmup_steps, cooldowns, cooldown)
    trunk = replace(base, hyper=replace(hyper, steps=bs[-1].start))
    starts = [b.start for b in bs]
    digest = config_hash({**trunk.config, "branch_steps": starts, "decay": DECAY})
    trunk_id = f"{base.arch}-N{base.n_params:.3g}-D{base.tokens:.3g}-trunk-s{base.seed}-{digest[:8]}".replace("+", "")
    plans = []
    for b in bs:
        info = {
            "trunk_id": trunk_id,
            "fraction": b.fraction,
            "cooldown_steps": b.cooldown_steps,
            "branch_step": b.start,
            "decay": DECAY,
        }
        plans.append(replace(base, tokens=base.tokens * b.fraction, hyper=replace(hyper, steps=b.steps), branch=info))
    return trunk, plans


def _wsd(decay_steps: int) -> dict[str, Any]:
    return {"num_decay_steps": decay_steps, "min_lr_ratio": 0.0, "decay_type": DECAY}


def train_wsd(
    n_params: float,
    tokens: float,
    *,
    cooldowns: Sequence[float] = DEFAULT_COOLDOWNS,
    cooldown: float = COOLDOWN,
    device: str = "auto",
    threads: int | None = None,
    work_dir: str | os.PathLike | None = None,
    save_every_s: float = 60.0,
    keep_checkpoints: bool = False,
    on_progress: Callable[[dict], None] | None = None,
    **options: Any,
) -> list[PilotResult]:
    """Train a WSD trunk and its branches (or finish a killed one); one :class:`PilotResult` per branch.

    ``options`` are those of :func:`bayescale.runner.plan_pilot`; the others as for
    :func:`bayescale.runner.train_pilot` (``work_dir`` holds ``trunk/`` and ``cooldown-F/`` folders).
    """
    torch = checked_device(device)
    trunk, plans = plan_wsd(n_params, tokens, cooldowns=cooldowns, cooldown=cooldown, **options)
    root = Path(work_dir) if work_dir is not None else cache_dir() / "pilots" / plans[0].branch["trunk_id"]
    trunk_out = root / "trunk"
    trunk_out.mkdir(parents=True, exist_ok=True)
    outs = [root / f"cooldown-{p.branch['fraction']:g}" for p in plans]
    if threads is not None:
        torch.set_num_threads(int(threads))
    train = {"device": device, "save_every_s": save_every_s, "on_progress": on_progress}
    starts = tuple(p.branch["branch_step"] for p in plans)
    if not (trunk_out / "done.json").exists() and not all((o / "result.json").exists() for o in outs):
        model, data = build_pilot(trunk)
        seg = Segment(trunk.hyper.steps, SCHEDULE, _wsd(0), list(starts), keep_at=starts)
        train_model(model, data, trunk, trunk_out, segment=seg, **train)
        _drop_checkpoints(trunk_out, keep=starts)
        done = {"trunk_id": plans[0].branch["trunk_id"], "branch_steps": starts}
        atomic_write_bytes(trunk_out / "done.json", json.dumps(done).encode())
    results = []
    for plan, out in zip(plans, outs, strict=True):
        out.mkdir(parents=True, exist_ok=True)
        if (out / "result.json").exists():
            results.append(load_result(out))
            continue
        model, data = build_pilot(plan)
        start = str(trunk_out / f"checkpoint-{plan.branch['branch_step']}")
        seg = Segment(plan.hyper.steps, SCHEDULE, _wsd(plan.branch["cooldown_steps"]), [plan.hyper.steps], start=start)
        trained = train_model(model, data, plan, out, segment=seg, **train)
        results.append(record_pilot(plan, count_params(model, plan.arch), trained, out))
        if not keep_checkpoints:
            _drop_checkpoints(out)
    if not keep_checkpoints:
        _drop_checkpoints(trunk_out)
    return results


def _drop_checkpoints(folder: Path, keep: Sequence[int] = ()) -> None:
    for d in folder.glob("checkpoint-*"):
        try:
            step = int(d.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if step not in keep:
            shutil.rmtree(d, ignore_errors=True)


def trunk_record(work_dir: str | os.PathLike) -> dict[str, Any]:
    """What a finished trunk wrote to ``work_dir/trunk/done.json`` (its id and branch steps)."""
    return json.loads((Path(work_dir) / "trunk" / "done.json").read_text())


__all__ = ["COOLDOWN", "DEFAULT_COOLDOWNS", "Branch", "branches", "plan_wsd", "train_wsd", "trunk_record"]
