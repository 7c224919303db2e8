"""What keeps a pilot from being trained for nothing, or twice.

- :func:`table_problem`: why a runs table cannot take a pilot's row (its folder missing, a folder, a
  read-only file, a file that is not a valid runs table), said before any training: found after it,
  the user learns hours late that the row has nowhere to go.
- :func:`checked_device`: torch, once the device and the thread count asked for are known to be ones
  it can train with (torch itself answers a bad thread count with a traceback).
- :func:`slurm_problem`: why submitit would refuse a Slurm option, said before anything is planned.
- :func:`training_lock`: one process at a time trains in a run's work folder; another asked to train
  the same run (a sweep started twice, a pilot run again while it still trains) waits for the first,
  then finds its result instead of training beside it in the same checkpoints.
- :func:`die_with_parent`: a sweep's pool workers exit when the driver that started them is gone
  (``kill -9``, a closed terminal), instead of training the rest of the sweep unseen and idling after.

torch and submitit are imported inside the functions that need them.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._io import held_elsewhere, locked, read_only, real_target
from .._runs_input import read_runs_csv
from .._words import join_names
from ..data import check_runs_header, load_runs
from ..errors import RunsTableError
from .models import PilotError, require_torch

# --------------------------------------------------------------------------- the runs table


def table_problem(table: str | os.PathLike) -> str | None:
    """Why the runs table ``table`` cannot take a pilot's row, in words; None when it can.

    The row is appended as :func:`bayescale.append_run` does it: a new file written beside the table
    (and a lock file) and renamed onto it, after the old rows and the new one are validated together.
    So the folder must exist and be writable, the table must not be a folder or read-only, and its
    rows must load as a runs table, read as :func:`bayescale.load_runs` reads them (a row with more
    fields than the header is refused, not shifted). A missing or empty file is a new table."""
    path = os.fspath(table)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        what = "is a file, not a folder" if os.path.exists(parent) else "does not exist (create it, or fix the path)"
        return f"its folder {parent!r} {what}"
    if os.path.isdir(path):
        return "it is a folder; give a runs CSV file"
    try:
        real = real_target(path)
    except FileNotFoundError as exc:
        return f"it is a {exc.strerror}"
    if read_only(real):
        return "it is read-only (make it writable, or give another table)"
    if not os.access(real.parent, os.W_OK):
        return f"its folder {str(real.parent)!r} is not writable (the new table is written there, then renamed)"
    if not real.exists():
        return None
    try:
        rows = read_runs_csv(path)
        check_runs_header(rows, path)
        if len(rows):
            load_runs(rows)
    except RunsTableError as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------- device and counts


def check_counts(counts: Mapping[str, Any], error: type[Exception] = PilotError) -> None:
    """Refuse a count that must be a positive integer, with one line naming it: ``counts`` maps a
    command-line flag (``"--threads"``) or an option's name (``"threads"``) to its value (None: not given)."""
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            given = f"{name} {value}" if name.startswith("--") else f"{name}={value!r}"
            raise error(f"{given} is not allowed; allowed: a positive integer")


def checked_device(device: str, threads: int | None = None):
    """torch, once ``device`` is one it can train on and ``threads`` (torch CPU threads, None: torch's
    choice) a positive integer; the threads are set."""
    check_counts({"threads": threads})
    torch = require_torch()
    if device not in ("auto", "cpu", "cuda"):
        raise PilotError(f"device={device!r} is not allowed; allowed: 'auto', 'cpu', 'cuda'")
    if device == "cuda" and not torch.cuda.is_available():
        raise PilotError("device='cuda' but torch sees no CUDA GPU")
    if threads is not None:
        torch.set_num_threads(threads)
    return torch


def trains_on(torch, device: str) -> str:
    """ "cuda" or "cpu": where a pilot asked to train on ``device`` ("auto", "cpu" or "cuda") trains."""
    return "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"


# --------------------------------------------------------------------------- Slurm options

_KINDS = {int: "an integer", float: "a number", str: "text", bool: "true or false"}


def slurm_missing(cluster: str) -> str | None:
    """Why a Slurm sweep on ``cluster`` cannot be submitted from this machine (no ``srun`` for
    ``"slurm"``; submitit would answer with a traceback), or None."""
    if cluster == "slurm" and shutil.which("srun") is None:
        return "this machine has no Slurm (no srun on the PATH): run the sweep on a Slurm node, or give --cluster local"
    return None


