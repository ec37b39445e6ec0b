"""The plan store: approval, the retention rule, compressed bodies, stores made by the previous version."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from apiserver import AUTH, SHARED_SETTINGS, TOKENS, shared_server

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def _record(i: int, *, at: datetime | None = None, body: str | None = None):
    from uplift.api.planstore import PlanRecord

    return PlanRecord(id=f"p{i:03d}", created_at=at or T0 + timedelta(minutes=i), model_name="uplift", model_version=1,
                      status="optimal", budget=100.0 * i, spend=90.0 * i, expected_conversions=float(i),
                      request_json=json.dumps({"budget": 100.0 * i}),
                      body_json=body if body is not None else f'"status":"optimal","cells":[{{"n":{i % 3}}}]')


@pytest.fixture()
def plans(tmp_path):
    from uplift.api.planstore import PlanStore

    store = PlanStore(f"sqlite:///{tmp_path / 'plans.db'}")
    yield store
    store.close()


def _ids(store) -> list[str]:
    return sorted(r.id for r in store.list(limit=100, offset=0)[0])


def _count(store, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"select count(*) from {table}")).scalar_one()


# -- approval -----------------------------------------------------------------------------------------
def test_approval_is_recorded_once_with_the_token_name(plans):
    for i in range(3):
        plans.add(_record(i))
    approved = plans.approve("p001", by="anna", at=T0 + timedelta(days=1))
    assert approved.approved_by == "anna" and approved.approved_at == T0 + timedelta(days=1)
    again = plans.approve("p001", by="bob", at=T0 + timedelta(days=2))  # the first approval stays
    assert (again.approved_by, again.approved_at) == ("anna", T0 + timedelta(days=1))
    assert plans.approve("nope", by="anna", at=T0) is None
    assert [r.id for r in plans.list(limit=10, offset=0, approved=True)[0]] == ["p001"]
    assert [r.id for r in plans.list(limit=10, offset=0, approved=False)[0]] == ["p002", "p000"]
    got = json.loads(plans.get("p001").response_json)
    assert got["approved_by"] == "anna" and got["approved_at"] == "2025-03-02T09:00:00Z"
    assert json.loads(plans.get("p002").response_json)["approved_at"] is None


def test_labels_name_note_and_supersede_until_approval_locks_them(plans):
    from uplift.api.planstore import PlanLabels
    from uplift.errors import DataError, PlanLockedError

    plans.add(_record(0))
    plans.add(dataclasses.replace(_record(1), labels=PlanLabels(created_by="anna")))
    named = plans.label("p000", name="Wave 5", note="<script>alert(1)</script>")
    assert (named.labels.name, named.labels.note) == ("Wave 5", "<script>alert(1)</script>")
    assert plans.label("p000", note="flyers first").labels.name == "Wave 5"  # a field not given stays
    plans.approve("p000", by="anna", at=T0)
    with pytest.raises(PlanLockedError, match="approved"):
        plans.label("p000", name="renamed")
    assert plans.get("p000").labels.name == "Wave 5"
    with pytest.raises(DataError, match="supersedes"):
        plans.label("p001", supersedes="nope")
    with pytest.raises(DataError, match="supersedes"):
        plans.label("p001", supersedes="p001")
    plans.label("p001", supersedes="p000")
    got = json.loads(plans.get("p000").response_json)
    assert got["superseded_by"] == "p001" and got["name"] == "Wave 5" and got["note"] == "flyers first"
    newer = json.loads(plans.get("p001").response_json)
    assert newer["created_by"] == "anna" and newer["supersedes"] == "p000" and newer["superseded_by"] is None
    assert plans.label("nope", name="x") is None
    listed = {r.id: r.labels for r in plans.list(limit=10, offset=0)[0]}
    assert listed["p000"].superseded_by == "p001" and listed["p001"].created_by == "anna"


# -- retention ------------------------------------------------------------------------------------------
def test_retention_keeps_approved_plans_and_expires_unapproved_ones_by_age_and_count(plans):
    from uplift.api.retention import PlanRetention

    for i in range(10):  # p000 oldest ... p009 newest, one minute apart; bodies shared in threes
        plans.add(_record(i))
    plans.approve("p000", by="anna", at=T0)
    plans.approve("p008", by="anna", at=T0)
    assert _count(plans, "plan_bodies") == 3
    now = T0 + timedelta(days=2, minutes=5)  # p000-p004 are more than two days old
    done = plans.expire(PlanRetention(unapproved_days=2, unapproved_max=None), now)
    assert done.plans == 4 and _ids(plans) == ["p000", "p005", "p006", "p007", "p008", "p009"]
    done = plans.expire(PlanRetention(unapproved_days=None, unapproved_max=2), now)  # newest two unapproved stay
    assert done.plans == 2 and _ids(plans) == ["p000", "p007", "p008", "p009"]
    assert done.bodies == 0 and _count(plans, "plan_bodies") == 3  # p000 and p009 (n=0), p007 (1), p008 (2)
    done = plans.expire(PlanRetention(unapproved_days=None, unapproved_max=0), now)
    assert _ids(plans) == ["p000", "p008"] and done.bodies == 1 and _count(plans, "plan_bodies") == 2
    assert plans.get("p000") is not None and plans.get("p008") is not None
    done = plans.expire(PlanRetention(unapproved_days=0.0001, unapproved_max=0), now + timedelta(days=365))
    assert done.plans == 0 and _ids(plans) == ["p000", "p008"]  # approved plans are never deleted


def test_retention_rule_runs_on_the_store_thread(tmp_path):
    from uplift.api.planstore import PlanStore
    from uplift.api.retention import PlanRetention

    store = PlanStore(f"sqlite:///{tmp_path / 'plans.db'}",
                      retention=PlanRetention(unapproved_days=None, unapproved_max=1, every_seconds=0.2))
    for i in range(5):
        store.add(_record(i))
    deadline = time.monotonic() + 30
    while len(_ids(store)) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _ids(store) == ["p004"]
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one() == 2  # incremental: pages go back
        assert conn.exec_driver_sql("PRAGMA freelist_count").scalar_one() == 0
    store.close()


def test_plans_added_while_the_rule_runs_keep_their_bodies(plans):
    """Eight threads add plans over four shared bodies while the rule deletes every unapproved plan it
    sees; afterwards every plan left can be read whole."""
    from uplift.api.retention import PlanRetention

    rule = PlanRetention(unapproved_days=None, unapproved_max=0)
    stop = threading.Event()
    errors: list[str] = []

    def add(k: int) -> None:
        for j in range(60):
            try:
                plans.add(_record(1000 * k + j, body=f'"status":"optimal","cells":[{{"n":{j % 4}}}]'))
            except Exception as exc:  # pragma: no cover - the test reports it
                errors.append(repr(exc))

    def expire() -> None:
        while not stop.is_set():
            plans.expire(rule, T0 + timedelta(days=1))

    sweeper = threading.Thread(target=expire)
    sweeper.start()
    adders = [threading.Thread(target=add, args=(k,)) for k in range(8)]
    for t in adders:
        t.start()
    for t in adders:
        t.join()
    stop.set()
    sweeper.join()
    assert errors == []
    left, total = plans.list(limit=100, offset=0)
    for r in left:
        assert json.loads(plans.get(r.id).response_json)["cells"][0]["n"] in range(4)
    with plans.engine.connect() as conn:  # no plan without its body
        assert conn.execute(sa.text("select count(*) from plans where body_hash not in "
                                    "(select hash from plan_bodies)")).scalar_one() == 0


def test_retention_settings_from_the_environment(monkeypatch, tmp_path):
    from uplift.api.settings import load_service_settings
    from uplift.errors import SpecError

    monkeypatch.setenv("UPLIFT_SERVICE_CONFIG", str(tmp_path / "s.yaml"))
    (tmp_path / "s.yaml").write_text("plan_retention: {unapproved_days: 7, every_seconds: 60}\n")
    monkeypatch.setenv("UPLIFT_SERVICE_PLAN_RETENTION__UNAPPROVED_MAX", "100")
    rule = load_service_settings().plan_retention
    assert (rule.unapproved_days, rule.unapproved_max, rule.every_seconds) == (7, 100, 60)
    (tmp_path / "s.yaml").write_text("plan_retention: {unapproved_dayz: 7}\n")
    with pytest.raises(SpecError, match="unapproved_dayz"):
        load_service_settings()


# -- compact bodies, older stores --------------------------------------------------------------------------
def test_bodies_are_stored_compressed_and_read_back_exactly(plans):
    from uplift.api.planschema import pack_body, unpack_body

    body = '"status":"optimal","cells":[' + ",".join(
        json.dumps({"segment": f"age_band=35-44|gender=female|municipality=M{i % 40}", "arm": "fresh_start@meta",
                    "contacts": i, "spend": round(i * 0.37, 2)}) for i in range(2000)) + "]"
    plans.add(_record(1, body=body))
    with plans.engine.connect() as conn:
        plain, packed = conn.execute(sa.text("select body, body_z from plan_bodies")).one()
    assert plain == "" and len(packed) < len(body) / 5
    assert plans.get("p001").body_json == body
    assert unpack_body(None, pack_body(body).compressed) == body and unpack_body("old", None) == "old"


def test_a_store_of_the_previous_version_is_upgraded_in_place(tmp_path):
    """The previous layout (no approval columns, plain bodies): its plans stay readable, can be approved,
    and their bodies are compressed by the retention rounds."""
    from uplift.api.planstore import PlanStore
    from uplift.api.retention import PlanRetention

    url = f"sqlite:///{tmp_path / 'plans.db'}"
    old = sa.create_engine(url)
    with old.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE plan_bodies (hash VARCHAR(64) PRIMARY KEY, body TEXT NOT NULL)")
        conn.exec_driver_sql(
            "CREATE TABLE plans (id VARCHAR(32) PRIMARY KEY, created_at DATETIME NOT NULL, model_name VARCHAR(200) "
            "NOT NULL, model_version INTEGER NOT NULL, status VARCHAR(20) NOT NULL, budget FLOAT NOT NULL, spend FLOAT "
            "NOT NULL, expected_conversions FLOAT NOT NULL, request TEXT NOT NULL, body_hash VARCHAR(64) NOT NULL "
            "REFERENCES plan_bodies (hash))")
        conn.exec_driver_sql("CREATE INDEX ix_plans_created_at ON plans (created_at)")
        conn.exec_driver_sql("INSERT INTO plan_bodies VALUES ('h1', '\"status\":\"optimal\",\"cells\":[]')")
        conn.exec_driver_sql("INSERT INTO plans VALUES ('old1', '2025-03-01 09:00:00.000000', 'uplift', 1, 'optimal', "
                             "100.0, 90.0, 2.0, '{\"budget\":100.0}', 'h1')")
    old.dispose()
    store = PlanStore(url)
    before = store.get("old1").response_json
    assert json.loads(before)["cells"] == [] and json.loads(before)["approved_at"] is None
    assert store.approve("old1", by="anna", at=T0).approved_by == "anna"
    store.add(_record(2))
    done = store.expire(PlanRetention(unapproved_days=None, unapproved_max=None), T0)
    assert done.compacted == 1 and done.plans == 0
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from plan_bodies where body_z is null")).scalar_one() == 0
    assert json.loads(store.get("old1").response_json)["cells"] == []
    store.close()


# -- over HTTP ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(request, tmp_path_factory, strong_table):
    base = shared_server(request, tmp_path_factory, strong_table, **SHARED_SETTINGS)
    with httpx.Client(base_url=base, headers=AUTH, timeout=60) as client:
        yield client


def test_approve_a_plan_over_http_in_the_token_name(api):
    from uplift.api.tokens import split_entry

    plan = api.post("/plans", json={"budget": 1234.5, "include_references": False}).json()
    assert plan["approved_at"] is None and plan["approved_by"] is None
    other = {"Authorization": f"Bearer {TOKENS[1]}"}
    approved = api.post(f"/plans/{plan['id']}/approve", headers=other)
    assert approved.status_code == 200
    name = split_entry(TOKENS[1])[0]
    assert approved.json()["approved_by"] == name and TOKENS[1] not in approved.text
    assert api.post(f"/plans/{plan['id']}/approve").json()["approved_by"] == name  # the first approval stays
    stored = api.get(f"/plans/{plan['id']}").json()
    assert stored["approved_by"] == name and stored["cells"] == plan["cells"]
    assert plan["id"] in [p["id"] for p in api.get("/plans", params={"approved": True, "limit": 100}).json()["items"]]
    assert api.post("/plans/no-such-plan/approve").status_code == 404
    assert httpx.post(f"{api.base_url}/plans/{plan['id']}/approve").status_code == 401


def test_name_note_and_supersede_over_http_until_approved(api):
    from uplift.api.tokens import split_entry

    first = api.post("/plans", json={"budget": 1500, "include_references": False}).json()
    assert first["created_by"] == split_entry(TOKENS[0])[0] and TOKENS[0] not in json.dumps(first)
    named = api.patch(f"/plans/{first['id']}", json={"name": "Wave 5", "note": "flyers first"})
    assert named.status_code == 200 and named.json()["name"] == "Wave 5"
    api.post(f"/plans/{first['id']}/approve")
    locked = api.patch(f"/plans/{first['id']}", json={"note": "changed"})
    assert locked.status_code == 409 and "supersede" in locked.json()["detail"]
    second = api.post("/plans", json={"budget": 1600, "include_references": False}).json()
    assert api.patch(f"/plans/{second['id']}", json={"supersedes": "nope"}).status_code == 422
    assert api.patch(f"/plans/{second['id']}", json={"supersedes": first["id"]}).status_code == 200
    assert api.get(f"/plans/{first['id']}").json()["superseded_by"] == second["id"]
    assert api.patch("/plans/no-such-plan", json={"name": "x"}).status_code == 404
    assert api.patch(f"/plans/{second['id']}", json={"name": ""}).status_code == 422


def test_several_processes_may_open_a_new_store_at_once(tmp_path):
    """uvicorn workers open the same new store together: the loser of the race to create a table retries."""
    from uplift.api.planstore import PlanStore

    errors: list[str] = []

    def open_store(url: str, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            PlanStore(url).close()
        except sa.exc.SQLAlchemyError as exc:  # pragma: no cover - the test reports it
            errors.append(str(exc)[:200])

    for trial in range(10):
        url = f"sqlite:///{tmp_path / f'plans-{trial}.db'}"
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=open_store, args=(url, barrier)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
