"""Targeting follows the channel: a channel's line is bought whole, at its channel's minimum or not at all.

Hand-computed small worlds (uplift.allocation.channellines, uplift.allocation.lineminimum).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.allocation import plan
from uplift.allocation.channellines import channel_lines, line_minimum
from uplift.allocation.effects import check_effects
from uplift.celltargeting import OTHER as CELL_OTHER
from uplift.segments.assign import OTHER
from uplift.specs.planning import ChannelCost, CostCatalogue, PlanningPolicy

FEMALE = "age_band=25-34|gender=female|municipality=Delft"
MALE = "age_band=25-34|gender=male|municipality=Delft"


def _costs(**channels: ChannelCost) -> CostCatalogue:
    return CostCatalogue(channels=channels)


def _flyer(**extra) -> ChannelCost:
    return ChannelCost(cost_per_contact=0.1, tiers=({"share": 0.5, "multiplier": 1.0},), targeting=("neighbourhood",),
                       handoff="print_run", **extra)


def _ads(**extra) -> ChannelCost:
    return ChannelCost(cost_per_contact=1.0, tiers=({"share": 1.0, "multiplier": 1.0},),
                       targeting=("age_band", "gender", "municipality"), handoff="ad_sets", **extra)


def _table(rows: list[tuple[str, int, str, float, float]]) -> pd.DataFrame:
    """(segment, size, channel, effect, effect_sd) rows of message 'm', with the segment's columns."""
    frame = pd.DataFrame(rows, columns=["segment", "size", "channel", "effect", "effect_sd"])
    frame["message"] = "m"
    frame["arm"] = "m@" + frame["channel"]
    parts = frame["segment"].str.split("|", expand=True)
    for k, name in enumerate(("age_band", "gender", "municipality")):
        frame[name] = parts[k].str.split("=").str[1]
    frame["kind"] = "targetable"
    return frame


_POLICY = PlanningPolicy(holdout_share=0.0, exploration_share=0.0, max_segment_share=1.0)


def test_the_merged_value_is_the_segment_tables():
    assert CELL_OTHER == OTHER


def test_a_flyer_line_mixes_its_two_cells_by_their_people():
    """Women 300 people, effect 0.010; men 100, effect 0.002; the flyer cannot tell them apart. Its line has
    400 people, reach 0.5 x 400 = 200 contacts at EUR 0.10: EUR 100 buys all of it, 150 women and 50 men
    (3:1, their people), 0.010 x 150 + 0.002 x 50 = 1.6 conversions; the line's effect per contact is
    0.75 x 0.010 + 0.25 x 0.002 = 0.008, and the women's floor counts 75% of the contacts."""
    table = _table([(FEMALE, 300, "flyer", 0.010, 0.002), (MALE, 100, "flyer", 0.002, 0.004)])
    policy = PlanningPolicy(holdout_share=0.0, exploration_share=0.0, max_segment_share=1.0,
                            fairness_floors=[{"name": "women", "where": {"gender": "female"}, "kind": "contact_share",
                                              "min_share": 0.5}])
    result = plan(table, budget=1000.0, costs=_costs(flyer=_flyer()), policy=policy, prices=False, references=False)
    cells = result.cells.set_index("segment")
    assert cells.loc[FEMALE, "contacts"] == 150 and cells.loc[MALE, "contacts"] == 50
    assert result.totals.spend == pytest.approx(20.0)
    assert result.totals.expected_conversions == pytest.approx(1.6)
    assert result.totals.expected_conversions / result.totals.contacts == pytest.approx(0.008)
    # the interval adds up the cells' own errors: sd = sqrt((150 x 0.002)^2 + (50 x 0.004)^2)
    sd = np.hypot(150 * 0.002, 50 * 0.004)
    assert (result.totals.hi - result.totals.lo) / 2 == pytest.approx(1.2815516 * sd, rel=1e-4)
    # the floor counts the line's contacts where they land: 75% of them are women's
    assert [(f.name, f.status) for f in result.floors] == [("women", "held")]
    assert result.floors[0].share == pytest.approx(0.75)
    # a floor of 80% women cannot be met by a line that reaches a quarter men: nothing is bought
    strict = policy.model_copy(update={"fairness_floors": (policy.fairness_floors[0].model_copy(
        update={"min_share": 0.8}),)})
    assert plan(table, budget=1000.0, costs=_costs(flyer=_flyer()), policy=strict, prices=False,
                references=False).totals.contacts == 0


def test_a_line_with_a_negative_mix_is_not_bought_and_a_positive_one_funds_its_negative_cell():
    costs = _costs(flyer=_flyer())
    worse = _table([(FEMALE, 100, "flyer", 0.002, 0.001), (MALE, 300, "flyer", -0.002, 0.001)])
    assert plan(worse, budget=100.0, costs=costs, policy=_POLICY, prices=False, references=False).totals.contacts == 0
    better = _table([(FEMALE, 300, "flyer", 0.004, 0.001), (MALE, 100, "flyer", -0.002, 0.001)])
    cells = plan(better, budget=100.0, costs=costs, policy=_POLICY, prices=False, references=False).cells
    assert cells.set_index("segment")["contacts"].to_dict() == {FEMALE: 150, MALE: 50}


def test_lines_follow_each_channels_targeting():
    table = check_effects(_table([(FEMALE, 300, "flyer", 0.01, 0.001), (MALE, 100, "flyer", 0.01, 0.001),
                                  (FEMALE, 300, "meta", 0.01, 0.001), (MALE, 100, "meta", 0.01, 0.001)]),
                          _costs(flyer=_flyer(), meta=_ads()))
    lines = channel_lines(table, _costs(flyer=_flyer(), meta=_ads()))
    assert lines.line[0] == lines.line[1] and lines.line[2] != lines.line[3]  # flyer: one line; ads: one per cell
    assert lines.share.tolist() == [0.75, 0.25, 1.0, 1.0]
    assert lines.coarse.tolist() == [True, True, False, False]


