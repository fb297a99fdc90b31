# The two commands of the README: `make run` and `make test`. Each installs what it needs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format install install-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# `db upgrade` first: a ./var made by an older checkout gets the new schema (a no-op when current).
run: install
	$(BIN)/embedlab db upgrade
	$(BIN)/embedlab serve

# Two test processes (pytest-xdist), a test file each at a time: most tests wait on a worker or a
# server process, so two keep two cores busy. TEST_PROCESSES=0 runs them in this process.
TEST_PROCESSES ?= 2
test: install-test
	$(BIN)/python -m pytest -q -ra -n $(TEST_PROCESSES) --dist loadfile

# The linter and formatter (ruff, configured in pyproject.toml); .ci/run calls it.
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var
