"""What keeps a pilot from being trained twice.

- :func:`training_lock`: one process at a time trains in a run's work folder; another asked to train
  the same run (a sweep started twice, a pilot run again while it still trains) waits for the first,
  then finds its result instead of training beside it in the same checkpoints.
- :func:`die_with_parent`: a sweep's pool workers exit when the driver that started them is gone
  (``kill -9``, a closed terminal), instead of training the rest of the sweep unseen and idling after.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .._io import real_target
from ..data import _locked

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX (data's lock refuses to run there anyway)
    fcntl = None

# --------------------------------------------------------------------------- one trainer per run


@contextmanager
def training_lock(out: Path, run_id: str) -> Iterator[None]:
    """Hold the lock of the work folder ``out`` (``out/training.lock``, taken as the runs table's is,
    :func:`bayescale.data._locked`) while ``run_id`` is trained there. A second process waits, saying
    why, and finds the first one's result when it gets the lock; the kernel frees the lock of a process
    that dies, so a killed pilot never blocks its rerun."""
    lock = out / "training"
    if _held(lock):
        print(
            f"{run_id}: another process is training it in {out}; waiting for it (its result is then used)",
            file=sys.stderr,
            flush=True,
        )
    with _locked(lock):
        yield


def _held(path: Path) -> bool:
    """Whether another process holds the lock :func:`bayescale.data._locked` takes for ``path`` (only
    to say why this one waits: the lock itself is taken by ``_locked``)."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return False
    fd = os.open(str(real_target(path)) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


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
    "WATCH_S",
    "die_with_parent",
    "training_lock",
    "watch_parent",
]
