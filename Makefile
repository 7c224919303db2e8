# Two commands: `make demo` runs the main job on the bundled data, `make test` runs the tests.
# Each creates its own virtual environment (.venv) and installs what it needs.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Public scaling-law data for the tests: the shared/ folder beside the checkout when present.
SHARED_DATA := $(abspath ../shared/data)
export BAYESCALE_DATA ?= $(if $(wildcard $(SHARED_DATA)/README.md),$(SHARED_DATA),)

# The exact versions CI was last green with. `make test` installs them; delete the file (or run
# `make test-latest`) to take the registry's newest instead; `make lock` records a green environment.
LOCK ?= constraints.txt
PIN  := $(if $(wildcard $(LOCK)),-c $(LOCK),)
# torch is installed first, alone, so the runner extra does not pull a newer (CUDA, several GB)
# build; `make test TORCH=torch` takes the registry's newest instead.
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
# The versions line every test run starts with (against the lock, or saying there is none).
VERSIONS := $(BIN)/python .ci/versions.py $(or $(LOCK),constraints.txt)
# Python compiles each module it imports once and keeps the compiled file in $(VENV)/pycache, for every later
# process (pytest's workers, notebook kernels, command-line runs), even where PYTHONDONTWRITEBYTECODE is set
# (as on CI), which made every process compile what it imported again. Nothing is written beside the sources.
RUN := PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(abspath $(VENV))/pycache
# One pytest worker per core (at most 4), each test file on one worker so module fixtures are fitted once.
# The workers take the files in the order tests/conftest.py gives them (FILE_ORDER), not xdist's (most tests
# first), so that they finish together; the notebooks come after the files that fill the shared compilation
# cache (started first, they took 87 s longer).
PYTEST := $(RUN) $(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder --durations=25

# uv installs from the registry in seconds where pip took most of a minute (7 s against about 35 s for the test
# extras on the 2-core CI machine). pip installs torch, from the CPU build on the machine's disk where there is
# one (uv does not look there), and everything for `make test-latest` (its eager upgrade, torch held by $(TORCH)).
# Neither byte-compiles the install: compiling all of it took 57 s, and a test run imports a small part (RUN).
# uv reads its own settings (UV_INDEX_URL, SSL_CERT_FILE, ...), not pip's configuration.
PIP := $(BIN)/python -m pip install --quiet --no-compile
UV := $(BIN)/uv pip install --python $(BIN)/python --quiet
INSTALL = $(if $(UPGRADE),$(PIP),$(UV))

.PHONY: demo test test-all test-latest lock lint bench install clean notebooks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

# Its own rule, so that a venv made before uv was used gets it too.
$(BIN)/uv: | $(BIN)/python
	$(PIP) $(PIN) uv

$(VENV)/.installed-core: pyproject.toml $(wildcard $(LOCK)) | $(BIN)/python $(BIN)/uv
	$(INSTALL) $(PIN) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(wildcard $(LOCK)) | $(BIN)/python $(BIN)/uv
	$(PIP) $(PIN) "$(TORCH)"
	$(INSTALL) $(PIN) $(UPGRADE) "$(TORCH)" -e ".[test,pymc,runner,ray,slurm]"
	touch $@ $(VENV)/.installed-core

install: $(VENV)/.installed-core

demo: $(VENV)/.installed-core
	$(RUN) $(BIN)/bayescale demo --out out

# The README's test command (CI runs it): the lint, then every test but the slow tier, the slowest named at the end.
test: $(VENV)/.installed-test
	$(VERSIONS)
	$(BIN)/ruff check .
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

# ruff's checks (pyproject.toml: imports in order, line length, complexity); `make test` runs them first.
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check bayescale tests

# Everything, the long statistical studies and end-to-end pilot training (the slow tier) included.
test-all: $(VENV)/.installed-test
	$(VERSIONS)
	$(PYTEST) $(PYTEST_ARGS)

# The same tests (TARGET=test-all for every tier) on the newest release of every dependency (torch stays at $(TORCH): the
# registry's newest is a CUDA build of several GB). Packages that moved since the lock are named first.
test-latest:
	rm -rf .venv-latest
	$(MAKE) $(or $(TARGET),test) VENV=.venv-latest LOCK= UPGRADE="--upgrade --upgrade-strategy eager"

# Record the current test environment as the lock (after a green `make test-latest`, say).
lock: $(VENV)/.installed-test
	$(BIN)/python .ci/versions.py --write constraints.txt

# Execute notebooks/*.ipynb at small size and store them with their outputs (commit the result).
notebooks: $(VENV)/.installed-test
	$(RUN) $(BIN)/python scripts/execute_notebooks.py

bench: $(VENV)/.installed-test
	$(RUN) $(BIN)/python benchmarks/bench_fit.py

clean:
	rm -rf $(VENV) .venv-latest out .pytest_cache
