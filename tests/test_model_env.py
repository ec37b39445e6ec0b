"""The logged model is self-contained: a fresh virtual environment built from what MLflow recorded for it
(its requirements.txt and its code) loads it and predicts what the training process predicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from apiserver import shared_store
from uplift.errors import SchemaError
from uplift.scoring.history import nest_history
from uplift.tracking.environment import MODEL_RUNTIME, canonical_name

AS_OF = "2025-07-21T00:00:00+00:00"
WHEELHOUSE = Path(os.environ.get("UPLIFT_WHEELHOUSE", Path(sys.prefix) / "wheelhouse"))
"""Wheels of the model runtime, built by ``make setup-test`` from the same pins; without it pip asks the index."""

_CHILD = """
import sys
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
import uplift
assert uplift.__file__.startswith(sys.argv[1]), uplift.__file__  # the model's own code, not a checkout
model.predict(pd.read_parquet(sys.argv[2]), params={"as_of": sys.argv[4]}).to_parquet(sys.argv[3])
"""


@pytest.fixture(scope="module")
def logged(tmp_path_factory, strong_table):
    store = shared_store(tmp_path_factory, strong_table)
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{store / 'mlflow.db'}")
    folder = Path(mlflow.artifacts.download_artifacts("models:/uplift-registration/1",
                                                      dst_path=str(tmp_path_factory.mktemp("model"))))
    return folder, mlflow.pyfunc.load_model(str(folder))


def _rows(world, n: int) -> pd.DataFrame:
    return nest_history(world.audience.head(n), world.exposures, world.enrolments)


def test_requirements_pin_every_runtime_distribution(logged):
    folder, _ = logged
    lines = [line for line in (folder / "requirements.txt").read_text().splitlines() if line
             and not line.startswith("-")]
    assert all("==" in line for line in lines), lines
    names = {canonical_name(line.split("==")[0]) for line in lines}
    assert {canonical_name(n) for n in MODEL_RUNTIME} <= names and "numba" in names and "llvmlite" in names
    assert (folder / "code" / "uplift" / "tracking" / "pyfunc.py").exists()


def test_model_takes_raw_audience_rows_with_history_and_says_so(logged, strong_world):
    folder, model = logged
    signature = model.metadata.signature
    assert {"person_id", "age", "municipality", "exposures", "enrolments"} <= set(signature.inputs.input_names())
    assert not any(name.startswith("prior_") for name in signature.inputs.input_names())  # no derived columns
    assert signature.params.to_dict()[0]["name"] == "as_of"
    example = json.loads((folder / "input_example.json").read_text())
    assert example["params"]["as_of"] and "exposures" in example["inputs"]["columns"]
    assert any("assigned_at" in row[example["inputs"]["columns"].index("exposures")]
               for row in example["inputs"]["data"])
    out = model.predict(_rows(strong_world, 50), params={"as_of": AS_OF})
    assert list(out.columns[:2]) == ["person_id", "uplift__heavy_work_future@meta"]
    assert {"best_arm", "best_uplift", "segment", "persona"} <= set(out.columns)
    bad = strong_world.audience.head(3).assign(age=[30, 12, 40])
    with pytest.raises(SchemaError, match=r"model input row 2, column 'age'"):
        model.unwrap_python_model().predict(None, bad, {"as_of": AS_OF})


def test_a_fresh_environment_from_the_logged_model_alone_predicts_the_same(logged, strong_world, tmp_path):
    folder, model = logged
    rows = _rows(strong_world, 400)
    rows.to_parquet(tmp_path / "rows.parquet")
    expected = model.predict(rows, params={"as_of": AS_OF})

    started = time.perf_counter()
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    source = ["--no-index", "--find-links", str(WHEELHOUSE)] if WHEELHOUSE.is_dir() else []
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--disable-pip-version-check", *source, "--no-compile", "-r", "requirements.txt"], cwd=folder,
                   check=True)
    built = time.perf_counter() - started
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    run = subprocess.run([str(python), "-c", _CHILD, str(folder), str(tmp_path / "rows.parquet"),
                          str(tmp_path / "out.parquet"), AS_OF], cwd=tmp_path, env=clean, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    got = pd.read_parquet(tmp_path / "out.parquet")
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-12)
    print(f"fresh environment built in {built:.1f} s ({'wheelhouse' if source else 'package index'}), "
          f"loaded and predicted in {time.perf_counter() - started - built:.1f} s")


def test_constraints_pin_every_requirement_the_project_declares():
    """constraints.txt (what the Makefile installs with) has an exact version for every requirement of
    pyproject.toml."""
    from packaging.requirements import Requirement

    from uplift.tracking.environment import declared_requirements

    root = Path(__file__).resolve().parents[1]
    pins = {}
    for line in (root / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonical_name(name)] = version
    for line in declared_requirements(str(root / "pyproject.toml"), ("dev", "spark")):
        req = Requirement(line)
        assert canonical_name(req.name) in pins, f"{req.name} is not pinned in constraints.txt (make constraints)"
        pinned = pins[canonical_name(req.name)]
        assert req.specifier.contains(pinned), f"{req.name}: {pinned} breaks {req}"
