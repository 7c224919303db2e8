"""The ``bayescale`` command: a thin shell over the Python API.

Subcommands::

    bayescale fit SPEC RUNS -o FIT.nc       fit a spec to a runs CSV, print the summary, save the fit
    bayescale summary FIT.nc                posterior summary and diagnostics of a saved fit
    bayescale predict FIT.nc --at N=7e9,D=1.4e12
                                            median and credible interval of the loss at new points
    bayescale decide FIT.nc --option 7B:N=7e9,D=1.4e12 --option 13B:N=13e9,D=7e11 --threshold 2.1
                                            compare scale-up options: P(loss <= threshold), VaR, CVaR, P(best)
    bayescale optimal FIT.nc --budget 5.76e23
                                            compute-optimal N, D, tokens per parameter and loss, with intervals
    bayescale check FIT.nc NEW_RUNS.csv [--update]
                                            was each new run a surprise? (optionally refit with them)
    bayescale validate SPEC RUNS --holdout-top 0.2
                                            leave-largest-out: fit the small runs, predict the largest
    bayescale loo FIT.nc                    PSIS-LOO with Pareto-k flags and LOO-PIT coverage
    bayescale report FIT.nc -o report.html [--decision NAME:N=..,D=..] [--threshold T]
                                            one self-contained HTML (or Markdown) report
    bayescale demo                          fit the bundled Chinchilla spec to data/pilot_runs.csv and extrapolate
    bayescale laws                          the registered scaling laws
    bayescale specs                         the bundled model specs
    bayescale check-spec SPEC               validate a spec; print its canonical TOML and id
    bayescale suggest FIT.nc --target ... --budget-flops F
                                            which pilot runs to train next
    bayescale loop CONFIG.toml              the closed loop: suggest, train, check, refit (resumable)
    bayescale pilot ... | pilot sweep SWEEP.toml
                                            train pilot language models (the ``runner`` extra)

Every command is listed once, in :data:`COMMANDS`: its module, its one-line help, and
whether it parses its own arguments or runs JAX. The module's ``PARSERS[name]`` fills in
the command's subparser (description, arguments, and the function to run).

Bad input (a :class:`~bayescale.errors.BayescaleError`, a missing or unreadable
file) prints one line ``bayescale: error: <message>`` to stderr and exits with
status 2, as do usage errors. Any other exception is a bug and shows its traceback.
``ConvergenceWarning``, ``IdentifiabilityWarning`` and ``MisfitWarning`` are printed as one line each,
``warning: <message>``, on stderr.

The command line imports the heavy stack lazily, so that it starts fast: ``bayescale --help``,
``bayescale COMMAND --help`` and usage errors import only the standard library and these
command modules, not JAX, NumPyro, ArviZ, pandas, matplotlib or torch (about 0.1 s instead
of 5). That is why the command modules import the rest of bayescale, and NumPy or pandas,
inside the command functions: only when a command runs.

Examples
--------
>>> from bayescale.cli import main
>>> main(["specs"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import bayescale
from bayescale._io import interrupted, mark_interrupted
from bayescale.errors import BayescaleError

# load_fit, parse_option and parse_point are public; _data_dir (the demo looks it up here when it
# runs, so it can be pointed elsewhere), _jsonable, _with_readable_warnings, DEMO_RUNS and _band_text
# are here for the tests.
from ._common import (  # noqa: F401
    _data_dir,
    _jsonable,
    _one_line,
    _quiet_option,
    _with_readable_warnings,
    load_fit,
    parse_option,
    parse_point,
)
from .fitting import DEMO_RUNS, _band_text  # noqa: F401


@dataclass(frozen=True)
class Command:
    """One ``bayescale`` command in :data:`COMMANDS`.

    Attributes
    ----------
    module
        The module whose ``PARSERS[name]`` fills in the command's subparser.
    help
        One line for ``bayescale --help``.
    own_args
        The command parses its own arguments (``pilot``: its options differ from those of
        ``pilot sweep``, which argparse cannot say); it gets the rest of the command line,
        unparsed, as ``args.rest``, and answers ``--help`` itself.
    compiles
        The command runs JAX code: the console entry turns on JAX's persistent compilation
        cache first.
    """

    module: str
    help: str
    own_args: bool = False
    compiles: bool = True


_FITTING, _DECISIONS, _DESIGN, _SPECS = (f"bayescale.cli.{m}" for m in ("fitting", "decisions", "design", "specs"))

#: Every ``bayescale`` command, in the order of ``bayescale --help``.
COMMANDS: dict[str, Command] = {
    "report": Command(
        "bayescale.cli.report",
        "one self-contained HTML or Markdown report of a fit (see `bayescale report --help`)",
    ),
    "fit": Command(_FITTING, "fit a spec to a runs table and save the fit"),
    "summary": Command(_FITTING, "posterior summary and diagnostics of a saved fit"),
    "predict": Command(_FITTING, "loss band at new (N, D) points"),
    "compare": Command("bayescale.cli.compare", "which recipe to scale: recipes compared by their scaling laws"),
    "decide": Command(_DECISIONS, "compare scale-up options by risk: P(loss <= threshold), VaR, CVaR, P(best)"),
    "optimal": Command(_DECISIONS, "compute-optimal N and D at FLOP budgets, with intervals"),
    "check": Command(_DECISIONS, "was each new run a surprise? optionally refit with them"),
    "validate": Command(_FITTING, "leave-largest-out: fit the small runs, predict the largest"),
    "loo": Command(_FITTING, "PSIS-LOO and LOO-PIT calibration of a saved fit"),
    "demo": Command(_FITTING, "fit the bundled Chinchilla spec to data/pilot_runs.csv and extrapolate"),
    "laws": Command(_SPECS, "list the registered scaling laws", compiles=False),
    "specs": Command(_SPECS, "list the bundled model specs", compiles=False),
    "check-spec": Command(_SPECS, "validate a spec; print its canonical TOML and id", compiles=False),
    "pilot": Command(
        "bayescale.runner.cli",
        "train a pilot language model and append it to a runs table (`pilot sweep SWEEP.toml` for many)",
        own_args=True,
        compiles=False,
    ),
    "suggest": Command(_DESIGN, "which pilot runs to train next: a ranked batch with cost, expected gain and why"),
    "loop": Command(_DESIGN, "the closed loop: suggest, train, check, refit, re-plan (resumable)"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayescale`` command, one subparser per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="bayescale",
        description="Bayesian scaling laws: fit a law to small training runs and extrapolate with credible bands.",
    )
    parser.add_argument("--version", action="version", version=f"bayescale {bayescale.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parser.commands = {}  # each command's parser, which reports its own usage errors (_parse)
    for name, command in COMMANDS.items():
        p = parser.commands[name] = sub.add_parser(name, help=command.help, add_help=not command.own_args)
        importlib.import_module(command.module).PARSERS[name](p)
        if not command.own_args:  # one convention for all: progress lines on stderr unless -q
            _quiet_option(p)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed; a command with ``own_args`` gets everything after its name as ``args.rest``."""
    command = COMMANDS.get(argv[0]) if argv else None
    if command is not None and command.own_args:
        args = parser.parse_args(argv[:1])
        args.rest = argv[1:]
        return args
    args, unknown = parser.parse_known_args(argv)
    if unknown and argv.index(unknown[0]) < argv.index(args.command):
        parser.error(
            f"unrecognized arguments: {' '.join(unknown)} (a command's options go after it: bayescale COMMAND ...)"
        )
    if unknown:  # said with the command's usage, not the top-level one
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _error(message: str) -> int:
    print(f"bayescale: error: {_one_line(message)}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command under the one error policy (see the module docstring)."""
    try:
        status = args.func(args)
        if interrupted():  # a Ctrl-C a library swallowed: the command still ran to its end
            print(INTERRUPTED, file=sys.stderr)
            return 130
        return status
    except BayescaleError as e:
        return _error(str(e))
    except BrokenPipeError:  # e.g. `bayescale laws | head -1`: stop quietly
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except OSError as e:  # a missing input, an unwritable output
        if e.filename is not None and e.strerror:
            return _error(f"{e.strerror}: {e.filename}")
        return _error(str(e))
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback through JAX
        print(INTERRUPTED, file=sys.stderr)
        return 130


#: Said on Ctrl-C (exit status 130).
INTERRUPTED = (
    "bayescale: interrupted; no file was left half-written (each is replaced whole or not at all); "
    "`loop` and `pilot` resume when run again"
)


def _on_interrupt(signum: int, frame: Any) -> None:
    """Ctrl-C: remembered (so that no file is replaced after it, even where a library swallows the exception),
    then raised as usual."""
    mark_interrupted()
    raise KeyboardInterrupt


def _main(argv: list[str], before: Callable[[Command], None] | None = None) -> int:
    try:
        args = _parse(build_parser(), argv)
    except SystemExit as e:  # --help, --version and usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    try:
        if before is not None:
            before(COMMANDS[args.command])
    except KeyboardInterrupt:  # while the heavy stack loads
        print(INTERRUPTED, file=sys.stderr)
        return 130
    return _run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bayescale`` command with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Returns 0 on success and 2 for bad input or usage (one line on stderr).

    Examples
    --------
    >>> main(["check-spec", "chinchilla"])  # doctest: +SKIP
    """
    return _main(list(sys.argv[1:] if argv is None else argv))


def _compilation_cache(command: Command) -> None:
    """JAX's persistent compilation cache on, for a command that compiles (not for ``--help``)."""
    if not command.compiles or os.environ.get("BAYESCALE_NO_JIT_CACHE"):
        return
    try:
        from bayescale.inference import enable_compilation_cache

        enable_compilation_cache()
    except OSError:
        pass  # an unwritable home: run without the cache


def entry() -> None:
    """Console entry point: ``main`` with four host CPU devices (parallel chains) unless
    ``XLA_FLAGS`` chooses a count, and, for the commands that run JAX, its persistent
    compilation cache on, so repeated commands skip most compilation (set
    ``BAYESCALE_NO_JIT_CACHE=1`` to turn it off)."""
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        bayescale.set_host_device_count(4)  # four default chains in parallel, one thread each
    signal.signal(signal.SIGINT, _on_interrupt)
    sys.exit(_main(sys.argv[1:], before=_compilation_cache))


__all__ = ["COMMANDS", "Command", "build_parser", "entry", "load_fit", "main", "parse_option", "parse_point"]
