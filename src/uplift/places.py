"""Where a plan's cells live: people per (targetable cell, print unit), and who of them is in each priority group.

A flyer is delivered per neighbourhood (4-digit postcode) and cannot select an age band or a gender, so the
planner buys it per *print unit*: a neighbourhood, or the small neighbourhoods of a municipality merged until the
unit holds at least the disclosure policy's threshold of people (:func:`uplift.handoff.areas.print_units`). To
choose units, the planner needs to know how a segment's people spread over them: the *places* table, one row per
(segment, unit) with the people of the segment living there and, per priority group of ``serve/groups.yaml``,
their share in it (``group__<name>``), so floors over a group see that a poorer neighbourhood is poorer.

Counted from the audience (one row per person) with the segment labels of the plan's table
(:func:`uplift.design.cellpeople.planned_segments`). A (segment, unit) count is usually below the anonymity floor:
the table is an input of the planner and is never released; what leaves the product is per unit and message
(a plan's flyer lines), whose units hold at least the threshold's people by construction.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from uplift.allocation.effects import GROUP_PREFIX
from uplift.allocation.unitrows import PLACE_COLUMNS, check_places
from uplift.design.cellpeople import planned_segments
from uplift.errors import SchemaError
from uplift.handoff.areas import areas_from_audience, print_units
from uplift.segments.assign import SUPPRESSED
from uplift.segments.composition import PriorityGroups, counted_groups, group_members
from uplift.specs.segments import SegmentSpec

__all__ = ["PLACE_COLUMNS", "check_places", "places_table"]


_AUDIENCE = ("person_id", "municipality", "neighbourhood")


def places_table(audience: pd.DataFrame, segments: Iterable[str], spec: SegmentSpec, *, min_size: int,
                 groups: PriorityGroups | None = None, source: str = "audience") -> pd.DataFrame:
    """People per (segment of ``segments``, print unit) of ``audience`` (see the module's docstring).

    Parameters
    ----------
    audience : one row per person: ``person_id``, ``municipality``, ``neighbourhood`` and the segment spec's
        dimensions (``age`` for ``age_band``). Not modified.
    segments : the segment labels of the table the plan is made over (its targetable cells).
    spec : the segment spec the table was built with.
    min_size : the fewest people a print unit holds (the disclosure policy's threshold).
    groups : the priority groups whose shares to count (None: none); a group whose rule reads an attribute the
        audience lacks is left out, with one note.
    source : the audience's name in error messages (its file).

    Raises
    ------
    SchemaError
        The audience lacks a column (named with ``source``).
    """
    missing = [c for c in _AUDIENCE if c not in audience.columns]
    if missing:
        raise SchemaError(f"{source}: missing column(s) {', '.join(missing)}; expected one row per person with "
                          "person_id, municipality and neighbourhood (the 4-digit postcode) to place the flyers")
    try:
        labels = planned_segments(audience, segments, spec)
    except SchemaError as exc:
        raise SchemaError(f"{source}: {exc}") from exc
    areas = areas_from_audience(audience, source=source)
    units = print_units(areas, tuple(sorted(areas["municipality"].unique())), min_size=min_size)
    unit_of = {pc: u for u in units for pc in u.postcodes}
    shown = labels != SUPPRESSED
    rows = audience.loc[shown]
    unit = [unit_of[str(pc)] for pc in rows["neighbourhood"].astype(str)]
    people = pd.DataFrame({"segment": labels[shown], "unit": [u.code for u in unit],
                           "person_id": rows["person_id"].to_numpy()}, index=rows.index)
    if groups is not None:
        members = group_members(rows, counted_groups(groups, rows))
        people = people.join(members.astype(float).add_prefix(GROUP_PREFIX))
    people = people.drop_duplicates(["segment", "unit", "person_id"])
    keys = ["segment", "unit"]
    out = people.groupby(keys, sort=True).agg(people=("person_id", "size"),
                                              **{c: (c, "mean") for c in people.columns if c.startswith(GROUP_PREFIX)})
    out = out.reset_index()
    described = {u.code: (u.municipality, "+".join(u.postcodes)) for u in units}
    out["municipality"] = [described[u][0] for u in out["unit"]]
    out["postcodes"] = [described[u][1] for u in out["unit"]]
    out["people"] = out["people"].astype(float)
    groups_out = [c for c in out.columns if c.startswith(GROUP_PREFIX)]
    return out[[*PLACE_COLUMNS, *groups_out]]
