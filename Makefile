# Metrify: `make demo` runs the pipeline end to end; `make test` runs lint, types and the test suite.
# Both bootstrap what they need: uv (via pip when missing) and the locked environment in .venv.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .cache/uv-bootstrap/bin/uv)
RUN := $(UV) run --locked
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: help env demo test lint typecheck dbt-parse redis-server promtool alertmanager dev bench bench-quick clean

help:  ## List targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

.cache/uv-bootstrap/bin/uv:
	$(PYTHON) -m venv .cache/uv-bootstrap
	.cache/uv-bootstrap/bin/pip install --quiet uv

# --compile-bytecode: every installed module's .pyc made once here, so no process compiles Dagster, GX
# and pandas from source on import (where PYTHONDONTWRITEBYTECODE is set, none is ever cached).
# native/: the C record parser, rebuilt by uv when its source changes (its cache-keys).
.venv/.synced: uv.lock pyproject.toml Makefile $(wildcard native/pyproject.toml native/metrify_native/*) | $(UV)
	$(UV) sync --locked --all-groups --all-extras --compile-bytecode
	touch $@

env: .venv/.synced  ## Create the locked environment (.venv)

# The manifest is rebuilt only when a file of the dbt project (or the environment) changed.
DBT_SOURCES := $(shell find dbt_project \( -path dbt_project/target -o -path dbt_project/logs \) -prune -o -type f -print)

dbt_project/target/manifest.json: .venv/.synced $(DBT_SOURCES)
	cd dbt_project && ../.venv/bin/dbt parse --quiet --profiles-dir . --target-path target
	touch $@

dbt-parse: dbt_project/target/manifest.json  ## Build dbt's manifest when the project changed (dagster-dbt reads it to build the asset graph)

dbt-docs: env dbt-parse  ## dbt's docs site (models, columns, lineage) into the lake: reports/dbt_docs/index.html
	$(RUN) python -m metrify_assets.warehouse.docs

demo: env dbt-parse  ## Simulate, land, materialise the whole graph and print a summary
	$(RUN) metrify demo

lint: env  ## ruff (lint + format check)
	$(RUN) ruff check metrify_assets metrify_platform tests benchmarks native
	$(RUN) ruff format --check metrify_assets metrify_platform tests benchmarks native

typecheck: env  ## mypy on the package
	$(RUN) mypy

kafka-jars: env  ## Fetch Apache Kafka's jars (Maven Central) into .cache/kafka for the Kafka tests and `metrify kafka broker`
	$(RUN) python -c 'from metrify_platform.kafka_broker import ensure_jars; ensure_jars()'

redis-server:  ## Debian's redis-server for the cache tests and a local cache (apt-get when missing: root, or sudo)
	@command -v redis-server >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "redis-server is missing and there is no apt-get: install Redis 7+ (see README)" >&2; exit 1; }; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server; }

promtool:  ## promtool from Debian's prometheus package, for the alert-rule unit tests (apt-get when missing)
	@command -v promtool >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "promtool is missing and there is no apt-get: install Prometheus 2.42+ (see README)" >&2; exit 1; }; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; }

alertmanager:  ## Alertmanager and amtool from Debian's prometheus-alertmanager, for the routing tests (apt-get when missing)
	@command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "alertmanager is missing and there is no apt-get: install Alertmanager 0.25+ (see README)" >&2; exit 1; }; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-alertmanager; }

test: lint typecheck dbt-parse kafka-jars redis-server promtool alertmanager  ## Lint, types and the whole test suite (real services)
	$(RUN) pytest -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder  # a file's tests share one worker's services; slow files first (tests/conftest.py)

dev: env dbt-parse  ## The Dagster UI on http://127.0.0.1:3000 with this project's instance
	$(RUN) metrify ui

bench: env dbt-parse  ## Benchmarks against their ceilings (about 25 min on 2 cores; SCALE=N for bigger inputs); writes benchmarks/results/latest.*
	$(RUN) python -m benchmarks $(if $(SCALE),--scale $(SCALE))

bench-quick: env dbt-parse  ## Every benchmark case small, two at a time (~3 min), a smoke check; writes benchmarks/results/quick.*
	$(RUN) python -m benchmarks --quick --jobs 2

clean:  ## Remove local state (.metrify: embedded database, lake, landing) and build output
	rm -rf .metrify dbt_project/target
