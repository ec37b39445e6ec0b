"""A plan's funded cells as the lines a channel runs: ad sets, print runs per neighbourhood, mailings.

Pure: cells, cost catalogue and areas in, one row per line out. A line is the cells of one channel and one
message that the channel cannot tell apart (the same age band, gender and places once the dimensions the
channel does not select on are dropped): LinkedIn, which does not select on gender, runs a cell's women and
men as one ad set; a flyer runs a municipality's cells as one print run per neighbourhood. Contacts, holdout
people and spend add up over a channel's lines to the plan's, exactly (spend is split to the cent later,
:mod:`uplift.handoff.sheets`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.celltargeting import ALL, CellTargeting, cell_targeting, line_key
from uplift.errors import DataError, SpecError
from uplift.handoff.utm import code
from uplift.specs.planning import CostCatalogue

__all__ = ["LINE_COLUMNS", "apportion", "plan_lines"]

LINE_COLUMNS = ("line", "channel", "kind", "message", "arm", "age_band", "gender", "municipalities", "postcodes",
                "neighbourhoods", "not_targeted", "contacts", "holdout_people", "spend", "segments")
"""One row per line; ``municipalities``, ``postcodes``, ``neighbourhoods`` and ``segments`` are tuples;
``not_targeted`` lists the cells' dimensions the channel cannot select on (the line reaches beyond its cells
on them); ``spend`` is exact (EUR, not yet in cents)."""


def apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """``total`` whole units split over ``weights`` by largest remainder (ties to the first): the parts add
    up to ``total`` exactly and each is its exact share rounded down or up."""
    weights = np.asarray(weights, dtype=float)
    if total == 0 or weights.sum() <= 0:
        if total:
            raise DataError(f"cannot split {total} over weights that add up to 0")
        return np.zeros(len(weights), dtype=np.int64)
    exact = total * weights / weights.sum()
    parts = np.floor(exact + 1e-9).astype(np.int64)
    left = int(total - parts.sum())
    order = np.argsort(-(exact - parts), kind="stable")
    parts[order[:left]] += 1
    return parts


def plan_lines(cells: pd.DataFrame, *, costs: CostCatalogue, areas: pd.DataFrame, min_size: int,
               segments: pd.Series | list[str] | None = None, source: str = "cost catalogue",
               unit_lines: pd.DataFrame | None = None) -> pd.DataFrame:
    """The lines of the funded cells of ``cells`` (a plan's cells: ``segment``, ``message``, ``channel``,
    ``contacts``, ``holdout_people``, ``spend``). ``segments``: every segment of the table the plan was made
    over (default: those of ``cells``, which then must hold every segment, funded or not). ``unit_lines``: the
    flyer lines of a plan made per print unit (:attr:`uplift.allocation.PlanResult.unit_lines`): a channel of
    theirs runs them as planned, one print run per unit and message, instead of its cells' municipality lines.

    Raises
    ------
    SpecError
        A funded channel declares no ``targeting`` or ``handoff`` in the catalogue (``source``).
    DataError
        A funded cell is not a targetable cell, or lies in a place the areas do not have.
    """
    municipalities = tuple(dict.fromkeys(areas["municipality"]))
    labels = [*map(str, cells["segment"]), *(map(str, segments) if segments is not None else ())]
    targets = cell_targeting(labels, municipalities)
    funded = cells[cells["contacts"] > 0]
    frames = []
    for channel, rows in funded.groupby("channel", sort=True):
        declared = costs.channel(str(channel))
        if declared.targeting is None or declared.handoff is None:
            raise SpecError(f"{source}: channels.{channel}: expected 'targeting' (the dimensions it selects people "
                            "by) and 'handoff' (ad_sets, print_run or mailing) to hand its lines over")
        planned = unit_lines[unit_lines["channel"] == str(channel)] if unit_lines is not None else None
        if planned is not None and len(planned):
            grouped = _planned_runs(planned, rows, areas, declared.targeting)
        else:
            grouped = _group(rows, targets, declared.targeting)
            if declared.handoff == "print_run":
                grouped = _with_postcodes(grouped, areas)
        frames.append(grouped.assign(channel=str(channel), kind=declared.handoff))
    if not frames:
        return pd.DataFrame(columns=list(LINE_COLUMNS))
    lines = pd.concat(frames, ignore_index=True)
    lines["arm"] = lines["message"] + "@" + lines["channel"]
    _check_codes(lines)
    return lines[list(LINE_COLUMNS)]


def _group(rows: pd.DataFrame, targets: dict[str, CellTargeting], targeting: tuple[str, ...]) -> pd.DataFrame:
    """The channel's cells summed per message and realised audience (dimensions it cannot select become 'all')."""
    places = "municipality" in targeting or "neighbourhood" in targeting
    keys, dropped = [], []
    for segment in rows["segment"].astype(str):
        t = targets[segment]
        keys.append(line_key(t, targeting))
        dropped.append(tuple(d for d, v in (("age_band", t.age_band), ("gender", t.gender))
                             if d not in targeting and v != ALL) + (() if places else ("municipality",)))
    frame = pd.DataFrame({
        "message": rows["message"].astype(str).to_numpy(), "age_band": [k[0] for k in keys],
        "gender": [k[1] for k in keys], "municipalities": [k[2] for k in keys], "not_targeted": dropped,
        "contacts": rows["contacts"].to_numpy(dtype=np.int64),
                          "holdout_people": rows["holdout_people"].to_numpy(dtype=np.int64),
        "spend": rows["spend"].to_numpy(dtype=float), "segments": rows["segment"].astype(str).to_numpy(),
    })
    out = frame.groupby(["message", "age_band", "gender", "municipalities"], sort=True).agg(
        contacts=("contacts", "sum"), holdout_people=("holdout_people", "sum"), spend=("spend", "sum"),
        segments=("segments", lambda s: tuple(sorted(s))),
        not_targeted=("not_targeted", lambda s: tuple(sorted({d for t in s for d in t}))),
    ).reset_index()
    out["postcodes"] = [()] * len(out)
    out["neighbourhoods"] = [()] * len(out)
    out["line"] = [code(a, g, *m) if len(m) <= 2 else code(a, g, "places", *m)
                   for a, g, m in zip(out["age_band"], out["gender"], out["municipalities"], strict=True)]
    return out


