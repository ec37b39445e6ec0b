"""Segments: the anonymity floor, persona rules, and calibrated effects with honest intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from conftest import kind_effects
from uplift.errors import SchemaError, SpecError
from uplift.modeling.truthcheck import true_outcome_probabilities
from uplift.modeling.validation import validate_model
from uplift.segments import (
    KindRows,
    assign_personas,
    build_segment_table,
    fay_herriot,
    targetable_cells,
    truth_persona_mix,
    truth_segment_effects,
)
from uplift.segments.table import segment_members
from uplift.specs import load_spec
from uplift.specs.model import ModelSpec
from uplift.specs.segments import PersonaRule, SegmentSpec


def _people(cells: dict[tuple[str, str], int]) -> pd.DataFrame:
    rows = []
    for (band, gender), n in cells.items():
        rows += [{"person_id": f"{band}-{gender}-{i}", "age_band": band, "gender": gender} for i in range(n)]
    return pd.DataFrame(rows)


def test_small_cells_merge_into_other_and_what_stays_small_is_suppressed():
    people = _people({("25-34", "female"): 60, ("25-34", "male"): 30, ("25-34", "other"): 25, ("55-67", "other"): 10})
    cells = targetable_cells(people, ("age_band", "gender"), min_size=50)
    labels = cells.groupby("segment")["gender"].size()
    # 30 male + 25 other in 25-34 are both under 50: together they make "gender=other" of 55 people
    assert labels.to_dict() == {"": 10, "age_band=25-34|gender=female": 60, "age_band=25-34|gender=other": 55}
    # the 10 people of 55-67 are suppressed: never shown
    assert (cells.loc[people["age_band"] == "55-67", "segment"] == "").all()


def test_people_not_rows_count_towards_the_floor():
    people = _people({("25-34", "female"): 30})
    twice = pd.concat([people, people], ignore_index=True)  # 30 people seen in two waves
    cells = targetable_cells(twice, ("age_band", "gender"), min_size=50)
    assert (cells["segment"] == "").all()


def test_persona_rules_first_match_wins():
    frame = pd.DataFrame(
        {
            "age": [45, 45, 23, 60],
            "gender": ["male", "male", "female", "female"],
            "sector": ["construction", "security", "hospitality", "care"],
            "education": ["vocational", "vocational", "no_diploma", "higher"],
            "employment": ["employed_permanent"] * 4,
            "income_band": ["middle"] * 4,
            "migration_background": [0.0, 1.0, 0.0, 0.0],
            "has_children": [1.0, 0.0, 0.0, 1.0],
        }
    )
    rules = (
        PersonaRule(name="heavy_work", rule={"gender": ["male"], "sector": ["construction"], "age_min": 36}),
        PersonaRule(name="any_man", rule={"gender": ["male"]}),
        PersonaRule(name="young", rule={"age_max": 27}),
    )
    assert list(assign_personas(frame, rules)) == ["heavy_work", "any_man", "young", "none"]
    with pytest.raises(SchemaError, match=r"persona rules use column\(s\) \['sector'\]"):
        assign_personas(frame.drop(columns=["sector"]), rules)


def test_segment_spec_validation_names_the_field():
    with pytest.raises(ValidationError, match="cannot be targeted"):
        SegmentSpec(dimensions=("age_band", "income_band"))
    with pytest.raises(ValidationError, match="only use audience attributes"):
        PersonaRule(name="x", rule={"persona": ["heavy_work"]})


def test_segment_spec_file_loads(tmp_path):
    spec = load_spec(__import__("conftest").ROOT / "features" / "segments.yaml", SegmentSpec)
    assert len(spec.personas) == 7 and spec.min_size == 50
    bad = tmp_path / "s.yaml"
    bad.write_text("dimensions: [shoe_size]\n")
    with pytest.raises(SpecError, match=r"s.yaml: invalid SegmentSpec: dimensions"):
        load_spec(bad, SegmentSpec)


def test_fay_herriot_leans_on_precise_observations_and_on_the_model_otherwise():
    model = np.array([0.01, 0.01, 0.02, 0.00])
    observed = np.array([0.05, 0.03, 0.02, np.nan])
    se = np.array([1e-6, 0.02, 0.02, np.nan])
    effect, sd, (alpha, beta), A = fay_herriot(observed, se, model)
    assert effect[0] == pytest.approx(0.05, abs=1e-6) and sd[0] < 1e-5  # precise: the observed effect
    assert np.isfinite(effect[3]) and sd[3] == pytest.approx(np.sqrt(A))  # unobserved: corrected model
    assert effect[3] == pytest.approx(alpha + beta * 0.0)


def test_calibration_loadings_carry_the_error_a_sum_over_segments_shares():
    """Simulated calibrations: the error of a weighted total of calibrated effects has the variance
    the cells' own sds plus the shared loadings give, and the own sds alone miss most of it."""
    from uplift.segments.effects import calibration_loadings

    rng = np.random.default_rng(3)
    n, reps = 300, 400
    model = rng.normal(0.002, 0.001, n)
    se = rng.uniform(0.002, 0.006, n)
    contacts = rng.integers(0, 2_000, n).astype(float)
    errors, predicted_own, predicted_all = [], [], []
    for _ in range(reps):
        truth = -0.0005 + 1.3 * model + rng.normal(0, 0.0008, n)
        observed = truth + rng.normal(0, se)
        effect, sd, _, A = fay_herriot(observed, se, model)
        load = calibration_loadings(observed, se, model, A)
        errors.append(contacts @ (effect - truth))
        predicted_own.append(np.sum((contacts * sd) ** 2))
        predicted_all.append(predicted_own[-1] + np.sum((contacts @ load) ** 2))
    actual = np.var(errors)
    assert np.mean(predicted_all) == pytest.approx(actual, rel=0.3)
    assert np.mean(predicted_own) < 0.6 * actual
    assert np.all(calibration_loadings(np.full(3, np.nan), np.full(3, np.nan), np.zeros(3), float("nan")) == 0)


def _simulated_cells(rng, arms: int, per_arm: int, *, model_sd: float, se_range: tuple[float, float]):
    """Cells of ``arms`` arms (``per_arm`` each): arm index, model estimate around 0.001, the model
    centred within its arm, and each cell's observed-effect standard error."""
    arm = np.repeat(np.arange(arms), per_arm)
    model = rng.normal(0.001, model_sd, arms * per_arm)
    centred = model - (np.bincount(arm, weights=model) / per_arm)[arm]
    return arm, model, centred, rng.uniform(*se_range, arms * per_arm)


