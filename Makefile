# The front door. `make demo` and `make test` are the two commands a new reader needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-citus lint bench mutations soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.base: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	touch $@ $(VENV)/.base

demo: $(VENV)/.base
	$(BIN)/execstore demo

test: $(VENV)/.dev
	sh scripts/ensure-test-tools.sh
	sh scripts/ensure-partman.sh
	$(BIN)/pytest -q --durations=15  # and the 15 slowest tests, to keep the suite fast

# Not part of `make test`: builds Citus once if it is missing (minutes), then starts a
# coordinator and two workers for tests/citus (see README, "Citus").
test-citus: $(VENV)/.dev
	sh scripts/ensure-citus.sh
	$(BIN)/pytest -q -m citus tests/citus

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests benchmarks examples scripts
	$(BIN)/ruff format --check src tests benchmarks examples scripts
	$(BIN)/mypy

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/run_all.py

# Not part of `make test`: it reruns narrow test selections once per mutation (minutes).
mutations: $(VENV)/.dev
	sh scripts/ensure-test-tools.sh
	sh scripts/ensure-partman.sh
	$(BIN)/python scripts/mutation_check.py

# Not part of `make test`: the lifecycle model test for SOAK_SECONDS (default an hour),
# fresh random examples until the time is up; the log goes to SOAK_LOG (soak.log).
SOAK_SECONDS ?= 3600
soak: $(VENV)/.dev
	sh scripts/ensure-test-tools.sh
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/python scripts/soak.py

clean:
	rm -rf $(VENV) .execstore .pytest_cache .mypy_cache .ruff_cache
