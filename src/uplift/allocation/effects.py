"""The segment-effects table the planner reads: its pandera contract and the cross-row checks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pandera.pandas as pa

from uplift.data.contracts import validate
from uplift.data.vocabulary import HOLDOUT
from uplift.errors import DataError
from uplift.specs.planning import CostCatalogue, FairnessFloor

__all__ = [
    "ARM_LEVEL_LOAD", "ARM_SLOPE_LOAD", "EFFECTS", "EFFECT_COLUMNS", "FIT_LOAD_PREFIX", "GROUP_PREFIX",
    "PERSONA_LOAD_PREFIX", "PER_ARM_LOADS", "PER_ARM_PREFIXES", "SHARED_ERROR_COLUMNS", "applicable_floors",
    "check_effects", "counts_group", "floor_mask", "floor_weights", "group_columns", "group_weights", "own_sd",
           "segment_kind",
    "shared_error_columns", "shared_factors", "total_variance",
]

SHARED_ERROR_COLUMNS: tuple[str, ...] = ("calibration_load_1", "calibration_load_2", "arm_level_load_common")
"""Optional per-contact loadings on errors every cell shares (see :data:`EFFECTS`)."""

ARM_LEVEL_LOAD = "arm_level_load"
"""Optional column: per contact, the cell's loading on the error of its arm's level, one factor per
arm (:mod:`uplift.segments.armlevels`)."""

ARM_SLOPE_LOAD = "calibration_slope_load"
"""Optional column: per contact, the cell's loading on the error of its arm's own calibration slope,
one factor per arm (:func:`uplift.segments.effects.slope_loadings`)."""

PER_ARM_LOADS: tuple[str, ...] = (ARM_LEVEL_LOAD, ARM_SLOPE_LOAD)
"""The optional loading columns that are one factor per arm (besides the persona loadings)."""

PERSONA_LOAD_PREFIX = "persona_load__"
"""Optional ``persona_load__<persona>`` columns: per contact, the cell's loading on the error of that
persona's observed effect for the cell's arm (:mod:`uplift.segments.personamix`)."""

FIT_LOAD_PREFIX = "fit_load__"
"""Optional ``fit_load__<k>`` columns: per contact, the cell's loading on the k-th error of its arm's
additive fit across the cells (:func:`uplift.segments.additive.additive_loadings`), one factor per arm."""

PER_ARM_PREFIXES: tuple[str, ...] = (PERSONA_LOAD_PREFIX, FIT_LOAD_PREFIX)

GROUP_PREFIX = "group__"
"""Optional ``group__<group>`` columns: the share of the segment's people in that priority group
(``serve/groups.yaml``, :mod:`uplift.segments.composition`), between 0 and 1, the same on every row
of a segment; fairness and coverage floors over a ``group`` count each segment with it."""
"""Prefixes of the loading columns that are one factor per arm (:func:`shared_factors`)."""

EFFECTS = pa.DataFrameSchema(
    {
        "segment": pa.Column(str, pa.Check.str_length(min_value=1), coerce=True, nullable=False),
        "size": pa.Column(int, pa.Check.ge(0), coerce=True, nullable=False),
        "arm": pa.Column(str, pa.Check.str_length(min_value=1), coerce=True, nullable=False),
        "message": pa.Column(str, pa.Check.str_length(min_value=1), coerce=True, nullable=False),
        "channel": pa.Column(str, pa.Check.str_length(min_value=1), coerce=True, nullable=False),
        "effect": pa.Column(float, pa.Check(np.isfinite, element_wise=False, name="finite"), coerce=True,
                            nullable=False),
        "effect_sd": pa.Column(float, [pa.Check.ge(0), pa.Check(np.isfinite, element_wise=False, name="finite")],
                               coerce=True, nullable=False),
        # not read by the planner; a released table withholds it where it rests on few people
        "base_rate": pa.Column(float, pa.Check.in_range(0, 1), coerce=True, nullable=True, required=False),
        **{name: pa.Column(float, pa.Check(np.isfinite, element_wise=False, name="finite"), coerce=True,
                           nullable=False, required=False) for name in (*SHARED_ERROR_COLUMNS, *PER_ARM_LOADS)},
        **{f"^{prefix}.+$": pa.Column(float, pa.Check(np.isfinite, element_wise=False, name="finite"),
                                      coerce=True, nullable=False, required=False, regex=True)
           for prefix in PER_ARM_PREFIXES},
        f"^{GROUP_PREFIX}.+$": pa.Column(float, pa.Check.in_range(0, 1), coerce=True, nullable=True,
                                         required=False, regex=True),  # all empty: a group the data cannot count
    },
    unique=["segment", "arm"],
    strict=False,
    name="segment effects",
)
"""One row per (segment, treatment arm): the estimated incremental conversions per contact.

