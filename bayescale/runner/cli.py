"""``bayescale pilot``: train one pilot, plan one (``--dry-run``), or run a sweep (torch is imported only to train).

Like the other command modules (:mod:`bayescale.cli`), this one imports the heavy stack lazily: the
sweep, WSD and training modules (pandas, and torch to train) load inside the commands, so building
the parser for ``--help`` loads none of them.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from typing import Any

from .._io import jsonable  # NaN as null: json.dumps writes NaN, which strict parsers refuse
from .._stages import Stages
from ..errors import BayescaleError, seed_argument
from .models import PilotError
from .options import COOLDOWN, EXECUTORS
from .plan import PilotPlan, available_memory, micro_batch, plan_pilot
from .shapes import check_size, non_embedding_params


def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


#: A negative number, as an option's value (argparse takes any other word starting with "-" for an
#: option). Python 3.11 and 3.12's own pattern misses exponents, so ``--tokens -3e5`` was "expected
#: one argument" instead of the value's own error; 3.13's already takes them.
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _negative_values(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``p``, reading negative numbers in exponent notation as values (argparse's matcher: none of
    ``p``'s options looks like a number, so none is shadowed)."""
    p._negative_number_matcher = NEGATIVE_NUMBER
    return p


def _pilot_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bayescale pilot",
        description="Train one pilot language model of about N non-embedding parameters on D tokens, evaluate its "
        "held-out loss (nats per token) and append one row to a runs table. Run the same command again to resume "
        "a killed pilot. `bayescale pilot sweep SWEEP.toml` runs many.",
    )
    p.add_argument("--n-params", type=float, metavar="N", help="non-embedding parameters, e.g. 2e6 (required)")
    p.add_argument("--tokens", type=float, required=True, metavar="D", help="training tokens, e.g. 2e7")
    p.add_argument(
        "--branch-of",
        metavar="TRUNK_ID",
        help="train one more cooldown branch of D tokens off this WSD trunk, trained earlier with --keep-checkpoints "
        "(its settings, --work-dir the trunk's); one row like its other branches",
    )
    p.add_argument("--arch", default="llama", choices=("llama", "gpt2", "lstm"), help="architecture (default llama)")
    p.add_argument("--seed", type=seed_argument, default=0)
    p.add_argument("--append", metavar="RUNS.csv", help="runs table to append the row to (curves go beside it)")
    p.add_argument("--corpus", default="stdlib", help="'stdlib' (default), a text file, folder or glob, or hf:NAME")
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, help="sequences per step (default: the batch rule)")
    p.add_argument(
        "--lr-scale",
        type=float,
        help="factor on Kaplan et al.'s learning-rate rule (default 3, see bayescale.runner.shapes.LR_SCALE)",
    )
    p.add_argument("--eval-tokens", type=int, default=65536, help="held-out tokens per evaluation (default 65536)")
    p.add_argument("--curve-points", type=int, default=8, help="points on the eval-loss curve (default 8)")
    p.add_argument(
        "--unique-tokens",
        type=float,
        metavar="U",
        help="repeated data: train the D tokens on a fixed pool of U unique tokens (D/U epochs); default: no repetition",
    )
    p.add_argument(
        "--schedule",
        default="cosine",
        choices=("cosine", "wsd"),
        help="cosine (default: one pilot) or wsd: one constant-rate trunk and a cooldown branch per --cooldowns point",
    )
    p.add_argument(
        "--cooldowns",
        type=_fractions,
        metavar="F,F,...",
        help="wsd: fractions of the tokens where branches end (default 0.25,0.5,1.0); each branch is one row",
    )
    p.add_argument(
        "--cooldown", type=float, default=COOLDOWN, help=f"wsd: share of each branch spent cooling down ({COOLDOWN})"
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument(
        "--compile",
        action="store_true",
        help="compile the model with torch.compile (faster on a GPU once compiled; the compilation takes a minute or more)",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--work-dir", help="checkpoint folder (default: the bayescale cache)")
    p.add_argument(
        "--save-every", type=float, default=60.0, metavar="SECONDS", help="seconds between checkpoints (default 60)"
    )
    p.add_argument("--keep-checkpoints", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print the shape, hyperparameters and run id; train nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the stages and eval points")
    p.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="json: the trained rows as JSON (a dry run: the plan as JSON)",
    )
    return _negative_values(p)


#: The sweep file's format, for ``--help`` (the full description: :mod:`bayescale.runner.sweep`).
_SWEEP_FORMAT = """SWEEP.toml, e.g.:
  table = "runs.csv"              # the runs table, relative to the sweep file
  seeds = [0]
  [grid]                          # every n_params x tokens_per_param x seed
  n_params = [3e4, 1e5, 3e5]
  tokens_per_param = [5, 15, 45]
  [[run]]                         # optional explicit runs (any pilot option)
  n_params = 1e5
  tokens = 2e6
  [settings]                      # optional pilot options for every run
  eval_tokens = 65536
  schedule = "wsd"                # one trunk per job, a row per cooldowns point
  cooldowns = [0.25, 0.5, 1.0]
--dry-run lists each pilot with the N its shape builds and marks those already in the table."""


def _sweep_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bayescale pilot sweep",
        description="Run every pilot of SWEEP.toml that is not yet in its table, in parallel; rows are appended as "
        "pilots finish, so a killed sweep resumes where it stopped.",
        epilog=_SWEEP_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sweep", metavar="SWEEP.toml")
    p.add_argument(
        "--executor",
        default="process",
        choices=EXECUTORS,
        help="local process pool (default), a Ray cluster, a Slurm job array (submitit), or one at a time",
    )
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument(
        "--workers", type=int, help="parallel pilots for the process pool (default: one per core, or per GPU)"
    )
    p.add_argument("--threads-per-pilot", type=int, help="torch threads per pilot (default: cores / workers)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--dry-run", action="store_true", help="list the pilots and their FLOPs; train nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="only one line per finished pilot")
    s = p.add_argument_group("slurm", "options of --executor slurm (one job array through submitit)")
    s.add_argument("--partition", help="Slurm partition (default: the cluster's)")
    s.add_argument("--time-min", type=int, default=24 * 60, help="time limit per pilot, minutes (default 1440)")
    s.add_argument("--max-parallel", type=int, help="pilots running at once (the array's %%N; default: no limit)")
    s.add_argument("--slurm-folder", help="submitit's logs (default: TABLE_slurm/ beside the table)")
    s.add_argument(
        "--slurm-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other submitit parameter, e.g. mem_gb=16 or slurm_account=lab (repeatable)",
    )
    s.add_argument("--cluster", default="slurm", choices=("slurm", "local"), help="'local' runs the array here")
    return _negative_values(p)


def _slurm_options(a: argparse.Namespace) -> dict[str, Any]:
    """The ``slurm`` options of :func:`bayescale.runner.run_sweep` from the sweep command's flags."""
    from .guards import slurm_problem
    from .sweep import SweepError

    options: dict[str, Any] = {"cluster": a.cluster, "folder": a.slurm_folder, "timeout_min": a.time_min}
    if a.partition:
        options["slurm_partition"] = a.partition
    if a.max_parallel is not None:
        options["slurm_array_parallelism"] = a.max_parallel
    for item in a.slurm_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SweepError(f"--slurm-option {item!r} must be KEY=VALUE")
        for kind in (int, float):
            try:
                value = kind(value)
                break
            except ValueError:
                continue
        problem = slurm_problem(key, value)
        if problem:
            raise SweepError(f"--slurm-option {item!r}: {problem}; nothing was trained")
        options[key] = value
    return options


def _print_wsd(trunk: PilotPlan, branches: list[PilotPlan]) -> None:
    _print_plan(trunk, "one per branch, below")
    print(f"trunk       {branches[0].branch['trunk_id']}: constant learning rate to step {trunk.hyper.steps}")
    for p in branches:
        b = p.branch
        print(
            f"branch      {p.run_id}: off step {b['branch_step']}, {b['cooldown_steps']} cooldown steps "
            f"({b['decay']}), D = {p.tokens_trained:,}"
        )


def _print_plan(plan: PilotPlan, run_id: str | None = None) -> None:
    s, h = plan.shape, plan.hyper
    print(f"run id      {run_id or plan.run_id}")
    built = non_embedding_params(s.arch, s.n_layer, s.d_model)
    print(
        f"shape       {s.arch}: {s.n_layer} layers, width {s.d_model}, {s.n_head} heads, ffn {s.d_ff}, context {s.seq_len}, "
        f"vocab {s.vocab_size}: N = {built:,} non-embedding parameters (requested {plan.n_params:.3g})"
    )
    print(
        f"training    {plan.tokens_trained:,} tokens = {h.steps} steps x {h.batch_size} sequences; "
        f"lr {h.lr:.3g} ({h.schedule}, warmup {h.warmup_steps}); AdamW wd {h.weight_decay}"
    )
    if plan.unique_tokens is not None:
        u = plan.unique_tokens
        print(f"data        {u:,} unique tokens repeated for {plan.tokens_trained / u:.3g} epochs")
    m, free = plan.memory, available_memory()
    room = "" if free is None else f"; {free / 2**30:.3g} GiB free here" + _fits_here(plan)
    print(
        f"memory      about {m['total'] / 2**30:.3g} GiB (weights, gradients and AdamW state {m['state'] / 2**30:.3g} GiB, "
        f"activations at batch {h.batch_size} {m['activations'] / 2**30:.3g} GiB){room}"
    )


def _dry_run(a: argparse.Namespace, wsd: bool, opts: dict[str, Any]) -> int:
    """Plan the pilot (or the WSD trunk and its branches) and print it, as text or ``--format json``."""
    from .wsd import plan_wsd

    trunk, branches = plan_wsd(a.n_params, a.tokens, **opts) if wsd else (plan_pilot(a.n_params, a.tokens, **opts), [])
    if a.format == "json":
        out = {"trunk": _plan_dict(trunk), "branches": [_plan_dict(b) for b in branches]} if wsd else _plan_dict(trunk)
        print(json.dumps(jsonable(out), default=str, indent=1))
    elif wsd:
        _print_wsd(trunk, branches)
    else:
        _print_plan(trunk)
    if not wsd:
        _warn_few_steps(trunk)
    return 0


def _plan_dict(plan: PilotPlan) -> dict[str, Any]:
    """A dry run's plan for ``--format json``: what :func:`_print_plan` prints, as values."""
    s = plan.shape
    built = non_embedding_params(s.arch, s.n_layer, s.d_model)
    return {
        "run_id": plan.run_id,
        "N": built,
        "tokens": plan.tokens_trained,
        "memory_bytes": plan.memory,
        **plan.config,
    }


def _fits_here(plan: PilotPlan) -> str:
    """How the pilot fits in this machine's memory, when its whole batch does not (CPU training)."""
    try:
        micro = micro_batch(plan, "cpu")
    except PilotError:
        return " (TOO LARGE to train here)"
    return "" if micro == plan.hyper.batch_size else f" (here in passes of {micro} sequences, gradients accumulated)"


def _plan_options(a: argparse.Namespace) -> dict[str, Any]:
    """The :func:`bayescale.runner.plan_pilot` options of ``bayescale pilot``'s flags."""
    names = ("arch", "seed", "corpus", "vocab_size", "seq_len", "batch_size", "lr_scale", "eval_tokens")
    return {**{k: getattr(a, k) for k in names}, "curve_points": a.curve_points, "unique_tokens": a.unique_tokens}


def _print_row(row: dict[str, Any]) -> None:
    mfu = row.get("mfu", float("nan"))
    speed = (
        f", MFU {mfu:.0%} of {row['peak_tflops']:.0f} TFLOP/s" if isinstance(mfu, float) and math.isfinite(mfu) else ""
    )
    print(
        f"{row['run_id']}: N={row['N']:,} (total {row['N_total']:,}), D={row['D']:,}, loss {row['loss']:.4f} nats/token "
        f"(perplexity {row['perplexity']:.2f}; unigram entropy {row['unigram_entropy']:.3f}), {row['wall_s']:.0f} s on {row['device']}{speed}"
    )


def cmd_pilot(args: argparse.Namespace) -> int:
    rest = list(args.rest)
    if rest and rest[0] == "sweep":
        return _cmd_sweep(_sweep_parser().parse_args(rest[1:]))
    a = _pilot_parser().parse_args(rest)
    _check_flags(a, ("threads", "batch_size", "vocab_size", "eval_tokens", "curve_points"))
    if not (math.isfinite(a.save_every) and a.save_every >= 0):
        raise PilotError(f"--save-every {a.save_every:g} is not allowed; allowed: seconds >= 0 (0: every step)")
    if a.branch_of is not None:
        return _cmd_branch(a, _given_plan_options(rest))
    if a.n_params is None:
        raise PilotError("--n-params is required (or --branch-of TRUNK_ID, to branch off a trunk trained earlier)")
    check_size(a.n_params, a.arch)  # a refused size answers at once, with its error line only
    stage = Stages(quiet=a.quiet)
    stage(
        f"planning the pilot; the tokenizer and token arrays of corpus {a.corpus!r} are built on first use, then cached"
    )
    from .train import train_pilot  # after parsing: --help and usage errors load neither
    from .wsd import DEFAULT_COOLDOWNS, train_wsd

    opts = _plan_options(a)
    wsd = a.schedule == "wsd"
    if a.cooldowns is not None and not wsd:
        raise PilotError("--cooldowns needs --schedule wsd")
    if wsd:
        opts.update(cooldowns=a.cooldowns or DEFAULT_COOLDOWNS, cooldown=a.cooldown)
    if a.append:  # a table that cannot take the row is said before the training (or in the dry run), not after it
        _check_table(a.append)
    if a.dry_run:
        return _dry_run(a, wsd, opts)
    if not wsd:
        _warn_few_steps(plan_pilot(a.n_params, a.tokens, **opts))
    opts.update(device=a.device, compile=a.compile, threads=a.threads, work_dir=a.work_dir, save_every_s=a.save_every)
    opts.update(keep_checkpoints=a.keep_checkpoints, on_progress=None if a.quiet else _progress)
    stage(f"training {'a WSD trunk and its branches' if wsd else 'the pilot'} on device {a.device}")
    results = train_wsd(a.n_params, a.tokens, **opts) if wsd else [train_pilot(a.n_params, a.tokens, **opts)]
    said = [_save(result, a.append, stage) for result in results] if a.append else []
    rows = [r.row for r in results]
    if a.format == "json":
        print(json.dumps(jsonable(rows if wsd else rows[0]), default=str, indent=1))
    else:
        for row in rows:
            _print_row(row)
        print("\n".join(said) if said else "not written to a runs table (give --append RUNS.csv to record it)")
    return 0


#: Fewer optimizer steps than this and a pilot's loss says little about the law (its D is mostly warmup).
MIN_STEPS = 10


def _warn_few_steps(plan: PilotPlan) -> None:
    h = plan.hyper
    if h.steps < MIN_STEPS:
        batch = h.batch_size * plan.shape.seq_len
        print(
            f"warning: this pilot trains only {h.steps} optimizer step{'s' if h.steps != 1 else ''} ({plan.tokens_trained:,} "
            f"tokens: D is rounded up to whole batches of {batch:,}); its loss says little about the law. Give --tokens "
            f"of at least {MIN_STEPS * batch:,} ({MIN_STEPS} batches)",
            file=sys.stderr,
        )


def _check_table(table: str) -> None:
    """Refuse, before any training, a ``--append`` table the row cannot go to (its folder missing, a
    folder, a read-only file, a file that is not a valid runs table: :func:`bayescale.runner.guards.table_problem`)."""
    from .guards import table_problem  # loads pandas: when a pilot runs, not for --help

    problem = table_problem(table)
    if problem:
        raise PilotError(f"--append {table!r}: {problem}; nothing was trained")


def _save(result: Any, table: str, stage: Stages) -> str:
    """Append the pilot's row to ``table`` and say what happened (a run id already there is kept, not doubled)."""
    from .train import recorded_ids, save_pilot

    run_id = result.row["run_id"]
    before = recorded_ids(table)
    stage(f"appending {run_id} to {table}")
    save_pilot(result, table)
    return (
        f"{run_id} was already in {table}; not appended again" if run_id in before else f"appended {run_id} to {table}"
    )


#: The flags that plan a pilot (their ``_pilot_parser`` dests); a branch trained later takes its trunk's.
PLAN_FLAGS = (
    "n_params",
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
    "schedule",
    "cooldowns",
    "cooldown",
)


def _given_plan_options(rest: list[str]) -> dict[str, Any]:
    """The plan flags written on the command line ``rest`` (parsed again with no defaults)."""
    p = _pilot_parser()
    p.set_defaults(**dict.fromkeys(PLAN_FLAGS))
    a = p.parse_args(rest)
    return {k: getattr(a, k) for k in PLAN_FLAGS if getattr(a, k) is not None}


def _cmd_branch(a: argparse.Namespace, given: dict[str, Any]) -> int:
    """``bayescale pilot --branch-of TRUNK_ID --tokens D``: one more branch off a trunk trained earlier."""
    from .wsd import check_branch_options, plan_branch, train_branch

    stage = Stages(quiet=a.quiet)
    stage(f"planning a branch of {a.tokens:.4g} tokens off trunk {a.branch_of}")
    later = plan_branch(a.branch_of, a.tokens, a.work_dir)
    check_branch_options(later, given)
    if a.append:
        _check_table(a.append)
    if a.dry_run and a.format == "json":
        print(json.dumps(jsonable({**_plan_dict(later.plan), "from_step": later.from_step}), default=str, indent=1))
        return 0
    if a.dry_run:
        _print_branch(later)
        return 0
    stage(f"training the branch on device {a.device}, from the trunk's checkpoint at step {later.from_step}")
    result = train_branch(
        a.branch_of,
        a.tokens,
        device=a.device,
        compile=a.compile,
        threads=a.threads,
        work_dir=a.work_dir,
        save_every_s=a.save_every,
        keep_checkpoints=a.keep_checkpoints,
        on_progress=None if a.quiet else _progress,
    )
    said = (
        _save(result, a.append, stage)
        if a.append
        else "not written to a runs table (give --append RUNS.csv to record it)"
    )
    if a.format == "json":
        print(json.dumps(jsonable(result.row), default=str, indent=1))
    else:
        _print_row(result.row)
        print(said)
    return 0


def _print_branch(later) -> None:
    plan, b = later.plan, later.branch
    _print_plan(plan)
    print(
        f"branch      of {plan.branch['trunk_id']}: from its checkpoint at step {later.from_step}, constant learning "
        f"rate to step {b.start}, then {b.cooldown_steps} cooldown steps ({plan.branch['decay']}), D = {plan.tokens_trained:,}"
    )


def _progress(msg: dict) -> None:
    print(f"  step {msg['step']}/{msg['steps']}: eval loss {msg['eval_loss']:.4f}", file=sys.stderr, flush=True)


def _check_flags(a: argparse.Namespace, counts: tuple[str, ...]) -> None:
    """Refuse, before anything is planned, a count flag (its ``argparse`` dest) that is not a positive integer."""
    from .guards import check_counts

    flags = {"--" + name.replace("_", "-"): getattr(a, name) for name in counts}
    check_counts(flags, PilotError)


def _cmd_sweep(a: argparse.Namespace) -> int:
    from .sweep import check_sweep_table, load_sweep, pending, run_sweep, same_models

    _check_flags(a, ("workers", "threads_per_pilot", "max_parallel", "time_min"))
    sweep = load_sweep(a.sweep)
    if a.dry_run:
        check_sweep_table(sweep.table)  # the run would refuse it before training: so does its preview
        todo, _ = pending(sweep)  # plans every pilot: a bad option is refused here, as the run would
        total = 0.0
        for job in sorted(sweep.jobs, key=lambda j: j.flops):
            s, done = job.shape, job not in todo
            total += 0.0 if done else job.flops
            built = non_embedding_params(s.arch, s.n_layer, s.d_model)
            print(
                f"{job.label():40s} {job.flops:.3g} FLOPs (builds N = {built:,}){' already in the table' if done else ''}"
            )
        print(f"{len(todo)} of {len(sweep.jobs)} pilots to run, {total:.3g} FLOPs (analytic) -> {sweep.table}")
        for message in same_models(list(sweep.jobs)):
            print(f"warning: {message}", file=sys.stderr)
        return 0
    report = run_sweep(
        sweep,
        executor=a.executor,
        workers=a.workers,
        address=a.address,
        device=a.device,
        threads_per_pilot=a.threads_per_pilot,
        slurm=_slurm_options(a) if a.executor == "slurm" else None,
        quiet=a.quiet,
    )
    for label, err in report.failed:
        print(f"failed: {label}: {err}", file=sys.stderr)
    return 1 if report.failed else 0


def _configure(p: argparse.ArgumentParser) -> None:
    """Fill in the ``pilot`` subparser. It takes no arguments itself: the ``bayescale.cli``
    registry marks ``pilot`` as parsing its own, hands it the rest of the command line as
    ``args.rest``, and :func:`cmd_pilot` reads that with the pilot or the sweep parser."""
    p.description = (
        "Train pilots: `bayescale pilot --n-params 2e6 --tokens 2e7 --append runs.csv` or "
        "`bayescale pilot sweep SWEEP.toml`; see `bayescale pilot --help` and `bayescale pilot sweep --help`."
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        return cmd_pilot(args)
    except SystemExit as e:  # --help and usage errors of the inner parsers
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback through torch
        print(
            "bayescale: interrupted; run the same command again to resume (finished pilots, their rows and the last "
            "checkpoints are kept)",
            file=sys.stderr,
        )
        return 130


#: Verb -> the function that fills in its parser (the ``bayescale.cli`` registry calls it).
PARSERS = {"pilot": _configure}


__all__ = ["BayescaleError", "cmd_pilot"]
