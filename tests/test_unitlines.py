"""A flyer line is a neighbourhood and a print run: the planner buys flyers per (print unit, message).

Hand-computed small worlds (uplift.places, uplift.allocation.unitrows and the planner with ``places``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.allocation import plan
from uplift.allocation.effects import check_effects, total_variance
from uplift.allocation.explore import interval_z
from uplift.allocation.problem import build_problem
from uplift.allocation.unitrows import check_places, split_by_places
from uplift.errors import DataError, SchemaError
from uplift.places import places_table
from uplift.segments.composition import PriorityGroups
from uplift.specs.groups import GroupSpec
from uplift.specs.planning import ChannelCost, CostCatalogue, PlanningPolicy
from uplift.specs.segments import SegmentSpec

WOMEN = "age_band=25-34|gender=female|municipality=Delft"
MEN = "age_band=25-34|gender=male|municipality=Delft"
POLICY = PlanningPolicy(holdout_share=0.0, exploration_share=0.0, max_segment_share=1.0)


def _flyer(**extra) -> ChannelCost:
    return ChannelCost(cost_per_contact=0.1, tiers=({"share": 0.5, "multiplier": 1.0},), targeting=("neighbourhood",),
                       handoff="print_run", **extra)


def _costs(**extra) -> CostCatalogue:
    return CostCatalogue(channels={"flyer": _flyer(**extra)})


def _table(load: float = 0.0) -> pd.DataFrame:
    """Women 300 people, 0.010 a contact (sd 0.002); men 300, 0.002 (sd 0.004); both in Delft; message 'm'."""
    frame = pd.DataFrame({"segment": [WOMEN, MEN], "size": [300, 300], "channel": "flyer", "message": "m",
                          "arm": "m@flyer", "effect": [0.010, 0.002], "effect_sd": [0.002, 0.004],
                          "age_band": "25-34", "gender": ["female", "male"], "municipality": "Delft",
                          "kind": "targetable"})
    if load:
        frame["calibration_load_1"] = load
    return frame


def _places() -> pd.DataFrame:
    """Delft's two neighbourhoods: 2611 holds 200 women and 50 men, 2612 100 women and 250 men; 2612 is the
    poorer one (all its people in the group 'poor')."""
    return pd.DataFrame({"segment": [WOMEN, MEN, WOMEN, MEN], "unit": ["pc_2611", "pc_2611", "pc_2612", "pc_2612"],
                         "municipality": "Delft", "postcodes": ["2611", "2611", "2612", "2612"],
                         "people": [200.0, 50.0, 100.0, 250.0], "group__poor": [0.0, 0.0, 1.0, 1.0]})


def test_the_planner_picks_the_neighbourhood_whose_mix_responds_best():
    """Reach 0.5 of each unit at EUR 0.10. Unit 2611's line: 100 women + 25 men a contact mix of
    (200 x 0.010 + 50 x 0.002) / 250 = 0.0084; 2612's: (100 x 0.010 + 250 x 0.002) / 350 = 0.0043. EUR 12.50 buys
    125 contacts: all of 2611, 100 x 0.010 + 25 x 0.002 = 1.05 conversions. As one municipality line the same
    contacts go 1:1 to women and men (62 + 62 after rounding), 0.744 conversions."""
    result = plan(_table(), budget=12.5, costs=_costs(), policy=POLICY, places=_places(), prices=False,
                  references=False)
    cells = result.cells.set_index("segment")
    assert cells.loc[WOMEN, "contacts"] == 100 and cells.loc[MEN, "contacts"] == 25
    assert result.totals.expected_conversions == pytest.approx(1.05)
    assert len(result.cells) == 2  # one row per cell of the table: no count per neighbourhood and cell
    lines = result.unit_lines
    assert lines[["unit", "contacts", "copies"]].values.tolist() == [["pc_2611", 125, 125]]
    assert lines["spend"].sum() == pytest.approx(result.totals.spend) == pytest.approx(12.5)
    whole = plan(_table(), budget=12.5, costs=_costs(), policy=POLICY, prices=False, references=False)
    assert whole.unit_lines is None
    assert whole.cells.set_index("segment")["contacts"].to_dict() == {WOMEN: 62, MEN: 62}
    assert whole.totals.expected_conversions == pytest.approx(0.744)


def test_a_split_plan_has_the_interval_of_the_same_contacts_unsplit():
    """EUR 30 buys every unit's reach: women 100 + 50, men 25 + 125. The sub-rows of a cell share its one error:
    the totals' interval is that of 150 women and 150 men contacts on the unsplit table (shared loading 0.001),
    wider than if each neighbourhood's part had an error of its own."""
    result = plan(_table(load=0.001), budget=30.0, costs=_costs(), policy=POLICY, places=_places(), prices=False,
                  references=True)
    cells = result.cells.set_index("segment")
    assert cells.loc[WOMEN, "contacts"] == 150 and cells.loc[MEN, "contacts"] == 150
    unsplit = build_problem(check_effects(_table(load=0.001), _costs()), _costs(), POLICY)
    sd = np.sqrt(total_variance(np.array([150.0, 150.0]), unsplit.own_sd, unsplit.shared))
    assert (result.totals.hi - result.totals.lo) / 2 == pytest.approx(interval_z(POLICY.interval) * sd, rel=1e-9)
    independent = np.sqrt(total_variance(np.array([100.0, 50.0, 25.0, 125.0]), unsplit.own_sd[[0, 0, 1, 1]],
                                         unsplit.shared[[0, 0, 1, 1]]))
    assert independent < sd * 0.95
    # each cell's interval is its sd times its contacts, as unsplit
    assert cells.loc[WOMEN, "hi"] - cells.loc[WOMEN, "lo"] == pytest.approx(2 * interval_z(POLICY.interval)
                                                                            * 0.002 * 150)
    assert set(result.references) == {"even", "single_best_message"}


