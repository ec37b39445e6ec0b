"""The multi-arm cost curve: a hand-made solution path and the curve valued on a randomised design."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.errors import DataError
from uplift.modeling.costcurve import cost_curve, solution_path


# Person 0: arm a costs 1 and gains 3, arm b costs 2 and gains 4: the hull is origin -> a (slope 3) -> b (slope 1).
# Person 1: a costs 1 and gains 0.5, b costs 2 and gains 3: from the origin b is steeper (1.5) and a lies under
# the hull, so person 1 has one segment. Sorted by slope: (0, a, 3), (1, b, 1.5), (0, b, 1).
def test_hand_made_solution_path():
    gains = pd.DataFrame({"a": [3.0, 0.5], "b": [4.0, 3.0]})
    costs = pd.DataFrame({"a": [1.0, 1.0], "b": [2.0, 2.0]})
    path = solution_path(gains, costs)
    assert list(path.person) == [0, 1, 0]
    assert list(path.arm) == [0, 1, 1]
    np.testing.assert_allclose(path.slope, [3.0, 1.5, 1.0])
    np.testing.assert_allclose(path.cost, [1.0, 2.0, 1.0])
    np.testing.assert_allclose(path.spend, [0.5, 1.5, 2.0])
    assert path.break_even_spend() == pytest.approx(2.0)  # every segment returns at least a euro per euro
    assert list(path.allocation(1, ["a", "b"], "n")) == ["a", "n"]
    assert list(path.allocation(3, ["a", "b"], "n")) == ["b", "b"]  # person 0 upgraded from a to b


def test_arms_that_never_gain_are_never_bought_and_costs_must_be_positive():
    path = solution_path(pd.DataFrame({"a": [-1.0, 0.0]}), pd.DataFrame({"a": [1.0, 1.0]}))
    assert len(path.cost) == 0 and path.break_even_spend() == 0.0
    with pytest.raises(DataError, match="positive incremental cost"):
        solution_path(pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [0.0]}))


def test_the_curve_on_a_randomised_design_rises_then_pays_less_than_it_costs():
    rng = np.random.default_rng(1)
    n = 20_000
    x = rng.integers(0, 2, n)
    arm = rng.choice(["n", "a"], n)
    y = (rng.random(n) < 0.1 + np.where(arm == "a", np.where(x == 1, 0.3, 0.02), 0.0)).astype(int)
    gains = pd.DataFrame({"a": 10 * np.where(x == 1, 0.3, 0.02)})
    inc = pd.DataFrame({"a": np.ones(n)})
    full = pd.DataFrame({"n": np.zeros(n), "a": np.ones(n)})
    propensity = pd.DataFrame({"n": np.full(n, 0.5), "a": np.full(n, 0.5)})
    curve = cost_curve(gains, inc, y=y, arm=arm, propensity=propensity, full_costs=full, value=10.0, control="n",
                       points=4)
    table = curve.table
    assert curve.break_even_spend == pytest.approx(np.mean(x == 1))
    top = table.loc[table["spend"].idxmax()]
    best = table.loc[table["net"].idxmax()]
    assert best["spend"] == pytest.approx(curve.break_even_spend, abs=0.26)
    assert best["net_lo"] > 0 and best["net"] > top["net"]  # treating everyone pays less than the paying half
    assert (table["gain_hi"] >= table["gain_lo"]).all() and table.loc[0, "gain"] == 0.0
