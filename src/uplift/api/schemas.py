"""Request and response bodies of the HTTP API (pydantic), with the examples shown in the OpenAPI schema."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, field_validator

__all__ = [
    "ErrorBody",
    "FeatureInfo",
    "Health",
    "HealthStatus",
    "ModelInfo",
    "PlanCell",
    "PlanLabelsIn",
    "PlanList",
    "PlanPartOut",
    "PlanRequest",
    "PlanResponse",
    "PlanSummary",
    "StoredPlanLabels",
    "PlanTotalsOut",
    "PlanValueOut",
    "RulePriceOut",
    "RowScore",
    "ScoreRequest",
    "ScoreResponse",
    "SegmentEffect",
    "SegmentPage",
    "UnitLineOut",
    "ValueEventOut",
]

ARM_EXAMPLE = "fresh_start@meta"


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ErrorBody(_Out):
    """Every error: ``detail`` says what was wrong; for bad input a list of ``{loc, msg, type}``."""

    detail: str | list[dict[str, Any]]


class HealthStatus(_Out):
    """What ``GET /health`` tells a caller without a token."""

    status: Literal["ok", "degraded", "down"] = Field(
        description="ok; degraded = serving the last good model while the alias' version cannot be loaded "
        "or the registry cannot be reached; down = no model to serve (503)"
    )


class Health(HealthStatus):
    """What ``GET /health`` tells a caller with a valid token: the status and its details."""

    reason: str | None = Field(None, description="why the status is not ok (short; the service log has the details)")
    model_name: str
    alias: str
    model_version: int | None
    run_id: str | None
    loaded_at: datetime | None
    checked_at: datetime | None = Field(None, description="last time the registry alias was checked")
    compute_processes: int = Field(
        0, description="worker processes computing scores and new plans for the model in service; 0 = in the "
        "request threads (so configured, or the workers could not start: see the log)"
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "ok", "reason": None, "model_name": "uplift-registration", "alias": "champion",
                 "model_version": 3,
                 "run_id": "8f2c0d3c1a7b4e1f9d2e6a5b4c3d2e1f", "loaded_at": "2025-03-01T09:00:00Z",
                 "checked_at": "2025-03-01T09:05:00Z", "compute_processes": 2}
            ]
        }
    )


class FeatureInfo(_Out):
    name: str
    kind: Literal["numeric", "categorical"]


class ModelInfo(_Out):
    name: str
    version: int
    alias: str
    run_id: str
    arms: list[str] = Field(description="treatment arms, 'message@channel'")
    control: str
    features: list[FeatureInfo] = Field(description="the columns POST /scores needs in every row")
    metrics: dict[str, float] = Field(description="validation metrics of the training run")
    loaded_at: datetime

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "uplift-registration", "version": 3, "alias": "champion",
                 "run_id": "8f2c0d3c1a7b4e1f9d2e6a5b4c3d2e1f",
                 "arms": [ARM_EXAMPLE, "heavy_work_future@meta"], "control": "holdout",
                 "features": [{"name": "age", "kind": "numeric"}, {"name": "gender", "kind": "categorical"}],
                 "metrics": {"test_mean_qini": 0.0021}, "loaded_at": "2025-03-01T09:00:00Z"}
            ]
        }
    )


class SegmentEffect(_Out):
    """One segment x arm: the calibrated incremental conversions per contact, with its interval.

    Counts of people are rounded to the disclosure policy's base and null below its threshold; the
    base rate and the observed difference are null where they rest on fewer people, converters or
    non-converters than the threshold (``withheld`` says which figures and why).
    """

    segment: str
    kind: str
    size: int = Field(description="people in the segment, rounded (never below the service's minimum)")
    arm: str
    message: str
    channel: str
    base_rate: float | None = Field(None, description="conversion rate without contact (the segment's holdout); "
                                    "null where withheld")
    effect: float = Field(description="incremental conversions per contact (probability points), a model estimate")
    effect_sd: float
    lo: float
    hi: float
    interval: float = Field(description="coverage of [lo, hi]")
    observed: float | None = Field(None, description="the randomised difference arm minus holdout in the segment; "
                                   "null where withheld")
    observed_se: float | None = None
    people_treated: int | None = Field(None, description="people randomised to the arm in the segment, rounded; "
                                       "null where suppressed")
    people_control: int | None = Field(None, description="people of the segment's holdout, rounded; null where "
                                       "suppressed")
    age_band: str | None = None
    gender: str | None = None
    municipality: str | None = None
    persona: str | None = None
    withheld: list[str] = Field(default_factory=list, description="'column: reason' for each suppressed count "
                                "and withheld figure of this row")


class SegmentPage(_Out):
    model_version: int
    total: int = Field(description="rows matching the filters")
    limit: int
    offset: int
    items: list[SegmentEffect]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"model_version": 3, "total": 1, "limit": 100, "offset": 0, "items": [
                    {"segment": "35-44|female|Den Haag", "kind": "targetable", "size": 1240, "arm": ARM_EXAMPLE,
                     "message": "fresh_start", "channel": "meta", "base_rate": 0.006, "effect": 0.0031,
                     "effect_sd": 0.0012, "lo": 0.0016, "hi": 0.0046, "interval": 0.8}
                ]}
            ]
        }
    )


MAX_OVERRIDE_DEPTH = 16
"""Levels of nested objects and arrays an override may have (the deepest spec path, e.g.
``costs.channels.meta.tiers[0].share``, has 4)."""
MAX_OVERRIDES = 100
"""Keys per ``policy`` or ``costs`` object."""

OverrideKey = Annotated[str, StringConstraints(min_length=1, max_length=200)]
NameText = Annotated[str, StringConstraints(max_length=200)]
"""A channel or message name in a request."""


def json_depth(value: Any) -> int:
    """Levels of nested objects and arrays in a parsed JSON value (0 for a number or text); iterative,
    so any depth is measured without recursion."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
        else:
            deepest = max(deepest, level)
            continue
        deepest = max(deepest, level + 1)
    return deepest


