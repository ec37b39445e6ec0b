"""A plan on value, scored per event: each event's expected incremental conversions with their interval.

The plan is made on the value's rows of a funnel segment table (:func:`uplift.funnel.value.funnel_segment_table`)
like any plan on conversions: its objective, its totals and their interval are in units of value. Its
contacts are then scored on each event's own rows (:func:`uplift.allocation.evaluate_plan`: the same
cells' own and shared errors as a plan's interval).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from uplift.allocation.effects import shared_error_columns
from uplift.allocation.result import evaluate_plan
from uplift.errors import DataError
from uplift.funnel.value import OUTCOME_COLUMN, VALUE
from uplift.segments.additive import PART_PREFIX
from uplift.specs.planning import PlanningPolicy, ValueEvent

__all__ = ["EventConversions", "event_conversions", "value_plan_tables", "CONVERSIONS_PREFIX"]

CONVERSIONS_PREFIX = "conversions__"
"""A value plan's cells carry ``conversions__<event>``: the cell's expected incremental conversions to the event."""


@dataclass(frozen=True)
class EventConversions:
    """A value plan's expected incremental conversions to one event, with its interval."""

    event: str
    weight: float
    attribution_days: int
    expected: float
    lo: float
    hi: float

    def as_dict(self) -> dict[str, object]:
        return {"event": self.event, "weight": self.weight, "attribution_days": self.attribution_days,
                "expected_conversions": self.expected, "lo": self.lo, "hi": self.hi}


def _part(frame: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """One outcome's rows, without the columns only the other outcomes fill (their loadings, their parts)."""
    part = frame[frame[OUTCOME_COLUMN] == outcome].reset_index(drop=True)
    own = shared_error_columns(part) + [c for c in part.columns if str(c).startswith(PART_PREFIX)]
    part = part.drop(columns=[c for c in own if part[c].isna().all()])
    loads = shared_error_columns(part)
    part[loads] = part[loads].fillna(0.0)
    parts = [c for c in part.columns if str(c).startswith(PART_PREFIX)]
    part[parts] = part[parts].fillna("")
    part.attrs = dict(frame.attrs) if outcome == VALUE else {}
    return part.drop(columns=[OUTCOME_COLUMN, "weight", "attribution_days"], errors="ignore")


def value_plan_tables(frame: pd.DataFrame, policy: PlanningPolicy, *,
                      source: str = "segment table") -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The table a plan is made on and each event's table (empty without a value).

    A funnel segment table (with an :data:`OUTCOME_COLUMN`) needs a policy with the same ``value`` block
    (events, weights, windows); a plain segment table a policy without one.

    Raises
    ------
    DataError
        The table and the policy disagree on the value.
    """
    declared = policy.value_events
    if OUTCOME_COLUMN not in frame.columns:
        if declared is not None:
            raise DataError(f"{source}: the policy plans on value ({', '.join(e.event for e in declared)}), but the "
                            "table has one outcome; expected a funnel segment table (`uplift train "
                            "--value-policy`, column 'outcome')")
        return frame, {}
    events = frame.loc[frame[OUTCOME_COLUMN] != VALUE, [OUTCOME_COLUMN, "weight", "attribution_days"]]
    found = sorted({(str(r[0]), float(r[1]), int(r[2])) for r in events.itertuples(index=False)})
    wanted = sorted((e.event, float(e.weight), int(e.attribution_days)) for e in declared or ())
    if found != wanted:
        raise DataError(f"{source}: made for the value {_text(found) or 'of nothing'}, but the policy declares "
                        f"{_text(wanted) or 'no value block'}; expected the same events, weights and windows")
    if not (frame[OUTCOME_COLUMN] == VALUE).any():
        raise DataError(f"{source}: no rows with outcome 'value'")
    return _part(frame, VALUE), {e.event: _part(frame, e.event) for e in declared}


def _text(events) -> str:
    return ", ".join(f"{w:g} x {e} ({d} days)" for e, w, d in events)


def event_conversions(cells: pd.DataFrame, events: Mapping[str, pd.DataFrame],
                      policy: PlanningPolicy) -> tuple[pd.DataFrame, tuple[EventConversions, ...]]:
    """The plan's cells with ``conversions__<event>`` columns, and each event's total with its interval
    (the policy's ``interval``), in funnel order."""
    out = cells.copy()
    totals = []
    for declared in policy.value_events or ():
        table = events[declared.event]
        scored = evaluate_plan(cells, table, policy=policy, source=f"{declared.event} effects")
        effect = cells[["segment", "arm"]].astype(str).merge(
            table[["segment", "arm", "effect"]].astype({"segment": str, "arm": str}), on=["segment", "arm"],
            how="left")["effect"].to_numpy(dtype=float)
        out[f"{CONVERSIONS_PREFIX}{declared.event}"] = np.where(cells["contacts"].to_numpy() > 0,
                                                                effect * cells["contacts"].to_numpy(dtype=float), 0.0)
        totals.append(_totals(declared, scored))
    return out, tuple(totals)


def _totals(declared: ValueEvent, scored: Mapping[str, object]) -> EventConversions:
    return EventConversions(event=declared.event, weight=declared.weight, attribution_days=declared.attribution_days,
                            expected=float(scored["expected_conversions"]), lo=float(scored["lo"]),
                            hi=float(scored["hi"]))
