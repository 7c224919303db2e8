# Two commands: `make demo` runs the main job on the bundled data, `make test` runs the tests.
# Each creates its own virtual environment (.venv) and installs what it needs.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Public scaling-law data for the tests: the shared/ folder beside the checkout when present.
SHARED_DATA := $(abspath ../shared/data)
export BAYESCALE_DATA ?= $(if $(wildcard $(SHARED_DATA)/README.md),$(SHARED_DATA),)

.PHONY: demo test test-fast bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# torch is pinned to one build first so the runner extra does not pull a newer (CUDA) one;
# `make test TORCH=torch` takes the registry's newest instead.
TORCH ?= torch==2.13.0

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test,pymc,runner,ray]"
	touch $@ $(VENV)/.installed-core

install: $(VENV)/.installed-core

demo: $(VENV)/.installed-core
	$(BIN)/bayescale demo --out out

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q --durations=20

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_fit.py

clean:
	rm -rf $(VENV) out .pytest_cache
