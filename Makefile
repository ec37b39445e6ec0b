# The two commands of the README, and the benchmarks. Everything installs into .venv from pyproject.toml.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HILLSTROM ?= ../shared/data/hillstrom.csv
BENCH_OUT ?= out/bench

.PHONY: setup demo test test-slow hillstrom bench bench-quick bench-family clean

$(BIN)/uplift: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/uplift

setup: $(BIN)/uplift

## The main job end to end on the embedded defaults: simulated region, local MLflow in ./mlflow.db
demo: setup
	$(BIN)/uplift run

## The test suite (what CI runs)
test: setup
	$(BIN)/pytest -q

test-slow: setup
	$(BIN)/pytest -q -m slow

## Every learner on the Hillstrom e-mail experiment, beside the two-model logistic baseline
hillstrom: setup
	$(BIN)/uplift train models/pooled_lightgbm.yaml models/t_shared_lightgbm.yaml models/t_lightgbm.yaml \
	  models/x_lightgbm.yaml models/dr_lightgbm.yaml models/uplift_forest.yaml models/t_logistic.yaml \
	  --experiment-csv $(HILLSTROM) --mapping features/datasets/hillstrom.yaml --outcome visit

## Benchmarks (not part of the test suite): quick mode for CI-sized runs, full mode for the README figures
bench-quick: setup
	$(BIN)/python -m benchmarks --quick --out $(BENCH_OUT) --hillstrom $(HILLSTROM)

bench: setup
	$(BIN)/python -m benchmarks --out $(BENCH_OUT) --hillstrom $(HILLSTROM)

## The decision benchmark on the family of worlds: 20 generated regions + Haaglanden at 100,000 people (hours)
bench-family: setup
	$(BIN)/python -m benchmarks.family --out $(BENCH_OUT)-family --worlds 20 --cache out/worlds

clean:
	rm -rf $(VENV) mlflow.db mlartifacts data out
