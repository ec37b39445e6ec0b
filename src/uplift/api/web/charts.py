"""The page's charts: Altair (Vega-Lite) specs rendered to SVG on the server by vl-convert, no network.

Each chart is an ``<img>`` of its own URL, so a page's HTML does not wait for its charts, the page
needs no JavaScript to show them, and a chart of a stored plan (which never changes) is rendered once:
:func:`svg` keeps the last :data:`CACHE_SIZE` renderings by the SHA-256 of their spec. Every chart
has a text equivalent on its page (the tables beside it) and an ``alt`` text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence

__all__ = ["CACHE_SIZE", "budget_curve_spec", "compare_spec", "effects_spec", "plan_parts_spec", "svg", "warm_up"]

log = logging.getLogger("uplift.api")

CACHE_SIZE = 256
WIDTH = 340
_cache: OrderedDict[str, str] = OrderedDict()
_lock = threading.Lock()
_FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif"
_CONFIG = {"font": _FONT, "axis": {"labelFontSize": 12, "titleFontSize": 12, "labelLimit": 220},
           "legend": {"labelFontSize": 12, "titleFontSize": 12}, "view": {"stroke": None}}
BLUE, ORANGE, GREY = "#1f5f99", "#b34700", "#555555"
"""Colours with at least 4.5:1 contrast on white."""


def _chart(layers, *, title: str, height: int, width: int = WIDTH):
    import altair as alt

    return alt.layer(*layers).properties(title=title, width=width, height=height)


def _spec(chart) -> dict:
    spec = chart.to_dict(validate=False)  # built here from known fields: the schema check costs ~15 ms a chart
    spec["config"] = _CONFIG
    return spec


def effects_spec(rows: Sequence[dict]) -> dict:
    """Average effect per message x channel (per 1,000 contacts) with its interval; ``rows`` have
    ``message``, ``channel``, ``effect``, ``lo``, ``hi`` (per contact)."""
    import altair as alt

    data = alt.Data(values=[{"arm": f"{r['message']} · {r['channel']}", "channel": r["channel"],
                             "effect": 1000 * r["effect"], "lo": 1000 * r["lo"], "hi": 1000 * r["hi"]} for r in rows])
    base = alt.Chart(data).encode(y=alt.Y("arm:N", title=None,
                                          sort=alt.EncodingSortField("effect", order="descending")))
    x_title = "incremental conversions per 1,000 contacts"
    rule = base.mark_rule(strokeWidth=2, color=GREY).encode(x=alt.X("lo:Q", title=x_title), x2="hi:Q")
    point = base.mark_point(filled=True, size=60).encode(
        x="effect:Q", color=alt.Color("channel:N", title="channel", scale=alt.Scale(scheme="dark2")),
        shape=alt.Shape("channel:N", title="channel"))
    zero = alt.Chart(alt.Data(values=[{"x": 0}])).mark_rule(color="#000", strokeDash=[3, 3]).encode(x="x:Q")
    return _spec(_chart([rule, point, zero], title="Average effect per message and channel (80% interval)",
                        height=max(120, 22 * len(rows)), width=420))


def plan_parts_spec(parts: Sequence[dict]) -> dict:
    """Spend, and expected incremental conversions with their interval, per channel and per message;
    ``parts`` as a plan's ``breakdown``."""
    import altair as alt

    panels = []
    for dimension in ("channel", "message"):
        rows = [p for p in parts if p["dimension"] == dimension]
        if not rows:
            continue
        height = max(60, 24 * len(rows))
        data = alt.Data(values=[{"name": p["name"], "spend": p["spend"], "conv": p["expected_conversions"],
                                 "lo": p["lo"], "hi": p["hi"]} for p in rows])
        y = alt.Y("name:N", title=dimension, sort=alt.EncodingSortField("spend", order="descending"))
        spend = alt.Chart(data).mark_bar(color=BLUE).encode(y=y, x=alt.X("spend:Q", title="spend (EUR)"))
        base = alt.Chart(data).encode(y=alt.Y("name:N", title=None,
                                              sort=alt.EncodingSortField("spend", order="descending")))
        band = base.mark_rule(color=GREY, strokeWidth=2).encode(
            x=alt.X("lo:Q", title="expected incremental conversions (80% interval)"), x2="hi:Q")
        point = base.mark_point(filled=True, color=ORANGE, size=60).encode(x="conv:Q")
        panels.append(alt.hconcat(spend.properties(width=260, height=height, title=f"Spend by {dimension}"),
                                  alt.layer(band, point).properties(width=260, height=height,
                                                                    title=f"Conversions by {dimension}")))
    chart = alt.vconcat(*panels) if panels else alt.Chart(alt.Data(values=[])).mark_text()
    return _spec(chart)


def budget_curve_spec(curve: dict) -> dict:
    """Expected incremental conversions (with their band) against the budget, the planner's budget and the
    spend past which money buys no more marked; ``curve`` as :meth:`PlanService.curve` returns it."""
    import altair as alt

    points = [{"budget": p["budget"], "conv": p["expected_conversions"], "lo": p["lo"], "hi": p["hi"]}
              for p in curve["points"]]
    data = alt.Data(values=points)
    x = alt.X("budget:Q", title="budget (EUR)")
    band = alt.Chart(data).mark_area(opacity=0.25, color=BLUE).encode(
        x=x, y=alt.Y("lo:Q", title="expected incremental conversions"), y2="hi:Q")
    line = alt.Chart(data).mark_line(color=BLUE, strokeWidth=2).encode(x=x, y="conv:Q")
    marks = alt.Data(values=[{"budget": curve["budget"], "what": "your budget"},
                             {"budget": curve["saturation"], "what": "money stops buying conversions"}])
    rules = alt.Chart(marks).mark_rule(strokeWidth=2, strokeDash=[5, 3]).encode(
        x="budget:Q", color=alt.Color("what:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=400),
                                      scale=alt.Scale(domain=["your budget", "money stops buying conversions"],
                                                      range=[ORANGE, GREY])))
    return _spec(_chart([band, line, rules], title=f"What the next euro buys ({curve['interval']:.0%} band)",
                        height=280, width=560))


def compare_spec(rows: Sequence[dict]) -> dict:
    """Spend per channel of several plans side by side; ``rows`` have ``plan``, ``name`` (channel), ``spend``."""
    import altair as alt

    data = alt.Data(values=list(rows))
    chart = alt.Chart(data).mark_bar().encode(
        y=alt.Y("plan:N", title=None), x=alt.X("spend:Q", title="spend (EUR)"),
        color=alt.Color("plan:N", title="plan", scale=alt.Scale(scheme="dark2")),
        row=alt.Row("name:N", title="channel", header=alt.Header(labelAngle=0, labelAlign="left")),
    ).properties(width=420, height=alt.Step(18), title="Spend per channel")
    return _spec(chart)


def svg(spec: dict) -> str:
    """The SVG of a Vega-Lite ``spec`` (vl-convert, on this machine), from the cache when it was drawn before."""
    key = hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    import vl_convert as vlc

    drawn = vlc.vegalite_to_svg(spec)
    with _lock:
        _cache[key] = drawn
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return drawn


def warm_up() -> None:
    """Start vl-convert's JavaScript engine (about a second, once per process) off the request path."""
    try:
        svg(effects_spec([{"message": "m", "channel": "c", "effect": 0.001, "lo": 0.0, "hi": 0.002}]))
    except Exception:  # pragma: no cover - only the first chart's time depends on it
        log.exception("chart renderer warm-up failed")