class PlanRequest(_In):
    """A budget split over the model's segments x arms."""

    budget: float = Field(ge=0, le=1e9, description="EUR to spend at most")
    kind: Literal["targetable", "persona"] = Field("targetable", description="which segments to plan over")
    policy: dict[OverrideKey, Any] = Field(
        default_factory=dict, max_length=MAX_OVERRIDES,
        description="overrides of serve/policy.yaml; dotted keys reach into mappings, e.g. 'min_spend.flyer'; "
                    f"at most {MAX_OVERRIDE_DEPTH} levels of nesting",
    )
    costs: dict[OverrideKey, Any] = Field(
        default_factory=dict, max_length=MAX_OVERRIDES,
        description="overrides of serve/costs.yaml, e.g. {'channels.email': "
                    "{'cost_per_contact': 0.03, 'tiers': [...]}}; "
                    f"at most {MAX_OVERRIDE_DEPTH} levels of nesting",
    )
    channels: list[NameText] | None = Field(
        None, max_length=50, description="plan only over arms on these channels (default: every channel)"
    )
    messages: list[NameText] | None = Field(
        None, max_length=200, description="plan only over arms with these messages (default: every message)"
    )
    strict: bool = Field(False, description="answer 409 instead of a relaxed plan when the rules conflict")
    include_references: bool = Field(True, description="also compute the 'even' and 'single_best_message' plans")
    include_prices: bool = Field(
        True, description="price every rule: whether it binds, its dual value and, for a binding rule, what the plan "
                          "without it would buy (one re-solve per binding rule)")

    @field_validator("policy", "costs")
    @classmethod
    def _not_too_deep(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        depth = json_depth(overrides)
        if depth > MAX_OVERRIDE_DEPTH:
            raise ValueError(f"nested {depth} levels deep; at most {MAX_OVERRIDE_DEPTH}")
        return overrides

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"budget": 20000, "kind": "targetable",
                 "policy": {"holdout_share": 0.15, "min_spend.flyer": 800, "exploration_share": 0.0},
                 "strict": False, "include_references": True}
            ]
        }
    )


