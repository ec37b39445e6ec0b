"""The service on a bad day, on the real ``uplift serve`` process: an unreadable registry at start-up, a broken
model version repaired behind the alias, JSON nested to any depth."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from apiserver import AUTH, SHARED_SETTINGS, running_server, server_log, shared_server, shared_store

LEAKS = ("SELECT", "[SQL", "parameters", "Traceback", "sqlite:", "/tmp", "/work")
"""Text that must never appear in an answer: SQL, tracebacks, URIs and file paths."""


@pytest.fixture(scope="module")
def store(tmp_path_factory, strong_table):
    return shared_store(tmp_path_factory, strong_table)


def _until(check, seconds: float = 90) -> bool:
    """Polls ``check`` until it is true (a loaded machine is slow); the last result."""
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.2)
    return check()


def _no_leak(text: str, *extra: str) -> None:
    for word in (*LEAKS, *extra):
        assert word not in text, (word, text[:500])


def _stored_plan(plans_db: Path) -> str:
    from uplift.api.planstore import PlanRecord, PlanStore

    plans = PlanStore(f"sqlite:///{plans_db}")
    plans.add(PlanRecord(id="p" * 32, created_at=datetime(2025, 3, 1, tzinfo=UTC), model_name="uplift",
                         model_version=1, status="optimal", budget=100.0, spend=90.0, expected_conversions=2.0,
                         request_json='{"budget":100.0}', body_json='"status":"optimal","cells":[]'))
    plans.close()
    return "p" * 32


# -- 3. an unreadable MLflow database at start-up ----------------------------------------------------
def test_unreadable_registry_at_start_serves_503_with_stored_plans_then_recovers(store, tmp_path):
    """A corrupt mlflow.db: the server starts, says 'down' (503) without internals, answers the model
    endpoints with 503 and the stored plans with 200; once the file is repaired it serves the model."""
    folder = tmp_path / "bad-day"
    folder.mkdir()
    (folder / "mlflow.db").write_bytes(b"this is not a database " * 4000)
    plan_id = _stored_plan(folder / "plans.db")
    with running_server(folder, wait_for=(503,), compute_processes=0) as base:
        health = httpx.get(f"{base}/health")
        assert health.status_code == 503 and health.json() == {"status": "down"}
        detailed = httpx.get(f"{base}/health", headers=AUTH)
        assert detailed.status_code == 503 and detailed.json()["status"] == "down"
        assert "DatabaseError" in detailed.json()["reason"]
        _no_leak(detailed.text)
        for method, path in (("GET", "/model"), ("GET", "/segments"), ("POST", "/plans")):
            r = httpx.request(method, f"{base}{path}", json={"budget": 100} if method == "POST" else None, headers=AUTH)
            assert r.status_code == 503 and "no model" in r.json()["detail"], (path, r.text)
            _no_leak(r.text)
        listed = httpx.get(f"{base}/plans", headers=AUTH)
        assert listed.status_code == 200 and [p["id"] for p in listed.json()["items"]] == [plan_id]
        assert httpx.get(f"{base}/plans/{plan_id}", headers=AUTH).json()["id"] == plan_id

        (folder / "mlflow.db").write_bytes((store / "mlflow.db").read_bytes())  # repaired in place
        assert _until(lambda: httpx.get(f"{base}/health").status_code == 200)
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        assert httpx.get(f"{base}/model", headers=AUTH).json()["version"] == 1
    log = next(folder.glob("server-*.log")).read_text()
    assert "Application startup failed" not in log


# -- 4. a broken version, repaired, is retried when the alias returns to it -------------------------------
def test_repaired_version_is_loaded_when_the_alias_returns_to_it(store, tmp_path):
    import mlflow

    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    with pytest.MonkeyPatch.context():
        mlflow.set_registry_uri(uri)
        mlflow.set_tracking_uri(uri)
        good = client.copy_model_version("models:/uplift-registration/1", "repairable")
        client.set_registered_model_alias("repairable", "champion", good.version)
        source = tmp_path / "repairable-model"  # nothing there yet: the version is broken
        broken = client.create_model_version("repairable", source=str(source), run_id=good.run_id)
        with running_server(store, registered_model="repairable", compute_processes=0,
                            plans_db_url=f"sqlite:///{tmp_path / 'plans.db'}") as base:

            def health() -> dict:
                return httpx.get(f"{base}/health", headers=AUTH).json()

            client.set_registered_model_alias("repairable", "champion", broken.version)
            assert _until(lambda: health()["status"] == "degraded")
            assert f"version {broken.version}" in health()["reason"] and health()["model_version"] == int(good.version)
            _no_leak(health()["reason"], str(source))
            client.set_registered_model_alias("repairable", "champion", good.version)  # back to the good one
            assert _until(lambda: health()["status"] == "ok")
            # repaired
            mlflow.artifacts.download_artifacts(artifact_uri="models:/uplift-registration/1", dst_path=str(source))
            client.set_registered_model_alias("repairable", "champion", broken.version)  # and the alias returns
            assert _until(lambda: health()["model_version"] == int(broken.version))
            assert health()["status"] == "ok"
            assert httpx.get(f"{base}/model", headers=AUTH).json()["version"] == int(broken.version)


# -- 5. JSON nested to any depth is a 4xx ----------------------------------------------------------------
@pytest.fixture(scope="module")
def base_url(request, tmp_path_factory, strong_table):
    return shared_server(request, tmp_path_factory, strong_table, **SHARED_SETTINGS)


def _nested(depth: int, kind: str) -> str:
    return ('{"a":' * depth + "1" + "}" * depth) if kind == "object" else ("[" * depth + "1" + "]" * depth)


@pytest.mark.parametrize("field", ["policy", "costs"])
def test_deep_overrides_get_4xx_never_500(base_url, field):
    """Nested 1 to 100,000 levels (objects and arrays): 422 (too deep, or an unknown override) or 400 (past
    what the JSON parser takes), with a short body and nothing in the server log."""
    from uplift.api.schemas import MAX_OVERRIDE_DEPTH

    depths = (1, 15, 16, 17, 100, 250, 255, 256, 260, 300, 500, 800, 990, 1000, 5000, 100_000)
    tracebacks = server_log(base_url).read_text().count("Traceback")
    with httpx.Client(base_url=base_url, headers={**AUTH, "content-type": "application/json"}, timeout=60) as c:
        for kind in ("object", "array"):
            for depth in depths:
                body = '{"budget": 100, "%s": {"key": %s}}' % (field, _nested(depth, kind))
                r = c.post("/plans", content=body)
                assert 400 <= r.status_code < 500, (kind, depth, r.status_code, r.text[:200])
                assert len(r.content) < 1_000, (kind, depth)
                if depth + 1 > MAX_OVERRIDE_DEPTH and r.status_code == 422:  # the override nests one level more
                    assert f"at most {MAX_OVERRIDE_DEPTH}" in r.text, r.text
    assert server_log(base_url).read_text().count("Traceback") == tracebacks  # nothing unexpected was logged


def test_deep_values_in_score_rows_get_4xx(base_url):
    with httpx.Client(base_url=base_url, headers={**AUTH, "content-type": "application/json"}, timeout=60) as c:
        for depth in (10, 100, 255, 256, 500, 1000, 100_000):
            r = c.post("/scores", content='{"rows": [{"age": %s}]}' % _nested(depth, "array"))
            assert 400 <= r.status_code < 500 and len(r.content) < 1_000, (depth, r.status_code, r.text[:200])


def test_json_depth_is_measured_without_recursion():
    from uplift.api.schemas import json_depth

    assert [json_depth(v) for v in (1, "x", [], {}, [1], {"a": [1, {"b": 2}]}, [[[]]])] == [0, 0, 1, 1, 1, 3, 3]
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert json_depth(deep) == 100_001


# -- the model store, in-process -----------------------------------------------------------------------------
def test_model_store_retries_a_version_once_the_alias_has_left_it():
    from test_api import _bundle
    from uplift.api.modelstore import ModelStore

    state = {"target": "1", "broken": {"2"}}
    loads: list[str] = []

    def load(version: str):
        loads.append(version)
        if version in state["broken"]:
            raise OSError(f"no artifacts at /srv/models/{version}")
        return _bundle(int(version))

    store = ModelStore(resolve=lambda: state["target"], load=load, poll_seconds=3600)
    store.refresh()
    state["target"] = "2"
    assert (store.refresh().status == "degraded" and "<path>" in store.status.reason
            and "/srv" not in store.status.reason)
    store.refresh()  # the alias stays on the broken version: not tried again
    state["target"] = "1"
    assert store.refresh().status == "ok"  # the alias left it
    state["broken"].clear()  # repaired
    state["target"] = "2"
    assert store.refresh().status == "ok" and store.bundle.version == 2
    assert loads == ["1", "2", "2"]
