# The commands of the README and docs/development.md. Each sets up .venv first if pyproject.toml changed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench docs clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: setup
	$(BIN)/certiverse demo

# one pytest worker per core: each starts its own throwaway PostgreSQL
test: setup
	$(BIN)/python -m pytest -n auto

# speed in one run, beside the code before issue 20 (benchmarks/bench.py; BENCH_ARGS=--large adds the
# large tenant); the older, narrower benchmarks: python -m benchmarks.run, benchmarks.requests, ...
BENCH_ARGS ?=
bench: setup
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)

# dbt's docs site for the marts (one HTML file) from the demo warehouse, and docs/marts.md
docs: setup
	test -f certiverse_demo.duckdb || $(BIN)/certiverse demo
	$(BIN)/python -m certiverse_warehouse.pipelines.transform.marts_doc
	$(BIN)/certiverse dbt-profile --duckdb-file certiverse_demo.duckdb --profiles-dir .certiverse/dbt
	$(BIN)/dbt docs generate --static --project-dir transforms --profiles-dir .certiverse/dbt \
		--no-send-anonymous-usage-stats --quiet
	@echo "dbt docs: transforms/target/static_index.html"

clean:
	rm -rf $(VENV) .certiverse .cache certiverse_demo.duckdb certiverse_demo_published.duckdb certiverse_demo_parquet .certiverse_demo_parquet.* transforms/target transforms/logs