class PlanTotalsOut(_Out):
    budget: float
    spend: float
    contacts: int
    holdout_people: int
    expected_conversions: float = Field(description="incremental conversions")
    lo: float
    hi: float
    interval: float = Field(description="coverage of [lo, hi]")
    cost_per_conversion: float | None = Field(description="EUR per incremental conversion (null without conversions)")
    marginal_cost: float | None = Field(description="EUR of the next conversion (null if more budget buys none)")
    exploration_spend: float
    cost_per_conversion_lo: float | None = Field(
        description="EUR per incremental conversion if the plan buys `hi` conversions (null without conversions)")
    cost_per_conversion_hi: float | None = Field(
        description="EUR per incremental conversion if it buys `lo` (null when `lo` <= 0: no finite "
                    "cost, or without conversions)")
    estimated_conversions: float | None = Field(
        None, description="the sum of the cells' estimated conversions; `expected_conversions` is it calibrated on the "
                          "data's held-out rows when the segment table carries that calibration (docs/planning.md)")


class ValueEventOut(_Out):
    event: str = Field(description="the funnel event (uplift.data.vocabulary.FUNNEL_EVENTS)")
    weight: float = Field(description="what one conversion to the event counts for in the value")
    attribution_days: int = Field(description="the event counts if it happens within this many days of assignment")
    expected_conversions: float = Field(description="the plan's expected incremental conversions to the event")
    lo: float
    hi: float
    interval: float = Field(description="coverage of [lo, hi]")


class PlanValueOut(_Out):
    description: str = Field(description="the value, e.g. '1 x registration (28 days) + 5 x application (70 days)'")
    source: str = Field(description="the funnel segment table the plan was made on")
    expected_value: float = Field(description="the plan's expected incremental value (the totals' "
                                              "`expected_conversions`, in units of value)")
    lo: float
    hi: float
    interval: float = Field(description="coverage of [lo, hi]")
    events: list[ValueEventOut] = Field(description="each event's expected incremental conversions, in funnel order")


class PlanGainOut(_Out):
    extra_conversions: float = Field(description="expected incremental conversions of the plan minus the reference's")
    lo: float
    hi: float
    interval: float = Field(description="coverage of [lo, hi]")
    probability_better: float = Field(
        description="P(the plan buys more incremental conversions than the reference) under the effects' uncertainty")
    extra_spend: float = Field(description="EUR the plan spends beyond the reference (negative: less)")


class FloorOut(_Out):
    name: str
    kind: Literal["spend_share", "contact_share", "conversion_share"]
    min_share: float
    status: Literal["held", "short", "not_applicable"] = Field(
        description="held; short (a relaxed plan, see its conflicts); not_applicable: the floor does not bind plans "
                    "over this kind of segment (its segment_kinds)")
    share: float | None = Field(
        description="the plan's share of spend, contacts or expected conversions the floor counts (null when the "
                    "floor does not apply or the plan spends or converts nothing)")
    reason: str = Field("", description="why a floor does not apply, when not its segment_kinds (e.g. a priority "
                                        "group the data cannot count)")


class RulePriceOut(_Out):
    """One declared rule at the plan: whether it binds and what holding it costs in expected conversions."""

    rule: str = Field(description="e.g. \"fairness floor 'migration_reach'\", \"min_spend 'flyer'\", 'the budget'")
    kind: str = Field(description="the rule's family: budget, channel_max, channel_min, segment_share, spend_floor, "
                                  "contact_floor, conversion_floor, coverage")
    stated: str = Field(description="the rule as declared, e.g. '30% of contacts in group \\'migration_background\\''")
    status: Literal["binds", "slack", "violated"]
    dual: float = Field(description="expected conversions one more `unit` of the rule buys (negative: costs)")
    unit: str = Field(description="e.g. 'percentage point more min_share', 'EUR 1,000 more max_spend'")
    cost: float | None = Field(description="expected conversions the plan without the rule buys beyond this plan "
                                           "(0 when slack; null for the budget and for a rule that gives way)")
    lo: float | None
    hi: float | None
    cost_share: float | None = Field(description="cost as a share of the plan without the rule")
    interval: float = Field(description="coverage of [lo, hi]; paired: both plans scored on the same estimates")
    text: str = Field(description="the price in one sentence")
