"""Registrations back to the arm and the cell whose link brought them: an offline channel measured like an online one.

The enrolments input may carry, per registration, the UTM parameters of the visit that led to it: the five
columns ``utm_source`` ... ``utm_term``, or the visited address in ``visit_url``. :func:`attribute` reads
them against the hand-off's UTM key (``utm_key.csv``; the keys of several waves may be stacked) and gives
each registration a status:

- ``attributed``: the values are one line of the key: its channel, wave, message, arm and cell (``utm_term``);
- ``no utm``: the visit carried no UTM parameter (it came by no campaign link);
- ``malformed``: the values do not follow the scheme (:func:`uplift.handoff.utm.parse_utm`);
- ``unknown``: they follow it but name no line of the key (another wave, channel, message or cell).

Nothing is guessed: a value that is almost right (another case, a stray space) is malformed, and a line
that is not in the key is unknown, with the reason.
"""

from __future__ import annotations

import pandas as pd

from uplift.data.vocabulary import FUNNEL_EVENTS, split_arm
from uplift.errors import SchemaError
from uplift.handoff.utm import UTM_KEYS, Utm, campaign, parse_utm, parse_utm_url

__all__ = ["ATTRIBUTION_COLUMNS", "STATUSES", "attribute", "attribution_counts", "cell_counts"]

STATUSES = ("attributed", "no utm", "malformed", "unknown")
ATTRIBUTION_COLUMNS = ("person_id", "occurred_at", "status", "reason", "channel", "wave", "message", "arm", "cell",
                       "file")
_KEY_COLUMNS = (*UTM_KEYS, "arm", "wave", "file")


def attribute(enrolments: pd.DataFrame, key: pd.DataFrame, *, source: str = "enrolments") -> pd.DataFrame:
    """One row per registration of ``enrolments``: its status, the reason when it is not attributed, and the
    channel, wave, message, arm, cell and hand-off file when it is (columns :data:`ATTRIBUTION_COLUMNS`).

    Raises
    ------
    SchemaError
        ``enrolments`` carries neither the UTM columns nor ``visit_url``, or ``key`` lacks a column.
    """
    missing = [c for c in _KEY_COLUMNS if c not in key.columns]
    if missing:
        raise SchemaError(f"UTM key: missing column(s) {', '.join(missing)}; expected the hand-off's utm_key.csv")
    has_url, has_columns = "visit_url" in enrolments.columns, any(k in enrolments.columns for k in UTM_KEYS)
    if not (has_url or has_columns):
        raise SchemaError(f"{source}: no UTM columns; expected {', '.join(UTM_KEYS)} or visit_url to attribute "
                          "registrations to the hand-off's lines")
    rows = enrolments[enrolments["event"].astype(str) == FUNNEL_EVENTS[0]]
    if has_url:
        parsed = [parse_utm_url(u) for u in rows["visit_url"]]
    else:
        values = rows.reindex(columns=list(UTM_KEYS))
        parsed = [parse_utm(dict(zip(UTM_KEYS, r, strict=True))) for r in values.itertuples(index=False, name=None)]
    lines = _lines(key)
    out = [_status(p, lines) for p in parsed]
    frame = pd.DataFrame(out, columns=[c for c in ATTRIBUTION_COLUMNS if c not in ("person_id", "occurred_at")])
    frame.insert(0, "person_id", rows["person_id"].astype(str).to_numpy())
    frame.insert(1, "occurred_at", rows["occurred_at"].to_numpy())
    return frame.astype({"wave": "Int64"})


def _lines(key: pd.DataFrame) -> dict[tuple, dict]:
    """The key's lines by (source, medium, campaign, content, term)."""
    k = key.astype({c: str for c in UTM_KEYS})
    return {tuple(r[c] for c in UTM_KEYS): {"arm": str(r["arm"]), "wave": int(r["wave"]), "file": str(r["file"])}
            for _, r in k.iterrows()}


def _status(parsed: Utm | str, lines: dict[tuple, dict]) -> tuple:
    """(status, reason, channel, wave, message, arm, cell, file) of one registration."""
    blank = (None, None, None, None, None, None)
    if isinstance(parsed, str):
        return ("no utm", "", *blank) if parsed == "no utm" else ("malformed", parsed, *blank)
    found = lines.get((parsed.source, parsed.medium, campaign(parsed.wave), parsed.content, parsed.term))
    if found is None:
        return ("unknown", _unknown_reason(parsed, lines), *blank)
    message, channel = split_arm(found["arm"])  # the plan's names (the UTM values may be their slugs)
    return ("attributed", "", channel, parsed.wave, message, found["arm"], parsed.term, found["file"])


def _unknown_reason(parsed: Utm, lines: dict[tuple, dict]) -> str:
    """Which value first fails to match the key (read in the scheme's order)."""
    values = (parsed.source, parsed.medium, campaign(parsed.wave), parsed.content, parsed.term)
    candidates = list(lines)
    for i, name in enumerate(UTM_KEYS):
        candidates = [c for c in candidates if c[i] == values[i]]
        if not candidates:
            return f"{name} names no line of the hand-off" + ("" if i == 0 else " with the values before it")
    return "no line of the hand-off has these values"  # pragma: no cover - every prefix matched means a line


def attribution_counts(attributed: pd.DataFrame) -> pd.DataFrame:
    """Registrations per status and reason (the report of what was and was not attributed)."""
    counts = attributed.groupby(["status", "reason"], sort=False).size().rename("registrations").reset_index()
    order = {s: i for i, s in enumerate(STATUSES)}
    return counts.sort_values(["status", "registrations"], key=lambda s: s.map(order) if s.name == "status" else -s,
                              kind="stable").reset_index(drop=True)


def cell_counts(attributed: pd.DataFrame) -> pd.DataFrame:
    """Attributed registrations per wave, arm and cell."""
    done = attributed[attributed["status"] == "attributed"]
    return done.groupby(["wave", "arm", "cell"], sort=True).size().rename("registrations").reset_index()

