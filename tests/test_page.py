"""The planner's page in a real browser: Debian's Chromium (Playwright) against a real ``uplift serve`` on
loopback over a small trained model. One test walks the whole flow; the others try what goes wrong.
Screenshots of each page go to ``out/screenshots`` (test artifacts)."""

from __future__ import annotations

import csv
import io
import re
import time

import httpx
import pytest

from apiserver import MODEL, TOKENS
from browser import close, eur_value, launch, page_server, screenshot, serious_violations, sign_in

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    return page_server(request, tmp_path_factory)


@pytest.fixture(scope="module")
def base(server):
    return server[0]


@pytest.fixture(scope="module")
def browser_context():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context, profile = launch(p)
        yield context
        close(context, profile)


@pytest.fixture()
def page(browser_context, base):
    """A signed-in tab (the session cookie is shared by the module's tabs)."""
    tab = browser_context.new_page()
    if not browser_context.cookies() or not any(c["name"] == "uplift_session" for c in browser_context.cookies()):
        sign_in(tab, base)
    yield tab
    tab.close()


def _make_plan(page, base: str, budget: str, **fields) -> str:
    """Fill the build form at ``budget`` (and ``fields``: input name -> value), submit; the plan's id."""
    page.goto(f"{base}/ui/plan")
    page.get_by_label("Budget (EUR)", exact=True).fill(budget)
    for name, value in fields.items():
        page.locator(f"[name='{name}']").fill(value)
    page.get_by_role("button", name="Make the plan").click()
    page.wait_for_url(re.compile(r".*/ui/plans/[0-9a-f]{32}.*"))
    return re.search(r"/ui/plans/([0-9a-f]{32})", page.url).group(1)


def _total(page, which: str) -> str:
    return page.locator(f"#totals [data-total='{which}']").inner_text()


def _check_axe(page, name: str, found: dict) -> None:
    found[name] = serious_violations(page)
    screenshot(page, name)


