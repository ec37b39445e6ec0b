"""Exploration (uplift.allocation.explore): Thompson draws from the estimates' uncertainty, with its shared and low-
rank structure, and the budget share they spend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allocation_worlds import synthetic_effects
from uplift.allocation import plan
from uplift.specs.planning import PlanningPolicy


def test_negative_effects_get_no_exploitation_spend(costs):
    effects = synthetic_effects(seed=8)
    effects.loc[effects.index % 3 == 0, "effect"] = -0.004
    policy = PlanningPolicy(exploration_share=0.3, exploration_draws=6, seed=1)
    result = plan(effects, budget=3_000.0, costs=costs, policy=policy)
    negative = (effects["effect"] < 0).to_numpy()
    exploit = result.cells["spend"] - result.cells["exploration"]
    assert (exploit[negative] <= 1e-9).all()
    clearly = (effects["effect"] + 1.2816 * effects["effect_sd"] < 0).to_numpy()
    assert clearly.any()
    assert (result.cells.loc[clearly, "spend"] == 0).all()
    assert result.cells.loc[~negative, "spend"].sum() > 0


def test_exploration_spends_about_the_declared_share(costs):
    effects = synthetic_effects(n_segments=10, seed=9)
    policy = PlanningPolicy(exploration_share=0.2, exploration_draws=8, seed=3)
    budget = 1_500.0
    result = plan(effects, budget=budget, costs=costs, policy=policy)
    assert result.totals.exploration_spend == pytest.approx(0.2 * budget, rel=0.02)
    assert result.cells["exploration"].sum() == pytest.approx(result.totals.exploration_spend)
    assert result.totals.spend == pytest.approx(budget, rel=0.01)
    # exploration spreads over more cells than exploitation alone would fund
    greedy = plan(effects, budget=budget, costs=costs, policy=policy.model_copy(update={"exploration_share": 0.0}))
    assert (result.cells["contacts"] > 0).sum() > (greedy.cells["contacts"] > 0).sum()
    again = plan(effects, budget=budget, costs=costs, policy=policy)
    pd.testing.assert_frame_equal(again.cells, result.cells)


def test_exploration_draws_the_error_all_cells_share_once_per_draw(costs):
    from uplift.allocation.effects import check_effects
    from uplift.allocation.explore import thompson_allocation
    from uplift.allocation.problem import build_problem

    # every cell's estimate is 0 with no error of its own, but all share one calibration error: in
    # each draw either every cell looks positive (all explored) or none does (nothing spent)
    effects = synthetic_effects(n_segments=6, seed=11).assign(
        effect=0.0, effect_sd=0.002, calibration_load_1=0.002, calibration_load_2=0.0)
    policy = PlanningPolicy(exploration_share=0.5, exploration_draws=40, seed=2, max_segment_share=1.0)
    problem = build_problem(check_effects(effects, costs), costs, policy)
    thompson_allocation(problem, budget=500.0)
    funded = np.array([(d.best_cell >= 0) & d.funded for d in problem.solvers.draws])
    per_draw = funded.mean(axis=1)
    assert set(np.unique(per_draw)) == {0.0, 1.0}  # all groups or none, never some
    assert 0.2 < per_draw.mean() < 0.8
    # without the shared error nothing is plausibly positive and nothing is explored
    alone = build_problem(check_effects(effects.assign(effect_sd=0.0, calibration_load_1=0.0), costs), costs, policy)
    assert thompson_allocation(alone, budget=500.0).x.sum() == 0


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_exploration_fill_equals_the_tier_by_tier_fill(costs, seed):
    from uplift.allocation.effects import check_effects
    from uplift.allocation.explore import _fill_tier_by_tier, _fill_vectorised, _in_order
    from uplift.allocation.problem import build_problem

    rng = np.random.default_rng(seed)
    effects = synthetic_effects(n_segments=15, seed=seed)
    policy = PlanningPolicy(max_segment_share=float(rng.choice([0.05, 0.2, 1.0])),
                            holdout_share=float(rng.choice([0.0, 0.3, 0.6])))
    problem = build_problem(check_effects(effects, costs), costs, policy)
    gain = np.where(rng.random(problem.m) < 0.8, rng.uniform(0.0001, 0.01, problem.m), 0.0)
    order = np.flatnonzero(gain > 0)
    order = order[np.lexsort((problem.tier_rank[order], -gain[order] / problem.tier_cost[order]))]
    for budget in (5.0, 200.0, 5_000.0, 1e7):  # from the money binding to every segment cap binding
        np.testing.assert_allclose(_fill_vectorised(problem, _in_order(problem, order), budget),
                                   _fill_tier_by_tier(problem, order, budget),
                                   rtol=1e-9, atol=1e-9)


def test_exploration_draws_kept_with_the_problem_give_the_same_allocation(costs):
    from uplift.allocation.effects import check_effects
    from uplift.allocation.explore import thompson_allocation
    from uplift.allocation.problem import build_problem

    effects = synthetic_effects(n_segments=12, seed=4)
    policy = PlanningPolicy(max_segment_share=0.2, exploration_share=0.2)
    frame = check_effects(effects, costs)
    used = build_problem(frame, costs, policy)
    for budget in (50.0, 900.0, 20.0):  # the draws are computed at the first budget and kept
        fresh = build_problem(frame, costs, policy)
        assert fresh.solvers.draws is None
        got, want = thompson_allocation(used, budget=budget), thompson_allocation(fresh, budget=budget)
        assert used.solvers.draws is not None
        np.testing.assert_array_equal(got.x, want.x)
        np.testing.assert_array_equal(got.y, want.y)
        assert float(want.y @ fresh.tier_cost) <= budget + 1e-6 and want.x.sum() > 0


def test_rank_one_estimates_get_rank_one_thompson_draws(costs):
    from uplift.allocation.effects import check_effects
    from uplift.allocation.explore import thompson_allocation
    from uplift.allocation.problem import build_problem
    from uplift.segments.armtable import low_rank_effects, table_rank

    effects = synthetic_effects(n_segments=6, seed=12)  # 2 messages x 3 channels, random: rank 2
    seg, arm = effects["segment"].to_numpy(), effects["arm"].to_numpy()
    rank1 = effects.assign(effect=low_rank_effects(seg, arm, effects["effect"].to_numpy()))
    assert (table_rank(seg, arm, effects["effect"].to_numpy()) == 2
            and table_rank(seg, arm, rank1["effect"].to_numpy()) == 1)
    policy = PlanningPolicy(exploration_share=0.5, exploration_draws=5, seed=3)

    def drawn(table: pd.DataFrame):
        """The cells' own draws, read back from the seeded generator as the planner draws them (no
        shared errors here), and the problem after exploring it."""
        problem = build_problem(check_effects(table, costs), costs, policy)
        rng = np.random.default_rng(policy.seed)
        sampled = rng.normal(problem.effect, problem.effect_sd, size=(policy.exploration_draws, problem.n))
        thompson_allocation(problem, budget=300.0)
        return sampled, problem

    for table, projected in ((effects, False), (rank1, True)):
        sampled, problem = drawn(table)
        expected = low_rank_effects(seg, arm, sampled) if projected else sampled
        usable = (expected > 0) & ~(problem.effect + 1.2815515655446004 * problem.effect_sd < 0)
        for draw, values, ok in zip(problem.solvers.draws, expected, usable, strict=True):
            funded = draw.best_cell[draw.funded]  # each group's best drawn message: from these values
            assert ok[funded].all()
            for g, cell in zip(np.flatnonzero(draw.funded), funded, strict=True):
                peers = np.flatnonzero(problem.grp == g)
                assert values[cell] == values[peers][ok[peers]].max()


def test_thompson_draws_are_fitted_on_the_parts_the_estimates_were_fitted_on(costs):
    from uplift.allocation.effects import check_effects
    from uplift.allocation.explore import thompson_allocation
    from uplift.allocation.problem import build_problem
    from uplift.segments.additive import additive_effects, part_columns, smoothed_draws

    effects = synthetic_effects(n_segments=8, seed=13)
    terms = (("gender",), ("age_band",))
    weights = effects["size"].to_numpy(float)
    fitted = additive_effects(effects["effect"].to_numpy(), effects["arm"].to_numpy(), effects, terms, weights)
    table = pd.concat([effects.assign(effect=fitted), part_columns(effects, terms)], axis=1)
    assert list(table.columns[-2:]) == ["part__gender", "part__age_band"]
    policy = PlanningPolicy(exploration_share=0.5, exploration_draws=5, seed=3)
    problem = build_problem(check_effects(table, costs), costs, policy)
    sampled = np.random.default_rng(policy.seed).normal(problem.effect, problem.effect_sd, size=(5, problem.n))
    expected = smoothed_draws(problem.frame, sampled)
    # the draws are fitted per arm on the parts: each draw's table is additive in gender and age band
    np.testing.assert_allclose(expected, additive_effects(sampled, effects["arm"].to_numpy(), effects, terms, weights))
    assert np.abs(expected - sampled).max() > 1e-4
    thompson_allocation(problem, budget=300.0)
    usable = (expected > 0) & ~(problem.effect + 1.2815515655446004 * problem.effect_sd < 0)
    for draw, values, ok in zip(problem.solvers.draws, expected, usable, strict=True):
        funded = draw.best_cell[draw.funded]
        assert ok[funded].all()
        for g, cell in zip(np.flatnonzero(draw.funded), funded, strict=True):
            peers = np.flatnonzero(problem.grp == g)
            assert values[cell] == values[peers][ok[peers]].max()
    # a line without a part value (a kind not smoothed; missing after a CSV round trip) keeps its draw
    gaps = problem.frame.assign(part__gender=problem.frame["part__gender"].mask(problem.frame["segment"] == "seg00"))
    kept = smoothed_draws(gaps, sampled)
    own = (gaps["segment"] == "seg00").to_numpy()
    np.testing.assert_array_equal(kept[:, own], sampled[:, own])
    assert np.abs(kept[:, ~own] - sampled[:, ~own]).max() > 0
    np.testing.assert_array_equal(smoothed_draws(effects, sampled), sampled)  # no parts: as drawn
