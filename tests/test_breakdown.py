"""A plan per channel, message and priority group; arm averages; what the next euro buys (budget curve)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from allocation_worlds import SERVE, hand_world, synthetic_effects
from uplift.allocation import prepare_plan
from uplift.allocation.breakdown import average_effects, plan_breakdown
from uplift.allocation.curve import budget_curve, curve_budgets
from uplift.errors import SpecError
from uplift.specs import load_spec
from uplift.specs.planning import CostCatalogue, FairnessFloor, PlanningPolicy

Z80 = 1.2815515655446004


@pytest.fixture(scope="module")
def costs() -> CostCatalogue:
    return load_spec(SERVE / "costs.yaml", CostCatalogue)


def test_parts_add_up_to_the_plan_and_their_intervals_count_shared_errors_once(costs):
    effects = synthetic_effects(seed=3).assign(calibration_load_1=0.0005)
    effects["effect_sd"] = np.hypot(effects["effect_sd"], 0.0005)
    policy = PlanningPolicy(holdout_share=0.1, fairness_floors=(
        FairnessFloor(name="women", where={"gender": "female"}, kind="spend_share", min_share=0.5),))
    prepared = prepare_plan(effects, costs=costs, policy=policy)
    result = prepared.plan(budget=4000.0, references=False)
    parts = plan_breakdown(prepared.problem, result.cells)
    channels = [p for p in parts if p.dimension == "channel"]
    messages = [p for p in parts if p.dimension == "message"]
    for group in (channels, messages):
        assert sum(p.spend for p in group) == pytest.approx(result.totals.spend)
        assert sum(p.expected_conversions for p in group) == pytest.approx(result.totals.expected_conversions)
        assert sum(p.contacts for p in group) == pytest.approx(result.totals.contacts)
    [women] = [p for p in parts if p.dimension == "group"]
    cells = result.cells
    female = (effects["gender"] == "female").to_numpy()
    assert women.name == "women" and women.spend == pytest.approx(cells["spend"].to_numpy()[female].sum())
    assert women.spend >= 0.5 * result.totals.spend * (1 - 1e-6)
    # by hand: one channel's part has the variance of its own errors plus its contacts on the shared factor squared
    c = cells["contacts"].to_numpy(dtype=float)
    own = np.sqrt(effects["effect_sd"].to_numpy() ** 2 - 0.0005**2)
    meta = (effects["channel"] == "meta").to_numpy()
    expect = Z80 * math.sqrt(np.sum((own * c)[meta] ** 2) + (0.0005 * c[meta].sum()) ** 2)
    [part] = [p for p in channels if p.name == "meta"]
    assert part.hi - part.expected_conversions == pytest.approx(expect)


def test_average_effect_per_arm_is_size_weighted_with_a_hand_computed_interval():
    effects, _ = hand_world()
    two = effects.loc[[0, 0]].reset_index(drop=True)
    two["segment"] = ["a", "b"]
    two["size"] = [1000, 3000]
    two["effect"] = [0.01, 0.02]
    two["effect_sd"] = [0.002, 0.004]
    got = average_effects(two, interval=0.8).iloc[0]
    assert got["effect"] == pytest.approx(0.25 * 0.01 + 0.75 * 0.02)
    half = Z80 * math.sqrt((0.25 * 0.002) ** 2 + (0.75 * 0.004) ** 2)
    assert (got["lo"], got["hi"]) == pytest.approx((got["effect"] - half, got["effect"] + half))
    assert (got["segments"], got["people"], got["message"]) == (2, 4000.0, "recognition")


def test_budget_curve_rises_then_flattens_where_money_stops_buying(costs):
    effects = synthetic_effects(seed=5)
    prepared = prepare_plan(effects, costs=costs, policy=PlanningPolicy(holdout_share=0.1))
    budgets = curve_budgets(useful_spend=prepared.useful_spend, budget=1234.5, points=12)
    assert (budgets[0] == 0.0 and 1234.5 in budgets
            and budgets[-1] == pytest.approx(1.4 * prepared.useful_spend, abs=0.005))  # to the cent
    curve = budget_curve(prepared, budgets)
    conv = np.array([p.expected_conversions for p in curve.points])
    assert conv[0] == 0.0 and np.all(np.diff(conv) >= -1e-9)  # more budget never buys less
    assert curve.at(1234.5).expected_conversions == pytest.approx(
        prepared.plan(budget=1234.5, references=False).totals.expected_conversions)
    # the LP's useful spend less what rounding contacts down to whole people takes (under a contact per cell)
    assert curve.saturation == pytest.approx(prepared.useful_spend, rel=1e-3)
    past = [p for p in curve.points if p.budget >= curve.saturation]
    assert past and all(p.expected_conversions == pytest.approx(past[0].expected_conversions) for p in past)
    assert all(p.lo <= p.expected_conversions <= p.hi for p in curve.points)
    with pytest.raises(SpecError, match="not on the curve"):
        curve.at(1.0)
    with pytest.raises(SpecError, match="at least 2"):
        curve_budgets(useful_spend=100.0, budget=10.0, points=1)


def test_curve_marks_budgets_below_a_channel_minimum_as_relaxed(costs):
    effects = synthetic_effects(seed=5)
    prepared = prepare_plan(effects, costs=costs, policy=PlanningPolicy(holdout_share=0.1, min_spend={"flyer": 300}))
    curve = budget_curve(prepared, [100.0, 1000.0])
    assert [p.feasible for p in curve.points] == [False, True]