def test_a_print_run_minimum_holds_per_unit():
    """Print runs of 100 copies of one contact (102 contacts with the rounding allowance of the line's two cells):
    EUR 9 buys 90 contacts, too few for any print run, so nothing; EUR 11 buys 110 in 2611, one print run."""
    costs = _costs(min_print_run=100)
    assert plan(_table(), budget=9.0, costs=costs, policy=POLICY, places=_places(), prices=False,
                references=False).totals.contacts == 0
    result = plan(_table(), budget=11.0, costs=costs, policy=POLICY, places=_places(), prices=False, references=False)
    assert result.unit_lines[["unit", "contacts", "copies"]].values.tolist() == [["pc_2611", 110, 110]]


def test_a_unit_too_small_for_a_print_run_is_passed_over_for_one_that_takes_it():
    """Print runs of 130 copies (132 contacts): 2611 reaches 125 and can never take one; 2612 reaches 175. EUR 14
    buys 140 contacts in 2612: 40 women and 100 men (its 100:250 people), 0.4 + 0.2 = 0.6 conversions."""
    result = plan(_table(), budget=14.0, costs=_costs(min_print_run=130), policy=POLICY, places=_places(),
                  prices=False, references=False)
    assert result.cells.set_index("segment")["contacts"].to_dict() == {WOMEN: 40, MEN: 100}
    assert result.totals.expected_conversions == pytest.approx(0.6)
    assert result.unit_lines[["unit", "copies"]].values.tolist() == [["pc_2612", 140]]


