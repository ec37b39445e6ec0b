"""The page's parts without a browser: the plan form, number formats, exports, sessions, the cells table."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from starlette.datastructures import FormData

from uplift.api.web import exports, numbers, views
from uplift.api.web.planform import form_from_request, group_choices, read_plan_form, value_choices
from uplift.specs import load_spec
from uplift.specs.planning import FairnessFloor, PlanningPolicy

ROOT = Path(__file__).resolve().parents[1]
CHANNELS, MESSAGES = ["meta", "flyer"], ["a", "b"]


@pytest.fixture(scope="module")
def policy() -> PlanningPolicy:
    return load_spec(ROOT / "serve" / "policy.yaml", PlanningPolicy)


@pytest.fixture(scope="module")
def segments() -> pd.DataFrame:
    return pd.DataFrame({"segment": ["s1", "s2"], "gender": ["female", "male"], "age_band": ["45-54", "25-34"],
                         "municipality": ["Delft", "other"]})


def _form(policy, segments, offered=(), **changes) -> tuple:
    state = form_from_request(None, policy, CHANNELS, MESSAGES)
    fields: list[tuple[str, str]] = [("budget", state.budget), ("kind", state.kind), ("holdout", state.holdout),
                                     ("exploration", state.exploration)]
    fields += [("channel", c) for c in CHANNELS] + [("message", m) for m in MESSAGES]
    for c in CHANNELS:
        fields += [(f"min_spend.{c}", state.min_spend[c]), (f"max_spend.{c}", state.max_spend[c])]
    for i, f in enumerate(state.floors):
        fields += [(f"floor-{i}-keep", "on"), (f"floor-{i}-name", f.name), (f"floor-{i}-group", f.group),
                   (f"floor-{i}-kind", f.kind), (f"floor-{i}-share", f.share), (f"floor-{i}-confidence", f.confidence)]
    values = dict(fields)
    multi = [(k, v) for k, v in fields if k in ("channel", "message")]
    values.update(changes)
    data = FormData([(k, v) for k, v in values.items() if k not in ("channel", "message") and v is not None] +
                    [kv for kv in multi if changes.get(kv[0], "") is not None])
    return read_plan_form(data, policy=policy, channels=CHANNELS, messages=MESSAGES,
                          groups=group_choices(segments, policy), values=offered)


def test_the_untouched_form_asks_for_the_services_policy(policy, segments):
    _, request, problems = _form(policy, segments, budget="1,500")
    assert problems == [] and request.budget == 1500.0
    assert request.policy == {} and request.channels is None and request.messages is None


def test_a_tightened_floor_overrides_the_floors_and_keeps_what_the_form_does_not_show(policy, segments):
    _, request, problems = _form(policy, segments, **{"floor-0-share": "60"})
    assert problems == []
    floors = request.policy["fairness_floors"]
    assert floors[0]["min_share"] == pytest.approx(0.6) and floors[0]["where"] == {"gender": "female"}
    assert floors[0]["segment_kinds"] == ["targetable"]  # kept from the policy's floor
    assert FairnessFloor.model_validate(floors[1]) == policy.fairness_floors[1]
    assert set(request.policy) == {"fairness_floors"}


def test_bad_fields_are_named_and_nothing_is_planned(policy, segments):
    state, request, problems = _form(policy, segments, budget="-5", holdout="150", **{"min_spend.meta": "lots",
                                                                                     "floor-0-group": "where:x=1"})
    assert request is None and state.budget == "-5"
    assert "Budget (EUR): expected at least 0, got -5" in problems
    assert "Holdout share (%): expected at most 99, got 150" in problems
    assert "Min spend on meta (EUR): expected a number, got 'lots'" in problems
    assert any("Fairness floor 1: unknown priority group" in p for p in problems)
    assert _form(policy, segments, budget="1e12")[2] == ["Budget (EUR): expected at most 1e+09, got 1e+12"]
    assert _form(policy, segments, budget="nan")[2] == ["Budget (EUR): expected a finite number, got 'nan'"]


def test_group_choices_offer_the_tables_groups_and_never_the_merged_cells(policy, segments):
    values = [g.value for g in group_choices(segments.assign(group__migration_background=0.4), policy)]
    assert values[0] == "group:migration_background"
    assert "where:gender=female" in values and "where:municipality=Delft" in values
    assert "where:municipality=other" not in values


TWO = [{"event": "registration", "weight": 1, "attribution_days": 28},
       {"event": "application", "weight": 5, "attribution_days": 70}]
TWO_TEXT = "value = 1 x registration (28 days) + 5 x application (70 days)"


def test_value_choices_offer_the_outcome_the_policys_value_and_each_funnel_table_once(policy):
    two = PlanningPolicy(value=TWO).value_events
    three = PlanningPolicy(value=[*TWO, {"event": "started", "weight": 10, "attribution_days": 150}]).value_events
    plain = value_choices([two, three, two], policy, outcome="registration")
    assert [c.value for c in plain] == ["", TWO_TEXT, "value = 1 x registration (28 days) + 5 x application (70 days) "
                                                      "+ 10 x started (150 days)"]
    assert plain[0].label == "registration (the model's outcome)" and plain[0].events is None
    assert plain[1].label == "value along the funnel: 1 x registration (28 days) + 5 x application (70 days)"
    on_value = value_choices([], policy.model_copy(update={"value": two}), outcome="registration")
    assert [c.value for c in on_value] == ["", TWO_TEXT]  # the policy's own value even before a table is made


def test_the_plan_on_choice_sets_or_drops_the_value_and_an_unknown_one_is_named(policy, segments):
    values = value_choices([PlanningPolicy(value=TWO).value_events], policy, outcome="registration")
    _, request, problems = _form(policy, segments, values, value=TWO_TEXT)
    assert problems == [] and request.policy == {"value": [{"event": "registration", "weight": 1.0,
                                                            "attribution_days": 28},
                                                           {"event": "application", "weight": 5.0,
                                                            "attribution_days": 70}]}
    assert _form(policy, segments, values, value="")[1].policy == {}  # the outcome: the policy as it is
    assert _form(policy, segments, values)[1].policy == {}  # a form without the field keeps the policy's
    _, request, problems = _form(policy, segments, values, value="value = 7 x started (150 days)")
    assert request is None and problems == ["Plan on: 'value = 7 x started (150 days)' has no funnel segment "
                                            "table for this model; choose one the list offers"]
    on_value = policy.model_copy(update={"value": PlanningPolicy(value=TWO).value_events})
    assert form_from_request(None, on_value, CHANNELS, MESSAGES).value == TWO_TEXT
    _, request, _ = _form(on_value, segments, value_choices([], on_value, outcome="registration"), value="")
    assert request.policy == {"value": None}  # the model's outcome under a service that plans on value


def test_numbers_for_people():
    assert numbers.eur(12345.6) == "€12,346" and numbers.eur(12.345, cents=True) == "€12.35"
    assert numbers.eur(float("inf")) == "no finite amount" and numbers.eur(None) == "–"
    assert numbers.conversions(1234.56) == "1,234.6" and numbers.conversions(2.04, signed=True) == "+2.0"
    assert numbers.interval(1.25, 3.5) == "[1.2, 3.5]" and numbers.interval(None, 2) == "–"
    assert numbers.effect(0.0031) == "3.10 per 1,000" and numbers.percent(0.405) == "40%"
    assert numbers.when(datetime(2025, 3, 1, 10, 10, tzinfo=UTC)) == "2025-03-01 10:10 UTC"


PLAN = {"id": "f" * 32, "name": "=HYPERLINK(\"x\")", "note": "", "model_name": "m", "model_version": 1,
        "created_at": "2025-03-01T09:00:00Z", "created_by": "anna", "approved_at": None, "approved_by": None,
        "status": "optimal", "conflicts": [], "references": {},
        "totals": {"budget": 100.0, "spend": 30.5, "contacts": 3, "expected_conversions": 0.75, "lo": 0.5, "hi": 1.0,
                   "interval": 0.8, "cost_per_conversion": 40.67},
        "cells": [{"segment": "-2+3", "message": "a", "channel": "meta", "contacts": 2, "holdout_people": 0,
                   "spend": 20.25, "expected_conversions": 0.5, "lo": 0.2, "hi": 0.8, "cost_per_conversion": 40.5,
                   "marginal_cost": None, "exploration": 0.0},
                  {"segment": "s2", "message": "b", "channel": "flyer", "contacts": 1, "holdout_people": 0,
                   "spend": 10.25, "expected_conversions": 0.25, "lo": 0.1, "hi": 0.4, "cost_per_conversion": 41.0,
                   "marginal_cost": 50.0, "exploration": 0.0}]}


def test_exports_add_up_to_the_plan_and_never_carry_a_formula():
    rows = list(csv.DictReader(io.StringIO(exports.plan_csv(PLAN).decode("utf-8-sig"))))
    assert sum(float(r["spend (EUR)"]) for r in rows) == pytest.approx(30.5)
    assert rows[0]["segment"] == "'-2+3" and rows[0]["EUR of the next conversion"] == ""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(exports.plan_xlsx(PLAN)))
    assert book.sheetnames == ["Summary", "meta", "flyer"]
    name = book["Summary"]["B1"]
    assert name.data_type == "s" and name.value == '=HYPERLINK("x")'  # text, never a formula
    assert [r[0] for r in book["meta"].iter_rows(values_only=True)][1] == "-2+3"
    assert [r[4] for r in book["meta"].iter_rows(values_only=True)][-1] == 20.25
    assert exports.file_stem(PLAN) == "plan-HYPERLINK-x"


def test_cells_are_filtered_sorted_and_paged_with_missing_figures_last():
    cells = [{"segment": f"s{i}", "message": "a" if i % 2 else "b", "channel": "meta", "spend": float(i),
              "marginal_cost": None if i == 3 else float(10 - i)} for i in range(7)]
    rows, matched, pages = views.cells_page(cells, views.CellQuery(sort="marginal_cost", descending=False), per_page=4)
    assert [r["segment"] for r in rows] == ["s6", "s5", "s4", "s2"] and (matched, pages) == (7, 2)
    rows, _, _ = views.cells_page(cells, views.CellQuery(sort="marginal_cost", descending=False, page=2), per_page=4)
    assert [r["segment"] for r in rows][-1] == "s3"
    rows, matched, _ = views.cells_page(cells, views.CellQuery.of({"message": "a", "sort": "bogus", "segment": "S"}))
    assert matched == 3 and [r["spend"] for r in rows] == [5.0, 3.0, 1.0]  # unknown sort: by spend, largest first


def test_sessions_end_at_sign_out_and_expiry(tmp_path):
    import sqlalchemy as sa

    from uplift.api.web.sessions import SessionStore

    store = SessionStore(sa.create_engine(f"sqlite:///{tmp_path / 's.db'}"), lifetime=timedelta(hours=1))
    secret, session = store.open(name="anna", digest="d" * 64)
    assert store.find(secret).name == "anna" and store.find(secret).csrf_matches(session.csrf)
    assert not session.csrf_matches("") and not session.csrf_matches(None) and not session.csrf_matches("x")
    assert store.find(secret, at=datetime.now(UTC) + timedelta(hours=2)) is None
    assert store.find("not-a-session") is None and store.find(None) is None
    with store.engine.connect() as conn:  # the store keeps the secret's hash, never the secret
        assert secret not in str(conn.execute(sa.text("select * from web_sessions")).all())
    store.close(secret)
    assert store.find(secret) is None


def test_the_plan_page_shows_every_rules_price_and_escapes_what_planners_typed():
    """The plan answer's ``rules`` (the price of every declared rule) as the planner's rule units send them."""
    from uplift.api.routes.pages import plan_context
    from uplift.api.web.render import render
    from uplift.api.web.sessions import Session

    rules = [{"rule": "fairness floor 'women'", "kind": "spend_floor", "stated": "70% of spend", "status": "binds",
              "dual": -0.42, "unit": "percentage point more min_share", "cost": 12.3456, "lo": 4.1, "hi": 20.5,
              "cost_share": 0.05, "interval": 0.8, "text": "holding fairness floor 'women' at 70% of spend costs 12.3"},
             {"rule": "the budget", "kind": "budget", "stated": "EUR 100", "status": "binds", "dual": 0.02,
              "unit": "EUR more", "cost": None, "lo": None, "hi": None, "cost_share": None, "interval": 0.8,
              "text": "the budget binds"}]
    plan = {**PLAN, "note": "<script>alert(1)</script>", "rules": rules, "gains": {}, "notes": [], "floors": [],
            "breakdown": [], "supersedes": None, "superseded_by": None}
    plan["totals"] = {**plan["totals"], "contacts": 3, "cost_per_conversion_lo": 30.5, "cost_per_conversion_hi": 61.0}
    html = render("plan.html", session=Session("anna", "d", "csrf-token", datetime.now(UTC)),
                  **plan_context(plan, {}, current_version=2))
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    row = html[html.index("fairness floor &#39;women&#39;"):]
    assert "70% of spend" in row and "binds" in row and "12.3" in row and "[4.1, 20.5]" in row
    assert "The model in service is now v2" in html  # the plan was made with v1
    assert 'value="csrf-token"' in html and "<title>=HYPERLINK(&#34;x&#34;) · uplift</title>" in html
