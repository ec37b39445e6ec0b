"""A segment kind's effects, stage by stage, as its effect method (:class:`uplift.specs.segments.EffectMethod`) says.

:func:`segment_effects` runs the stages in order, each a function of the lines (one per segment and
arm) the stage before left:

1. :func:`observed_cells`: per line the randomised arm-vs-holdout difference with its se and the
   model's mean, and the covariance between the two the cross-fitting leaves (:func:`leak_of`);
2. :func:`persona_blend`: what the observed effects are calibrated against, the model alone or
   blended with the cell's persona mix;
3. :func:`calibrate`: the calibration pooled over the arms and each line's combination of its
   observation with the calibrated covariate (Fay-Herriot), with the arms' own spreads and slopes
   when the method asks, and the loadings on the errors the lines share;
4. :func:`with_observed_arm_levels`: each arm's level from its randomised difference, shrunk across
   the arms;
5. :func:`with_additive_fit` and :func:`with_observed_parts`: each arm's effects across the cells
   fitted on additive parts of the segment dimensions, and the arm's observed residuals read on them;
6. :func:`with_message_channel_rank`: each segment's messages x channels table projected on rank 1.

The arithmetic of each stage lives in :mod:`uplift.segments.effects` (observed effects, calibration,
spreads, slopes, leak), :mod:`uplift.segments.armlevels`, :mod:`uplift.segments.additive`,
:mod:`uplift.segments.parts` and :mod:`uplift.segments.armtable`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from uplift.allocation.effects import FIT_LOAD_PREFIX, PERSONA_LOAD_PREFIX
from uplift.segments.additive import additive_effects, additive_loadings
from uplift.segments.armlevels import arm_levels
from uplift.segments.armtable import low_rank_effects
from uplift.segments.effects import (
    _arm_means,
    _arm_slope_terms,
    _cells,
    _effects_from,
    _loadings_from,
    _own_weight,
    calibration_loadings,
    fay_herriot,
    leak_covariance,
    level_shift,
    with_arm_spreads,
)
from uplift.segments.kindrows import KindRows
from uplift.segments.personamix import PersonaMix
from uplift.specs.segments import EffectMethod

__all__ = ["Blend", "KindRows", "calibrate", "leak_of", "observed_cells", "persona_blend", "segment_effects",
           "with_additive_fit", "with_message_channel_rank", "with_observed_arm_levels", "with_observed_parts"]


@dataclass(frozen=True)
class Blend:
    """What the observed effects are calibrated against: per line the covariate and the persona mix
    (NaN without), the persona weight used (0: the model alone) with the mix and each line's arm in the
    mix's columns (None without), and the leak left in the covariate."""

    covariate: np.ndarray
    mix: np.ndarray
    weight: float
    leak: float
    persona_mix: PersonaMix | None = None
    arm_index: np.ndarray | None = None


