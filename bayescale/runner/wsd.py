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

A trunk trained with ``keep_checkpoints`` keeps its checkpoints at its branch points and records its
request, so one more branch can be trained off it later (:func:`train_branch`, ``bayescale pilot
--branch-of TRUNK_ID --tokens D``): from the latest kept checkpoint at or before the branch's start,
the trunk continues at its constant rate on the data it would have seen, then cools down; the row is
the one a branch at that D trained with the trunk would have.

torch and transformers are imported by :mod:`bayescale.runner.train`, only to train.
"""

from __future__ import annotations

import inspect
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
from .guards import checked_device, training_lock, trains_on
from .models import PilotError, count_params
from .options import COOLDOWN
from .plan import PilotPlan, plan_pilot
from .shapes import Hyper
from .train import PilotResult, Segment, build_pilot, load_result, record_pilot, train_model

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
    fractions = sorted({float(f) for f in cooldowns}) if cooldowns else []
    if not fractions or not all(math.isfinite(f) and 0 < f <= 1 for f in fractions):
        raise PilotError(f"cooldowns={list(cooldowns or [])!r} must be fractions of the tokens in (0, 1]")
    return [branch_at(steps, warmup, f, cooldown) for f in fractions]


def branch_at(steps: int, warmup: int, fraction: float, cooldown: float = COOLDOWN) -> Branch:
    """The branch ending at ``fraction`` of a trunk whose full length would be ``steps`` (a branch
    trained later, :func:`train_branch`, may end past it: ``fraction`` > 1)."""
    if not (isinstance(cooldown, (int, float)) and 0 < cooldown <= 0.5):
        raise PilotError(f"cooldown={cooldown!r} must be a fraction in (0, 0.5] (the usual is 0.1-0.2)")
    total = max(1, round(fraction * steps))
    k = max(1, round(cooldown * total))
    if total - k < warmup:
        raise PilotError(
            f"the branch at {fraction:g} of the tokens leaves the trunk after {total - k} steps, before the "
            f"{warmup} warmup steps end; drop it or train more tokens"
        )
    return Branch(fraction, total, k)


@dataclass(frozen=True)
class WsdPlan:
    """A WSD trunk resolved from its request: the pilot plan at the requested tokens (``base``), the WSD
    hyperparameters of its full length (``hyper``), its branches, the trunk's own plan and its id."""

    base: PilotPlan
    hyper: Hyper
    branches: list[Branch]
    trunk: PilotPlan
    trunk_id: str

    def branch_plan(self, b: Branch) -> PilotPlan:
        """The pilot plan of branch ``b`` off this trunk (one row of the runs table)."""
        info = {
            "trunk_id": self.trunk_id,
            "fraction": b.fraction,
            "cooldown_steps": b.cooldown_steps,
            "branch_step": b.start,
            "decay": DECAY,
        }
        hyper = replace(self.hyper, steps=b.steps)
        return replace(self.base, tokens=self.base.tokens * b.fraction, hyper=hyper, branch=info)


def wsd_plan(
    n_params: float,
    tokens: float,
    *,
    cooldowns: Sequence[float] = DEFAULT_COOLDOWNS,
    cooldown: float = COOLDOWN,
    **options: Any,
) -> WsdPlan:
    """Resolve a WSD request (``options``: those of :func:`bayescale.runner.plan_pilot`). Trains nothing."""
    base = plan_pilot(n_params, tokens, **options)
    hyper = replace(base.hyper, schedule=SCHEDULE, min_lr_ratio=0.0)
    bs = branches(hyper.steps, hyper.warmup_steps, cooldowns, cooldown)
    trunk = replace(base, hyper=replace(hyper, steps=bs[-1].start))
    starts = [b.start for b in bs]
    digest = config_hash({**trunk.config, "branch_steps": starts, "decay": DECAY})
    trunk_id = f"{base.arch}-N{base.n_params:.3g}-D{base.tokens:.3g}-trunk-s{base.seed}-{digest[:8]}".replace("+", "")
    return WsdPlan(base, hyper, bs, trunk, trunk_id)


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
    w = wsd_plan(n_params, tokens, cooldowns=cooldowns, cooldown=cooldown, **options)
    return w.trunk, [w.branch_plan(b) for b in w.branches]


