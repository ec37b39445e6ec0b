"""The plan's promise calibrated on held-out rows (uplift.segments.promise) and applied by the planner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from uplift.allocation import plan
from uplift.segments.promise import PromiseCalibration, heldout_calibration, promise_of
from uplift.specs.planning import CostCatalogue, PlanningPolicy


def test_the_ratio_over_the_best_looking_cells_by_hand():
    # fold 1: cells by estimate 4, 3, 2, 1 with weights 1, 1, 1, 1: half the weight is the first two,
    # which promised 4 + 3 and bought 2 + 1; fold 2: estimates 2, 1 with weights 3, 1: the first cell
    # alone already holds more than half the weight, and at least one cell is taken
    e = [np.array([1.0, 4.0, 2.0, 3.0]), np.array([2.0, 1.0])]
    o = [np.array([9.0, 2.0, 9.0, 1.0]), np.array([0.5, 9.0])]
    w = [np.ones(4), np.array([3.0, 1.0])]
    c = [np.arange(4), np.arange(4, 6)]
    line = heldout_calibration(e, o, w, c, top_share=0.5)
    # taken: (4 -> 2, w 1), (3 -> 1, w 1), (2 -> 0.5, w 3): R = (2 + 1 + 1.5) / (4 + 3 + 6)
    assert line.ratio == pytest.approx(4.5 / 13.0) and line.lines == 3
    # delta method, one cluster per cell: sum over cells of ((w o - R w e) / sum w e)^2
    r = 4.5 / 13.0
    infl = np.array([2 - r * 4, 1 - r * 3, 1.5 - r * 6]) / 13.0
    assert line.ratio_se == pytest.approx(np.sqrt(np.sum(infl**2)))


def test_cells_without_data_are_left_out_and_a_share_must_be_a_share():
    e, o, w = np.array([3.0, 2.0, 1.0]), np.array([np.nan, 1.0, 1.0]), np.array([1.0, 1.0, 0.0])
    line = heldout_calibration([e], [o], [w], [np.arange(3)], top_share=1.0)
    assert line.ratio == pytest.approx(0.5) and line.lines == 1
    with pytest.raises(ValueError, match="top_share"):
        heldout_calibration([e], [o], [w], [np.arange(3)], top_share=0.0)
    nothing = heldout_calibration([-e], [o], [np.ones(3)], [np.arange(3)], top_share=1.0)  # promised nothing
    assert not nothing.usable


def test_a_promise_by_hand():
    # 40 estimated x 0.75 = 30; half-width 8 x 0.75 = 6 from the estimates, and z x 0.1 x 40 from the ratio
    z = norm.ppf(0.9)
    centre, lo, hi = promise_of(PromiseCalibration(0.75, 0.1, 0.25, 100), planned=40.0, half_width=8.0, interval=0.8)
    half = np.hypot(6.0, z * 4.0)
    assert (centre, lo, hi) == pytest.approx((30.0, 30.0 - half, 30.0 + half))
    # a negative ratio is taken as 0, with the ratio's uncertainty still around it
    centre, lo, hi = promise_of(PromiseCalibration(-0.2, 0.1, 0.25, 100), planned=40.0, half_width=8.0, interval=0.8)
    assert (centre, lo, hi) == pytest.approx((0.0, -z * 4.0, z * 4.0))


def test_the_calibrated_promise_of_a_plan_that_picks_the_best_looking_cells_is_about_right():
    # true effects spread tau around a level, estimates and held-out observations each add noise sigma:
    # the best tenth by estimate promises far more than it buys; the held-out ratio over the best
    # tenth, measured on other noise of the same truth, promises about what it buys
    rng = np.random.default_rng(11)
    n, raw, calibrated = 4000, [], []
    for _ in range(20):
        t = rng.normal(1.0, 1.0, n)
        e, o = t + rng.normal(0, 1.0, n), t + rng.normal(0, 1.0, n)
        line = heldout_calibration([e], [o], [np.ones(n)], [np.arange(n)], top_share=0.1)
        table = t + rng.normal(0, 1.0, n)  # the table's estimates: the same truth, other noise
        top = table >= np.quantile(table, 0.9)
        raw.append(table[top].sum() / t[top].sum())
        calibrated.append(promise_of(line, planned=table[top].sum(), half_width=0.0, interval=0.8)[0] / t[top].sum())
    assert np.mean(raw) > 1.3
    assert np.mean(calibrated) == pytest.approx(1.0, abs=0.03)


def _one_cell(kind: str | None) -> tuple[pd.DataFrame, CostCatalogue]:
    costs = CostCatalogue.model_validate({"channels": {"meta": {
        "cost_per_mille": 10.0, "impressions_per_contact": 5,
        "tiers": [{"share": 0.4, "multiplier": 1.0}, {"share": 0.3, "multiplier": 2.0}]}}})
    effects = pd.DataFrame({"segment": ["women_45"], "size": [10_000], "arm": ["recognition@meta"],
                            "message": ["recognition"], "channel": ["meta"], "effect": [0.01], "effect_sd": [0.002]})
    if kind:
        effects["kind"] = kind
    return effects, costs


def test_the_planner_calibrates_the_totals_a_table_carries_a_line_for():
    # 5,000 contacts x 0.01 = 50 estimated conversions (tests/allocation_worlds.py's hand world);
    # with the ratio 0.8 (se 0): 40, half-width 0.8 x 12.82
    effects, costs = _one_cell("targetable")
    line = PromiseCalibration(0.8, 0.0, 0.25, 50)
    effects.attrs["stages"] = {"targetable": {"promise": line.record()}}
    result = plan(effects, budget=300.0, costs=costs, policy=PlanningPolicy(holdout_share=0.1))
    half = norm.ppf(0.9) * 0.002 * 5_000
    totals = result.totals
    assert totals.estimated_conversions == pytest.approx(50.0)
    assert totals.expected_conversions == pytest.approx(40.0)
    assert (totals.lo, totals.hi) == pytest.approx((40.0 - 0.8 * half, 40.0 + 0.8 * half))
    assert totals.cost_per_conversion == pytest.approx(300.0 / 40.0)
    assert result.cells["expected_conversions"].sum() == pytest.approx(50.0)  # the cells keep their estimates
    assert any("calibrated on the data's held-out rows" in note for note in result.notes)


@pytest.mark.parametrize("kind", [None, "persona"])
def test_a_table_without_a_line_for_its_kind_promises_its_estimates(kind):
    effects, costs = _one_cell(kind)
    effects.attrs["stages"] = {"targetable": {"promise": PromiseCalibration(0.8, 0.0, 0.25, 5).record()}}
    totals = plan(effects, budget=300.0, costs=costs, policy=PlanningPolicy(holdout_share=0.1)).totals
    assert totals.expected_conversions == totals.estimated_conversions == pytest.approx(50.0)
