"""Plans on value along the funnel through the service: the real ``uplift serve`` over the shared trained store,
with a funnel segment table of known truth logged beside the served model (:mod:`funnelstore`)."""

from __future__ import annotations

import httpx
import pytest
from mlflow import MlflowClient

from apiserver import AUTH, MODEL, SHARED_SETTINGS, shared_server, shared_store
from funnelstore import APPLICATION_SHARE, TWO_EVENTS, log_funnel_table, two_event_funnel_table


@pytest.fixture(scope="module")
def api(request, tmp_path_factory, strong_table):
    base = shared_server(request, tmp_path_factory, strong_table, **SHARED_SETTINGS)
    with httpx.Client(base_url=base, headers=AUTH, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def funnel_run(tmp_path_factory, strong_table):
    """A funnel table for ``TWO_EVENTS`` logged in the served model's experiment; its run id."""
    from uplift.tracking.registry import load_segments

    store = shared_store(tmp_path_factory, strong_table)
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    segments = load_segments(client, client.get_model_version_by_alias(MODEL, "champion"))
    return log_funnel_table(store, two_event_funnel_table(segments))


def test_a_value_without_a_funnel_table_is_a_422_naming_what_is_missing(api):
    other = [{**TWO_EVENTS[0], "attribution_days": 21}, TWO_EVENTS[1]]  # no table was made for this value
    r = api.post("/plans", json={"budget": 3000, "policy": {"value": other}})
    assert r.status_code == 422, r.text
    (detail,) = r.json()["detail"]
    assert detail["loc"] == ["body", "policy", "value"]
    assert ("no funnel segment table for value = 1 x registration (21 days) + 5 x application (70 days) in "
            "experiment 'api'; make one with `uplift train --value-policy POLICY`") in detail["msg"]


def test_a_value_plan_reports_the_value_and_each_events_conversions_and_is_stored(api, funnel_run):
    from uplift.api.schemas import PlanResponse

    r = api.post("/plans", json={"budget": 3000, "policy": {"value": TWO_EVENTS, "exploration_share": 0.0}})
    assert r.status_code == 200, r.text
    plan = r.json()
    PlanResponse.model_validate(plan)
    value, totals = plan["value"], plan["totals"]
    assert value["description"] == "1 x registration (28 days) + 5 x application (70 days)"
    assert value["source"] == f"funnel-value run {funnel_run[:8]}"
    assert (value["expected_value"], value["lo"], value["hi"]) == (
        totals["expected_conversions"], totals["lo"], totals["hi"])
    assert value["lo"] < value["expected_value"] < value["hi"] and value["interval"] == 0.8
    registration, application = value["events"]
    assert (registration["event"], registration["weight"], registration["attribution_days"]) == (
        "registration", 1, 28)
    assert (application["event"], application["weight"], application["attribution_days"]) == ("application", 5, 70)
    for e in (registration, application):
        assert e["lo"] < e["expected_conversions"] < e["hi"] and e["interval"] == 0.8
    # the truth: applications are a fifth of registrations, so the value is twice the registrations
    assert application["expected_conversions"] == pytest.approx(
        APPLICATION_SHARE * registration["expected_conversions"], abs=1e-3)
    # (the events' figures are the cells' own estimates; the value's total may be calibrated, as any plan's)
    assert totals["estimated_conversions"] == pytest.approx(2 * registration["expected_conversions"], rel=1e-3)
    assert application["hi"] - application["lo"] == pytest.approx(
        APPLICATION_SHARE * (registration["hi"] - registration["lo"]), abs=1e-3)
    assert api.get(f"/plans/{plan['id']}").json() == plan  # stored with its value, re-read as sent


def test_a_value_plans_rules_are_priced_in_expected_value(api, funnel_run):
    tight = api.post("/plans", json={"budget": 300, "policy": {"value": TWO_EVENTS}}).json()  # the budget binds
    binding = [rule for rule in tight["rules"] if rule["status"] == "binds"]
    assert binding and all("expected value" in rule["text"] and "conversions" not in rule["text"]
                           for rule in binding)


def test_a_plan_on_registrations_carries_no_value(api, funnel_run):
    plan = api.post("/plans", json={"budget": 3000}).json()
    assert "value" not in plan and "value" not in api.get(f"/plans/{plan['id']}").json()
