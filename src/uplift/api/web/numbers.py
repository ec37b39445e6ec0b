"""Numbers as the planner's page shows them: EUR with thousands separators, conversions to one decimal,
intervals in brackets, effects per 1,000 contacts, shares in percent. The templates' filters."""

from __future__ import annotations

import math
from datetime import UTC, datetime

__all__ = ["FILTERS", "conversions", "effect", "eur", "interval", "percent", "when"]

DASH = "–"


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def eur(x, cents: bool = False) -> str:
    """``€12,345`` (``cents``: ``€12,345.67``); ``no finite amount`` for inf, a dash for none."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    if isinstance(x, float) and math.isinf(x):
        return "no finite amount"
    sign = "-" if x < 0 else ""
    return f"{sign}€{abs(x):,.2f}" if cents else f"{sign}€{abs(x):,.0f}"


def conversions(x, signed: bool = False) -> str:
    """Conversions to one decimal with thousands separators (``signed``: with a + for gains)."""
    if not _finite(x):
        return DASH
    return f"{x:+,.1f}" if signed else f"{x:,.1f}"


def interval(lo, hi, kind: str = "conversions") -> str:
    """``[lo, hi]`` in the kind's format (``conversions``, ``signed``, ``eur``, ``effect``)."""
    fmt = {"conversions": conversions, "signed": lambda v: conversions(v, signed=True),
           "eur": lambda v: eur(v, cents=True),
           "effect": lambda v: effect(v, unit=False)}[kind]
    if kind == "eur":  # a cost per conversion: the high end is inf when the plan may buy nothing
        return f"[{fmt(lo)}, {fmt(hi)}]"
    return f"[{fmt(lo)}, {fmt(hi)}]" if _finite(lo) and _finite(hi) else DASH


def effect(x, unit: bool = True) -> str:
    """An effect per contact as incremental conversions per 1,000 contacts, two decimals."""
    if not _finite(x):
        return DASH
    return f"{1000 * x:,.2f}" + (" per 1,000" if unit else "")


def percent(x, digits: int = 0) -> str:
    if not _finite(x):
        return DASH
    return f"{100 * x:.{digits}f}%"


def count(x) -> str:
    return f"{int(round(x)):,}" if _finite(x) else DASH


def when(t) -> str:
    """A time as ``2025-03-01 09:10 UTC``."""
    if t is None:
        return DASH
    if isinstance(t, str):
        try:
            t = datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            return t
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if t.tzinfo is not None else t.strftime("%Y-%m-%d %H:%M")


FILTERS = {"eur": eur, "conv": conversions, "interval": interval, "effect": effect, "percent": percent,
           "count": count, "when": when}
