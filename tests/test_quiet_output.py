"""What a user sees: no third-party banner, migration log or library warning, and the product's own notes once."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from allocation_worlds import kind_table
from conftest import ROOT
from uplift.errors import ThinDataWarning
from uplift.modeling.validation import fold_ids
from uplift.quiet import install, registry_notes_dropped

NOISE = re.compile(
    r"FutureWarning|UserWarning|DeprecationWarning|warnings\.warn|HiGHS|licen[cs]e|Copyright|alembic|"
    r"mlflow\.store|database tables|duecredit|Downloading artifacts|python_model|model signature|"
    r"Registered model|Created version"
)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``args`` in a fresh interpreter of this venv, in ``cwd`` as the work folder, with this checkout's sources."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PYTHONWARNINGS") and not k.startswith("UPLIFT_")}
    env.update({"UPLIFT_PROJECT_ROOT": str(ROOT), "UPLIFT_WORKDIR": str(cwd), "COLUMNS": "200",
                "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])})
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def uplift(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run(str(Path(sys.executable).with_name("uplift")), *args, cwd=cwd)


def assert_quiet(proc: subprocess.CompletedProcess) -> None:
    for stream, text in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        noisy = [line for line in text.splitlines() if NOISE.search(line)]
        assert not noisy, f"{stream} has third-party noise:\n" + "\n".join(noisy)


def test_a_new_tracking_store_and_a_plan_print_only_the_product(tmp_path):
    models = uplift("models", cwd=tmp_path)  # creates and migrates a new SQLite tracking store
    assert (tmp_path / "mlflow.db").exists() and "no registered models" in models.stdout.lower()
    assert models.stderr == ""
    kind_table("targetable").to_csv(tmp_path / "segments.csv", index=False)
    planned = uplift("plan", "--budget", "1000", "--segments", "segments.csv", "--out", "plan.csv", cwd=tmp_path)
    assert "Budget split for €1,000" in planned.stdout and (tmp_path / "plan.csv").exists()
    for proc in (models, planned):
        assert_quiet(proc)


def test_importing_the_uplift_forest_after_install_is_silent(tmp_path):
    """causalml's uplift forest imports forestci, which logs an error when the optional duecredit is absent."""
    proc = run(sys.executable, "-c", "from uplift.quiet import install; install(); import forestci", cwd=tmp_path)
    assert proc.stderr == ""


@pytest.mark.slow
def test_training_prints_the_results_and_the_product_notes_only(tmp_path):
    uplift("simulate", "--people", "3000", "--waves", "2", "--seed", "3", "--out", "sim", cwd=tmp_path)
    spec = tmp_path / "small.yaml"
    spec.write_text(yaml.safe_dump({"name": "pooled_quiet", "learner": "pooled", "cv": {"folds": 5, "seed": 0},
                                    "lightgbm": {"n_estimators": 20, "num_leaves": 7, "min_child_samples": 50}}))
    trained = uplift("train", str(spec), "--data", "sim", cwd=tmp_path)
    assert "Qini coefficient per arm" in trained.stdout
    assert_quiet(trained)
    # the rare outcome in small arms is said once, in the product's words
    assert trained.stderr.count("note: cross-validation:") == 1


def test_dropped_log_records_are_only_the_listed_ones():
    install()
    install()  # idempotent: one filter per logger
    logger = logging.getLogger("mlflow.store.db.utils")
    assert len(logger.filters) == 1
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        logger.warning("Creating initial MLflow database tables...")
        logger.warning("the tracking store is locked")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == "the tracking store is locked\n"


def test_registry_notes_are_dropped_and_other_text_passes(capsys):
    with registry_notes_dropped():
        print("Registered model 'uplift-x' already exists. Creating a new version of this model...", file=sys.stderr)
        print("Created version '3' of model 'uplift-x'.", file=sys.stderr)
        print("something the user should read", file=sys.stderr)
    assert capsys.readouterr().err == "something the user should read\n"


def test_thin_cross_validation_strata_are_named_in_the_products_words():
    arm = np.array(["holdout"] * 40 + ["a"] * 40)
    y = np.zeros(80, dtype=int)
    y[[0, 1, 2, 3, 4, 5, 40, 41]] = 1  # arm 'a' has 2 converters, fewer than 5 folds; the holdout has 6
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folds = fold_ids(arm, y, folds=5, seed=0)
    assert sorted(np.unique(folds)) == [0, 1, 2, 3, 4]
    assert [w.category for w in caught] == [ThinDataWarning]
    assert "1 arm x outcome group(s) have fewer rows than the 5 folds (arm 'a' outcome 1: 2 row(s))" in str(
        caught[0].message)
