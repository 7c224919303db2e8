"""Compiled functions whose traced form is kept on disk between processes (``jax.export``).

JAX's persistent compilation cache (:func:`bayescale.enable_compilation_cache`) lets a fresh
process skip XLA's compilation, but not the Python tracing and lowering before it: for a small
table that was most of a cold fit (about 2 s of tracing NumPyro's NUTS and the MAP's gradient
and Hessian, against a 0.5 s warm fit; issue 20). :class:`Stored` is ``jax.jit`` (or
``jax.pmap``) that, while the cache is on, serialises each traced function beside it with
``jax.export`` and in a later process deserialises it instead of tracing again. The compiled code
is the same StableHLO either way, so the draws are identical.

A stored function is only reused when everything that shaped it is the same: its name and the
caller's key (the spec's ``model_id``, the sampler's settings), the argument shapes and dtypes,
whether 64-bit is on, the backend and its device count, and the versions of jax, jaxlib, numpyro
and every source file of bayescale. A law or likelihood defined outside bayescale may change
between processes under the same name, so callers pass ``key=None`` for them: traced anew, as
before. Anything that fails while reading or writing a stored function falls back to tracing.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jax
import jaxlib
import numpy as np
import numpyro

from ._io import atomic_write_bytes

log = logging.getLogger(__name__)

#: The folder stored functions are read from and written to; ``None`` (the default) stores none.
_FOLDER: list[Path | None] = [None]


def enable(folder: str | Path | None) -> None:
    """Store traced functions in ``folder`` (``None``: stop storing)."""
    _FOLDER[0] = Path(folder) if folder is not None else None


def folder() -> Path | None:
    return _FOLDER[0]


@lru_cache(maxsize=1)
def _environment() -> str:
    """What every stored function depends on beyond its own key: versions and bayescale's source."""
    digest = hashlib.sha256()
    for part in (jax.__version__, jaxlib.__version__, numpyro.__version__):
        digest.update(part.encode())
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _current(base: Path) -> Path:
    """This environment's folder under ``base``. Functions stored by other versions can never be
    read again (their environment is part of every name), so a new version removes them once."""
    here = base / _environment()[:16]
    if not here.is_dir():
        for old in base.glob("*"):
            if old.is_dir() and len(old.name) == 16 and all(c in "0123456789abcdef" for c in old.name):
                shutil.rmtree(old, ignore_errors=True)
        here.mkdir(parents=True, exist_ok=True)
    return here


def _platform() -> str:
    """Where a call runs: the default device's platform (``jax.default_device`` context), else the backend's."""
    device = jax.config.jax_default_device
    if device is None:
        return jax.default_backend()
    return device if isinstance(device, str) else device.platform


def _signature(args: Sequence[Any], mapped: Sequence[bool] | None) -> tuple[str, list[Any]]:
    """The arguments' tree, shapes and dtypes (one chain's, for mapped ones) as text, and their avals."""
    specs = []
    for i, arg in enumerate(args):
        drop = bool(mapped and mapped[i])
        specs.append(
            jax.tree_util.tree_map(
                lambda x, drop=drop: jax.ShapeDtypeStruct(
                    np.shape(x)[1:] if drop else np.shape(x),
                    jax.dtypes.canonicalize_dtype(x.dtype if hasattr(x, "dtype") else np.result_type(x)),
                    weak_type=bool(getattr(x, "weak_type", isinstance(x, (int, float, complex)))),
                ),
                arg,
            )
        )
    text = str(jax.tree_util.tree_structure(specs)) + repr(
        [(s.shape, str(s.dtype), s.weak_type) for s in jax.tree_util.tree_leaves(specs)]
    )
    return text, specs


class Stored:
    """``jax.jit(fun)`` (``jax.pmap(fun, in_axes)`` with ``in_axes``) whose traced form is stored.

    ``key`` names what ``fun`` closes over (``None``: never stored, e.g. a user's own law). Under
    ``pmap`` one chain's function is stored and mapped, so the stored form does not depend on
    how many devices run it.
    """

    def __init__(self, fun: Callable[..., Any], name: str, key: Any, in_axes: Sequence[Any] | None = None) -> None:
        self.fun, self.name, self.key, self.in_axes = fun, name, key, in_axes
        self.plain = jax.jit(fun) if in_axes is None else jax.pmap(fun, in_axes=tuple(in_axes))
        self.calls: dict[tuple, Callable[..., Any]] = {}

    def __call__(self, *args: Any) -> Any:
        base = folder()
        if base is None or self.key is None:
            return self.plain(*args)
        leaves, tree = jax.tree_util.tree_flatten(args)
        if any(isinstance(x, jax.core.Tracer) for x in leaves):
            return self.plain(*args)  # called inside another traced function: part of its trace
        wide = jax.dtypes.canonicalize_dtype(np.float64) == np.float64
        platform = _platform()
        # The MAP search calls these hundreds of times: a cheap key first, the full one once.
        quick = (tree, wide, platform, base, *((np.shape(x), getattr(x, "dtype", None), type(x)) for x in leaves))
        call = self.calls.get(quick)
        if call is not None:
            return call(*args)
        try:
            call = self._load_or_export(base, args, wide, platform)
            out = call(*args)
        except Exception as exc:  # noqa: BLE001 - storing is an optimisation: anything wrong, trace as before
            log.debug("stored function %s not used (%s): traced in this process", self.name, exc)
            call = self.plain
            out = call(*args)
        self.calls[quick] = call
        return out

    def _load_or_export(self, base: Path, args: tuple, wide: bool, platform: str) -> Callable[..., Any]:
        mapped = None if self.in_axes is None else [axis == 0 for axis in self.in_axes]
        text, specs = _signature(args, mapped)
        ident = repr((self.name, self.key, text, wide, platform, jax.device_count(), _environment()))
        path = _current(base) / f"{hashlib.sha256(ident.encode()).hexdigest()}.jaxexport"
        exported = None
        if path.is_file():
            try:
                exported = jax.export.deserialize(bytearray(path.read_bytes()))
            except Exception as exc:  # noqa: BLE001 - a stale or torn file is traced anew
                log.debug("stored function %s unreadable (%s): tracing it again", path, exc)
        if exported is None:
            exported = jax.export.export(jax.jit(self.fun), platforms=[platform])(*specs)
            atomic_write_bytes(path, bytes(exported.serialize()))
        if self.in_axes is None:
            return jax.jit(exported.call)
        return jax.pmap(exported.call, in_axes=tuple(self.in_axes))


__all__ = ["Stored", "enable", "folder"]