def _planned_runs(planned: pd.DataFrame, rows: pd.DataFrame, areas: pd.DataFrame,
                  targeting: tuple[str, ...]) -> pd.DataFrame:
    """A channel's planned print runs (one per unit and message, :func:`uplift.allocation.unitrows.unit_lines`) as
    lines: the unit's municipality, postcodes and their names; checked to add up to the channel's cells."""
    for column in ("contacts", "holdout_people"):
        if int(planned[column].sum()) != int(rows[column].sum()):
            raise DataError(f"the plan's {column} on {rows['channel'].iloc[0]}: its print runs hold "
                            f"{int(planned[column].sum())}, its cells {int(rows[column].sum())}; expected the lines "
                            "of the same plan")
    names = dict(zip(areas["postcode"].astype(str), areas["name"].astype(str), strict=True))
    postcodes = [tuple(str(p).split("+")) for p in planned["postcodes"]]
    return pd.DataFrame({
        "message": planned["message"].astype(str).to_numpy(), "age_band": ALL, "gender": ALL,
        "municipalities": [tuple(str(m).split(" + ")) for m in planned["municipality"]],
        "not_targeted": [tuple(d for d in ("age_band", "gender") if d not in targeting)] * len(planned),
        "contacts": planned["contacts"].to_numpy(dtype=np.int64),
        "holdout_people": planned["holdout_people"].to_numpy(dtype=np.int64),
        "spend": planned["spend"].to_numpy(dtype=float), "segments": list(planned["segments"]),
        "postcodes": postcodes, "neighbourhoods": [tuple(names.get(p, "") for p in pcs) for pcs in postcodes],
        "line": planned["unit"].astype(str).to_numpy(),
    })


def _with_postcodes(grouped: pd.DataFrame, areas: pd.DataFrame) -> pd.DataFrame:
    """Each (message, places) line as one print run over every neighbourhood of its municipalities (postcodes
    and names, in order; no neighbourhood's people are written anywhere)."""
    out = grouped.copy()
    postcodes, names = [], []
    for places in out["municipalities"]:
        rows = areas[areas["municipality"].isin(list(places))].sort_values("postcode")
        if rows.empty:
            raise DataError(f"municipalities {', '.join(places)} have no neighbourhoods in the areas the hand-off "
                            f"was given; known: {', '.join(sorted(areas['municipality'].unique())[:12])}")
        postcodes.append(tuple(rows["postcode"].astype(str)))
        names.append(tuple(rows["name"].astype(str)))
    out["postcodes"], out["neighbourhoods"] = postcodes, names
    return out


def _check_codes(lines: pd.DataFrame) -> None:
    """Each (channel, message, utm_term) names one line, or an attribution could not tell two apart."""
    clash = lines.duplicated(["channel", "message", "line"], keep=False)
    if clash.any():
        first = lines[clash].iloc[0]
        raise DataError(f"two {first['channel']} lines of message {first['message']!r} get the same code "
                        f"{first['line']!r}; rename a municipality so that their codes differ")
