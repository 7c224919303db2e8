"""README.md's examples run as written: every shell block, in a copy of the repository's data and specs.

A newcomer copies the README's commands first; one that fails (a missing file, a renamed flag) costs
them the hour. This runs each ```bash, ```sh and ```console block top to bottom in a temporary folder
holding copies of ``data/``, ``models/`` and ``examples/``, in order, so a block can use the files an
earlier one wrote (``fit.nc``). ``bayescale ...`` lines run in-process through :func:`bayescale.cli.main`
(as the console script would, without paying for a new interpreter each time); other lines run in
bash with this interpreter's folder first on PATH.

Not run: ``make`` lines and ``source .venv/bin/activate`` (they install and set up the environment
the test already runs in), and blocks preceded by the visible marker
``<!-- not run by tests/test_readme.py: REASON -->`` (training pilots, opening a browser). A
``bayescale pilot`` line that would train (no ``--dry-run``) is refused outright: the README's
runnable blocks plan pilots, they do not train them.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import bayescale
from bayescale import cli
from bayescale.loop import load_loop_config

REPO = Path(bayescale.__file__).resolve().parents[1]
README = REPO / "README.md"
SHELL = ("bash", "sh", "console")
SKIP_MARK = "<!-- not run by tests/test_readme.py"
#: Lines that set up the environment the test runs in.
SETUP = ("make ", "source ", ". ")
#: The README's runnable blocks together must stay this quick (seconds, 2 cores), or the suite slows.
BUDGET_S = 90


def shell_blocks(text: str) -> list[tuple[int, str, bool]]:
    """(line number, body, skipped) of each fenced shell block; skipped when the marker precedes it."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        if m.group(1) in SHELL:
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            blocks.append((i + 1, "\n".join(lines[i + 1 : end]), before.startswith(SKIP_MARK)))
        i = end + 1
    return blocks


def commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    out, current = [], ""
    for line in block.splitlines():
        current += line
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        words = shlex.split(current, comments=True)
        if words:
            out.append(current.strip())
        current = ""
    return out


def test_readme_blocks_are_found_and_marked() -> None:
    blocks = shell_blocks(README.read_text(encoding="utf-8"))
    run = [b for b in blocks if not b[2]]
    assert len(run) >= 5 and len(blocks) > len(run)  # the parser sees the README's blocks and its markers
    cmds = [c for _, body, _ in run for c in commands(body)]
    assert any(c.startswith("bayescale check ") for c in cmds)  # the example of issue 19 that could not run
    assert all(not c.startswith("bayescale pilot") or "--dry-run" in c for c in cmds)


def test_readme_loop_config_is_the_shipped_example() -> None:
    text = README.read_text(encoding="utf-8")
    shown = re.search(r"```toml\n(runs = .*?)```", text, re.S)
    assert shown, "the README documents the loop config format in a ```toml block"
    shipped = REPO / "examples" / "loop.toml"
    assert shown.group(1) == shipped.read_text(encoding="utf-8")
    cfg = load_loop_config(shipped)
    assert cfg.runs == shipped.parent / "my_runs.csv" and cfg.simulate and cfg.k == 2


def _run_bayescale(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue() + err.getvalue()


def test_readme_shell_blocks_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for folder in ("data", "models", "examples"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    ran = []
    for line, body, skipped in shell_blocks(README.read_text(encoding="utf-8")):
        if skipped:
            continue
        for command in commands(body):
            if command.startswith(SETUP):
                continue
            words = shlex.split(command, comments=True)
            t0 = time.perf_counter()
            if words[0] == "bayescale":
                assert words[1] != "pilot" or "--dry-run" in words, f"README line {line}: {command} would train"
                code, output = _run_bayescale(words[1:])
            else:
                res = subprocess.run(
                    command, shell=True, executable="/bin/bash", env=env, capture_output=True, text=True
                )
                code, output = res.returncode, res.stdout + res.stderr
            assert code == 0, f"README block at line {line}: `{command}` exited {code}:\n{output[-3000:]}"
            ran.append((time.perf_counter() - t0, command))
    seconds = time.perf_counter() - start
    assert len(ran) >= 15 and (tmp_path / "fit.nc").is_file() and (tmp_path / "report.html").is_file()
    slowest = "\n".join(f"{t:5.1f} s  {c}" for t, c in sorted(ran, reverse=True)[:6])
    assert seconds < 2 * BUDGET_S, f"the README's examples took {seconds:.0f} s; keep them quick:\n{slowest}"
