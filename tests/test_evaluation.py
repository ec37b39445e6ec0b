"""Plan-versus-oracle scoring under a known truth (uplift.evaluation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.errors import DataError, SchemaError
from uplift.evaluation import (
    FLOOR_COLUMNS,
    FRONTIER_COLUMNS,
    PLAN_SCORE_COLUMNS,
    compare_with_oracle,
    equivalent_noise_ratio,
    noise_frontier,
    reference_estimates,
    score_plan,
    target_ratio,
    true_effects_table,
)
from uplift.specs.planning import CostCatalogue, PlanningPolicy

COSTS = CostCatalogue.model_validate(
    {
        "channels": {
            "meta": {  # EUR 0.05 per contact, 40% of a segment in the first tier
                "cost_per_mille": 10.0,
                "impressions_per_contact": 5,
                "tiers": [{"share": 0.4, "multiplier": 1.0}, {"share": 0.3, "multiplier": 2.0}],
            },
            "flyer": {"cost_per_contact": 0.07, "tiers": [{"share": 0.5, "multiplier": 1.0}]},
        }
    }
)
OPEN = PlanningPolicy(holdout_share=0.1, exploration_share=0.0)


def two_arm_cells(effect_a: float, effect_b: float, size: int = 10_000) -> pd.DataFrame:
    """One segment, two messages on one channel (they share the segment's reach)."""
    return pd.DataFrame(
        {
            "segment": ["women_45", "women_45"],
            "size": [size, size],
            "arm": ["a@meta", "b@meta"],
            "message": ["a", "b"],
            "channel": ["meta", "meta"],
            "effect": [effect_a, effect_b],
            "effect_sd": [0.001, 0.001],
            "base_rate": [0.003, 0.003],
            "gender": ["female", "female"],
        }
    )


def truth_of(cells: pd.DataFrame, effects: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"segment": cells["segment"], "arm": cells["arm"], "true_effect": effects})


