"""Sweeps: many pilots from one sweep file, in parallel on a local process pool, a Ray cluster or Slurm.

A sweep is a TOML file::

    table = "pilot_runs.csv"          # runs table, relative to the sweep file
    arch = "llama"                    # default for every run
    corpus = "stdlib"
    seeds = [0]

    [grid]                            # every n_params x tokens_per_param x seed
    n_params = [3e4, 1e5, 3e5]
    tokens_per_param = [5, 15, 45]
    max_flops = 4e13                  # optional: skip grid points whose analytic FLOPs exceed this

    [[run]]                           # optional explicit runs (any run_pilot option)
    n_params = 1e5
    tokens = 2e6
    arch = "gpt2"

    [settings]                        # optional run_pilot options for every run
    eval_tokens = 65536
    compile = true                    # optional: torch.compile each pilot (pays on GPUs, long pilots)
    schedule = "wsd"                  # optional: each job one WSD trunk with a branch per cooldowns
    cooldowns = [0.25, 0.5, 1.0]      #   point (one row each, bayescale.runner.train_wsd)

Runs already in the table (same run id: same arch, size, tokens, seed, data and settings) are
skipped, so a killed sweep resumes where it stopped; a killed pilot resumes from its checkpoint.

Three executors (:func:`run_sweep`'s ``executor``; ``serial`` runs them one by one in this process):

- ``process`` (default): a local process pool, one core per pilot on CPU or one GPU per pilot. Use it
  on one machine.
- ``ray``: Ray tasks placed by Ray's scheduler (CPUs and a GPU each). The driver appends every row
  itself (one writer), so workers on other machines need no shared filesystem for the table. Use it on
  a Ray cluster, or on several machines without a batch scheduler.
- ``slurm``: one Slurm job array through submitit (:func:`run_slurm`), a task per pilot. Each task
  appends its own row under the table's lock, so the table and the bayescale cache must be on a
  shared filesystem, and the driver may die without losing a finished pilot. Use it on an HPC cluster
  whose nodes are reached through Slurm.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import sys
import time
import tomllib
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._io import toml_text
from ..errors import BayescaleError
from .guards import check_counts, die_with_parent, slurm_options_problem, table_problem
from .options import COOLDOWN, EXECUTORS
from .plan import PilotPlan, plan_pilot
from .shapes import ARCHES, non_embedding_params, shape_for, training_flops
from .train import PilotResult, recorded_ids, save_pilot, train_pilot
from .wsd import DEFAULT_COOLDOWNS, plan_wsd, train_wsd

#: Options of :func:`bayescale.runner.train_pilot` a sweep may set.
RUN_OPTIONS = (
    "arch",
    "seed",
    "corpus",
    "vocab_size",
    "seq_len",
    "batch_size",
    "lr_scale",
    "eval_tokens",
    "curve_points",
    "unique_tokens",
    "save_every_s",
    "keep_checkpoints",
    "compile",
    "schedule",
    "cooldowns",
    "cooldown",
)
SWEEP_KEYS = ("table", "arch", "corpus", "seeds", "grid", "run", "settings")
#: Options that change how a pilot is trained but not what it is (not in its run id).
TRAIN_ONLY = ("save_every_s", "keep_checkpoints", "compile")
#: Options of a WSD job (schedule = "wsd"): train_wsd's, not plan_pilot's.
WSD_OPTIONS = ("schedule", "cooldowns", "cooldown")
SCHEDULES = ("cosine", "wsd")
GRID_KEYS = ("n_params", "tokens_per_param", "tokens", "max_flops", "arch")


class SweepError(BayescaleError):
    """A sweep that cannot be run."""


@dataclass(frozen=True)
class Job:
    """One pilot of a sweep: ``n_params``, ``tokens`` and ``train_pilot`` options."""

    n_params: float
    tokens: float
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def wsd(self) -> bool:
        """A WSD job: one trunk and a cooldown branch per ``cooldowns`` point (one row each)."""
        return self.options.get("schedule", "cosine") == "wsd"

    @property
    def shape(self) -> Any:
        """The model the shape rule builds for the requested size (several sizes may build one)."""
        o = self.options
        return shape_for(
            self.n_params, o.get("arch", "llama"), vocab_size=o.get("vocab_size", 2048), seq_len=o.get("seq_len", 128)
        )

    @property
    def flops(self) -> float:
        """Analytic training FLOPs (the sweep's cost estimate and scheduling order); a WSD job's trunk
        (to its last branch's start) and every cooldown, once each."""
        shape = self.shape
        if not self.wsd:
            return training_flops(shape, self.tokens)
        fractions, c = self._wsd_settings().values()
        return training_flops(shape, self.tokens * ((1 - c) * max(fractions) + c * sum(fractions)))

    def _wsd_settings(self) -> dict[str, Any]:
        """A WSD job's ``cooldowns`` and ``cooldown`` (train_wsd's defaults where the sweep sets none)."""
        return {
            "cooldowns": self.options.get("cooldowns", DEFAULT_COOLDOWNS),
            "cooldown": self.options.get("cooldown", COOLDOWN),
        }

    def _plan_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k not in TRAIN_ONLY + WSD_OPTIONS}

    def plan(self) -> PilotPlan:
        """The pilot plan of this job (its run id, shape and hyperparameters; a WSD job's longest branch)."""
        return self.plans()[-1]

    def plans(self) -> list[PilotPlan]:
        """The plan of each row this job makes: one, or a WSD job's branches (shortest first)."""
        if not self.wsd:
            return [plan_pilot(self.n_params, self.tokens, **self._plan_options())]
        return plan_wsd(self.n_params, self.tokens, **self._wsd_settings(), **self._plan_options())[1]

    def label(self) -> str:
        o = self.options
        extra = (f" U={o['unique_tokens']:.3g}" if o.get("unique_tokens") else "") + (" wsd" if self.wsd else "")
        return f"{o.get('arch', 'llama')} N={self.n_params:.3g} D={self.tokens:.3g}{extra} seed={o.get('seed', 0)}"


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep: the runs table and the jobs."""

    table: Path
    jobs: tuple[Job, ...]
    path: Path | None = None


def _num_list(value: Any, where: str) -> list[float]:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise SweepError(f"{where} must be a positive number or a list of them; got {v!r}")
        out.append(float(v))
    if not out:
        raise SweepError(f"{where} is empty")
    return out


def _options(d: Mapping[str, Any], where: str) -> dict[str, Any]:
    bad = [k for k in d if k not in RUN_OPTIONS]
    if bad:
        raise SweepError(f"{where}: unknown option(s) {bad}; allowed: {list(RUN_OPTIONS)}")
    if "arch" in d and d["arch"] not in ARCHES:
        raise SweepError(f"{where}: arch={d['arch']!r} is not supported; allowed: {list(ARCHES)}")
    if "schedule" in d and d["schedule"] not in SCHEDULES:
        raise SweepError(f"{where}: schedule={d['schedule']!r} is not allowed; allowed: {list(SCHEDULES)}")
    if "cooldowns" in d:
        d = {**d, "cooldowns": _num_list(d["cooldowns"], f"{where} cooldowns")}
    return dict(d)


def _read(source: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, Any], Path, Path | None]:
    """The raw sweep, the folder its table path is relative to, and its file (None for a dict)."""
    if isinstance(source, Mapping):
        return dict(source), Path.cwd(), None
    path = Path(source)
    try:
        raw = tomllib.loads(toml_text(path, "sweep file"))
    except FileNotFoundError:
        raise SweepError(f"sweep file not found: {str(path)!r}") from None
    except IsADirectoryError:
        raise SweepError(f"sweep file {str(path)!r} is a folder; give the sweep's TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"sweep {str(path)!r} is not valid TOML: {exc}") from exc
    except ValueError as exc:  # not UTF-8
        raise SweepError(str(exc)) from None
    return raw, path.parent, path


def _grid_jobs(grid: Mapping[str, Any], common: dict[str, Any], seeds: list[int]) -> list[Job]:
    bad = [k for k in grid if k not in GRID_KEYS]
    if bad:
        raise SweepError(f"[grid]: unknown key(s) {bad}; allowed: {list(GRID_KEYS)}")
    if "n_params" not in grid or ("tokens_per_param" in grid) == ("tokens" in grid):
        raise SweepError("[grid] needs n_params and exactly one of tokens_per_param or tokens")
    archs = grid.get("arch", common.get("arch", "llama"))
    archs = archs if isinstance(archs, list) else [archs]
    for a in archs:
        if a not in ARCHES:
            raise SweepError(f"[grid]: arch={a!r} is not supported; allowed: {list(ARCHES)}")
    max_flops = _num_list(grid["max_flops"], "[grid] max_flops")[0] if "max_flops" in grid else math.inf
    jobs = []
    for a in archs:
        for n in _num_list(grid["n_params"], "[grid] n_params"):
            if "tokens_per_param" in grid:
                tokens = [n * r for r in _num_list(grid["tokens_per_param"], "[grid] tokens_per_param")]
            else:
                tokens = _num_list(grid["tokens"], "[grid] tokens")
            for d in tokens:
                for s in seeds:
                    job = Job(n, d, {**common, "arch": a, "seed": s})
                    if job.flops <= max_flops:
                        jobs.append(job)
    return jobs


def _run_jobs(runs: list[Any], common: dict[str, Any], seeds: list[int]) -> list[Job]:
    jobs = []
    for i, r in enumerate(runs):
        where = f"[[run]] #{i + 1}"
        if not isinstance(r, Mapping) or "n_params" not in r or "tokens" not in r:
            raise SweepError(f"{where} needs n_params and tokens")
        n = _num_list(r["n_params"], f"{where} n_params")[0]
        d = _num_list(r["tokens"], f"{where} tokens")[0]
        opts = _options({k: v for k, v in r.items() if k not in ("n_params", "tokens")}, where)
        for s in [opts.pop("seed")] if "seed" in opts else seeds:
            jobs.append(Job(n, d, {**common, **opts, "seed": s}))
    return jobs


def load_sweep(source: str | os.PathLike | Mapping[str, Any]) -> Sweep:
    """Parse a sweep (TOML path or dict; see the module docstring) into jobs.

    Examples
    --------
    >>> sweep = load_sweep({"table": "runs.csv", "grid": {"n_params": [3e4, 1e5], "tokens_per_param": [5, 20]}})
    >>> len(sweep.jobs)
    4
    """
    raw, base, path = _read(source)
    bad = [k for k in raw if k not in SWEEP_KEYS]
    if bad:
        raise SweepError(f"sweep: unknown key(s) {bad}; allowed: {list(SWEEP_KEYS)}")
    if "table" not in raw or not isinstance(raw["table"], str):
        raise SweepError("sweep: 'table' (the runs CSV to append to, relative to the sweep file) is required")
    table = Path(raw["table"])
    table = table if table.is_absolute() else base / table
    for key, kind, what in (
        ("grid", Mapping, "a table, [grid]"),
        ("settings", Mapping, "a table, [settings]"),
        ("run", list, "a list of tables, [[run]]"),
    ):
        if key in raw and not isinstance(raw[key], kind):
            raise SweepError(f"sweep: {key!r} must be {what}; got {raw[key]!r}")
    common = _options({k: raw[k] for k in ("arch", "corpus") if k in raw}, "sweep")
    common.update(_options(raw.get("settings", {}), "[settings]"))
    seeds = raw.get("seeds", [common.pop("seed", 0)])
    if not isinstance(seeds, list) or not seeds or not all(_is_seed(s) for s in seeds):
        raise SweepError(f"sweep: seeds must be a list of non-negative integers; got {seeds!r}")
    jobs = _grid_jobs(raw["grid"], common, seeds) if raw.get("grid") is not None else []
    jobs += _run_jobs(raw.get("run", []), common, seeds)
    if not jobs:
        raise SweepError("sweep has no runs: add a [grid] or [[run]] entries (or raise max_flops)")
    if not any(j.wsd for j in jobs) and any(k in j.options for j in jobs for k in WSD_OPTIONS[1:]):
        raise SweepError('sweep: cooldowns and cooldown need schedule = "wsd" (in [settings] or a [[run]])')
    # A cosine job (a [[run]] with schedule = "cosine") leaves the WSD options of [settings] aside.
    jobs = [
        j if j.wsd else replace(j, options={k: v for k, v in j.options.items() if k not in WSD_OPTIONS}) for j in jobs
    ]
    return Sweep(table, tuple(jobs), path)


# The names of earlier releases (a sweep file was called a plan), kept so user code keeps working.
load_plan = load_sweep
Plan = Sweep
PlanError = SweepError


def _is_seed(s: Any) -> bool:
    return isinstance(s, int) and not isinstance(s, bool) and s >= 0


def same_models(jobs: list[Job]) -> list[str]:
    """Warnings, in words, for requested sizes that build the same model (with the same seed and data):
    their rows share N (the hyperparameter rules take the built model's N, so they train alike), and
    the sweep has fewer sizes than it lists."""
    groups: dict[tuple, list[float]] = {}
    for job in jobs:
        s, o = job.shape, job.options
        groups.setdefault((s.arch, s.n_layer, s.d_model, o.get("seed", 0), o.get("unique_tokens"), job.wsd), []).append(
            job.n_params
        )
    return [
        f"requested sizes {', '.join(f'{n:.3g}' for n in sorted(set(sizes)))} build the same {arch} model ({layers} "
        f"layers x width {width}, N = {non_embedding_params(arch, layers, width):,}): their rows share N, so the "
        "sweep has fewer sizes than it lists (and a pilot at one D is trained once per size); space the sizes wider"
        for (arch, layers, width, *_), sizes in groups.items()
        if len(set(sizes)) > 1
    ]


def pending(sweep: Sweep) -> tuple[list[Job], list[str]]:
    """Jobs whose run id is not yet in the table, and the ids of those that are."""
    done = recorded_ids(sweep.table)
    todo, skipped = [], []
    for job in sweep.jobs:
        ids = [p.run_id for p in job.plans()]
        if all(rid in done for rid in ids):  # a WSD job is done once every branch has its row
            skipped.extend(ids)
        else:
            todo.append(job)
    return todo, skipped


# ----------------------------------------------------------------------------- workers


def _progress_printer(msg: dict) -> None:
    print(
        f"  [{msg['run_id']}] step {msg['step']}/{msg['steps']} eval loss {msg['eval_loss']:.4f}",
        file=sys.stderr,
        flush=True,
    )


def _train_job(job: Job, threads: int | None, device: str, quiet: bool) -> list[PilotResult]:
    """Train a job's pilot, or its WSD trunk and branches: one result per row."""
    train = {"threads": threads, "device": device, "on_progress": None if quiet else _progress_printer}
    if job.wsd:
        opts = {k: v for k, v in job.options.items() if k != "schedule"}
        return train_wsd(job.n_params, job.tokens, **train, **opts)
    return [train_pilot(job.n_params, job.tokens, **train, **job.options)]


_GPU_QUEUE = None


def _init_worker(queue, driver: int) -> None:
    """Tie each worker process to the sweep's ``driver`` (it exits when the driver is gone: a killed
    sweep leaves no worker training on unseen) and give it its own GPU (CUDA_VISIBLE_DEVICES), before
    torch starts."""
    global _GPU_QUEUE
    die_with_parent(driver)
    _GPU_QUEUE = queue
    if queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(queue.get())


def _gpu_count() -> int:
    try:
        import torch  # optional (the runner extra), and slow to import: only to count GPUs

        return torch.cuda.device_count()
    except ImportError:
        return 0


@dataclass
class SweepReport:
    """What a sweep did: finished run ids, skipped ones (already in the table), failures and time."""

    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


class _Progress:
    """Records each finished pilot in the report (and its row in the table, unless its worker did) and
    says how far the sweep is, by analytic FLOPs."""

    def __init__(self, todo: list[Job], table: Path, report: SweepReport, say: Callable[[str], None]):
        self.n, self.table, self.report, self.say = len(todo), table, report, say
        self.total = sum(j.flops for j in todo)
        self.done_flops, self.done = 0.0, 0
        self.t0 = time.perf_counter()

    def finished(self, job: Job, result=None, error: BaseException | None = None, saved: bool = False) -> None:
        self.done_flops += job.flops
        self.done += 1  # jobs, not rows: a WSD job makes a row per branch
        elapsed = time.perf_counter() - self.t0
        eta = elapsed * (self.total - self.done_flops) / self.done_flops if self.done_flops else float("nan")
        if error is not None:
            self.report.failed.append((job.label(), f"{type(error).__name__}: {error}"))
            self.say(f"[{self.done}/{self.n}] FAILED {job.label()}: {type(error).__name__}: {error}")
            return
        for i, r in enumerate(result, 1):  # one row, or one per WSD branch
            if not saved:
                save_pilot(r, self.table)
            row = r.row
            self.report.finished.append(row["run_id"])
            which = f"{self.done}/{self.n}" + (f", branch {i} of {len(result)}" if len(result) > 1 else "")
            self.say(
                f"[{which}] {row['run_id']}: loss {row['loss']:.4f} in {row['wall_s']:.0f} s "
                f"({100 * self.done_flops / self.total:.0f}% of FLOPs, {elapsed:.0f} s elapsed, about {eta:.0f} s left)"
            )


def run_sweep(
    sweep: Sweep | str | os.PathLike | Mapping[str, Any],
    *,
    executor: str = "process",
    workers: int | None = None,
    address: str | None = None,
    device: str = "auto",
    threads_per_pilot: int | None = None,
    slurm: Mapping[str, Any] | None = None,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
) -> SweepReport:
    """Run every pilot of ``sweep`` not yet in its table, in parallel, appending each row as it finishes.

    Parameters
    ----------
    sweep : Sweep, path or dict
        A parsed sweep, or a sweep file or dict for :func:`load_sweep`.
    executor : {"process", "ray", "slurm", "serial"}
        ``process``: a local process pool, one core per pilot on CPU (``workers`` defaults to the
        number of cores) or one GPU per pilot when torch sees GPUs (``workers`` = their number).
        ``ray``: Ray tasks (``ray.init(address=address)``; None starts a local Ray), each asking for
        ``threads_per_pilot`` CPUs and one GPU when the cluster has GPUs, so Ray's scheduler places
        them. ``slurm``: one Slurm job array through submitit, one task per pilot, each appending its
        own row (see :func:`run_slurm`). ``serial``: one after the other in this process.
    device : {"auto", "cpu", "cuda"}
    threads_per_pilot : int, optional
        torch threads per pilot (default 1 on CPU with several workers).
    slurm : mapping, optional
        Options of the ``slurm`` executor (see :func:`run_slurm`).
    quiet : bool
        Do not print each pilot's eval points.
    log : callable, optional
        Where progress lines go (default: stderr).

    Returns
    -------
    SweepReport
        A pilot that fails is reported (run label and error) and the others go on.
    """
    sweep = sweep if isinstance(sweep, Sweep) else load_sweep(sweep)
    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    if executor not in EXECUTORS:
        raise SweepError(f"executor={executor!r} is not allowed; allowed: {list(EXECUTORS)}")
    check_counts({"workers": workers, "threads_per_pilot": threads_per_pilot}, SweepError)
    check_sweep_table(sweep.table)
    if executor == "slurm":
        check_slurm(slurm or {})
    todo, skipped = pending(sweep)
    todo.sort(key=lambda j: -j.flops)  # largest first: better packing, and the stragglers are short
    progress = _Progress(todo, sweep.table, SweepReport(skipped=skipped), say)
    say(
        f"sweep: {len(todo)} pilot(s) to run ({progress.total:.3g} FLOPs, analytic), {len(skipped)} already in {sweep.table}"
    )
    for message in same_models(list(sweep.jobs)):
        say(f"warning: {message}")
    if executor == "serial" or not todo:
        for job in todo:
            try:
                progress.finished(job, _train_job(job, threads_per_pilot, device, quiet))
            except Exception as exc:  # noqa: BLE001 (report it and go on with the other pilots)
                progress.finished(job, error=exc)
    elif executor == "process":
        _run_pool(todo, workers, device, threads_per_pilot, quiet, progress.finished)
    elif executor == "ray":
        _run_ray(todo, address, device, threads_per_pilot, quiet, progress.finished)
    else:
        run_slurm(todo, sweep.table, device, threads_per_pilot, quiet, progress.finished, **(slurm or {}))
    report = progress.report
    report.seconds = time.perf_counter() - progress.t0
    say(
        f"sweep: {len(report.finished)} finished, {len(report.failed)} failed, {len(report.skipped)} skipped in {report.seconds:.0f} s"
    )
    return report


def check_sweep_table(table: Path) -> None:
    """Refuse, before any pilot trains, a sweep whose table cannot take the rows (its folder missing,
    read-only, not a runs table: :func:`bayescale.runner.guards.table_problem`)."""
    problem = table_problem(table)
    if problem:
        raise SweepError(f"sweep table {str(table)!r}: {problem}; nothing was trained")


def check_slurm(options: Mapping[str, Any]) -> None:
    """Refuse, before anything is planned, a Slurm sweep that submitit would refuse: no Slurm here, or
    a parameter it does not know or a value of the wrong type (:func:`bayescale.runner.guards.slurm_options_problem`)."""
    problem = slurm_options_problem(options)
    if problem:
        raise SweepError(f"{problem}; nothing was trained")


def _run_pool(todo, workers, device, threads, quiet, finished) -> None:
    ctx = mp.get_context("spawn")
    gpus = _gpu_count() if device != "cpu" else 0
    queue = None
    if gpus:
        workers = min(workers or gpus, gpus)
        queue = ctx.Queue()
        for g in range(gpus):
            queue.put(g)
    else:
        workers = workers or os.cpu_count() or 1
        threads = threads or max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(queue, os.getpid())
    )
    try:
        futures = {pool.submit(_train_job, job, threads, device, quiet): job for job in todo}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                exc = f.exception()
                finished(futures[f], None if exc else f.result(), exc)
    except BaseException:
        # Ctrl-C (or an error recording a row): stop the workers now rather than wait for their pilots,
        # which shutdown(wait=True) would do, unrecorded. Their checkpoints are kept; a rerun resumes them.
        for proc in list(getattr(pool, "_processes", {}).values()):  # the executor has no public handle
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _run_ray(todo, address, device, threads, quiet, finished) -> None:
    try:
        import ray  # optional (the ray extra)
    except ImportError as exc:
        raise SweepError("executor='ray' needs Ray: pip install 'ray[default]'") from exc
    started = False
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=not quiet)
        started = True
    try:
        gpus = ray.cluster_resources().get("GPU", 0) if device != "cpu" else 0
        threads = threads or 1
        task = ray.remote(num_cpus=threads, num_gpus=1 if gpus else 0)(_train_job)
        refs = {task.remote(job, threads, device, quiet): job for job in todo}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    finished(refs[ref], ray.get(ref))
                except Exception as exc:  # noqa: BLE001 (a task error arrives as a RayTaskError)
                    finished(refs[ref], error=exc)
    finally:
        if started:
            ray.shutdown()