``effect_sd`` is the sd of the cell's whole error, the part no other cell shares and the parts it
shares with others (the loadings below) together: ``effect_sd^2 = own^2 + sum of its squared
loadings``, so ``effect +- z effect_sd`` is the cell's interval. A total over cells adds the own
parts as independent and the shared parts through their factors (:func:`own_sd`,
:func:`shared_factors`).

Optional ``calibration_load_1`` / ``calibration_load_2``: per contact, the cell's loadings on the
error its kind's calibration shares with every other cell (:func:`uplift.segments.effects.calibration_loadings`),
``persona_load__<persona>``: its loadings on the errors of the persona effects its estimate rests
on, one factor per persona and arm; ``arm_level_load``: on the error of its arm's level, one factor
per arm, and ``arm_level_load_common``: on the error all arms' levels share
(:mod:`uplift.segments.armlevels`); ``calibration_slope_load``: on the error of its arm's own
calibration slope, one factor per arm (:func:`uplift.segments.effects.slope_loadings`);
``fit_load__<k>``: on the errors of its arm's additive fit across the cells, one factor per arm and
``k`` (:func:`uplift.segments.additive.additive_loadings`). Optional ``group__<group>``: the share of the
segment's people in a priority group (:data:`GROUP_PREFIX`). A plan's
interval adds them up over the cells (:func:`shared_factors`; absent = 0). Optional
``part__<dims>`` columns name the additive parts the effects were fitted on
(:mod:`uplift.segments.additive`); the Thompson draws are fitted on them too. Extra
columns are segment attributes (``age_band``, ``gender``, ...) that fairness floors select on.
"""

EFFECT_COLUMNS: tuple[str, ...] = tuple(c for c in EFFECTS.columns if not c.startswith("^"))


def shared_error_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` that carry loadings on shared errors (see :data:`EFFECTS`)."""
    return [c for c in frame.columns
            if c in SHARED_ERROR_COLUMNS or c in PER_ARM_LOADS or str(c).startswith(PER_ARM_PREFIXES)]


def shared_factors(frame: pd.DataFrame) -> np.ndarray:
    """Per cell (row), its per-contact loadings on independent standard-normal shared errors, ``(n, k)``.

    The calibration loadings and the common arm-level loading are factors of their own; a
    ``persona_load__<persona>`` or ``fit_load__<k>`` column and the ``arm_level_load`` and
    ``calibration_slope_load`` columns are one factor per arm (a persona's observed effect for one
    arm, an arm's additive fit, its level or its own calibration slope is shared by that arm's cells
    only).
    Factors no cell loads on are left out. A total ``sum_i contacts_i x effect_i`` then has the shared
    variance ``||contacts @ factors||^2``.
    """
    n = len(frame)
    parts = [frame[[c for c in SHARED_ERROR_COLUMNS if c in frame.columns]].to_numpy(dtype=float).reshape(n, -1)]
    per_arm = [c for c in frame.columns if str(c).startswith(PER_ARM_PREFIXES)]
    per_arm += [c for c in PER_ARM_LOADS if c in frame.columns]
    if per_arm:
        loads = frame[per_arm].to_numpy(dtype=float)
        codes, arms = pd.factorize(frame["arm"])
        expanded = np.zeros((n, len(arms) * len(per_arm)))
        for a in range(len(arms)):
            rows = codes == a
            expanded[rows, a * len(per_arm):(a + 1) * len(per_arm)] = loads[rows]
        parts.append(expanded)
    factors = np.concatenate(parts, axis=1)
    return factors[:, np.any(factors != 0, axis=0)]