def test_a_group_floor_sees_the_poorer_neighbourhood():
    """70% of the spend on the poor (all of 2612's people). Without the floor EUR 25 buys 2611's 125 contacts and
    125 of 2612's; with it, x_2612 >= 0.7 (x_2611 + x_2612) leaves 2611 at most 0.43 x_2612: all 175 of 2612 and
    75 of 2611. As municipality lines no plan could tell the poorer neighbourhood apart."""
    policy = PlanningPolicy(holdout_share=0.0, exploration_share=0.0, max_segment_share=1.0,
                            fairness_floors=[{"name": "poor", "group": "poor", "kind": "spend_share",
                                              "min_share": 0.7}])
    table = _table().assign(group__poor=[0.4, 0.6])
    free = plan(table, budget=25.0, costs=_costs(), policy=POLICY, places=_places(), prices=False, references=False)
    # 2612's 125: 35.7 women and 89.3 men, each rounded down
    assert free.unit_lines.set_index("unit")["contacts"].to_dict() == {"pc_2611": 125, "pc_2612": 124}
    result = plan(table, budget=25.0, costs=_costs(), policy=policy, places=_places(), prices=False,
                  references=False)
    assert result.unit_lines.set_index("unit")["contacts"].to_dict() == {"pc_2611": 75, "pc_2612": 175}
    assert [(f.name, f.status) for f in result.floors] == [("poor", "held")]
    assert result.floors[0].share == pytest.approx(0.7)


def test_places_from_an_audience_merge_a_small_neighbourhood_and_never_show_it():
    """Delft: 2611 with 12 people, 2612 with 11, 2613 with 3 (under the threshold of 10): 2613 joins the smallest
    shown unit, 2612, as one merged unit; nobody is lost."""
    postcodes = ["2611"] * 12 + ["2612"] * 11 + ["2613"] * 3
    audience = pd.DataFrame({"person_id": [f"p{i}" for i in range(26)], "age": 30,
                             "gender": ["female", "male"] * 13, "municipality": "Delft", "neighbourhood": postcodes,
                             "income_band": ["low"] * 13 + ["high"] * 13})
    spec = SegmentSpec(dimensions=("age_band", "gender", "municipality"), min_size=1)
    groups = PriorityGroups(GroupSpec(groups=[{"name": "low_income", "rule": {"income_band": ["low"]}}]))
    places = places_table(audience, [WOMEN, MEN], spec, min_size=10, groups=groups)
    assert sorted(places["unit"].unique()) == ["delft_pc_2612_2613", "pc_2611"]
    assert places.groupby("unit")["people"].sum().min() >= 10
    assert places["people"].sum() == 26
    assert "2613" not in set(places.loc[places["unit"] == "pc_2611", "postcodes"])
    merged = places[places["unit"] == "delft_pc_2612_2613"]
    assert set(merged["postcodes"]) == {"2612+2613"}
    women_2611 = places[(places["unit"] == "pc_2611") & (places["segment"] == WOMEN)].iloc[0]
    assert women_2611["people"] == 6 and women_2611["group__low_income"] == pytest.approx(1.0)


def test_bad_places_name_the_file_and_column():
    with pytest.raises(SchemaError, match=r"places\.csv: missing column\(s\) people"):
        check_places(_places().drop(columns="people"), source="places.csv")
    with pytest.raises(SchemaError, match=r"aud\.csv: missing column\(s\) neighbourhood"):
        places_table(pd.DataFrame({"person_id": ["a"], "municipality": ["Delft"], "age": [30], "gender": ["male"]}),
                     [MEN], SegmentSpec(min_size=1), min_size=10, source="aud.csv")
    with pytest.raises(DataError, match=r"places\.csv: segment\(s\) .*have no people"):
        split_by_places(check_effects(_table(), _costs()), check_places(_places().iloc[:1], source="places.csv"),
                        _costs(), places_source="places.csv")


