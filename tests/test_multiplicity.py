"""Inference over many arms (issue 32): Holm and Benjamini-Hochberg against hand computations, the family in the
output, intervals that agree with the adjusted verdicts, and cells too small to detect the expected effect."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from uplift.design import Inference, adjust_family, analyze, detectable_effect, power_at, summary_text
from uplift.design.rates import difference_p_value
from uplift.errors import DataError

P = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205])


def test_holm_by_hand():
    # sorted p times (m - i + 1): 0.008, 0.056, 0.234, 0.205, 0.168, 0.18, 0.148, 0.205; then the running maximum
    out = adjust_family(P, "holm", 0.05)
    assert out.adjusted == pytest.approx([0.008, 0.056, 0.234, 0.234, 0.234, 0.234, 0.234, 0.234])
    assert out.reject.tolist() == [True] + [False] * 7
    assert out.size == 8 and out.level == pytest.approx(0.05 / 7)  # Holm's next step: alpha / (m - R)


def test_benjamini_hochberg_by_hand():
    # p_(i) m / i: 0.008, 0.032, 0.104, 0.082, 0.0672, 0.08, 0.08457, 0.205; then the running minimum from the top
    out = adjust_family(P, "bh", 0.05)
    assert out.adjusted == pytest.approx([0.008, 0.032, 0.0672, 0.0672, 0.0672, 0.08, 0.074 * 8 / 7, 0.205])
    assert out.reject.tolist() == [True, True] + [False] * 6
    assert out.level == pytest.approx(2 * 0.05 / 8)  # the false-coverage-rate level R alpha / m


def test_small_family_by_hand_and_none():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    holm = adjust_family(p, "holm", 0.05)
    assert holm.adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02]) and holm.level == pytest.approx(0.025)
    bh = adjust_family(p, "bh", 0.05)
    assert bh.adjusted == pytest.approx([0.02, 0.04, 0.04, 0.02]) and bh.reject.all() and bh.level == 0.05
    none = adjust_family(np.array([0.01, np.nan, 0.2]), "none", 0.05)
    assert none.adjusted[[0, 2]].tolist() == [0.01, 0.2] and np.isnan(none.adjusted[1]) and none.size == 2
    with pytest.raises(DataError, match="'bonferroni' is not a valid multiplicity adjustment; valid: none, holm, bh"):
        adjust_family(p, "bonferroni", 0.05)


@settings(max_examples=200, deadline=None)
@given(p=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40), method=st.sampled_from(["holm", "bh"]),
       alpha=st.sampled_from([0.01, 0.05, 0.1]))
def test_adjustment_matches_statsmodels_and_its_level_separates_the_verdicts(p, method, alpha):
    p = np.array(p)
    out = adjust_family(p, method, alpha)
    with mock.patch("gc.collect", return_value=0):  # statsmodels' Holm collects garbage on every call (0.25 s here)
        reference = multipletests(p, alpha=alpha, method={"holm": "holm", "bh": "fdr_bh"}[method])[1]
    assert out.adjusted == pytest.approx(reference, abs=1e-12)
    # a comparison is rejected exactly when its own p-value is at most the family's level
    assert (out.reject == (p <= out.level)).all() or np.isclose(p, out.level).any()


def test_without_control_many_null_arms_give_false_findings_and_holm_keeps_them_rare():
    rng = np.random.default_rng(32)
    waves, arms, n = 120, 18, 2000
    any_false = {"none": 0, "holm": 0, "bh": 0}
    for _ in range(waves):
        x0 = rng.binomial(n, 0.05)
        x = rng.binomial(n, 0.05, arms)  # no arm has an effect
        p = difference_p_value(x, np.full(arms, n), x0, n)
        for method in any_false:
            any_false[method] += adjust_family(p, method, 0.05).reject.any()
    rates = {m: k / waves for m, k in any_false.items()}
    assert rates["none"] > 0.25  # roughly 1 - 0.95**18 = 0.60, less as the exact test is conservative
    assert rates["holm"] <= 0.08 and rates["bh"] <= 0.08  # at most 5% (all nulls: FDR = FWER), plus noise


# -- in the analysis ------------------------------------------------------------------------------
def many_arms(seed: int = 0, n_arm: int = 3000, effects: dict[str, float] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    effects = effects or {f"m{i}@meta": 0.0 for i in range(6)}
    parts = [pd.DataFrame({"arm": "holdout", "outcome": (rng.random(12_000) < 0.03).astype(int)})]
    for arm, effect in effects.items():
        parts.append(pd.DataFrame({"arm": arm, "outcome": (rng.random(n_arm) < 0.03 + effect).astype(int)}))
    frame = pd.concat(parts, ignore_index=True)
    return frame.assign(segment=rng.choice(["north", "south", "west"], len(frame)))


EFFECTS = {"a@meta": 0.02, "b@meta": 0.012, "c@meta": 0.008, "d@meta": 0.0, "e@meta": 0.0, "f@meta": -0.01}


@pytest.mark.parametrize("method", ["none", "holm", "bh"])
def test_analysis_adjusts_the_arms_as_one_family_and_states_it(method):
    result = analyze(many_arms(4, effects=EFFECTS), segment_col="segment", inference=Inference(multiplicity=method))
    arms = result.treatment
    family = adjust_family(arms["p_value"].to_numpy(), method, 0.05)
    assert arms["adjusted_p_value"].to_numpy() == pytest.approx(family.adjusted)
    assert (arms["family"] == "arms").all() and (arms["family_size"] == 6).all()
    assert arms["interval_level"].to_numpy() == pytest.approx(1 - family.level)
    assert ((arms["verdict"] != "unclear") == family.reject).all()
    seg = result.segments[result.segments["arm"] != "holdout"]
    assert (seg["family"] == "segments").all() and (seg["family_size"] == 18).all()
    assert result.families["segments"].size == 18
    if method == "none":
        assert (arms["estimate_ci_low"].to_numpy() == pytest.approx(arms["ci_low"].to_numpy()))
    text = summary_text(result)
    if method == "holm":
        assert "6 arms compared with the holdout, judged together (Holm" in text
        assert "By segment, 18 segment x arm comparisons, judged together (Holm" in text
    elif method == "bh":
        assert "judged together (Benjamini-Hochberg" in text
    else:
        assert "each is tested at 5% on its own" in text


def test_every_verdict_interval_agrees_with_the_adjusted_test():
    for method in ("holm", "bh"):
        result = analyze(many_arms(9, n_arm=1500, effects=EFFECTS), segment_col="segment",
                         inference=Inference(multiplicity=method))
        for table in (result.treatment, result.segments[result.segments["family"] == "segments"]):
            claimed = table["adjusted_p_value"] <= 0.05
            assert ((table["verdict"] == "better") == (claimed & (table["estimate_ci_low"] > 0))).all()
            assert ((table["verdict"] == "worse") == (claimed & (table["estimate_ci_high"] < 0))).all()
            unclear = table[table["verdict"] == "unclear"]
            assert ((unclear["estimate_ci_low"] <= 0) & (unclear["estimate_ci_high"] >= 0)).all()
            assert not claimed[table["verdict"] == "unclear"].any()


def test_holm_is_stricter_than_none_on_the_same_wave():
    frame = many_arms(4, effects=EFFECTS)
    plain = analyze(frame, inference=Inference(multiplicity="none")).treatment.set_index("arm")
    holm = analyze(frame, inference=Inference(multiplicity="holm")).treatment.set_index("arm")
    assert (holm["adjusted_p_value"] >= plain["adjusted_p_value"]).all()
    assert (holm["estimate_ci_high"] - holm["estimate_ci_low"] >= plain["ci_high"] - plain["ci_low"] - 1e-12).all()
    assert holm.loc["a@meta", "verdict"] == "better"


# -- cells too small to detect the expected effect ------------------------------------------------
def test_detectable_effect_inverts_the_power_formula():
    d = detectable_effect(0.002, 4019, 534, alpha=0.05 / 18, power=0.8)
    assert power_at(0.002, d, 4019, 534 / 4019, alpha=0.05 / 18) == pytest.approx(0.8)
    assert np.isnan(detectable_effect(0.002, 0, 534, alpha=0.05, power=0.8))
    assert np.isnan(detectable_effect(0.3, 3, 2, alpha=0.001, power=0.99))  # nothing up to a rate of 1


def test_small_cells_are_warned_once_in_the_products_words():
    effects = {"a@meta": 0.0, "b@meta": 0.0}
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"arm": ["holdout"] * 20_000 + ["a@meta"] * 534 + ["b@meta"] * 20_000})
    frame["outcome"] = (rng.random(len(frame)) < 0.03 + frame["arm"].map({"holdout": 0.0, **effects})).astype(int)
    inference = Inference(multiplicity="holm", target_effect={"a@meta": 0.004, "b@meta": 0.008})
    result = analyze(frame, inference=inference)
    arms = result.treatment.set_index("arm")
    base = float(result.arms.loc[result.arms["arm"] == "holdout", "rate"].iloc[0])
    expected = detectable_effect(base, 20_000, 534, alpha=0.05 / 2, power=0.8)
    assert arms.loc["a@meta", "detectable_effect"] == pytest.approx(expected)
    assert arms.loc["a@meta", "too_small"] and arms.loc["a@meta", "target_effect"] == 0.004
    assert arms.loc["b@meta", "detectable_effect"] < 0.008 and not arms.loc["b@meta", "too_small"]
    text = summary_text(result)
    line = f"  - a@meta: 534 people can detect {1000 * expected:.0f} per 1,000 at 80% power; the plan expects 4."
    assert text.count("a@meta: 534 people") == 1 and line in text.splitlines()
    assert "b@meta: 20,000 people" not in text
    # without a plan, the spec's target is named as such
    spec_text = summary_text(analyze(frame, inference=Inference(target_effect=0.004)))
    assert "the experiment aims to detect 4." in spec_text


def test_inference_settings_are_checked():
    with pytest.raises(DataError, match="power must lie strictly between 0 and 1"):
        Inference(power=1.0)
    with pytest.raises(DataError, match="'sidak' is not a valid multiplicity adjustment; valid: none, holm, bh"):
        Inference(multiplicity="sidak")
