"""Shared test setup: a headless plotting backend and the public data folder.

Tests that need Epoch's Chinchilla runs (or other public data) use the
``shared_data`` fixture (the path of ``shared/data`` beside the repository, or a
skip) and ``bayescale_data``, which points ``BAYESCALE_DATA`` at it for the
duration of one test. A module can make that automatic with::

    pytestmark = pytest.mark.usefixtures("bayescale_data")

Module-scoped fixtures cannot use ``monkeypatch``; they combine ``shared_data``
with ``pytest.MonkeyPatch.context()`` instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest

import bayescale

# XLA's backend compiles without its optimisation passes in the tests, before any test module starts JAX
# and for every process they start (command-line runs and pilots inherit the environment).
# Compilation is the suite's largest cost (570 s of 1916 s of in-process test time in one run), and the
# programs are the same computations: four test files took 208 s against 233 s run back to back, with
# the same 232 tests passing. Draws can differ from an optimised build's in the last bits, so a test that
# compares draws compares two fits of this session. `XLA_FLAGS` set by the caller wins.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
# Four host devices for parallel chains, as the command line has, set before any test module
# starts JAX (whichever test file is collected first).
bayescale.set_host_device_count(4)

# One cache for the whole run, shared by the pytest-xdist workers (they see the same run id) and,
# through BAYESCALE_CACHE, by what they start: command-line runs and pilots. What one
# compiled, or traced for a bundled law, the others load (a notebook comparing recipes runs in 54 s
# on a warm cache against 93 s cold). It lives in the temporary folder, never in the user's cache,
# and the run removes it at the end. The controller passes its process id to the workers through
# the environment.
os.environ.setdefault("BAYESCALE_TEST_RUN", str(os.getpid()))
TEST_ROOT = Path(tempfile.gettempdir()) / f"bayescale-tests-{os.environ['BAYESCALE_TEST_RUN']}"
os.environ["BAYESCALE_CACHE"] = str(TEST_ROOT)
bayescale.enable_compilation_cache()  # in $BAYESCALE_CACHE/jax


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controller, after every worker finished
        shutil.rmtree(TEST_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def stdlib_tokens() -> Path:
    """The shared cache, holding the stdlib corpus's tokenizer and token arrays: built once per run (a
    20-30 s job) and read there by the notebooks and command-line pilots."""
    pytest.importorskip("tokenizers", reason="the pilot runner needs the runner extra")
    from bayescale.runner.corpus import token_streams

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BAYESCALE_CACHE", str(TEST_ROOT))
        token_streams("stdlib")
    return TEST_ROOT


@pytest.fixture(scope="module")
def private_cache(stdlib_tokens: Path, tmp_path_factory: pytest.TempPathFactory):
    """A bayescale cache of the module's own (its pilots' checkpoints touch no other module's), set as
    ``BAYESCALE_CACHE`` for the module, holding a copy of the shared tokenizer and token arrays."""
    path = tmp_path_factory.mktemp("bscache")
    for folder in ("tokenizers", "tokens"):
        shutil.copytree(stdlib_tokens / folder, path / folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BAYESCALE_CACHE", str(path))
        yield path


#: The test files in the order the pytest-xdist workers start them (``--dist loadfile --no-loadscope-reorder``),
#: so that the workers finish together: the long files first, then the notebooks, then the files not named here (each
#: under 20 s of a worker's time), in alphabetical order, which fill the gap between the workers' ends. Left to xdist
#: (most tests first) the 80 s README test started last and one worker waited 77 s for the other (CI run 79). The
#: notebooks run late because they read what the tests compiled from the shared cache: started after the first
#: four files they took 327 s against 271 s at the end (CI runs 79-80). test_runner.py builds the corpus's
#: tokenizer that notebook 06 and the README's dry run read.
FILE_ORDER = (
    "test_cli.py",
    "test_inference.py",
    "test_compare.py",
    "test_runner.py",
    "test_readme.py",
    "test_exported.py",
    "test_design_regions.py",
    "test_averaging.py",
    "test_active.py",
    "test_plots.py",
    "test_checks.py",
    "test_sensitivity.py",
    "test_misfit.py",
    "test_laws.py",
    "test_report.py",
    "test_data.py",
    "test_bench_replay.py",
    "test_curves.py",
    "test_chinchilla.py",
    "test_pymc_backend.py",
    "test_modes.py",
    "test_buckets.py",
    "test_runner_guards.py",
    "test_scaled_priors.py",
    "test_notebooks.py",
    "test_notebooks_second_half.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(FILE_ORDER)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA_ENV = "BAYESCALE_DATA"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public data folder ``shared/data`` beside the repository, or skip the test."""
    if not SHARED_DATA.is_dir():
        pytest.skip("public data not available: set BAYESCALE_DATA to a local copy of shared/data")
    return SHARED_DATA


@pytest.fixture
def bayescale_data(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Set ``BAYESCALE_DATA`` to ``shared/data`` for one test (restored afterwards)."""
    monkeypatch.setenv(DATA_ENV, str(shared_data))
    return shared_data
