"""Atomic file writes shared by the package: write to a temporary file beside the target, fsync,
then rename over it, so a reader never sees a half-written file and a killed writer leaves the old one.
And :func:`jsonable`, what every JSON output writes: plain data, NaN and infinities as null; and
:func:`locked`, the one lock writers of a shared file (a runs table, a cached tokenizer) take."""

from __future__ import annotations

import errno
import glob
import math
import os
import re
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

T = TypeVar("T")


def real_target(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` reaches: a symlink resolved to the file it names. A link whose
    target's folder is missing is refused (writing would create folders, e.g. on the local disk under
    an unmounted share's mount point); a plain path's missing folders are the writer's to create."""
    real = Path(os.path.realpath(path))
    linked = os.path.realpath(path) != os.path.abspath(path)  # the file, or a folder on the way, is a link
    if linked and not real.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"symlink to {str(real)!r}, whose folder does not exist", str(path))
    return real


@contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the sidecar file ``path + ".lock"``; the kernel frees it when the
    holder dies, so a killed writer never blocks the next one."""
    if fcntl is None:  # pragma: no cover - not POSIX
        raise OSError("bayescale needs fcntl.flock (a POSIX system) to lock the files it shares between processes")
    # the file a symlink names is the one written, so writers through a link and by name share one lock
    real = real_target(path)
    real.parent.mkdir(parents=True, exist_ok=True)  # a table in a new folder: the lock goes beside it
    fd = os.open(str(real) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def held_elsewhere(path: str | os.PathLike) -> bool:
    """Whether another process holds the lock :func:`locked` takes for ``path`` (only to say why this
    one waits: the lock itself is taken by ``locked``)."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return False
    real = real_target(path)
    if not real.parent.is_dir():  # nobody has locked in a folder that does not exist yet
        return False
    fd = os.open(str(real) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def read_only(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file that must not be replaced: not writable, by its mode bits too (root
    may write any file, but a file nobody may write was meant to stay)."""
    return os.path.exists(path) and (not os.stat(path).st_mode & 0o222 or not os.access(path, os.W_OK))


#: Set by the command line's Ctrl-C handler (:func:`mark_interrupted`). Python raises the interrupt in
#: whatever runs, and where that is a library's callback (XLA's garbage-collection hook) the exception is
#: printed and swallowed and the command runs on: the flag keeps it from then replacing the user's file.
_interrupted = False


def mark_interrupted() -> None:
    """Record a Ctrl-C: :func:`atomic_write` replaces no file from now on."""
    global _interrupted
    _interrupted = True


def interrupted() -> bool:
    """Whether Ctrl-C was pressed (:func:`mark_interrupted`)."""
    return _interrupted


def atomic_write(path: str | os.PathLike, write: Callable[[str], T], *, mode: int | None = None) -> T:
    """Call ``write(tmp)`` on a temporary path beside ``path`` (creating the folder), fsync it, give it
    ``mode`` and rename it onto ``path``; returns what ``write`` returned. Without ``mode`` the file keeps
    the mode of the one it replaces, and a new file gets what ``open`` would give it (0666 less the
    umask; ``mkstemp`` alone made every file private). If ``write`` raises, the temporary file is removed
    and ``path`` is untouched. A symlink is written through to the file it names (as ``open`` would;
    renaming onto the link would replace the link and leave the user's file behind); a read-only file is
    refused, not replaced, and so is anything that is not a regular file (a device such as /dev/null,
    a pipe: renaming onto it would put a plain file in its place)."""
    path = real_target(path)
    if read_only(path):
        raise PermissionError(errno.EACCES, "read-only file, not replaced (make it writable first)", str(path))
    refuse_special(path)
    if mode is None:
        mode = os.stat(path).st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner()}-{os.getpid()}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        result = write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if _interrupted:  # a Ctrl-C a library swallowed: the command was stopped, its output is not kept
            raise KeyboardInterrupt
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return result


def special(path: str | os.PathLike) -> bool:
    """Whether something that is not a regular file is at ``path`` (a folder, a device such as /dev/null,
    a pipe): a rename would put a plain file in its place, and reading a pipe may wait forever."""
    return os.path.exists(path) and not os.path.isfile(path)  # through a symlink, as a write goes


def refuse_special(path: str | os.PathLike) -> None:
    """Refuse to replace what :func:`special` finds at ``path``."""
    if special(path):
        raise OSError(errno.EINVAL, "not a regular file (a folder, device or pipe), not replaced", str(path))


def _owner() -> str:
    """Who writes a temporary file, beside its pid: the host (made safe for a file name) and the pid
    namespace (containers sharing a host name do not share pids)."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:32]
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{host}-{namespace}"


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` sets it, racing other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def remove_orphans(path: Path) -> list[Path]:
    """Remove the temporary files that writers of ``path`` killed mid-write (``kill -9``, a lost node) left
    beside it; returns them. Only files written on this host and pid namespace by a process that no longer
    exists are touched: on a shared file system another host's writer may still be at work on its own."""
    pattern = re.compile(re.escape(f".{path.name}.") + r"(?P<owner>.+)-(?P<pid>\d+)\.[^.]+\.tmp")
    removed, owner = [], _owner()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        found = pattern.fullmatch(tmp.name)
        if found and found["owner"] == owner and not _alive(int(found["pid"])):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:  # removed by another writer first, or not ours to remove: the cleanup is best-effort
                pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def toml_text(path: Path, what: str) -> str:
    """The text of the TOML file ``path``, or :class:`OSError` / :class:`ValueError` naming ``what`` and the path
    (a folder, or a file that is not UTF-8 text, as TOML must be)."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{what} is a folder, not a TOML file", str(path))
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{what} {str(path)!r} is not UTF-8 text, as a TOML file must be ({e.reason} at byte {e.start})"
        ) from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (creating its folder); returns the path."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return Path(path)


def jsonable(x: Any) -> Any:
    """Plain JSON data: NumPy scalars to Python numbers, NaN and infinities to null."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if hasattr(x, "item") and not isinstance(x, (int, float)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
