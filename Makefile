# lifeboat — developer and CI entry points. `make help` lists the targets.
#
# Everything runs from the project's virtualenv (.venv): Spark (spark-submit), Airflow (airflow) and DVC
# call executables by name, so every recipe has .venv/bin first on PATH.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# The interpreter that creates .venv: the first of these that is Python 3.11 or newer (override: PYTHON=...).
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo "$$p"; break; }; \
	done)
# Spark 4 needs Java 17 or newer; JAVA_HOME wins over PATH, as it does for spark-submit.
JAVA ?= $(if $(JAVA_HOME),$(JAVA_HOME)/bin/java,java)

STAMP := $(VENV)/.lifeboat-installed
DEV_STAMP := $(VENV)/.lifeboat-dev-installed
# uv (pinned in requirements-tools.txt) installs the locks; INSTALLER=pip does the same with pip, slower.
INSTALLER ?= uv
LIFEBOAT := $(BIN)/lifeboat
CODE := lifeboat serving dags jobs plugins tests
PYTEST_ARGS ?=
ROWS ?= 20
URL ?= http://127.0.0.1:8000
BENCH_ARGS ?=
PROMOTION_ARGS ?=
NEWCOMER_ARGS ?=

.PHONY: help venv venv-dev lock check-java lint format test test-unit pull run stop status preprocess train serve smoke bench bench-dag bench-training bench-promotion bench-newcomer clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

venv: $(STAMP) ## the runtime environment in .venv (what `make run` needs), from requirements.lock (INSTALLER=pip: without uv)

venv-dev: $(DEV_STAMP) ## the runtime environment + test and lint tools, from requirements-dev.lock (lint and test need it)

# Phases, elapsed time and a package count on screen; the installer's full log in .lifeboat/logs/install.log.
define bootstrap
	@if [ -z "$(PYTHON)" ]; then echo "error: Python 3.11 or newer is required; none found (set PYTHON=/path/to/python3.11)" >&2; exit 1; fi
	@"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "error: $(PYTHON) is older than Python 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
	@if [ -x "$(BIN)/python" ] && ! "$(BIN)/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
		echo "error: $(VENV) uses a Python older than 3.11; remove it and run make again" >&2; exit 1; fi
	@"$(PYTHON)" -m lifeboat.stack.bootstrap env --venv "$(VENV)" --lock $(1) --installer "$(INSTALLER)" --python "$(PYTHON)"
endef

$(STAMP): requirements.lock requirements-tools.lock pyproject.toml
	$(call bootstrap,requirements.lock)
	@touch "$@"

# The dev lock holds the runtime lock (same versions), so the runtime stamp is fresh as well.
$(DEV_STAMP): requirements-dev.lock requirements.lock requirements-tools.lock pyproject.toml
	$(call bootstrap,requirements-dev.lock)
	@touch "$(STAMP)" "$@"

lock: ## regenerate every hashed lock (requirements*.lock) from requirements*.txt + constraints.txt with uv
	@"$(PYTHON)" -m lifeboat.stack.bootstrap lock --python "$(PYTHON)"

check-java: ## fail clearly unless Java 17+ is available (Spark 4)
	@if ! command -v "$(JAVA)" >/dev/null 2>&1; then \
		echo "error: Java 17 or newer is required by Spark 4, but '$(JAVA)' was not found." >&2; \
		echo "       Install OpenJDK 17 or 21 (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME." >&2; \
		exit 1; fi
	@version=$$("$(JAVA)" -version 2>&1 | awk -F'"' '/version/ {print $$2; exit}'); \
	major=$${version%%.*}; \
	if [ "$$major" = "1" ]; then major=$$(echo "$$version" | cut -d. -f2); fi; \
	if ! [ "$$major" -ge 17 ] 2>/dev/null; then \
		echo "error: Java 17 or newer is required by Spark 4; '$(JAVA)' is version '$${version:-unknown}'." >&2; \
		echo "       Install OpenJDK 17 or 21 or point JAVA_HOME at one." >&2; \
		exit 1; fi

lint: venv-dev ## ruff check, ruff format --check, mypy
	"$(BIN)/ruff" check $(wildcard $(CODE))
	"$(BIN)/ruff" format --check $(wildcard $(CODE))
	"$(BIN)/mypy"

format: venv-dev ## fix what ruff can fix and format the code
	"$(BIN)/ruff" check --fix $(wildcard $(CODE))
	"$(BIN)/ruff" format $(wildcard $(CODE))

