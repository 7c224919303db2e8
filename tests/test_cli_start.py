"""The ``bayescale`` command starts fast where it runs no command: ``--help``, ``COMMAND --help``
and usage errors import none of JAX, NumPyro, ArviZ, pandas, matplotlib or torch (several
seconds); the commands import them when they run. Each check runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

from bayescale.cli import COMMANDS

HEAVY = ("jax", "jaxlib", "numpyro", "arviz", "pandas", "matplotlib", "torch", "transformers")

# Runs each argv through bayescale.cli.main, then reports the exit codes and the heavy modules loaded.
SCRIPT = """
import contextlib, io, json, sys
from bayescale.cli import main
codes = []
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        codes.append(main(argv))
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def _run(argvs: list[list[str]]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(argvs), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_help_and_usage_errors_import_no_heavy_module() -> None:
    helps = [["--help"], ["--version"], *([name, "--help"] for name in COMMANDS), ["pilot", "sweep", "--help"]]
    errors = [
        [],
        ["fti"],
        ["fit"],
        ["fit", "chinchilla"],
        ["summary", "x.nc", "--format", "xml"],
        ["report"],
        ["pilot", "--n-params"],
    ]
    res = _run(helps + errors)
    assert res["codes"] == [0] * len(helps) + [2] * len(errors)
    assert res["heavy"] == []


def test_python_m_bayescale_help_imports_no_heavy_module() -> None:
    """The console path too (``entry``: host devices, and the compilation cache only for commands that run JAX)."""
    for argv, code in ((["--help"], 0), (["fit"], 2)):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "bayescale", *argv], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == code, proc.stderr
        loaded = {
            line.split("|")[-1].strip().split(".")[0]
            for line in proc.stderr.splitlines()
            if line.startswith("import time:")
        }
        assert "bayescale" in loaded and not loaded & set(HEAVY)


def test_every_command_is_registered_once() -> None:
    """Every entry of the registry has a parser in its module, and the parser lists exactly the registry."""
    from bayescale.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == list(COMMANDS)
    assert [c.dest for c in sub._choices_actions] == list(COMMANDS)
