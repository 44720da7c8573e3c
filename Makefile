# Scoreline. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := core schemas streams producers sinks api
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup demo test lint format bench stack-up stack-down stack-status clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## Create the venv and install Scoreline with its dev tools

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required: set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

demo: setup ## Bring up the embedded stack and run the demo (stop it with make stack-down)
	$(BIN)/scoreline demo

test: setup ## Run the tests (unit, integration, chaos) against real components
	$(BIN)/pytest -m "not bench" $(PYTEST_ARGS)

lint: setup ## ruff (check + format check) and mypy --strict; edits nothing
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(PACKAGES)
	$(BIN)/mypy tests

format: setup ## Fix what ruff can fix and format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup ## Run the benchmarks; they write BENCHMARKS.md and BENCHMARKS.json
	@# One pytest (so one fresh embedded broker) per benchmark: after the markets run the
	@# broker keeps a core busy for a while (its own background work), which the next
	@# benchmark would pay for.
	$(BIN)/pytest tests/bench/test_markets_bench.py -m bench -s $(PYTEST_ARGS)
	$(BIN)/pytest tests/bench/test_predictions_bench.py -m bench -s $(PYTEST_ARGS)

stack-up: setup ## Start (or find) the broker, Postgres and Redis
	$(BIN)/scoreline stack up

stack-status: setup ## Show the stack
	$(BIN)/scoreline stack status

stack-down: setup ## Stop only what stack-up or the demo started
	$(BIN)/scoreline stack down

clean: ## Stop our stack and remove the venv, .scoreline/ and caches
	-@[ -x $(BIN)/scoreline ] && $(BIN)/scoreline stack down
	rm -rf $(VENV) .scoreline .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
