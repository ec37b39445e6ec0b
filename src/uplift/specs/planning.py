"""Declarations for budget planning: the channel cost catalogue and the planning policy (``serve/``).

``serve/costs.yaml`` is read into :class:`CostCatalogue`, ``serve/policy.yaml`` into
:class:`PlanningPolicy`; :func:`apply_overrides` makes a per-call variant of either and turns an
invalid override into a :class:`~uplift.errors.SpecError` that names the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator

from uplift.data.vocabulary import FUNNEL_EVENTS
from uplift.errors import SpecError
from uplift.specs import Spec
from uplift.specs.features import OutcomeSpec

__all__ = [
    "ReachTier",
    "ChannelCost",
    "CostCatalogue",
    "CoverageFloor",
    "FairnessFloor",
    "PlanningPolicy",
    "ValueEvent",
    "SEGMENT_KINDS",
    "TARGETING_DIMENSIONS",
    "HANDOFF_KINDS",
    "apply_overrides",
]

S = TypeVar("S", bound=Spec)

FloorValue = str | int | float | bool

SegmentKind = Literal["targetable", "persona"]
SEGMENT_KINDS: tuple[str, ...] = ("targetable", "persona")
"""The kinds of segment a plan is made over (the segment table's ``kind`` column)."""


TargetingDimension = Literal["age_band", "gender", "municipality", "neighbourhood"]
TARGETING_DIMENSIONS: tuple[str, ...] = ("age_band", "gender", "municipality", "neighbourhood")
"""What a channel can select people by: an age band, a gender, a municipality, a neighbourhood (4-digit postcode)."""

HandoffKind = Literal["ad_sets", "print_run", "mailing"]
HANDOFF_KINDS: tuple[str, ...] = ("ad_sets", "print_run", "mailing")
"""How a channel's lines are handed to whoever runs it: ad sets on a platform (an audience definition and a
budget), print runs per neighbourhood (door to door), or mailings to a list selection (:mod:`uplift.handoff`)."""


class ReachTier(Spec):
    """One step of a channel's reach curve: the next ``share`` of a segment costs ``multiplier`` x base.

    Shares are incremental: tiers ``[(0.4, 1.0), (0.3, 1.8)]`` mean the first 40% of a segment
    cost the base price per contact, the next 30% cost 1.8 times that, the remaining 30% are
    unreachable on the channel.
    """

    share: float = Field(gt=0, le=1, description="share of the segment reachable in this tier")
    multiplier: float = Field(gt=0, description="cost per contact in this tier / base cost per contact")


class ChannelCost(Spec):
    """Price and reach curve of one channel.

    Give either ``cost_per_contact`` (EUR per person reached) or ``cost_per_mille`` (EUR per
    thousand impressions) together with ``impressions_per_contact`` (the frequency needed to
    count a person as reached); :attr:`unit_cost` normalises both to EUR per contact.
    """

    cost_per_contact: float | None = Field(default=None, gt=0)
    cost_per_mille: float | None = Field(default=None, gt=0)
    impressions_per_contact: float | None = Field(default=None, gt=0)
    tiers: tuple[ReachTier, ...] = Field(min_length=1)
    note: str = ""
    targeting: tuple[TargetingDimension, ...] | None = Field(
        default=None,
        description="the dimensions the channel can select people by (at least one); a hand-off needs them")
    handoff: HandoffKind | None = Field(default=None, description="how the channel's lines are handed over")
    min_line_spend: float = Field(default=0.0, ge=0,
                                  description="EUR an ad set or mailing needs at least over the wave")
    min_print_run: int = Field(default=0, ge=0, description="copies a print run needs at least")
    people_per_copy: float = Field(default=1.0, gt=0, description="contacts one printed copy reaches (a household)")

    @field_validator("targeting")
    @classmethod
    def _targets_something(cls, targeting: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if targeting is not None and not targeting:
            raise ValueError(f"a channel that targets nothing cannot be handed over; expected at least one of "
                             f"{', '.join(TARGETING_DIMENSIONS)}")
        if targeting is not None and len(set(targeting)) < len(targeting):
            raise ValueError(f"expected each dimension once, got {list(targeting)}")
        return targeting

    @model_validator(mode="after")
    def _handoff_fits_targeting(self) -> ChannelCost:
        if self.handoff is not None and self.targeting is None:
            raise ValueError(f"handoff: {self.handoff} needs 'targeting', the dimensions the channel can select "
                             f"people by (some of {', '.join(TARGETING_DIMENSIONS)})")
        if self.handoff == "print_run" and "neighbourhood" not in (self.targeting or ()):
            raise ValueError("handoff: print_run is door to door per neighbourhood; expected 'neighbourhood' among "
                             f"targeting, got {list(self.targeting or ())}")
        if self.min_print_run and self.handoff != "print_run":
            raise ValueError("min_print_run applies to handoff: print_run only; this channel's "
                             f"handoff is {self.handoff}")
        return self

    @model_validator(mode="after")
    def _one_price(self) -> ChannelCost:
        per_contact = self.cost_per_contact is not None
        per_mille = self.cost_per_mille is not None or self.impressions_per_contact is not None
        if per_contact == per_mille:
            raise ValueError(
                "give either cost_per_contact, or cost_per_mille together with impressions_per_contact"
            )
        if per_mille and (self.cost_per_mille is None or self.impressions_per_contact is None):
            raise ValueError("cost_per_mille and impressions_per_contact must be given together")
        return self

    @field_validator("tiers")
    @classmethod
    def _concave(cls, tiers: tuple[ReachTier, ...]) -> tuple[ReachTier, ...]:
        total = sum(t.share for t in tiers)
        if total > 1 + 1e-9:
            raise ValueError(f"tier shares add up to {total:.3g}; expected at most 1 (a whole segment)")
        multipliers = [t.multiplier for t in tiers]
        if any(b < a for a, b in zip(multipliers, multipliers[1:], strict=False)):
            raise ValueError(
                f"tier multipliers {multipliers} must not decrease (a concave reach curve: "
                "each further share of a segment costs at least as much per contact)"
            )
        return tiers

    @property
    def unit_cost(self) -> float:
        """Base cost per contact in EUR (the first tier's price before its multiplier)."""
        if self.cost_per_contact is not None:
            return float(self.cost_per_contact)
        return float(self.cost_per_mille) * float(self.impressions_per_contact) / 1000.0

    @property
    def reachable_share(self) -> float:
        """Share of a segment the channel can reach at all (sum of the tier shares)."""
        return float(sum(t.share for t in self.tiers))


class CostCatalogue(Spec):
    """Per-channel prices and reach curves (``serve/costs.yaml``)."""

    currency: Literal["EUR"] = "EUR"
    channels: dict[str, ChannelCost] = Field(min_length=1)

    def channel(self, name: str) -> ChannelCost:
        """The cost declaration of channel ``name``; :class:`SpecError` lists the valid ones."""
        try:
            return self.channels[name]
        except KeyError:
            raise SpecError(
                f"channel {name!r} is not in the cost catalogue; valid: {', '.join(sorted(self.channels))}"
            ) from None


class FairnessFloor(Spec):
    """A guaranteed minimum share of spend, of contacts or of expected conversions for a priority group.

    The group is given either by ``where`` or by ``group``:

    - ``where`` maps segment attribute columns of the effects table to a value or a list of
      values; a segment is selected when every column matches (values are compared as text), and
      counts whole.
    - ``group`` names a priority group of ``serve/groups.yaml`` (:mod:`uplift.specs.groups`); every
      segment counts with the group's share of its people (its composition, the effects table's
      ``group__<name>`` column), so a floor can hold a group no channel targets directly (people
      with a migration background) and a floor over gender or age works on persona segments too.

    ``kind``: ``spend_share`` (the group's share of the plan's spend), ``contact_share`` (of its
    contacts: reach) or ``conversion_share`` (of its expected incremental conversions).

    A spend or contact share holds whatever the true effects are. A conversion share only holds
    under the estimates; ``confidence`` (conversion shares only) is the probability, under the
    effects' uncertainty (their standard deviations and shared errors), that the share is at least
    ``min_share``: 0.5 asks for it in expectation, 0.9 keeps a margin of 1.28 standard deviations
    of the floor's conversions above it.

    ``segment_kinds`` names the kinds of segment whose plans the floor binds (default: every
    kind). A floor on columns only one kind's segments carry says so: ``where: {gender: female}``
    selects targetable cells, while every persona segment mixes genders (its ``gender`` is
    ``any``), so that floor declares ``segment_kinds: [targetable]`` and a plan over personas
    reports it as not applicable.
    """

    name: str = Field(min_length=1)
    where: dict[str, FloorValue | list[FloorValue]] | None = Field(default=None, min_length=1)
    group: str | None = Field(default=None, min_length=1)
    kind: Literal["spend_share", "contact_share", "conversion_share"]
    min_share: float = Field(ge=0, le=1, description="the floor as a share between 0 and 1 (0.3 = 30%)")
    confidence: float = Field(default=0.5, ge=0.5, lt=1)
    segment_kinds: tuple[SegmentKind, ...] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_selection(self) -> FairnessFloor:
        if (self.where is None) == (self.group is None):
            raise ValueError(
                f"floor {self.name!r}: give either 'where' (segment columns and their values) or 'group' (a priority "
                "group of serve/groups.yaml), not both and not neither"
            )
        return self

    @model_validator(mode="after")
    def _confidence_for_conversions(self) -> FairnessFloor:
        if self.kind != "conversion_share" and self.confidence != 0.5:
            raise ValueError(
                f"confidence: applies to conversion_share floors only (a {self.kind} holds whatever the "
                f"effects are); floor {self.name!r} is a {self.kind} floor with confidence {self.confidence}"
            )
        return self

    def applies_to(self, segment_kind: str | None) -> bool:
        """Whether the floor binds a plan over segments of ``segment_kind`` (None: a table that does not
        say which kind its segments are, bound by every floor)."""
        return _binds(self.segment_kinds, segment_kind)

    def values(self, column: str) -> list[str]:
        """The accepted values of ``column``, as text."""
        value = (self.where or {})[column]
        items = value if isinstance(value, list) else [value]
        return [str(v) for v in items]


class CoverageFloor(Spec):
    """Every area gets at least ``min_contacts`` contacts: "every municipality with poorer
    neighbourhoods gets at least 500 contacts with their residents".

    ``area`` is a segment column naming the area (``municipality``; ``neighbourhood`` on a segment
    table with neighbourhood cells). ``areas`` lists which areas (default: every area of the table
    where the counted people live, without the merged ``other`` cells). ``group`` counts only the
    expected contacts with people of that priority group (each segment's contacts times the group's
    share of its people); ``channels`` only contacts on those channels (e.g. flyers). ``segment_kinds``
    as for :class:`FairnessFloor`: persona segments have no area (theirs is ``any``), so a floor over
    municipalities declares ``segment_kinds: [targetable]``.
    """

    name: str = Field(min_length=1)
    area: str = Field(min_length=1)
    min_contacts: float = Field(gt=0, description="contacts every area gets at least")
    areas: tuple[str, ...] | None = Field(default=None, min_length=1)
    group: str | None = Field(default=None, min_length=1)
    channels: tuple[str, ...] | None = Field(default=None, min_length=1)
    segment_kinds: tuple[SegmentKind, ...] | None = Field(default=None, min_length=1)

    def applies_to(self, segment_kind: str | None) -> bool:
        """Whether the floor binds a plan over segments of ``segment_kind`` (as :meth:`FairnessFloor.applies_to`)."""
        return _binds(self.segment_kinds, segment_kind)


def _binds(segment_kinds: tuple[str, ...] | None, segment_kind: str | None) -> bool:
    """A rule declared for ``segment_kinds`` (None: every kind) binds a plan over ``segment_kind`` (None: a
    table that does not say which kind its segments are, bound by every rule)."""
    return segment_kinds is None or segment_kind is None or segment_kind in segment_kinds


class ValueEvent(Spec):
    """One funnel event of a plan's value: its ``weight`` (what one such conversion counts for in the
    value) and its own attribution window (the event counts if it happens in ``[assigned_at,
    assigned_at + attribution_days)``)."""

    event: str
    weight: float = Field(gt=0, allow_inf_nan=False, description="what one conversion to the event counts for")
    attribution_days: int = Field(gt=0, le=366)

    @field_validator("event")
    @classmethod
    def _known_event(cls, v: str) -> str:
        if v not in FUNNEL_EVENTS:
            raise ValueError(f"{v!r} is not a funnel event; expected one of {', '.join(FUNNEL_EVENTS)}")
        return v

    @property
    def outcome(self) -> OutcomeSpec:
        """The event as a model's outcome (the feature set's ``outcome`` with this event and window)."""
        return OutcomeSpec(event=self.event, attribution_days=self.attribution_days)


class PlanningPolicy(Spec):
    """The rules a budget split must keep (``serve/policy.yaml``).

    Attributes
    ----------
    min_spend, max_spend : EUR per channel (channels not named have no minimum / no maximum).
    max_segment_share : largest share of the total spend one segment may take.
    fairness_floors : minimum shares of spend, contacts or expected conversions for priority groups.
    coverage_floors : minimum contacts in every area.
    holdout_share : share of every funded segment kept as holdout; contacts in a segment over all
        arms are at most ``(1 - holdout_share) x size`` and the holdout is
        ``holdout_share / (1 - holdout_share) x contacts``.
    exploration_share : share of the budget spent by Thompson sampling over the effect uncertainty
        (when the plan leaves money unspent, of what the plan without exploration spends when the
        budget does not bind, if less).
    exploration_draws : number of effect draws the exploration allocation averages over.
    floor_draws : number of effect draws on which a conversion floor with a ``confidence`` measures
        how optimistic the plan's own estimates of its slack are (:mod:`uplift.allocation.floors`).
    interval : coverage of the reported intervals (normal, independent cells).
    seed : seed of the exploration draws and of the floors' draws.
    value_per_conversion : EUR one conversion is worth; when given, a campaign model's targeting rule and its
        scores weigh each arm's uplift at this value against the arm's contact cost (the channel's base cost
        per contact in ``serve/costs.yaml``): net-value targeting (:mod:`uplift.modeling.netvalue`). With a
        ``value`` block it is EUR per unit of that value (a conversion of weight 1).
    value : the funnel events a plan's outcome adds up, each with its weight and attribution window
        (:class:`ValueEvent`, :mod:`uplift.funnel`); None: the outcome is the feature set's (registration),
        weight 1.
    """

    min_spend: dict[str, float] = Field(default_factory=dict)
    max_spend: dict[str, float] = Field(default_factory=dict)
    max_segment_share: float = Field(default=1.0, gt=0, le=1)
    fairness_floors: tuple[FairnessFloor, ...] = ()
    coverage_floors: tuple[CoverageFloor, ...] = ()
    holdout_share: float = Field(default=0.1, ge=0, lt=1)
    exploration_share: float = Field(default=0.0, ge=0, lt=1)
    exploration_draws: int = Field(default=8, ge=1, le=200)
    floor_draws: int = Field(default=16, ge=1, le=200)
    interval: float = Field(default=0.8, gt=0, lt=1)
    seed: int = 0
    value_per_conversion: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    value: tuple[ValueEvent, ...] | None = None

    @field_validator("value")
    @classmethod
    def _value_events(cls, value: tuple[ValueEvent, ...] | None) -> tuple[ValueEvent, ...] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("expected at least one funnel event (event, weight, attribution_days); leave the "
                             "block out for registrations alone")
        events = [v.event for v in value]
        repeated = sorted({e for e in events if events.count(e) > 1})
        if repeated:
            raise ValueError(f"expected each funnel event once; repeated: {', '.join(repeated)}")
        return value

    @property
    def value_events(self) -> tuple[ValueEvent, ...] | None:
        """The events of the plan's value in funnel order (None without a ``value`` block)."""
        if self.value is None:
            return None
        return tuple(sorted(self.value, key=lambda v: FUNNEL_EVENTS.index(v.event)))

    @field_validator("min_spend", "max_spend")
    @classmethod
    def _non_negative(cls, spend: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in spend.items() if not v >= 0}
        if bad:
            raise ValueError(f"spend limits must be >= 0 EUR; got {bad}")
        return spend

    @model_validator(mode="after")
    def _consistent(self) -> PlanningPolicy:
        clash = {
            ch: (lo, self.max_spend[ch])
            for ch, lo in self.min_spend.items()
            if ch in self.max_spend and lo > self.max_spend[ch]
        }
        if clash:
            raise ValueError(
                "min_spend exceeds max_spend for "
                + ", ".join(f"{ch!r} (min EUR {lo:,.0f} > max EUR {hi:,.0f})" for ch, (lo, hi) in clash.items())
            )
        names = [f.name for f in (*self.fairness_floors, *self.coverage_floors)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError("floor names must be unique (fairness and coverage floors); "
                             f"repeated: {', '.join(duplicates)}")
        return self


def apply_overrides(spec: S, overrides: Mapping[str, Any], *, source: str = "overrides") -> S:
    """A copy of ``spec`` with ``overrides`` applied and validated again.

    Keys are field names; a dotted key reaches into a mapping field
    (``{"min_spend.meta": 2000}``). ``spec.model_copy(update=...)`` does the same without
    validation; this helper validates and names the field when an override is invalid.

    Raises
    ------
    SpecError
        An unknown field, or a value the field does not accept.
    """
    data = spec.model_dump()
    fields = type(spec).model_fields
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if head not in fields:
            raise SpecError(
                f"{source}: {key!r} is not a field of {type(spec).__name__}; valid: {', '.join(fields)}"
            )
        if not rest:
            data[head] = value
            continue
        if not isinstance(data[head], dict):
            raise SpecError(f"{source}: {key!r}: field {head!r} is not a mapping, so it has no key {rest!r}")
        data[head] = {**data[head], rest: value}
    try:
        return type(spec).model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise SpecError(f"{source}: invalid {type(spec).__name__}: {problems}") from None