def _wsd(decay_steps: int) -> dict[str, Any]:
    return {"num_decay_steps": decay_steps, "min_lr_ratio": 0.0, "decay_type": DECAY}


def train_wsd(
    n_params: float,
    tokens: float,
    *,
    cooldowns: Sequence[float] = DEFAULT_COOLDOWNS,
    cooldown: float = COOLDOWN,
    device: str = "auto",
    compile: bool = False,
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
    torch = checked_device(device, threads)
    trunk, plans = plan_wsd(n_params, tokens, cooldowns=cooldowns, cooldown=cooldown, **options)
    trunk_id = plans[0].branch["trunk_id"]
    root = Path(work_dir) if work_dir is not None else cache_dir() / "pilots" / trunk_id
    trunk_out = root / "trunk"
    trunk_out.mkdir(parents=True, exist_ok=True)
    outs = [root / f"cooldown-{p.branch['fraction']:g}" for p in plans]
    train = {"device": device, "compile": compile, "save_every_s": save_every_s, "on_progress": on_progress}
    starts = tuple(p.branch["branch_step"] for p in plans)
    with training_lock(trunk_out, trunk_id):
        if not (trunk_out / "done.json").exists() and not all((o / "result.json").exists() for o in outs):
            # The request, so that a branch can be planned off this trunk later (train_branch).
            request = {"n_params": n_params, "tokens": tokens, "cooldowns": list(cooldowns), "cooldown": cooldown}
            done = {"trunk_id": trunk_id, "branch_steps": starts, "request": {**request, **options}}
            _train_trunk(trunk, trunk_out, done, trains_on(torch, device), train)
    results = []
    for plan, out in zip(plans, outs, strict=True):
        out.mkdir(parents=True, exist_ok=True)
        with training_lock(out, plan.run_id):
            if (out / "result.json").exists():
                results.append(load_result(out))
                continue
            model = data = None  # the previous branch's, released before this one's memory is planned
            model, data = build_pilot(plan, trains_on(torch, device))
            start = str(trunk_out / f"checkpoint-{plan.branch['branch_step']}")
            cool = _wsd(plan.branch["cooldown_steps"])
            seg = Segment(plan.hyper.steps, SCHEDULE, cool, [plan.hyper.steps], start=start)
            trained = train_model(model, data, plan, out, segment=seg, **train)
            results.append(record_pilot(plan, count_params(model, plan.arch), trained, out))
            if not keep_checkpoints:
                _drop_checkpoints(out)
    if not keep_checkpoints:
        with training_lock(trunk_out, trunk_id):
            _drop_checkpoints(trunk_out)
    return results


def _train_trunk(trunk: PilotPlan, out: Path, done: dict[str, Any], device: str, train: dict[str, Any]) -> None:
    """Train a WSD trunk to its last branch's start in ``out``, keeping the checkpoints at the branch
    starts, and write ``done`` (its id, branch steps and request) to ``out/done.json``. Its eval points
    are said under its trunk id, the id its branches' rows carry."""
    starts = done["branch_steps"]
    model, data = build_pilot(trunk, device)
    seg = Segment(trunk.hyper.steps, SCHEDULE, _wsd(0), list(starts), keep_at=starts)
    said = train["on_progress"]
    on_progress = None if said is None else (lambda msg: said({**msg, "run_id": done["trunk_id"]}))
    train_model(model, data, trunk, out, segment=seg, **{**train, "on_progress": on_progress})
    del model, data  # the branches load the trunk's checkpoints: free its memory before they plan theirs
    _drop_checkpoints(out, keep=starts)
    atomic_write_bytes(out / "done.json", json.dumps(done).encode())


# --------------------------------------------------------------------------- a branch trained later


@dataclass(frozen=True)
class LaterBranch:
    """One more branch off a trunk trained earlier (:func:`plan_branch`): its pilot plan, its branch,
    the trunk's folder and the kept trunk checkpoint it starts from (the latest at or before its start)."""

    plan: PilotPlan
    branch: Branch
    root: Path
    checkpoint: Path

    @property
    def from_step(self) -> int:
        """The trunk step of :attr:`checkpoint`; from there to ``branch.start`` the trunk is continued."""
        return _step_of(self.checkpoint)

    @property
    def out(self) -> Path:
        """The branch's work folder: the one a branch at that fraction trained with the trunk has, unless
        it holds another run (a fraction equal to 6 digits), then one named by the full fraction."""
        out = self.root / f"cooldown-{self.branch.fraction:g}"
        done = out / "result.json"
        if done.exists() and json.loads(done.read_text()).get("run_id") != self.plan.run_id:
            return self.root / f"cooldown-{self.branch.fraction!r}"
        return out


def _step_of(checkpoint: Path) -> int:
    return int(checkpoint.name.split("-")[1])


def trunk_folder(trunk_id: str, work_dir: str | os.PathLike | None = None) -> tuple[Path, dict[str, Any]]:
    """The folder of the finished trunk ``trunk_id`` (``work_dir``, else the bayescale cache's
    ``pilots/TRUNK_ID``) and its record (``trunk/done.json``: id, branch steps, request)."""
    root = Path(work_dir) if work_dir is not None else cache_dir() / "pilots" / trunk_id
    done = root / "trunk" / "done.json"
    if not done.exists():
        known = sorted(_known_trunks())
        listed = ", ".join(repr(k) for k in known) if known else "none"
        raise PilotError(
            f"unknown trunk id {trunk_id!r}: no finished WSD trunk in {root} (finished trunks in the cache: "
            f"{listed}); pass the --work-dir it was trained with, if any"
        )
    record = json.loads(done.read_text())
    if record.get("trunk_id") != trunk_id:
        raise PilotError(
            f"{root} holds trunk {record.get('trunk_id')!r}, not {trunk_id!r}; pass that trunk's --work-dir"
        )
    if "request" not in record:
        raise PilotError(
            f"trunk {trunk_id!r} was trained before bayescale recorded a trunk's request, so a branch cannot be "
            "planned off it; train it again with --schedule wsd --keep-checkpoints"
        )
    return root, record


def _known_trunks() -> list[str]:
    out = []
    for done in (cache_dir() / "pilots").glob("*/trunk/done.json"):
        try:
            out.append(str(json.loads(done.read_text())["trunk_id"]))
        except (OSError, ValueError, KeyError):
            continue
    return out


def kept_checkpoints(trunk_dir: Path) -> dict[int, Path]:
    """The complete checkpoints kept in a trunk's folder, by step (``trainer_state.json``, written last, parses)."""
    kept = {}
    for d in trunk_dir.glob("checkpoint-*"):
        try:
            step = _step_of(d)
            json.loads((d / "trainer_state.json").read_text())
        except (ValueError, IndexError, OSError):
            continue
        kept[step] = d
    return dict(sorted(kept.items()))


def plan_branch(trunk_id: str, tokens: float, work_dir: str | os.PathLike | None = None) -> LaterBranch:
    """Plan one more branch of ``tokens`` tokens off the trunk ``trunk_id`` trained earlier (its request
    re-planned: the branch gets the trunk's shape, hyperparameters, data and cooldown share, and is
    the very branch :func:`plan_wsd` would have planned at that fraction). Trains nothing."""
    if isinstance(tokens, bool) or not (isinstance(tokens, (int, float)) and math.isfinite(tokens) and tokens > 0):
        raise PilotError(f"tokens={tokens!r} must be a positive number")
    root, record = trunk_folder(trunk_id, work_dir)
    request = dict(record["request"])
    w = wsd_plan(**request)
    if w.trunk_id != trunk_id:
        raise PilotError(
            f"model config mismatch: trunk {trunk_id!r}'s request now plans trunk {w.trunk_id!r} (the corpus, "
            "tokenizer, or the shape or hyperparameter rules changed since it was trained); train the trunk again"
        )
    kept = kept_checkpoints(root / "trunk")
    if not kept:
        raise PilotError(
            f"trunk {trunk_id!r} kept no checkpoints in {root / 'trunk'}: train it again with --keep-checkpoints "
            "(bayescale pilot --schedule wsd ... --keep-checkpoints) to branch off it later"
        )
    cooldown = request.get("cooldown", COOLDOWN)
    b = branch_at(w.hyper.steps, w.hyper.warmup_steps, tokens / w.base.tokens, cooldown)
    at_or_before = [step for step in kept if step <= b.start]
    if not at_or_before:
        first = min(kept)
        raise PilotError(
            f"the branch at tokens={tokens:.6g} leaves the trunk at step {b.start}, before its first kept "
            f"checkpoint (step {first}); allowed: tokens >= {_tokens_from(w, first, cooldown):.6g}"
        )
    return LaterBranch(w.branch_plan(b), b, root, kept[max(at_or_before)])


def _tokens_from(w: WsdPlan, step: int, cooldown: float) -> float:
    """The fewest requested tokens whose branch leaves the trunk at ``step`` or later."""
    total = step
    while total - max(1, round(cooldown * total)) < step:
        total += 1
    return total / w.hyper.steps * w.base.tokens


def check_branch_options(later: LaterBranch, given: dict[str, Any]) -> None:
    """Refuse plan options given for a branch trained later (``given``: ``plan_pilot``'s and ``train_wsd``'s
    names, as the command line's flags) that differ from its trunk's: a branch takes its trunk's settings."""
    request = trunk_record(later.root)["request"]
    defaults = {k: v.default for k, v in inspect.signature(plan_pilot).parameters.items()}
    trunk_id = later.plan.branch["trunk_id"]
    for name, value in given.items():
        flag = "--" + name.replace("_", "-")
        if name == "cooldowns":
            raise PilotError(f"{flag} lists a new trunk's branches; a branch off trunk {trunk_id!r} ends at --tokens")
        if name == "schedule":
            if value != "wsd":
                raise PilotError(f"--schedule {value}: a branch off trunk {trunk_id!r} is a WSD branch; allowed: wsd")
            continue
        trunk_value = request.get(name, defaults.get(name, COOLDOWN))
        if value != trunk_value:
            raise PilotError(
                f"model config mismatch: {flag} {value!r}, but trunk {trunk_id!r} was trained with "
                f"{name}={trunk_value!r}; leave {flag} out (a branch takes its trunk's settings)"
            )


def train_branch(
    trunk_id: str,
    tokens: float,
    *,
    device: str = "auto",
    compile: bool = False,
    threads: int | None = None,
    work_dir: str | os.PathLike | None = None,
    save_every_s: float = 60.0,
    keep_checkpoints: bool = False,
    on_progress: Callable[[dict], None] | None = None,
) -> PilotResult:
    """Train one more cooldown branch of ``tokens`` tokens off a WSD trunk trained earlier with
    ``keep_checkpoints`` (or finish a killed one); its :class:`PilotResult` is a row like those of the
    branches trained with the trunk (same ``trunk_id``, its own ``D``, ``C`` and ``C_branch``).

    It starts from the trunk's latest kept checkpoint at or before the branch's start, continues the
    constant-rate trunk from there (same data order: the Trainer resumes the trunk's data position)
    and cools down. With ``keep_checkpoints`` the trunk's checkpoint at the branch's start joins the
    trunk's kept ones. The other arguments as for :func:`train_wsd` (``work_dir``: the trunk's).
    """
    torch = checked_device(device, threads)
    later = plan_branch(trunk_id, tokens, work_dir)
    plan, b, out = later.plan, later.branch, later.out
    out.mkdir(parents=True, exist_ok=True)
    with training_lock(out, plan.run_id):
        if (out / "result.json").exists():  # trained before (the save may have been interrupted)
            return load_result(out)
        model, data = build_pilot(plan, trains_on(torch, device))
        _check_checkpoint_model(later.checkpoint, model, trunk_id)
        # The extended trunk's checkpoint at the branch's start, kept when asked and not kept already.
        keep = (b.start,) if keep_checkpoints and later.from_step < b.start else ()
        past_end = later.from_step == max(kept_checkpoints(later.root / "trunk"))
        seg = Segment(b.steps, SCHEDULE, _wsd(b.cooldown_steps), [b.steps], keep_at=keep, start=str(later.checkpoint))
        train = {"device": device, "compile": compile, "save_every_s": save_every_s, "on_progress": on_progress}
        trained = train_model(model, data, plan, out, segment=seg, **train)
        for step in keep:  # a complete checkpoint moves whole (one rename) into the trunk's folder
            kept = out / f"checkpoint-{step}"
            if kept.is_dir() and not (later.root / "trunk" / kept.name).exists():
                os.replace(kept, later.root / "trunk" / kept.name)
        replayed = replayed_steps(
            later, extended=past_end and (later.root / "trunk" / f"checkpoint-{b.start}").is_dir()
        )
        result = record_pilot(plan, count_params(model, plan.arch), trained, out, replayed_steps=replayed)
        if not keep_checkpoints:
            _drop_checkpoints(out)
    return result


def replayed_steps(later: LaterBranch, extended: bool) -> int:
    """The trunk steps a branch trained later had to train again, which its ``C_branch`` counts beside
    its cooldown: from its checkpoint to its start (``C_branch`` is what the row cost beyond what
    existed, and those steps were trained before but not kept). Zero when they ``extended`` the trunk
    past its last kept checkpoint and are now kept as its new one: they are then the trunk's, counted
    as the trunk's growth like the trunk's own steps (``D - C_branch / (6 N)``, the trunk point a
    future branch can start from, is the new checkpoint)."""
    return 0 if extended else later.branch.start - later.from_step


def _check_checkpoint_model(checkpoint: Path, model: Any, trunk_id: str) -> None:
    """Refuse a trunk checkpoint whose weights do not fit the model the branch's plan builds."""
    files = sorted(checkpoint.glob("*.safetensors"))
    if not files:
        raise PilotError(f"trunk {trunk_id!r}'s checkpoint {checkpoint} holds no model weights (*.safetensors)")
    saved = {}
    for f in files:  # a safetensors file opens with its header's length and the header, JSON of the shapes
        with open(f, "rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        saved.update({k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"})
    built = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for name, shape in built.items():
        if name in saved and saved[name] != shape:
            raise PilotError(
                f"model config mismatch: trunk {trunk_id!r}'s checkpoint {checkpoint.name} holds {name} of shape "
                f"{saved[name]}, the branch's plan builds {shape}; train the trunk again"
            )
    if not set(built) & set(saved):
        raise PilotError(
            f"model config mismatch: trunk {trunk_id!r}'s checkpoint {checkpoint.name} holds none of the weights "
            "of the branch's model; train the trunk again"
        )


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


__all__ = [
    "COOLDOWN",
    "DEFAULT_COOLDOWNS",
    "Branch",
    "LaterBranch",
    "WsdPlan",
    "branch_at",
    "branches",
    "check_branch_options",
    "kept_checkpoints",
    "plan_branch",
    "plan_wsd",
    "train_branch",
    "train_wsd",
    "trunk_folder",
    "trunk_record",
    "wsd_plan",
]