def random_cells(n_segments: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    seg = pd.DataFrame(
        {
            "segment": [f"s{i:02d}" for i in range(n_segments)],
            "size": rng.integers(1_000, 8_000, n_segments),
            "gender": np.resize(["female", "male"], n_segments),
            "age_band": np.resize(["25-34", "45-54", "55-67"], n_segments),
        }
    )
    parts = []
    for message in ("a", "b", "c"):
        for channel in ("meta", "flyer"):
            part = seg.assign(message=message, channel=channel, arm=f"{message}@{channel}")
            part["effect"] = rng.normal(0.004, 0.003, n_segments)
            part["effect_sd"] = rng.uniform(0.0005, 0.002, n_segments)
            part["base_rate"] = 0.004
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def test_true_effects_table_swaps_in_the_truth_and_leaves_the_input_alone():
    cells = two_arm_cells(0.002, 0.01).assign(lo=0.0, hi=0.02)
    before = cells.copy()
    out = true_effects_table(cells, truth_of(cells, [0.01, 0.002]).iloc[::-1])
    assert out["effect"].tolist() == [0.01, 0.002]
    assert out["effect_sd"].tolist() == [0.0, 0.0]
    assert out["lo"].tolist() == out["hi"].tolist() == [0.01, 0.002]
    assert out["gender"].tolist() == ["female", "female"]
    pd.testing.assert_frame_equal(cells, before)


def test_true_effects_table_names_missing_and_repeated_cells():
    cells = two_arm_cells(0.002, 0.01)
    with pytest.raises(DataError, match=r"no true effect for 1 cell\(s\).*b@meta"):
        true_effects_table(cells, truth_of(cells, [0.01, 0.002]).iloc[:1])
    twice = pd.concat([truth_of(cells, [0.01, 0.002]), truth_of(cells, [0.01, 0.002])])
    with pytest.raises(DataError, match="appears more than once"):
        true_effects_table(cells, twice)
    with pytest.raises(SchemaError, match=r"truth: missing column\(s\) \['true_effect'\]"):
        true_effects_table(cells, cells[["segment", "arm"]])


def test_wrong_ranking_scores_the_hand_computed_share_of_the_oracle():
    # The estimates prefer b (0.01 > 0.002) but the truth prefers a (0.01 > 0.002). A budget of EUR 100
    # buys 2,000 first-tier contacts (EUR 0.05 each) for either plan, so the share is 0.002 / 0.01.
    cells = two_arm_cells(0.002, 0.01)
    truth = true_effects_table(cells, truth_of(cells, [0.01, 0.002]))
    result = compare_with_oracle(cells, truth, budgets=[100.0], costs=COSTS, policy=OPEN)
    plans = result.plans.set_index("plan")
    assert list(result.plans.columns) == list(PLAN_SCORE_COLUMNS)
    assert plans.loc["oracle", "true_conversions"] == pytest.approx(2_000 * 0.01)
    assert plans.loc["recommended", "true_conversions"] == pytest.approx(2_000 * 0.002)
    assert plans.loc["recommended", "planned_conversions"] == pytest.approx(2_000 * 0.01)
    lo, hi = plans.loc["recommended", ["planned_lo", "planned_hi"]]
    assert lo <= 2_000 * 0.01 <= hi  # the interval the plan showed
    assert plans.loc[["even", "single_best_message"], "planned_lo"].isna().all()  # references show none
    assert plans.loc["recommended", "share_of_oracle"] == pytest.approx(0.2)
    assert plans.loc["oracle", "share_of_oracle"] == pytest.approx(1.0)
    assert plans.loc["single_best_message", "share_of_oracle"] == pytest.approx(0.2)
    # the single best message is b too: the plan said it adds nothing over it, and truly adds nothing
    assert plans.loc["single_best_message", "planned_gain"] == pytest.approx(0.0)
    assert plans.loc["even", "planned_gain"] == pytest.approx(
        plans.loc["recommended", "planned_conversions"] - plans.loc["even", "planned_conversions"])
    assert plans.loc[["recommended", "oracle"], "planned_gain"].isna().all()  # a gain is over a reference


def test_perfect_estimates_reach_the_oracle_and_nothing_beats_it():
    cells = random_cells()
    rng = np.random.default_rng(1)
    exact = true_effects_table(cells, truth_of(cells, cells["effect"].tolist()))
    result = compare_with_oracle(cells, exact, budgets=[200.0, 800.0], costs=COSTS, policy=OPEN)
    plans = result.plans.set_index(["budget", "plan"])
    assert plans.xs("recommended", level="plan")["share_of_oracle"].to_numpy() == pytest.approx([1.0, 1.0])
    noisy = true_effects_table(cells, truth_of(cells, (cells["effect"] + rng.normal(0, 0.004, len(cells))).tolist()))
    scored = compare_with_oracle(cells, noisy, budgets=[200.0, 800.0], costs=COSTS, policy=OPEN).plans
    assert (scored["share_of_oracle"] <= 1.0 + 1e-9).all()
    assert (scored.loc[scored["plan"] == "recommended", "share_of_oracle"] < 0.999).all()
    assert set(scored["plan"]) == {"recommended", "even", "single_best_message", "oracle"}


def test_conversion_floor_met_on_the_estimates_can_fail_under_the_truth():
    cells = random_cells()
    floor = {"name": "over_45", "where": {"age_band": ["45-54", "55-67"]}, "kind": "conversion_share",
             "min_share": 0.6}
    spend = {"name": "women", "where": {"gender": "female"}, "kind": "spend_share", "min_share": 0.5}
    policy = OPEN.model_copy(update={"fairness_floors": (
        PlanningPolicy.model_validate({"fairness_floors": [floor, spend]}).fairness_floors)})
    over_45 = cells["age_band"].isin(["45-54", "55-67"]).to_numpy()
    truth = true_effects_table(cells, truth_of(cells, np.where(over_45, 0.0005, 0.01).tolist()))
    result = compare_with_oracle(cells, truth, budgets=[300.0], costs=COSTS, policy=policy)
    floors = result.floors.set_index(["plan", "floor"])
    assert list(result.floors.columns) == list(FLOOR_COLUMNS)
    assert floors.loc[("recommended", "women"), "holds"]
    assert floors.loc[("recommended", "women"), "true_share"] >= 0.5 - 1e-6
    assert not floors.loc[("recommended", "over_45"), "holds"]
    assert floors.loc[("recommended", "over_45"), "true_share"] < 0.6
    assert floors.loc[("oracle", "over_45"), "holds"]


def test_score_plan_counts_only_funded_cells():
    cells = two_arm_cells(0.002, 0.01)
    truth = true_effects_table(cells, truth_of(cells, [0.01, 0.002]))
    plan_cells = pd.DataFrame({"segment": ["women_45", "women_45"], "arm": ["a@meta", "b@meta"],
                               "contacts": [100, 0], "spend": [5.0, 0.0]})
    totals, floors = score_plan(plan_cells, truth, costs=COSTS, policy=OPEN)
    assert totals == {"spend": 5.0, "contacts": 100, "true_conversions": pytest.approx(1.0)}
    assert floors.empty


def test_bad_arguments_are_named():
    cells = two_arm_cells(0.002, 0.01)
    truth = true_effects_table(cells, truth_of(cells, [0.01, 0.002]))
    with pytest.raises(SchemaError, match="budgets is empty"):
        compare_with_oracle(cells, truth, budgets=[], costs=COSTS, policy=OPEN)
    with pytest.raises(DataError, match="same .segment, arm. rows"):
        compare_with_oracle(cells, truth.iloc[::-1], budgets=[100.0], costs=COSTS, policy=OPEN)


# ---------------------------------------------------------------------------------------------
# the noise frontier


def test_reference_estimates_shrink_noise_by_the_posterior_weight():
    cells = random_cells(n_segments=400, seed=3)
    truth = true_effects_table(cells, truth_of(cells, cells["effect"].tolist()))
    t = truth["effect"].to_numpy()
    exact = reference_estimates(truth, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(exact["effect"].to_numpy(), t)
    assert (exact["effect_sd"] == 0).all() and (exact["calibration_load_1"] == 0).all()
    tau = t.std()
    ref = reference_estimates(truth, tau, np.random.default_rng(0))  # ratio 1: weight 1/2
    est = ref["effect"].to_numpy()
    assert est.std() == pytest.approx(tau * np.sqrt(0.5), rel=0.1)  # w^2 (tau^2 + sigma^2) = tau^2 / 2
    assert np.corrcoef(est, t)[0, 1] == pytest.approx(1 / np.sqrt(2), abs=0.06)
    assert ref["effect_sd"].to_numpy() == pytest.approx(np.full(len(t), tau * np.sqrt(0.5)))
    assert ref["hi"].to_numpy() - ref["lo"].to_numpy() == pytest.approx(2 * 1.2816 * tau * np.sqrt(0.5), rel=1e-3)
    assert equivalent_noise_ratio(est, t) == pytest.approx(1.0, abs=0.2)
    assert equivalent_noise_ratio(-t, t) == np.inf and equivalent_noise_ratio(np.zeros_like(t), t) == np.inf
    with pytest.raises(SchemaError, match="noise_sd"):
        reference_estimates(truth, -1.0, np.random.default_rng(0))


def test_noise_frontier_reaches_the_oracle_without_noise_and_falls_with_it():
    cells = random_cells(n_segments=30, seed=4)
    truth = true_effects_table(cells, truth_of(cells, cells["effect"].tolist()))
    front = noise_frontier(truth, budgets=[150.0, 600.0], costs=COSTS, policy=OPEN, ratios=[0.0, 0.5, 3.0], repeats=2)
    assert tuple(front.columns) == FRONTIER_COLUMNS and len(front) == 3 * 2 * 2
    mean = front.groupby("noise_ratio")["share_of_oracle"].mean()
    assert mean[0.0] == pytest.approx(1.0)
    assert 1.0 > mean[0.5] > mean[3.0]
    assert (front["share_of_oracle"] <= 1.0 + 1e-9).all()
    assert front.loc[front["noise_ratio"] == 0.0, "corr"].to_numpy() == pytest.approx(1.0)
    with pytest.raises(SchemaError, match="ratios"):
        noise_frontier(truth, budgets=[150.0], costs=COSTS, policy=OPEN, ratios=[-0.5])
    with pytest.raises(SchemaError, match="at least one"):
        noise_frontier(truth, budgets=[], costs=COSTS, policy=OPEN, ratios=[0.5])


def test_target_ratio_interpolates_between_measured_ratios():
    front = pd.DataFrame({"noise_ratio": [0.2, 0.2, 0.5, 1.0], "share_of_oracle": [0.99, 0.97, 0.92, 0.7]})
    assert target_ratio(front, 0.95) == pytest.approx(0.2 + (0.98 - 0.95) * 0.3 / (0.98 - 0.92))
    assert target_ratio(front, 0.999) != target_ratio(front, 0.999)  # NaN: no ratio reaches it
    assert target_ratio(front, 0.5) == 1.0  # every ratio reaches it: the noisiest measured


def test_with_arm_levels_swaps_the_arm_means_and_keeps_the_deviations():
    from uplift.evaluation import with_arm_levels

    cells = random_cells(n_segments=5, seed=3)
    cells = cells.assign(lo=cells["effect"] - 0.001, hi=cells["effect"] + 0.001)
    other = cells.sample(frac=1.0, random_state=0).assign(effect=lambda f: f["effect"] * 2 + 0.01)  # shuffled rows
    swapped = with_arm_levels(cells, other)
    # each arm's mean is now the other table's; each cell keeps its deviation from its arm's mean
    np.testing.assert_allclose(swapped.groupby("arm")["effect"].mean(), other.groupby("arm")["effect"].mean())
    def deviation(f: pd.DataFrame) -> pd.Series:
        return f["effect"] - f.groupby("arm")["effect"].transform("mean")

    np.testing.assert_allclose(deviation(swapped), deviation(cells), atol=1e-15)
    np.testing.assert_allclose(swapped["hi"] - swapped["lo"], 0.002)
    assert swapped["effect_sd"].equals(cells["effect_sd"]) and "lo" in cells and cells["effect"].max() < 0.02
    with pytest.raises(SchemaError, match="truth: expected the same"):
        with_arm_levels(cells, other.iloc[1:], source="truth")
    with pytest.raises(SchemaError, match="missing column"):
        with_arm_levels(cells, other.drop(columns="effect"))


def _rows_of(world) -> pd.DataFrame:
    """A world's exposures with their people's audience attributes (the rows a training table holds)."""
    return world.exposures[["person_id", "wave", "arm"]].merge(world.audience, on="person_id", how="left")


def test_the_true_form_at_the_regions_numbers_is_the_simulator(region):
    """Every block of the region (persona baselines, baseline modifiers, adjustments, channel
    modifiers, wear-out over three waves, the floor on the relative lift) is exercised, and the
    analytic gradient of the likelihood is the numerical one."""
    from uplift.evaluation.trueform import people_for_rows, shown_before, true_form
    from uplift.simulate import simulate

    world = simulate(region, people=5_000, waves=3, seed=3)
    rows = _rows_of(world)
    shown = shown_before(rows, list(region.messages))
    assert shown.max() == 2 and (shown[world.exposures["wave"].to_numpy() == 1] == 0).all()
    form = true_form(region, people_for_rows(rows, world.truth, region), shown)
    theta = form.truth_parameters()
    fitted = form.arm_probabilities(theta, list(world.arms))
    truth = world.truth.set_index(["person_id", "wave"]).loc[pd.MultiIndex.from_frame(rows[["person_id", "wave"]])]
    np.testing.assert_allclose(fitted.to_numpy(), truth[[f"p__{a}" for a in world.arms]].to_numpy(), rtol=1e-12,
                               atol=1e-15)

    rng = np.random.default_rng(0)
    y = (rng.random(len(rows)) < 0.05).astype(float)
    message, channel = form.arm_codes(rows["arm"].to_numpy())
    at = theta + rng.normal(0.0, 0.05, theta.size)
    at[-1] = 0.7

    def loss(t: np.ndarray) -> float:
        return form.loss(t, message, channel, y)[0]

    _, grad = form.loss(at, message, channel, y)
    step = 1e-6
    numeric = np.array([(loss(at + e) - loss(at - e)) / (2 * step) for e in np.eye(theta.size) * step])
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-4 * np.abs(grad).max())


def test_shown_before_counts_a_persons_earlier_waves_per_message():
    from uplift.evaluation.trueform import shown_before

    keys = pd.DataFrame({"person_id": ["b", "a", "a", "a", "b"], "wave": [2, 3, 1, 2, 1],
                         "arm": ["x@meta", "x@flyer", "x@meta", "holdout", "y@meta"]})
    np.testing.assert_array_equal(shown_before(keys, ["x", "y"]), [[0, 1], [1, 0], [0, 0], [1, 0], [0, 0]])
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['arm'\]"):
        shown_before(keys.drop(columns="arm"), ["x"])


def test_the_fitted_true_form_recovers_a_strong_worlds_effects(strong_region, strong_world, strong_table):
    """Fitted by maximum likelihood from a neutral start only, the form's per-row effects are the
    truth's to within the noise of 80,000 rows; bad inputs are named."""
    from uplift.evaluation.trueform import (
        fit_true_form,
        people_for_rows,
        shown_before,
        true_form,
    )

    frame = strong_table.frame
    form = true_form(strong_region, people_for_rows(frame, strong_world.truth, strong_region),
                     shown_before(frame, list(strong_region.messages)))
    y = frame["outcome"].to_numpy(dtype=float)
    arms = frame["arm"].astype(str).to_numpy()
    neutral = form.start(float(y[arms == "holdout"].mean()))
    fit = fit_true_form(form, y, arms, starts=[neutral])
    assert fit.converged and len(fit.per_start) == 1
    truth = strong_world.truth.set_index(["person_id",
                                          "wave"]).loc[pd.MultiIndex.from_frame(frame[["person_id", "wave"]])]
    fitted = form.arm_probabilities(fit.theta, list(strong_world.arms))
    for arm in strong_world.arms[1:]:
        true_effect = truth[f"p__{arm}"].to_numpy() - truth["p__holdout"].to_numpy()
        effect = fitted[arm].to_numpy() - fitted["holdout"].to_numpy()
        # the difference in means' standard error: what the rows can tell of the arm's mean effect
        se = np.sqrt(sum(y[arms == a].var() / (arms == a).sum() for a in (arm, "holdout")))
        assert abs(effect.mean() - true_effect.mean()) < 3 * se, arm
        assert np.corrcoef(effect, true_effect)[0, 1] > 0.85, arm
    both = fit_true_form(form, y, arms)  # the default starts: neutral and the region's numbers
    assert both.log_likelihood >= max(both.per_start) - 1e-9 and both.log_likelihood >= fit.log_likelihood - 1e-6

    with pytest.raises(DataError, match="arm: \\['x@meta'\\] are not arms"):
        form.arm_codes(np.array(["x@meta"]))
    bad = people_for_rows(frame, strong_world.truth, strong_region).assign(persona="nobody")
    with pytest.raises(DataError, match="persona: \\['nobody'\\]"):
        true_form(strong_region, bad, np.zeros((len(frame), 2)))
    with pytest.raises(SchemaError, match="shown: expected shape"):
        true_form(strong_region, bad.assign(persona="other"), np.zeros((3, 2)))