def slurm_problem(key: str, value: Any) -> str | None:
    """Why submitit would refuse the Slurm option ``key=value`` (a parameter it does not know, or a value
    of the wrong type), in words naming what it allows; None when it takes it, and without submitit
    (the sweep then says how to install it). submitit itself is asked, on a throwaway executor in a
    temporary folder: what it accepts changes between its versions."""
    try:
        import submitit  # optional (the slurm extra)
    except ImportError:
        return None
    typed = submitit.AutoExecutor._typed_parameters()  # the shared names and their types
    with tempfile.TemporaryDirectory() as tmp:
        try:
            submitit.AutoExecutor(folder=tmp, cluster="debug").update_parameters(**{key: value})
        except NameError:  # submitit's message lists every executor's parameters, over several lines
            slurm = sorted(f"slurm_{k}" for k in submitit.SlurmExecutor._valid_parameters())
            return (
                f"submitit has no parameter {key!r}; allowed: {join_names(sorted(typed), limit=len(typed))}, "
                f"or one of Slurm's: {join_names(slurm, 'or', limit=len(slurm))}"
            )
        except (AssertionError, TypeError, ValueError):
            want = typed.get(key)
            return f"{key} takes {_KINDS.get(want, want.__name__ if want else 'another value')}, not {value!r}"
    return None


#: Options of :func:`bayescale.runner.sweep.run_slurm` that are its own, not submitit's parameters.
SLURM_OWN = ("cluster", "folder", "poll_s")


def slurm_options_problem(options: Mapping[str, Any]) -> str | None:
    """Why a Slurm sweep with ``options`` (:func:`bayescale.runner.sweep.run_slurm`'s keywords) cannot be
    submitted (:func:`slurm_missing`, :func:`slurm_problem`), naming the option; None when it can."""
    problem = slurm_missing(options.get("cluster", "slurm"))
    if problem:
        return f"executor='slurm': {problem}"
    for key, value in options.items():
        problem = None if key in SLURM_OWN else slurm_problem(key, value)
        if problem:
            return f"slurm option {key}={value!r}: {problem}"
    return None


# --------------------------------------------------------------------------- one trainer per run


@contextmanager
def training_lock(out: Path, run_id: str) -> Iterator[None]:
    """Hold the lock of the work folder ``out`` (``out/training.lock``, taken as the runs table's is,
    :func:`bayescale._io.locked`) while ``run_id`` is trained there. A second process waits, saying
    why, and finds the first one's result when it gets the lock; the kernel frees the lock of a process
    that dies, so a killed pilot never blocks its rerun."""
    lock = out / "training"
    if held_elsewhere(lock):
        print(
            f"{run_id}: another process is training it in {out}; waiting for it (its result is then used)",
            file=sys.stderr,
            flush=True,
        )
    with locked(lock):
        yield


# --------------------------------------------------------------------------- workers die with their driver

#: Seconds between a worker's looks at its parent (the portable way to notice the driver is gone).
WATCH_S = 1.0
#: Linux's prctl option that has the kernel signal a process when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Make this process (a sweep's pool worker) exit once ``parent`` (the driver's pid) is gone.

    On Linux the kernel is asked to send SIGTERM when the parent dies (``prctl(PR_SET_PDEATHSIG)``:
    at once, even in the middle of a step; the signal comes when the thread that started this process
    ends, and the pool starts its workers from the thread that submits the pilots, which waits for
    them all). Everywhere, a watchdog thread looks every :data:`WATCH_S` seconds whether the parent
    changed (an orphan is adopted by init or a subreaper) and exits then. A killed pilot loses at most
    the steps since its last checkpoint; the sweep's rerun resumes it."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl in this libc: the watchdog alone
    if os.getppid() != parent:  # gone before the kernel was asked
        _exit_orphaned(parent)
    threading.Thread(target=watch_parent, args=(parent,), name="bayescale-driver-watch", daemon=True).start()


def watch_parent(parent: int, every_s: float = WATCH_S) -> None:
    """Return never: exit this process once its parent is no longer ``parent``."""
    while os.getppid() == parent:
        time.sleep(every_s)
    _exit_orphaned(parent)


def _exit_orphaned(parent: int) -> None:
    try:
        print(
            f"bayescale: the sweep's driver (pid {parent}) is gone; worker {os.getpid()} stops (run the sweep "
            "again to resume its pilot from its last checkpoint)",
            file=sys.stderr,
            flush=True,
        )
    except (OSError, ValueError):
        pass  # nowhere left to say it
    os._exit(1)  # at once: no cleanup of a pool whose driver is gone


__all__ = [
    "PR_SET_PDEATHSIG",
    "SLURM_OWN",
    "WATCH_S",
    "check_counts",
    "checked_device",
    "die_with_parent",
    "slurm_missing",
    "slurm_options_problem",
    "slurm_problem",
    "table_problem",
    "trains_on",
    "training_lock",
    "watch_parent",
]
