"""Execute every notebook in notebooks/ at small size: they must run top to bottom.

In the default tier (``make test``, CI): each capability's notebook is part of what a change must keep working.
The cells run in the pytest worker's process, in a new IPython shell per notebook (the interpreter a Jupyter
kernel runs), not in a kernel of their own: a kernel is a new process that imports bayescale and traces its
samplers again (notebooks 01-03 took 100 s in one process against 124 s in kernels, back to back twice, the
caches empty). What the shell changes for the whole process is put back afterwards, for the worker's later
tests. ``make notebooks`` executes them in a kernel and stores what they show.
"""

import builtins
import contextlib
import io
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

nbformat = pytest.importorskip("nbformat")
interactiveshell = pytest.importorskip("IPython.core.interactiveshell")
traitlets_config = pytest.importorskip("traitlets.config")

EXPECTED = {
    "10_wsd_and_repeated_data.ipynb": ["trunk_id", "three separate pilots", "price", "R*_D"],
    "09_compare_recipes.ipynb": [
        "true multiplier 2.0 inside the 90% interval: True",
        "Pick B",
        "law average: multiplier",
        "report written:",
    ],
    "08_law_uncertainty.ipynb": ["the true loss at the target", "chinchilla alone", "average of", "conformal factor"],
    "07_misfit.ipynb": [
        "no misfit found",
        "warned: ['MisfitWarning']",
        "over-predicts the loss of your",
        "severity: severe",
        "neighbouring runs sit off the law together",
    ],
    "06_pilot_runner.ipynb": ["layers x width", "held-out loss", "max r-hat", "largest pilot's compute", "held out"],
    "01_fit_and_extrapolate.ipynb": ["max r-hat", "P(loss <= 2.2)"],
    "03_report.ipynb": ["report written:", "P(loss <="],
    "04_next_pilot.ipynb": ["Stopping rule", "why", "round 1: training", "compute-optimal loss at C="],
    "05_learning_curves.ipynb": [
        "leave-future-out weights",
        "bayescale ensemble",
        "bayescale LOO stack",
        "least squares m2",
        "90% interval",
    ],
    "02_decide_and_check.ipynb": [
        "elpd_loo",
        "held out",
        "within 0.5% of the optimal loss",
        "P(loss <=",
        "p-new: observed",
    ],
}
NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: Half the notebooks run here, half in ``test_notebooks_second_half.py``: pytest-xdist gives each file
#: to one worker (``--dist loadfile``), and all of them on one worker were the suite's last six minutes.
#: Notebooks 01-03 fit the same NUTS program to the demo runs, so they run here, one after another, and the
#: later two read its compilation: split by parity, notebook 02 compiled it on the other worker at the same
#: time as 01 (39 s in CI run 81, 13 s when it ran after 01 in run 80). A new notebook runs here.
SECOND_HALF_NAMES = (
    "04_next_pilot.ipynb",
    "05_learning_curves.ipynb",
    "06_pilot_runner.ipynb",
    "08_law_uncertainty.ipynb",
)
FIRST_HALF = [p for p in NOTEBOOKS if p.name not in SECOND_HALF_NAMES]
SECOND_HALF = [p for p in NOTEBOOKS if p.name in SECOND_HALF_NAMES]


@pytest.mark.parametrize("path", FIRST_HALF, ids=[p.name for p in FIRST_HALF])
def test_notebook_runs(path, monkeypatch, tmp_path_factory):
    run_notebook(path, monkeypatch, tmp_path_factory)


def run_notebook(path, monkeypatch, tmp_path_factory):
    """Execute the notebook at ``path`` at small size; it must raise nothing and print its key results."""
    monkeypatch.setenv("BAYESCALE_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path_factory.getbasetemp() / "ipython"))  # not the user's ~/.ipython
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)  # IPython would add another venv's packages to sys.path
    monkeypatch.chdir(path.parent)  # where a kernel started by Jupyter runs the notebook
    # The notebooks write their tables, pilots and reports to tempfile.mkdtemp() folders for the reader to open:
    # in the test session those go under pytest's temporary folder, which pytest prunes, not /tmp.
    scratch = str(tmp_path_factory.mktemp(path.stem))
    monkeypatch.setattr(tempfile, "tempdir", scratch)
    monkeypatch.setenv("TMPDIR", scratch)  # and the processes a notebook starts (pilots)
    out = io.StringIO()
    # A reader's interpreter: warnings are shown (stderr in a kernel), not the test session's errors.
    with warnings.catch_warnings(record=True) as shown, contextlib.redirect_stdout(out), _shell() as shell:
        warnings.simplefilter("default")
        for i, cell in enumerate(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"):
            result = shell.run_cell(cell.source, store_history=False)
            assert result.success, (
                f"{path.name}, code cell {i}: {result.error_before_exec or result.error_in_exec!r}\n{out.getvalue()[-3000:]}"
            )
    # Each notebook prints its key results; a notebook that printed nothing did not run.
    text = out.getvalue() + "".join(f"{w.category.__name__}: {w.message}\n" for w in shown)
    assert EXPECTED[path.name] and all(s in text for s in EXPECTED[path.name]), text[-2000:]


@contextlib.contextmanager
def _shell():
    """A new IPython shell (history off, tracebacks without colour codes), and afterwards the process as it was:
    ``__main__``, the prompts and builtins the shell sets, torch's thread count (a notebook trains on one
    thread), the figures left open."""
    Config = traitlets_config.Config
    config = Config(HistoryManager=Config(enabled=False), InteractiveShell=Config(colors="nocolor"))
    main, prompts = sys.modules["__main__"], {k: getattr(sys, k) for k in ("ps1", "ps2", "ps3") if hasattr(sys, k)}
    added = [k for k in ("__IPYTHON__", "display") if not hasattr(builtins, k)]
    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    try:
        yield interactiveshell.InteractiveShell.instance(config=config)
    finally:
        interactiveshell.InteractiveShell.clear_instance()
        sys.modules["__main__"] = main
        for k in ("ps1", "ps2", "ps3", "last_type", "last_value", "last_traceback", "last_exc"):
            if k in prompts:
                setattr(sys, k, prompts[k])
            elif hasattr(sys, k):
                delattr(sys, k)
        for k in added:
            if hasattr(builtins, k):
                delattr(builtins, k)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads or os.cpu_count() or 1)  # torch's own default: one per core
        plt.close("all")


#: The stored notebooks together stay below this (figures at modest resolution, no embedded reports).
STORED_LIMIT_BYTES = 3_000_000


def test_notebooks_are_stored_executed_and_small():
    """Readers see the notebooks as they ran (``make notebooks`` stores them), without a heavy repository."""
    total = 0
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        unexecuted = [i for i, c in enumerate(code) if c.get("execution_count") is None]
        assert not unexecuted, f"{path.name}: code cells {unexecuted} have no stored output: run `make notebooks`"
        for c in code:
            for out in c.get("outputs", []):
                assert len(json.dumps(out)) <= 250_000, f"{path.name}: an output over 250 kB is stored"
        total += path.stat().st_size
    assert total < STORED_LIMIT_BYTES, f"notebooks/ holds {total / 1e6:.1f} MB"
    assert [p.name for p in SECOND_HALF] == sorted(SECOND_HALF_NAMES), "a second-half notebook was renamed"
