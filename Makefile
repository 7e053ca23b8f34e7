# Two targets a new user needs: `make train` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: setup train test lint

setup: $(VENV)/.installed

# The CPU torch is installed first and pinned, so nothing later pulls a CUDA build.
# GPU users: `make setup TORCH=torch` (a CUDA build from PyPI on Linux).
$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

train: setup
	$(BIN)/mbrl-train

# Two worker processes: every test runs torch on one thread, so two share a 2-core machine well.
test: setup
	$(BIN)/python -m pytest -q -n 2

lint: setup
	$(BIN)/ruff check .
