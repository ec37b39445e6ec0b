"""Value along the funnel: the policy's ``value`` block, labels per event with censoring, the value segment
table, a plan on value and its conversions per event, checked on a hand-made two-event world."""

from __future__ import annotations

from pathlib import Path

import pytest

from uplift.errors import SpecError
from uplift.specs import load_spec, project_root
from uplift.specs.planning import PlanningPolicy, apply_overrides


def _policy_file(tmp_path: Path, block: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text("holdout_share: 0.1\n" + block)
    return path


def test_the_shipped_policies_declare_no_value_and_the_funnel_example():
    plain = load_spec(project_root() / "serve" / "policy.yaml", PlanningPolicy)
    assert plain.value is None and plain.value_events is None
    funnel = load_spec(project_root() / "serve" / "policy_funnel.yaml", PlanningPolicy)
    assert [(v.event, v.weight) for v in funnel.value_events] == [
        ("registration", 1), ("advice_conversation", 2), ("application", 5), ("started", 10)]
    # the same rules otherwise
    assert funnel.model_copy(update={"value": None}) == plain


@pytest.mark.parametrize(("block", "expected"), [
    ("value: []\n", "value: Value error, expected at least one funnel event"),
    ("value:\n  - {event: signup, weight: 1, attribution_days: 28}\n",
     "value.0.event: Value error, 'signup' is not a funnel event; expected one of registration"),
    ("value:\n  - {event: registration, weight: 1, attribution_days: 28}\n"
     "  - {event: registration, weight: 2, attribution_days: 40}\n",
     "value: Value error, expected each funnel event once; repeated: registration"),
    ("value:\n  - {event: started, weight: 0, attribution_days: 28}\n",
     "value.0.weight: Input should be greater than 0"),
    ("value:\n  - {event: started, weight: -2, attribution_days: 28}\n",
     "value.0.weight: Input should be greater than 0"),
    ("value:\n  - {event: started, weight: 3}\n", "value.0.attribution_days: Field required"),
    ("value:\n  - {event: started, weight: 3, attribution_days: 0}\n",
     "value.0.attribution_days: Input should be greater than 0"),
])
def test_a_bad_value_block_names_the_file_the_key_and_what_was_expected(tmp_path, block, expected):
    path = _policy_file(tmp_path, block)
    with pytest.raises(SpecError) as err:
        load_spec(path, PlanningPolicy)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_a_value_block_can_be_set_per_call_and_is_checked_again():
    policy = apply_overrides(PlanningPolicy(), {"value": [{"event": "application", "weight": 5,
                                                           "attribution_days": 70}]})
    assert policy.value_events[0].outcome.describe() == "application within 70 days of assignment"
    with pytest.raises(SpecError, match="--set: invalid PlanningPolicy: value.0.weight"):
        apply_overrides(policy, {"value": [{"event": "application", "weight": 0, "attribution_days": 70}]},
                        source="--set")


# ---------------------------------------------------------------------------------------------
# the two-event world, by hand
# ---------------------------------------------------------------------------------------------

Z80 = 1.2815515655446004
TWO_EVENTS = [{"event": "registration", "weight": 1, "attribution_days": 28},
              {"event": "application", "weight": 5, "attribution_days": 70}]


def _costs():
    from uplift.specs.planning import CostCatalogue

    # EUR 0.05 per contact for the first 40% of a segment, EUR 0.10 for the next 30%
    return CostCatalogue.model_validate({"channels": {"meta": {
        "cost_per_mille": 10.0, "impressions_per_contact": 5,
        "tiers": [{"share": 0.4, "multiplier": 1.0}, {"share": 0.3, "multiplier": 2.0}]}}})


def two_event_table():
    """Segments A and B (10,000 people each), one arm on meta. Registrations: A 0.020, B 0.010 per contact;
    applications (weight 5): A 0.001, B 0.004. Value per contact: A 0.020 + 5 x 0.001 = 0.025, B 0.010 +
    5 x 0.004 = 0.030. Own errors only: value sd 0.004, registration 0.002, application 0.001."""
    import pandas as pd

    def rows(outcome, effects, sd, weight, days):
        return pd.DataFrame({"segment": ["A", "B"], "kind": "targetable", "size": 10_000, "arm": "m1@meta",
                             "message": "m1", "channel": "meta", "effect": effects, "effect_sd": sd,
                             "outcome": outcome, "weight": weight, "attribution_days": days})

    return pd.concat([rows("value", [0.025, 0.030], 0.004, float("nan"), float("nan")),
                      rows("registration", [0.020, 0.010], 0.002, 1.0, 28.0),
                      rows("application", [0.001, 0.004], 0.001, 5.0, 70.0)], ignore_index=True)


def _value_policy(**update):
    return PlanningPolicy(holdout_share=0.1, value=TWO_EVENTS, **update)


def test_a_value_plan_on_the_two_event_world_matches_the_hand_calculation():
    from uplift.allocation import plan
    from uplift.funnel import event_conversions, value_plan_tables

    policy = _value_policy()
    table, events = value_plan_tables(two_event_table(), policy)
    assert set(events) == {"registration", "application"} and list(table["effect"]) == [0.025, 0.030]
    # EUR 300: B's cheap tier first (0.030 / 0.05 = 0.6 value per euro: 4,000 contacts, EUR 200), then A's
    # (0.025 / 0.05 = 0.5 per euro: EUR 100 buys 2,000); B's dear tier pays only 0.3 per euro.
    result = plan(table, budget=300.0, costs=_costs(), policy=policy, references=False, prices=False)
    cells, per_event = event_conversions(result.cells, events, policy)
    got = cells.set_index("segment")
    assert got.loc["B", "contacts"] == 4_000 and got.loc["A", "contacts"] == 2_000
    # value 4,000 x 0.030 + 2,000 x 0.025 = 170, variance (4,000 x 0.004)^2 + (2,000 x 0.004)^2 = 320
    assert result.totals.expected_conversions == pytest.approx(170.0)
    assert (result.totals.lo, result.totals.hi) == pytest.approx((170 - Z80 * 320**0.5, 170 + Z80 * 320**0.5))
    # registrations 4,000 x 0.010 + 2,000 x 0.020 = 80; applications 4,000 x 0.004 + 2,000 x 0.001 = 18
    assert got.loc["B", "conversions__registration"] == pytest.approx(40.0)
    assert got.loc["A", "conversions__application"] == pytest.approx(2.0)
    reg, app = per_event
    assert (reg.event, reg.expected, app.event, app.expected) == ("registration", pytest.approx(80.0),
                                                                  "application", pytest.approx(18.0))
    # registration variance (4,000 x 0.002)^2 + (2,000 x 0.002)^2 = 80; application 16 + 4 = 20
    assert (reg.lo, reg.hi) == pytest.approx((80 - Z80 * 80**0.5, 80 + Z80 * 80**0.5))
    assert (app.lo, app.hi) == pytest.approx((18 - Z80 * 20**0.5, 18 + Z80 * 20**0.5))
    # the value adds up from the events
    assert reg.weight * reg.expected + app.weight * app.expected == pytest.approx(result.totals.expected_conversions)


def test_on_registrations_alone_the_same_world_funds_the_other_segment_first():
    from uplift.allocation import plan

    # EUR 200 buys one cheap tier: registrations alone pick A (0.020 > 0.010): 80 registrations;
    # the value picks B (0.030 > 0.025): 40 registrations and 16 applications, value 120 (A's would be 100)
    table = two_event_table()
    registrations = table[table["outcome"] == "registration"].drop(columns=["outcome", "weight", "attribution_days"])
    alone = plan(registrations, budget=200.0, costs=_costs(), policy=PlanningPolicy(holdout_share=0.1),
                 references=False, prices=False)
    assert alone.cells.set_index("segment").loc["A", "contacts"] == 4_000
    assert alone.totals.expected_conversions == pytest.approx(80.0)

    from uplift.funnel import event_conversions, value_plan_tables

    policy = _value_policy()
    value_table, events = value_plan_tables(table, policy)
    on_value = plan(value_table, budget=200.0, costs=_costs(), policy=policy, references=False, prices=False)
    assert on_value.cells.set_index("segment").loc["B", "contacts"] == 4_000
    assert on_value.totals.expected_conversions == pytest.approx(120.0)
    _, (reg, app) = event_conversions(on_value.cells, events, policy)
    assert (reg.expected, app.expected) == (pytest.approx(40.0), pytest.approx(16.0))


def test_a_funnel_table_and_a_policy_must_declare_the_same_value():
    from uplift.errors import DataError
    from uplift.funnel import value_plan_tables

    table = two_event_table()
    with pytest.raises(DataError, match="made for the value 5 x application \\(70 days\\), 1 x registration "
                                        "\\(28 days\\), but the policy declares no value block"):
        value_plan_tables(table, PlanningPolicy())
    other = [{**TWO_EVENTS[0]}, {**TWO_EVENTS[1], "weight": 4}]
    with pytest.raises(DataError, match="but the policy declares 4 x application"):
        value_plan_tables(table, PlanningPolicy(value=other))
    plain = table[table["outcome"] == "registration"].drop(columns=["outcome", "weight", "attribution_days"])
    with pytest.raises(DataError, match="the policy plans on value \\(registration, application\\), but the "
                                        "table has one outcome"):
        value_plan_tables(plain, _value_policy())
    # a plain table and a policy without value: planned as it is
    same, events = value_plan_tables(plain, PlanningPolicy())
    assert same is plain and events == {}