# pytest's exit code 5 means "no tests collected": that is a failure, not a pass.
define run_pytest
	status=0; "$(BIN)/python" -m pytest $(1) $(PYTEST_ARGS) || status=$$?; \
	if [ "$$status" -eq 5 ]; then echo "error: pytest collected no tests (exit code 5)" >&2; fi; \
	exit "$$status"
endef

test: venv-dev check-java pull lint ## lint, then every test (set PYTEST_ARGS to pass options to pytest)
	@$(call run_pytest,)

test-unit: venv-dev pull ## only the unit tests (-m unit)
	@$(call run_pytest,-m unit)

pull: venv ## fetch the DVC-tracked data from the DVC remote (the bundled one by default)
	"$(LIFEBOAT)" pull

run: venv check-java pull ## the platform on this machine: MLflow, serving, Airflow + each dataset's first retraining run (TRIGGER=1: new runs, WAIT_ALL=1: follow every run)
	"$(LIFEBOAT)" up $(if $(TRIGGER),--trigger,) $(if $(WAIT_ALL),--wait-all,)

stop: ## stop every process `make run` started (by recorded pid, nothing else)
	@if [ -x "$(LIFEBOAT)" ]; then "$(LIFEBOAT)" down; else echo "nothing to stop: $(VENV) does not exist"; fi

status: ## which processes of `make run` run, and whether they answer
	@if [ -x "$(LIFEBOAT)" ]; then "$(LIFEBOAT)" status; else echo "nothing runs: $(VENV) does not exist"; exit 1; fi

preprocess: venv check-java pull ## Spark preprocessing of the training data (local[*] by default)
	"$(LIFEBOAT)" preprocess

train: venv check-java pull ## one retraining run: preprocess, train, gate, promote (local Spark + MLflow store)
	"$(LIFEBOAT)" train

serve: venv ## run the FastAPI prediction server
	"$(LIFEBOAT)" serve

smoke: venv pull ## post ROWS random rows of data/titanic/raw/test.csv to the server at URL and check every answer
	"$(BIN)/python" tests/test_script.py --input data/titanic/raw/test.csv --rows $(ROWS) --url $(URL)

bench: venv check-java pull ## serving, drift, label ingestion, live monitoring, DAG-run, training-scale and promotion benchmarks: tables printed, JSON in bench-results/ (BENCH_ARGS: serving options)
	"$(BIN)/python" benchmarks/bench_serving.py $(BENCH_ARGS)
	"$(BIN)/python" benchmarks/bench_drift.py
	"$(BIN)/python" benchmarks/bench_labels.py
	"$(BIN)/python" benchmarks/bench_monitor.py
	"$(BIN)/python" benchmarks/bench_dag.py
	"$(BIN)/python" benchmarks/bench_training.py
	"$(BIN)/python" benchmarks/bench_promotion.py --reuse-state bench-results/state $(PROMOTION_ARGS)

bench-dag: venv check-java pull ## only the DAG-run benchmark (one full titanic_retrain run on a fresh stack, by task)
	"$(BIN)/python" benchmarks/bench_dag.py

bench-training: venv check-java pull ## only the retraining-scale benchmark: preprocess + train + gate at 891/100k/1M rows (SIZES=891,100k)
	"$(BIN)/python" benchmarks/bench_training.py $(if $(SIZES),--sizes $(SIZES),)

bench-promotion: venv check-java pull ## only the promotion-to-served benchmark: alias change -> first answer of the new version (PROMOTION_ARGS: options)
	"$(BIN)/python" benchmarks/bench_promotion.py $(PROMOTION_ARGS)

bench-newcomer: ## a newcomer's first minutes: fresh clones, cold caches, make venv with uv vs pip by phase (NEWCOMER_ARGS: --repeats N, --run, ...)
	"$(PYTHON)" benchmarks/bench_newcomer.py $(NEWCOMER_ARGS)

clean: ## remove lifeboat's local state (.lifeboat: MLflow store, runs, reports) after confirmation
	@if [ ! -e .lifeboat ]; then echo "nothing to clean: .lifeboat does not exist"; exit 0; fi; \
	if [ "$(YES)" != "1" ]; then \
		if [ ! -t 0 ]; then echo "error: refusing to delete .lifeboat without confirmation (run: make clean YES=1)" >&2; exit 1; fi; \
		read -r -p "Delete .lifeboat (local MLflow models, runs, reports)? [y/N] " answer; \
		case "$$answer" in [yY]|[yY][eE][sS]) ;; *) echo "kept .lifeboat"; exit 0;; esac; \
	fi; \
	rm -rf .lifeboat; echo "removed .lifeboat"
