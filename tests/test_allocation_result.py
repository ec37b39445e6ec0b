"""The plan's figures and their uncertainty (uplift.allocation.result): cells, totals, intervals with the errors
cells share, gains over the reference plans, and re-scoring a plan under other effects (evaluate_plan)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from allocation_worlds import hand_world, synthetic_effects, two_segment_world
from uplift.allocation import evaluate_plan, plan
from uplift.errors import DataError, SchemaError
from uplift.specs.planning import PlanningPolicy


def test_one_segment_one_arm_matches_hand_calculation():
    # size 10,000; holdout 10% -> at most 9,000 contacts. Tier 1: 40% = 4,000 contacts at
    # EUR 0.05 = EUR 200; tier 2: 30% = 3,000 contacts at EUR 0.10. Budget EUR 300: tier 1 in
    # full (EUR 200) + EUR 100 / 0.10 = 1,000 tier-2 contacts -> 5,000 contacts, EUR 300,
    # 5,000 x 0.01 = 50 conversions; holdout 5,000 x 0.1 / 0.9 = 555.6 -> 555 people.
    # The next conversion costs a tier-2 contact price over the effect: 0.10 / 0.01 = EUR 10.
    effects, costs = hand_world()
    result = plan(effects, budget=300.0, costs=costs, policy=PlanningPolicy(holdout_share=0.1))
    cell = result.cells.iloc[0]
    assert result.status == "optimal"
    assert cell["contacts"] == 5_000
    assert cell["spend"] == pytest.approx(300.0)
    assert cell["expected_conversions"] == pytest.approx(50.0)
    assert cell["holdout_people"] == 555
    assert cell["cost_per_conversion"] == pytest.approx(6.0)
    assert cell["marginal_cost"] == pytest.approx(10.0)
    half = 1.2815515655446004 * 0.002 * 5_000
    assert (cell["lo"], cell["hi"]) == pytest.approx((50.0 - half, 50.0 + half))
    assert result.totals.marginal_cost == pytest.approx(10.0, rel=1e-4)
    assert result.totals.expected_conversions == pytest.approx(50.0)
    # EUR 300 for 50 +- 12.82 conversions: EUR 300 / 62.82 to EUR 300 / 37.18 per conversion
    assert (result.totals.cost_per_conversion_lo, result.totals.cost_per_conversion_hi) == pytest.approx(
        (300.0 / (50.0 + half), 300.0 / (50.0 - half)))


def test_cost_per_conversion_range_has_no_finite_end_when_the_plan_may_buy_nothing():
    from uplift.allocation import cost_range

    assert cost_range(300.0, 40.0, 60.0) == pytest.approx((5.0, 7.5))
    assert cost_range(300.0, -2.0, 60.0) == (5.0, math.inf)  # lo <= 0: no finite cost
    assert all(math.isnan(v) for v in cost_range(0.0, 1.0, 2.0) + cost_range(300.0, -3.0, -1.0))


def test_plan_interval_adds_the_error_the_cells_share():
    # The hand world's cell with an own error of 0.002 and a shared loading of 0.001 per contact on
    # one factor (effect_sd, the whole, sqrt(0.002^2 + 0.001^2)): 5,000 contacts add
    # (5,000 x 0.001)^2 = 25 to the total's variance (0.002 x 5,000)^2 = 100.
    effects, costs = hand_world()
    shared = effects.assign(effect_sd=math.hypot(0.002, 0.001), calibration_load_1=0.001, calibration_load_2=0.0)
    result = plan(shared, budget=300.0, costs=costs, policy=PlanningPolicy(holdout_share=0.1))
    half = 1.2815515655446004 * math.sqrt(100.0 + 25.0)
    assert (result.totals.lo, result.totals.hi) == pytest.approx((50.0 - half, 50.0 + half))
    cell = result.cells.iloc[0]  # a cell's interval is its whole error
    assert cell["hi"] - cell["expected_conversions"] == pytest.approx(half)
    with pytest.raises(SchemaError, match="calibration_load_1"):
        plan(shared.assign(calibration_load_1=np.inf), budget=300.0, costs=costs, policy=PlanningPolicy())
    # a whole error smaller than its shared part is not a whole error
    with pytest.raises(DataError, match=r"column 'effect_sd'.*calibration_load_1.*'women_45'.*0\.0005 against 0\.001"):
        plan(shared.assign(effect_sd=0.0005), budget=300.0, costs=costs, policy=PlanningPolicy())


def test_a_plan_adds_own_errors_as_independent_and_shared_ones_through_their_factors(costs):
    # Two cells funded alike, each with a whole sd of 0.005: as 0.003 own + 0.004 shared (one
    # factor), their total's variance is 2 (x 0.003)^2 + (2 x 0.004)^2; all own, 2 (x 0.005)^2.
    from uplift.allocation.effects import check_effects, own_sd
    from uplift.allocation.problem import build_problem
    from uplift.allocation.result import plan_totals

    effects = synthetic_effects(n_segments=2, messages=("a",), channels=("meta",), seed=3).assign(effect_sd=0.005)
    figures = {"contacts": np.array([1_000, 1_000]), "spend": np.array([10.0, 10.0]),
               "expected_conversions": np.array([5.0, 5.0]), "holdout_people": np.array([0, 0])}
    for load, expected in ((0.004, 2 * 3.0**2 + 8.0**2), (0.0, 2 * 5.0**2)):
        problem = build_problem(check_effects(effects.assign(calibration_load_1=load), costs), costs, PlanningPolicy())
        np.testing.assert_allclose(problem.own_sd, [0.003 if load else 0.005] * 2)
        np.testing.assert_allclose(own_sd(problem.effect_sd, problem.shared), problem.own_sd)
        totals = plan_totals(figures, problem.own_sd, budget=20.0, interval=0.8, shared=problem.shared)
        assert totals.hi - totals.expected_conversions == pytest.approx(1.2815515655446004 * math.sqrt(expected))


def test_gain_over_a_reference_plan_is_paired_and_matches_a_hand_calculation():
    # The single best message is m2 (mean 0.007 against m1's 0.006). At EUR 400 it buys B's cheap
    # tier (4,000 x EUR 0.05) and 2,000 of B's dear ones (EUR 0.10): 6,000 x 0.012 = 72 conversions.
    # The plan buys both cheap tiers instead: A on m1 (40) and B on m2 (48), 88 conversions.
    # Paired, the difference is A/m1 +4,000 and B/m2 -2,000 contacts: 16 conversions, variance
    # (4,000 x 0.002)^2 + (2,000 x 0.003)^2 + ((4,000 - 2,000) x 0.001)^2 = 64 + 36 + 4 = 104.
    effects, costs = two_segment_world()
    result = plan(effects, budget=400.0, costs=costs, policy=PlanningPolicy(holdout_share=0.1))
    assert result.totals.expected_conversions == pytest.approx(88.0)
    assert result.references["single_best_message"].expected_conversions == pytest.approx(72.0)
    gain = result.gains["single_best_message"]
    half = 1.2815515655446004 * math.sqrt(104.0)
    assert gain.extra_conversions == pytest.approx(16.0)
    assert (gain.lo, gain.hi) == pytest.approx((16.0 - half, 16.0 + half))
    assert gain.probability_better == pytest.approx(0.5 * math.erfc(-16.0 / math.sqrt(2 * 104.0)))
    assert gain.extra_spend == pytest.approx(0.0)
    # narrower than either plan's own interval (variance 64 + 144 + 8,000^2 x 0.001^2 = 272 for the plan):
    # the error both plans share cancels
    assert gain.hi - gain.lo == pytest.approx((result.totals.hi - result.totals.lo) * math.sqrt(104.0 / 272.0))
    assert result.gains["even"].extra_conversions == pytest.approx(
        result.totals.expected_conversions - result.references["even"].expected_conversions)
    assert not any("not clearly better" in n for n in result.notes)
    # with A's effect on m1 much less certain, the estimates cannot tell the plans apart: a note says so
    vague = plan(two_segment_world(sd_a=0.006)[0], budget=400.0, costs=costs, policy=PlanningPolicy(holdout_share=0.1))
    gain = vague.gains["single_best_message"]
    assert gain.lo < 0 < gain.extra_conversions and 0.5 < gain.probability_better < 0.9
    assert any("not clearly better than everything on the single best message, 'm2'" in n for n in vague.notes)


def test_a_plan_that_is_its_reference_gains_nothing_and_says_nothing():
    effects, costs = hand_world()  # one message: the single best message's plan is the plan
    result = plan(effects, budget=300.0, costs=costs, policy=PlanningPolicy(holdout_share=0.1))
    gain = result.gains["single_best_message"]
    assert (gain.extra_conversions, gain.lo, gain.hi, gain.probability_better) == (0.0, 0.0, 0.0, 0.5)
    assert result.notes == ()
    assert plan(effects, budget=300.0, costs=costs, policy=PlanningPolicy(holdout_share=0.1),
                references=False).gains == {}


def test_plan_interval_adds_the_persona_errors_its_cells_share():
    # The hand world's cell with a persona loading of 0.001 per contact: 5,000 contacts add 25 to the
    # total's variance of 100, as a calibration loading would; a re-scored plan carries it too.
    effects, costs = hand_world()
    loaded = effects.assign(effect_sd=math.hypot(0.002, 0.001), persona_load__p=0.001)
    policy = PlanningPolicy(holdout_share=0.1)
    result = plan(loaded, budget=300.0, costs=costs, policy=policy)
    half = 1.2815515655446004 * math.sqrt(100.0 + 25.0)
    assert (result.totals.lo, result.totals.hi) == pytest.approx((50.0 - half, 50.0 + half))
    again = evaluate_plan(result.cells, loaded, costs=costs, policy=policy)
    assert (again["lo"], again["hi"]) == pytest.approx((result.totals.lo, result.totals.hi))
    with pytest.raises(SchemaError, match="persona_load__p"):
        plan(loaded.assign(persona_load__p=np.nan), budget=300.0, costs=costs, policy=policy)


def test_re_scoring_a_plan_under_its_own_effects_gives_its_interval():
    effects, costs = hand_world()
    shared = effects.assign(effect_sd=math.hypot(0.002, 0.001), calibration_load_1=0.001, calibration_load_2=0.0)
    policy = PlanningPolicy(holdout_share=0.1)
    result = plan(shared, budget=300.0, costs=costs, policy=policy)
    again = evaluate_plan(result.cells, shared, costs=costs, policy=policy)
    assert (again["lo"], again["hi"]) == pytest.approx((result.totals.lo, result.totals.hi))


def test_hand_calculation_reach_and_holdout_caps_bind():
    effects, costs = hand_world()
    # budget beyond reach: both tiers full = 7,000 contacts for 200 + 300 = EUR 500; nothing more to buy
    wide = plan(effects, budget=1_000.0, costs=costs, policy=PlanningPolicy(holdout_share=0.1))
    assert wide.cells["contacts"].iloc[0] == 7_000
    assert wide.totals.spend == pytest.approx(500.0)
    assert math.isinf(wide.totals.marginal_cost)
    assert any("EUR 500 of the EUR 1,000 budget is left unspent" in note for note in wide.notes)
    # holdout 50%: at most 5,000 contacts = 4,000 (EUR 200) + 1,000 (EUR 100), 5,000 holdout people
    held = plan(effects, budget=1_000.0, costs=costs, policy=PlanningPolicy(holdout_share=0.5))
    assert held.cells["contacts"].iloc[0] == 5_000
    assert held.cells["holdout_people"].iloc[0] == 5_000
    assert held.totals.spend == pytest.approx(300.0)


def test_fractional_contacts_are_rounded_down_with_their_spend():
    effects, costs = hand_world()
    # EUR 200.03 buys 4,000 tier-1 contacts and 0.3 of a tier-2 contact: rounded down to 4,000,
    # which keep the LP's average price per contact (200.03 / 4,000.3)
    result = plan(effects, budget=200.03, costs=costs, policy=PlanningPolicy(holdout_share=0.1))
    assert result.cells["contacts"].iloc[0] == 4_000
    assert result.cells["spend"].iloc[0] == pytest.approx(200.03 * 4_000 / 4_000.3)
    assert result.totals.spend <= 200.03


def test_evaluate_plan_needs_every_funded_cell(costs, open_policy):
    effects = synthetic_effects(seed=15)
    result = plan(effects, budget=500.0, costs=costs, policy=open_policy)
    funded = result.cells.loc[result.cells["contacts"] > 0, ["segment", "arm"]].iloc[0]
    partial = effects[~((effects["segment"] == funded["segment"]) & (effects["arm"] == funded["arm"]))]
    with pytest.raises(DataError, match="no effect for 1 funded cell"):
        evaluate_plan(result.cells, partial)
    doubled = evaluate_plan(result.cells, effects.assign(effect=2 * effects["effect"]))
    assert doubled["expected_conversions"] == pytest.approx(2 * result.totals.expected_conversions)
