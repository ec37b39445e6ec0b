"""The LP (uplift.allocation.problem, uplift.allocation.solve): column generation reaches the full LP's optimum, and
a problem re-built on other effects solves alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allocation_worlds import synthetic_effects
from uplift.allocation import evaluate_plan, plan
from uplift.specs.planning import PlanningPolicy


def test_column_generation_reaches_the_full_lp_optimum(costs):
    from scipy.optimize import linprog

    from uplift.allocation.effects import check_effects
    from uplift.allocation.problem import Allocation, build_problem, right_hand_sides, variable_bounds
    from uplift.allocation.solve import solve_value

    effects = synthetic_effects(n_segments=12, messages=("a", "b", "c"), seed=16)
    policy = PlanningPolicy(
        max_segment_share=0.15,
        fairness_floors=[
            {"name": "women", "where": {"gender": "female"}, "kind": "spend_share", "min_share": 0.6},
            {"name": "old", "where": {"age_band": "55-67"}, "kind": "conversion_share", "min_share": 0.35},
        ],
    )
    problem = build_problem(check_effects(effects, costs), costs, policy)
    empty, fundable = Allocation.empty(problem), problem.effect >= 0
    priced = solve_value(problem, objective=problem.effect, budget=1_500.0, base=empty, fundable=fundable)
    c = np.concatenate([-problem.effect, np.zeros(problem.m + 2)])
    full = linprog(c, A_ub=problem.a_ub, b_ub=right_hand_sides(problem, budget=1_500.0, base=empty),
                   A_eq=problem.a_eq, b_eq=np.zeros(problem.a_eq.shape[0]),
                   bounds=variable_bounds(problem, fundable=fundable, base=empty), method="highs")
    assert full.status == 0 and priced.optimal
    assert priced.value == pytest.approx(-full.fun, rel=1e-4)
    free = plan(effects, budget=1_500.0, costs=costs, policy=PlanningPolicy())
    assert priced.value < free.totals.expected_conversions  # the rules bind


def test_a_weaker_message_is_used_when_only_it_fits_the_rules(costs):
    # Segment B must absorb most of a EUR 300 meta minimum, but its conversions may not exceed
    # those of the small segment A (floor: A >= 50% of conversions, at most 17 there). B's best
    # message would convert too much; only its weak message b can take the spend. The LP first
    # opened with one message per group must fall back to all messages and still be optimal.
    rows = [("A", 2_000, "a", 0.01), ("A", 2_000, "b", 0.005), ("B", 20_000, "a", 0.01), ("B", 20_000, "b", 0.001)]
    effects = pd.DataFrame(
        {
            "segment": [r[0] for r in rows], "size": [r[1] for r in rows],
            "arm": [f"{r[2]}@meta" for r in rows], "message": [r[2] for r in rows], "channel": "meta",
            "effect": [r[3] for r in rows], "effect_sd": 0.001, "base_rate": 0.01,
        }
    )
    policy = PlanningPolicy(
        min_spend={"meta": 300.0},
        fairness_floors=[{"name": "A", "where": {"segment": "A"}, "kind": "conversion_share", "min_share": 0.5}],
    )
    result = plan(effects, budget=1_000.0, costs=costs, policy=policy)
    assert result.status == "optimal", result.conflicts
    cells = result.cells.set_index("arm", append=False).groupby(["segment", "message"])["contacts"].sum()
    assert cells[("B", "b")] > 0
    assert result.cells["spend"].sum() >= 300.0 - 1.0
    shares = evaluate_plan(result.cells, effects, policy=policy)["floors"]
    assert shares["A"] >= 0.5 - 1e-3


def test_a_problem_with_other_effects_is_the_problem_built_on_them_and_solves_alike(costs):
    from uplift.allocation.effects import check_effects
    from uplift.allocation.problem import Allocation, build_problem
    from uplift.allocation.solve import solve_value

    effects = synthetic_effects(n_segments=12, messages=("a", "b", "c"), seed=21)
    policy = PlanningPolicy(
        max_segment_share=0.2,
        fairness_floors=[
            {"name": "women", "where": {"gender": "female"}, "kind": "spend_share", "min_share": 0.5},
            {"name": "old", "where": {"age_band": "55-67"}, "kind": "conversion_share", "min_share": 0.3},
            {"name": "young", "where": {"age_band": "18-24"}, "kind": "conversion_share", "min_share": 0.1},
        ],
    )
    frame = check_effects(effects, costs)
    problem = build_problem(frame, costs, policy)
    empty = Allocation.empty(problem)
    first = solve_value(problem, objective=problem.effect, budget=1_500.0, base=empty, fundable=problem.effect >= 0)
    rng = np.random.default_rng(3)
    for trial in range(4):
        other = problem.effect + rng.normal(0, 0.002, problem.n)
        other[rng.random(problem.n) < 0.1] = 0.0  # zero effects keep their coefficients
        if trial == 0:
            other[:] = 0.0
        drawn = problem.with_effect(other)
        built = build_problem(frame.assign(effect=other), costs, policy)
        for got, want in ((drawn.a_ub, built.a_ub), (drawn.a_eq, built.a_eq)):
            np.testing.assert_array_equal(got.toarray(), want.toarray())
        np.testing.assert_array_equal(drawn.effect, other)
        np.testing.assert_array_equal(drawn.frame["effect"].to_numpy(), other)
        assert drawn.solvers is not problem.solvers and drawn.solvers.warm_from is problem.solvers
        np.testing.assert_array_equal(problem.effect, frame["effect"].to_numpy())  # the original is untouched
        # warm-started from the original's basis, the drawn problem solves to the cold optimum
        fundable = other >= 0
        warm = solve_value(drawn, objective=other, budget=1_500.0, base=empty, fundable=fundable)
        cold = solve_value(built, objective=other, budget=1_500.0, base=empty, fundable=fundable)
        assert warm.optimal == cold.optimal
        assert warm.value == pytest.approx(cold.value, rel=1e-7, abs=1e-9)
    assert first.optimal
    with pytest.raises(ValueError, match="one per cell"):
        problem.with_effect(problem.effect[:-1])
