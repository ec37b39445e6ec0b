"""What the pages show, read from the JSON the API answers: a plan's cells filtered, sorted and paged,
plans side by side, segments filtered. Pure functions of parsed JSON and frames."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["CELL_SORTS", "EVENT_NAMES", "CellQuery", "Comparison", "OutcomeWords", "cells_page", "compare_plans",
           "event_name", "outcome_words", "plan_status", "segments_page"]

CELL_SORTS: tuple[str, ...] = ("segment", "message", "channel", "contacts", "spend", "expected_conversions",
                               "cost_per_conversion", "marginal_cost")
PER_PAGE = 50

EVENT_NAMES: dict[str, str] = {
    "registration": "registrations", "advice_conversation": "advice conversations",
    "application": "voucher applications", "granted": "vouchers granted", "started": "course starts",
    "completed": "courses completed",
}
"""The funnel events (:data:`uplift.data.vocabulary.FUNNEL_EVENTS`) as the page names their conversions."""


def event_name(event: str) -> str:
    """A funnel event's conversions in the product's words (the event itself if it has none)."""
    return EVENT_NAMES.get(event, event.replace("_", " "))


@dataclass(frozen=True)
class OutcomeWords:
    """What a plan's figures count, in the page's words: conversions, or value for a plan on value."""

    short: str  # "conversions" | "value"
    expected: str  # a column of expected figures
    per: str  # a column of EUR per unit


def outcome_words(plan: Mapping) -> OutcomeWords:
    """The words of ``plan``'s figures: a plan on value (its ``value``) counts units of value."""
    if plan.get("value"):
        return OutcomeWords(short="value", expected="expected incremental value", per="EUR per unit of value")
    return OutcomeWords(short="conversions", expected="expected incremental conversions", per="EUR per conversion")


@dataclass(frozen=True)
class CellQuery:
    """A cells table's filters (segment text, message, channel), sort column and order, page (from 1)."""

    segment: str = ""
    message: str = ""
    channel: str = ""
    sort: str = "spend"
    descending: bool = True
    page: int = 1

    @classmethod
    def of(cls, params: Mapping[str, str]) -> CellQuery:
        sort = params.get("sort", "spend")
        try:
            page = max(1, min(int(params.get("page", "1")), 100_000))
        except ValueError:
            page = 1
        return cls(segment=params.get("segment", "")[:100], message=params.get("message", "")[:100],
                   channel=params.get("channel", "")[:100], sort=sort if sort in CELL_SORTS else "spend",
                   descending=params.get("order", "desc") != "asc", page=page)

    def link(self, **changes) -> dict[str, str]:
        """Query parameters of this view with ``changes`` (for links: sort, page)."""
        values = {"segment": self.segment, "message": self.message, "channel": self.channel, "sort": self.sort,
                  "order": "desc" if self.descending else "asc", "page": str(self.page), **changes}
        return {k: str(v) for k, v in values.items() if v not in ("", None)}


def _sort_key(value, descending: bool):
    missing = value is None or (isinstance(value, float) and not math.isfinite(value))
    return (missing, value if not missing else 0)


def cells_page(cells: Sequence[dict], query: CellQuery, per_page: int = PER_PAGE) -> tuple[list[dict], int, int]:
    """The cells matching ``query``'s filters, sorted, on its page: (rows, how many match, pages)."""
    text = query.segment.lower()
    rows = [c for c in cells
            if (not text or text in c["segment"].lower()) and (not query.message or c["message"] == query.message)
            and (not query.channel or c["channel"] == query.channel)]
    present = [c for c in rows if _sort_key(c.get(query.sort), query.descending)[0] is False]
    absent = [c for c in rows if _sort_key(c.get(query.sort), query.descending)[0] is True]
    present.sort(key=lambda c: c[query.sort], reverse=query.descending)
    ordered = present + absent  # no figure (e.g. no finite cost) last either way
    pages = max(1, math.ceil(len(ordered) / per_page))
    page = min(query.page, pages)
    return ordered[(page - 1) * per_page : page * per_page], len(ordered), pages


def plan_status(plan: Mapping) -> str:
    """``approved``, ``superseded`` (approved, and a newer approved plan replaces it... or a draft does),
    or ``draft``; an infeasible plan says so too."""
    if plan.get("approved_at"):
        return "approved, superseded" if plan.get("superseded_by") else "approved"
    return "draft"


@dataclass(frozen=True)
class Comparison:
    """Plans side by side: ``plans`` (parsed JSON) and per dimension (channel, message, group) the rows
    ``(name, [part or None per plan])``."""

    plans: list[dict]
    parts: dict[str, list[tuple[str, list[dict | None]]]]


def compare_plans(plans: Sequence[dict]) -> Comparison:
    """The parts (:func:`uplift.allocation.breakdown.plan_breakdown`) of ``plans``, aligned by name."""
    parts: dict[str, list[tuple[str, list[dict | None]]]] = {}
    for dimension in ("channel", "message", "group"):
        names: dict[str, None] = {}
        for plan in plans:
            for part in plan.get("breakdown", []):
                if part["dimension"] == dimension:
                    names.setdefault(part["name"])
        rows = []
        for name in names:
            found = []
            for plan in plans:
                match = [p for p in plan.get("breakdown", []) if p["dimension"] == dimension and p["name"] == name]
                found.append(match[0] if match else None)
            rows.append((name, found))
        parts[dimension] = rows
    return Comparison(plans=list(plans), parts=parts)


SEGMENT_COLUMNS = ("segment", "kind", "size", "message", "channel", "effect", "lo", "hi", "base_rate", "withheld")


def segments_page(table: pd.DataFrame, *, kind: str, message: str, channel: str, group: str, text: str,
                  page: int, per_page: int = PER_PAGE) -> tuple[list[dict], int, int]:
    """Rows of a released segment table (already cut to the service's minimum size) matching the filters,
    largest effect first: (rows, how many match, pages). ``group`` is ``column=value`` (e.g. ``gender=female``)
    or the name of a ``group__<name>`` share column (rows where the group is at least half the segment)."""
    keep = np.ones(len(table), dtype=bool)
    for column, value in (("kind", kind), ("message", message), ("channel", channel)):
        if value:
            keep &= (table[column].astype(str) == value).to_numpy()
    if text:
        keep &= table["segment"].astype(str).str.contains(text, case=False, regex=False).to_numpy()
    if group:
        column, sep, value = group.partition("=")
        if sep and column in table.columns:
            keep &= (table[column].astype(str) == value).to_numpy()
        elif f"group__{group}" in table.columns:
            keep &= table[f"group__{group}"].to_numpy(dtype=float) >= 0.5
        else:
            keep &= False
    rows = table[keep].sort_values(["effect", "segment"], ascending=[False, True])
    pages = max(1, math.ceil(len(rows) / per_page))
    page = min(max(page, 1), pages)
    shown = rows.iloc[(page - 1) * per_page : page * per_page]
    out = []
    for rec in shown.to_dict("records"):
        out.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                    for k, v in rec.items() if k in SEGMENT_COLUMNS})
    return out, int(keep.sum()), pages
