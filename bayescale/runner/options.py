"""Choices and defaults the runner's command line shares with its sweeps and WSD pilots.

Kept apart from :mod:`~bayescale.runner.sweep` and :mod:`~bayescale.runner.wsd` (which load pandas
and, to train, torch) so that ``bayescale --help`` and ``bayescale pilot --help`` build their
parsers without them.
"""

from __future__ import annotations

#: Where a sweep's pilots run (see :func:`bayescale.runner.run_sweep`).
EXECUTORS = ("process", "ray", "slurm", "serial")
#: Share of each WSD branch's steps spent cooling down (Hägele et al.: 10-20% matches a cosine run).
COOLDOWN = 0.2

__all__ = ["COOLDOWN", "EXECUTORS"]
