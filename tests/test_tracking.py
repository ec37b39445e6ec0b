"""MLflow: runs with metrics and plots, the pyfunc round trip, the champion gate, a real tracking server."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from apiserver import free_port
from conftest import feature_set_for
from uplift.config import Settings
from uplift.features import build_features
from uplift.modeling.targeting import shrink
from uplift.pipeline import train_and_log
from uplift.scoring.history import nest_history

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
    promise = trained.segments.attrs["stages"]["targetable"]["promise"]  # what plans' promises are calibrated by
    assert m["segments.targetable.promise_ratio"] == pytest.approx(promise["ratio"])
    segment_files = {a.path for a in client.list_artifacts(trained.run_id, "segments")}
    assert {"segments/segments.parquet", "segments/stages_targetable.csv"} <= segment_files
    from uplift.tracking.registry import load_segments

    logged = load_segments(client, client.get_model_version(local_store.registered_model, trained.version))
    assert logged.attrs["stages"]["targetable"]["kept"] == kept  # the table carries its choice

    # the pyfunc round trip: raw audience rows and history in, one labelled column per arm out, the same
    # numbers as the training code's features give in memory
    assert trained.registered_model == "uplift-registration"  # a campaign model: named by its outcome event
    model = mlflow.pyfunc.load_model(f"models:/{trained.registered_model}@{local_store.alias}")
    w = strong_world
    people = w.audience.head(200)
    out = model.predict(nest_history(people, w.exposures, w.enrolments), params={"as_of": "2025-07-21"})
    arms = [f"uplift__{a}" for a in strong_table.treatment_arms]
    assert list(out.columns) == ["person_id", *arms, "best_arm", "best_uplift", "segment", "persona"]
    keys = pd.DataFrame({"person_id": people["person_id"], "wave": 0, "as_of": pd.Timestamp("2025-07-21", tz="UTC")})
    X = build_features(keys, people, w.exposures, w.enrolments, feature_set_for(w))[strong_table.feature_names]
    report = trained.report
    expected = shrink(report.model.predict(X), report.model.mean_effects_, report.shrinkage.lam)
    np.testing.assert_allclose(out[arms].to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert (out["person_id"] == people["person_id"].to_numpy()).all()
    assert model.metadata.signature is not None


def test_champion_moves_only_past_the_gate_and_by_hand(tmp_path, local_store, strong_table):
    from uplift.errors import SpecError
    from uplift.tracking.registry import promote_by_hand

    first = train_and_log(_spec_file(tmp_path), strong_table, settings=local_store, data_source="s")
    assert first.promoted and first.reason.startswith("no champion yet; incremental conversions of the EUR")
    # the same spec on the same data: the same plan, a gain of exactly 0, whose lower bound is not above the margin
    second = train_and_log(_spec_file(tmp_path, name="again"), strong_table, settings=local_store, data_source="s")
    assert not second.promoted
    assert ("plan on the same data, the " in second.reason
            and "gain 0.00 [0.00, 0.00], 95% lower bound 0.00" in second.reason)
    assert second.reason.endswith("is not above margin 0: champion stays at v1")
    client = MlflowClient()
    name = first.registered_model
    assert int(client.get_model_version_by_alias(name, "champion").version) == first.version
    assert client.get_run(second.run_id).data.tags["promotion_reason"] == second.reason
    tags = client.get_model_version(name, str(second.version)).tags
    assert tags["gate.decision"] == "not promoted" and tags["gate.by"] == "gate" and tags["gate.against"] == "v1"
    assert tags["gate.challenger"] == tags["gate.champion"] and tags["gate.gain"] == "0.00 [0.00, 0.00]"
    assert tags["data.digest"] == strong_table.digest() and tags["data.split_seed"] == "0"
    assert client.get_model_version(name, str(second.version)).description == second.reason

    # by hand: the alias moves and the version says it was manual, and why
    assert promote_by_hand(client, name, "2", alias="champion", reason="  rolled forward for the March wave ") == 1
    assert int(client.get_model_version_by_alias(name, "champion").version) == 2
    tags = client.get_model_version(name, "2").tags
    assert tags["gate.decision"] == "manual" and tags["gate.reason"] == "rolled forward for the March wave"
    with pytest.raises(SpecError, match="--reason"):
        promote_by_hand(client, name, "1", alias="champion", reason=" ")


def test_the_old_promotion_fields_are_refused_with_what_replaced_them(tmp_path, local_store, strong_table):
    from uplift.errors import SpecError

    old = _spec_file(tmp_path, name="old", promotion={"metric": "test_mean_qini", "min_improvement": 0.0})
    with pytest.raises(SpecError, match="promotion: Value error, metric, min_improvement: the gate no longer compares"):
        train_and_log(old, strong_table, settings=local_store, data_source="s")


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


def test_training_against_a_real_mlflow_server(tmp_path, mlflow_server, monkeypatch, strong_table, strong_world):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    settings = Settings(workdir=tmp_path, experiment_name="server-test")
    trained = train_and_log(_spec_file(tmp_path), strong_table, settings=settings, data_source="s")
    client = MlflowClient(mlflow_server)
    assert client.get_run(trained.run_id).info.status == "FINISHED"
    assert int(client.get_model_version_by_alias("uplift-registration", "champion").version) == trained.version
    model = mlflow.pyfunc.load_model("models:/uplift-registration@champion")
    out = model.predict(strong_world.audience.head(20), params={"as_of": "2025-07-21"})
    assert list(out["person_id"]) == list(strong_world.audience["person_id"].head(20))
    assert (tmp_path / "server-artifacts").exists()