def _train_and_save(job: Job, table: str, threads: int | None, device: str, quiet: bool):
    """One task of a Slurm job array: train the pilot (resuming from its checkpoint) and append its row
    to ``table`` itself, under the table's lock, so a sweep whose driver is gone loses no row."""
    results = _train_job(job, threads, device, quiet)
    for r in results:
        save_pilot(r, table)
    return results


def run_slurm(
    todo: list[Job],
    table: Path,
    device: str,
    threads: int | None,
    quiet: bool,
    finished: Callable[..., None],
    *,
    cluster: str = "slurm",
    folder: str | os.PathLike | None = None,
    poll_s: float = 10.0,
    **parameters: Any,
) -> None:
    """Run ``todo`` as one job array through submitit and wait for it.

    Each task trains one pilot and appends its row to ``table`` itself (:func:`bayescale.append_run`
    under the table's lock), so the table and the bayescale cache (``$BAYESCALE_CACHE``, where the
    tokenized corpus and the checkpoints live) must be on a filesystem every node sees. Running the
    sweep again submits only the pilots not yet in the table, each resuming from its last checkpoint.

    Parameters
    ----------
    cluster : str
        submitit's executor: ``"slurm"``, or ``"local"`` to run the tasks as local processes (tests).
    folder : path, optional
        submitit's logs and pickles (default: ``TABLE_slurm/`` beside the table; one folder per task).
    poll_s : float
        Seconds between checks on the tasks.
    **parameters
        submitit's parameters (``timeout_min``, ``mem_gb``, ``cpus_per_task``, ``gpus_per_node``,
        ``slurm_partition``, ``slurm_array_parallelism``, ``slurm_account``, ...); by default one task
        asks for ``threads`` CPUs (1), one GPU when ``device="cuda"``, and 24 hours.
    """
    try:
        import submitit  # optional (the slurm extra)
    except ImportError as exc:
        raise SweepError("executor='slurm' needs submitit: pip install 'bayescale[slurm]'") from exc
    threads = threads or 1
    folder = Path(folder) if folder is not None else table.with_name(table.stem + "_slurm")
    check_slurm({"cluster": cluster, **parameters})  # one line, not submitit's traceback
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
    defaults = {"name": "bayescale-sweep", "timeout_min": 24 * 60, "nodes": 1, "tasks_per_node": 1}
    defaults.update(cpus_per_task=threads, gpus_per_node=1 if device == "cuda" else 0)
    executor.update_parameters(**{**defaults, **parameters})
    n = len(todo)
    tasks = executor.map_array(_train_and_save, todo, [str(table)] * n, [threads] * n, [device] * n, [quiet] * n)
    pending = list(zip(tasks, todo, strict=True))
    while pending:
        for task, job in [p for p in pending if p[0].done()]:
            pending.remove((task, job))
            try:
                finished(job, task.result(), saved=True)
            except Exception as exc:  # noqa: BLE001 (a failed task: report it and go on with the others)
                finished(job, error=exc)
        if pending:
            time.sleep(poll_s)


__all__ = ["EXECUTORS", "Job", "Sweep", "SweepError", "SweepReport", "load_sweep", "run_slurm", "run_sweep"]
