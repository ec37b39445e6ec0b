"""Coverage floors: every area gets at least ``min_contacts`` contacts (``policy.coverage_floors``).

"Every poorer neighbourhood gets at least N contacts": one row per (floor, area), ``sum_{c in area}
w_c x_c >= N`` over the cells of the area's segments (on the floor's channels, if it names some),
``w_c`` 1, or the share of the segment's people in the floor's priority group. The area is a segment
column (``municipality``; ``neighbourhood`` where the segment table has neighbourhood cells).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from uplift.allocation.effects import GROUP_PREFIX, counts_group, group_weights, segment_kind
from uplift.allocation.rules.base import BaseFigures, DeclaredRule, Rows, RuleFamily, Situation, others
from uplift.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from uplift.allocation.problem import Problem
    from uplift.specs.planning import CoverageFloor

__all__ = ["Coverage", "CoverageTargets", "NO_AREA", "coverage_cells", "group_has_nobody"]

NO_AREA: frozenset[str] = frozenset({"", "other", "any"})
"""Values of an area column that name no area: merged small cells (``other``), persona segments (``any``)."""


@dataclass(frozen=True)
class CoverageTargets:
    """The rows of the coverage floors: per row its floor (index into ``policy.coverage_floors``),
    its area, and the cells it counts with their weights."""

    floor: tuple[int, ...]
    area: tuple[str, ...]
    cells: tuple[np.ndarray, ...]
    weight: tuple[np.ndarray, ...]


class Coverage(RuleFamily):
    """``-sum_{c in area} w_c x_c <= -min_contacts`` per (coverage floor, area)."""

    kind: ClassVar[str] = "coverage"
    elastic: ClassVar[bool] = True
    unit: ClassVar[str] = "contacts"

    def prepare(self, problem: Problem, *, source: str, policy_source: str, require: bool) -> CoverageTargets:
        floor_of, area_of, cells_of, weight_of = [], [], [], []
        kind = segment_kind(problem.frame)
        for i, cover in enumerate(problem.policy.coverage_floors):
            if (not cover.applies_to(kind) or not counts_group(problem.frame, cover.group)
                    or group_has_nobody(problem.frame, cover)):
                continue
            key = f"{policy_source} coverage_floors[{i}] {cover.name!r}"
            for area, cells, weight in coverage_cells(problem.frame, cover, key=key, source=source, require=require):
                floor_of.append(i)
                area_of.append(area)
                cells_of.append(cells)
                weight_of.append(weight)
        return CoverageTargets(tuple(floor_of), tuple(area_of), tuple(cells_of), tuple(weight_of))

    def add_rows(self, problem: Problem, rows: Rows) -> None:
        targets: CoverageTargets = problem.rule_data[self.kind]
        per_target = zip(targets.floor, targets.area, targets.cells, targets.weight, strict=True)
        for r, (i, area, cells, weight) in enumerate(per_target):
            cover = problem.policy.coverage_floors[i]
            rows.add(self.kind, f"coverage floor {cover.name!r} in {cover.area} {area!r}", r, cells, -weight)

    def rhs(self, problem: Problem, ref: np.ndarray, base: BaseFigures) -> np.ndarray:
        targets: CoverageTargets = problem.rule_data[self.kind]
        floors = problem.policy.coverage_floors
        return np.array([-floors[targets.floor[r]].min_contacts + float(base.x[targets.cells[r]] @ targets.weight[r])
                         for r in ref], dtype=float)

    def in_play(self, problem: Problem, row: int, budget: float) -> str:
        targets: CoverageTargets = problem.rule_data[self.kind]
        cover = problem.policy.coverage_floors[targets.floor[problem.row_ref[row]]]
        return f"coverage floor {cover.name!r} ({cover.min_contacts:,.0f} contacts per {cover.area})"

    def conflicts(self, problem: Problem, situation: Situation, rows: np.ndarray) -> list[str]:
        targets: CoverageTargets = problem.rule_data[self.kind]
        reach = _reachable_contacts(problem, situation.open_cells)
        messages = []
        for r in rows:
            t = problem.row_ref[r]
            cover = problem.policy.coverage_floors[targets.floor[t]]
            cells, weight = targets.cells[t], targets.weight[t]
            need = cover.min_contacts
            got = float(situation.total.x[cells] @ weight)
            most = _most_in(problem, cells, weight, reach)
            where = f"in {cover.area} {targets.area[t]!r}"
            if most < need * (1 - 1e-9):
                messages.append(
                    f"coverage floor {cover.name!r} needs {need:,.0f} contacts {where} but at most {most:,.0f} can be "
                    f"reached there under the reach and holdout caps (short by {need - most:,.0f})"
                )
            else:
                messages.append(
                    f"coverage floor {cover.name!r} needs {need:,.0f} contacts {where} but gets {got:,.0f} (short by "
                    f"{situation.slack[r]:,.0f}); it conflicts with {others(situation.names, r)}"
                )
        return messages

    def declared(self, problem: Problem, totals: BaseFigures) -> list[DeclaredRule]:
        targets: CoverageTargets = problem.rule_data[self.kind]
        rows = np.flatnonzero(problem.row_kind == self.kind)
        out = []
        for i, cover in enumerate(problem.policy.coverage_floors):
            own = rows[np.asarray(targets.floor, dtype=int)[problem.row_ref[rows]] == i] if len(rows) else rows
            if not len(own):
                continue
            who = f" with people in group {cover.group!r}" if cover.group is not None else ""
            on = f" on {', '.join(cover.channels)}" if cover.channels is not None else ""
            out.append(DeclaredRule(
                name=f"coverage floor {cover.name!r}", kind=self.kind, rows=own, per_unit=np.full(len(own), 100.0),
                unit=f"100 more contacts in every {cover.area}", size=cover.min_contacts / 100.0,
                stated=f"{cover.min_contacts:,.0f} contacts{who}{on} in each of {len(own)} {cover.area} area(s)"))
        return out


def group_has_nobody(frame: pd.DataFrame, cover: CoverageFloor) -> bool:
    """Whether ``cover``'s priority group has no people in any segment of ``frame`` (a region without poorer
    neighbourhoods): then no area needs covering, and the floor has nothing to hold."""
    column = f"{GROUP_PREFIX}{cover.group}"
    return cover.group is not None and column in frame.columns and not (frame[column].to_numpy(dtype=float) > 0).any()


def coverage_cells(
    frame: pd.DataFrame, cover: CoverageFloor, *, key: str, source: str, require: bool = True
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per area the coverage floor ``cover`` holds in ``frame``: the area, the rows it counts and their weights.

    Raises
    ------
    DataError
        The area column is missing or varies within a segment, the floor's group has no composition
        column, or (with ``require``) the floor counts no area (e.g. persona segments, whose area is
        ``any``), or a listed area or channel has no rows the floor counts.
    """
    values, areas = _area_values(frame, cover, key=key, source=source)
    weight = (np.ones(len(frame)) if cover.group is None else
              group_weights(frame, cover.group, source=source, allow_empty=not require, key=key))
    counted = _on_channels(frame, cover, key=key, source=source, require=require) & (weight > 0)
    wanted = cover.areas if cover.areas is not None else sorted(set(values[counted]) - NO_AREA)
    if not wanted and require:
        raise DataError(f"{key}: no area of column {cover.area!r} in {source} has people the floor counts; expected "
                        "areas such as municipalities (values present: "
                        f"{', '.join(map(repr, sorted(set(values))[:8]))})")
    missing = sorted(set(wanted) - set(values[counted]))
    if missing and require:
        raise DataError(
            f"{key}: area(s) {', '.join(map(repr, missing))} have no segment in {source} with people the floor "
            f"counts; expected values of column {cover.area!r} such as {', '.join(map(repr, areas[:8]))}"
        )
    out = []
    for area in wanted:
        cells = np.flatnonzero(counted & (values == area))
        if len(cells):
            out.append((area, cells, weight[cells]))
    return out


