# The two commands of the README, and the benchmarks. Everything installs into .venv from pyproject.toml.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HILLSTROM ?= ../shared/data/hillstrom.csv
BENCH_OUT ?= out/bench

CHROMIUM := /usr/bin/chromium

.PHONY: setup browser demo test test-slow hillstrom bench bench-quick bench-soak bench-page clean

$(BIN)/uplift: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/uplift

setup: $(BIN)/uplift

## Debian's chromium for the page's browser tests (Playwright drives it; no browser is downloaded)
$(CHROMIUM):
	@if [ "$$(id -u)" != 0 ]; then echo "the page's browser tests need Debian's chromium: run 'sudo apt-get install chromium'" >&2; exit 1; fi
	DEBIAN_FRONTEND=noninteractive apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium < /dev/null

browser: $(CHROMIUM)

## The main job end to end on the embedded defaults: simulated region, local MLflow in ./mlflow.db
demo: setup
	$(BIN)/uplift run

## The test suite (what CI runs)
test: setup browser
	$(BIN)/pytest -q

test-slow: setup browser
	$(BIN)/pytest -q -m slow

## Every learner on the Hillstrom e-mail experiment, beside the two-model logistic baseline; they register as
## uplift-hillstrom-visit (its own champion: the campaign model uplift-registration is never touched)
hillstrom: setup
	$(BIN)/uplift train models/pooled_lightgbm.yaml models/t_shared_lightgbm.yaml models/t_lightgbm.yaml \
	  models/x_lightgbm.yaml models/dr_lightgbm.yaml models/uplift_forest.yaml models/t_logistic.yaml \
	  --experiment-csv $(HILLSTROM) --mapping features/datasets/hillstrom.yaml --outcome visit

## Benchmarks (not part of the test suite): quick mode for CI-sized runs, full mode for the README figures
bench-quick: setup
	$(BIN)/python -m benchmarks --quick --out $(BENCH_OUT) --hillstrom $(HILLSTROM)

bench: setup
	$(BIN)/python -m benchmarks --out $(BENCH_OUT) --hillstrom $(HILLSTROM)

## The service under 10 minutes of mixed traffic with plan retention on: errors, latency and memory per minute
bench-soak: setup
	$(BIN)/python -m benchmarks.bench_soak --out $(BENCH_OUT)/soak.md

## Server time of the planner's page against the JSON API for the same plans (the demo-sized world)
bench-page: setup
	$(BIN)/python -m benchmarks.bench_page --out $(BENCH_OUT)/page.md

clean:
	rm -rf $(VENV) mlflow.db mlartifacts data out
