"""Flyer cells per print unit: a channel delivered per neighbourhood is planned per (cell, print unit).

A flyer cannot select an age band or a gender, only where people live (its ``targeting`` in the cost catalogue
names ``neighbourhood`` and not both of ``age_band`` and ``gender``). Given a *places* table
(:func:`uplift.places.places_table`: people per segment and print unit, and their shares in each priority
group), each row of such a channel is split into one *sub-row* per print unit where the segment has people:

- ``unit`` the print unit's code, ``unit_people`` the segment's people there (the parent's ``size`` split in
  the places' proportions), ``group__<name>`` the sub-cell's shares (so floors over a group see that a poorer
  neighbourhood is poorer); ``size``, ``segment`` and every estimate stay the parent's;
- ``parent`` the row of the unsplit table it comes from (every row has one; a row not split is its own).

A sub-row's effect per contact is its parent's: one estimate, one error. The problem keeps that error as one
shared factor per split parent (:func:`parent_factors`), so every interval the plan reports sums the sub-rows
of a parent as one cell. The plan's cells are summed back to their parent rows (:func:`parent_cells`); what is
planned per unit is the plan's flyer lines (:func:`unit_lines`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.allocation.effects import GROUP_PREFIX
from uplift.errors import DataError, SchemaError
from uplift.specs.planning import ChannelCost, CostCatalogue

__all__ = ["PLACE_COLUMNS", "UNIT_LINE_COLUMNS", "by_unit", "check_places", "parent_cells", "parent_factors",
           "split_by_places", "unit_lines"]

PLACE_COLUMNS = ("segment", "unit", "municipality", "postcodes", "people")
"""A places table's columns (then one ``group__<name>`` share per counted priority group,
:func:`uplift.places.places_table`): ``unit`` is the print unit's code (its ``utm_term``,
:attr:`uplift.handoff.areas.PrintUnit.code`), ``postcodes`` its postcodes joined by ``+``, ``people`` the
segment's distinct people in it."""

UNIT_LINE_COLUMNS = ("channel", "message", "unit", "municipality", "postcodes", "contacts", "copies",
                     "holdout_people", "spend", "segments")
"""A plan's flyer lines: one row per (channel, message, print unit) bought; ``segments`` the tuple of cells whose
people in the unit it reaches."""

_SUMMED = ("contacts", "holdout_people", "spend", "expected_conversions", "lo", "hi", "exploration")


def by_unit(channel: ChannelCost) -> bool:
    """Whether ``channel`` selects people by neighbourhood but cannot select a cell (no age band or gender)."""
    targeting = channel.targeting
    return targeting is not None and "neighbourhood" in targeting and not {"age_band", "gender"} <= set(targeting)


def split_by_places(frame: pd.DataFrame, places: pd.DataFrame, costs: CostCatalogue, *, source: str = "effects",
                    places_source: str = "places") -> pd.DataFrame:
    """``frame`` (a checked effects table) with every row of a channel bought per unit (:func:`by_unit`) split
    into its sub-rows per print unit of ``places`` (checked, :func:`uplift.places.check_places`); see the
    module's docstring. Rows in parent order, a parent's sub-rows by unit; a fresh 0..n-1 index. ``frame`` itself
    when no channel of it is bought per unit.

    Raises
    ------
    DataError
        A segment of such a channel has no people in ``places`` (the places were counted for another table).
    """
    split = frame["channel"].map(lambda ch: by_unit(costs.channel(str(ch)))).to_numpy(dtype=bool)
    if not split.any():  # no channel is bought per unit: the table as it is
        return frame
    out = frame.assign(parent=np.arange(len(frame)), unit="", unit_people=frame["size"].to_numpy(dtype=float))
    people = places[places["people"] > 0]
    total = people.groupby("segment", sort=False)["people"].sum()
    wanted = out.loc[split, "segment"].astype(str).unique()
    missing = [s for s in wanted if s not in total.index]
    if missing:
        raise DataError(f"{places_source}: segment(s) {', '.join(map(repr, missing[:3]))} of {source} have no people "
                        f"in any print unit ({len(missing)} in all); expected the places of the audience the "
                        "table's plan is for")
    groups = [c for c in people.columns if str(c).startswith(GROUP_PREFIX) and c in out.columns]
    unit_part = people[["segment", "unit", "people", *groups]].rename(columns={g: g + "@unit" for g in groups})
    sub = out[split].drop(columns="unit").merge(unit_part, on="segment", how="inner", sort=False)
    sub["unit_people"] = sub["size"].to_numpy(dtype=float) * sub["people"].to_numpy(dtype=float) / total[
        sub["segment"]].to_numpy(dtype=float)
    for g in groups:  # a group the table does not count (NaN) stays uncounted
        sub[g] = np.where(sub[g].isna(), np.nan, sub[g + "@unit"])
    sub = sub.drop(columns=["people", *(g + "@unit" for g in groups)])
    whole = pd.concat([out[~split], sub], ignore_index=True)
    whole = whole.sort_values(["parent", "unit"], kind="stable").reset_index(drop=True)
    return whole.astype({"unit": object, "segment": object, "arm": object, "message": object, "channel": object})


