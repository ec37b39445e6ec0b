"""A plan on value along the funnel on the planner's page, in Debian's Chromium (Playwright) against a real
``uplift serve``: the value with its interval and each event's conversions, in the product's words."""

from __future__ import annotations

import httpx
import pytest
from mlflow import MlflowClient

from apiserver import AUTH, MODEL
from browser import close, launch, page_server, screenshot, serious_violations, sign_in
from funnelstore import TWO_EVENTS, log_funnel_table, two_event_funnel_table

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def value_plan(request, tmp_path_factory):
    """(base URL, a value plan's answer) over the page world's store with a funnel table logged in it."""
    from uplift.tracking.registry import load_segments

    base, store = page_server(request, tmp_path_factory)
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    log_funnel_table(store, two_event_funnel_table(load_segments(client, client.get_model_version_by_alias(
        MODEL, "champion"))))
    r = httpx.post(f"{base}/plans", headers=AUTH, timeout=120,
                   json={"budget": 3000, "policy": {"value": TWO_EVENTS}, "include_prices": True})
    assert r.status_code == 200, r.text
    return base, r.json()


@pytest.fixture(scope="module")
def tab(value_plan):
    """A signed-in Chromium tab on the value plan's server (one browser for the module)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context, profile = launch(p)
        try:
            page = context.new_page()
            sign_in(page, value_plan[0])
            yield page
        finally:
            close(context, profile)


def test_a_value_plan_shows_the_value_and_each_events_conversions_a_plain_one_none(value_plan, tab):
    base, plan = value_plan
    page = tab
    page.goto(f"{base}/ui/plans/{plan['id']}")
    value = plan["value"]
    total = page.locator("#value-total")
    assert total.locator("[data-total='value']").inner_text() == f"{value['expected_value']:,.1f}"
    assert f"[{value['lo']:,.1f}, {value['hi']:,.1f}]" in total.inner_text()
    assert "1 x registration (28 days) + 5 x application (70 days)" in total.inner_text()
    rows = page.locator("#value-events tbody tr")
    assert rows.count() == 2
    for row, event, name in zip(rows.all(), value["events"], ("registrations", "voucher applications"),
                                strict=True):
        cells = row.locator("th, td").all_inner_texts()
        assert cells[0] == name and cells[1] == f"{event['weight']:g}"
        assert cells[3] == f"{event['expected_conversions']:,.1f}"
        assert cells[4] == f"[{event['lo']:,.1f}, {event['hi']:,.1f}]"
    assert "expected incremental value" in page.locator("#totals thead").inner_text()
    if plan["rules"]:
        assert "costs (expected value)" in page.locator("#rules thead").inner_text()
    assert "expected value" in page.locator("#cells thead").inner_text()
    assert serious_violations(page) == []
    screenshot(page, "value-plan")
    page.goto(f"{base}/ui/plans/{plan['id']}/summary")  # the printable summary shows the same
    assert page.locator("#value-events tbody tr").count() == 2
    assert page.locator("#value-total [data-total='value']").inner_text() == f"{value['expected_value']:,.1f}"

    plain = httpx.post(f"{base}/plans", headers=AUTH, timeout=120, json={"budget": 3000}).json()
    assert "value" not in plain
    page.goto(f"{base}/ui/plans/{plain['id']}")  # a plan on registrations looks as it always has
    assert page.locator("#value-events").count() == 0 and page.locator("#value-total").count() == 0
    assert "expected incremental conversions" in page.locator("#totals thead").inner_text()


def test_a_planner_chooses_the_value_on_the_build_form_and_gets_a_value_plan(value_plan, tab):
    """The form offers the model's outcome and every value with a funnel table; the value's plan is the API's."""
    import re

    base, plan = value_plan
    page = tab
    page.goto(f"{base}/ui/plan")
    choice = page.get_by_label("Plan on")
    options = choice.locator("option").all_inner_texts()
    assert options[0].endswith("(the model's outcome)") and choice.input_value() == ""
    assert "value along the funnel: 1 x registration (28 days) + 5 x application (70 days)" in options
    assert serious_violations(page) == []
    page.get_by_label("Budget (EUR)", exact=True).fill("3000")
    choice.select_option(label="value along the funnel: 1 x registration (28 days) + 5 x application "
                               "(70 days)")
    page.get_by_role("button", name="Make the plan").click()
    page.wait_for_url(re.compile(r".*/ui/plans/[0-9a-f]{32}.*"))
    total = page.locator("#value-total [data-total='value']").inner_text()
    assert total == f"{plan['value']['expected_value']:,.1f}"  # the same plan as the API's at EUR 3,000
    page.get_by_role("link", name=re.compile("new plan from this one", re.I)).first.click()
    assert page.get_by_label("Plan on").input_value().startswith("value = 1 x registration")
