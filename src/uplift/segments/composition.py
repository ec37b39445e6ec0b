"""Each segment's composition: the share of its people in every priority group (``serve/groups.yaml``).

Counted from the audience attributes of the rows the segment table is built from, per distinct
person, for targetable and persona segments alike: a segment ``age_band=45-54|gender=female|...``
is 100% in the group "women", a persona segment is whatever share of its people the rule holds.
The shares go into the segment table as ``group__<name>`` columns
(:data:`uplift.allocation.effects.GROUP_PREFIX`), where fairness and coverage floors over a group
read them (:mod:`uplift.allocation.rules`).

A share with its size is a count of people: shares resting on fewer than the anonymity floor's
people in the group, or outside it, are used by the planner but never released
(:func:`released_composition` blanks them in any table that leaves the product).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uplift.allocation.effects import GROUP_PREFIX, group_columns
from uplift.errors import DataError, MissingAttributesWarning, SpecError
from uplift.features.library import age_band_of
from uplift.segments.assign import SUPPRESSED
from uplift.segments.table import segment_members
from uplift.specs.groups import RULE_COLUMNS, GroupRule, GroupSpec
from uplift.specs.segments import SegmentSpec

__all__ = ["PriorityGroups", "absent_attributes", "counted_groups", "group_members", "released_composition",
           "segment_composition", "with_composition"]


@dataclass(frozen=True)
class PriorityGroups:
    """The declared groups with what their rules need beyond the audience, and where they were declared.

    Attributes
    ----------
    spec : the groups (``serve/groups.yaml``).
    deprivation : neighbourhood (postcode) -> deprivation score, from ``spec.deprivation_from``; None
        when no rule needs it.
    source : the declaration's file, for error messages.
    """

    spec: GroupSpec
    deprivation: Mapping[str, float] | None = field(default=None, repr=False)
    source: str = "groups"


def group_members(people: pd.DataFrame, groups: PriorityGroups) -> pd.DataFrame:
    """Per row of ``people`` (audience attributes), whether it belongs to each group: one bool column per group.

    Raises
    ------
    SpecError
        A rule reads an attribute the rows do not have, or a neighbourhood's deprivation that is not
        declared; the message names the groups file, the group and the key.
    """
    out = {}
    for i, group in enumerate(groups.spec.groups):
        key = f"{groups.source}: groups[{i}] {group.name!r} rule"
        out[group.name] = _matches(group.rule, people, groups.deprivation, key=key)
    return pd.DataFrame(out, index=people.index)


def absent_attributes(groups: PriorityGroups, rows: pd.DataFrame) -> dict[str, list[str]]:
    """The groups whose rule reads what ``rows`` lack: group -> the missing audience attributes (or
    ``neighbourhood deprivation`` when no neighbourhood of the rows has a declared deprivation score)."""
    have = set(rows.columns)
    scored = (groups.deprivation is not None and "neighbourhood" in have
              and rows["neighbourhood"].astype(str).isin(set(groups.deprivation)).any())
    out = {}
    for group in groups.spec.groups:
        needed = {RULE_COLUMNS[name] for name in group.rule.keys()}
        missing = sorted(c for c in needed if c not in have and not (c == "age_band" and "age" in have))
        if group.rule.uses_deprivation and "neighbourhood" in have and not scored:
            missing.append("neighbourhood deprivation")
        if missing:
            out[group.name] = missing
    return out


def counted_groups(groups: PriorityGroups, rows: pd.DataFrame) -> PriorityGroups:
    """``groups`` without those whose rule reads what ``rows`` lack (:func:`absent_attributes`), saying
    once (a :class:`~uplift.errors.MissingAttributesWarning`) which were switched off and for lack of
    what: a floor over such a group does not apply to the plans (docs/planning.md)."""
    absent = absent_attributes(groups, rows)
    if not absent:
        return groups
    attributes = sorted({a for names in absent.values() for a in names})
    warnings.warn(MissingAttributesWarning(
        f"priority groups not counted, the data have no {', '.join(attributes)}: {', '.join(absent)} (floors over "
        "them do not apply to the plans)"), stacklevel=2)
    kept = tuple(g for g in groups.spec.groups if g.name not in absent)
    return dataclasses.replace(groups, spec=groups.spec.model_copy(update={"groups": kept}))


def _matches(rule: GroupRule, people: pd.DataFrame, deprivation: Mapping[str, float] | None, *, key: str) -> np.ndarray:
    """Mask of the rows ``rule`` matches."""
    for name in rule.keys():
        column = RULE_COLUMNS[name]
        if column not in people.columns and not (column == "age_band" and "age" in people.columns):
            raise SpecError(f"{key} key {name!r}: expected the audience column {column!r}, which the rows do not have "
                            f"(columns: {', '.join(map(str, people.columns[:16]))}, ...)")
    mask = np.ones(len(people), dtype=bool)
    if rule.age_min is not None:
        mask &= people["age"].to_numpy(dtype=float) >= rule.age_min
    if rule.age_max is not None:
        mask &= people["age"].to_numpy(dtype=float) <= rule.age_max
    if rule.age_band is not None:
        bands = people["age_band"] if "age_band" in people.columns else pd.Series(age_band_of(people["age"]))
        mask &= bands.astype(str).isin(rule.age_band).to_numpy()
    for name in ("gender", "municipality", "neighbourhood", "employment", "sector", "education", "income_band"):
        levels = getattr(rule, name)
        if levels is not None:
            mask &= people[name].astype(str).isin(levels).to_numpy()
    for name in ("migration_background", "has_children"):
        value = getattr(rule, name)
        if value is not None:
            mask &= (people[name].astype(float).to_numpy() > 0.5) == value
    if rule.uses_deprivation:
        score = _deprivation(people["neighbourhood"].astype(str), deprivation, key=key)
        if rule.deprivation_min is not None:
            mask &= score >= rule.deprivation_min
        if rule.deprivation_max is not None:
            mask &= score <= rule.deprivation_max
    return mask


def _deprivation(neighbourhood: pd.Series, deprivation: Mapping[str, float] | None, *, key: str) -> np.ndarray:
    """The deprivation score of every row's neighbourhood."""
    if deprivation is None:
        raise SpecError(f"{key} key 'deprivation_min': expected the neighbourhoods' deprivation scores "
                        "('deprivation_from' in the groups declaration)")
    score = neighbourhood.map(deprivation)
    unknown = sorted(neighbourhood[score.isna()].unique())
    if unknown:
        raise SpecError(f"{key} key 'deprivation_min': neighbourhood(s) {', '.join(map(repr, unknown[:5]))} have no "
                        f"deprivation score; expected every neighbourhood of the audience in 'deprivation_from'")
    return score.to_numpy(dtype=float)


