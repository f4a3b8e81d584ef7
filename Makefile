# Two commands are all the set-up there is: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint bench services clean

# Reinstall only when pyproject.toml changed (the stamp is older than it).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/cairn serve

# Demo data: through the running service's API if `make run` is up, else into the stores.
demo: $(STAMP)
	$(BIN)/cairn demo

services:
	@bash scripts/ensure-services

lint: $(STAMP)
	$(BIN)/ruff check cairn tests bench
	$(BIN)/mypy

test: $(STAMP) services lint
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP) services
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .cairn .mypy_cache .ruff_cache
