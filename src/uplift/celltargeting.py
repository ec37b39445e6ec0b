"""Who a plan's cell is, in the terms a channel can select: age band, gender, municipalities.

Shared by the planner (a channel's lines, :mod:`uplift.allocation.channellines`) and the hand-off
(:mod:`uplift.handoff.lines`), so both cut a channel's cells into the same lines; it imports nothing of either.

A targetable segment's label names its dimensions (``age_band=25-34|gender=female|municipality=Delft``).
A value ``other`` is a merge below the anonymity floor (:func:`uplift.segments.assign.targetable_cells`):
``municipality=other`` holds the municipalities that have no cell of their own under the same age band and
gender, which this module reads off the plan's own segments and the areas' municipalities; a merged gender
(``gender=other|municipality=other``) is every gender and every municipality. Nothing here looks at people:
the answer rests on the segment labels the plan already shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from uplift.errors import DataError

__all__ = ["ALL", "OTHER", "CellTargeting", "cell_targeting", "line_key", "parse_segment"]

OTHER = "other"
"""A segment dimension's value for people merged below the anonymity floor (:mod:`uplift.segments.assign`)."""

ALL = "all"
"""A dimension the line does not select on (every age, gender or place of the region)."""
_DIMENSIONS = ("age_band", "gender", "municipality")


@dataclass(frozen=True)
class CellTargeting:
    """A cell's people by what channels select on: ``age_band`` (``"all"``: any), ``gender`` (``"all"``: any),
    ``municipalities`` (in the order of the areas)."""

    age_band: str
    gender: str
    municipalities: tuple[str, ...]


def parse_segment(label: str) -> dict[str, str]:
    """``"age_band=25-34|gender=female|municipality=Delft"`` -> ``{"age_band": "25-34", ...}``."""
    out = {}
    for part in str(label).split("|"):
        key, sep, value = part.partition("=")
        if not sep:
            raise DataError(f"segment {label!r}: expected 'dimension=value' parts separated by '|'")
        out[key] = value
    return out


def cell_targeting(segments: pd.Series | list[str], municipalities: tuple[str, ...]) -> dict[str, CellTargeting]:
    """The targeting of every segment in ``segments`` (all the plan's segments: a merged ``other`` cell is
    read against its siblings); ``municipalities`` are the region's.

    Raises
    ------
    DataError
        A segment is not a targetable cell (a persona segment names no age band, gender or place, so no
        channel can select it), or names a municipality the areas do not have.
    """
    labels = list(dict.fromkeys(str(s) for s in segments))
    parsed = {label: parse_segment(label) for label in labels}
    for label, dims in parsed.items():
        missing = [d for d in _DIMENSIONS if d not in dims]
        if missing:
            raise DataError(f"segment {label!r} names no {', '.join(missing)}: only targetable "
                            "cells (age band x gender "
                            "x municipality) can be handed to a channel; plan over --kind targetable")
        place = dims["municipality"]
        if place != OTHER and place not in municipalities:
            raise DataError(f"segment {label!r}: municipality {place!r} is not in the areas the hand-off was given; "
                            f"known: {', '.join(municipalities[:12])}")
    own = {(d["age_band"], d["gender"]): set() for d in parsed.values()}
    for dims in parsed.values():
        if dims["municipality"] != OTHER:
            own[(dims["age_band"], dims["gender"])].add(dims["municipality"])
    return {label: _targeting(dims, own, municipalities) for label, dims in parsed.items()}


def _targeting(dims: dict[str, str], own: dict[tuple[str, str], set[str]],
               municipalities: tuple[str, ...]) -> CellTargeting:
    age, gender, place = dims["age_band"], dims["gender"], dims["municipality"]
    if place != OTHER:
        return CellTargeting(age, gender, (place,))
    if gender == OTHER:  # a merge at the gender level (or the gender 'other' in merged places): every place
        return CellTargeting(ALL if age == OTHER else age, ALL, municipalities)
    taken = own.get((age, gender), set())
    rest = tuple(m for m in municipalities if m not in taken)
    return CellTargeting(ALL if age == OTHER else age, gender, rest or municipalities)


def line_key(target: CellTargeting, targeting: tuple[str, ...]) -> tuple[str, str, tuple[str, ...]]:
    """What a channel that selects on ``targeting`` sees of a cell: its age band and gender where the channel
    selects on them (else ``"all"``), its municipalities where it selects a place (else none). Cells with the
    same key are one line."""
    places = "municipality" in targeting or "neighbourhood" in targeting
    return (target.age_band if "age_band" in targeting else ALL, target.gender if "gender" in targeting else ALL,
            target.municipalities if places else ())