def parent_factors(parent: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The own errors of split parents as shared factors: ``(own, factors)`` where ``own`` is 0 on every row of a
    parent with more than one row and ``factors`` (n, parents split) loads each such row on its parent's factor
    with the row's own sd. A total over the rows then has the variance of the same contacts on the parents."""
    parent = np.asarray(parent)
    counts = np.bincount(parent)
    split = counts[parent] > 1
    codes, _ = pd.factorize(parent[split], sort=True)
    factors = np.zeros((len(parent), int(codes.max()) + 1 if len(codes) else 0))
    factors[np.flatnonzero(split), codes] = own[split]
    return np.where(split, 0.0, own), factors


def parent_cells(cells: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """A plan's ``cells`` (one row per row of ``frame``, split by unit) summed back to one row per parent row:
    contacts, holdout people, spend, conversions, their interval (each sub-row's is the parent's sd times its
    contacts, so the parent's is their sum), exploration; the costs per conversion of the sums; the cheapest
    next conversion among the sub-rows. Index 0..parents-1, in parent order (``frame`` may be part of a split
    table, e.g. one message's rows)."""
    rows = frame["parent"].to_numpy()
    first = np.r_[True, rows[1:] != rows[:-1]]
    parent = np.cumsum(first) - 1  # a parent's rows are consecutive; a part of the table keeps their order
    out = cells.loc[first, ["segment", "arm", "message", "channel"]].reset_index(drop=True)
    for column in cells.columns:
        if column in _SUMMED:
            out[column] = np.bincount(parent, weights=cells[column].to_numpy(dtype=float))
    out["contacts"] = out["contacts"].round().astype(np.int64)
    out["holdout_people"] = out["holdout_people"].round().astype(np.int64)
    conv = out["expected_conversions"].to_numpy(dtype=float)
    with np.errstate(over="ignore"):
        out["cost_per_conversion"] = np.divide(out["spend"].to_numpy(dtype=float), conv,
                                               out=np.full(len(out), np.nan), where=conv > 0)
    out["marginal_cost"] = cells.groupby(parent, sort=True)["marginal_cost"].min().to_numpy()
    return out[list(cells.columns)]


def unit_lines(cells: pd.DataFrame, frame: pd.DataFrame, places: pd.DataFrame, costs: CostCatalogue) -> pd.DataFrame:
    """The flyer lines a plan buys: its ``cells`` (one per row of the split ``frame``) summed per (channel,
    message, unit) where contacts > 0, with the copies to print (contacts per ``people_per_copy``, rounded up,
    at least the channel's ``min_print_run``) and the unit's municipality and postcodes from ``places``."""
    on = frame["unit"].astype(str).to_numpy() != ""
    rows = pd.DataFrame({"channel": frame.loc[on, "channel"].astype(str),
                         "message": frame.loc[on, "message"].astype(str),
                         "unit": frame.loc[on, "unit"].astype(str),
                         "contacts": cells.loc[on, "contacts"].to_numpy(dtype=np.int64),
                         "holdout_people": cells.loc[on, "holdout_people"].to_numpy(dtype=np.int64),
                         "spend": cells.loc[on, "spend"].to_numpy(dtype=float),
                         "segment": frame.loc[on, "segment"].astype(str)})
    rows = rows[rows["contacts"] > 0]
    lines = rows.groupby(["channel", "message", "unit"], sort=True).agg(
        contacts=("contacts", "sum"), holdout_people=("holdout_people", "sum"), spend=("spend", "sum"),
        segments=("segment", lambda s: tuple(sorted(s)))).reset_index()
    where = places.drop_duplicates("unit").set_index("unit")
    lines["municipality"] = where.loc[lines["unit"], "municipality"].astype(str).to_numpy()
    lines["postcodes"] = where.loc[lines["unit"], "postcodes"].astype(str).to_numpy()
    copies = []
    for channel, contacts in zip(lines["channel"], lines["contacts"], strict=True):
        declared = costs.channel(channel)
        per_copy = declared.people_per_copy if declared.people_per_copy > 0 else 1.0
        copies.append(max(int(np.ceil(contacts / per_copy - 1e-9)), int(declared.min_print_run)))
    lines["copies"] = np.asarray(copies, dtype=np.int64)
    return lines[list(UNIT_LINE_COLUMNS)]


def check_places(places: pd.DataFrame, *, source: str = "places") -> pd.DataFrame:
    """``places`` checked as a places table (:data:`PLACE_COLUMNS`, people >= 0, shares in [0, 1], one row per
    (segment, unit)); a copy with plain string labels.

    Raises
    ------
    SchemaError
        A column is missing or holds values of the wrong kind (named with ``source``).
    DataError
        A (segment, unit) appears twice.
    """
    missing = [c for c in PLACE_COLUMNS if c not in places.columns]
    if missing:
        raise SchemaError(f"{source}: missing column(s) {', '.join(missing)}; expected a places table "
                          f"({', '.join(PLACE_COLUMNS)}, group__<name> shares), as uplift.places.places_table makes")
    out = places.copy()
    people = pd.to_numeric(out["people"], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(people) & (people >= 0)):
        raise SchemaError(f"{source}: column 'people': expected counts of people >= 0")
    out["people"] = people
    for c in out.columns:
        if str(c).startswith(GROUP_PREFIX):
            share = pd.to_numeric(out[c], errors="coerce").to_numpy(dtype=float)
            if np.any((share < 0) | (share > 1)):
                raise SchemaError(f"{source}: column {c!r}: expected shares between 0 and 1")
            out[c] = share
    for c in ("segment", "unit", "municipality", "postcodes"):
        out[c] = out[c].astype(str).astype(object)
    twice = out.duplicated(["segment", "unit"])
    if twice.any():
        first = out[twice].iloc[0]
        raise DataError(f"{source}: segment {first['segment']!r} appears twice in unit {first['unit']!r}; "
                        "expected one row per (segment, unit)")
    return out