def test_slope_loadings_carry_each_arms_own_calibration_slope_into_a_plans_total():
    """Simulated calibrations over 18 arms whose true slopes on the model differ by about as much as
    each arm's own cells can tell (sd 1.0 against a standard error of about 1.05): a total over four
    arms' highest-model cells (a plan bets on them) has about the error variance that the own sds,
    the calibration loadings and the slope loadings give together (a little more, on the safe
    side); the first two alone miss half of it."""
    from uplift.segments.effects import calibration_loadings, slope_loadings

    rng = np.random.default_rng(5)
    arms, per_arm, reps = 18, 100, 200
    arm, model, centred, se = _simulated_cells(rng, arms, per_arm, model_sd=0.0005, se_range=(0.003, 0.008))
    top = np.concatenate([np.argsort(-model[arm == a])[:25] + a * per_arm for a in range(4)])
    contacts = np.zeros(arms * per_arm)
    contacts[top] = rng.integers(500, 2_000, len(top))
    errors, without, with_slope = [], [], []
    for _ in range(reps):
        slopes = rng.normal(1.3, 1.0, arms)  # each arm's own compression of the truth by the model
        truth = 0.001 + slopes[arm] * centred + rng.normal(0, 0.0001, len(model))
        observed = truth + rng.normal(0, se)
        effect, sd, _, A = fay_herriot(observed, se, model)
        shared = np.sum((contacts @ calibration_loadings(observed, se, model, A)) ** 2)
        per_arm_total = np.bincount(arm, weights=contacts * slope_loadings(observed, se, model, arm, A), minlength=arms)
        errors.append(contacts @ (effect - truth))
        without.append(np.sum((contacts * sd) ** 2) + shared)
        with_slope.append(without[-1] + np.sum(per_arm_total**2))
    actual = np.var(errors)
    assert 0.9 * actual < np.mean(with_slope) < 1.6 * actual
    assert np.mean(without) < 0.6 * actual


def test_slope_loadings_by_hand():
    from uplift.segments.effects import slope_loadings

    observed = np.array([0.01, 0.02, 0.03, 0.05, 0.01, np.nan, 0.02])
    se = np.array([0.01, 0.01, 0.02, 0.01, 0.01, 0.01, 0.01])
    model = np.array([0.0, 0.01, 0.02, 0.03, 0.01, 0.02, 0.0])
    arm = np.array(["a", "a", "a", "a", "b", "b", "b"])
    A = 1e-4
    # arm a's cells: loadings proportional to (1 - gamma) times the covariate's deviation from its
    # weighted mean; arm b has two combinable cells (its slope is not identified) and loads 0
    load = slope_loadings(np.tile(observed, 3), np.tile(se, 3), np.tile(model, 3) * np.repeat([1, 2, 3], 7),
                          np.concatenate([arm, np.char.add(arm, "2"), np.char.add(arm, "3")]), A)
    w = 1 / (se[:4] ** 2 + A)
    gamma = A / (A + se[:4] ** 2)
    shape = (1 - gamma) * (model[:4] - np.average(model[:4], weights=w))
    scale = load[:4] / shape
    np.testing.assert_allclose(scale, scale[0])
    assert scale[0] > 0 and np.all(load[4:7] == 0)
    # fewer than three arms with an identified slope, or no calibration: nothing to say
    assert np.all(slope_loadings(observed, se, model, arm, A) == 0)
    assert np.all(slope_loadings(np.tile(observed, 3), np.tile(se, 3), np.tile(model, 3),
                                 np.repeat(["x", "y", "z"], 7), float("nan")) == 0)


def test_arm_slopes_follow_each_arms_own_slope_only_as_far_as_the_arms_show_it():
    from uplift.segments.effects import arm_slope_effects

    rng = np.random.default_rng(2)
    arm = np.repeat(np.arange(6), 40)
    x = rng.normal(0.0, 0.01, len(arm))
    own = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    observed = own[arm] * x
    effect = 1.0 * x  # as if the pooled calibration had given every arm the slope 1
    # precise cells: each arm's slope is read off its own cells, and its deviations carry it
    se = np.full(len(arm), 1e-5)
    moved, slope = arm_slope_effects(effect, observed, se, x, arm, 1e-14, 1.0)
    np.testing.assert_allclose(slope, own[arm], rtol=1e-3)
    for a in range(6):
        cells = arm == a
        centre = np.average(x[cells])
        np.testing.assert_allclose(moved[cells] - effect[cells], (x[cells] - centre) * (own[a] - 1.0), rtol=1e-3,
                                   atol=1e-9)
    # cells far noisier than the arms differ (each arm's slope known to about 3): the arms' slopes
    # are shrunk most of the way towards their common mean, in the same order
    noisy, slope = arm_slope_effects(effect, observed, np.full(len(arm), 0.2), x, arm, 1e-4, 1.0)
    per_arm = slope[np.searchsorted(arm, np.arange(6))]
    assert np.ptp(per_arm) < 0.35 * np.ptp(own) and np.all(np.diff(per_arm) > 0)
    assert np.all(noisy[arm == 0] - effect[arm == 0] == pytest.approx((slope[arm == 0][0] - 1.0)
                                                                      * (x[arm == 0] - np.average(x[arm == 0])),
                                                                      rel=0.05, abs=1e-9))
    # not identified: fewer than three arms with a slope, or no calibration
    for args in ((observed[arm < 2], se[arm < 2], x[arm < 2], arm[arm < 2], 1e-14), (observed, se, x, arm, np.nan)):
        same, slope = arm_slope_effects(args[2] * 1.0, *args, 1.0)
        np.testing.assert_array_equal(same, args[2])
        np.testing.assert_array_equal(slope, 1.0)


def test_arm_slopes_take_the_bias_out_of_a_plans_total_over_its_arms_best_cells():
    """Simulated calibrations over 18 arms whose true slopes differ (sd 0.5 around 1.3, each arm's own
    cells telling its slope to about 0.6): a plan funds the highest-model cells of the steepest arms.
    The pooled slope promises them too little; the arms' own shrunk slopes take most of that bias
    out, and the total's error is smaller."""
    from uplift.segments.effects import arm_slope_effects

    rng = np.random.default_rng(7)
    arms, per_arm, reps = 18, 100, 120
    arm, model, centred, se = _simulated_cells(rng, arms, per_arm, model_sd=0.0008, se_range=(0.002, 0.005))
    pooled, own = [], []
    for _ in range(reps):
        slopes = rng.normal(1.3, 0.5, arms)
        steep = np.argsort(-slopes)[:4]
        top = np.concatenate([np.argsort(-model[arm == a])[:20] + a * per_arm for a in steep])
        truth = 0.001 + slopes[arm] * centred + rng.normal(0, 0.0001, len(model))
        observed = truth + rng.normal(0, se)
        effect, _, (_, beta), A = fay_herriot(observed, se, model)
        moved, _ = arm_slope_effects(effect, observed, se, model, arm, A, beta)
        pooled.append(np.sum(effect[top] - truth[top]))
        own.append(np.sum(moved[top] - truth[top]))
    pooled, own = np.array(pooled), np.array(own)
    assert np.mean(pooled) < -2 * np.std(pooled) / np.sqrt(reps)  # the pooled slope under-promises
    assert abs(np.mean(own)) < 0.5 * abs(np.mean(pooled))
    assert np.mean(own**2) < 0.8 * np.mean(pooled**2)


