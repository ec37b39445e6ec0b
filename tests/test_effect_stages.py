"""Each stage of a segment kind's effects on its own (uplift.segments.estimator)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.segments.armlevels import arm_levels
from uplift.segments.effects import fay_herriot
from uplift.segments.estimator import (
    Blend,
    KindRows,
    calibrate,
    leak_of,
    observed_cells,
    persona_blend,
    segment_effects,
    with_additive_fit,
    with_message_channel_rank,
    with_observed_arm_levels,
    with_observed_parts,
)
from uplift.segments.personamix import PersonaMix
from uplift.specs.segments import EffectMethod

ARMS = ("m1@meta", "m2@meta", "m1@flyer", "m2@flyer")


def _rows(seed: int = 1, n_groups: int = 12, per_group: int = 1500) -> KindRows:
    """Groups randomised evenly to a holdout and four message x channel arms; the effect grows with the group."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per_group)
    arm = rng.choice(["c", *ARMS], len(groups)).astype(object)
    lift = np.where(arm == "c", 0.0, 0.002 * (groups % 4) + np.where(np.char.startswith(arm.astype(str), "m2"),
                                                                       0.01, 0.0))
    y = (rng.random(len(groups)) < 0.03 + lift).astype(float)
    propensity = pd.DataFrame(0.2, index=range(len(groups)), columns=["c", *ARMS])
    predictions = pd.DataFrame({a: 0.002 * (groups % 4) + rng.normal(0, 0.001, len(groups)) for a in ARMS})
    return KindRows(groups, n_groups, y=y, arm=arm, propensity=propensity, predictions=predictions, control="c")


def test_observed_cells_are_the_arms_differences_per_group():
    rows = _rows()
    cells, line_rows = observed_cells(rows, "floored")
    assert len(cells) == rows.n_groups * len(ARMS) and "rows" not in cells.columns
    np.testing.assert_array_equal(line_rows, 1500.0)
    line = cells[(cells["group"] == 3) & (cells["arm"] == "m2@flyer")].iloc[0]
    in_group = rows.groups == 3
    treated = rows.y[in_group & (rows.arm == "m2@flyer")].mean()
    control = rows.y[in_group & (rows.arm == "c")].mean()
    assert line["observed"] == pytest.approx(treated - control)  # equal propensities: plain means
    assert line["model"] == pytest.approx(rows.predictions["m2@flyer"].to_numpy()[in_group].mean())


def test_leak_of_rows_without_folds_is_zero():
    assert leak_of(_rows(), "floored") == 0.0


def test_persona_blend_mixes_the_model_and_scales_the_leak():
    rows = _rows()
    cells, _ = observed_cells(rows, "floored")
    mix = PersonaMix(effects=np.full((rows.n_groups, len(ARMS)), 0.01), personas=("p",),
                     shares=np.ones((rows.n_groups, 1)), se=np.full((1, len(ARMS)), 0.001))
    alone = persona_blend(cells, rows, None, 0.5, leak=1e-6)
    assert alone.weight == 0 and np.isnan(alone.mix).all() and alone.leak == 1e-6
    np.testing.assert_array_equal(alone.covariate, cells["model"])
    blended = persona_blend(cells, rows, mix, 0.25, leak=1e-6)
    np.testing.assert_allclose(blended.covariate, 0.75 * cells["model"] + 0.25 * 0.01)
    assert blended.leak == pytest.approx(0.75e-6)
    short = PersonaMix(effects=mix.effects[:3], personas=("p",), shares=mix.shares[:3], se=mix.se)
    with pytest.raises(ValueError, match="persona_mix: expected shape"):
        persona_blend(cells, rows, short, 0.25, leak=0.0)


def test_calibrate_is_the_pooled_fay_herriot_with_the_arms_own_slopes_on_request():
    rows = _rows()
    cells, _ = observed_cells(rows, "floored")
    blend = Blend(covariate=cells["model"].to_numpy(), mix=np.full(len(cells), np.nan), weight=0.0, leak=0.0)
    plain = calibrate(cells, blend, EffectMethod())
    effect, sd, (alpha, beta), _ = fay_herriot(cells["observed"].to_numpy(), cells["observed_se"].to_numpy(),
                                               cells["model"].to_numpy())
    np.testing.assert_array_equal(plain["effect"], effect)
    np.testing.assert_array_equal(plain["own_sd"], sd)
    assert (plain["calibration_beta"] == beta).all() and (plain["calibration_slope"] == beta).all()
    sloped = calibrate(cells, blend, EffectMethod(arm_slopes=True))
    np.testing.assert_array_equal(sloped["own_sd"], plain["own_sd"])
    assert sloped["calibration_slope"].nunique() > 1


