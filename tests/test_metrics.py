"""Tests of uplift.modeling.metrics: hand-computed cases, metamorphic checks and input validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import uplift.modeling.metrics as metrics_module
from uplift.errors import DataError, SchemaError
from uplift.modeling.metrics import (
    arm_metrics,
    auuc,
    decile_uplift,
    pairwise_ipw_weights,
    qini_coefficient,
    qini_curve,
    uplift_at_k,
    uplift_curve,
)

# ---------------------------------------------------------------------------------------------
# The hand case: 6 rows already in score order.
#
#   row  score  treated  y
#    0    0.9      1     1
#    1    0.8      0     0
#    2    0.7      1     1
#    3    0.6      0     1
#    4    0.5      1     0
#    5    0.4      0     0
#
# Cumulative over the top k rows (k = 0..6):
#   k     : 0  1  2  3  4  5  6
#   N_t   : 0  1  1  2  2  3  3
#   N_c   : 0  0  1  1  2  2  3
#   Y_t   : 0  1  1  2  2  2  2
#   Y_c   : 0  0  0  0  1  1  1
# Gain G = (Y_t/N_t - Y_c/N_c)(N_t + N_c), 0 while a group is empty:
#   k=2: (1 - 0) * 2 = 2;  k=3: (1 - 0) * 3 = 3;  k=4: (1 - 1/2) * 4 = 2
#   k=5: (2/3 - 1/2) * 5 = 5/6;  k=6: (2/3 - 1/3) * 6 = 2
# Qini Q = Y_t - Y_c N_t / N_c, 0 while N_c = 0:
#   k=1: 0 (no control yet);  k=2: 1;  k=3: 2;  k=4: 2 - 1*2/2 = 1;  k=5: 2 - 1*3/2 = 0.5;  k=6: 2 - 1 = 1
# Qini coefficient, x = k/6, curve / 6, trapezoid with dx = 1/6:
#   sum of trapezoids of Q over unit steps = 0 + 0.5 + 1.5 + 1.5 + 0.75 + 0.75 = 5
#   area = 5 / 36;  random line area = (Q(6)/6) / 2 = 1/12 = 3/36;  qini = 2/36 = 1/18
# AUUC: trapezoids of G = 0 + 1 + 2.5 + 2.5 + 17/12 + 17/12 = 53/6
#   area = (53/6) / 36 = 53/216;  random = (G(6)/6) / 2 = 1/6 = 36/216;  auuc = 17/216
# ---------------------------------------------------------------------------------------------
Y = np.array([1, 0, 1, 1, 0, 0])
T = np.array([1, 0, 1, 0, 1, 0])
S = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])


def test_exports_are_the_documented_api():
    assert sorted(metrics_module.__all__) == sorted(
        [
            "uplift_curve",
            "qini_curve",
            "qini_coefficient",
            "auuc",
            "uplift_at_k",
            "decile_uplift",
            "arm_metrics",
            "pairwise_ipw_weights",
        ]
    )


def test_hand_case_uplift_curve():
    fraction, gain = uplift_curve(Y, T, S)
    np.testing.assert_allclose(fraction, np.arange(7) / 6)
    np.testing.assert_allclose(gain, [0, 0, 2, 3, 2, 5 / 6, 2])


def test_hand_case_qini_curve():
    fraction, qini = qini_curve(Y, T, S)
    np.testing.assert_allclose(fraction, np.arange(7) / 6)
    np.testing.assert_allclose(qini, [0, 0, 1, 2, 1, 0.5, 1])


def test_hand_case_areas():
    assert qini_coefficient(Y, T, S) == pytest.approx(1 / 18, abs=1e-12)
    assert auuc(Y, T, S) == pytest.approx(17 / 216, abs=1e-12)


def test_hand_case_uplift_at_k():
    # k=0.3: floor(1.8) = 1 row, no control there -> NaN
    assert np.isnan(uplift_at_k(Y, T, S, 0.3))
    # k=0.5: rows 0-2: treated mean (1 + 1)/2 = 1, control mean 0 -> 1
    assert uplift_at_k(Y, T, S, 0.5) == pytest.approx(1.0)
    # k=0.7: floor(4.2) = 4 rows: treated mean 1, control mean (0 + 1)/2 -> 0.5
    assert uplift_at_k(Y, T, S, 0.7) == pytest.approx(0.5)
    # k=1: treated 2/3, control 1/3
    assert uplift_at_k(Y, T, S, 1.0) == pytest.approx(1 / 3)


def _top_uplift(y: np.ndarray, treated: np.ndarray, m: int) -> float:
    top_y, top_t = y[:m], treated[:m]
    if top_t.all() or not top_t.any():
        return float("nan")
    return top_y[top_t == 1].mean() - top_y[top_t == 0].mean()


@pytest.mark.parametrize(("k", "n", "rows"), [(0.29, 100, 29), (0.1, 25, 2), (0.3, 10, 3), (0.57, 100, 57)])
def test_uplift_at_k_keeps_floor_k_n_rows_despite_rounding(k, n, rows):
    # 0.29 * 100 = 28.999999999999996 and 0.57 * 100 = 56.99999999999999 in floating point
    rng = np.random.default_rng(rows)
    y, treated, score = rng.integers(0, 2, n), np.tile([1, 0], n // 2 + 1)[:n], np.linspace(1, 0, n)
    expected = _top_uplift(y, treated, rows)
    assert uplift_at_k(y, treated, score, k) == pytest.approx(expected)
    # the case really distinguishes `rows` from `rows - 1` rows
    assert expected != pytest.approx(_top_uplift(y, treated, rows - 1), nan_ok=True)


def test_weighted_hand_case():
    # weight 3 on row 3 (control, y=1), W = 8.
    w = np.array([1, 1, 1, 3, 1, 1])
    # top 4 rows: N_t = 2, N_c = 1 + 3 = 4, Y_t = 2, Y_c = 3
    #   G = (2/2 - 3/4) * 6 = 1.5;  Q = 2 - 3 * 2/4 = 0.5;  fraction = 6/8
    fraction, gain = uplift_curve(Y, T, S, weights=w)
    _, qini = qini_curve(Y, T, S, weights=w)
    assert fraction[4] == pytest.approx(0.75)
    assert gain[4] == pytest.approx(1.5)
    assert qini[4] == pytest.approx(0.5)
    # k=0.5 -> weight cut-off 4: rows 0-2 (cumulative weight 3; row 3 would reach 6) -> 1 - 0
    assert uplift_at_k(Y, T, S, 0.5, weights=w) == pytest.approx(1.0)
    # k=0.75 -> cut-off 6: rows 0-3: treated mean 1, control (1*0 + 3*1)/4 = 0.75 -> 0.25
    assert uplift_at_k(Y, T, S, 0.75, weights=w) == pytest.approx(0.25)


def test_ties_keep_the_input_order():
    # Rows 0-2 share a score; the stable sort keeps them in input order.
    #   row  score  treated  y
    #    0    0.5      1     1
    #    1    0.5      0     0
    #    2    0.5      1     0
    #    3    0.1      0     1
    # order 0,1,2,3: k=2: N_t=1, Y_t=1, N_c=1, Y_c=0 -> G = (1 - 0)*2 = 2, Q = 1
    #                k=3: N_t=2, Y_t=1, N_c=1, Y_c=0 -> G = (1/2)*3 = 1.5, Q = 1 - 0 = 1
    #                k=4: N_c=2, Y_c=1 -> G = (1/2 - 1/2)*4 = 0, Q = 1 - 1*2/2 = 0
    y = np.array([1, 0, 0, 1])
    treated = np.array([1, 0, 1, 0])
    score = np.array([0.5, 0.5, 0.5, 0.1])
    np.testing.assert_allclose(uplift_curve(y, treated, score)[1], [0, 0, 2, 1.5, 0])
    np.testing.assert_allclose(qini_curve(y, treated, score)[1], [0, 0, 1, 1, 0])
    # swap rows 0 and 2 (same score): order 2,1,0,3: k=2: Y_t = 0 -> G = 0, Q = 0; k>=3 unchanged
    swapped = [2, 1, 0, 3]
    np.testing.assert_allclose(uplift_curve(y[swapped], treated[swapped], score[swapped])[1], [0, 0, 0, 1.5, 0])
    np.testing.assert_allclose(qini_curve(y[swapped], treated[swapped], score[swapped])[1], [0, 0, 0, 1, 0])
    # uplift at 50% (top 2 rows) sees the difference too: 1 - 0 against 0 - 0
    assert uplift_at_k(y, treated, score, 0.5) == pytest.approx(1.0)
    assert uplift_at_k(y[swapped], treated[swapped], score[swapped], 0.5) == pytest.approx(0.0)


def test_decile_uplift_hand_case():
    # 3 bins of 2 rows: (0, 1) -> 1 - 0 = 1; (2, 3) -> 1 - 1 = 0; (4, 5) -> 0 - 0 = 0
    table = decile_uplift(Y, T, S, bins=3)
    assert list(table.index) == [1, 2, 3]
    assert list(table["n_treated"]) == [1, 1, 1]
    assert list(table["n_control"]) == [1, 1, 1]
    np.testing.assert_allclose(table["uplift"], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(table["score_max"], [0.9, 0.7, 0.5])
    np.testing.assert_allclose(table["score_min"], [0.8, 0.6, 0.4])


def test_decile_uplift_default_has_ten_bins_and_covers_every_row():
    rng = np.random.default_rng(3)
    y, treated, score = rng.integers(0, 2, 95), rng.integers(0, 2, 95), rng.normal(size=95)
    table = decile_uplift(y, treated, score)
    assert len(table) == 10
    assert table["n_treated"].sum() + table["n_control"].sum() == 95
    assert set((table["n_treated"] + table["n_control"]).tolist()) <= {9, 10}
    # bins are ordered by score, highest first
    assert (table["score_min"].to_numpy()[:-1] >= table["score_max"].to_numpy()[1:]).all()


# ---------------------------------------------------------------------------------------------
# a simulated world with a known per-person uplift tau(x) = 0.4 (x - 0.4): negative for x < 0.4


def _world(seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=n)
    tau = 0.4 * (x - 0.4)
    treated = rng.integers(0, 2, n)
    y = (rng.uniform(size=n) < np.where(treated == 1, 0.3 + tau, 0.3)).astype(int)
    return y, treated, tau


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_perfect_ranking_is_positive_and_reversed_is_negative(seed):
    y, treated, tau = _world(seed)
    assert qini_coefficient(y, treated, tau) > 0.005
    assert qini_coefficient(y, treated, -tau) < -0.005
    assert auuc(y, treated, tau) > 0.01
    assert auuc(y, treated, -tau) < -0.01
    assert uplift_at_k(y, treated, tau, 0.1) > uplift_at_k(y, treated, -tau, 0.1)


def test_shuffled_treatment_gives_qini_near_zero():
    perfect, shuffled = [], []
    for seed in range(5):
        y, treated, tau = _world(seed)
        perfect.append(qini_coefficient(y, treated, tau))
        permuted = np.random.default_rng(100 + seed).permutation(treated)
        shuffled.append(qini_coefficient(y, permuted, tau))
    perfect_, shuffled_ = np.array(perfect), np.abs(shuffled)
    assert (perfect_ > 0).all()
    assert shuffled_.mean() < 0.2 * perfect_.mean()
    assert (shuffled_ < 0.4 * perfect_).all()


def test_row_order_does_not_matter_with_distinct_scores():
    y, treated, tau = _world(7, n=500)
    score = tau + np.random.default_rng(8).normal(scale=1e-3, size=500)  # distinct scores
    weights = np.random.default_rng(9).uniform(0.5, 2.0, 500)
    perm = np.random.default_rng(10).permutation(500)
    for fn in (qini_coefficient, auuc):
        assert fn(y[perm], treated[perm], score[perm], weights[perm]) == pytest.approx(
            fn(y, treated, score, weights), rel=1e-12
        )
    np.testing.assert_allclose(
        qini_curve(y[perm], treated[perm], score[perm])[1], qini_curve(y, treated, score)[1], rtol=1e-12
    )
    assert uplift_at_k(y[perm], treated[perm], score[perm], 0.2) == pytest.approx(uplift_at_k(y, treated, score, 0.2))


def test_unit_weights_give_the_unweighted_result():
    y, treated, tau = _world(11, n=300)
    ones = np.ones(300)
    assert qini_coefficient(y, treated, tau, ones) == qini_coefficient(y, treated, tau)
    assert auuc(y, treated, tau, ones) == auuc(y, treated, tau)
    assert uplift_at_k(y, treated, tau, 0.3, ones) == uplift_at_k(y, treated, tau, 0.3)
    np.testing.assert_array_equal(uplift_curve(y, treated, tau, ones)[1], uplift_curve(y, treated, tau)[1])


def test_integer_weights_equal_row_duplication():
    rng = np.random.default_rng(12)
    n = 200
    y, treated = rng.integers(0, 2, n), rng.integers(0, 2, n)
    score = rng.permutation(n) / n
    w = rng.integers(1, 4, n)
    y_d, t_d, s_d = np.repeat(y, w), np.repeat(treated, w), np.repeat(score, w)
    # Copies of a row share its score, so the stable sort keeps them together: every point of
    # the weighted curve is the duplicated curve's point at the same cumulative count.
    order = np.argsort(-score, kind="stable")
    at = np.concatenate(([0], np.cumsum(w[order])))
    for curve in (uplift_curve, qini_curve):
        fraction_w, values_w = curve(y, treated, score, weights=w)
        fraction_d, values_d = curve(y_d, t_d, s_d)
        np.testing.assert_allclose(fraction_w, fraction_d[at], rtol=1e-12)
        np.testing.assert_allclose(values_w, values_d[at], rtol=1e-12, atol=1e-12)
    # uplift at k agrees exactly when k * W falls on a row boundary
    for m in (40, 100, 170):
        k = at[m] / at[-1]
        assert uplift_at_k(y, treated, score, k, weights=w) == pytest.approx(uplift_at_k(y_d, t_d, s_d, k))
    # areas agree up to the trapezoid rule inside a duplicated run (the curve is not linear there)
    assert qini_coefficient(y, treated, score, w) == pytest.approx(qini_coefficient(y_d, t_d, s_d), rel=5e-3)
    assert auuc(y, treated, score, w) == pytest.approx(auuc(y_d, t_d, s_d), rel=5e-3)


def test_pandas_inputs_are_read_positionally_and_left_untouched():
    y = pd.Series(Y, index=[10, 11, 12, 13, 14, 15])
    treated = pd.Series(T.astype(bool))
    score = pd.Series(S, index=list("abcdef"))
    before = score.copy()
    assert qini_coefficient(y, treated, score) == pytest.approx(1 / 18)
    pd.testing.assert_series_equal(score, before)


# ---------------------------------------------------------------------------------------------
# several arms


def _multi_arm(seed: int = 5, n: int = 3000):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=n)
    wave = rng.integers(0, 2, n)
    # wave 0: holdout 0.2, a 0.4, b 0.4; wave 1: holdout 0.5, a 0.3, b 0.2
    p = np.where(wave[:, None] == 0, [0.2, 0.4, 0.4], [0.5, 0.3, 0.2])
    propensity = pd.DataFrame(p, columns=["holdout", "a", "b"])
    arm = np.array(["holdout", "a", "b"], dtype=object)[(rng.uniform(size=n)[:, None] > p.cumsum(1)).sum(1)]
    tau = {"holdout": 0.0, "a": 0.3 * (x - 0.5), "b": 0.2 * (0.5 - x)}
    rate = 0.3 + np.select([arm == "a", arm == "b"], [tau["a"], tau["b"]], 0.0)
    y = (rng.uniform(size=n) < rate).astype(int)
    scores = pd.DataFrame({"a": tau["a"], "b": tau["b"]})
    return y, arm, scores, propensity


def test_pairwise_ipw_weights_hand_case():
    arm = ["a", "h", "b", "h"]
    propensity = pd.DataFrame({"h": [0.25, 0.25, 0.5, 0.5], "a": [0.5, 0.5, 0.25, 0.25], "b": [0.25, 0.25, 0.25, 0.25]})
    weights = pairwise_ipw_weights(arm, propensity, control="h")
    assert list(weights.columns) == ["a", "b"]
    # arm a: row 0 in a: (0.5 + 0.25)/0.5 = 1.5; row 1 in h: 0.75/0.25 = 3; row 3 in h: 0.75/0.5 = 1.5
    np.testing.assert_allclose(weights["a"], [1.5, 3.0, 0.0, 1.5])
    # arm b: row 2 in b: (0.25 + 0.5)/0.25 = 3; row 1 in h: 0.5/0.25 = 2; row 3 in h: 0.75/0.5 = 1.5
    np.testing.assert_allclose(weights["b"], [0.0, 2.0, 3.0, 1.5])


def test_arm_metrics_is_labelled_by_arm_and_matches_the_binary_functions():
    y, arm, scores, propensity = _multi_arm()
    weights = pairwise_ipw_weights(arm, propensity, "holdout")
    table = arm_metrics(y, arm, scores, "holdout", weights)
    assert list(table.index) == ["a", "b"]
    assert table.index.name == "arm"
    assert list(table.columns) == [
        "qini", "auuc", "uplift_at_10", "uplift_at_20", "uplift_at_30", "n_treated", "n_control",
    ]
    for name in ("a", "b"):
        keep = (arm == name) | (arm == "holdout")
        args = (y[keep], (arm[keep] == name).astype(int), scores[name][keep], weights[name][keep])
        assert table.loc[name, "qini"] == pytest.approx(qini_coefficient(*args))
        assert table.loc[name, "auuc"] == pytest.approx(auuc(*args))
        assert table.loc[name, "uplift_at_20"] == pytest.approx(uplift_at_k(*args[:3], 0.2, weights=args[3]))
        assert table.loc[name, "n_treated"] == (arm == name).sum()
    assert table.loc["a", "n_control"] == (arm == "holdout").sum()
    # the labels travel with the columns: reordering the score columns reorders the rows only
    flipped = arm_metrics(y, arm, scores[["b", "a"]], "holdout", weights)
    pd.testing.assert_frame_equal(flipped.loc[["a", "b"]], table)
    # and a wrongly labelled score (b's score under a's name) changes a's metrics
    mislabelled = arm_metrics(y, arm, scores.rename(columns={"a": "b", "b": "a"}), "holdout", weights)
    assert mislabelled.loc["a", "qini"] < table.loc["a", "qini"]


def test_arm_metrics_custom_ks_and_default_weights():
    y, arm, scores, _ = _multi_arm()
    table = arm_metrics(y, arm, scores, "holdout", ks=(0.05, 0.5))
    assert list(table.columns[2:4]) == ["uplift_at_5", "uplift_at_50"]
    keep = (arm == "a") | (arm == "holdout")
    assert table.loc["a", "qini"] == pytest.approx(
        qini_coefficient(y[keep], arm[keep] == "a", scores["a"][keep])
    )


# ---------------------------------------------------------------------------------------------
# validation


def test_lengths_must_agree():
    with pytest.raises(DataError, match="same length"):
        qini_coefficient(Y, T[:5], S)
    with pytest.raises(DataError, match="weights has 5 rows"):
        auuc(Y, T, S, weights=np.ones(5))


def test_treatment_must_be_binary_and_the_outcome_finite():
    with pytest.raises(SchemaError, match="y must be finite"):
        qini_coefficient([1, np.nan, 0, 1, 0, 0], T, S)
    # an amount (a continuous outcome) scales the curve: the Qini of 2.5 y is 2.5 times the Qini of y
    assert qini_coefficient(2.5 * np.asarray(Y, float), T, S) == pytest.approx(2.5 * qini_coefficient(Y, T, S))
    with pytest.raises(SchemaError, match="treated must contain only 0 and 1"):
        qini_curve(Y, ["a", "b", "a", "b", "a", "b"], S)


def test_score_and_weights_must_be_finite_and_weights_non_negative():
    with pytest.raises(SchemaError, match="score must be finite"):
        uplift_curve(Y, T, [0.9, np.nan, 0.7, 0.6, 0.5, 0.4])
    with pytest.raises(SchemaError, match="weights must be >= 0"):
        auuc(Y, T, S, weights=[1, 1, -1, 1, 1, 1])


@pytest.mark.parametrize("k", [0, -0.1, 1.5, True, "0.1"])
def test_k_must_be_a_share(k):
    with pytest.raises(SchemaError, match="k must be"):
        uplift_at_k(Y, T, S, k)


def test_both_groups_are_needed():
    with pytest.raises(DataError, match="no control rows"):
        qini_coefficient(Y, np.ones(6), S)
    with pytest.raises(DataError, match="no treated rows"):
        auuc(Y, T, S, weights=1 - T)


def test_arm_metrics_validates_arms_and_weights():
    y, arm, scores, propensity = _multi_arm(n=300)
    with pytest.raises(DataError, match="control arm 'a' must not be a column"):
        arm_metrics(y, arm, scores, "a")
    with pytest.raises(DataError, match="no rows of the control arm 'none'"):
        arm_metrics(y, arm, scores, "none")
    with pytest.raises(DataError, match=r"weights has no column for arm\(s\) \['b'\]"):
        arm_metrics(y, arm, scores, "holdout", weights=pd.DataFrame({"a": np.ones(300)}))
    with pytest.raises(DataError, match="no rows of treatment arm 'c'"):
        arm_metrics(y, arm, scores.assign(c=0.0), "holdout")
    with pytest.raises(SchemaError, match="ks must be"):
        arm_metrics(y, arm, scores, "holdout", ks=(0.1, 2.0))


def test_pairwise_ipw_weights_validates_labels():
    propensity = pd.DataFrame({"h": [0.5, 0.5], "a": [0.5, 0.5]})
    with pytest.raises(DataError, match=r"label\(s\) \['z'\]"):
        pairwise_ipw_weights(["a", "z"], propensity, "h")
    with pytest.raises(DataError, match="control arm 'x' is not a column"):
        pairwise_ipw_weights(["a", "h"], propensity, "x")
    with pytest.raises(DataError, match="rows assigned to 'a' have propensity 0"):
        pairwise_ipw_weights(["a", "h"], pd.DataFrame({"h": [1.0, 0.5], "a": [0.0, 0.5]}), "h")