def test_a_planner_walks_the_whole_flow(page, base):
    axe: dict[str, list[str]] = {}
    overview = page
    assert "version 1" in overview.locator("dl.facts").inner_text()
    assert overview.locator("img.chart").evaluate("i => i.complete && i.naturalWidth > 0")
    _check_axe(overview, "overview", axe)

    # build a plan at a budget; the slider re-plans as it moves (a preview, nothing kept)
    page.goto(f"{base}/ui/plan")
    page.get_by_label("Budget (EUR)", exact=True).fill("3000")
    page.wait_for_selector("#preview .preview", timeout=60_000)
    assert "expected incremental conversions" in page.locator("#preview").inner_text()
    _check_axe(page, "build", axe)
    first = _make_plan(page, base, "3000")
    assert page.locator("#cells tbody tr").count() > 0
    assert page.locator("img.chart").evaluate("i => i.complete && i.naturalWidth > 0")
    spend, conversions = eur_value(_total(page, "spend")), float(_total(page, "conversions").replace(",", ""))
    assert 0 < spend <= 3000
    _check_axe(page, "plan", axe)

    # sort the cells by cost per conversion (a link: no JavaScript needed)
    page.get_by_role("link", name=re.compile("EUR per conversion")).click()
    costs = [eur_value(t) for t in page.locator("#cells tbody tr td:nth-child(8)").all_inner_texts() if "€" in t]
    assert costs == sorted(costs, reverse=True) or costs == sorted(costs)

    # what the next euro buys
    page.goto(f"{base}/ui/plans/{first}/curve")
    assert "Money stops buying conversions at about" in page.locator("main").inner_text()
    assert page.locator("#curve tr.this").count() == 1
    _check_axe(page, "curve", axe)

    # tighten a floor: the women's floor from 40% to 70% of spend; its price shows on the plan
    page.goto(f"{base}/ui/plan?from={first}")
    page.locator("[name='floor-0-share']").fill("70")
    page.get_by_role("button", name="Make the plan").click()
    page.wait_for_url(re.compile(r".*/ui/plans/[0-9a-f]{32}.*"))
    second = re.search(r"/ui/plans/([0-9a-f]{32})", page.url).group(1)
    assert second != first
    floors = page.locator("#floors").inner_text()
    assert "women" in floors and "70%" in floors
    rules = page.locator("#rules")
    if rules.count():  # rule prices (the planner's rule units): the women floor binds and costs conversions
        row = rules.locator("tr", has_text="women")
        assert "binds" in row.inner_text()
        assert float(row.locator("td").nth(2).inner_text().replace(",", "")) > 0
    tighter = float(_total(page, "conversions").replace(",", ""))
    assert tighter <= conversions + 1e-6  # a tighter floor never buys more

    # compare the two
    page.goto(f"{base}/ui/plans")
    page.locator(f"#cmp-{first}").check()
    page.locator(f"#cmp-{second}").check()
    page.get_by_role("button", name="Compare the ticked plans").click()
    assert page.locator("#compare-totals tbody tr").count() == 2
    assert page.locator("#compare-channel").count() == 1 and page.locator("#compare-group").count() == 1
    _check_axe(page, "compare", axe)
    page.goto(f"{base}/ui/plans")
    _check_axe(page, "plans", axe)

    # keep and approve the first; an approved plan offers no edit
    page.goto(f"{base}/ui/plans/{first}")
    page.get_by_label("Name").fill("Wave 5 baseline")
    page.get_by_label("Note").fill("flyers first")
    page.get_by_role("button", name="Save name and note").click()
    assert page.locator("h1").inner_text() == "Wave 5 baseline"
    page.get_by_role("button", name="Approve this plan").click()
    assert "approved" in page.locator(".meta").inner_text()
    assert page.get_by_role("button", name="Save name and note").count() == 0
    page.goto(f"{base}/ui/plans")
    listed = page.locator("#plans").inner_text()
    assert "Wave 5 baseline" in listed and "approved by" in listed and TOKENS[0] not in page.content()

    # download CSV and Excel: their totals are the page's
    page.goto(f"{base}/ui/plans/{first}")
    shown_spend = _total(page, "spend")
    # the cells keep their own estimates; the plan's total is calibrated on held-out rows, and the page says so
    estimated = page.locator("#totals [data-total='estimated'], [data-total='estimated']")
    shown_conv = estimated.first.inner_text() if estimated.count() else _total(page, "conversions")
    with page.expect_download() as got:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(open(got.value.path(), encoding="utf-8-sig").read())))
    assert f"€{sum(float(r['spend (EUR)']) for r in rows):,.0f}" == shown_spend
    assert f"{sum(float(r['expected incremental conversions']) for r in rows):,.1f}" == shown_conv
    with page.expect_download() as got:
        page.get_by_role("link", name="Download Excel").click()
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(open(got.value.path(), "rb").read()), read_only=True)
    assert book.sheetnames[0] == "Summary" and set(book.sheetnames[1:]) == {r["channel"] for r in rows}
    totals = [list(book[s].iter_rows(values_only=True))[-1] for s in book.sheetnames[1:]]
    assert f"€{sum(t[4] for t in totals):,.0f}" == shown_spend
    assert f"{sum(t[5] for t in totals):,.1f}" == shown_conv

    page.goto(f"{base}/ui/plans/{first}/summary")
    assert "Signed off by" in page.locator("main").inner_text()
    _check_axe(page, "summary", axe)
    page.goto(f"{base}/ui/segments")
    _check_axe(page, "segments", axe)

    # sign out: the page is refused, and so is the old cookie
    cookie = next(c for c in page.context.cookies() if c["name"] == "uplift_session")
    page.goto(f"{base}/ui/")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/ui/sign-in.*"))
    _check_axe(page, "sign-in", axe)
    page.goto(f"{base}/ui/plans")
    assert "/ui/sign-in" in page.url
    old = httpx.get(f"{base}/ui/plans", cookies={"uplift_session": cookie["value"]}, follow_redirects=False)
    assert old.status_code == 303 and "/ui/sign-in" in old.headers["location"]
    assert axe == {name: [] for name in axe}, axe


def test_serve_prints_the_pages_address(base):
    from apiserver import server_log

    assert f"The planner's page: open {base}/ui/ in a browser and sign in" in server_log(base).read_text()


def test_a_wrong_token_gets_the_form_again_with_a_plain_message(browser_context, base):
    tab = browser_context.new_page()
    tab.goto(f"{base}/ui/sign-in")
    tab.get_by_label("Service token").fill("x" * 40)
    tab.get_by_role("button", name="Sign in").click()
    assert "That is not one of the service's tokens." in tab.locator("[role=alert]").inner_text()
    assert tab.get_by_label("Service token").count() == 1
    assert "Traceback" not in tab.content()
    tab.close()
    raw = httpx.post(f"{base}/ui/sign-in", data={"token": TOKENS[0], "csrf": "made-up"})
    assert (raw.status_code == 401 and "expired" in raw.text
            and "uplift_session" not in raw.headers.get("set-cookie", ""))