def test_a_persona_table_has_no_lines():
    table = check_effects(pd.DataFrame({"segment": ["persona=a", "persona=b"], "size": [10, 10], "arm": "m@flyer",
                                        "message": "m", "channel": "flyer", "effect": 0.01, "effect_sd": 0.001}),
                          _costs(flyer=_flyer()))
    lines = channel_lines(table, _costs(flyer=_flyer()))
    assert (lines.line == -1).all() and not lines.linked


def test_line_minimum_by_hand():
    # EUR 30 at EUR 1 a contact is 30 contacts, plus one per cell for the rounding to whole contacts
    assert line_minimum(_ads(min_line_spend=30.0), people=100, cells=1) == 31
    # tiers 0.4 x 100 at EUR 1 and 0.3 x 100 at EUR 2: EUR 60 buys 40 + 10 contacts
    two = ChannelCost(cost_per_contact=1.0,
                      tiers=({"share": 0.4, "multiplier": 1.0}, {"share": 0.3, "multiplier": 2.0}),
                      targeting=("age_band", "gender", "municipality"), handoff="ad_sets", min_line_spend=60.0)
    assert line_minimum(two, people=100, cells=2) == 52
    assert line_minimum(two, people=10, cells=1) == float("inf")  # 10 people cannot take EUR 60
    assert line_minimum(_flyer(min_print_run=100, people_per_copy=1.6), people=1000, cells=3) == 163
    assert line_minimum(_ads(), people=100, cells=1) == 0


@pytest.mark.parametrize(("budget", "b_contacts"), [(120.0, 31), (110.0, 0)])
def test_a_line_just_under_its_minimum_goes_to_the_minimum_or_to_zero_whichever_buys_more(budget, b_contacts):
    """Ad sets at EUR 1 a contact, EUR 30 at least (31 contacts with the rounding allowance). A: 100 people,
    effect 0.02; B: 100 people, effect 0.01. The LP buys all of A and B with what is left (20 or 10 contacts,
    under the minimum). At EUR 120: B at 31 and A at 89 buy 0.31 + 1.78 = 2.09 > 2.0 (A alone): B goes up to
    its minimum. At EUR 110: 0.31 + 1.58 = 1.89 < 2.0: B goes to 0."""
    a = "age_band=25-34|gender=female|municipality=Delft"
    b = "age_band=35-44|gender=female|municipality=Delft"
    table = _table([(a, 100, "meta", 0.02, 0.001), (b, 100, "meta", 0.01, 0.001)])
    costs = _costs(meta=_ads(min_line_spend=30.0))
    result = plan(table, budget=budget, costs=costs, policy=_POLICY, prices=True, references=False)
    contacts = result.cells.set_index("segment")["contacts"]
    assert contacts[b] == b_contacts
    assert contacts[a] == (89 if b_contacts else 100)
    expected = 0.02 * contacts[a] + 0.01 * contacts[b]
    assert result.totals.expected_conversions == pytest.approx(expected)
    # the prices come from the LP with the chosen lines fixed: at EUR 120 the budget binds and a EUR 1,000 more
    # would buy A's 0.02 a contact; at EUR 110 B is closed, A is full and EUR 10 is left
    budget_price = next(r for r in result.rules if r.kind == "budget")
    assert budget_price.status == ("binds" if b_contacts else "slack")
    assert budget_price.dual == pytest.approx(20.0 if b_contacts else 0.0, rel=1e-3)
    without = plan(table, budget=budget, costs=_costs(meta=_ads()), policy=_POLICY, prices=False, references=False)
    assert without.cells.set_index("segment")["contacts"][b] == budget - 100  # the LP alone: under the minimum


def test_exploration_buys_whole_lines_within_its_budget():
    from uplift.allocation.explore import thompson_allocation
    from uplift.allocation.problem import build_problem

    rows = [(f"age_band={a}|gender={g}|municipality=Delft", 100, "meta", 0.01 + 0.002 * k, 0.01)
            for k, (a, g) in enumerate([(a, g) for a in ("25-34", "35-44", "45-54") for g in ("female", "male")])]
    rows += [(s, 100, "flyer", 0.01, 0.01) for s, *_ in rows]
    costs = _costs(meta=_ads(min_line_spend=30.0), flyer=_flyer())
    policy = PlanningPolicy(holdout_share=0.1, exploration_share=0.1, exploration_draws=8, max_segment_share=1.0)
    problem = build_problem(check_effects(_table(rows), costs), costs, policy)
    lines = problem.channel_lines
    for budget in (20.0, 70.0, 200.0, 2000.0):
        explored = thompson_allocation(problem, budget=budget)
        totals = lines.totals(explored.x)
        assert problem.spend(explored.y) <= budget * (1 + 1e-9)
        per_segment = np.bincount(problem.seg, weights=explored.x, minlength=len(problem.segments))
        assert (per_segment <= problem.contact_cap * (1 + 1e-9)).all()
        assert ((totals < 1e-9) | (totals >= lines.minimum * (1 - 1e-9))).all(), budget
        flyer = problem.frame["channel"].to_numpy() == "flyer"  # one line over six cells of 100 people: even
        assert np.allclose(explored.x[flyer], explored.x[flyer][0])
    assert lines.totals(thompson_allocation(problem, budget=70.0).x).max() >= 31  # a line raised to its minimum
