"""The planner as a whole (uplift.allocation.planner): metamorphic and oracle properties, the reference plans, and a
property test that every plan keeps the hard rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocation_worlds import check_hard_rules, reach_share, synthetic_effects
from uplift.allocation import CELL_COLUMNS, evaluate_plan, plan, prepare_plan, reference_plans
from uplift.specs.planning import PlanningPolicy


@pytest.mark.parametrize("exploration", [0.0, 0.1, 0.3])
def test_more_budget_never_lowers_planned_value(costs, exploration):
    # up to budgets far above what the cells can usefully take (about EUR 1,400 here), where a
    # share of the whole budget explored would take over the plan
    effects = synthetic_effects(seed=1)

    def policy(share: float) -> PlanningPolicy:
        floor = {"name": "women", "where": {"gender": "female"}, "kind": "spend_share", "min_share": 0.4}
        return PlanningPolicy(max_segment_share=0.3, fairness_floors=[floor], holdout_share=0.15,
                              exploration_share=share)

    prepared = prepare_plan(effects, costs=costs, policy=policy(exploration))
    values, explored = [], []
    for budget in (0, 50, 200, 500, 1_000, 2_000, 5_000, 20_000, 100_000):
        result = prepared.plan(budget=budget, references=False)
        assert result.status == "optimal"
        values.append(result.totals.expected_conversions)
        explored.append(result.totals.exploration_spend)
    rounding = effects["effect"].clip(lower=0).sum()  # at most one contact lost per cell
    assert values[0] == 0
    assert all(b >= a - rounding for a, b in zip(values, values[1:], strict=False))
    assert values[-1] > values[1] + 10 * rounding
    # past the useful spend the exploration stays at its share of what the plan without it spends
    alone = plan(effects, budget=100_000, costs=costs, policy=policy(0.0), references=False).totals.spend
    assert alone < 5_000
    assert explored[-1] == pytest.approx(explored[-3], rel=1e-9)
    assert explored[-1] <= exploration * alone + 1.0


def test_row_order_does_not_change_the_plan(costs, open_policy):
    effects = synthetic_effects(seed=2)
    shuffled = effects.sample(frac=1.0, random_state=3).reset_index(drop=True)
    a = plan(effects, budget=1_500, costs=costs, policy=open_policy).totals
    b = plan(shuffled, budget=1_500, costs=costs, policy=open_policy).totals
    assert b.expected_conversions == pytest.approx(a.expected_conversions, rel=1e-6)
    assert b.spend == pytest.approx(a.spend, rel=1e-6)


def test_oracle_plan_beats_every_other_plan_under_the_truth(costs, open_policy):
    truth = synthetic_effects(n_segments=10, seed=4)
    rng = np.random.default_rng(5)
    estimate = truth.assign(effect=truth["effect"] + rng.normal(0, 0.003, len(truth)))
    budget = 2_500.0
    oracle = plan(truth, budget=budget, costs=costs, policy=open_policy)
    best = evaluate_plan(oracle.cells, truth)["expected_conversions"]
    others = {
        "estimated": plan(estimate, budget=budget, costs=costs, policy=open_policy).cells,
        **reference_plans(estimate, budget=budget, costs=costs, policy=open_policy),
    }
    rounding = truth["effect"].clip(lower=0).sum()
    for name, cells in others.items():
        assert evaluate_plan(cells, truth)["expected_conversions"] <= best + rounding, name
    assert evaluate_plan(others["even"], truth)["expected_conversions"] < 0.8 * best


def test_reference_plans(costs, open_policy):
    effects = synthetic_effects(seed=6)
    refs = reference_plans(effects, budget=400.0, costs=costs, policy=open_policy)
    even, single = refs["even"], refs["single_best_message"]
    assert 398.0 <= even["spend"].sum() <= 400.0  # rounding down loses < 1 contact per cell
    assert (even["contacts"] > 0).all()  # every cell gets a share
    dearest = max(t.multiplier * c.unit_cost for c in costs.channels.values() for t in c.tiers)
    assert (even["spend"].max() - even["spend"] <= dearest).all()  # equal up to one rounded-down contact
    # a larger budget fills some cells (their share of the group's reach tiers among its 2
    # messages, or of the segment's contactable people among its 6 cells); the rest share a level
    wide = reference_plans(effects, budget=2_500.0, costs=costs, policy=open_policy)["even"]
    level = wide["spend"].max()
    below = (wide["spend"] < level - dearest).to_numpy()
    assert 0 < below.sum() < len(wide)
    reach = effects["channel"].map(lambda ch: reach_share(costs, ch)) * effects["size"] / 2
    full = np.minimum(reach, 0.9 * effects["size"] / 6).to_numpy()
    assert (wide["contacts"].to_numpy()[below] >= np.floor(full[below]) - 1).all()
    assert (wide["contacts"].to_numpy() <= full + 1e-6).all()
    assert single.loc[single["contacts"] > 0, "message"].nunique() == 1
    weighted = effects.assign(we=effects["effect"] * effects["size"]).groupby("message")
    assert single.loc[single["contacts"] > 0, "message"].iloc[0] == (
        weighted["we"].sum() / weighted["size"].sum()
    ).idxmax()
    result = plan(effects, budget=400.0, costs=costs, policy=open_policy)
    assert set(result.references) == {"even", "single_best_message"}
    assert result.totals.expected_conversions >= result.references["single_best_message"].expected_conversions - 1
    assert result.references["even"].expected_conversions == pytest.approx(even["expected_conversions"].sum())


def test_plan_does_not_modify_its_input(costs, open_policy):
    effects = synthetic_effects(seed=10)
    before = effects.copy()
    result = plan(effects, budget=800.0, costs=costs, policy=open_policy)
    pd.testing.assert_frame_equal(effects, before)
    assert tuple(result.cells.columns) == CELL_COLUMNS
    assert len(result.cells) == len(effects)


@st.composite
def small_worlds(draw):
    n_seg = draw(st.integers(1, 4))
    channels = draw(st.lists(st.sampled_from(["meta", "flyer", "email", "linkedin"]), min_size=1, max_size=3,
                             unique=True))
    messages = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=2, unique=True))
    rows = []
    sizes = [draw(st.integers(0, 4_000)) for _ in range(n_seg)]
    for s in range(n_seg):
        for m in messages:
            for ch in channels:
                rows.append(
                    {
                        "segment": f"s{s}",
                        "size": sizes[s],
                        "arm": f"{m}@{ch}",
                        "message": m,
                        "channel": ch,
                        "effect": draw(st.floats(-0.01, 0.02)),
                        "effect_sd": draw(st.floats(0.0, 0.01)),
                        "base_rate": 0.01,
                    }
                )
    policy = PlanningPolicy(
        max_segment_share=draw(st.sampled_from([0.4, 0.7, 1.0])),
        holdout_share=draw(st.sampled_from([0.0, 0.1, 0.5])),
        max_spend=draw(st.sampled_from([{}, {"meta": 50.0}, {"flyer": 20.0, "email": 5.0}])),
        exploration_share=draw(st.sampled_from([0.0, 0.25])),
        exploration_draws=3,
        seed=draw(st.integers(0, 10)),
    )
    budget = draw(st.floats(0.0, 1_500.0))
    return pd.DataFrame(rows), policy, budget


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_worlds())
def test_every_plan_respects_budget_and_caps(costs, world):
    effects, policy, budget = world
    result = plan(effects, budget=budget, costs=costs, policy=policy, references=False)
    assert result.status in ("optimal", "infeasible")
    check_hard_rules(result, effects, costs, policy, budget)
    assert (result.cells["contacts"] >= 0).all() and (result.cells["spend"] >= -1e-9).all()
    assert (result.cells["exploration"] <= result.cells["spend"] + 1e-9).all()


def test_plans_are_the_same_without_highspy(costs, monkeypatch):
    import uplift.allocation.reducedlp as reducedlp

    effects = synthetic_effects(n_segments=10, seed=12)
    policy = PlanningPolicy(
        max_segment_share=0.3,
        fairness_floors=[{"name": "women", "where": {"gender": "female"}, "kind": "spend_share", "min_share": 0.5}],
    )
    warm = [plan(effects, budget=b, costs=costs, policy=policy) for b in (300.0, 1_200.0)]
    monkeypatch.setattr(reducedlp, "highspy", None)  # scipy's linprog solves the reduced LP instead
    cold = [plan(effects, budget=b, costs=costs, policy=policy) for b in (300.0, 1_200.0)]
    for a, b in zip(warm, cold, strict=True):
        assert a.totals.expected_conversions == pytest.approx(b.totals.expected_conversions, rel=1e-6)
        assert a.totals.spend == pytest.approx(b.totals.spend, rel=1e-6)