def _area_values(frame: pd.DataFrame, cover: CoverageFloor, *, key: str, source: str) -> tuple[np.ndarray, list[str]]:
    """Per row its area, and the areas. ``area: neighbourhood`` on a table whose flyer rows are split per print unit
    (:mod:`uplift.allocation.unitrows`) and that has no neighbourhood column reads the units: a split row's area is
    its unit, every other row's none (a channel bought per person does not deliver per neighbourhood)."""
    if cover.area == "neighbourhood" and "neighbourhood" not in frame.columns and "unit" in frame.columns:
        units = frame["unit"].astype(str).to_numpy()
        values = np.where(units != "", units, "other").astype(object)
        return values, sorted(set(values) - NO_AREA)
    areas = _areas(frame, cover, key=key, source=source)  # checked before it is read
    return frame[cover.area].astype(str).to_numpy(), areas


def _areas(frame: pd.DataFrame, cover: CoverageFloor, *, key: str, source: str) -> list[str]:
    """The areas of ``frame``'s ``cover.area`` column (checked: present and one per segment)."""
    if cover.area not in frame.columns or cover.area == "segment":
        raise DataError(f"{key}: area column {cover.area!r} is missing from {source}; expected a segment column "
                        f"such as municipality (columns: {', '.join(map(str, frame.columns[:12]))}, ...)")
    values = frame[cover.area].astype(str)
    if (frame.assign(_v=values).groupby("segment")["_v"].nunique() > 1).any():
        raise DataError(f"{key}: area column {cover.area!r} varies within a segment of {source}; expected one area "
                        "per segment")
    return sorted(set(values) - NO_AREA)


def _on_channels(frame: pd.DataFrame, cover: CoverageFloor, *, key: str, source: str, require: bool) -> np.ndarray:
    """Rows on the floor's channels (all rows when it names none)."""
    channels = frame["channel"].astype(str).to_numpy()
    if cover.channels is None:
        return np.ones(len(frame), dtype=bool)
    present = sorted(set(channels))
    nothing = sorted(set(cover.channels) - set(present))
    if nothing and require:
        raise DataError(f"{key} channels: {', '.join(map(repr, nothing))} target(s) nothing in {source}; expected "
                        f"channels with arms in the table: {', '.join(present)}")
    return np.isin(channels, list(cover.channels))


def _reachable_contacts(problem: Problem, open_cells: np.ndarray) -> np.ndarray:
    """Per (segment, channel) group, the contacts its reach tiers sell when it has an open cell (else 0)."""
    open_grp = np.zeros(len(problem.grp_seg), dtype=bool)
    open_grp[problem.grp[open_cells]] = True
    caps = np.bincount(problem.tier_grp, weights=problem.tier_cap, minlength=len(problem.grp_seg))
    return np.where(open_grp, caps, 0.0)


def _most_in(problem: Problem, cells: np.ndarray, weight: np.ndarray, reach_grp: np.ndarray) -> float:
    """Most weighted contacts ``cells`` can get: per segment, its groups' reach among the cells, at most
    the segment's contactable people, times the segment's weight."""
    seg = problem.seg[cells]
    groups = np.unique(problem.grp[cells])
    per_seg = np.bincount(problem.grp_seg[groups], weights=reach_grp[groups], minlength=len(problem.segments))
    capped = np.minimum(per_seg, problem.contact_cap)
    weight_seg = np.zeros(len(problem.segments))
    weight_seg[seg] = weight
    segments = np.unique(seg)
    return float(capped[segments] @ weight_seg[segments])
