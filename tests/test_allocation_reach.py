"""Reach curves (uplift.allocation.reach, uplift.allocation.tierorder): a curve sells its cheap contacts before its
dear ones, and its tangents never overstate a rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allocation_worlds import assert_reach_curves_filled_in_order, check_hard_rules, hand_world, synthetic_effects
from uplift.allocation import plan
from uplift.specs.planning import PlanningPolicy


def test_a_reach_curve_sells_no_dear_contact_before_the_cheap_ones():
    # A (2,000 people) and B (20,000) on the hand world's meta curve: 40% at EUR 0.05, then 30% at
    # EUR 0.10. A converts at most 14 (1,400 contacts, EUR 100); A's 50% share of conversions caps B
    # at 1,400 contacts. A meta minimum of EUR 200 needs EUR 100 in B, which buys 2,000 contacts on
    # the cheap tier: the two rules conflict. An LP alone "meets" both by buying B's dear contacts
    # (600 cheap + 800 dear = EUR 100 for 1,400), which no reach curve sells.
    world, costs = hand_world()
    effects = pd.concat([world.assign(segment="A", size=2_000), world.assign(segment="B", size=20_000)],
                        ignore_index=True).assign(effect=0.01, effect_sd=0.005)

    def policy(min_meta: float, confidence: float = 0.5) -> PlanningPolicy:
        return PlanningPolicy(min_spend={"meta": min_meta}, fairness_floors=[
            {"name": "A", "where": {"segment": "A"}, "kind": "conversion_share", "min_share": 0.5,
             "confidence": confidence}])

    result = plan(effects, budget=1_000.0, costs=costs, policy=policy(200.0), references=False)
    assert result.status == "infeasible"
    (message,) = result.conflicts
    assert "fairness floor 'A' needs 50% of expected conversions" in message and "min_spend 'meta' (EUR 200)" in message
    contacts = result.cells.set_index("segment")["contacts"].to_dict()
    assert contacts == {"A": 1_400, "B": 2_000}  # the minimum kept, the floor given up
    assert_reach_curves_filled_in_order(result.cells.merge(effects[["segment", "arm", "size"]]), costs)
    # a confident floor under a minimum it can meet: B pays cheap-tier prices for what it gets
    for min_meta, confidence in ((130.0, 0.9), (160.0, 0.9), (130.0, 0.5)):
        result = plan(effects, budget=1_000.0, costs=costs, policy=policy(min_meta, confidence), references=False)
        assert result.status == "optimal", result.conflicts
        b = result.cells.set_index("segment").loc["B"]
        assert b["spend"] == pytest.approx(0.05 * b["contacts"], abs=0.05) and b["spend"] >= min_meta - 100 - 0.05


def test_a_confident_floor_fills_its_reach_curves_in_order_once_rather_than_per_draw(monkeypatch):
    # The world of the test above, where the LP alone buys B's dear contacts first. The plan's 16
    # effect draws and its margin search are LPs; only the plan's own solves are mixed-integer
    # (before: 89 and 126 mixed-integer solves for these two plans, seconds each on 10,000 cells).
    from uplift.allocation import tierorder

    world, costs = hand_world()
    effects = pd.concat([world.assign(segment="A", size=2_000), world.assign(segment="B", size=20_000)],
                        ignore_index=True).assign(effect=0.01, effect_sd=0.005)
    calls = []
    milp = tierorder.milp
    monkeypatch.setattr(tierorder, "milp", lambda *args, **kwargs: calls.append(1) or milp(*args, **kwargs))
    for min_meta in (130.0, 160.0):
        calls.clear()
        policy = PlanningPolicy(min_spend={"meta": min_meta}, fairness_floors=[
            {"name": "A", "where": {"segment": "A"}, "kind": "conversion_share", "min_share": 0.5, "confidence": 0.9}])
        result = plan(effects, budget=1_000.0, costs=costs, policy=policy, references=False)
        assert result.status == "optimal" and 1 <= len(calls) <= 2
        assert any("optimism" in note for note in result.notes)
        assert_reach_curves_filled_in_order(result.cells.merge(effects[["segment", "arm", "size"]]), costs)


def test_a_reach_curve_charges_its_contacts_cheapest_first_and_its_tangent_never_overstates_a_rule():
    # the hand world's meta curve for two segments (2,000 and 20,000 people): 40% at EUR 0.05, 30% at EUR 0.10
    from uplift.allocation.effects import check_effects
    from uplift.allocation.problem import Allocation, build_problem
    from uplift.allocation.reach import curve_spend, tangent_system

    world, costs = hand_world()
    effects = pd.concat([world.assign(segment="A", size=2_000, gender="female"),
                         world.assign(segment="B", size=20_000, gender="male")], ignore_index=True)
    spend, price = curve_spend(build_problem(check_effects(effects, costs), costs, PlanningPolicy()),
                               np.array([500.0, 9_000.0]))
    assert spend == pytest.approx([25.0, 8_000 * 0.05 + 1_000 * 0.10])
    assert price == pytest.approx([0.05, 0.10])
    spend, price = curve_spend(build_problem(check_effects(effects, costs), costs, PlanningPolicy()),
                               np.array([1_400.0, 0.0]))
    assert spend == pytest.approx([800 * 0.05 + 600 * 0.10, 0.0]) and price == pytest.approx([0.10, 0.05])

    # every kind of rule that reads spend: at the tangent's own plan the rules read what they read on
    # the curve; at any other plan filled in order they leave it no more room than the curve does
    policy = PlanningPolicy(min_spend={"meta": 60.0}, max_segment_share=0.7, fairness_floors=[
        {"name": "women", "where": {"gender": "female"}, "kind": "spend_share", "min_share": 0.45}])
    problem = build_problem(check_effects(effects, costs), costs, policy)
    m = problem.m

    def in_order(contacts: np.ndarray) -> np.ndarray:
        y = np.zeros(m)
        for g, want in enumerate(contacts):
            for t in np.flatnonzero(problem.tier_grp == g):
                y[t] = min(want, problem.tier_cap[t])
                want -= y[t]
        return y

    def columns(y: np.ndarray, tangent_price: np.ndarray | None = None) -> np.ndarray:
        x = np.bincount(problem.tier_grp, weights=y, minlength=2)[problem.grp]
        v = np.concatenate([x, y, [problem.tier_cost @ y, problem.effect @ x]])
        return v if tangent_price is None else np.append(v, tangent_price[problem.tier_grp] @ y)

    rng = np.random.default_rng(4)
    before = np.array([100.0, 300.0])  # an exploration already bought, in order
    base = Allocation(before[problem.grp], in_order(before))

    def added(total: np.ndarray) -> np.ndarray:  # what a plan of ``total`` contacts adds to ``base``
        return in_order(total) - base.y

    for _ in range(20):
        at = added(rng.uniform(before, [1_400, 14_000]))
        a_ub, a_eq, shift = tangent_system(problem, problem.a_ub, problem.a_eq, base=base, added=at)
        price = curve_spend(problem, np.bincount(problem.tier_grp, weights=base.y + at, minlength=2))[1]
        assert np.abs(a_eq @ columns(at, price)).max() < 1e-9  # U is the tangent price of the contacts
        assert a_ub @ columns(at, price) + shift == pytest.approx(problem.a_ub @ columns(at), abs=1e-9)
        for _ in range(5):
            other = added(rng.uniform(before, [1_400, 14_000]))
            assert np.all(a_ub @ columns(other, price) + shift >= problem.a_ub @ columns(other) - 1e-9)


def test_a_plan_whose_rules_reward_spend_buys_in_order_at_the_tangents_about_as_well_as_the_mixed_integer_re_solve(
        costs, monkeypatch):
    # Rules that make spend itself worth buying (a segment cap as a share of all spend, a high spend
    # floor for women, a flyer minimum) beyond the budget the cells can usefully take: the LP alone
    # buys dear contacts before cheap ones to inflate the spend the rules count. On this small problem
    # the plan is the better of the tangent rounds and the mixed-integer re-solve; on a large one
    # (here: every problem counted as large) the tangent rounds alone, with no mixed-integer solve, and
    # their plan is in order, meets every rule and is within 1% of the other.
    from uplift.allocation import tierorder

    effects = synthetic_effects(n_segments=16, seed=5)
    policy = PlanningPolicy(max_segment_share=0.1, min_spend={"flyer": 50.0}, holdout_share=0.1, fairness_floors=[
        {"name": "women", "where": {"gender": "female"}, "kind": "spend_share", "min_share": 0.69}])
    calls = {"milp": 0, "tangents": 0}
    milp, at_tangents = tierorder.milp, tierorder._at_tangents
    monkeypatch.setattr(tierorder, "milp",
                        lambda *a, **k: calls.__setitem__("milp", calls["milp"] + 1) or milp(*a, **k))
    monkeypatch.setattr(tierorder, "_at_tangents",
                        lambda *a, **k: calls.__setitem__("tangents", calls["tangents"] + 1) or at_tangents(*a, **k))
    both = plan(effects, budget=6_000.0, costs=costs, policy=policy, references=False)
    assert calls["tangents"] >= 1 and calls["milp"] >= 1
    monkeypatch.setattr(tierorder, "_MILP_COLUMNS", 0)
    calls.update(milp=0, tangents=0)
    alone = plan(effects, budget=6_000.0, costs=costs, policy=policy, references=False)
    assert calls["tangents"] >= 1 and calls["milp"] == 0
    for result in (both, alone):
        assert result.status == "optimal", result.conflicts
        cells = result.cells.merge(effects[["segment", "arm", "size", "gender"]])
        assert_reach_curves_filled_in_order(cells, costs)
        check_hard_rules(result, effects, costs, policy, 6_000.0)
        spend = cells["spend"].sum()
        assert cells.loc[cells["gender"] == "female", "spend"].sum() >= 0.69 * spend - 1e-6
        assert cells.loc[cells["channel"] == "flyer", "spend"].sum() >= 50.0 - 1e-6
    assert alone.totals.expected_conversions >= 0.99 * both.totals.expected_conversions
    assert both.totals.expected_conversions >= alone.totals.expected_conversions - 1e-6
