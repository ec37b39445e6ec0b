"""The plan form: what a planner types, read into the :class:`~uplift.api.schemas.PlanRequest` the JSON API takes.

The form's fields: ``budget``; ``kind``; ``channel`` and ``message`` (checkboxes); ``min_spend.<channel>`` and
``max_spend.<channel>`` (EUR, blank for none); per fairness floor ``floor-<i>-keep``, ``-name``, ``-group``,
``-kind``, ``-share`` and ``-confidence`` (percent; the policy's floors first, then one new floor whose group
is blank until chosen); ``holdout`` and ``exploration`` (percent); ``value``, what the plan is made on (blank: the
model's own outcome; else a value along the funnel that has a funnel segment table, by its description, see
:func:`value_choices`); ``supersedes`` (a plan id). Only what
differs from the service's policy goes into the request's overrides, so two planners asking the same get
the same plan from the cache. A bad field is named in a plain sentence; nothing is planned then.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from uplift.api.schemas import PlanRequest
from uplift.funnel.value import describe_value
from uplift.specs.planning import FairnessFloor, PlanningPolicy, ValueEvent

__all__ = ["FloorRow", "FormState", "GroupChoice", "MAX_FLOORS", "ValueChoice", "form_from_request", "group_choices",
           "read_plan_form", "value_choices"]

MAX_FLOORS = 12
_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class GroupChoice:
    """A priority group a floor can name: ``value`` as the form sends it, ``label`` as the planner reads it."""

    value: str
    label: str


@dataclass(frozen=True)
class ValueChoice:
    """What a plan can be made on: ``value`` as the form sends it (blank: the model's own outcome, else the
    value's description), ``label`` as the planner reads it, ``events`` the value's (None: the outcome)."""

    value: str
    label: str
    events: tuple[ValueEvent, ...] | None = None


def value_choices(values: Sequence[tuple[ValueEvent, ...]], policy: PlanningPolicy, *,
                  outcome: str) -> list[ValueChoice]:
    """The model's own ``outcome``, then the policy's value (if it has one) and every value in ``values`` (those
    with a funnel segment table, latest first), each once."""
    choices = [ValueChoice("", f"{outcome} (the model's outcome)")]
    for events in ([policy.value_events] if policy.value is not None else []) + list(values):
        text = describe_value(events)
        if all(c.value != text for c in choices):
            choices.append(ValueChoice(text, "value along the funnel: " + text.removeprefix("value = "), events))
    return choices


def _value_of(policy: PlanningPolicy) -> str:
    return describe_value(policy.value_events) if policy.value is not None else ""


@dataclass
class FloorRow:
    name: str = ""
    group: str = ""
    kind: str = "spend_share"
    share: str = ""
    confidence: str = "50"
    keep: bool = True


@dataclass
class FormState:
    """The form as filled in (text as typed, so a form with an error comes back as it was)."""

    budget: str = ""
    kind: str = "targetable"
    channels: set[str] = field(default_factory=set)
    messages: set[str] = field(default_factory=set)
    min_spend: dict[str, str] = field(default_factory=dict)
    max_spend: dict[str, str] = field(default_factory=dict)
    floors: list[FloorRow] = field(default_factory=list)
    holdout: str = ""
    exploration: str = ""
    value: str | None = None
    """The value choice (:class:`ValueChoice`), None when the form has no such field (the policy's stands)."""
    supersedes: str = ""


def _where_value(where: Mapping[str, Any]) -> str:
    parts = []
    for column, value in where.items():
        items = value if isinstance(value, list) else [value]
        parts.append(f"{column}={','.join(str(v) for v in items)}")
    return "where:" + ";".join(parts)


def _floor_group(floor: FairnessFloor) -> str:
    group = getattr(floor, "group", None)
    return f"group:{group}" if group else _where_value(floor.where or {})


def group_choices(segments, policy: PlanningPolicy) -> list[GroupChoice]:
    """The priority groups a floor can name: the groups of the segment table (``group__<name>`` columns),
    the policy's floors' own selections, and each value of the segments' gender, age band and municipality."""
    choices: dict[str, str] = {}
    for column in segments.columns:
        if str(column).startswith("group__"):
            name = str(column)[len("group__"):]
            choices[f"group:{name}"] = f"group: {name.replace('_', ' ')}"
    for floor in policy.fairness_floors:
        choices.setdefault(_floor_group(floor), f"as floor {floor.name!r}: " + _describe(_floor_group(floor)))
    for column in ("gender", "age_band", "municipality"):
        if column in segments.columns:
            for value in sorted(segments[column].astype(str).unique()):
                if value not in ("any", "other", "nan"):
                    choices.setdefault(f"where:{column}={value}", f"{column.replace('_', ' ')}: {value}")
    return [GroupChoice(value=v, label=label) for v, label in choices.items()]


def _describe(value: str) -> str:
    if value.startswith("group:"):
        return value[len("group:"):].replace("_", " ")
    return "; ".join(part.replace("=", ": ").replace("_", " ") for part in value[len("where:"):].split(";"))


def _pct(x: float) -> str:
    return f"{100 * x:g}"


def _eur(x: float | None) -> str:
    return "" if x is None else f"{x:g}"


def form_from_request(request: PlanRequest | None, policy: PlanningPolicy, channels: Sequence[str],
                      messages: Sequence[str]) -> FormState:
    """The form for ``request`` (None: the service's defaults), e.g. to start a new plan from a stored one."""
    from uplift.specs.planning import apply_overrides

    if request is not None:
        policy = apply_overrides(policy, request.policy, source="policy")
    floors = [FloorRow(name=f.name, group=_floor_group(f), kind=f.kind, share=_pct(f.min_share),
                       confidence=_pct(f.confidence)) for f in policy.fairness_floors]
    return FormState(
        budget=_eur(request.budget) if request is not None else "20000",
        kind=request.kind if request is not None else "targetable",
        channels=set(request.channels or channels) if request is not None else set(channels),
        messages=set(request.messages or messages) if request is not None else set(messages),
        min_spend={c: _eur(policy.min_spend.get(c)) for c in channels},
        max_spend={c: _eur(policy.max_spend.get(c)) for c in channels},
        floors=floors,
        holdout=_pct(policy.holdout_share),
        exploration=_pct(policy.exploration_share),
        value=_value_of(policy),
    )


class _Problems(list):
    def number(self, text: str, label: str, *, low: float | None = None, high: float | None = None,
               blank: float | None = None) -> float | None:
        """``text`` as a number (``1,500`` and ``1 500`` read as 1500); a problem naming ``label`` if it is not."""
        cleaned = (text or "").strip().replace(",", "").replace(" ", "").replace("€", "")
        if not cleaned:
            if blank is None:
                self.append(f"{label}: expected a number, got nothing")
            return blank
        try:
            value = float(cleaned)
        except ValueError:
            self.append(f"{label}: expected a number, got {text[:40]!r}")
            return None
        if not math.isfinite(value):
            self.append(f"{label}: expected a finite number, got {text[:40]!r}")
            return None
        if low is not None and value < low:
            self.append(f"{label}: expected at least {low:,g}, got {value:,g}")
            return None
        if high is not None and value > high:
            self.append(f"{label}: expected at most {high:,g}, got {value:,g}")
            return None
        return value


def _read_state(form, channels: Sequence[str], messages: Sequence[str]) -> FormState:
    state = FormState(
        budget=form.get("budget", ""), kind=form.get("kind", "targetable"),
        channels=set(form.getlist("channel")), messages=set(form.getlist("message")),
        min_spend={c: form.get(f"min_spend.{c}", "") for c in channels},
        max_spend={c: form.get(f"max_spend.{c}", "") for c in channels},
        holdout=form.get("holdout", ""), exploration=form.get("exploration", ""),
        value=None if form.get("value") is None else str(form.get("value"))[:400],
        supersedes=form.get("supersedes", "")[:64],
    )
    for i in range(MAX_FLOORS):
        if f"floor-{i}-group" not in form:
            break
        state.floors.append(FloorRow(
            name=form.get(f"floor-{i}-name", "")[:60], group=form.get(f"floor-{i}-group", ""),
            kind=form.get(f"floor-{i}-kind", "spend_share"), share=form.get(f"floor-{i}-share", ""),
            confidence=form.get(f"floor-{i}-confidence", "50"), keep=form.get(f"floor-{i}-keep") is not None))
    return state


def _floor(row: FloorRow, i: int, problems: _Problems, groups: set[str], base: dict | None) -> dict | None:
    """The floor of a form row as a policy entry, or None when it is off or has no group; ``base`` is the
    policy's floor of that name (its other fields, e.g. ``segment_kinds``, stay)."""
    if not row.keep or not row.group:
        return None
    label = f"Fairness floor {i + 1}"
    if row.group not in groups:
        problems.append(f"{label}: unknown priority group {row.group[:40]!r}")
        return None
    if row.kind not in ("spend_share", "contact_share", "conversion_share"):
        problems.append(f"{label}: the share is of spend, contacts or conversions, got {row.kind[:40]!r}")
        return None
    share = problems.number(row.share, f"{label}: minimum share (%)", low=0, high=100)
    confidence = problems.number(row.confidence, f"{label}: confidence (%)", low=50, high=99.9, blank=50.0)
    if share is None or confidence is None:
        return None
    name = _NAME.sub("_", row.name).strip("_") or f"floor_{i + 1}"
    entry: dict[str, Any] = {k: v for k, v in (base or {}).items() if k not in ("where", "group", "confidence")}
    entry.update({"name": name, "kind": row.kind, "min_share": share / 100})
    if row.group.startswith("group:"):
        entry["group"] = row.group[len("group:"):]
    else:
        where: dict[str, Any] = {}
        for part in row.group[len("where:"):].split(";"):
            column, _, values = part.partition("=")
            items = values.split(",")
            where[column] = items if len(items) > 1 else items[0]
        entry["where"] = where
    if row.kind == "conversion_share":
        entry["confidence"] = confidence / 100
    return entry


def _limit_overrides(state: FormState, policy: PlanningPolicy, channels: Sequence[str],
                     problems: _Problems) -> dict[str, Any]:
    """The spend limits per channel that differ from the policy's (those of channels the model lacks kept)."""
    overrides: dict[str, Any] = {}
    for key, typed in (("min_spend", state.min_spend), ("max_spend", state.max_spend)):
        limits = {k: v for k, v in getattr(policy, key).items() if k not in channels}
        for channel in channels:
            value = problems.number(typed.get(channel, ""), f"{key.replace('_', ' ').capitalize()} on {channel} (EUR)",
                                    low=0, high=1e9, blank=-1.0)
            if value is not None and value >= 0:
                limits[channel] = value
        if limits != dict(getattr(policy, key)):
            overrides[key] = limits
    return overrides


def _share_overrides(state: FormState, policy: PlanningPolicy, problems: _Problems) -> dict[str, Any]:
    """The holdout and exploration shares that differ from the policy's."""
    overrides: dict[str, Any] = {}
    for key, typed, label, high in (("holdout_share", state.holdout, "Holdout share (%)", 99),
                                    ("exploration_share", state.exploration, "Exploration share (%)", 99)):
        value = problems.number(typed, label, low=0, high=high)
        if value is not None and not math.isclose(value / 100, getattr(policy, key), abs_tol=1e-12):
            overrides[key] = value / 100
    return overrides


def _floor_overrides(state: FormState, policy: PlanningPolicy, groups: Sequence[GroupChoice],
                     problems: _Problems) -> dict[str, Any]:
    """The fairness floors, when the form's differ from the policy's."""
    known = {g.value for g in groups}
    declared = {f.name: f.model_dump(mode="json", exclude_none=True) for f in policy.fairness_floors}
    floors = [f for i, row in enumerate(state.floors)
              if (f := _floor(row, i, problems, known, declared.get(row.name))) is not None]
    names = [f["name"] for f in floors]
    if len(set(names)) < len(names):
        problems.append("Fairness floors: give each floor its own name")
    try:
        same = [FairnessFloor.model_validate(f) for f in floors] == list(policy.fairness_floors)
    except ValidationError as exc:
        problems.extend(f"Fairness floors: {e['msg']}" for e in exc.errors())
        same = True
    return {} if same else {"fairness_floors": floors}


def _value_override(typed: str | None, values: Sequence[ValueChoice], policy: PlanningPolicy,
                    problems: _Problems) -> dict[str, Any]:
    """The ``value`` override the form's choice asks for: none when it is the policy's own (or the form has no
    such field), ``None`` for the model's outcome, else the chosen value's events."""
    if typed is None or typed == _value_of(policy):
        return {}
    choice = next((c for c in values if c.value == typed), None)
    if choice is None:
        problems.append(f"Plan on: {typed[:80]!r} has no funnel segment table for this model; choose one the list "
                        "offers")
        return {}
    return {"value": None if choice.events is None else [e.model_dump(mode="json") for e in choice.events]}


def read_plan_form(form, *, policy: PlanningPolicy, channels: Sequence[str], messages: Sequence[str],
                   groups: Sequence[GroupChoice], values: Sequence[ValueChoice] = ()
                   ) -> tuple[FormState, PlanRequest | None, list[str]]:
    """The form as typed, the request it asks for (None when a field is wrong) and what is wrong, field by field.

    ``policy`` is the service's, ``channels`` and ``messages`` the model's, ``groups`` what a floor may name,
    ``values`` what a plan may be made on (:func:`value_choices`).
    """
    state = _read_state(form, channels, messages)
    problems = _Problems()
    budget = problems.number(state.budget, "Budget (EUR)", low=0, high=1e9)
    if state.kind not in ("targetable", "persona"):
        problems.append(f"Segments: targetable or persona, got {state.kind[:40]!r}")
    chosen_channels = [c for c in channels if c in state.channels]
    chosen_messages = [m for m in messages if m in state.messages]
    if not chosen_channels:
        problems.append("Channels: choose at least one channel")
    if not chosen_messages:
        problems.append("Messages: choose at least one message")
    overrides: dict[str, Any] = {**_limit_overrides(state, policy, channels, problems),
                                 **_share_overrides(state, policy, problems),
                                 **_floor_overrides(state, policy, groups, problems)}
    overrides |= _value_override(state.value, values, policy, problems)
    if problems:
        return state, None, list(problems)
    try:
        request = PlanRequest(
            budget=budget, kind=state.kind, policy=overrides,
            channels=None if len(chosen_channels) == len(channels) else chosen_channels,
            messages=None if len(chosen_messages) == len(messages) else chosen_messages,
        )
    except ValidationError as exc:
        return state, None, [f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}" for e in exc.errors()]
    return state, request, []
