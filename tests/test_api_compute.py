"""The compute pool: scores and plans computed in worker processes equal the request thread's, errors
arrive as raised, and a closed or broken pool never fails a request."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from mlflow import MlflowClient

from apiserver import MAX_ROWS, MIN_SIZE, MODEL, ROOT, shared_store


def _never():
    raise AssertionError("the pool should have computed this")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, strong_table):
    import mlflow

    from uplift.api.modelstore import registry_loader

    uri = f"sqlite:///{shared_store(tmp_path_factory, strong_table) / 'mlflow.db'}"
    with pytest.MonkeyPatch.context():
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        client = MlflowClient(uri)
        version = client.get_model_version_by_alias(MODEL, "champion").version
        return registry_loader(client, MODEL, "champion", min_segment_size=MIN_SIZE)(str(version))


@pytest.fixture(scope="module")
def planner():
    from uplift.api.planning import PlanService
    from uplift.specs import load_spec
    from uplift.specs.planning import CostCatalogue, PlanningPolicy

    return PlanService(costs=load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue),
                       policy=load_spec(ROOT / "serve" / "policy.yaml", PlanningPolicy),
                       min_segment_size=MIN_SIZE, cache_size=0)


@pytest.fixture(scope="module")
def pool(bundle, planner):
    from uplift.api.compute import ComputePool

    pool = ComputePool(bundle, planner, 2)
    pids = pool.start()
    assert len(pids) == 2 and os.getpid() not in pids
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def score_body_raw(strong_table):
    rows = json.loads(strong_table.frame[strong_table.feature_names].head(40).to_json(orient="records"))
    return json.dumps({"rows": rows}).encode()


def test_pool_answers_equal_the_request_thread(pool, bundle, planner, score_body_raw):
    from uplift.api.routes.scores import score_body
    from uplift.api.schemas import PlanRequest

    assert pool.run("score", score_body_raw, MAX_ROWS, local=_never) == score_body(score_body_raw, bundle, MAX_ROWS)
    for body in ({"budget": 3000.0}, {"budget": 800.0, "channels": ["meta"], "policy": {"exploration_share": 0.0}}):
        request = PlanRequest.model_validate(body)
        there = pool.run("plan", request, local=_never)
        here = planner.compute(bundle, request)
        assert (there.status, there.spend, there.fragment) == (here.status, here.spend, here.fragment)


def test_workers_keep_their_bundle_out_of_the_garbage_collector(pool, monkeypatch):
    import gc

    from uplift.api import compute

    # the bundle is frozen after the warm-up, so no request pays for a full collection walking it
    monkeypatch.setitem(compute.TASKS, "frozen", gc.get_freeze_count)
    assert pool.run("frozen", local=_never) > 10_000


def test_worker_errors_arrive_as_raised(pool, strong_table):
    from fastapi.exceptions import RequestValidationError

    from uplift.api.handlers import RequestFieldError
    from uplift.api.schemas import PlanRequest

    rows = json.loads(strong_table.frame[strong_table.feature_names].head(3).to_json(orient="records"))
    rows[2]["age"] = "forty"
    with pytest.raises(RequestFieldError, match="row 2, column 'age'") as caught:
        pool.run("score", json.dumps({"rows": rows}).encode(), MAX_ROWS, local=_never)
    assert caught.value.loc == ("body", "rows", 2, "age")
    with pytest.raises(RequestValidationError):
        pool.run("score", b'{"rows": 3}', MAX_ROWS, local=_never)
    with pytest.raises(RequestFieldError, match="rows: 3 rows; at most 2") as caught:
        pool.run("score", json.dumps({"rows": rows[:2] + rows[:1]}).encode(), 2, local=_never)
    with pytest.raises(RequestFieldError, match="channels: 'fax' not among") as caught:
        pool.run("plan", PlanRequest.model_validate({"budget": 100.0, "channels": ["fax"]}), local=_never)
    assert caught.value.loc == ("body", "channels")


def test_a_closed_pool_hands_the_work_back(bundle, planner):
    from uplift.api.compute import ComputePool, Unavailable

    pool = ComputePool(bundle, planner, 1)
    pool.close()
    assert pool.run("score", b"{}", 1, local=lambda: "here") == "here"
    with pytest.raises(Unavailable, match="closed"):
        pool.submit("score", b"{}", 1)


def test_a_broken_pool_falls_back_and_is_replaced(bundle, planner, score_body_raw):
    from uplift.api.compute import ComputePool
    from uplift.api.routes.scores import score_body

    expected = score_body(score_body_raw, bundle, MAX_ROWS)
    pool = ComputePool(bundle, planner, 1)
    try:
        (pid,) = pool.start()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)  # the executor notices the dead worker and breaks for good
        used_local = []
        answer = pool.run("score", score_body_raw, MAX_ROWS, local=lambda: used_local.append(1) or expected)
        assert answer == expected and used_local == [1]
        assert pool.run("score", score_body_raw, MAX_ROWS, local=_never) == expected  # new workers
    finally:
        pool.close()


def test_tasks_in_flight_when_a_worker_dies_replace_the_workers_once(bundle, planner, monkeypatch):
    from uplift.api import compute

    monkeypatch.setitem(compute.TASKS, "pause", compute._pid)  # sleeps, then answers its process id
    pool = compute.ComputePool(bundle, planner, 1)
    try:
        (pid,) = pool.start()
        broken = pool._executor
        first, second = pool.submit("pause", 3.0), pool.submit("pause", 3.0)
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(compute.Unavailable):
            pool.result(first)
        fresh = pool._executor
        assert fresh is not broken
        with pytest.raises(compute.Unavailable):  # the same broken executor's second task
            pool.result(second)
        assert pool._executor is fresh  # not replaced a second time
        assert pool.run("pause", 0.0, local=_never) != pid
        assert pool._executors == {}  # nothing kept for settled tasks
    finally:
        pool.close()


def test_compute_processes_setting(monkeypatch):
    from uplift.api.settings import load_service_settings
    from uplift.errors import SpecError

    monkeypatch.delenv("UPLIFT_SERVICE_COMPUTE_PROCESSES", raising=False)
    assert load_service_settings().resolved_compute_processes() == (os.cpu_count() or 1)
    monkeypatch.setenv("UPLIFT_SERVICE_COMPUTE_PROCESSES", "0")
    assert load_service_settings().resolved_compute_processes() == 0
    monkeypatch.setenv("UPLIFT_SERVICE_COMPUTE_PROCESSES", "-1")
    with pytest.raises(SpecError, match="compute_processes"):
        load_service_settings()


def test_prepared_plans_are_kept_within_their_memory_budget(bundle):
    """Each new policy prepares a plan; the service keeps the most recent ones while their arrays fit
    its budget (always the newest), and answers the same from a kept one as from a fresh one."""
    from uplift.api.planning import PlanService
    from uplift.api.schemas import PlanRequest
    from uplift.specs import load_spec
    from uplift.specs.planning import CostCatalogue, PlanningPolicy

    def service(budget_bytes: int) -> PlanService:
        return PlanService(costs=load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue),
                           policy=load_spec(ROOT / "serve" / "policy.yaml", PlanningPolicy),
                           min_segment_size=MIN_SIZE, cache_size=0, prepared_bytes=budget_bytes)

    requests = [PlanRequest(budget=900, policy={"holdout_share": 0.1 + 0.01 * k}, include_references=False)
                for k in range(4)]
    roomy = service(2**40)
    answers = [roomy.compute(bundle, r).fragment for r in requests]
    sizes = [r.nbytes for r in roomy._prepared.values()]
    assert len(sizes) == 4 and min(sizes) > 0
    tight = service(int(2.5 * max(sizes)))
    for r in requests:
        tight.compute(bundle, r)
    assert len(tight._prepared) == 2  # the two most recent fit, three do not
    assert tight.compute(bundle, requests[-1]).fragment == answers[-1]  # from the kept prepared plan
    one = service(1)
    for r in requests:
        one.compute(bundle, r)
    assert len(one._prepared) == 1


def test_array_bytes_counts_each_array_once():
    import numpy as np
    import pandas as pd

    from uplift.api.footprint import array_bytes

    a = np.zeros(1000)  # 8,000 bytes

    class Holder:
        def __init__(self):
            self.a, self.same, self.nested = a, a, {"b": [np.zeros(10, dtype=np.int32)], "s": "text"}

    assert array_bytes(Holder()) == 8_000 + 40
    frame = pd.DataFrame({"x": np.zeros(100)})
    assert array_bytes((frame, frame)) == int(frame.memory_usage(deep=True).sum())
    assert array_bytes("no arrays") == 0
