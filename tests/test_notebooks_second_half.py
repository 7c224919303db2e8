"""The other half of the notebooks (see ``test_notebooks.py``: a second file, so a second worker runs them)."""

import pytest
from test_notebooks import SECOND_HALF, run_notebook


@pytest.mark.parametrize("path", SECOND_HALF, ids=[p.name for p in SECOND_HALF])
def test_notebook_runs(path, monkeypatch, tmp_path_factory):
    run_notebook(path, monkeypatch, tmp_path_factory)
