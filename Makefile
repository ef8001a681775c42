# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_RUN := runs/demo-sine-lstm

.PHONY: demo test test-fast lint format clean

# The project itself goes in editable (console scripts keras-rnn-train, ... in .venv/bin) with
# nothing more downloaded: requirements.txt brought setuptools and every dependency.
$(VENV)/.installed: requirements.txt serving/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install -qq --no-deps --no-build-isolation --no-index --editable .
	touch $@

# --force: the demo retrains (and re-exports) the same run directory each time it is run.
demo: $(VENV)/.installed
	$(PY) -m keras_rnn.train --task sine --cell lstm --run-dir $(DEMO_RUN) --force
	$(PY) -m export $(DEMO_RUN) --force

# Two pytest-xdist workers, a test file each at a time (module fixtures are built once): a
# lone pytest kept 2 cores about half busy (waits on subprocesses, servers and files); three
# were no faster (13 min 14 s against 11 min 39 s for two, on an earlier suite). The runs the
# tests share are trained once for all workers (tests/conftest.py). Times: docs/design.md
# section 8.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest --numprocesses $(TEST_WORKERS) --dist loadfile

test: $(VENV)/.installed
	$(PYTEST) $(PYTEST_ARGS)

# The edit loop's tier: every test but those marked slow (tests/conftest.py says which).
test-fast: $(VENV)/.installed
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
