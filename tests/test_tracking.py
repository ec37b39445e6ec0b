"""MLflow: runs with metrics and plots, the pyfunc round trip, the champion gate, a real tracking server."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from apiserver import free_port
from uplift.config import Settings
from uplift.pipeline import train_and_log

SPEC = {
    "name": "pooled_small",
    "learner": "pooled",
    "lightgbm": {"n_estimators": 30, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 100},
    "cv": {"folds": 2, "test_share": 0.3, "seed": 0},
}


def _spec_file(tmp_path: Path, **update) -> Path:
    path = tmp_path / f"{update.get('name', SPEC['name'])}.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **update}))
    return path


@pytest.fixture()
def local_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return Settings(workdir=tmp_path, experiment_name="test")


def test_run_has_metrics_plots_and_a_loadable_pyfunc(tmp_path, local_store, strong_table, strong_world):
    trained = train_and_log(_spec_file(tmp_path), strong_table, settings=local_store, data_source="strong world",
                            truth=strong_world.truth)
    assert (tmp_path / "mlflow.db").exists()
    client = MlflowClient()
    run = client.get_run(trained.run_id)
    m = run.data.metrics
    for key in ("cv_mean_qini", "test_mean_qini", "policy_value_targeted", "true_mean_corr", "true_regret_targeted"):
        assert key in m
    arm = strong_table.treatment_arms[0].replace("@", ".")
    assert f"cv_qini.{arm}" in m and f"test_uplift_at_10.{arm}" in m
    assert run.data.tags["training_table_digest"] == strong_table.digest()
    artifacts = {a.path for a in client.list_artifacts(trained.run_id, "plots")}
    assert {"plots/qini_cv.png", "plots/qini_test.png", "plots/uplift_by_decile_test.png"} <= artifacts
    spec_text = mlflow.artifacts.load_text(f"runs:/{trained.run_id}/spec/model.yaml")
    assert "pooled_small" in spec_text
    # the stages the segment estimator kept on this data, and their held-out evidence
    params = run.data.params
    assert params["segments.targetable.stages_by"] == "held-out rows"
    kept = trained.segments.attrs["stages"]["targetable"]["kept"]
    assert params["segments.targetable.stages_kept"] == (",".join(kept) or "none")
    assert "segments.targetable.heldout_slope" in m
    segment_files = {a.path for a in client.list_artifacts(trained.run_id, "segments")}
    assert {"segments/segments.parquet", "segments/stages_targetable.csv"} <= segment_files
    from uplift.tracking.registry import load_segments

    logged = load_segments(client, client.get_model_version(local_store.registered_model, trained.version))
    assert logged.attrs["stages"]["targetable"]["kept"] == kept  # the table carries its choice

    # the pyfunc round trip: raw features in, one labelled column per arm out, same numbers as in memory
    model = mlflow.pyfunc.load_model(f"models:/{local_store.registered_model}@{local_store.alias}")
    X = strong_table.frame[strong_table.feature_names].head(200)
    out = model.predict(X)
    assert list(out.columns) == list(strong_table.treatment_arms)
    np.testing.assert_allclose(out.to_numpy(), trained.report.model.predict(X).to_numpy(), rtol=1e-12)
    shrunk = model.predict(X, params={"shrink": True})
    assert shrunk.shape == out.shape
    assert model.metadata.signature is not None


def test_champion_moves_only_when_the_gate_is_passed(tmp_path, local_store, strong_table):
    first = train_and_log(_spec_file(tmp_path), strong_table, settings=local_store, data_source="s")
    assert first.promoted and "becomes champion" in first.reason
    # same data and spec, but the gate demands a large improvement: the alias stays
    strict = _spec_file(tmp_path, name="strict", promotion={"metric": "test_mean_qini", "min_improvement": 1.0})
    second = train_and_log(strict, strong_table, settings=local_store, data_source="s")
    assert not second.promoted and "stays at v1" in second.reason
    client = MlflowClient()
    assert int(client.get_model_version_by_alias(local_store.registered_model, "champion").version) == first.version
    assert client.get_run(second.run_id).data.tags["promotion_reason"] == second.reason
    # a gate on a metric that lower-is-better and is better now: moves
    lower = _spec_file(tmp_path, name="lower", promotion={"metric": "true_regret_targeted", "greater_is_better": False})
    with pytest.raises(LookupError, match="was not measured"):
        train_and_log(lower, strong_table, settings=local_store, data_source="s")


@pytest.fixture()
def mlflow_server(tmp_path):
    port = free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError("mlflow server exited early")
        time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("mlflow server did not come up within 90 s")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def test_training_against_a_real_mlflow_server(tmp_path, mlflow_server, monkeypatch, strong_table):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    settings = Settings(workdir=tmp_path, experiment_name="server-test")
    trained = train_and_log(_spec_file(tmp_path), strong_table, settings=settings, data_source="s")
    client = MlflowClient(mlflow_server)
    assert client.get_run(trained.run_id).info.status == "FINISHED"
    assert int(client.get_model_version_by_alias("uplift", "champion").version) == trained.version
    model = mlflow.pyfunc.load_model("models:/uplift@champion")
    out = model.predict(strong_table.frame[strong_table.feature_names].head(20))
    assert list(out.columns) == list(strong_table.treatment_arms)
    assert (tmp_path / "server-artifacts").exists()