def test_segment_effects_report_the_slope_each_line_carries():
    from uplift.segments.personamix import PersonaMix

    rng = np.random.default_rng(4)
    n, groups_n = 24_000, 30
    groups = rng.integers(0, groups_n, n)
    arm = rng.choice(["c", "a", "b", "d"], n)
    lift = np.where(arm == "c", 0.0, 0.002 * (groups % 5) * np.select([arm == "a", arm == "b"], [1.0, 3.0], 2.0))
    y = (rng.random(n) < 0.02 + lift).astype(float)
    propensity = pd.DataFrame(0.25, index=range(n), columns=["c", "a", "b", "d"])
    predictions = pd.DataFrame({a: 0.002 * (groups % 5) * 2.0 for a in ("a", "b", "d")})
    mix = PersonaMix(effects=np.tile(0.002 * (np.arange(groups_n) % 5)[:, None], 3), personas=("p", "q"),
                     shares=np.column_stack([np.full(groups_n, 0.4), np.full(groups_n, 0.6)]),
                     se=np.full((2, 3), 0.001))
    kwargs = dict(y=y, arm=arm, propensity=propensity, predictions=predictions, control="c", persona_mix=mix,
                  persona_weight=0.5)
    plain = kind_effects(groups, groups_n, **kwargs)
    own = kind_effects(groups, groups_n, **kwargs, arm_slopes=True)
    np.testing.assert_allclose(plain["calibration_slope"], plain["calibration_beta"])
    slope = own.groupby("arm")["calibration_slope"].first()
    assert slope["a"] < slope["d"] < slope["b"]  # the arms' effects grow with the model at 1/2, 1, 3/2 its rate
    np.testing.assert_allclose(own["own_sd"], plain["own_sd"])
    # a persona's error moves a line's effect by the slope the line carries
    for persona in ("p", "q"):
        np.testing.assert_allclose(
            own[f"persona_load__{persona}"],
            plain[f"persona_load__{persona}"] * own["calibration_slope"] / own["calibration_beta"])


@pytest.fixture(scope="module")
def validated(strong_table):
    spec = ModelSpec(name="p", learner="pooled",
                     lightgbm={"n_estimators": 60, "num_leaves": 7, "min_child_samples": 100},
                     cv={"folds": 3, "test_share": 0.25, "seed": 1})
    return validate_model(spec, strong_table)


@pytest.fixture(scope="module")
def calibrated(validated, strong_world):
    report = validated
    seg_spec = SegmentSpec(dimensions=("age_band", "gender", "municipality"), min_size=50)
    table, preds = report.out_of_sample()
    segments = build_segment_table(table, preds, seg_spec)
    true_p = true_outcome_probabilities(table.frame[["person_id", "wave"]], strong_world.truth, table.arms)
    return segments, segments.merge(truth_segment_effects(table, true_p, seg_spec), on=["segment", "arm"])


def test_segment_table_never_shows_a_small_segment(calibrated):
    segments, _ = calibrated
    assert len(segments) > 0 and (segments["size"] >= 50).all()
    assert set(segments["kind"]) == {"targetable"}
    assert {"effect", "effect_sd", "lo", "hi", "base_rate", "message", "channel", "age_band",
            "gender"} <= set(segments.columns)
    assert (segments["lo"] <= segments["effect"]).all() and (segments["effect"] <= segments["hi"]).all()


def test_segment_intervals_cover_the_truth_and_effects_track_it(calibrated):
    _, merged = calibrated
    covered = ((merged["true_effect"] >= merged["lo"]) & (merged["true_effect"] <= merged["hi"])).mean()
    # 80% intervals: measured 0.86 on this world; accept a sampling band around 0.8
    assert 0.65 <= covered <= 0.97, covered
    assert np.corrcoef(merged["effect"], merged["true_effect"])[0, 1] > 0.5
    # calibrated: the reported effects are not systematically too small or too large
    slope = np.polyfit(merged["effect"], merged["true_effect"], 1)[0]
    assert 0.5 <= slope <= 1.5, slope


