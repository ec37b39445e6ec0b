"""Inverse-propensity weighted (Hajek) means, worked out by hand (uplift.modeling.ipw)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uplift.errors import DataError
from uplift.modeling.ipw import (
    binomial_group_variance,
    group_hajek,
    group_means,
    hajek_influence,
    hajek_mean,
    own_propensity,
)


def test_own_propensity_reads_each_rows_assigned_arm():
    propensity = pd.DataFrame({"c": [0.5, 0.2, 0.1], "a": [0.5, 0.8, 0.9]})
    np.testing.assert_array_equal(own_propensity(propensity, np.array(["c", "a", "a"], dtype=object)), [0.5, 0.8, 0.9])


def test_hajek_mean_by_hand():
    # rows at propensity 1/2, 1/4, 1/4: weights 2, 4, 4; outcomes 1, 0, 1 -> (2 + 4) / 10
    assert hajek_mean(np.array([1.0, 0.0, 1.0]), np.array([2.0, 4.0, 4.0])) == pytest.approx(0.6)
    assert np.isnan(hajek_mean(np.array([]), np.array([])))


def test_hajek_influence_by_hand():
    y, w = np.array([1.0, 0.0, 1.0, 0.0]), np.array([2.0, 2.0, 0.0, 4.0])
    value, phi = hajek_influence(y, w, "policy")
    assert value == pytest.approx(2 / 8)
    # w_i (y_i - V) n / sum(w): (2 * 0.75, 2 * -0.25, 0, 4 * -0.25) * 4 / 8
    np.testing.assert_allclose(phi, [0.75, -0.25, 0.0, -0.5])
    assert phi.sum() == pytest.approx(0.0)
    with pytest.raises(DataError, match="policy: no row's assigned arm matches"):
        hajek_influence(y, np.zeros(4), "policy")


def test_group_hajek_by_hand_with_its_floor():
    groups = np.array([0, 0, 1, 1, 1])
    y = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
    w = np.array([1.0, 3.0, 1.0, 1.0, 2.0])
    mean, var, n = group_hajek(groups, y, w, 3)
    np.testing.assert_allclose(mean[:2], [0.25, 0.0])
    assert np.isnan(mean[2])
    np.testing.assert_array_equal(n, [2, 3, 0])
    # group 0: (1 * 0.75)^2 + (3 * -0.25)^2 over 4^2; the floor at the pooled rate 1/8 is lower
    assert var[0] == pytest.approx((0.75**2 + 0.75**2) / 16)
    # group 1 has no event: its empirical variance 0 is floored at p(1 - p) sum(w^2) / sum(w)^2
    pooled = 1 / 8  # one event of weight 1 over a weight of 8
    assert var[1] == pytest.approx(pooled * (1 - pooled) * 6 / 16)
    rate = np.array([0.5, 0.1, 0.2])
    np.testing.assert_allclose(binomial_group_variance(groups, w, rate, 3)[:2], [0.25 * 10 / 16, 0.09 * 6 / 16])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1), st.floats(0.05, 1.0)), min_size=1, max_size=40))
def test_group_means_are_each_groups_hajek_mean(rows):
    groups = np.array([g for g, _, _ in rows])
    y = np.array([float(v) for _, v, _ in rows])
    w = np.array([1.0 / p for _, _, p in rows])
    means, weight = group_means(groups, y, w, 4)
    for g in range(4):
        m = groups == g
        if m.any():
            assert means[g] == pytest.approx(hajek_mean(y[m], w[m]), rel=1e-12)
            assert weight[g] == pytest.approx(w[m].sum(), rel=1e-12)
        else:
            assert np.isnan(means[g]) and weight[g] == 0