def test_the_handoff_prints_the_planned_runs_and_adds_up_to_the_plan_to_the_cent():
    """A holdout of 10%: each unit x message the plan buys is one print run, with its own postcodes; spend in cents,
    contacts and holdout people add up to the plan's."""
    import datetime as dt

    from uplift.handoff import handoff_tables
    from uplift.specs.handoff import HandoffSpec

    policy = PlanningPolicy(holdout_share=0.1, exploration_share=0.0, max_segment_share=1.0)
    result = plan(_table(), budget=23.456, costs=_costs(), policy=policy, places=_places(), prices=False,
                  references=False)
    assert len(result.unit_lines) == 2
    areas = pd.DataFrame({"municipality": "Delft", "postcode": ["2611", "2612"], "name": ["Centrum", "Hof"],
                          "people": [250.0, 350.0]})
    spec = HandoffSpec(landing_url="https://www.example.org/omscholen")
    handoff = handoff_tables(result.cells, costs=_costs(), policy=policy, spec=spec, areas=areas, wave=3,
                             start=dt.date(2026, 3, 2), min_size=10, unit_lines=result.unit_lines)
    runs = handoff.sheets["flyer_print_runs.csv"].set_index("utm_term")
    assert runs["postcodes"].to_dict() == {"pc_2611": "2611", "pc_2612": "2612"}
    assert runs["neighbourhoods"].to_dict() == {"pc_2611": "Centrum", "pc_2612": "Hof"}
    planned = result.unit_lines.set_index("unit")
    assert runs["planned_contacts"].to_dict() == planned["contacts"].to_dict()
    assert runs["copies"].to_dict() == planned["copies"].to_dict()
    assert round(runs["spend_eur"].sum() * 100) == round(result.totals.spend * 100)
    assert handoff.manifest["adds_up"]
    assert handoff.holdout["planned_holdout_people"].sum() == result.totals.holdout_people


def test_two_messages_plan_with_their_references_and_prices():
    """Message 'b' is half as good everywhere; the single-best-message reference is message 'm''s plan, and the
    split plan prices its rules and explores (each draw one effect per cell, whatever its units)."""
    table = pd.concat([_table(load=0.001),
                       _table(load=0.001).assign(message="b", arm="b@flyer", effect=[0.005, 0.001])],
                      ignore_index=True)
    policy = PlanningPolicy(holdout_share=0.0, exploration_share=0.2, max_segment_share=1.0)
    result = plan(table, budget=20.0, costs=_costs(), policy=policy, places=_places(), prices=True, references=True)
    assert len(result.cells) == 4 and set(result.references) == {"even", "single_best_message"}
    assert result.totals.spend == pytest.approx(20.0, abs=0.2)
    assert result.unit_lines["contacts"].sum() == result.totals.contacts
    assert any(r.kind == "budget" for r in result.rules)
    from uplift.allocation.explore import effect_draws
    from uplift.allocation.planner import prepare_plan

    problem = prepare_plan(table, costs=_costs(), policy=policy, places=_places()).problem
    draws = effect_draws(problem, 5, np.random.default_rng(0))
    parent = problem.parent
    for p in np.unique(parent):
        rows = np.flatnonzero(parent == p)
        assert np.allclose(draws[:, rows], draws[:, rows[:1]])


def test_a_coverage_floor_per_neighbourhood_covers_the_poorer_unit():
    """Every poorer neighbourhood at least 100 flyer contacts with its poor residents: 2612 (all poor) gets 100 of
    the 125 contacts EUR 12.50 buys, 2611 (none poor, no area to cover) the other 25."""
    policy = PlanningPolicy(holdout_share=0.0, exploration_share=0.0, max_segment_share=1.0,
                            coverage_floors=[{"name": "poorer", "area": "neighbourhood", "group": "poor",
                                              "min_contacts": 100, "channels": ["flyer"]}])
    table = _table().assign(group__poor=[0.4, 0.6])
    result = plan(table, budget=12.5, costs=_costs(), policy=policy, places=_places(), prices=True, references=False)
    # 2612's 100: 28.6 women and 71.4 men, each rounded down (short by less than a contact per cell, as any area)
    assert result.unit_lines.set_index("unit")["contacts"].to_dict() == {"pc_2611": 25, "pc_2612": 99}
    cover = next(r for r in result.rules if r.kind == "coverage")
    assert cover.status == "binds" and "in each of 1 neighbourhood area(s)" in cover.stated, cover.stated
