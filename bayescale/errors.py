"""Exceptions and warnings raised by bayescale.

Bad input raises a :class:`BayescaleError` subclass. Each also subclasses
:class:`ValueError`, so ``except ValueError`` keeps working for callers that do
not know bayescale. Poor sampling warns rather than raises.
"""

from __future__ import annotations

import argparse
import os
import sys

# As the package's modules name their code (not resolved: a symlinked checkout names the link).
_PACKAGE = os.path.dirname(__file__) + os.sep


def user_stacklevel() -> int:
    """The ``stacklevel`` that puts a warning on the first line outside bayescale (the caller's), for
    the function that calls this and then ``warnings.warn``: however deep in the package it warns."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


class BayescaleError(ValueError):
    """Base class of every error bayescale raises for bad input."""


#: Seeds run from 0 to this (JAX's and NumPy's generators take them as unsigned 32-bit keys; a saved fit keeps
#: its seed as an HDF5 integer).
SEED_MAX = 2**32 - 1


def check_seed(seed: object, what: str = "seed") -> int:
    """``seed`` as an int in [0, :data:`SEED_MAX`], or a :class:`BayescaleError` naming ``what``."""
    integer = not isinstance(seed, bool) and hasattr(seed, "__index__")  # int or a NumPy integer
    if not integer or not 0 <= int(seed) <= SEED_MAX:
        raise BayescaleError(f"{what} must be an integer in [0, {SEED_MAX}], got {seed!r}")
    return int(seed)


def seed_argument(text: str) -> int:
    """``--seed``'s type on the command line: an integer in [0, :data:`SEED_MAX`] (argparse's usage error else)."""
    try:
        return check_seed(int(text))
    except (ValueError, BayescaleError):
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {SEED_MAX}], got {text!r}") from None


class SpecError(BayescaleError):
    """A model spec (law, priors, likelihood, sampler settings) is invalid."""


class LawError(BayescaleError):
    """A scaling law is unknown or declared inconsistently."""


class RunsTableError(BayescaleError):
    """A runs table is missing columns, has bad values, or duplicate run ids."""


class DatasetError(BayescaleError):
    """A public dataset could not be found, fetched or verified."""


class StaleFitError(BayescaleError):
    """A saved fit was made with a spec that has changed since."""


class ConvergenceWarning(UserWarning):
    """Sampling finished, but its diagnostics say the draws may not be trusted."""


class MultimodalWarning(ConvergenceWarning):
    """The posterior has several modes (:mod:`bayescale.modes`): which, their parameter values and
    predictions, and how the draws mix them. A :class:`ConvergenceWarning`, so filters of those keep
    catching it; r-hat across modes is not cured by running longer."""


class IdentifiabilityWarning(UserWarning):
    """The data cannot separate some parameters; only combinations are identified."""


class MisfitWarning(UserWarning):
    """The law misfits the runs it was fitted to (a pattern in the residuals it cannot follow),
    so its bands beyond them may miss on one side (:mod:`bayescale.misfit`)."""


class RunsTableWarning(UserWarning):
    """The runs table loads, but something in it would mislead a fit (e.g. a copied row)."""


__all__ = [
    "BayescaleError",
    "ConvergenceWarning",
    "DatasetError",
    "IdentifiabilityWarning",
    "LawError",
    "MisfitWarning",
    "RunsTableWarning",
    "MultimodalWarning",
    "RunsTableError",
    "SpecError",
    "StaleFitError",
]
