"""Tests of experiment design and analysis: spec, assignment, power, effects, CUPED, SRM, summary."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

import uplift.design as design
from uplift.data.contracts import EXPOSURES
from uplift.design import (
    age_band,
    analyze,
    assign,
    design_shares,
    hash_uniform,
    power_table,
    srm_check,
    stratum_balance,
    summary_text,
    to_exposures,
)
from uplift.errors import DataError, SchemaError, SpecError
from uplift.specs import load_spec
from uplift.specs.experiment import ExperimentSpec

ROOT = Path(__file__).resolve().parents[1]
ARMS = ["fresh_start@meta", "free_voucher@flyer", "ict_role_model@linkedin"]
BASE = {
    "name": "test-wave",
    "wave": 5,
    "arms": ARMS,
    "holdout_share": 0.2,
    "arm_weights": {"fresh_start@meta": 2.0, "free_voucher@flyer": 1.0, "ict_role_model@linkedin": 1.0},
    "strata": ["age_band", "gender"],
    "salt": "salt-one",
    "outcome": "registration",
    "attribution_days": 28,
    "minimum_detectable_effect": 0.002,
    "start": "2025-07-21",
    "end": "2025-08-17",
}


def make_spec(**changes) -> ExperimentSpec:
    return ExperimentSpec.model_validate({**BASE, **changes})


def make_audience(n: int, seed: int = 0, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "person_id": [f"p{i:07d}" for i in range(start, start + n)],
            "age": rng.integers(18, 68, n),
            "gender": rng.choice(["female", "male", "other"], n, p=[0.49, 0.49, 0.02]),
            "municipality": rng.choice(["Den Haag", "Delft", "Westland"], n),
        }
    )


# -- spec -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"holdout_share": 1.0}, "holdout_share"),
        ({"holdout_share": 0.0}, "holdout_share"),
        ({"arm_weights": {**BASE["arm_weights"], "free_voucher@flyer": -1.0}}, "arm_weights"),
        ({"arm_weights": {"fresh_start@meta": 1.0}}, "arm_weights"),
        ({"arm_weights": "equal"}, "arm_weights"),
        ({"control": "fresh_start@meta"}, "control"),
        ({"end": "2025-07-01"}, "end"),
        ({"outcome": "purchase"}, "outcome"),
        ({"arms": ["fresh_start", "free_voucher@flyer"]}, "arms"),
        ({"strata": ["gender", "gender"]}, "strata"),
        ({"minimum_detectable_effect": 2.0}, "minimum_detectable_effect"),
        ({"alpha": 0.0}, "alpha"),
        ({"wave": 0}, "wave"),
        ({"holdout": 0.1}, "holdout"),
        ({"multiplicity": "bonferroni"}, "multiplicity"),
    ],
)
def test_spec_errors_name_the_field(tmp_path, changes, field):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}))
    with pytest.raises(SpecError, match=rf"bad\.yaml.*{field}"):
        load_spec(path, ExperimentSpec)


def test_valid_spec_loads_with_defaults(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(BASE))
    spec = load_spec(path, ExperimentSpec)
    assert spec.control == "holdout"
    assert (spec.alpha, spec.power, spec.multiplicity) == (0.05, 0.8, "holm")
    assert spec.start == dt.date(2025, 7, 21)
    assert spec.all_arms == ("holdout", *ARMS)


def test_example_wave5_spec_loads_and_uses_region_arms():
    spec = load_spec(ROOT / "experiments" / "wave5.yaml", ExperimentSpec)
    assert spec.wave == 5 and spec.control == "holdout" and spec.multiplicity == "bh"
    region_file = ROOT / "features" / "regions" / "haaglanden.yaml"
    if not region_file.exists():
        pytest.skip("features/regions/haaglanden.yaml not present")
    region = yaml.safe_load(region_file.read_text())
    possible = {f"{m}@{c}" for m in region["messages"] for c in region["channels"]}
    assert set(spec.arms) == possible


# -- shares ---------------------------------------------------------------------------------
def test_design_shares_put_holdout_first_and_split_the_rest_by_weight():
    shares = design_shares(make_spec())
    assert list(shares.index) == ["holdout", *ARMS]
    np.testing.assert_allclose(shares.to_numpy(), [0.2, 0.4, 0.2, 0.2])


def test_from_plan_weights_are_required_and_checked():
    spec = make_spec(arm_weights="from_plan")
    with pytest.raises(SpecError, match="from_plan"):
        design_shares(spec)
    shares = design_shares(spec, {"fresh_start@meta": 300, "free_voucher@flyer": 100, "ict_role_model@linkedin": 400})
    np.testing.assert_allclose(shares.to_numpy(), [0.2, 0.3, 0.1, 0.4])
    with pytest.raises(DataError, match="ict_role_model@linkedin"):
        design_shares(spec, {"fresh_start@meta": 300, "free_voucher@flyer": 100})
    with pytest.raises(DataError, match="positive"):
        design_shares(spec, {"fresh_start@meta": 300, "free_voucher@flyer": 0, "ict_role_model@linkedin": 1})
    with pytest.raises(SpecError, match="arm_weights are declared"):
        design_shares(make_spec(), {"fresh_start@meta": 1, "free_voucher@flyer": 1, "ict_role_model@linkedin": 1})


# -- assignment -----------------------------------------------------------------------------
def test_hash_uniform_matches_the_documented_construction():
    import hashlib

    u = hash_uniform(pd.Series(["abc", "p0000042"]), "s")
    word = int.from_bytes(hashlib.blake2b(b"s:p0000042", digest_size=8).digest(), "big")
    assert u[1] == (word >> 11) / 2**53
    assert 0 <= u.min() and u.max() < 1


def test_same_spec_gives_identical_assignment():
    audience = make_audience(5_000)
    first = assign(audience, make_spec())
    second = assign(audience.copy(), make_spec())
    pd.testing.assert_frame_equal(first, second)
    assert list(first.columns) == list(design.ASSIGNMENT_COLUMNS)


def test_adding_people_and_reordering_moves_nobody():
    audience = make_audience(20_000)
    before = assign(audience, make_spec()).set_index("person_id")
    newcomers = make_audience(2_000, seed=1, start=20_000)
    grown = pd.concat([newcomers, audience], ignore_index=True).sample(frac=1.0, random_state=3)
    after = assign(grown, make_spec()).set_index("person_id")
    assert len(after) == 22_000
    pd.testing.assert_frame_equal(after.loc[before.index], before)


def test_different_salt_gives_different_assignment():
    audience = make_audience(20_000)
    a = assign(audience, make_spec())["arm"]
    b = assign(audience, make_spec(salt="salt-two"))["arm"]
    changed = (a != b).mean()
    # independent draws disagree with probability 1 - sum(p^2) = 1 - (0.04 + 0.16 + 0.04 + 0.04) = 0.72
    assert changed == pytest.approx(0.72, abs=0.02)


def test_realised_shares_match_the_design_on_100k_people():
    n = 100_000
    spec = make_spec()
    out = assign(make_audience(n), spec)
    shares = design_shares(spec)
    realised = out["arm"].value_counts(normalize=True).reindex(shares.index)
    tolerance = 4 * np.sqrt(shares * (1 - shares) / n)
    assert ((realised - shares).abs() < tolerance).all(), (realised, shares)
    assert not srm_check(out["arm"].value_counts(), shares).flagged
    # each row carries the design probability of its own arm
    np.testing.assert_allclose(out["assignment_probability"], out["arm"].map(shares))


def test_assignment_splits_arms_and_keys_strata():
    out = assign(make_audience(2_000), make_spec())
    hold = out[out["arm"] == "holdout"]
    assert (hold["message"] == "none").all() and (hold["channel"] == "none").all()
    treated = out[out["arm"] != "holdout"]
    assert (treated["message"] + "@" + treated["channel"] == treated["arm"]).all()
    assert out["stratum"].str.fullmatch(r"age_band=\d\d-\d\d\|gender=(female|male|other)").all()
    assert (out["wave"] == 5).all()


def test_assign_does_not_touch_the_callers_frame_and_checks_input():
    audience = make_audience(500)
    snapshot = audience.copy()
    assign(audience, make_spec())
    pd.testing.assert_frame_equal(audience, snapshot)
    with pytest.raises(SchemaError, match="'municipality'"):
        assign(audience.drop(columns="municipality"), make_spec(strata=["municipality"]))
    with pytest.raises(SchemaError, match="person_id"):
        assign(pd.concat([audience, audience.head(2)]), make_spec())


def test_age_bands_at_their_edges():
    ages = pd.Series([18, 24, 25, 34, 35, 44, 45, 54, 55, 67])
    expected = ["18-24", "18-24", "25-34", "25-34", "35-44", "35-44", "45-54", "45-54", "55-67", "55-67"]
    assert age_band(ages).tolist() == expected
    with pytest.raises(DataError, match="'age'.*18-67"):
        age_band(pd.Series([30, 17]))


def test_stratum_balance_reports_a_skewed_stratum():
    spec = make_spec(strata=["gender"])
    out = assign(make_audience(30_000), spec)
    shares = design_shares(spec)
    clean = stratum_balance(out, shares)
    assert clean["n"].sum() == 30_000
    assert set(clean["stratum"]) == {"gender=female", "gender=male", "gender=other"}
    assert (clean["max_share_gap"] < 5 * np.sqrt(0.25 / clean["n"])).all()
    skewed = out.assign(arm=np.where(out["stratum"] == "gender=other", "holdout", out["arm"]))
    table = stratum_balance(skewed, shares).set_index("stratum")
    assert table.loc["gender=other", "p_value"] < 1e-6
    assert table.loc["gender=other", "max_share_gap"] == pytest.approx(0.8)


def test_to_exposures_meets_the_exposures_contract():
    spec = make_spec()
    out = assign(make_audience(3_000), spec)
    costs = {"meta": 0.6, "flyer": 0.4, "linkedin": 2.5}
    exposures = to_exposures(out, spec, costs)
    EXPOSURES.validate(exposures)
    assert (exposures["assigned_at"] == pd.Timestamp("2025-07-21", tz="UTC")).all()
    expected_cost = out["channel"].map({**costs, "none": 0.0})
    np.testing.assert_allclose(exposures["cost_eur"], expected_cost)
    with pytest.raises(DataError, match="linkedin"):
        to_exposures(out, spec, {"meta": 0.6, "flyer": 0.4})


# -- power ----------------------------------------------------------------------------------
def test_power_row_matches_the_textbook_formula():
    # holdout 0.2, arm weights 2:1:1 -> fresh_start@meta has share 0.4, i.e. k = n_arm / n_holdout = 2
    spec = make_spec(minimum_detectable_effect=0.01)
    table = power_table(spec, base_rate=0.02, n_available=100_000).set_index("arm")
    row = table.loc["fresh_start@meta"]
    # Two-sided two-proportion z-test, unequal groups (n_arm = k * n_holdout):
    # n_holdout = (z_{1-a/2} sqrt(pbar qbar (1 + 1/k)) + z_{1-b} sqrt(p0 q0 + p1 q1 / k))^2 / d^2
    z_a, z_b = 1.959963984540054, 0.8416212335729143  # z_0.975, z_0.80
    p0, d, k = 0.02, 0.01, 2.0
    p1 = p0 + d
    pbar = (p0 + k * p1) / (1 + k)  # 0.026667
    n_holdout = (
        z_a * math.sqrt(pbar * (1 - pbar) * (1 + 1 / k)) + z_b * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1) / k)
    ) ** 2 / d**2
    # by hand: 1.95996 * sqrt(0.025956 * 1.5) = 0.38674; 0.84162 * sqrt(0.0196 + 0.01455) = 0.15553;
    # (0.38674 + 0.15553)^2 / 0.0001 = 2940.6
    assert row["n_holdout_needed"] == math.ceil(n_holdout) == 2_941
    assert row["n_arm_needed"] == math.ceil(k * n_holdout)
    assert row["n_total_needed"] == math.ceil(n_holdout / 0.2)
    assert row["n_holdout_available"] == 20_000 and row["n_arm_available"] == 40_000
    assert row["sufficient"]


def test_power_minimum_detectable_effect_inverts_the_sample_size():
    spec = make_spec()
    needed = power_table(spec, 0.01, 1_000).set_index("arm")["n_total_needed"]
    for arm, n_total in needed.items():
        row = power_table(spec, 0.01, int(n_total)).set_index("arm").loc[arm]
        assert row["mde_available"] == pytest.approx(0.002, rel=1e-3)
        assert row["power_available"] == pytest.approx(0.8, abs=2e-3)
        assert row["sufficient"]
    small = power_table(spec, 0.01, 1_000).set_index("arm")
    big = power_table(spec, 0.01, 1_000_000).set_index("arm")
    assert (big["mde_available"] < small["mde_available"]).all()
    assert not small["sufficient"].any()


def test_power_rejects_impossible_inputs():
    with pytest.raises(DataError, match="base_rate"):
        power_table(make_spec(), 0.0, 1_000)
    with pytest.raises(DataError, match="n_available"):
        power_table(make_spec(), 0.01, 0)


# -- analysis -------------------------------------------------------------------------------
def simulate_wave(seed: int, n: int, effects: dict[str, float], *, base: float = 0.02, prior_lift: float = 0.5):
    """Randomised wave: a pre-wave 0/1 ``prior`` raises the base rate by ``prior_lift``; arms add ``effects``."""
    rng = np.random.default_rng(seed)
    arms = np.array(["holdout", *effects])
    shares = np.array([0.25] + [0.75 / len(effects)] * len(effects))
    arm = rng.choice(arms, n, p=shares)
    prior = (rng.random(n) < 0.2).astype(float)
    p = base + prior_lift * prior + pd.Series(arm).map({"holdout": 0.0, **effects}).to_numpy()
    return pd.DataFrame({"arm": arm, "outcome": (rng.random(n) < p).astype(int), "prior": prior}), dict(
        zip(arms, shares, strict=True)
    )


def test_confidence_intervals_cover_the_true_effect():
    effects = {"fresh_start@meta": 0.02, "free_voucher@flyer": 0.0}
    hits = {"plain": 0, "cuped": 0}
    runs = 150
    for seed in range(runs):
        frame, _ = simulate_wave(seed, 4_000, effects)
        arms = analyze(frame, covariates=["prior"]).treatment.set_index("arm")
        for arm, truth in effects.items():
            hits["plain"] += arms.loc[arm, "ci_low"] <= truth <= arms.loc[arm, "ci_high"]
            hits["cuped"] += arms.loc[arm, "cuped_ci_low"] <= truth <= arms.loc[arm, "cuped_ci_high"]
    for kind, hit in hits.items():
        coverage = hit / (2 * runs)
        assert 0.91 <= coverage <= 0.985, (kind, coverage)


def test_known_effect_is_found_and_a_null_arm_is_not():
    frame, shares = simulate_wave(7, 60_000, {"fresh_start@meta": 0.03, "free_voucher@flyer": 0.0})
    result = analyze(frame, expected_shares=shares)
    arms = result.arms.set_index("arm")
    assert list(result.arms["arm"]) == ["holdout", "fresh_start@meta", "free_voucher@flyer"]
    win = arms.loc["fresh_start@meta"]
    assert win["ci_low"] > 0 and win["p_value"] < 1e-6 and win["verdict"] == "better"
    assert win["ci_low"] <= 0.03 <= win["ci_high"]
    assert win["relative_lift"] == pytest.approx(win["effect"] / arms.loc["holdout", "rate"])
    assert arms.loc["free_voucher@flyer", "ci_low"] < 0 < arms.loc["free_voucher@flyer", "ci_high"]
    assert arms.loc["free_voucher@flyer", "verdict"] == "unclear"
    assert np.isnan(arms.loc["holdout", "effect"])
    assert arms["n"].sum() == 60_000
    assert result.srm is not None and not result.srm.flagged
    assert result.arms["cuped_effect"].isna().all()  # no covariates, no adjustment
    assert result.treatment["method"].eq("exact").all() and result.treatment["method_note"].eq("no covariates").all()


def test_plain_interval_adds_the_exact_intervals_in_squares_and_p_value_is_never_below_fisher():
    # the interval was Newcombe's with Wilson limits and the p-value the pooled z-test; both can claim more than an
    # exact test allows at small counts, so the limits are now Clopper-Pearson and the p-value is at least Fisher's
    frame = pd.DataFrame(
        {"arm": ["holdout"] * 200 + ["a@meta"] * 100, "outcome": [1] * 10 + [0] * 190 + [1] * 12 + [0] * 88}
    )
    row = analyze(frame).treatment.iloc[0]

    def exact(x, n, a=0.05):  # Clopper-Pearson from the beta quantiles, as in Clopper & Pearson (1934)
        return stats.beta.ppf(a / 2, x, n - x + 1), stats.beta.ppf(1 - a / 2, x + 1, n - x)

    (l1, u1), (l0, u0) = exact(12, 100), exact(10, 200)
    assert row["effect"] == pytest.approx(0.07)
    assert (row["rate_ci_low"], row["rate_ci_high"]) == pytest.approx((l1, u1))
    assert row["ci_low"] == pytest.approx(0.07 - math.sqrt((0.12 - l1) ** 2 + (u0 - 0.05) ** 2))
    assert row["ci_high"] == pytest.approx(0.07 + math.sqrt((u1 - 0.12) ** 2 + (0.05 - l0) ** 2))
    fisher = stats.fisher_exact([[12, 88], [10, 190]]).pvalue
    assert row["p_value"] >= fisher and row["p_value"] < 0.05 and row["ci_low"] > 0  # the test and the interval agree
    # at the level of its p-value the interval just reaches 0 (the p-value is the interval's, larger than Fisher's)
    (a1, _), (_, b0) = exact(12, 100, row["p_value"]), exact(10, 200, row["p_value"])
    assert 0.07 - math.sqrt((0.12 - a1) ** 2 + (b0 - 0.05) ** 2) == pytest.approx(0.0, abs=1e-9)


def test_cuped_reduces_the_standard_error_without_moving_the_estimate():
    effects = {"fresh_start@meta": 0.02}
    gaps, reductions = [], []
    for seed in range(60):
        frame, _ = simulate_wave(100 + seed, 6_000, effects)
        row = analyze(frame, covariates=["prior"]).treatment.iloc[0]
        assert row["cuped_se"] < row["se"] and row["method"] == "cuped" and row["estimate"] == row["cuped_effect"]
        gaps.append(row["cuped_effect"] - row["effect"])
        reductions.append(row["variance_reduction"])
    # prior explains Var(0.5 * prior) / Var(y) = 0.04 / 0.108 ~ 0.37 of the variance
    assert 0.3 < np.mean(reductions) < 0.45
    gaps = np.array(gaps)
    assert abs(gaps.mean()) < 4 * gaps.std(ddof=1) / np.sqrt(len(gaps))


def test_uninformative_covariate_changes_almost_nothing():
    frame, _ = simulate_wave(3, 20_000, {"fresh_start@meta": 0.01})
    noise = np.random.default_rng(9).normal(size=len(frame))
    row = analyze(frame.assign(noise=noise), covariates=["noise"]).treatment.iloc[0]
    assert abs(row["variance_reduction"]) < 0.01
    assert row["cuped_effect"] == pytest.approx(row["effect"], abs=2e-3)
    assert (row["method"] == "cuped") == (row["variance_reduction"] > 0)


def test_segments_show_where_the_effect_is():
    rng = np.random.default_rng(5)
    n = 80_000
    frame = pd.DataFrame(
        {"arm": rng.choice(["holdout", "care_with_children@flyer"], n), "segment": rng.choice(["young", "old"], n)}
    )
    truth = np.where((frame["arm"] != "holdout") & (frame["segment"] == "young"), 0.03, 0.0)
    frame["outcome"] = (rng.random(n) < 0.02 + truth).astype(int)
    result = analyze(frame, segment_col="segment")
    seg = result.segments.set_index(["segment", "arm"])
    young, old = seg.loc[("young", "care_with_children@flyer")], seg.loc[("old", "care_with_children@flyer")]
    assert young["ci_low"] > 0 and young["ci_low"] <= 0.03 <= young["ci_high"]
    assert old["ci_low"] < 0 < old["ci_high"]
    assert seg["n"].sum() == n
    assert "young / care_with_children@flyer" in summary_text(result)


def test_analysis_is_row_order_invariant_and_leaves_the_frame_alone():
    frame, shares = simulate_wave(11, 10_000, {"fresh_start@meta": 0.01})
    snapshot = frame.copy()
    first = analyze(frame, covariates=["prior"], expected_shares=shares)
    pd.testing.assert_frame_equal(frame, snapshot)
    shuffled = analyze(frame.sample(frac=1.0, random_state=1), covariates=["prior"], expected_shares=shares)
    pd.testing.assert_frame_equal(first.arms, shuffled.arms, check_exact=False, rtol=1e-9)


def test_analysis_input_errors_are_specific():
    frame, _ = simulate_wave(0, 1_000, {"fresh_start@meta": 0.01})
    with pytest.raises(SchemaError, match="'converted'"):
        analyze(frame, outcome_col="converted")
    with pytest.raises(DataError, match="'outcome'.*0/1"):
        analyze(frame.assign(outcome=frame["outcome"] * 2))
    with pytest.raises(DataError, match="control arm 'holdout'"):
        analyze(frame[frame["arm"] != "holdout"])
    with pytest.raises(DataError, match="'label'.*numeric"):
        analyze(frame.assign(label="x"), covariates=["label"])
    with pytest.raises(DataError, match="no design share"):
        analyze(frame, expected_shares={"holdout": 0.5, "other@meta": 0.5})


# -- sample ratio mismatch --------------------------------------------------------------------
def test_srm_flags_lost_holdout_rows_and_not_a_clean_split():
    spec = make_spec()
    out = assign(make_audience(200_000, seed=2), spec)
    shares = design_shares(spec)
    clean = srm_check(out["arm"].value_counts(), shares)
    assert not clean.flagged and clean.p_value > 0.001
    holdout_rows = out.index[out["arm"] == "holdout"]
    lost = holdout_rows[: int(0.05 * len(holdout_rows))]
    broken = srm_check(out.drop(index=lost)["arm"].value_counts(), shares)
    assert broken.flagged and broken.p_value < 1e-6
    table = broken.table.set_index("arm")
    assert table.loc["holdout", "observed"] < table.loc["holdout", "expected"]
    assert table["expected_share"].to_dict() == pytest.approx(shares.to_dict())


def test_srm_statistic_by_hand():
    check = srm_check({"holdout": 90, "a@meta": 110}, {"holdout": 0.5, "a@meta": 0.5})
    assert check.statistic == pytest.approx((10**2 + 10**2) / 100)  # sum (O - E)^2 / E
    assert check.p_value == pytest.approx(math.erfc(math.sqrt(2.0 / 2)))  # chi2(1) tail at 2
    assert check.table["observed"].tolist() == [90, 110]


# -- summary ----------------------------------------------------------------------------------
def test_summary_names_winners_losers_and_broken_randomisation():
    effects = {"fresh_start@meta": 0.03, "steady_income@flyer": -0.015, "free_voucher@flyer": 0.0}
    frame, shares = simulate_wave(21, 80_000, effects, base=0.04, prior_lift=0.0)
    text = summary_text(analyze(frame, expected_shares=shares))
    beat, worse, unclear = text.index("Beat the holdout"), text.index("Did worse"), text.index("No clear difference")
    assert beat < text.index("fresh_start@meta") < worse < text.index("steady_income@flyer") < unclear
    assert text.index("free_voucher@flyer") > unclear
    assert "per 1,000 people reached" in text and "matches the design" in text
    assert "WARNING" not in text
    broken = frame.drop(index=frame.index[frame["arm"] == "holdout"][:1_000])
    assert "WARNING: the randomisation looks broken" in summary_text(analyze(broken, expected_shares=shares))


def test_summary_cautions_when_intervals_are_wide():
    frame, _ = simulate_wave(4, 600, {"fresh_start@meta": 0.0}, base=0.02, prior_lift=0.0)
    text = summary_text(analyze(frame))
    assert "No arm beat the holdout" in text
    assert "Caution" in text and "more people are needed" in text
    assert "not checked" in text


def test_exported_names():
    assert set(design.__all__) == {
        "AGE_BANDS", "ASSIGNMENT_COLUMNS", "EFFECT_COLUMNS", "EXPOSURE_COLUMNS", "SRM_THRESHOLD", "Analysis",
        "FamilyAdjustment", "Inference", "SampleRatioCheck", "adjust_family", "age_band", "analyze", "assign",
        "clopper_pearson", "design_shares", "detectable_effect", "difference_interval", "difference_p_value",
        "hash_uniform", "holdout_n_needed", "power_at", "power_table", "srm_check", "stratum_balance", "stratum_keys",
        "summary_text", "to_exposures", "Calibration", "PlanDesign", "PlanOutcome", "design_from_plan",
        "promised_and_delivered", "registered_people",
    }
    assert all(hasattr(design, name) for name in design.__all__)
