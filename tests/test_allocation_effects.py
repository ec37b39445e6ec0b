"""The effects table the planner reads (uplift.allocation.effects): its contract and the shared errors its loading
columns declare."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allocation_worlds import synthetic_effects
from uplift.allocation import plan
from uplift.errors import DataError, SchemaError, SpecError
from uplift.specs.planning import PlanningPolicy


def test_persona_loadings_are_one_shared_factor_per_persona_and_arm():
    from uplift.allocation.effects import shared_factors

    frame = pd.DataFrame({
        "arm": ["m@meta", "m@meta", "m@flyer", "m@flyer"],
        "calibration_load_1": [0.1, 0.2, 0.3, 0.4],
        "calibration_load_2": 0.0,  # loads on nothing: left out
        "persona_load__p": [1.0, 2.0, 3.0, 0.0],
        "persona_load__q": [0.0, 0.0, 5.0, 6.0],
    })
    factors = shared_factors(frame)
    # calibration factor; (p, meta); (p, flyer); (q, flyer): q's meta factor has no loading
    assert factors.shape == (4, 4)
    assert np.allclose(factors[:, 0], [0.1, 0.2, 0.3, 0.4])
    contacts = np.array([10.0, 20.0, 30.0, 40.0])
    # the cells of one arm add up on that arm's factor of a persona; different arms' errors are independent
    expected = ((contacts @ frame["calibration_load_1"]) ** 2 + (10 * 1 + 20 * 2) ** 2 + (30 * 3) ** 2
                + (30 * 5 + 40 * 6) ** 2)
    assert np.sum((contacts @ factors) ** 2) == pytest.approx(expected)
    assert shared_factors(frame[["arm"]]).shape == (4, 0)


def test_arm_level_and_slope_loadings_are_one_factor_per_arm_and_one_common_factor():
    from uplift.allocation.effects import shared_error_columns, shared_factors

    frame = pd.DataFrame({
        "arm": ["m@meta", "m@meta", "m@flyer", "m@flyer"],
        "arm_level_load": [1.0, 1.0, 2.0, 2.0],
        "arm_level_load_common": 0.5,
    })
    factors = shared_factors(frame)
    assert factors.shape == (4, 3)  # the common factor, then meta's and flyer's levels
    contacts = np.array([10.0, 20.0, 30.0, 40.0])
    expected = (0.5 * 100) ** 2 + (10 + 20) ** 2 + (2 * (30 + 40)) ** 2
    assert np.sum((contacts @ factors) ** 2) == pytest.approx(expected)
    assert shared_error_columns(frame) == ["arm_level_load", "arm_level_load_common"]
    # an arm's own calibration slope: one more factor per arm, on which its cells' deviations load
    sloped = frame.assign(calibration_slope_load=[-1.0, 3.0, 0.0, 0.0])
    factors = shared_factors(sloped)
    assert factors.shape == (4, 4)  # flyer's slope factor has no loading: left out
    assert np.sum((contacts @ factors) ** 2) == pytest.approx(expected + (-10 + 60) ** 2)
    assert shared_error_columns(sloped) == ["arm_level_load", "arm_level_load_common", "calibration_slope_load"]


def test_policy_with_unknown_channel_is_a_spec_error(costs):
    with pytest.raises(SpecError, match="'tiktok' not in the cost catalogue"):
        plan(synthetic_effects(), budget=100.0, costs=costs, policy=PlanningPolicy(min_spend={"tiktok": 10.0}))


def test_effects_contract(costs, open_policy):
    effects = synthetic_effects(n_segments=2)
    with pytest.raises(SchemaError, match="column 'effect_sd'"):
        plan(effects.drop(columns="effect_sd"), budget=10.0, costs=costs, policy=open_policy)
    with pytest.raises(SchemaError, match="column 'effect_sd'"):
        plan(effects.assign(effect_sd=-1.0), budget=10.0, costs=costs, policy=open_policy)
    with pytest.raises(DataError, match="column 'arm'"):
        plan(effects.assign(arm=effects["arm"] + "x"), budget=10.0, costs=costs, policy=open_policy)
    radio = effects["channel"].where(effects["channel"] != "meta", "radio")
    with pytest.raises(DataError, match="'radio' not in the cost catalogue"):
        plan(effects.assign(channel=radio, arm=effects["message"] + "@" + radio), budget=10.0, costs=costs,
             policy=open_policy)
    with pytest.raises(DataError, match="one size per segment"):
        plan(effects.assign(size=np.arange(len(effects)) + 1), budget=10.0, costs=costs, policy=open_policy)
    with pytest.raises(SpecError, match="budget"):
        plan(effects, budget=float("nan"), costs=costs, policy=open_policy)
