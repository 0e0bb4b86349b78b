# The README's commands. Each sets up .venv first if pyproject.toml changed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: setup
	$(BIN)/certiverse demo

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.requests --size default

clean:
	rm -rf $(VENV) .certiverse .cache certiverse_demo.duckdb certiverse_demo_published.duckdb certiverse_demo_parquet .certiverse_demo_parquet.*
