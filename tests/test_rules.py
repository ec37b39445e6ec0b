"""Planning rules as units: floors over priority groups (spend, contact and conversion shares),
coverage floors, and the price of every rule, on small worlds worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from uplift.allocation import evaluate_plan, plan, prepare_plan
from uplift.errors import DataError, SchemaError, SpecError
from uplift.specs import load_spec
from uplift.specs.planning import CostCatalogue, PlanningPolicy

Z80 = 1.2815515655446004  # the normal quantile of an 80% central interval

# ---------------------------------------------------------------------------------------------
# two segments; the priority group (say, people with a migration background) is 10% of S1 and
# 70% of S2, and no channel targets it: only the segments' composition says where it lives
# ---------------------------------------------------------------------------------------------


def costs_for(**price: float) -> CostCatalogue:
    """One reach tier (the whole segment) per channel at ``price[channel]`` EUR per contact."""
    return CostCatalogue.model_validate(
        {"channels": {ch: {"cost_per_contact": p, "tiers": [{"share": 1.0, "multiplier": 1.0}]}
                      for ch, p in price.items()}}
    )


def two_segments(channels=("meta", "meta"), group=(0.1, 0.7), municipality=("Delft", "Delft")) -> pd.DataFrame:
    """S1: effect 0.02 per contact, S2: 0.01; 1,000 people each."""
    return pd.DataFrame({
        "segment": ["S1", "S2"],
        "size": [1000, 1000],
        "arm": [f"m@{channels[0]}", f"m@{channels[1]}"],
        "message": ["m", "m"],
        "channel": list(channels),
        "effect": [0.02, 0.01],
        "effect_sd": [0.002, 0.001],
        "base_rate": [0.01, 0.01],
        "municipality": list(municipality),
        "group__migration_background": list(group),
    })


def policy(**fields) -> PlanningPolicy:
    return PlanningPolicy(holdout_share=0.0, exploration_share=0.0, **fields)


def floor(kind: str, share: float = 0.3, **extra) -> dict:
    return {"name": "migration_reach", "group": "migration_background", "kind": kind, "min_share": share, **extra}


def price_of(result, rule: str):
    return next(r for r in result.rules if r.rule == rule)


def paired_half_width(d1: float, d2: float) -> float:
    """Half the 80% interval of a shift of ``d1`` contacts in S1 and ``d2`` in S2 (own errors only)."""
    return Z80 * math.hypot(d1 * 0.002, d2 * 0.001)


def test_without_a_floor_the_plan_funds_the_better_segment_and_the_budget_is_priced_by_its_dual():
    result = plan(two_segments(), budget=80.0, costs=costs_for(meta=0.1), policy=policy())
    contacts = result.cells.set_index("segment")["contacts"]
    assert contacts["S1"] == 800 and contacts["S2"] == 0
    assert result.totals.expected_conversions == pytest.approx(16.0)
    budget = price_of(result, "the budget")
    assert budget.status == "binds" and math.isnan(budget.cost)  # never dropped
    assert budget.dual == pytest.approx(1000 * 0.02 / 0.1, rel=1e-4)  # EUR 1,000 more: 10,000 contacts' worth in S1
    assert budget.text == ("the budget (EUR 80) binds: each EUR 1,000 more budget would buy 200.00 expected "
                           "conversions")


def test_a_contact_share_floor_over_a_group_no_channel_targets_holds_and_its_price_is_hand_computed():
    # EUR 100 buys 1,000 contacts. 30% of them in the group: 0.1 x1 + 0.7 x2 >= 0.3 (x1 + x2), so x2 >= x1 / 2:
    # x1 = 666.7, x2 = 333.3 -> 13.33 + 3.33 = 16.67 conversions; without the floor 20. The floor costs 3.33.
    # dV/ds: x2 = 1000 (s - 0.1) / 0.6, V = 20 - 0.01 x2 -> -16.67 per unit share, -0.1667 per percentage point.
    result = plan(two_segments(), budget=100.0, costs=costs_for(meta=0.1),
                  policy=policy(fairness_floors=[floor("contact_share")]))
    cells = result.cells.set_index("segment")
    x1, x2 = cells.loc["S1", "contacts"], cells.loc["S2", "contacts"]
    assert (x1, x2) == (666, 333)
    assert (0.1 * x1 + 0.7 * x2) / (x1 + x2) >= 0.3 - 1e-12  # rounding down kept the floor
    price = price_of(result, "fairness floor 'migration_reach'")
    assert price.status == "binds" and price.kind == "contact_floor"
    assert price.stated == "30% of contacts in group 'migration_background'"
    assert price.dual == pytest.approx(-1000 * 0.01 / 0.6 / 100, rel=1e-3)
    assert price.cost == pytest.approx(20 - 50 / 3, rel=1e-6)
    half = paired_half_width(1000 / 3, -1000 / 3)
    assert (price.lo, price.hi) == (pytest.approx(price.cost - half, rel=1e-6),
                                    pytest.approx(price.cost + half, rel=1e-6))
    assert price.cost_share == pytest.approx((20 - 50 / 3) / 20, rel=1e-6)
    assert "holding fairness floor 'migration_reach' at 30% of contacts in group 'migration_background' costs 3.3 " \
           "expected conversions [2.4, 4.3] (17%, 80% interval)" in price.text


def test_a_spend_share_floor_over_a_group_counts_each_segments_spend_times_its_share():
    # S1 only on meta (EUR 0.10), S2 only on flyer (EUR 0.20). 30% of EUR 100 in the group:
    # 0.1 e1 + 0.7 e2 >= 0.3 x 100 with e1 + e2 = 100 -> e2 = 33.3: 666.7 contacts in S1, 166.7 in S2,
    # 13.33 + 1.67 = 15 conversions against 20; V = 0.2 e1 + 0.05 e2 -> dV/ds = -0.15 x 100 / 0.6 = -25 per unit.
    result = plan(two_segments(channels=("meta", "flyer")), budget=100.0, costs=costs_for(meta=0.1, flyer=0.2),
                  policy=policy(fairness_floors=[floor("spend_share")]))
    cells = result.cells.set_index("segment")
    spend = cells["spend"]
    assert (0.1 * spend["S1"] + 0.7 * spend["S2"]) / spend.sum() >= 0.3 - 1e-12
    assert result.totals.expected_conversions == pytest.approx(15.0, abs=0.1)  # whole people, the floor kept
    price = price_of(result, "fairness floor 'migration_reach'")
    assert price.status == "binds" and price.kind == "spend_floor"
    assert price.dual == pytest.approx(-0.25, rel=1e-3)
    assert price.cost == pytest.approx(5.0, rel=1e-6)
    half = paired_half_width(1000 / 3, -500 / 3)
    assert price.hi - price.cost == pytest.approx(half, rel=1e-6)


def test_a_conversion_share_floor_over_a_group_counts_each_segments_conversions_times_its_share():
    # 0.1 x 0.02 x1 + 0.7 x 0.01 x2 >= 0.3 (0.02 x1 + 0.01 x2) -> x2 >= x1: 500 each, 10 + 5 = 15 conversions.
    # With r = x2 / x1 = (0.02 s - 0.002) / (0.007 - 0.01 s), V = 1000 (0.02 + 0.01 r) / (1 + r):
    # dV/ds = 1000 x -0.01 / (1 + r)^2 x dr/ds = -10 / 4 x 7.5 = -18.75 per unit share.
    result = plan(two_segments(), budget=100.0, costs=costs_for(meta=0.1),
                  policy=policy(fairness_floors=[floor("conversion_share")]))
    cells = result.cells.set_index("segment")
    conv = cells["expected_conversions"]
    assert (0.1 * conv["S1"] + 0.7 * conv["S2"]) / conv.sum() >= 0.3 - 1e-12
    assert cells.loc["S1", "contacts"] == 500 and cells.loc["S2", "contacts"] == 500
    price = price_of(result, "fairness floor 'migration_reach'")
    assert price.kind == "conversion_floor" and price.status == "binds"
    assert price.dual == pytest.approx(-0.1875, rel=1e-3)
    assert price.cost == pytest.approx(5.0, rel=1e-6)
    assert price.hi - price.cost == pytest.approx(paired_half_width(500, -500), rel=1e-6)


def test_a_confident_conversion_floor_over_a_group_keeps_a_margin_and_says_how_likely_it_holds():
    effects = two_segments()
    confident = plan(effects, budget=100.0, costs=costs_for(meta=0.1),
                     policy=policy(fairness_floors=[floor("conversion_share", confidence=0.9)], floor_draws=4))
    expected = plan(effects, budget=100.0, costs=costs_for(meta=0.1),
                    policy=policy(fairness_floors=[floor("conversion_share")]))
    cells = confident.cells.set_index("segment")
    assert cells.loc["S2", "contacts"] > 500  # the margin moves contacts towards the group
    assert confident.totals.expected_conversions < expected.totals.expected_conversions
    note = next(n for n in confident.notes if n.startswith("conversion floor 'migration_reach'"))
    probability = float(note.split("probability ")[1].split("%")[0]) / 100
    assert probability >= 0.89
    # the price is read at the plan with its margin: the floor costs more than in expectation
    assert price_of(confident, "fairness floor 'migration_reach'").cost > price_of(
        expected, "fairness floor 'migration_reach'").cost


def test_a_coverage_floor_gives_every_area_its_contacts_and_its_price_is_hand_computed():
    # Delft: S1 (40% in the group), Leiden: S2 (50%). Every municipality gets >= 200 contacts with the group:
    # x1 >= 500, x2 >= 400 -> x1 = 600, x2 = 400: 12 + 4 = 16 conversions against 20. Only Leiden's row binds:
    # one more contact there takes 2 from S1 (-0.04) and gives 2 to S2 (+0.02): -2 conversions per 100 contacts.
    effects = two_segments(group=(0.4, 0.5), municipality=("Delft", "Leiden"))
    cover = {"name": "every_municipality", "area": "municipality", "group": "migration_background",
             "min_contacts": 200}
    result = plan(effects, budget=100.0, costs=costs_for(meta=0.1), policy=policy(coverage_floors=[cover]))
    cells = result.cells.set_index("segment")
    assert (cells.loc["S1", "contacts"], cells.loc["S2", "contacts"]) == (600, 400)
    price = price_of(result, "coverage floor 'every_municipality'")
    assert price.kind == "coverage" and price.status == "binds"
    assert price.stated == "200 contacts with people in group 'migration_background' in each of 2 municipality area(s)"
    assert price.dual == pytest.approx(-2.0, rel=1e-3)
    assert price.cost == pytest.approx(4.0, rel=1e-6)
    assert price.hi - price.cost == pytest.approx(paired_half_width(400, -400), rel=1e-6)


@pytest.mark.parametrize(("kind", "share", "budget"), [("conversion_share", 0.55, 40.0), ("spend_share", 0.7, 40.37)])
def test_keeping_a_share_floor_through_the_rounding_takes_no_contact_a_covered_area_needs(kind, share, budget):
    # F holds the floor; Gouda's A (nearly no effect) is kept at 100 contacts by a coverage floor. Rounding down
    # leaves the floor a hair short, and the cheapest contacts to give up, A's, are the ones the area needs
    # (without the guard A lost all 100 under the conversion floor, 1 under the spend floor): B gives them up
    effects = pd.DataFrame({
        "segment": ["F", "B", "A"], "size": [1000, 1000, 1000], "arm": ["m@meta"] * 3, "message": ["m"] * 3,
        "channel": ["meta"] * 3, "effect": [0.01, 0.02, 0.00001], "effect_sd": [0.001] * 3, "base_rate": [0.01] * 3,
        "municipality": ["Delft", "Leiden", "Gouda"], "priority": ["yes", "no", "no"]})
    pol = policy(fairness_floors=[{"name": "f", "where": {"priority": "yes"}, "kind": kind, "min_share": share}],
                 coverage_floors=[{"name": "gouda", "area": "municipality", "areas": ["Gouda"], "min_contacts": 100}])
    result = plan(effects, budget=budget, costs=costs_for(meta=0.1), policy=pol, prices=False)
    cells = result.cells.set_index("segment")
    assert result.status == "optimal" and cells.loc["A", "contacts"] == 100
    counted = cells["expected_conversions"] if kind == "conversion_share" else cells["spend"]
    assert counted["F"] >= share * counted.sum() * (1 - 1e-9)


def overlapping_floors_world(seed: int, n: int = 24) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    segments = pd.DataFrame({"segment": [f"s{i}" for i in range(n)], "size": rng.integers(100, 900, n),
                             "gender": rng.choice(["female", "male"], n),
                             "age_band": rng.choice(["25-34", "45-54", "18-24", "55-67"], n),
                             "group__g": rng.uniform(0.2, 0.7, n).round(3)})
    parts = []
    for channel in ("meta", "flyer"):
        part = segments.assign(message="m", channel=channel, arm=f"m@{channel}")
        part["effect"] = rng.normal(0.01, 0.006, n)
        part["effect_sd"] = 0.001
        part["base_rate"] = 0.01
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize(("seed", "budget"), [(11, 80.0), (56, 35.0)])
def test_keeping_one_floor_through_the_rounding_does_not_take_another_down(seed, budget):
    # women 40% and 45-54 30% of spend, and a group floor every cell counts towards: keeping the women's floor
    # took contacts from men of 45-54, keeping theirs from young women, each round more (the women's share
    # ended at 0% and the plan spent EUR 4 of 80, seed 11); now cells no other floor needs give them up first
    costs = CostCatalogue.model_validate({"channels": {
        "meta": {"cost_per_contact": 0.03,
                 "tiers": [{"share": 0.4, "multiplier": 1.0}, {"share": 0.3, "multiplier": 1.8}]},
        "flyer": {"cost_per_contact": 0.07, "tiers": [{"share": 0.55, "multiplier": 1.0}]}}})
    floors = [{"name": "women", "where": {"gender": "female"}, "kind": "spend_share", "min_share": 0.4},
              {"name": "old", "where": {"age_band": "45-54"}, "kind": "spend_share", "min_share": 0.3},
              {"name": "g", "group": "g", "kind": "contact_share", "min_share": 0.1}]
    effects = overlapping_floors_world(seed)
    result = plan(effects, budget=budget, costs=costs, policy=PlanningPolicy(holdout_share=0.1, exploration_share=0.0,
                                                                            fairness_floors=floors), prices=False)
    cells = result.cells.merge(effects[["segment", "arm", "gender", "age_band"]], on=["segment", "arm"])
    spend = cells["spend"].sum()
    assert result.status == "optimal" and spend >= 0.98 * budget
    assert cells.loc[cells["gender"] == "female", "spend"].sum() >= 0.4 * spend * (1 - 1e-9)
    assert cells.loc[cells["age_band"] == "45-54", "spend"].sum() >= 0.3 * spend * (1 - 1e-9)


def test_a_coverage_floor_over_a_group_with_nobody_is_neither_planned_nor_judged():
    # nobody in either segment belongs to the group: no area needs covering, so the plan is the plan without
    # the floor, and scoring it reports no verdict for the floor (rather than a NaN share that "fails")
    effects = two_segments(group=(0.0, 0.0), municipality=("Delft", "Leiden"))
    cover = {"name": "every_municipality", "area": "municipality", "group": "migration_background",
             "min_contacts": 200}
    result = plan(effects, budget=100.0, costs=costs_for(meta=0.1), policy=policy(coverage_floors=[cover]))
    free = plan(effects, budget=100.0, costs=costs_for(meta=0.1), policy=policy())
    assert result.cells["contacts"].tolist() == free.cells["contacts"].tolist()
    judged = evaluate_plan(result.cells, effects, policy=policy(coverage_floors=[cover]))
    assert "every_municipality" not in judged["floors"]


def test_a_coverage_floor_beyond_reach_names_the_area_and_how_far_it_falls_short():
    effects = two_segments(group=(0.4, 0.5), municipality=("Delft", "Leiden"))
    cover = {"name": "every_municipality", "area": "municipality", "group": "migration_background",
             "min_contacts": 450}  # Delft's 1,000 people hold 400 of the group
    result = plan(effects, budget=100.0, costs=costs_for(meta=0.1), policy=policy(coverage_floors=[cover]))
    assert result.status == "infeasible"
    assert ("coverage floor 'every_municipality' needs 450 contacts in municipality 'Delft' but at most 400 can be "
            "reached there under the reach and holdout caps (short by 50)") in result.conflicts
    assert price_of(result, "coverage floor 'every_municipality'").status == "violated"


def test_channel_limits_are_priced_by_hand():
    # S1 on meta (EUR 0.10, 0.2 conversions per EUR), S2 on flyer (EUR 0.20, 0.05 per EUR); EUR 100.
    # min_spend flyer EUR 40: 600 + 200 contacts, 12 + 2 = 14 conversions against 20; each EUR moved from meta to
    # flyer costs 0.15. max_spend meta EUR 50: 500 + 250 contacts, 10 + 2.5 = 12.5; each EUR more buys 0.15.
    effects, costs = two_segments(channels=("meta", "flyer")), costs_for(meta=0.1, flyer=0.2)
    minimum = plan(effects, budget=100.0, costs=costs, policy=policy(min_spend={"flyer": 40.0}))
    price = price_of(minimum, "min_spend 'flyer'")
    assert (price.status, price.kind, price.stated) == ("binds", "channel_min", "EUR 40")
    assert price.dual == pytest.approx(-150.0, rel=1e-3)
    assert price.cost == pytest.approx(6.0, rel=1e-6)
    assert price.hi - price.cost == pytest.approx(paired_half_width(400, -200), rel=1e-6)
    maximum = plan(effects, budget=100.0, costs=costs, policy=policy(max_spend={"meta": 50.0}))
    price = price_of(maximum, "max_spend 'meta'")
    assert (price.status, price.kind) == ("binds", "channel_max")
    assert price.dual == pytest.approx(150.0, rel=1e-3)
    assert price.cost == pytest.approx(7.5, rel=1e-6)
    assert "each EUR 1,000 more max_spend would buy 150.00 expected conversions" in price.text


def test_a_contact_floor_beyond_what_the_segments_hold_is_explained():
    # no segment is 80% in the group; alone the floor keeps the plan empty (a share rule holds at zero),
    # with a EUR 50 minimum the 500 contacts it forces are best all in S2: 70%, short by 0.1 x 500 = 50
    result = plan(two_segments(), budget=100.0, costs=costs_for(meta=0.1),
                  policy=policy(fairness_floors=[floor("contact_share", 0.8)], min_spend={"meta": 50.0}))
    assert result.status == "infeasible"
    assert ("fairness floor 'migration_reach' needs 80% of contacts but gets 70% (short by 50 contacts); it "
            "conflicts with min_spend 'meta' (EUR 50)") in result.conflicts, result.conflicts
    cells = result.cells.set_index("segment")["contacts"]
    assert cells["S1"] == 0 and cells["S2"] == 500  # the relaxed plan comes as close as it can


def test_a_coverage_floor_on_persona_segments_counts_no_area_and_says_so():
    personas = two_segments(municipality=("any", "any"))
    cover = {"name": "towns", "area": "municipality", "min_contacts": 10}
    with pytest.raises(DataError, match=r"coverage_floors\[0\] 'towns': no area of column 'municipality'"):
        plan(personas, budget=100.0, costs=costs_for(meta=0.1), policy=policy(coverage_floors=[cover]))


def test_a_group_floor_works_on_persona_segments_where_a_where_floor_selects_nothing():
    personas = two_segments().assign(gender="any", group__women=[0.2, 0.9])
    women_by_column = {"name": "women", "where": {"gender": "female"}, "kind": "contact_share", "min_share": 0.4}
    with pytest.raises(DataError, match="selects no segment"):
        plan(personas, budget=100.0, costs=costs_for(meta=0.1), policy=policy(fairness_floors=[women_by_column]))
    women_by_group = {"name": "women", "group": "women", "kind": "contact_share", "min_share": 0.4}
    result = plan(personas, budget=100.0, costs=costs_for(meta=0.1), policy=policy(fairness_floors=[women_by_group]))
    cells = result.cells.set_index("segment")["contacts"]
    assert (0.2 * cells["S1"] + 0.9 * cells["S2"]) / cells.sum() >= 0.4 - 1e-12
    assert cells["S2"] == pytest.approx(1000 * 0.2 / 0.7, abs=1)


def test_where_floors_plan_exactly_as_group_floors_with_whole_segments():
    effects = two_segments(group=(1.0, 0.0)).assign(priority=["yes", "no"])
    by_where = {"name": "f", "where": {"priority": "yes"}, "kind": "spend_share", "min_share": 0.4}
    by_group = {"name": "f", "group": "migration_background", "kind": "spend_share", "min_share": 0.4}
    costs = costs_for(meta=0.1)
    a = plan(effects.assign(effect=[0.01, 0.02]), budget=100.0, costs=costs, policy=policy(fairness_floors=[by_where]))
    b = plan(effects.assign(effect=[0.01, 0.02]), budget=100.0, costs=costs, policy=policy(fairness_floors=[by_group]))
    pd.testing.assert_frame_equal(a.cells, b.cells)
    assert price_of(a, "fairness floor 'f'").cost == pytest.approx(price_of(b, "fairness floor 'f'").cost)


# ---------------------------------------------------------------------------------------------
# prices: what they do not change, and how fast
# ---------------------------------------------------------------------------------------------


def test_pricing_the_rules_leaves_the_plan_as_it_is():
    effects = two_segments()
    pol = policy(fairness_floors=[floor("contact_share")], max_segment_share=0.8, min_spend={"meta": 10.0})
    prepared = prepare_plan(effects, costs=costs_for(meta=0.1), policy=pol)
    with_prices = prepared.plan(budget=100.0)
    again = prepared.plan(budget=100.0, prices=False)
    fresh = plan(effects, budget=100.0, costs=costs_for(meta=0.1), policy=pol, prices=False)
    pd.testing.assert_frame_equal(with_prices.cells, again.cells)
    pd.testing.assert_frame_equal(with_prices.cells, fresh.cells)
    assert again.rules == () and len(with_prices.rules) == 4  # budget, min_spend, segment cap, floor


def small_world(seed: int, n_segments: int = 6) -> pd.DataFrame:
    """Segments x 2 messages x 2 channels, each segment with a gender and a migration-background share."""
    rng = np.random.default_rng(seed)
    segments = pd.DataFrame({
        "segment": [f"s{i}" for i in range(n_segments)],
        "size": rng.integers(500, 3000, n_segments),
        "gender": np.resize(["female", "male"], n_segments),
        "municipality": np.resize(["Delft", "Leiden", "Gouda"], n_segments),
        "group__migration_background": rng.uniform(0.05, 0.8, n_segments).round(3),
    })
    parts = []
    for message in ("a", "b"):
        for channel in ("meta", "flyer"):
            part = segments.assign(message=message, channel=channel, arm=f"{message}@{channel}")
            part["effect"] = rng.normal(0.01, 0.006, n_segments)
            part["effect_sd"] = rng.uniform(0.001, 0.004, n_segments)
            part["base_rate"] = 0.01
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


RULES = {
    "min_spend 'flyer'": {"min_spend": {"flyer": 150.0}},
    "max_spend 'meta'": {"max_spend": {"meta": 120.0}},
    "max_segment_share": {"max_segment_share": 0.3},
    "fairness floor 'women'": {"fairness_floors": [{"name": "women", "where": {"gender": "female"},
                                                    "kind": "spend_share", "min_share": 0.55}]},
    "fairness floor 'migration_reach'": {"fairness_floors": [floor("contact_share", 0.45)]},
    "coverage floor 'towns'": {"coverage_floors": [{"name": "towns", "area": "municipality", "min_contacts": 400}]},
}


@pytest.mark.parametrize("seed", [0, 1, 3, 4])  # worlds where the rules hold together (seeds 2 and 5 conflict)
def test_a_rules_cost_is_what_the_plan_without_it_buys_more_and_a_slack_rule_costs_nothing(seed):
    costs = CostCatalogue.model_validate({"channels": {
        "meta": {"cost_per_contact": 0.08,
                 "tiers": [{"share": 0.5, "multiplier": 1.0}, {"share": 0.3, "multiplier": 2.0}]},
        "flyer": {"cost_per_contact": 0.12, "tiers": [{"share": 0.6, "multiplier": 1.0}]},
    }})
    effects = small_world(seed)
    fields: dict = {"fairness_floors": [], "coverage_floors": []}
    for rule in RULES.values():
        for key, value in rule.items():
            fields[key] = fields.get(key, []) + value if isinstance(value, list) else value
    full = policy(**fields)
    result = plan(effects, budget=400.0, costs=costs, policy=full)
    assert result.status == "optimal"
    priced = {r.rule: r for r in result.rules}
    assert set(RULES) <= set(priced)
    for name, rule in RULES.items():
        kept = {k: ([f for f in v if f not in rule.get(k, [])] if isinstance(v, list) else v)
                for k, v in fields.items() if k not in rule or isinstance(rule[k], list)}
        without = plan(effects, budget=400.0, costs=costs, policy=policy(**kept), prices=False)
        gained = without.totals.expected_conversions - result.totals.expected_conversions
        price = priced[name]
        # the cost is the LPs' difference; the cells round contacts down (less than one contact per cell)
        assert price.cost == pytest.approx(gained, abs=0.05 + 1e-3 * result.totals.expected_conversions), name
        if price.status == "slack":
            assert price.cost == 0.0 and abs(gained) <= 0.05 + 1e-3 * result.totals.expected_conversions, name
        else:
            assert price.cost >= -1e-6 and price.lo <= price.cost <= price.hi, name


# ---------------------------------------------------------------------------------------------
# bad declarations name the file, the key and what was expected
# ---------------------------------------------------------------------------------------------


def test_a_floor_above_100_percent_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("fairness_floors:\n  - {name: reach, group: migration_background, kind: contact_share, "
                    "min_share: 1.3}\n")
    with pytest.raises(SpecError, match=r"policy\.yaml: invalid PlanningPolicy: fairness_floors\.0\.min_share: "
                                        r"Input should be less than or equal to 1"):
        load_spec(path, PlanningPolicy)


def test_a_floor_needs_either_where_or_group_and_confidence_is_for_conversions_only():
    with pytest.raises(ValueError, match="give either 'where'"):
        PlanningPolicy(fairness_floors=[{"name": "x", "kind": "spend_share", "min_share": 0.2}])
    with pytest.raises(ValueError, match="give either 'where'"):
        PlanningPolicy(fairness_floors=[{"name": "x", "where": {"gender": "female"}, "group": "women",
                                         "kind": "spend_share", "min_share": 0.2}])
    with pytest.raises(ValueError, match="applies to conversion_share floors only"):
        PlanningPolicy(fairness_floors=[floor("contact_share", confidence=0.9)])


def test_a_floor_over_a_group_the_table_has_no_composition_of_names_the_policy_key():
    with pytest.raises(DataError, match=r"serve/policy\.yaml fairness_floors\[0\] 'migration_reach' counts priority "
                                        r"group 'migration_background', but seg\.csv has no column "
                                        r"'group__migration_background'; expected a group of serve/groups\.yaml"):
        plan(two_segments().drop(columns="group__migration_background"), budget=100.0, costs=costs_for(meta=0.1),
             policy=policy(fairness_floors=[floor("contact_share")]), source="seg.csv",
             policy_source="serve/policy.yaml")


def test_a_coverage_floor_on_a_channel_that_targets_nothing_names_the_key_and_the_channels():
    cover = {"name": "flyers_everywhere", "area": "municipality", "channels": ["flyer"], "min_contacts": 10}
    with pytest.raises(DataError, match=r"serve/policy\.yaml coverage_floors\[0\] 'flyers_everywhere' channels: "
                                        r"'flyer' target\(s\) nothing in effects; expected channels with arms in the "
                                        r"table: meta"):
        plan(two_segments(), budget=100.0, costs=costs_for(meta=0.1, flyer=0.2),
             policy=policy(coverage_floors=[cover]), policy_source="serve/policy.yaml")


def test_a_coverage_floor_over_a_missing_area_column_or_area_names_the_key():
    cover = {"name": "c", "area": "neighbourhood", "min_contacts": 10}
    with pytest.raises(DataError, match=r"coverage_floors\[0\] 'c': area column 'neighbourhood' is missing"):
        plan(two_segments(), budget=100.0, costs=costs_for(meta=0.1), policy=policy(coverage_floors=[cover]))
    cover = {"name": "c", "area": "municipality", "areas": ["Delft", "Gouda"], "min_contacts": 10}
    with pytest.raises(DataError, match=r"area\(s\) 'Gouda' have no segment"):
        plan(two_segments(), budget=100.0, costs=costs_for(meta=0.1), policy=policy(coverage_floors=[cover]))


def test_a_composition_share_outside_0_and_1_breaks_the_effects_contract():
    with pytest.raises(SchemaError, match="group__migration_background"):
        plan(two_segments(group=(0.1, 1.7)), budget=100.0, costs=costs_for(meta=0.1), policy=policy())


def test_a_coverage_floor_over_a_group_nobody_belongs_to_has_nothing_to_hold():
    """A region without poorer neighbourhoods: no area needs covering, so the plan is the one without the floor;
    a share floor over such a group still fails, since no plan can give it a share."""
    effects = two_segments(group=(0.0, 0.0), municipality=("Delft", "Gouda"))
    cover = {"name": "migrants_everywhere", "area": "municipality", "group": "migration_background",
             "min_contacts": 50}
    result = plan(effects, budget=100.0, costs=costs_for(meta=0.1), policy=policy(coverage_floors=[cover]))
    free = plan(effects, budget=100.0, costs=costs_for(meta=0.1), policy=policy())
    assert result.status == "optimal"
    pd.testing.assert_frame_equal(result.cells, free.cells)
    assert not any(r.kind == "coverage" for r in result.rules)
    with pytest.raises(DataError, match="which has no people in any segment"):
        plan(effects, budget=100.0, costs=costs_for(meta=0.1), policy=policy(fairness_floors=[floor("contact_share")]))