def _randomised_segments(n_segments: int, rows: int, seed: int):
    """Rows of ``n_segments`` segments randomised 1:4 to control and arm "a"; rates differ by segment."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.002, 0.03, n_segments)
    lift = rng.normal(0.004, 0.004, n_segments)
    groups = np.repeat(np.arange(n_segments), rows)
    arm = np.where(rng.random(len(groups)) < 0.2, "c", "a").astype(object)
    p = np.clip(base[groups] + np.where(arm == "a", lift[groups], 0.0), 0, 1)
    y = (rng.random(len(groups)) < p).astype(float)
    propensity = pd.DataFrame({"c": np.full(len(groups), 0.2), "a": np.full(len(groups), 0.8)})
    return groups, arm, y, propensity, np.clip(base + lift, 0, 1) - base


def test_segment_rate_variance_is_right_on_average_where_the_floor_overstates_it():
    from uplift.segments.effects import observed_effects

    groups, arm, y, propensity, lift = _randomised_segments(600, 150, seed=3)
    base = np.random.default_rng(3).uniform(0.002, 0.03, 600)  # the helper's first draw
    ratios = {}
    for variance in ("floored", "segment_rate"):
        got = observed_effects(groups, 600, y, arm, propensity, "c", ("a",), variance=variance)["a"]
        treated, control = base + lift, base
        true_var = treated * (1 - treated) / got["n_treated"] + control * (1 - control) / got["n_control"]
        ratios[variance] = float(np.mean(got["observed_se"] ** 2) / np.mean(true_var))
    assert 0.9 <= ratios["segment_rate"] <= 1.15, ratios  # claimed / true sampling variance
    assert ratios["floored"] > ratios["segment_rate"] + 0.2, ratios  # the max() with the floor over-states it
    with pytest.raises(ValueError, match="variance"):
        observed_effects(groups, 600, y, arm, propensity, "c", ("a",), variance="empirical")


def test_leak_covariance_finds_a_model_that_learned_the_other_folds_noise():
    from uplift.segments.effects import leak_covariance

    n_seg = 300
    groups, arm, y, propensity, lift = _randomised_segments(n_seg, 400, seed=4)
    folds = np.random.default_rng(5).integers(0, 4, len(groups))  # 0-2 cross-fitted, 3 held out
    heldout = 3

    def observed(mask):
        treated = np.bincount(groups[mask & (arm == "a")], weights=y[mask & (arm == "a")], minlength=n_seg)
        n_t = np.bincount(groups[mask & (arm == "a")], minlength=n_seg)
        ctrl = np.bincount(groups[mask & (arm == "c")], weights=y[mask & (arm == "c")], minlength=n_seg)
        n_c = np.bincount(groups[mask & (arm == "c")], minlength=n_seg)
        return treated / np.maximum(n_t, 1) - ctrl / np.maximum(n_c, 1)

    memorised = np.empty(len(groups))  # each fold's "model": the segment's effect on the folds it saw
    for k in range(4):
        seen = (folds != k) & (folds != heldout)
        memorised[folds == k] = observed(seen)[groups[folds == k]]
    def rows(predicted: np.ndarray) -> KindRows:
        return KindRows(groups, n_seg, y=y, arm=arm, propensity=propensity, predictions=pd.DataFrame({"a": predicted}),
                        control="c", folds=folds, heldout_fold=heldout)

    leak, honest = leak_covariance(rows(memorised)), leak_covariance(rows(lift[groups]))
    # what the memorising model shares with the full-data observed noise, measured against the truth
    full = observed(np.ones(len(groups), dtype=bool))
    model_mean = np.bincount(groups, weights=memorised, minlength=n_seg) / np.bincount(groups, minlength=n_seg)
    truth = float(np.mean((model_mean - model_mean.mean()) * (full - lift)))
    assert truth > 0 and 0.5 * truth <= leak <= 1.5 * truth, (leak, truth)
    assert abs(honest) < 0.25 * leak, (honest, leak)


def test_a_kind_with_leak_correction_uses_the_cross_fitting_folds(validated, monkeypatch):
    import uplift.segments.table as table_module

    table, preds = validated.out_of_sample()
    folds, heldout = validated.out_of_sample_folds()
    assert len(folds) == len(table.frame) and heldout == 3 and set(np.unique(folds)) == {0, 1, 2, 3}
    unselected = SegmentSpec().effect_method("targetable").model_copy(update={"select_stages": False})
    plain = SegmentSpec(dimensions=("age_band", "gender"), min_size=50, effects={"targetable": unselected})
    corrected = SegmentSpec.model_validate(
        {**plain.model_dump(), "effects": {"targetable": {"variance": "segment_rate", "leak_correction": True}}}
    )
    # no kind asks for the correction (nor chooses its stages on the folds)
    base = build_segment_table(table, preds, plain, folds=folds, heldout_fold=heldout)
    assert base.equals(build_segment_table(table, preds, plain))
    calls = []
    real = table_module.segment_effects

    def spy(*args, **kwargs):
        rows, method = args
        calls.append((method.variance, method.leak_correction and rows.folds is not None, rows.heldout_fold))
        return real(*args, **kwargs)

    monkeypatch.setattr(table_module, "segment_effects", spy)
    fixed = build_segment_table(table, preds, corrected, folds=folds, heldout_fold=heldout)
    assert calls == [("segment_rate", True, 3)]
    assert fixed[["segment", "arm", "model"]].equals(base[["segment", "arm", "model"]])
    assert not np.array_equal(fixed["observed_se"], base["observed_se"])  # the segment-rate variance
    calls.clear()
    build_segment_table(table, preds, corrected)
    assert calls == [("segment_rate", False, None)]  # without folds the correction is skipped
    with pytest.raises(ValueError, match="folds"):
        build_segment_table(table, preds, corrected, folds=folds[:-1], heldout_fold=heldout)


def test_persona_mix_is_each_segments_persona_shares_times_the_personas_observed_effects():
    from uplift.segments.personamix import persona_mix

    # persona "p": treated rate 0.5, control 0.1 (effect 0.4); "q": treated 0.2, control 0.2 (effect 0)
    def rows(persona, n_treated, hits_treated, n_control, hits_control, group):
        arm = ["a"] * n_treated + ["c"] * n_control
        y = ([1.0] * hits_treated + [0.0] * (n_treated - hits_treated)
             + [1.0] * hits_control + [0.0] * (n_control - hits_control))
        return pd.DataFrame({"persona": persona, "arm": arm, "y": y, "group": group})

    frame = pd.concat([
        rows("p", 10, 5, 10, 1, 0),   # segment 0: persona p only
        rows("q", 10, 2, 10, 2, 1),   # segment 1: 20 rows of q ...
        rows("p", 2, 1, 2, 0, 1),     # ... and 4 of p (whose outcomes also count towards p's effect)
        rows("p", 8, 4, 8, 1, -1),    # rows in no shown segment still count towards p's effect
        rows("r", 0, 0, 5, 1, 2),     # persona r was never treated: the arm's effect over all rows
    ], ignore_index=True)
    propensity = pd.DataFrame({"c": np.full(len(frame), 0.5), "a": np.full(len(frame), 0.5)})
    mix = persona_mix(frame["group"].to_numpy(), 3, frame["persona"].to_numpy(), y=frame["y"].to_numpy(),
                      arm=frame["arm"].to_numpy(), propensity=propensity, control="c", arms=("a",))
    got = mix.effects
    effect_p = 10 / 20 - 2 / 20  # p's rows over all segments: treated 10 of 20, control 2 of 20
    overall = frame.loc[frame.arm == "a", "y"].mean() - frame.loc[frame.arm == "c", "y"].mean()
    assert got.shape == (3, 1) and mix.personas == ("p", "q", "r")
    assert got[0, 0] == pytest.approx(effect_p)
    assert got[1, 0] == pytest.approx((20 * 0.0 + 4 * effect_p) / 24)
    assert got[2, 0] == pytest.approx(overall)
    assert np.allclose(mix.shares, [[1, 0, 0], [4 / 24, 20 / 24, 0], [0, 0, 1]])
    # each persona's standard error is its observed effect's: p's treated variance is 0.5 x 0.5 / 20; its
    # control variance 0.1 x 0.9 / 20 is floored by the binomial at the pooled control rate, 5 of 35
    pooled_control = 5 / 35
    assert mix.se[0, 0] == pytest.approx(np.sqrt(0.25 / 20 + pooled_control * (1 - pooled_control) / 20))
    overall_rows = frame.groupby("arm")["y"].agg(["mean", "size"])
    overall_se = np.sqrt(sum(r["mean"] * (1 - r["mean"]) / r["size"] for _, r in overall_rows.iterrows()))
    assert mix.se[2, 0] == pytest.approx(overall_se)  # r was never treated: the arm's overall se
    with pytest.raises(ValueError, match="must align"):
        persona_mix(frame["group"].to_numpy()[:-1], 3, frame["persona"].to_numpy(), y=frame["y"].to_numpy(),
                    arm=frame["arm"].to_numpy(), propensity=propensity, control="c", arms=("a",))


def test_persona_weight_calibrates_the_observed_effects_against_the_blend():
    from uplift.segments.personamix import PersonaMix

    groups, arm, y, propensity, lift = _randomised_segments(200, 60, seed=6)
    rng = np.random.default_rng(7)
    predictions = pd.DataFrame({"a": (lift + rng.normal(0, 0.004, 200))[groups]})
    shares = np.column_stack([np.full(200, 0.25), np.full(200, 0.75)])  # two personas in every segment
    persona_se = np.array([[0.002], [0.001]])
    mix = PersonaMix(effects=(lift + rng.normal(0, 0.004, 200))[:, None], shares=shares, se=persona_se,
                     personas=("p", "q"))
    kwargs = dict(y=y, arm=arm, propensity=propensity, predictions=predictions, control="c")
    alone = kind_effects(groups, 200, **kwargs)
    assert alone["persona_mix"].isna().all() and not any(c.startswith("persona_load__") for c in alone.columns)
    assert kind_effects(groups, 200, **kwargs, persona_mix=mix, persona_weight=0.0).equals(alone)
    blended = kind_effects(groups, 200, **kwargs, persona_mix=mix, persona_weight=0.5)
    assert np.allclose(blended["persona_mix"], mix.effects[:, 0]) and np.allclose(blended["model"], alone["model"])
    # the same combination, fitted to the blended covariate
    observed, se = alone["observed"].to_numpy(), alone["observed_se"].to_numpy()
    effect, sd, (alpha, beta), A = fay_herriot(observed, se, 0.5 * alone["model"].to_numpy() + 0.5 * mix.effects[:, 0])
    assert np.allclose(blended["effect"], effect) and np.allclose(blended["own_sd"], sd)
    assert blended["calibration_beta"].iloc[0] == pytest.approx(beta)
    # the loading on each persona's error: the part of the estimate that rests on the mix, times that error
    prior_part = se**2 / (A + se**2)
    assert np.allclose(blended["persona_load__p"], prior_part * beta * 0.5 * 0.25 * 0.002)
    assert np.allclose(blended["persona_load__q"], prior_part * beta * 0.5 * 0.75 * 0.001)
    # two independent noisy estimates of the truth: their blend tracks it better than the model alone
    assert np.corrcoef(blended["effect"], lift)[0, 1] > np.corrcoef(alone["effect"], lift)[0, 1]
    short = PersonaMix(effects=mix.effects[:100], shares=shares[:100], se=persona_se, personas=("p", "q"))
    with pytest.raises(ValueError, match=r"persona_mix: expected shape \(200, 1\)"):
        kind_effects(groups, 200, **kwargs, persona_mix=short, persona_weight=0.5)


def test_persona_weight_is_for_targetable_segments_only():
    with pytest.raises(ValidationError, match=r"effects.persona.persona_weight: expected 0"):
        SegmentSpec(effects={"persona": {"persona_weight": 0.5}})
    with pytest.raises(ValidationError, match="persona_weight"):
        SegmentSpec(effects={"targetable": {"persona_weight": 1.5}})
    assert SegmentSpec().effect_method("targetable").persona_weight == 0.5


def test_the_persona_mix_brings_targetable_effects_closer_to_the_truth(validated, strong_world):
    """On the simulated world, with the shipped personas: the blend's effects are nearer the truth
    than the model's alone, and their 80% intervals still cover it."""
    table, preds = validated.out_of_sample()
    shipped = load_spec(__import__("conftest").ROOT / "features" / "segments.yaml", SegmentSpec)
    true_p = true_outcome_probabilities(table.frame[["person_id", "wave"]], strong_world.truth, table.arms)
    errors = {}
    for weight in (0.0, shipped.effect_method("targetable").persona_weight):
        method = shipped.effect_method("targetable").model_copy(update={"persona_weight": weight})
        spec = shipped.model_copy(update={"effects": {**shipped.effects, "targetable": method}})
        built = build_segment_table(table, preds, spec)
        loads = [c for c in built.columns if c.startswith("persona_load__")]
        assert len(loads) == (len(shipped.personas) + 1 if weight > 0 else 0)  # the rule personas and "none"
        if loads:  # the persona segments' estimates do not rest on the mix; the targetable ones do
            assert (built.loc[built["kind"] == "persona", loads] == 0).all().all()
            assert (built.loc[built["kind"] == "targetable", loads].sum(axis=1) > 0).all()
        merged = built.merge(truth_segment_effects(table, true_p, spec), on=["segment", "arm"])
        merged = merged[merged["kind"] == "targetable"]
        assert merged["persona_mix"].notna().all() == (weight > 0)
        errors[weight] = float(np.sqrt(np.mean((merged["effect"] - merged["true_effect"]) ** 2)))
        covered = ((merged["true_effect"] >= merged["lo"]) & (merged["true_effect"] <= merged["hi"])).mean()
        assert 0.7 <= covered <= 0.97, (weight, covered)
    # with exact persona effects the mix is each cell's persona shares times the personas' true effects
    exact = truth_persona_mix(table, true_p, shipped)
    members = segment_members(table.frame, shipped)
    row_truth = true_p[table.treatment_arms[0]].to_numpy() - true_p[table.control].to_numpy()
    per_persona = pd.Series(row_truth).groupby(members["persona"].to_numpy()).mean()
    cell = merged["segment"].iloc[0]
    in_cell = members["segment"].to_numpy() == cell
    shares = pd.Series(members["persona"].to_numpy()[in_cell]).value_counts(normalize=True)
    by_hand = float((shares * per_persona.loc[shares.index]).sum())
    row = exact[(exact["segment"] == cell) & (exact["arm"] == table.treatment_arms[0])]
    assert len(row) == 1 and row["true_effect"].iloc[0] == pytest.approx(by_hand)
    assert set(exact["segment"]) == set(merged["segment"])  # the targetable cells, none of the personas
    # measured: rmse 0.00327 with the model alone, 0.00277 with the blend (this world, seed 11)
    assert errors[0.5] < 0.95 * errors[0.0], errors
    # personas whose split-half signal falls short of the spec's bar are not used: the model alone
    method = shipped.effect_method("targetable").model_copy(update={"persona_min_signal": 1e6})
    strict = build_segment_table(table, preds,
                                 shipped.model_copy(update={"effects": {**shipped.effects, "targetable": method}}))
    method = shipped.effect_method("targetable").model_copy(update={"persona_weight": 0.0})
    alone = build_segment_table(table, preds,
                                shipped.model_copy(update={"effects": {**shipped.effects, "targetable": method}}))
    assert strict.equals(alone) and strict["persona_mix"].isna().all()