def test_observed_arm_levels_set_each_arms_row_weighted_mean():
    rows = _rows()
    cells, line_rows = observed_cells(rows, "floored")
    blend = Blend(covariate=cells["model"].to_numpy(), mix=np.full(len(cells), np.nan), weight=0.0, leak=0.0)
    out = with_observed_arm_levels(calibrate(cells, blend, EffectMethod()), line_rows, rows)
    levels = arm_levels(rows.y, rows.arm, rows.propensity, control="c", arms=ARMS)
    means = out.groupby("arm")["effect"].mean().loc[list(ARMS)].to_numpy()  # every group has the same rows
    np.testing.assert_allclose(means, levels.level)
    np.testing.assert_allclose(out.groupby("arm")["arm_level_load"].first().loc[list(ARMS)], levels.own_sd)


def _lines() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two arms over a 3 x 2 grid of groups whose effects are an age part plus a place part."""
    attributes = pd.DataFrame({"age_band": np.repeat(["a", "b", "c"], 2), "municipality": np.tile(["x", "y"], 3)})
    age, place = np.repeat([0.0, 0.01, 0.02], 2), np.tile([0.0, 0.005], 3)
    out = pd.concat([pd.DataFrame({"group": np.arange(6), "arm": a, "effect": age + place + k * 0.01,
                                   "calibration_slope_load": 0.001, "own_sd": 0.002,
                                   "observed": age + place + k * 0.01 + 0.001, "observed_se": 0.003})
                     for k, a in enumerate(("m1@meta", "m2@meta"))], ignore_index=True)
    return out, attributes


def test_additive_fit_keeps_additive_effects_and_moves_their_errors_to_shared_factors():
    out, attributes = _lines()
    terms = (("age_band",), ("municipality",))
    fitted = with_additive_fit(out, np.full(len(out), 100.0), attributes, terms)
    np.testing.assert_allclose(fitted["effect"], out["effect"], atol=1e-12)  # already additive: unchanged
    assert (fitted["own_sd"] == 0).all()
    loads = [c for c in fitted.columns if c.startswith("fit_load__")]
    assert loads and (fitted[loads].abs().sum(axis=1) > 0).all()


def test_observed_parts_number_their_factors_after_the_fits():
    out, attributes = _lines()
    terms = (("age_band",), ("municipality",))
    fitted = with_additive_fit(out, np.full(len(out), 100.0), attributes, terms)
    first = sum(c.startswith("fit_load__") for c in fitted.columns)
    parted = with_observed_parts(fitted, attributes, terms)
    added = [c for c in parted.columns if c.startswith("fit_load__")][first:]
    assert added == [f"fit_load__{first + k}" for k in range(len(added))]
    assert np.isfinite(parted["effect"]).all()


def test_message_channel_rank_one_leaves_a_rank_one_table_and_projects_others():
    appeal, strength = {"m1": 1.0, "m2": 2.0}, {"meta": 0.01, "flyer": 0.003}
    out = pd.DataFrame([{"group": 0, "arm": a, "effect": appeal[a.split("@")[0]] * strength[a.split("@")[1]],
                         "own_sd": 0.001} for a in ARMS])
    np.testing.assert_allclose(with_message_channel_rank(out, 1)["effect"], out["effect"], atol=1e-15)
    bent = out.assign(effect=out["effect"] + np.array([0.004, 0.0, 0.0, 0.0]))
    projected = with_message_channel_rank(bent, 1)
    table = projected.pivot_table(index=projected["arm"].str.split("@").str[0],
                                  columns=projected["arm"].str.split("@").str[1], values="effect")
    assert np.linalg.matrix_rank(table.to_numpy(), tol=1e-12) == 1
    assert (projected["own_sd"] == out["own_sd"]).all()


def test_segment_effects_runs_the_stages_the_method_names():
    rows = _rows()
    method = EffectMethod(observed_arm_levels=True, message_channel_rank=1)
    cells, line_rows = observed_cells(rows, method.variance)
    blend = persona_blend(cells, rows, None, 0.0, leak=0.0)
    by_hand = with_message_channel_rank(with_observed_arm_levels(calibrate(cells, blend, method), line_rows, rows), 1)
    pd.testing.assert_frame_equal(segment_effects(rows, method), by_hand)
    with pytest.raises(ValueError, match="group_attributes: expected one row per group"):
        segment_effects(rows, EffectMethod(smooth_over=(("age_band",),)))
