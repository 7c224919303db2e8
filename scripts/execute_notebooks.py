"""Execute every notebook in notebooks/ at small size and store it with its outputs (``make notebooks``).

Notebooks are committed executed, so a reader sees the figures and numbers on GitHub or in any
notebook viewer without running anything. Every ``notebooks/*.ipynb`` is picked up, new ones too.

They run with ``BAYESCALE_NOTEBOOK_SMALL=1`` (the sizes the tests use: minutes in all on 2 cores)
and figures at a modest resolution. To keep the repository small, an output larger than
:data:`MAX_OUTPUT_BYTES` (an embedded report, say) is replaced by a line saying what was there, and
the execution timestamps that would change on every run are dropped.

Usage::

    python scripts/execute_notebooks.py                 # all of notebooks/*.ipynb
    python scripts/execute_notebooks.py notebooks/01_fit_and_extrapolate.ipynb
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
#: An output bigger than this is not stored (the notebook says so instead).
MAX_OUTPUT_BYTES = 250_000
#: Resolution of the stored figures (matplotlib's inline backend draws at figure.dpi).
FIGURE_DPI = 72
#: Run before the notebook's own cells, not stored: the figure resolution.
_SETUP = f"import matplotlib as _mpl; _mpl.rcParams['figure.dpi'] = {FIGURE_DPI}"


#: stderr lines that say nothing about the notebook (the kernel lacks ipywidgets, which nobody needs here).
_NOISE = ("TqdmWarning: IProgress not found",)


def _size(output: dict) -> int:
    return len(json.dumps(output))


def _shrink(nb: nbformat.NotebookNode) -> int:
    """Drop outputs over the size limit and per-run metadata; return how many outputs were dropped."""
    dropped = 0
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)  # timestamps: a diff on every run
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.get("name") == "stderr" and any(n in "".join(out.get("text", "")) for n in _NOISE):
                continue
            if _size(out) > MAX_OUTPUT_BYTES:
                dropped += 1
                note = f"[output of {_size(out) // 1000} kB not stored; run the notebook to see it]\n"
                kept.append(nbformat.v4.new_output("stream", name="stdout", text=note))
            else:
                kept.append(out)
        cell.outputs = kept
    return dropped


def execute(path: Path, timeout: int = 1200) -> nbformat.NotebookNode:
    """``path`` executed at small size in its own folder; its outputs shrunk as described above."""
    nb = nbformat.read(path, as_version=4)
    setup = nbformat.v4.new_code_cell(_SETUP)
    nb.cells.insert(0, setup)
    os.environ["BAYESCALE_NOTEBOOK_SMALL"] = "1"
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend: figures become stored PNGs
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    nb.cells.pop(0)
    _renumber(nb)
    _shrink(nb)
    return nb


def _renumber(nb: nbformat.NotebookNode) -> None:
    """Execution counts from 1, as if the setup cell had not run (it is not stored)."""
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = i + 1
        for out in cell.get("outputs", []):
            if "execution_count" in out:
                out["execution_count"] = i + 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    p.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default 1200)")
    args = p.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in paths:
        start = time.perf_counter()
        nb = execute(path, args.timeout)
        nbformat.write(nb, path)
        print(f"{path.name}: {time.perf_counter() - start:.0f} s, {path.stat().st_size / 1000:.0f} kB", flush=True)
    total = sum(q.stat().st_size for q in NOTEBOOKS.glob("*.ipynb"))
    print(f"notebooks/: {total / 1e6:.2f} MB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
