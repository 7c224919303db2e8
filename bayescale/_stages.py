"""Progress of a long command: one line per stage, with the seconds since the command started, on stderr.

::

    [  0.0s] loading runs (29 from data/pilot_runs.csv)
    [  3.1s] sampling: NUTS, 4 chains x 1000 draws (1000 warmup)
    [  9.8s] writing report.html

Every ``bayescale`` command that can take more than a few seconds prints its stages through one
:class:`Stages` (``-q``/``--quiet`` turns them off). The lines go to stderr, so stdout carries only
the answer (a table, JSON) and stays the same with or without them. The lines are plain text, one
per stage, so they read the same in a terminal, a log file or a CI transcript.

Standard library only: the command line (:mod:`bayescale.cli`) and the pilot runner's command
(:mod:`bayescale.runner.cli`) both use it, and neither may load the heavy stack to build parsers.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: The prefix of every stage line, ``[  3.1s] ``: tests and log filters recognise the lines by it.
STAGE_PREFIX = r"^\[\s*\d+\.\ds\] "


class Stages:
    """Print ``[ elapsed] what`` on stderr for each stage of a command, unless ``quiet``.

    Parameters
    ----------
    quiet : bool
        Print nothing (``-q``/``--quiet``).
    stream : text stream, optional
        Where to write; default ``sys.stderr`` as it is when a stage is printed (so a redirection made
        after the command started, as tests do, is honoured).

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> stage = Stages(stream=out)
    >>> stage("loading runs (29)")
    >>> out.getvalue()[:8], out.getvalue()[8:]
    ('[  0.0s]', ' loading runs (29)\\n')
    """

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream
        self.start = time.perf_counter()

    def __call__(self, what: str) -> None:
        if self.quiet:
            return
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write(f"[{time.perf_counter() - self.start:5.1f}s] {what}\n")
        stream.flush()  # a stage is news only when it is seen before the work it names


__all__ = ["STAGE_PREFIX", "Stages"]
