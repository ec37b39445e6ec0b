# The two commands of the README, and the benchmarks. Everything installs into .venv from pyproject.toml, at the
# exact versions of constraints.txt (regenerate it with `make constraints` after changing pyproject.toml).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONSTRAINTS := constraints.txt
WHEELHOUSE := $(VENV)/wheelhouse
HILLSTROM ?= ../shared/data/hillstrom.csv
BENCH_OUT ?= out/bench
# Spark's Python workers run the venv's interpreter; Spark binds to the loopback address
SPARK_ENV := PYSPARK_PYTHON=$(abspath $(BIN)/python) SPARK_LOCAL_IP=127.0.0.1

CHROMIUM := /usr/bin/chromium

.PHONY: setup setup-test browser constraints demo lint test test-slow hillstrom bench bench-quick bench-family bench-floors bench-soak bench-spark bench-scaling bench-page bench-loop clean

$(BIN)/uplift: pyproject.toml $(CONSTRAINTS)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	touch $(BIN)/uplift

setup: $(BIN)/uplift

## What the tests add: pyspark (the spark extra), a Java runtime for it (Debian's OpenJDK, installed only when
## `java` is missing), and a wheelhouse of what a logged model lists, from which the fresh-environment test installs
$(VENV)/.test-ready: $(BIN)/uplift
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[dev,spark]'
	command -v java >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless; }
	$(BIN)/python -m uplift.tracking.environment --model-runtime > $(VENV)/model-runtime.txt
	$(BIN)/pip wheel --quiet --no-deps -w $(WHEELHOUSE) -r $(VENV)/model-runtime.txt
	touch $@

setup-test: $(VENV)/.test-ready

## constraints.txt from the venv: every distribution the project and its dev and spark extras need, as installed
constraints:
	$(BIN)/python -m uplift.tracking.environment --pyproject pyproject.toml --extras dev,spark > $(CONSTRAINTS).tmp
	mv $(CONSTRAINTS).tmp $(CONSTRAINTS)

## Debian's chromium for the page's browser tests (Playwright drives it; no browser is downloaded)
$(CHROMIUM):
	@if [ "$$(id -u)" != 0 ]; then echo "the page's browser tests need Debian's chromium: run 'sudo apt-get install chromium'" >&2; exit 1; fi
	DEBIAN_FRONTEND=noninteractive apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium < /dev/null

browser: $(CHROMIUM)

## The main job end to end on the embedded defaults: simulated region, local MLflow in ./mlflow.db
demo: setup
	$(BIN)/uplift run

## ruff (pyproject.toml: pyflakes, isort, bugbear, pycodestyle at 120 columns) over the code, tests and benchmarks
lint: setup
	$(BIN)/ruff check src tests benchmarks

## The test suite (what CI runs)
test: setup-test browser
	$(SPARK_ENV) $(BIN)/pytest -q

test-slow: setup-test browser
	$(SPARK_ENV) $(BIN)/pytest -q -m slow

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

## The decision benchmark on the family of worlds: 20 generated regions + Haaglanden at 100,000 people
## (simulating and validating a world takes 8-25 minutes on 2 shared cores; from the cache the benchmark takes minutes)
FAMILY_SEEDS ?= 101 102 103 104 105 106 107 108 109 110 1001 1002 1003 1004 1005 1011 1012 1013 1014 1015
bench-family: setup
	$(BIN)/python -m benchmarks.family --out $(BENCH_OUT)-family --seeds $(FAMILY_SEEDS) --declared --cache out/cache

## What each shipped floor costs in truth and whether it holds there: the first ten generated worlds of the family
## and Haaglanden's seeds 1-2, planned with the shipped policy, each floor removed and all removed (from the cache)
FLOORS_SEEDS ?= 101 102 103 104 105 106 107 108 109 110
bench-floors: setup
	$(BIN)/python -m benchmarks.floorcost --out $(BENCH_OUT)-floors --seeds $(FLOORS_SEEDS) --cache out/cache

## The service under 10 minutes of mixed traffic with plan retention on: errors, latency and memory per minute
bench-soak: setup
	$(BIN)/python -m benchmarks.bench_soak --out $(BENCH_OUT)/soak.md

## Batch scoring, pandas vs Spark local[2] on the same 2 cores: rows/s and peak memory at 1M and 10M rows
bench-spark: setup-test
	$(SPARK_ENV) $(BIN)/python benchmarks/bench_spark.py --out $(BENCH_OUT)

## How every step grows with the person-waves: 1, 3, 10 and 30 million (hours on 2 cores; SCALING_ROWS to choose)
SCALING_ROWS ?= 1000000 3000000 10000000 30000000
bench-scaling: setup
	$(BIN)/python -m benchmarks.scaling --out $(BENCH_OUT)/scaling --rows $(SCALING_ROWS)
## Server time of the planner's page against the JSON API for the same plans (the demo-sized world)
bench-page: setup
	$(BIN)/python -m benchmarks.bench_page --out $(BENCH_OUT)/page.md

## The closed loop: programmes of LOOP_WAVES waves, each planned, designed and analysed by the product from the
## earlier ones, against the oracle, the even split and test-then-best (hours: LOOP_SEEDS and LOOP_PEOPLE to choose)
LOOP_PEOPLE ?= 100000
LOOP_WAVES ?= 6
LOOP_SEEDS ?= 1 2 3 4 5
bench-loop: setup
	$(BIN)/python -m benchmarks.closedloop --out $(BENCH_OUT)/loop --people $(LOOP_PEOPLE) --waves $(LOOP_WAVES) \
	  --seeds $(LOOP_SEEDS)

clean:
	rm -rf $(VENV) mlflow.db mlartifacts data out