def _persona_world(seed: int, n_segments: int = 150, rows: int = 400):
    """Segments mixing two personas in different shares; only persona "A" responds to arm "a"."""
    rng = np.random.default_rng(seed)
    share_a = rng.uniform(0, 1, n_segments)
    groups = np.repeat(np.arange(n_segments), rows)
    persona = np.where(rng.random(len(groups)) < share_a[groups], "A", "B").astype(object)
    arm = np.where(rng.random(len(groups)) < 0.5, "c", "a").astype(object)
    p = 0.05 + np.where((arm == "a") & (persona == "A"), 0.04, 0.0)
    y = (rng.random(len(groups)) < p).astype(float)
    propensity = pd.DataFrame({"c": np.full(len(groups), 0.5), "a": np.full(len(groups), 0.5)})
    person = np.array([f"p{i}" for i in range(len(groups))], dtype=object)
    return dict(groups=groups, persona=persona, person=person, y=y, arm=arm, propensity=propensity)


def test_persona_signal_tells_personas_that_drive_the_effect_from_unrelated_groups():
    from uplift.segments.personamix import _split_signal, persona_signal

    world = _persona_world(seed=8)
    kwargs = dict(y=world["y"], arm=world["arm"], propensity=world["propensity"], control="c", arms=("a",))
    informative = persona_signal(world["groups"], 150, world["persona"], world["person"], **kwargs)
    rng = np.random.default_rng(9)
    unrelated = [persona_signal(world["groups"], 150, rng.choice(np.array(["x", "y"], dtype=object), len(world["y"])),
                                world["person"], **kwargs) for _ in range(5)]
    assert informative > 3, informative  # measured 4.6; unrelated groups -1.2 to 0.8
    assert max(abs(t) for t in unrelated) < 2.5, unrelated
    # the same people and rows give the same splits, hence the same statistic
    assert persona_signal(world["groups"], 150, world["persona"], world["person"], **kwargs) == informative
    # it is the mean of the seeded splits' values: one split alone moves with the split
    singles = []
    for seed in range(5):
        half = np.random.default_rng(seed).integers(0, 2, len(world["y"]))  # one row per person here
        singles.append(_split_signal(world["groups"], 150, world["persona"], half, **kwargs))
    assert informative == pytest.approx(np.mean(singles), abs=1e-12)
    assert persona_signal(world["groups"], 150, world["persona"], world["person"], **kwargs, splits=1) == singles[0]
    assert np.ptp(singles) > 0.1, singles
    with pytest.raises(ValueError, match="splits"):
        persona_signal(world["groups"], 150, world["persona"], world["person"], **kwargs, splits=0)