def segment_composition(rows: pd.DataFrame, labels: Mapping[str, np.ndarray], groups: PriorityGroups) -> pd.DataFrame:
    """Per segment, the share of its distinct people in each group.

    Parameters
    ----------
    rows : one row per (person, wave) with ``person_id`` and the audience attributes.
    labels : per kind of segment, every row's segment label (``""``: in no segment of that kind),
        e.g. :func:`uplift.segments.table.segment_members`' ``segment`` and ``persona_segment``.
    groups : the declared groups.

    Returns
    -------
    DataFrame with ``segment`` and one ``group__<name>`` column per group.
    """
    members = group_members(rows, groups)
    parts = []
    for label in labels.values():
        label = np.asarray(label, dtype=object)
        shown = label != SUPPRESSED
        people = members[shown].assign(segment=label[shown], person_id=rows["person_id"].to_numpy()[shown])
        people = people.drop_duplicates(["segment", "person_id"])
        parts.append(people.drop(columns="person_id").groupby("segment", sort=True).mean())
    shares = pd.concat(parts).astype(float) if parts else pd.DataFrame(columns=members.columns)
    return shares.add_prefix(GROUP_PREFIX).rename_axis("segment").reset_index()


def with_composition(segments: pd.DataFrame, rows: pd.DataFrame, spec: SegmentSpec,
                     groups: PriorityGroups) -> pd.DataFrame:
    """``segments`` (:func:`uplift.segments.build_segment_table` on ``rows``) with a ``group__<name>``
    column per group (a new frame, rows in the same order); empty (NaN) for a group the rows cannot count
    (:func:`counted_groups`), so that floors over it do not apply.

    Raises
    ------
    SpecError
        A group's rule cannot be applied to the rows (:func:`group_members`); a group whose rule reads
        an attribute the rows lack is left out instead, with one note (:func:`counted_groups`).
    DataError
        A segment of the table has no people in ``rows`` (the table was built from other rows).
    """
    counted = counted_groups(groups, rows)
    members = segment_members(rows, spec)
    shares = segment_composition(rows, {"targetable": members["segment"].to_numpy(),
                                        "persona": members["persona_segment"].to_numpy()}, counted)
    out = segments.drop(columns=list(group_columns(segments).values())).merge(shares, on="segment", how="left")
    missing = out.loc[out[shares.columns[1:]].isna().any(axis=1), "segment"].unique() if len(shares.columns) > 1 else []
    if len(missing):
        raise DataError(f"segment table: segment(s) {', '.join(map(repr, missing[:3]))} have no people in the rows "
                        "their composition is counted from; expected the rows the table was built from")
    for group in groups.spec.groups:  # declared but not counted: an empty column says so to the planner
        if GROUP_PREFIX + group.name not in out.columns:
            out[GROUP_PREFIX + group.name] = np.nan
    out.attrs = dict(segments.attrs)  # the stage choice and the promise's calibration travel with the table
    return out


def released_composition(table: pd.DataFrame, floor: int) -> pd.DataFrame:
    """``table`` with every group share blanked (NaN) that rests on fewer than ``floor`` people in the
    group or outside it (its ``size`` times the share, or times one minus it): what may leave the product."""
    out = table.copy()
    size = out["size"].to_numpy(dtype=float)
    for column in group_columns(out).values():
        share = out[column].to_numpy(dtype=float)
        inside = np.rint(share * size)
        small = (inside < floor) | (size - inside < floor)
        out[column] = np.where(small, np.nan, share)
    return out