class PlanPartOut(_Out):
    """A plan's figures on one channel, message or priority group, with the interval of that part."""

    dimension: Literal["channel", "message", "group"]
    name: str
    spend: float
    contacts: int = Field(description="for a priority group: the expected contacts with its people")
    expected_conversions: float
    lo: float
    hi: float


class PlanCell(_Out):
    segment: str
    arm: str
    message: str
    channel: str
    contacts: int
    holdout_people: int
    spend: float
    expected_conversions: float
    lo: float
    hi: float
    cost_per_conversion: float | None
    marginal_cost: float | None
    exploration: float = Field(description="EUR of the spend that is exploration")


class UnitLineOut(_Out):
    """One print run a plan buys: a flyer line of one message over one print unit."""

    channel: str = Field(description="the channel, one delivered per neighbourhood (flyer)")
    message: str
    unit: str = Field(description="the print unit's code (its utm_term): a neighbourhood, or small neighbourhoods of "
                                  "one municipality merged until they hold at least the disclosure threshold's people")
    municipality: str
    postcodes: list[str] = Field(description="the unit's 4-digit postcodes, where the flyers are delivered")
    contacts: int = Field(description="letterboxes planned (the cells' contacts in the unit)")
    copies: int = Field(description="copies to print: contacts per copy's reach, rounded up, at least the channel's "
                                    "minimum print run")
    holdout_people: int = Field(description="people of the unit's cells held out of this line")
    spend: float = Field(description="EUR; the plan's flyer spend is the sum of its print runs'")
    segments: list[str] = Field(description="the plan's cells whose people in the unit the run reaches")


# A stored plan's labels, the same in its full answer and in the list of plans.
ApprovedAt = Annotated[datetime | None, Field(description="when a planner approved the plan (null: not approved; "
                                                          "approved plans are kept, unapproved ones expire)")]
ApprovedBy = Annotated[str | None, Field(description="the name of the token that approved it (never the token)")]
CreatedBy = Annotated[str | None, Field(description="the name of the token that made the plan (never the token)")]
PlanName = Annotated[str | None, Field(description="a planner's name for the plan")]
PlanNote = Annotated[str | None, Field(description="a planner's note on the plan")]
Supersedes = Annotated[str | None, Field(description="id of the plan this one replaces (an approved plan is never "
                                                     "edited: a new plan supersedes it)")]
SupersededBy = Annotated[str | None, Field(description="id of the plan that replaces this one: the newest approved "
                                                       "such plan, else the newest draft")]


class StoredPlanLabels(_Out):
    """A stored plan's id, the model that made it, its approval and a planner's labels: the first fields of its
    full answer (:class:`PlanResponse`) and of its line in the list of plans (:class:`PlanSummary`)."""

    id: str
    created_at: datetime
    model_name: str
    model_version: int
    approved_at: ApprovedAt = None
    approved_by: ApprovedBy = None
    created_by: CreatedBy = None
    name: PlanName = None
    note: PlanNote = None
    supersedes: Supersedes = None
    superseded_by: SupersededBy = None