def segment_effects(rows: KindRows, method: EffectMethod, *, persona_mix: PersonaMix | None = None,
                    group_attributes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long frame (group, arm) with observed, model and calibrated effects (``effect``, ``own_sd``).

    ``own_sd`` is the sd of the part of a line's error that no other line shares; the loading
    columns carry the parts it shares (:data:`uplift.allocation.effects.EFFECTS`), and
    :func:`uplift.segments.build_segment_table` adds them up into the line's ``effect_sd``.

    ``method`` says which stages run (see the module docstring and :class:`~uplift.specs.segments.EffectMethod`):
    ``variance`` as in :func:`uplift.segments.effects.observed_effects`; ``leak_correction`` with the
    rows' folds takes the model-noise covariance out of the calibration (else it is taken as 0);
    ``persona_weight`` ``w > 0`` with a ``persona_mix`` (:func:`uplift.segments.personamix.persona_mix`,
    arms as the predictions' columns) blends it into the calibration (:func:`persona_blend`); then
    ``arm_spread`` and ``arm_slopes`` (:func:`calibrate`), ``observed_arm_levels``
    (:func:`with_observed_arm_levels`), ``smooth_over`` with ``additive_fit`` and ``observed_parts``
    (``group_attributes``: one row per group with the terms' columns; :func:`with_additive_fit`,
    :func:`with_observed_parts`) and ``message_channel_rank`` (:func:`with_message_channel_rank`).
    Raises ``ValueError`` when ``smooth_over`` lacks one row of attributes per group, or the persona
    mix is not one row per group and one column per arm.
    """
    if method.smooth_over and (group_attributes is None or len(group_attributes) != rows.n_groups):
        raise ValueError(f"group_attributes: expected one row per group ({rows.n_groups}) to smooth over "
                         f"{method.smooth_over}")
    cells, line_rows = observed_cells(rows, method.variance)
    leak = leak_of(rows, method.variance) if method.leak_correction else 0.0
    blend = persona_blend(cells, rows, persona_mix, method.persona_weight, leak)
    out = calibrate(cells, blend, method)
    if method.observed_arm_levels:
        out = with_observed_arm_levels(out, line_rows, rows)
    if method.smooth_over and method.additive_fit:
        out = with_additive_fit(out, line_rows, group_attributes, method.smooth_over)
    if method.observed_parts and method.smooth_over:
        out = with_observed_parts(out, group_attributes, method.smooth_over)
    if method.message_channel_rank > 0:
        out = with_message_channel_rank(out, method.message_channel_rank)
    return out


def observed_cells(rows: KindRows, variance: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Stage 1: the long frame (group, arm) of observed effects, their se, base rates, row counts and model
    means (:func:`uplift.segments.effects.observed_effects`), and per line its group's rows."""
    cells = _cells(rows, variance)
    return cells.drop(columns="rows"), cells["rows"].to_numpy(dtype=float)


def leak_of(rows: KindRows, variance: str) -> float:
    """The model-noise covariance of the rows' cells (:func:`uplift.segments.effects.leak_covariance`);
    0 without folds."""
    if rows.folds is None:
        return 0.0
    return leak_covariance(rows, variance=variance)


def persona_blend(cells: pd.DataFrame, rows: KindRows, persona_mix: PersonaMix | None, weight: float,
                  leak: float) -> Blend:
    """Stage 2: the covariate ``(1 - w) * model + w * persona_mix`` per line with ``w > 0`` and a mix, else the
    model. Only the model part learned the observed noise, so the leak is scaled by ``1 - w``."""
    model = cells["model"].to_numpy()
    if persona_mix is None or weight <= 0:
        return Blend(covariate=model, mix=np.full(len(cells), np.nan), weight=0.0, leak=leak)
    if persona_mix.effects.shape != (rows.n_groups, len(rows.arms)):
        raise ValueError(f"persona_mix: expected shape {(rows.n_groups, len(rows.arms))}, "
                         f"got {persona_mix.effects.shape}")
    arm_index = pd.Index(rows.arms).get_indexer(cells["arm"])
    mix = persona_mix.effects[cells["group"].to_numpy(), arm_index]
    return Blend(covariate=(1 - weight) * model + weight * mix, mix=mix, weight=weight, leak=leak * (1 - weight),
                 persona_mix=persona_mix, arm_index=arm_index)


def calibrate(cells: pd.DataFrame, blend: Blend, method: EffectMethod) -> pd.DataFrame:
    """Stage 3: the lines with their calibrated effects and the loadings on the errors they share.

    One calibration over all arms (:func:`uplift.segments.effects.fay_herriot`): the bias and the spread
    of the truth around the model are properties of the learner, and pooling the arms' segments
    estimates them far less noisily. With ``method.arm_spread`` each arm's own spread
    (:func:`uplift.segments.effects.arm_spreads`), with ``method.arm_slopes`` each arm's deviations on its
    own slope (column ``calibration_slope``: the slope each line carries, the pooled ``beta`` without).
    With a blend, ``persona_load__<persona>``: a persona's observed effect moves the covariate, and the
    effect by ``(1 - gamma) * slope * w * share * se``.
    """
    observed, se = cells["observed"].to_numpy(), cells["observed_se"].to_numpy()
    covariate, leak, arm = blend.covariate, blend.leak, cells["arm"].to_numpy()
    effect, sd, (alpha, beta), A = fay_herriot(observed, se, covariate, leak=leak)
    if method.arm_spread:
        A, effect, sd = with_arm_spreads(observed, se, covariate, arm, A, alpha=alpha, beta=beta, leak=leak,
                                         effect=effect, sd=sd)
    load = calibration_loadings(observed, se, covariate, A)
    terms = _arm_slope_terms(observed, se, covariate, arm, A)  # the arms' slopes, fitted once
    slope = np.full(len(cells), beta)
    if method.arm_slopes:
        effect, slope = _effects_from(terms, effect, beta)
    out = cells.assign(persona_mix=blend.mix, effect=effect, own_sd=sd, calibration_load_1=load[:, 0],
                       calibration_load_2=load[:, 1], calibration_slope_load=_loadings_from(terms, len(cells)),
                       calibration_alpha=alpha, calibration_beta=beta, calibration_slope=slope, calibration_leak=leak)
    mix = blend.persona_mix
    if mix is not None:
        group = cells["group"].to_numpy()
        scale = (1.0 - _own_weight(observed, se, covariate, A)) * slope * blend.weight
        for k, name in enumerate(mix.personas):
            out[f"{PERSONA_LOAD_PREFIX}{name}"] = scale * mix.shares[group, k] * mix.se[k, blend.arm_index]
    return out


def with_observed_arm_levels(out: pd.DataFrame, line_rows: np.ndarray, rows: KindRows) -> pd.DataFrame:
    """Stage 4: each arm's effects shifted so that their row-weighted mean (``line_rows``: each line's group
    rows) is the arm's shrunk observed level (:func:`uplift.segments.armlevels.arm_levels`); columns
    ``arm_level_load`` (per arm) and ``arm_level_load_common`` carry the levels' errors."""
    arms = rows.arms
    levels = arm_levels(rows.y, rows.arm, rows.propensity, control=rows.control, arms=arms)
    index = pd.Index(arms).get_indexer(out["arm"])
    effect = out["effect"].to_numpy(dtype=float)
    slope = out["calibration_slope_load"].to_numpy(dtype=float)
    shifted = level_shift(effect, line_rows, index, levels.level)
    # the level is the data's now, whatever the slope: only the deviations from it carry the slope's error
    slope = slope - _arm_means(slope, line_rows, index, len(arms), np.isfinite(effect))[index]
    return out.assign(effect=shifted, arm_level_load=levels.own_sd[index],
                      arm_level_load_common=levels.common_sd, calibration_slope_load=slope)


def with_additive_fit(out: pd.DataFrame, line_rows: np.ndarray, group_attributes: pd.DataFrame,
                      terms: tuple[tuple[str, ...], ...]) -> pd.DataFrame:
    """Stage 5: every arm's effects across the groups replaced by their additive fit on ``terms``
    (:func:`uplift.segments.additive.additive_effects`, weighted by the groups' rows; the arm's level is kept).

    The fitted effects' errors are the fit of the errors before it: shared by every two cells with a part
    in common, they become the arm's factors ``fit_load__<k>`` (:func:`uplift.segments.additive.additive_loadings`)
    and the fitted lines' ``own_sd`` becomes 0; the other loadings are kept. That the truth is additive on
    the terms is the spec's assumption; what it cannot hold is not in the intervals.
    """
    lines = group_attributes.reset_index(drop=True).iloc[out["group"].to_numpy()]  # each line's group
    arm = out["arm"].to_numpy()
    # the effects and their slope loadings through the same (linear) fit
    fitted = additive_effects(out[["effect", "calibration_slope_load"]].to_numpy(dtype=float).T, arm, lines,
                              terms, line_rows)
    out = out.assign(effect=fitted[0], calibration_slope_load=fitted[1])
    # the lines the fit replaced (additive_effects' rule) now share their errors through it
    fitted_lines = np.isfinite(fitted).all(axis=0) & (line_rows > 0)
    own = out["own_sd"].to_numpy(dtype=float)
    loads = additive_loadings(np.where(fitted_lines, own, np.nan), arm, lines, terms, line_rows)
    return out.assign(own_sd=np.where(fitted_lines, 0.0, own),
                      **{f"{FIT_LOAD_PREFIX}{k}": loads[:, k] for k in range(loads.shape[1])})


def with_observed_parts(out: pd.DataFrame, group_attributes: pd.DataFrame,
                        terms: tuple[tuple[str, ...], ...]) -> pd.DataFrame:
    """Stage 5b: the effects with each arm's predicted parts of its observed residuals added
    (:func:`uplift.segments.parts.observed_parts`), and the parts' errors as more ``fit_load__<k>`` factors."""
    from uplift.segments.parts import observed_parts

    lines = group_attributes.reset_index(drop=True).iloc[out["group"].to_numpy()]
    effect, loads = observed_parts(out["effect"].to_numpy(dtype=float), out["observed"].to_numpy(dtype=float),
                                   out["observed_se"].to_numpy(dtype=float), out["arm"].to_numpy(), lines, terms)
    first = sum(1 for c in out.columns if str(c).startswith(FIT_LOAD_PREFIX))
    return out.assign(effect=effect, **{f"{FIT_LOAD_PREFIX}{first + k}": loads[:, k] for k in range(loads.shape[1])})


def with_message_channel_rank(out: pd.DataFrame, rank: int) -> pd.DataFrame:
    """Stage 6: every group's messages x channels table of effects projected on ``rank``
    (:func:`uplift.segments.armtable.low_rank_effects`); ``own_sd`` and the loadings are kept, so the intervals stay
    those of the estimates before the projection (conservative)."""
    return out.assign(effect=low_rank_effects(out["group"].to_numpy(), out["arm"].to_numpy(),
                                              out["effect"].to_numpy(dtype=float), rank=rank))