def _arm_world(seed: int, lifts: dict[str, float], rows: int = 40_000, n_groups: int = 20):
    """Rows randomised evenly to a holdout "c" and the arms of ``lifts``; base rate 5%."""
    rng = np.random.default_rng(seed)
    arms = ("c", *lifts)
    arm = rng.choice(np.array(arms, dtype=object), rows)
    groups = rng.integers(0, n_groups, rows)
    p = 0.05 + np.array([lifts.get(a, 0.0) for a in arm]) + 0.002 * (groups % 3)
    y = (rng.random(rows) < p).astype(float)
    propensity = pd.DataFrame({a: np.full(rows, 1 / len(arms)) for a in arms})
    return groups, y, arm, propensity


def test_arm_levels_match_a_hand_calculation_and_shrink_only_when_the_arms_do_not_differ():
    from uplift.segments.armlevels import arm_levels

    groups, y, arm, propensity = _arm_world(1, {"a": 0.0, "b": 0.01, "d": 0.03, "e": 0.05})
    levels = arm_levels(y, arm, propensity, control="c", arms=("a", "b", "d", "e"))
    base = y[arm == "c"].mean()
    observed = np.array([y[arm == a].mean() - base for a in ("a", "b", "d", "e")])
    pooled = y.mean()  # equal weights: var / n, floored by the pooled rate's binomial variance

    def var(a: str) -> float:
        return max(y[arm == a].var(), pooled * (1 - pooled)) / (arm == a).sum()

    v = np.array([var(a) for a in ("a", "b", "d", "e")])
    A = max(np.var(observed, ddof=1) - v.mean(), 0.0)
    gamma = A / (A + v)
    np.testing.assert_allclose(levels.observed, observed)
    np.testing.assert_allclose(levels.gamma, gamma)
    np.testing.assert_allclose(levels.level, observed.mean() + gamma * (observed - observed.mean()))
    np.testing.assert_allclose(levels.own_sd, np.sqrt(gamma * v))
    assert levels.common_sd == pytest.approx(np.sqrt(var("c") + v.mean() / 4))
    assert levels.gamma.min() > 0.9  # arms 1-5 points apart, measured to about 0.3: their own observations count
    # arms that do not differ: their observed spread is noise, and every arm gets the mean level
    groups, y, arm, propensity = _arm_world(2, {"a": 0.01, "b": 0.01, "d": 0.01, "e": 0.01})
    flat = arm_levels(y, arm, propensity, control="c", arms=("a", "b", "d", "e"))
    assert flat.gamma.max() < 0.5
    assert np.ptp(flat.level) < 0.5 * np.ptp(flat.observed)
    # an arm without a single event is not a level known exactly: its variance is the pooled rate's
    y_none = np.where(arm == "e", 0.0, y)
    quiet = arm_levels(y_none, arm, propensity, control="c", arms=("a", "b", "d", "e"))
    assert quiet.own_sd[3] > 0 and quiet.gamma[3] < 1


def test_observed_arm_levels_move_each_arm_and_keep_the_segments_deviations():
    groups, y, arm, propensity = _arm_world(3, {"a": 0.0, "b": 0.02, "d": 0.04})
    rng = np.random.default_rng(4)
    predictions = pd.DataFrame({a: rng.normal(0.01, 0.004, len(y)) for a in ("a", "b", "d")})  # says nothing
    kwargs = dict(y=y, arm=arm, propensity=propensity, predictions=predictions, control="c")
    kept = kind_effects(groups, 20, **kwargs)
    moved = kind_effects(groups, 20, **kwargs, observed_arm_levels=True)
    from uplift.segments.armlevels import arm_levels

    levels = arm_levels(y, arm, propensity, control="c", arms=("a", "b", "d"))
    rows = np.bincount(groups, minlength=20)[moved["group"].to_numpy()]
    level = moved.assign(w=rows * moved["effect"], rows=rows).groupby("arm")[["w", "rows"]].sum()
    np.testing.assert_allclose((level["w"] / level["rows"]).loc[["a", "b", "d"]], levels.level)
    shift = (moved["effect"] - kept["effect"]).groupby(moved["arm"]).agg(["min", "max"])
    np.testing.assert_allclose(shift["min"], shift["max"])  # one shift per arm: the deviations stay
    assert (moved.groupby("arm")["arm_level_load"].nunique() == 1).all()
    assert (moved["arm_level_load"] > 0).all() and moved["arm_level_load_common"].nunique() == 1
    assert "arm_level_load" not in kept.columns
    # the level is the data's: the slope loadings keep only the deviations from it (row-weighted mean 0 per arm)
    slope = moved.assign(w=rows * moved["calibration_slope_load"]).groupby("arm")["w"].sum()
    np.testing.assert_allclose(slope, 0.0, atol=1e-12)
    assert not np.allclose(kept.assign(w=rows * kept["calibration_slope_load"]).groupby("arm")["w"].sum(), 0.0)


def test_low_rank_effects_keep_a_rank_one_table_and_remove_what_it_cannot_hold():
    from uplift.segments.armtable import low_rank_effects

    messages, channels = ("m1", "m2", "m3"), ("meta", "flyer")
    appeal, carry = np.array([0.004, 0.001, -0.002]), np.array([1.0, 0.5])
    exact = np.outer(appeal, carry)  # the message's appeal times the channel's strength
    # noise orthogonal to both profiles: appeal' E = 0 and E carry = 0, so the rank-1 part is exactly the table
    noise = np.outer(np.array([1.0, 0.0, 2.0]) / 1e4, np.array([1.0, -2.0]))
    assert abs(appeal @ np.array([1.0, 0.0, 2.0])) < 1e-12 and abs(np.array([1.0, -2.0]) @ carry) < 1e-12
    arms = [f"{m}@{c}" for m in messages for c in channels]
    table = pd.DataFrame({"group": np.repeat([0, 1, 2], len(arms)), "arm": arms * 3})
    values = np.concatenate([(exact + noise).ravel(), exact.ravel(), (exact + noise).ravel()])
    values[-1] = np.nan  # group 2 lacks an arm's estimate: kept as it is
    order = np.random.default_rng(0).permutation(len(table))  # the lines' order does not matter
    out = low_rank_effects(table["group"].to_numpy()[order], table["arm"].to_numpy()[order], values[order])
    back = np.empty_like(out)
    back[order] = out
    np.testing.assert_allclose(back[:6], exact.ravel(), atol=1e-15)  # the noise is gone
    np.testing.assert_allclose(back[6:12], exact.ravel(), atol=1e-15)  # a rank-1 table stays
    np.testing.assert_array_equal(back[12:], values[12:])
    # many sets of effects at once (Thompson draws): each as if alone
    many = np.vstack([values, values[::-1]])
    both = low_rank_effects(table["group"].to_numpy(), table["arm"].to_numpy(), many)
    np.testing.assert_array_equal(both[0], low_rank_effects(table["group"].to_numpy(), table["arm"].to_numpy(), values))
    np.testing.assert_array_equal(both[1],
                                  low_rank_effects(table["group"].to_numpy(), table["arm"].to_numpy(), values[::-1]))
    # a table no larger than the rank in one direction is left alone
    one_channel = low_rank_effects(np.zeros(3), np.array(["m1@meta", "m2@meta", "m3@meta"]), appeal + 1e-4)
    np.testing.assert_array_equal(one_channel, appeal + 1e-4)
    with pytest.raises(ValueError, match="rank"):
        low_rank_effects(np.zeros(3), np.array(["m1@meta", "m2@meta", "m3@meta"]), appeal, rank=0)