class PlanResponse(StoredPlanLabels):
    status: Literal["optimal", "infeasible"]
    conflicts: list[str]
    notes: list[str]
    totals: PlanTotalsOut
    references: dict[str, PlanTotalsOut]
    gains: dict[str, PlanGainOut] = Field(
        default_factory=dict,
        description="per reference plan, what the plan adds over it; paired (both scored on the same estimates, "
                    "so their shared errors cancel), hence narrower than the two totals' intervals side by side")
    floors: list[FloorOut] = Field(default_factory=list, description="per fairness floor of the policy: held, "
                                                                    "short or not applicable, and the share reached")
    rules: list[RulePriceOut] = Field(
        default_factory=list, description="the price of every declared rule (empty when include_prices is false)")
    breakdown: list[PlanPartOut] = Field(
        default_factory=list, description="the plan per channel, per message and per priority group (each cell "
        "counted with its group's share of its people), each part's conversions with its own interval (cells' own "
        "and shared errors, as the totals')")
    value: PlanValueOut | None = Field(
        None, description="a plan on value along the funnel (the policy's `value` block): the value with its "
        "interval and each event's expected incremental conversions; absent for a plan on registrations. In a "
        "value plan every conversion figure of the totals, references, gains, rules and cells is in units of value")
    unit_lines: list[UnitLineOut] | None = Field(
        None, description="the print runs bought, one per (flyer channel, message, print unit), when the model's "
        "training logged where its segments' people live (a targetable plan on registrations); their contacts, "
        "holdout and spend add up to the cells' of their channel. Absent: flyer lines are the cells' municipality "
        "lines (the notes say why)")
    cells: list[PlanCell] = Field(description="funded cells (contacts > 0), largest spend first")
    request: PlanRequest

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": "3f6c0e0a9b2d4c6e8f1a2b3c4d5e6f70", "created_at": "2025-03-01T09:10:00Z", "model_name": "uplift",
                 "model_version": 3, "status": "optimal", "conflicts": [], "notes": [],
                 "totals": {"budget": 20000, "spend": 19990.5, "contacts": 250000, "holdout_people": 27777,
                            "expected_conversions": 410.2, "lo": 380.1, "hi": 440.3, "interval": 0.8,
                            "cost_per_conversion": 48.7, "marginal_cost": 95.0, "exploration_spend": 2000.0,
                            "cost_per_conversion_lo": 45.4, "cost_per_conversion_hi": 52.5},
                 "references": {}, "cells": [],
                 "request": {"budget": 20000, "kind": "targetable", "policy": {}, "costs": {}, "strict": False,
                             "include_references": False}}
            ]
        }
    )


class PlanSummary(StoredPlanLabels):
    status: str
    budget: float
    spend: float
    expected_conversions: float


# What a planner may write as a label (PlanLabelsIn); the stored labels above are read back as written.
NameIn = Annotated[str, StringConstraints(min_length=1, max_length=200)]
NoteIn = Annotated[str, StringConstraints(max_length=4000)]


class PlanLabelsIn(_In):
    """A planner's labels on an unapproved stored plan (each field only when given)."""

    name: NameIn | None = None
    note: NoteIn | None = None
    supersedes: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None, description="id of the stored plan this one replaces")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Wave 5, flyers first", "note": "agreed with the programme team"}]}
    )


class PlanList(_Out):
    total: int
    limit: int
    offset: int
    items: list[PlanSummary] = Field(description="newest first")


FeatureValue = Annotated[Any, WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"},
                                                        {"type": "null"}]})]
"""A feature value as documented: text, number, boolean or null. Parsed as any JSON value; the
service's row check (``uplift.api.scoring.rows_to_frame``) types every feature column and names
the first bad row and column (422), so values are not checked twice."""


class ScoreRequest(_In):
    """Anonymised rows with the model's feature columns (see GET /model); extra keys are ignored."""

    rows: list[dict[str, FeatureValue]] = Field(min_length=1, description="at most the service's max_score_rows")
    shrunk: bool = Field(True, description="report the shrunk estimates the targeting rule acts on (false: raw)")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"rows": [{"age": 47, "age_band": "45-54", "gender": "male", "municipality": "Den Haag",
                           "sector": "construction", "prior_contacts": 0, "days_since_last_contact": None}],
                 "shrunk": True}
            ]
        }
    )


class RowScore(_Out):
    index: int
    uplift: dict[str, float] = Field(description="per treatment arm, incremental conversion probability")
    best_arm: str = Field(description="the validated targeting rule's arm; the control when no arm helps (with "
                                      "costs: when no arm pays)")
    best_uplift: float = Field(description="uplift of best_arm (0 for the control)")
    net_value: dict[str, float] | None = Field(
        None, description="a model with costs: per treatment arm, value x shrunk uplift - incremental contact cost")
    best_net_value: float | None = Field(
        None, description="a model with costs: net value of best_arm (0 for the control)")


class ScoreResponse(_Out):
    model_version: int
    arms: list[str]
    control: str
    shrunk: bool
    economics: dict | None = Field(
        None, description="a model with costs: the value of a conversion, the contact cost per arm and the budget "
                          "its rule was chosen with")
    rows: list[RowScore]
