"""``bayescale suggest | loop``: which pilot runs to train next, and the closed loop.

::

    bayescale suggest FIT.nc --target N=7e9,D=1.4e12 --budget-flops 1e19 -k 4
    bayescale suggest FIT.nc --target N=7e9,D=1.4e12 --target N=1.4e10,D=2.8e12,weight=2 --budget-flops 1e19
    bayescale suggest FIT.nc --target-file points.csv --budget-flops 1e19      # columns N, D[, weight]
    bayescale suggest FIT.nc --target nopt:C=1e21 --budget-flops 1e19
    bayescale suggest FIT.nc --target C=1e21 --threshold 2.1 --budget-flops 1e19
    bayescale loop CONFIG.toml [--max-rounds N]

Like all of :mod:`bayescale.cli`, it imports the heavy stack lazily: :mod:`bayescale.active`
and pandas inside the command functions, so building these parsers stays cheap.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from typing import Any

from bayescale.errors import BayescaleError, seed_argument

from ._common import _flops, _print_json, _say_cautions, _say_fit_problems, _stages, _with_readable_warnings, load_fit


def _target(args: argparse.Namespace) -> Any:
    """One target (``--target`` once), a region of points (``--target`` repeated), or the points of
    ``--target-file``; an error names the item."""
    from bayescale.active import parse_target

    given = list(args.target or [])
    if bool(given) == bool(args.target_file):
        which = "not both" if given else "none was given"
        raise BayescaleError(f"give --target (once, or repeated for a region of points) or --target-file ({which})")
    if args.target_file:
        frame = _frame(args.target_file, "--target-file")
        if args.threshold is not None:
            raise BayescaleError("--threshold applies to one --target point, not to --target-file")
        try:
            return parse_target(frame)
        except BayescaleError as e:
            raise BayescaleError(f"--target-file {args.target_file!r}: {e}") from None
    if len(given) == 1 and not re.search(r"(^|,)\s*weight\s*=", given[0]):  # with a weight: a region of one point
        try:
            return parse_target(given[0], args.threshold)
        except BayescaleError as e:
            raise BayescaleError(f"--target {given[0]!r}: {e}") from None
    if args.threshold is not None:
        raise BayescaleError("--threshold applies to one --target point, not to a region of several")
    try:
        return parse_target(given)
    except BayescaleError as e:
        raise BayescaleError(f"--target (repeated): {e}") from None


def _frame(path: str | None, flag: str) -> Any:
    if path is None:
        return None
    from bayescale._runs_input import read_points_csv

    frame = read_points_csv(path, flag)
    if frame.empty and flag == "--candidates":  # over nothing the plan would end "the budget is spent"
        raise BayescaleError(f"{flag}: {path!r} has no rows; give one point per line with columns N and D (or N and C)")
    return frame


def cmd_suggest(args: argparse.Namespace) -> int:
    from bayescale.active import suggest

    _flops(args.budget_flops, "--budget-flops")
    if args.k < 1:
        raise BayescaleError(f"-k must be at least 1, got {args.k}")
    for flag, value in (("--discrepancy", args.discrepancy), ("--tolerance", args.tolerance)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise BayescaleError(f"{flag} must be a finite number >= 0, got {value!r}")
    if args.max_replicates < 1:
        raise BayescaleError(f"--max-replicates must be at least 1, got {args.max_replicates}")
    target = _target(args)
    stage = _stages(args)
    stage(f"loading the fit {args.fit}")
    fit = load_fit(args.fit)
    _say_fit_problems(fit)
    _say_cautions(fit)
    stage(f"planning the next {args.k} runs for {args.budget_flops:g} FLOPs ({args.planner} planner)")
    sug = suggest(
        fit,
        target,
        budget_flops=args.budget_flops,
        k=args.k,
        candidates=_frame(args.candidates, "--candidates"),
        pending=_frame(args.pending, "--pending"),
        max_replicates=args.max_replicates,
        discrepancy=args.discrepancy,
        tolerance=args.tolerance,
        seed=args.seed,
        planner=args.planner,
        robust=args.robust,
    )
    if args.format == "json":
        _print_json(sug.to_dict())
    else:
        print(sug.summary())
    return 0


def cmd_loop(args: argparse.Namespace) -> int:
    from bayescale.active import run_loop

    stage = _stages(args)
    res = _with_readable_warnings(
        lambda: run_loop(args.config, log=None if args.quiet else stage, max_rounds=args.max_rounds)
    )
    if args.format == "json":
        print(
            json.dumps(
                {
                    "reason": res.reason,
                    "spent": res.spent,
                    "state": str(res.state_path),
                    "history": res.history.to_dict(orient="records"),
                    "surprises": list(res.surprises),
                },
                indent=2,
                default=float,
            )
        )
    else:
        print(res.summary())
    return 0


# ------------------------------------------------------------------ parsers


def _suggest_parser(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Plan pilots over the whole remaining budget to shrink the uncertainty about a target, and print the "
        "next batch: rank, N, D, tokens per parameter, cost, expected information gain (nats) and why, then the stopping rule."
    )
    p.add_argument("fit", metavar="FIT.nc")
    p.add_argument(
        "--target",
        action="append",
        metavar="TARGET",
        help="N=7e9,D=1.4e12 (loss of a planned run), C=1e21 (loss on the compute-optimal frontier), "
        "nopt:C=1e21 (log N_opt); add ,threshold=2.1 or --threshold for P(loss <= threshold), and ,U=.. "
        "for a planned run on U unique tokens (repeated data). "
        "Repeat N=..,D=..[,weight=..] for a region of points: the plan minimises their weighted error",
    )
    p.add_argument(
        "--target-file",
        metavar="CSV",
        help="a target region: one point per row, columns N and D (or N and C) and an optional weight",
    )
    p.add_argument("--threshold", type=float, metavar="LOSS", help="make the target the decision P(loss <= LOSS)")
    p.add_argument("--budget-flops", type=float, required=True, metavar="FLOPS", help="FLOPs left for pilots")
    p.add_argument("-k", type=int, default=4, help="runs in the batch (default 4)")
    p.add_argument(
        "--candidates",
        metavar="CSV",
        help="candidate runs (columns N, D); default: a grid in log N x tokens per parameter",
    )
    p.add_argument(
        "--pending", metavar="CSV", help="runs launched but not finished (columns N, D): not suggested again"
    )
    p.add_argument("--max-replicates", type=int, default=2, help="at most this many runs at one (N, D) (default 2)")
    p.add_argument(
        "--planner",
        choices=("allocation", "greedy"),
        default="allocation",
        help="allocation: split the whole budget by the linearised design criterion (default); greedy: one run at a time by EPIG",
    )
    p.add_argument(
        "--discrepancy",
        type=float,
        default=None,
        help="model-discrepancy sd of log loss per decade of (N, D) from the target "
        "(default: the fit's learned drift scale, else the spec's drift scale, else 0.01; doubled in a robust plan)",
    )
    p.add_argument(
        "--robust",
        choices=("auto", "on", "off"),
        default="auto",
        help="keep the plan to the target's tokens-per-parameter range: when the law is in doubt (auto: spread "
        "law weights, laws that disagree at the target, or a misfit), always (on) or never (off)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help=(
            "stop once the 90%% interval of log(target) is narrower than this; with --threshold, once "
            "P(loss <= threshold) is within this of 0 or 1"
        ),
    )
    p.add_argument("--seed", type=seed_argument, default=0)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_suggest)


def _loop_parser(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Run the active loop configured in CONFIG.toml until the budget is spent or the target is known within "
        "the tolerance. State is written beside the runs table; run the same command again to resume."
    )
    p.add_argument("config", metavar="CONFIG.toml", help="the loop config (TOML)")
    p.add_argument("--max-rounds", type=int, default=None, help="stop (resumably) after this many rounds")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_loop)


#: Verb -> the function that fills in its parser (description, arguments, command).
PARSERS = {"suggest": _suggest_parser, "loop": _loop_parser}