def test_message_channel_rank_projects_each_segments_table_and_keeps_its_intervals():
    arms = ("m1@meta", "m1@flyer", "m2@meta", "m2@flyer", "m3@meta", "m3@flyer")
    groups, y, arm, propensity = _arm_world(5, {a: 0.004 * (k % 3) for k, a in enumerate(arms)})
    rng = np.random.default_rng(6)
    predictions = pd.DataFrame({a: rng.normal(0.004, 0.003, len(y)) for a in arms})
    kwargs = dict(y=y, arm=arm, propensity=propensity, predictions=predictions, control="c", observed_arm_levels=True)
    raw = kind_effects(groups, 20, **kwargs)
    built = kind_effects(groups, 20, **kwargs, message_channel_rank=1)
    assert np.abs(built["effect"] - raw["effect"]).max() > 0
    pd.testing.assert_frame_equal(built.drop(columns="effect"), raw.drop(columns="effect"))  # sd and loads kept
    for _, seg in built.groupby("group"):  # every segment's 3 x 2 table is now rank 1
        grid = seg.assign(m=seg["arm"].str.split("@").str[0], c=seg["arm"].str.split("@").str[1])
        sv = np.linalg.svd(grid.pivot(index="m", columns="c", values="effect").to_numpy(), compute_uv=False)
        assert sv[1] <= 1e-9 * sv[0]


def test_the_segment_spec_projects_the_targetable_kind_only(validated, monkeypatch):
    import uplift.segments.table as T

    shipped = load_spec(__import__("conftest").ROOT / "features" / "segments.yaml", SegmentSpec)
    assert shipped.effect_method("targetable").message_channel_rank == 1
    assert shipped.effect_method("persona").message_channel_rank == 0
    seen = []
    real = T.segment_effects
    monkeypatch.setattr(T, "segment_effects", lambda *a, **kw: seen.append(a[1].message_channel_rank)
                        or real(*a, **kw))
    build_segment_table(*validated.out_of_sample(), shipped)
    assert seen == [1, 0]  # targetable, then persona


def test_the_segment_spec_puts_the_targetable_kind_on_its_arms_own_slopes(validated, monkeypatch):
    import uplift.segments.table as T

    shipped = load_spec(__import__("conftest").ROOT / "features" / "segments.yaml", SegmentSpec)
    assert SegmentSpec(name="d", dimensions=("age_band",)).effect_method("targetable").arm_slopes
    seen = []
    real = T.segment_effects
    monkeypatch.setattr(T, "segment_effects", lambda *a, **kw: seen.append(a[1].arm_slopes) or real(*a, **kw))
    build_segment_table(*validated.out_of_sample(), shipped)
    assert seen == [True, False]  # targetable, then persona


def test_additive_effects_recover_an_additive_table_and_keep_each_arms_level():
    from uplift.segments.additive import additive_effects

    cells = pd.MultiIndex.from_product([["18-24", "25-34", "35-44"], ["female", "male"],
                                        ["Delft", "Den Haag", "Westland", "other"]],
                                       names=["age_band", "gender", "municipality"]).to_frame(index=False)
    u, v = np.array([1.0, -2.0, 1.0]), np.array([1.0, -1.0, 3.0, -3.0])  # both sum to 0
    age = cells["age_band"].map(dict(zip(["18-24", "25-34", "35-44"], range(3), strict=True))).to_numpy()
    place = cells["municipality"].map(dict(zip(["Delft", "Den Haag", "Westland", "other"], range(4),
                                               strict=True))).to_numpy()
    rng = np.random.default_rng(3)
    ag_part = rng.normal(0.002, 0.001, (3, 2))
    place_part = rng.normal(0.0, 0.0005, 4)
    exact = ag_part[age, (cells["gender"] == "male").to_numpy().astype(int)] + place_part[place]
    # an age x place interaction whose age and place profiles sum to 0: with equal weights it is orthogonal to
    # every age band x gender part and every place part, so the additive fit removes exactly it
    interaction = 1e-4 * u[age] * v[place]
    attributes = pd.concat([cells, cells], ignore_index=True)
    arm = np.repeat(["m1@meta", "m2@flyer"], len(cells))
    effect = np.concatenate([exact + interaction, 2 * exact])
    terms = (("age_band", "gender"), ("municipality",))
    out = additive_effects(effect, arm, attributes, terms, np.full(len(effect), 100.0))
    np.testing.assert_allclose(out[: len(cells)], exact, atol=1e-15)  # the interaction is gone
    np.testing.assert_allclose(out[len(cells):], 2 * exact, atol=1e-15)  # an additive table stays
    # unequal weights: each arm's weighted mean (its level) is kept; a line without an effect or rows is left alone
    weights = rng.integers(50, 500, len(effect)).astype(float)
    weights[5] = 0.0
    noisy = effect + rng.normal(0.0, 0.002, len(effect))
    noisy[30] = np.nan
    smooth = additive_effects(noisy, arm, attributes, terms, weights)
    assert smooth[5] == noisy[5] and np.isnan(smooth[30])
    for name in ("m1@meta", "m2@flyer"):
        used = (arm == name) & np.isfinite(noisy) & (weights > 0)
        assert np.average(smooth[used], weights=weights[used]) == pytest.approx(
            np.average(noisy[used], weights=weights[used]), abs=1e-15)
    # a fit is kept
    np.testing.assert_allclose(additive_effects(smooth, arm, attributes, terms, weights), smooth, atol=1e-15)
    np.testing.assert_array_equal(additive_effects(noisy, arm, attributes, (), weights), noisy)  # no terms: as it was
    with pytest.raises(ValueError, match=r"missing the dimension column\(s\) \['gender'\]"):
        additive_effects(effect, arm, attributes.drop(columns="gender"), terms, weights)
    with pytest.raises(ValueError, match="one line each"):
        additive_effects(effect[:-1], arm, attributes, terms, weights)