def own_sd(effect_sd: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """Per cell, the sd of the part of its error no other cell shares: ``effect_sd`` (the whole)
    without the shared loadings (``shared``, :func:`shared_factors`), 0 where they make up all of it."""
    effect_sd = np.asarray(effect_sd, dtype=float)
    shared_var = np.sum(shared**2, axis=1) if shared.size else np.zeros_like(effect_sd)
    return np.sqrt(np.maximum(effect_sd**2 - shared_var, 0.0))


def total_variance(weights: np.ndarray, own: np.ndarray, shared: np.ndarray | None) -> float:
    """Variance of ``sum_i weights_i x effect_i``: the cells' own errors (``own``, :func:`own_sd`,
    independent across cells) plus the errors they share (``shared``, :func:`shared_factors`, may be None).

    ``weights`` are a plan's contacts, a difference of two plans' contacts, or a floor's signed contacts.
    """
    weights = np.asarray(weights, dtype=float)  # whole contacts (int64) @ floats is numpy's slow loop, not BLAS
    variance = float(np.sum((own * weights) ** 2))
    if shared is not None and shared.size:
        variance += float(np.sum((weights @ shared) ** 2))
    return variance


def check_effects(effects: pd.DataFrame, costs: CostCatalogue, *, source: str = "effects") -> pd.DataFrame:
    """Validate ``effects`` and return a coerced copy with a fresh 0..n-1 index.

    Beyond the pandera contract: at least one row, no holdout rows, ``arm`` equal to
    ``"message@channel"``, one ``size`` per segment, every channel in the cost catalogue and no
    ``effect_sd`` below what the cell's shared loadings alone make up.

    Raises
    ------
    SchemaError
        A column is missing or has values of the wrong type or range.
    DataError
        The rows are valid one by one but not together (see above).
    """
    frame = validate(effects, EFFECTS, source=source).reset_index(drop=True)
    if frame.empty:
        raise DataError(f"{source}: the segment-effects table has no rows")
    if (frame["arm"] == HOLDOUT).any():
        raise DataError(
            f"{source}: column 'arm': {HOLDOUT!r} is the control arm; effects are per treatment arm against it"
        )
    expected = frame["message"] + "@" + frame["channel"]
    wrong = frame["arm"] != expected
    if wrong.any():
        examples = ", ".join(repr(a) for a in frame.loc[wrong, "arm"].head(3))
        raise DataError(
            f"{source}: column 'arm': expected 'message@channel' from columns 'message' and 'channel'; "
            f"{int(wrong.sum())} row(s) break it (e.g. {examples})"
        )
    sizes = frame.groupby("segment", sort=False)["size"].nunique()
    if (sizes > 1).any():
        examples = ", ".join(repr(s) for s in sizes.index[sizes > 1][:3])
        raise DataError(f"{source}: column 'size': expected one size per segment; segments {examples} have several")
    unknown = sorted(set(frame["channel"].unique()) - set(costs.channels))
    if unknown:
        raise DataError(
            f"{source}: column 'channel': {', '.join(map(repr, unknown))} not in the cost catalogue; "
            f"valid: {', '.join(sorted(costs.channels))}"
        )
    loads = shared_error_columns(frame)
    if loads:
        whole = frame["effect_sd"].to_numpy(dtype=float)
        shared = np.sqrt(np.sum(frame[loads].to_numpy(dtype=float) ** 2, axis=1))
        short = shared > whole * (1 + 1e-6) + 1e-12
        if short.any():
            first = int(np.flatnonzero(short)[0])
            raise DataError(
                f"{source}: column 'effect_sd': expected the sd of each cell's whole error, at least the "
                "root sum of squares of its shared loadings "
                f"({', '.join(loads[:4])}{', ...' if len(loads) > 4 else ''}); "
                f"{int(short.sum())} row(s) fall short, e.g. segment {frame['segment'].iloc[first]!r}, arm "
                f"{frame['arm'].iloc[first]!r}: effect_sd {whole[first]:.6g} against {shared[first]:.6g}"
            )
    # plain Python strings: the planner reads these columns into arrays on every plan, and an
    # Arrow-backed string column costs milliseconds per read
    return frame.astype({c: object for c in ("segment", "arm", "message", "channel")})


def floor_mask(
    frame: pd.DataFrame, floor: FairnessFloor, *, source: str = "effects", allow_empty: bool = False
) -> np.ndarray:
    """Boolean mask of the rows of ``frame`` whose segment the fairness ``floor`` selects.

    Raises
    ------
    DataError
        A ``where`` column is missing, varies within a segment, or the floor selects nothing
        (unless ``allow_empty``).
    """
    mask = np.ones(len(frame), dtype=bool)
    for column in floor.where:
        if column not in frame.columns:
            loads = shared_error_columns(frame)
            attributes = [c for c in frame.columns if (c not in EFFECT_COLUMNS and c not in loads) or c == "segment"]
            raise DataError(
                f"{source}: fairness floor {floor.name!r} selects on column {column!r}, which is missing; "
                f"segment columns: {', '.join(attributes) or 'none'}"
            )
        values = frame[column].astype(str)
        if column != "segment" and (frame.assign(_v=values).groupby("segment")["_v"].nunique() > 1).any():
            raise DataError(
                f"{source}: fairness floor {floor.name!r} selects on column {column!r}, which varies within a "
                "segment; floors select whole segments"
            )
        mask &= values.isin(floor.values(column)).to_numpy()
    if not mask.any() and not allow_empty:
        present = {c: sorted(frame[c].astype(str).unique())[:8] for c in floor.where}
        raise DataError(
            f"{source}: fairness floor {floor.name!r} (where {floor.where}) selects no segment; "
            f"values present: {present}{_kind_hint(frame, floor)}"
        )
    return mask


def segment_kind(frame: pd.DataFrame) -> str | None:
    """The kind of segment every row of ``frame`` is (its ``kind`` column), or None when it has no such
    column or mixes kinds."""
    if "kind" not in frame.columns:
        return None
    kinds = frame["kind"].astype(str).unique()
    return str(kinds[0]) if len(kinds) == 1 else None


def applicable_floors(
    floors: Sequence[FairnessFloor], frame: pd.DataFrame
) -> tuple[list[FairnessFloor], list[FairnessFloor]]:
    """``floors`` split into those that bind a plan over ``frame``'s kind of segment and those that do
    not apply to it (:meth:`~uplift.specs.planning.FairnessFloor.applies_to`)."""
    kind = segment_kind(frame)
    return [f for f in floors if f.applies_to(kind)], [f for f in floors if not f.applies_to(kind)]


def _kind_hint(frame: pd.DataFrame, floor: FairnessFloor) -> str:
    """For a floor on a column every segment of the table has as ``any``: which kinds it can bind."""
    blank = [c for c in floor.where if c != "segment" and (frame[c].astype(str) == "any").all()]
    if not blank:
        return ""
    kind = segment_kind(frame)
    segments = f"{kind} segments" if kind else "these segments"
    return (f"; the {segments} do not split by {', '.join(map(repr, blank))} (every one is 'any'): name the kinds "
            f"of segment the floor binds, e.g. segment_kinds: [targetable]")


def counts_group(frame: pd.DataFrame, group: str | None) -> bool:
    """Whether ``frame`` counts priority ``group`` (True for no group). A segment table marks a group whose
    rule reads an attribute the data lack with an empty ``group__`` column
    (:func:`uplift.segments.composition.with_composition`): rules over it do not apply to its plans. A
    group without any column is not known to the table at all, and the rules over it fail
    (:func:`group_weights`)."""
    if group is None or GROUP_PREFIX + group not in frame.columns:
        return True
    return bool(frame[GROUP_PREFIX + group].notna().any())


def group_columns(frame: pd.DataFrame) -> dict[str, str]:
    """The priority groups whose composition ``frame`` carries: group name -> its ``group__`` column."""
    return {str(c)[len(GROUP_PREFIX):]: str(c) for c in frame.columns if str(c).startswith(GROUP_PREFIX)}


def floor_weights(
    frame: pd.DataFrame, floor: FairnessFloor, *, source: str = "effects", allow_empty: bool = False,
    key: str = "fairness floor",
) -> np.ndarray:
    """Per row of ``frame``, how much of its contacts, spend and conversions the ``floor`` counts: 1 or 0
    for a ``where`` floor (:func:`floor_mask`), the group's share of the segment's people for a
    ``group`` floor (its ``group__`` column).

    Raises
    ------
    DataError
        The group's column is missing, varies within a segment, or (unless ``allow_empty``) is 0
        everywhere; ``key`` names the floor in the message (e.g. ``"serve/policy.yaml
        fairness_floors[2]"``).
    """
    if floor.group is None:
        return floor_mask(frame, floor, source=source, allow_empty=allow_empty).astype(float)
    return group_weights(frame, floor.group, source=source, allow_empty=allow_empty, key=f"{key} {floor.name!r}")


def group_weights(
    frame: pd.DataFrame, group: str, *, source: str = "effects", allow_empty: bool = False, key: str = "a rule"
) -> np.ndarray:
    """Per row of ``frame``, the share of its segment's people in priority ``group``; see :func:`floor_weights`."""
    columns = group_columns(frame)
    if group not in columns:
        have = ", ".join(sorted(columns)) or "none"
        raise DataError(
            f"{key} counts priority group {group!r}, but {source} has no column {GROUP_PREFIX + group!r}; expected "
            f"a group of serve/groups.yaml counted into the segment table when it was built (groups it has: {have})"
        )
    column = columns[group]
    values = frame[column].to_numpy(dtype=float)
    if np.isnan(values).any():
        raise DataError(f"{key} counts priority group {group!r}, but {source} column {column!r} is empty in "
                        f"{int(np.isnan(values).sum())} row(s); expected a share in every row (or none at all, for "
                        "a group the data cannot count)")
    # rows split per print unit (a flyer planned per neighbourhood) carry their unit's share
    cell = ["segment", "unit"] if "unit" in frame.columns else ["segment"]
    if (frame.assign(_v=values).groupby(cell)["_v"].nunique() > 1).any():
        raise DataError(f"{source}: column {column!r} varies within a segment; expected one share per segment")
    if not (values > 0).any() and not allow_empty:
        raise DataError(f"{key} counts priority group {group!r}, which has no people in any segment of {source}")
    return values
