# The README's two commands: `make search` (set up, then the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup search test lint

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/activate

setup: $(BIN)/activate
	./scripts/install-system-deps.sh

# A real search on Fashion-MNIST: 16 trials, about 10 minutes on 2 CPU cores.
search: setup
	$(BIN)/python -m search.run --dataset fashion-mnist --budget quick

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