def test_forms_without_the_sessions_csrf_token_are_refused(page, base):
    plan_id = _make_plan(page, base, "1500")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    for data in ({}, {"csrf": "not-the-token"}):
        r = httpx.post(f"{base}/ui/plans/{plan_id}/approve", data=data, cookies=cookies)
        assert r.status_code == 403 and "security token" in r.text
    page.goto(f"{base}/ui/plans/{plan_id}")
    assert "Approve this plan" in page.content()  # not approved
    assert httpx.post(f"{base}/ui/plans", data={"budget": "100"}).status_code == 401  # no session at all


def test_a_script_in_a_note_shows_as_text(page, base):
    plan_id = _make_plan(page, base, "1200")
    evil = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned=2\">"
    page.get_by_label("Name").fill(evil)
    page.get_by_label("Note").fill(evil)
    page.get_by_role("button", name="Save name and note").click()
    assert page.locator("h1").inner_text() == evil
    assert evil in page.locator(".note").inner_text()
    assert page.evaluate("window.__pwned") is None
    page.goto(f"{base}/ui/plans")
    assert page.evaluate("window.__pwned") is None and evil in page.locator("#plans").inner_text()
    page.goto(f"{base}/ui/plans/{plan_id}/summary")
    assert page.evaluate("window.__pwned") is None


@pytest.mark.parametrize(("budget", "says"), [
    ("-5", "Budget (EUR): expected at least 0"),
    ("1e12", "Budget (EUR): expected at most 1e+09"),
    ("lots", "Budget (EUR): expected a number"),
])
def test_a_bad_budget_is_named_in_the_form(page, base, budget, says):
    page.goto(f"{base}/ui/plan")
    page.get_by_label("Budget (EUR)", exact=True).fill(budget)
    page.get_by_role("button", name="Make the plan").click()
    assert says in page.locator("#form-problems").inner_text()
    assert page.get_by_label("Budget (EUR)", exact=True).input_value() == budget  # the form comes back as typed


def test_a_budget_of_zero_plans_nothing(page, base):
    _make_plan(page, base, "0")
    assert eur_value(_total(page, "spend")) == 0 and _total(page, "conversions") == "0.0"


def test_rules_that_cannot_all_hold_show_their_conflict(page, base):
    _make_plan(page, base, "800", **{"min_spend.meta": "5000"})
    box = page.locator(".conflicts")
    assert box.count() == 1 and "cannot all hold" in box.inner_text()
    assert "meta" in box.locator("li").first.inner_text()
    assert page.locator("#totals").count() == 1  # the closest relaxed plan, not an error page


def test_a_model_swap_while_the_form_is_open(page, server):
    """The alias moves to a new version while a planner has the form open: the plan is made on the new
    version and the page says so. (Last in this module: it leaves v2 in service.)"""
    from mlflow import MlflowClient

    base, store = server
    page.goto(f"{base}/ui/plan")
    page.get_by_label("Budget (EUR)", exact=True).fill("2000")
    import mlflow

    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)  # a version's source is a logged model, found through the global store (reset
    mlflow.set_registry_uri(uri)  # after the test by conftest's _isolated_mlflow)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    v1 = client.get_model_version_by_alias(MODEL, "champion")
    v2 = client.create_model_version(MODEL, v1.source, run_id=v1.run_id)
    client.set_registered_model_alias(MODEL, "champion", v2.version)
    headers = {"Authorization": f"Bearer {TOKENS[0]}"}
    deadline = time.monotonic() + 120
    while httpx.get(f"{base}/health", headers=headers).json().get("model_version") != int(v2.version):
        assert time.monotonic() < deadline, "the service did not load the new version"
        time.sleep(0.5)
    page.get_by_role("button", name="Make the plan").click()
    page.wait_for_url(re.compile(r".*/ui/plans/[0-9a-f]{32}.*"))
    assert "The model changed while the form was open" in page.locator("[role=status]").inner_text()
    assert f"v{v2.version}" in page.locator(".meta").inner_text()
