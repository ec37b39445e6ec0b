"""Tests of uplift.modeling.policyvalue: a hand case, coverage on a simulated randomised design, identities."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import uplift.modeling.policyvalue as policyvalue_module
from uplift.errors import DataError, SchemaError
from uplift.modeling.policyvalue import (
    PolicyTerm,
    PolicyValue,
    compare_policies,
    ipw_contrast,
    ipw_difference,
    ipw_value,
    single_arm_policies,
)

Z95 = 1.959963984540054

# ---------------------------------------------------------------------------------------------
# Hand case: 4 rows, arms a and b.
#   row  arm  y   P(a)  P(b)
#    0    a   1   0.5   0.5
#    1    a   0   0.8   0.2
#    2    b   1   0.5   0.5
#    3    b   0   0.2   0.8
# Policy pi = (a, a, a, b): rows 0, 1, 3 match; w = (1/0.5, 1/0.8, 0, 1/0.8) = (2, 1.25, 0, 1.25)
#   sum w = 4.5, sum w y = 2  ->  V = 4/9
#   phi_i = w_i (y_i - V) * n / sum w, n / sum w = 8/9:
#     phi = (2 * 5/9 * 8/9, 1.25 * (-4/9) * 8/9, 0, 1.25 * (-4/9) * 8/9) = (80, -40, 0, -40) / 81
#   se^2 = sum phi^2 / (n (n - 1)) = (9600 / 6561) / 12 = 800 / 6561  ->  se = 20 sqrt(2) / 81
# Policy "everyone b": rows 2, 3 match; w = (0, 0, 2, 1.25), sum 3.25, V_b = 2 / 3.25 = 8/13
#   phi_b = (0, 0, 2 * 5/13 * 16/13, 1.25 * (-8/13) * 16/13) = (0, 0, 160, -160) / 169
# Difference V - V_b = 4/9 - 8/13 = -20/117, phi = phi_a - phi_b, se^2 = sum phi^2 / 12.
# ---------------------------------------------------------------------------------------------
Y = np.array([1, 0, 1, 0])
ARM = np.array(["a", "a", "b", "b"])
PROPENSITY = pd.DataFrame({"a": [0.5, 0.8, 0.5, 0.2], "b": [0.5, 0.2, 0.5, 0.8]})
POLICY = np.array(["a", "a", "a", "b"])


def test_exports():
    assert sorted(policyvalue_module.__all__) == sorted(
        ["PolicyValue", "PolicyTerm", "ipw_value", "ipw_difference", "ipw_contrast", "compare_policies",
         "single_arm_policies", "cluster_codes", "influence_se"]
    )


def test_hand_case_value_and_standard_error():
    result = ipw_value(Y, ARM, PROPENSITY, POLICY)
    se = 20 * math.sqrt(2) / 81
    assert result.value == pytest.approx(4 / 9, abs=1e-12)
    assert result.se == pytest.approx(se, abs=1e-12)
    assert result.lo == pytest.approx(4 / 9 - Z95 * se, abs=1e-9)
    assert result.hi == pytest.approx(4 / 9 + Z95 * se, abs=1e-9)
    assert result.n_matched == 3


def test_hand_case_difference():
    everyone_b = np.array(["b"] * 4)
    result = ipw_difference(Y, ARM, PROPENSITY, POLICY, everyone_b)
    phi = np.array([80 / 81, -40 / 81, -160 / 169, -40 / 81 + 160 / 169])
    assert result.value == pytest.approx(-20 / 117, abs=1e-12)
    assert result.se == pytest.approx(math.sqrt((phi**2).sum() / 12), abs=1e-12)
    assert result.n_matched == 4


def test_alpha_sets_the_interval_width():
    wide = ipw_value(Y, ARM, PROPENSITY, POLICY, alpha=0.01)
    assert wide.hi - wide.value == pytest.approx(2.5758293035489 * wide.se, rel=1e-9)


def test_policy_value_is_frozen():
    result = ipw_value(Y, ARM, PROPENSITY, POLICY)
    assert isinstance(result, PolicyValue)
    with pytest.raises(AttributeError):
        result.value = 1.0  # type: ignore[misc]


def test_following_the_assignment_with_equal_propensities_gives_the_plain_mean():
    rng = np.random.default_rng(4)
    arms = np.array(["holdout", "a", "b", "c"], dtype=object)
    arm = arms[rng.integers(0, 4, 500)]
    y = rng.integers(0, 2, 500)
    propensity = pd.DataFrame(0.25, index=range(500), columns=list(arms))
    result = ipw_value(y, arm, propensity, arm)
    assert result.value == pytest.approx(y.mean(), abs=1e-12)
    assert result.n_matched == 500
    # with all weights equal the influence-function se is the textbook one: sd(y) / sqrt(n)
    assert result.se == pytest.approx(y.std(ddof=1) / math.sqrt(500), rel=1e-12)


def test_difference_of_a_policy_with_itself_is_exactly_zero():
    y, arm, propensity, x = _simulate(np.random.default_rng(5), 1000)
    policy = _best_policy(x)
    result = ipw_difference(y, arm, propensity, policy, policy.copy())
    assert result.value == 0.0
    assert result.se == 0.0
    assert (result.lo, result.hi) == (0.0, 0.0)


# ---------------------------------------------------------------------------------------------
# A randomised design with known truth: x in {0, 1, 2} with P(x) = (0.5, 0.3, 0.2); the
# assignment probabilities depend on x (stratified design); P(y = 1 | arm, x) is the table below.

P_X = np.array([0.5, 0.3, 0.2])
ARMS = ["holdout", "a", "b"]
DESIGN = np.array([[0.2, 0.4, 0.4], [0.5, 0.25, 0.25], [0.2, 0.6, 0.2]])  # rows x, columns ARMS
RATE = np.array([[0.05, 0.10, 0.06], [0.10, 0.08, 0.20], [0.15, 0.20, 0.12]])  # rows x, columns ARMS
# best arm per x: a (0.10), b (0.20), a (0.20); true value 0.5*0.10 + 0.3*0.20 + 0.2*0.20 = 0.15
# everyone a: 0.5*0.10 + 0.3*0.08 + 0.2*0.20 = 0.114; targeting minus everyone-a = 0.036
TRUE_BEST = 0.15
TRUE_GAIN_OVER_A = 0.036


def _simulate(rng: np.random.Generator, n: int):
    x = rng.choice(3, size=n, p=P_X)
    u = rng.uniform(size=n)
    code = (u[:, None] > DESIGN[x].cumsum(axis=1)).sum(axis=1)
    arm = np.array(ARMS, dtype=object)[code]
    y = (rng.uniform(size=n) < RATE[x, code]).astype(int)
    propensity = pd.DataFrame(DESIGN[x], columns=ARMS)
    return y, arm, propensity, x


def _best_policy(x: np.ndarray) -> np.ndarray:
    return np.array(["a", "b", "a"], dtype=object)[x]


def test_truth_table_matches_the_stated_values():
    best = RATE[np.arange(3), [1, 2, 1]]
    assert float(P_X @ best) == pytest.approx(TRUE_BEST)
    assert float(P_X @ (best - RATE[:, 1])) == pytest.approx(TRUE_GAIN_OVER_A)


def test_large_sample_estimate_is_within_three_standard_errors():
    y, arm, propensity, x = _simulate(np.random.default_rng(2024), 40_000)
    result = ipw_value(y, arm, propensity, _best_policy(x))
    assert abs(result.value - TRUE_BEST) < 3 * result.se
    assert result.se < 0.005
    gain = ipw_difference(y, arm, propensity, _best_policy(x), single_arm_policies(ARMS, len(y))["a"])
    assert abs(gain.value - TRUE_GAIN_OVER_A) < 3 * gain.se
    assert gain.lo > 0  # targeting beats the single best arm, with confidence


def test_confidence_intervals_cover_the_truth_about_95_percent_of_the_time():
    covered_value, covered_gain, paired_narrower = 0, 0, 0
    seeds = 200
    for seed in range(seeds):
        y, arm, propensity, x = _simulate(np.random.default_rng(seed), 2000)
        policy = _best_policy(x)
        everyone_a = np.full(len(y), "a", dtype=object)
        value = ipw_value(y, arm, propensity, policy)
        gain = ipw_difference(y, arm, propensity, policy, everyone_a)
        covered_value += value.lo <= TRUE_BEST <= value.hi
        covered_gain += gain.lo <= TRUE_GAIN_OVER_A <= gain.hi
        separate = math.hypot(value.se, ipw_value(y, arm, propensity, everyone_a).se)
        paired_narrower += gain.se < separate
    # binomial sd of the coverage at 200 seeds is about 0.015
    assert 0.90 <= covered_value / seeds <= 0.99
    assert 0.90 <= covered_gain / seeds <= 0.99
    # the policies agree on x in {0, 2}, so the paired se is smaller than the unpaired one
    assert paired_narrower == seeds


# ---------------------------------------------------------------------------------------------
# compare_policies and single_arm_policies


def test_single_arm_policies():
    policies = single_arm_policies(["holdout", "a"], 3)
    assert list(policies) == ["holdout", "a"]
    assert policies["a"].tolist() == ["a", "a", "a"]
    assert policies["a"].strides == (0,) and not policies["a"].flags.writeable  # one value, no memory per row
    assert single_arm_policies(["a"], 0)["a"].shape == (0,)
    with pytest.raises(SchemaError, match="distinct"):
        single_arm_policies(["a", "a"], 3)
    with pytest.raises(SchemaError, match="n must be a non-negative integer"):
        single_arm_policies(["a"], -1)


def test_compare_policies_table():
    policies = {"targeted": POLICY, **single_arm_policies(["a", "b"], 4)}
    table = compare_policies(Y, ARM, PROPENSITY, policies, baseline="b")
    assert list(table.index) == ["targeted", "a", "b"]
    assert table.index.name == "policy"
    assert list(table.columns) == [
        "value", "se", "lo", "hi", "n_matched", "diff", "diff_se", "diff_lo", "diff_hi", "share_deviating",
    ]
    assert table.loc["targeted", "value"] == pytest.approx(4 / 9)
    assert table.loc["targeted", "diff"] == pytest.approx(-20 / 117)
    assert table.loc["b", "value"] == pytest.approx(8 / 13)
    assert (table.loc["b", "diff"], table.loc["b", "diff_se"]) == (0.0, 0.0)
    # targeted recommends b on 1 of 4 rows -> deviates from "everyone b" on 3/4
    assert table.loc["targeted", "share_deviating"] == pytest.approx(0.75)
    assert table.loc["a", "share_deviating"] == pytest.approx(1.0)
    assert table.loc["b", "share_deviating"] == 0.0
    # everyone a: rows 0, 1 match, w = (2, 1.25), V = 2 / 3.25
    assert table.loc["a", "value"] == pytest.approx(8 / 13)
    assert table.loc["a", "n_matched"] == 2


def test_compare_policies_needs_the_baseline():
    with pytest.raises(DataError, match="baseline 'c' is not one of the policies"):
        compare_policies(Y, ARM, PROPENSITY, {"a": ["a"] * 4}, baseline="c")


# ---------------------------------------------------------------------------------------------
# validation


def test_unknown_arm_labels_are_named():
    with pytest.raises(DataError, match=r"recommended has arm\(s\) \['z'\].*valid: \['a', 'b'\]"):
        ipw_value(Y, ARM, PROPENSITY, ["a", "z", "a", "b"])
    with pytest.raises(DataError, match=r"arm has arm\(s\) \['q'\]"):
        ipw_value(Y, ["a", "a", "q", "b"], PROPENSITY, POLICY)


def test_lengths_and_values_are_checked():
    with pytest.raises(DataError, match="recommended has 3 rows but y has 4"):
        ipw_value(Y, ARM, PROPENSITY, POLICY[:3])
    with pytest.raises(DataError, match="same length"):
        ipw_value(Y[:3], ARM, PROPENSITY, POLICY)
    with pytest.raises(SchemaError, match="y must be finite"):
        ipw_value([1, 0, np.inf, 0], ARM, PROPENSITY, POLICY)
    amounts = ipw_value([2.0, 0.0, 2.0, 0.0], ARM, PROPENSITY, POLICY)  # an amount: twice the 0/1 hand case
    assert amounts.value == pytest.approx(8 / 9) and amounts.se == pytest.approx(40 * math.sqrt(2) / 81)
    with pytest.raises(SchemaError, match="probabilities in"):
        ipw_value(Y, ARM, PROPENSITY * 2, POLICY)
    with pytest.raises(SchemaError, match="alpha must be"):
        ipw_value(Y, ARM, PROPENSITY, POLICY, alpha=1.5)


def test_own_arm_with_zero_propensity_and_no_match_are_errors():
    broken = PROPENSITY.assign(a=[0.0, 0.8, 0.5, 0.2])
    with pytest.raises(DataError, match="propensity of the assigned arm is 0"):
        ipw_value(Y, ARM, broken, POLICY)
    with pytest.raises(DataError, match="no row's assigned arm matches"):
        ipw_value(Y, ARM, PROPENSITY, ["b", "b", "a", "a"])


# ---------------------------------------------------------------------------------------------
# ipw_contrast: randomising policies (a plan's share of each segment per arm) and sums of values

def _one_hot(labels: np.ndarray, arms=("a", "b")) -> pd.DataFrame:
    return pd.DataFrame({a: (labels == a).astype(float) for a in arms})


def test_contrast_of_one_hot_policies_is_the_paired_difference():
    everyone_b = np.full(4, "b", dtype=object)
    got = ipw_contrast(Y, ARM, PROPENSITY, [PolicyTerm(_one_hot(POLICY), 1.0), PolicyTerm(_one_hot(everyone_b), -1.0)])
    want = ipw_difference(Y, ARM, PROPENSITY, POLICY, everyone_b)
    assert got.value == pytest.approx(want.value, abs=1e-15) and got.se == pytest.approx(want.se, abs=1e-15)
    assert got.value == pytest.approx(-20 / 117, abs=1e-12)


def test_hand_case_coin_flip_policy():
    # a coin flip between a and b on every row: w = 0.5 / P(T) = (1, 0.625, 1, 0.625), sum 3.25, sum w y = 2
    #   V = 8/13; phi = w (y - V) * 4 / 3.25 = (80, -80, 80, -80) / 169; se^2 = 4 * 80^2 / 169^2 / 12
    coin = pd.DataFrame({"a": np.full(4, 0.5), "b": np.full(4, 0.5)})
    result = ipw_contrast(Y, ARM, PROPENSITY, [PolicyTerm(coin)])
    assert result.value == pytest.approx(8 / 13, abs=1e-12)
    assert result.se == pytest.approx(160 / 169 / math.sqrt(12), abs=1e-12)
    assert result.n_matched == 4
    # a row weight of 2 on every row is the same population: same value
    assert ipw_contrast(Y, ARM, PROPENSITY, [PolicyTerm(coin, 1.0, np.full(4, 2.0))]).value == pytest.approx(8 / 13)


def test_contrast_checks_shares_and_weights():
    with pytest.raises(SchemaError, match="sum to at most 1"):
        ipw_contrast(Y, ARM, PROPENSITY, [PolicyTerm(pd.DataFrame({"a": np.full(4, 0.8), "b": np.full(4, 0.8)}))])
    with pytest.raises(DataError, match="not propensity columns"):
        ipw_contrast(Y, ARM, PROPENSITY, [PolicyTerm(pd.DataFrame({"c": np.ones(4)}))])
    with pytest.raises(SchemaError, match="row_weight"):
        ipw_contrast(Y, ARM, PROPENSITY, [PolicyTerm(_one_hot(POLICY), 1.0, -np.ones(4))])
    with pytest.raises(DataError, match="terms is empty"):
        ipw_contrast(Y, ARM, PROPENSITY, [])


# Two plans over the strata x of the design above: the share of each stratum contacted with each arm (the
# rest is not contacted, i.e. gets the holdout's rate). Incremental conversions per person:
#   plan A: x0 a 0.6, b 0.2 -> 0.6*0.05 + 0.2*0.01 = 0.032; x1 b 0.9 -> 0.09; x2 a 0.5 -> 0.025
#           0.5*0.032 + 0.3*0.09 + 0.2*0.025 = 0.048
#   plan B: everyone b at 0.5 -> x0 0.005, x1 0.05, x2 -0.015 -> 0.0025 + 0.015 - 0.003 = 0.0145
PLAN_A = np.array([[0.0, 0.6, 0.2], [0.0, 0.0, 0.9], [0.0, 0.5, 0.0]])  # rows x, columns ARMS (holdout filled below)
PLAN_B = np.array([[0.0, 0.0, 0.5]] * 3)
TRUE_A, TRUE_B = 0.048, 0.0145


def _plan_terms(shares: np.ndarray, x: np.ndarray, sign: float) -> list[PolicyTerm]:
    rows = shares[x].copy()
    rows[:, 0] = 1.0 - rows[:, 1:].sum(axis=1)
    nobody = pd.DataFrame({"holdout": np.ones(len(x))})
    return [PolicyTerm(pd.DataFrame(rows, columns=ARMS), sign), PolicyTerm(nobody, -sign)]


def test_plan_truth_table_matches_the_stated_values():
    gain = lambda plan: float(P_X @ (plan[:, 1:] * (RATE[:, 1:] - RATE[:, :1])).sum(axis=1))  # noqa: E731
    assert gain(PLAN_A) == pytest.approx(TRUE_A) and gain(PLAN_B) == pytest.approx(TRUE_B)


def test_plan_values_and_their_paired_gain_cover_the_truth_about_95_percent_of_the_time():
    covered_a = covered_gain = paired_narrower = 0
    seeds = 200
    for seed in range(seeds):
        y, arm, propensity, x = _simulate(np.random.default_rng(1000 + seed), 2000)
        a = ipw_contrast(y, arm, propensity, _plan_terms(PLAN_A, x, 1.0))
        b = ipw_contrast(y, arm, propensity, _plan_terms(PLAN_B, x, 1.0))
        gain = ipw_contrast(y, arm, propensity, _plan_terms(PLAN_A, x, 1.0) + _plan_terms(PLAN_B, x, -1.0))
        assert gain.value == pytest.approx(a.value - b.value, abs=1e-12)
        covered_a += a.lo <= TRUE_A <= a.hi
        covered_gain += gain.lo <= TRUE_A - TRUE_B <= gain.hi
        paired_narrower += gain.se < math.hypot(a.se, b.se)
    assert 0.90 <= covered_a / seeds <= 0.99
    assert 0.90 <= covered_gain / seeds <= 0.99
    assert paired_narrower >= 0.9 * seeds