def test_smooth_over_fits_each_arms_effects_across_the_groups_and_shares_their_errors_through_the_fit():
    arms = ("m1@meta", "m1@flyer", "m2@meta", "m2@flyer")
    groups, y, arm, propensity = _arm_world(7, {a: 0.004 * (k % 2) for k, a in enumerate(arms)})
    rng = np.random.default_rng(8)
    predictions = pd.DataFrame({a: rng.normal(0.004, 0.003, len(y)) for a in arms})
    attributes = pd.DataFrame({"age_band": np.repeat(["18-24", "25-34", "35-44", "45-54"], 5),
                               "municipality": np.tile(["Delft", "Den Haag", "Westland", "Rijswijk", "other"], 4)})
    kwargs = dict(y=y, arm=arm, propensity=propensity, predictions=predictions, control="c", observed_arm_levels=True)
    raw = kind_effects(groups, 20, **kwargs)
    terms = (("age_band",), ("municipality",))
    built = kind_effects(groups, 20, **kwargs, smooth_over=terms, group_attributes=attributes)
    assert np.abs(built["effect"] - raw["effect"]).max() > 0
    # the slope's error moves the effects it scales: fitted alike
    fitted = ["effect", "calibration_slope_load", "own_sd"]
    fit_loads = [c for c in built.columns if c.startswith("fit_load__")]
    assert 2 <= len(fit_loads) <= 8  # the rank of an arm's design: 4 age bands + 5 places - 1
    pd.testing.assert_frame_equal(built.drop(columns=fitted + fit_loads), raw.drop(columns=fitted))  # other loads kept
    from uplift.segments.additive import additive_effects, additive_loadings

    lines = attributes.iloc[built["group"].to_numpy()]
    rows = np.bincount(groups, minlength=20)[built["group"].to_numpy()]
    for column in fitted[:2]:
        np.testing.assert_allclose(built[column], additive_effects(raw[column].to_numpy(), built["arm"].to_numpy(),
                                                                   lines, terms, rows))
    # every line was fitted: its error is the fit of the errors before it, shared through the arm's factors
    assert (built["own_sd"] == 0).all()
    hat = additive_effects(np.eye(len(built)), built["arm"].to_numpy(), lines, terms, rows).T  # the fit is linear
    expected = hat @ np.diag(raw["own_sd"].to_numpy() ** 2) @ hat.T  # zero between two arms
    same_arm = built["arm"].to_numpy()[:, None] == built["arm"].to_numpy()[None, :]
    loads = built[fit_loads].to_numpy()
    np.testing.assert_allclose(np.where(same_arm, loads @ loads.T, 0.0), expected, atol=1e-12 * expected.max())
    # a line the fit leaves alone (no rows, no sd) keeps no loading; no terms, no factors
    sd = raw["own_sd"].to_numpy().copy()
    sd[3] = np.nan
    weights = rows.astype(float)
    weights[7] = 0.0
    partial = additive_loadings(sd, built["arm"].to_numpy(), lines, terms, weights)
    assert (partial[[3, 7]] == 0).all() and np.abs(partial).sum(axis=1)[[0, 1, 2]].min() > 0
    assert additive_loadings(sd, built["arm"].to_numpy(), lines, (), weights).shape == (len(built), 0)
    with pytest.raises(ValueError, match="group_attributes: expected one row per group"):
        kind_effects(groups, 20, **kwargs, smooth_over=terms)


def test_the_segment_spec_smooths_the_targetable_kind_over_its_own_dimensions(validated, monkeypatch):
    import uplift.segments.table as T

    shipped = load_spec(__import__("conftest").ROOT / "features" / "segments.yaml", SegmentSpec)
    assert shipped.effect_method("targetable").smooth_over == (("age_band", "gender"), ("municipality",))
    assert shipped.effect_method("persona").smooth_over == ()
    seen = []
    real = T.segment_effects

    def spy(*a, **kw):
        seen.append((a[1].smooth_over, list(kw["group_attributes"].columns)))
        return real(*a, **kw)

    monkeypatch.setattr(T, "segment_effects", spy)
    built = build_segment_table(*validated.out_of_sample(), shipped)
    assert [s for s, _ in seen] == [(("age_band", "gender"), ("municipality",)), ()]  # targetable, then persona
    assert {"age_band", "gender", "municipality"} <= set(seen[0][1])
    # the parts stay with the table (the planner fits its Thompson draws on them); personas have none
    cells = built[built["kind"] == "targetable"]
    assert (cells["part__age_band+gender"] == cells["age_band"] + "|" + cells["gender"]).all()
    assert (cells["part__municipality"] == cells["municipality"]).all()
    assert (built.loc[built["kind"] == "persona", ["part__age_band+gender", "part__municipality"]] == "").all().all()
    with pytest.raises(ValidationError, match=r"\['neighbourhood'\] are not among the segment dimensions"):
        SegmentSpec(effects={"targetable": {"smooth_over": [["neighbourhood"]]}})
    with pytest.raises(ValidationError, match="persona segments have no dimension values"):
        SegmentSpec(effects={"persona": {"smooth_over": [["age_band"]]}})
    with pytest.raises(ValidationError, match="every term needs at least one dimension"):
        SegmentSpec(effects={"targetable": {"smooth_over": [[]]}})


def test_table_rank_is_the_largest_rank_of_the_complete_tables():
    from uplift.segments.armtable import table_rank

    arms = np.array(["a@x", "a@y", "b@x", "b@y"] * 2)
    groups = np.repeat([0, 1], 4)
    assert table_rank(groups, arms, np.array([1.0, 2.0, 2.0, 4.0, 0.0, 0.0, 0.0, 0.0])) == 1  # a product; zeros
    assert table_rank(groups, arms, np.array([1.0, 2.0, 2.0, 4.0, 1.0, 0.0, 0.0, 1.0])) == 2
    assert table_rank(groups, arms, np.array([1.0, 2.0, 2.0, 4.0, 1.0, 0.0, 0.0, np.nan])) == 1  # incomplete: ignored
    assert table_rank(groups[:3], np.array(["a@x", "b@x", "c@x"]), np.ones(3)) == 0  # one channel: no table


def test_the_segment_table_records_the_stages_its_data_kept(validated):
    from uplift.segments import stage_table
    from uplift.specs.segments import EffectMethod

    table, preds = validated.out_of_sample()
    folds, heldout = validated.out_of_sample_folds()
    method = EffectMethod(arm_slopes=True, observed_arm_levels=True, arm_spread=True, select_stages=True)
    spec = SegmentSpec(dimensions=("age_band", "gender", "municipality"), min_size=50, effects={"targetable": method})
    chosen = build_segment_table(table, preds, spec, folds=folds, heldout_fold=heldout)
    record = chosen.attrs["stages"]["targetable"]
    assert record["by"] == "held-out rows" and record["candidates"] == ["arm_slopes", "arm_levels"]
    assert set(record["kept"]) <= set(record["candidates"]) and np.isfinite(record["slope"])
    stages = stage_table(chosen)
    assert list(stages["stage"]) == ["arm_slopes", "arm_levels"] and stages["gain_se"].ge(0).all()
    assert (stages["gain"] > 0).eq(stages["kept"]).all()  # kept where it earns, dropped where it does not
    # two arms cannot tell the arms' slopes apart: the stage changes nothing, earns nothing, and is dropped
    assert stages.set_index("stage").loc["arm_slopes", "gain"] == 0 and "arm_slopes" not in record["kept"]
    # the table is the one the kept stages, declared, give
    declared = method.model_copy(update={"select_stages": False, "arm_slopes": "arm_slopes" in record["kept"],
                                         "observed_arm_levels": "arm_levels" in record["kept"]})
    fixed = build_segment_table(table, preds, spec.model_copy(update={"effects": {"targetable": declared}}),
                                folds=folds, heldout_fold=heldout)
    np.testing.assert_allclose(chosen["effect"], fixed["effect"])
    assert fixed.attrs["stages"]["targetable"]["by"] == "spec"
    # without the folds there is nothing to judge on: the stages run as declared, and the table says so
    unjudged = build_segment_table(table, preds, spec)
    assert unjudged.attrs["stages"]["targetable"] == {**unjudged.attrs["stages"]["targetable"], "by": "spec",
                                                      "kept": ["arm_slopes", "arm_levels"]}
