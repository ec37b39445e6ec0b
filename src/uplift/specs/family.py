"""A family of simulated regions (``features/regions/family.yaml``): the range of every drawn quantity.

:func:`uplift.simulate.generate.generate_region` draws one :class:`~uplift.specs.region.RegionSpec`
from a :class:`FamilySpec` and a seed. Everything a region declares is either fixed here (messages,
channel costs, the funnel's rates, the wave design) or drawn within a declared range: the places
and their deprivation, which persona archetypes live there and how many, every message's lift per
persona (including messages that put a persona off), age and neighbourhood interactions, channel
strengths by age, sector and deprivation, base rates, wear-out, and which optional audience
attributes the programme hands over.

A range is ``[low, high]``; a float range is drawn uniformly, an integer range gives every whole
number in it the same chance.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from uplift.data.vocabulary import SECTORS
from uplift.specs import Spec
from uplift.specs.region import (
    LATER_EVENTS,
    AgeProfile,
    PersonaSpec,
    RegionHeader,
    StageSpec,
    WaveSpec,
    _check_funnel_stages,
    _check_name,
)

__all__ = [
    "Range",
    "IntRange",
    "GeographyRanges",
    "DeprivationRanges",
    "ArchetypeSpec",
    "PersonaRanges",
    "LiftRanges",
    "InteractionRanges",
    "ChannelRanges",
    "BaselineRanges",
    "AttributeDraw",
    "FamilySpec",
]


def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    if value[0] > value[1]:
        raise ValueError(f"a range is [low, high] with low <= high, got {list(value)}")
    return value


Range = Annotated[tuple[float, float], AfterValidator(_ordered)]
"""``[low, high]``, drawn uniformly."""
IntRange = Annotated[tuple[int, int], AfterValidator(_ordered)]
"""``[low, high]`` whole numbers, each equally likely."""


def _within(low: float, high: float):
    """A validator: both ends of a range lie in ``[low, high]``."""

    def check(value: tuple[float, float]) -> tuple[float, float]:
        if value[0] < low or value[1] > high:
            raise ValueError(f"expected a range within [{low}, {high}], got {list(value)}")
        return value

    return AfterValidator(check)


Positive = Annotated[Range, _within(1e-9, float("inf"))]
Unit = Annotated[Range, _within(0.0, 1.0)]
Probability = Annotated[float, Field(ge=0, le=1)]


class GeographyRanges(Spec):
    """Municipalities, their 4-digit postcode neighbourhoods, residents and deprivation."""

    municipalities: Annotated[IntRange, _within(1, 89)]
    neighbourhoods: Annotated[IntRange, _within(1, 99)]
    """Neighbourhoods per municipality."""
    residents: Annotated[IntRange, _within(1000, 10**6)]
    """Residents per neighbourhood (rounded to 1,000)."""
    deprivation: Unit
    """A municipality's typical deprivation; its neighbourhoods lie within ``deprivation_spread`` of it."""
    deprivation_spread: float = Field(ge=0, le=0.5)
    postcode_prefix: Annotated[IntRange, _within(10, 99)] = (10, 99)
    """The two leading digits of a municipality's postcodes (one prefix per municipality)."""
    names: tuple[str, ...]
    """Municipality names to draw from (without repeats)."""

    @model_validator(mode="after")
    def _enough(self) -> GeographyRanges:
        most = self.municipalities[1]
        if len(set(self.names)) < most:
            raise ValueError(f"names: {len(set(self.names))} distinct names for up to {most} municipalities")
        prefixes = self.postcode_prefix[1] - self.postcode_prefix[0] + 1
        if prefixes < most:
            raise ValueError(f"postcode_prefix: {prefixes} prefixes for up to {most} municipalities")
        return self


class DeprivationRanges(Spec):
    """How deprivation shifts attributes (:class:`~uplift.specs.region.DeprivationSpec`)."""

    income_downshift: Unit
    migration_lift: Unit


class ArchetypeSpec(Spec):
    """A persona archetype: its attribute profile (as :class:`~uplift.specs.region.PersonaSpec`), the
    message that speaks to its barrier, and its funnel factors (event -> factor, 1 where not given)."""

    description: str = ""
    natural_message: str | None = None
    age: AgeProfile
    gender: dict[str, float]
    employment: dict[str, float]
    sector: dict[str, float]
    education: dict[str, float]
    income_band: dict[str, float]
    migration_background: float = Field(ge=0, le=1)
    has_children: float = Field(ge=0, le=1)
    funnel: dict[str, float] = {}

    @model_validator(mode="after")
    def _valid_profile(self) -> ArchetypeSpec:
        self.as_persona(share=1.0, deprivation_tilt=0.0, baseline=1.0)  # the profile's own checks
        unknown = sorted(set(self.funnel) - set(LATER_EVENTS))
        if unknown:
            raise ValueError(f"funnel: {unknown} are not funnel events after registration; valid: {list(LATER_EVENTS)}")
        bad = {k: f for k, f in self.funnel.items() if f <= 0}
        if bad:
            raise ValueError(f"funnel: factors must be positive, got {bad}")
        return self

    def as_persona(self, *, share: float, deprivation_tilt: float, baseline: float) -> PersonaSpec:
        """The persona of a region with this profile and the drawn share, tilt and baseline."""
        profile = self.model_dump(exclude={"natural_message", "funnel"})
        return PersonaSpec(share=share, deprivation_tilt=deprivation_tilt, baseline=baseline, **profile)


class PersonaRanges(Spec):
    """Which archetypes a region has, how common and how keen to register without a message."""

    count: Annotated[IntRange, _within(1, 1000)]
    share: Annotated[Range, _within(1e-9, 1.0)]
    deprivation_tilt: Range
    baseline: Positive
    other_baseline: Positive
    natural_best: Probability
    """Chance that an archetype's best message is its ``natural_message``; else any other message."""
    archetypes: dict[str, ArchetypeSpec] = Field(min_length=1)
    other: ArchetypeSpec
    """Everybody who is none of the archetypes (the region's ``other`` persona)."""

    @model_validator(mode="after")
    def _consistent(self) -> PersonaRanges:
        if self.count[1] > len(self.archetypes):
            raise ValueError(f"count: up to {self.count[1]} archetypes drawn from a pool of {len(self.archetypes)}")
        if self.count[1] * self.share[1] >= 1:
            raise ValueError(f"count x share: up to {self.count[1]} x {self.share[1]} leaves nothing for 'other'")
        if "other" in self.archetypes:
            raise ValueError("archetypes: 'other' is the persona of everybody else; declare it under personas.other")
        return self


class LiftRanges(Spec):
    """Each archetype's relative lift per message (see the module docstring of :mod:`uplift.specs.region`)."""

    best: Range
    seconds: Annotated[IntRange, _within(0, 1000)]
    second: Range
    put_off_share: Probability
    put_off: Annotated[Range, _within(-1.0, 0.0)]
    cold: Range
    other: Range

    @model_validator(mode="after")
    def _best_is_best(self) -> LiftRanges:
        top = max(self.second[1], self.cold[1], self.other[1])
        if self.best[0] <= top:
            raise ValueError(f"best: its low end {self.best[0]} must exceed every other lift's high end ({top})")
        return self


class InteractionRanges(Spec):
    """Message effects beyond the persona: by age, and in poorer neighbourhoods (optionally by age too)."""

    age: Annotated[IntRange, _within(0, 100)]
    age_add: Range
    young: Annotated[IntRange, _within(18, 67)]
    """A young group is ``age <= young``."""
    old: Annotated[IntRange, _within(18, 67)]
    """An old group is ``age >= old``."""
    neighbourhood: Annotated[IntRange, _within(0, 100)]
    neighbourhood_from: Unit
    neighbourhood_add: Range
    neighbourhood_age_share: Probability


class ChannelRanges(Spec):
    """A channel: its fixed cost per contact and the drawn strength with which it carries a message."""

    description: str = ""
    cost_eur: float = Field(ge=0)
    multiplier: Positive
    young: Positive
    old: Positive
    sectors: Annotated[IntRange, _within(0, len(SECTORS) - 1)]
    """How many sectors (never ``none``) get a factor of their own."""
    sector_factor: Positive
    deprivation: Positive
    deprivation_from: Unit


class BaselineRanges(Spec):
    """Registration within the window without a message, and its factors for groups."""

    registration: Annotated[Range, _within(1e-9, 0.5)]
    unemployed: Positive
    higher_education: Positive
    over_55: Positive


class AttributeDraw(Spec):
    """Relative weights of the audiences a programme hands over: ``all`` optional attributes, ``some`` (each
    kept with chance 0.5) or ``none`` (id, age, gender, municipality and neighbourhood only)."""

    all: float = Field(1.0, ge=0)
    some: float = Field(0.0, ge=0)
    none: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _positive_total(self) -> AttributeDraw:
        if self.all + self.some + self.none <= 0:
            raise ValueError("expected a positive weight for at least one of all, some, none")
        return self


class FamilySpec(RegionHeader):
    """The family of regions one seed draws from (``features/regions/family.yaml``); each region it draws has the
    family's attribution window and registration delay."""

    geography: GeographyRanges
    deprivation: DeprivationRanges
    personas: PersonaRanges
    messages: dict[str, str] = Field(min_length=1)
    """Message name -> description; every region has all of them."""
    lifts: LiftRanges
    interactions: InteractionRanges
    channels: dict[str, ChannelRanges] = Field(min_length=1)
    baseline: BaselineRanges
    wear_out: Unit
    min_relative_lift: float = Field(-0.9, ge=-1, le=0)
    max_probability: float = Field(0.9, gt=0, le=1)
    given_attributes: AttributeDraw = AttributeDraw()
    funnel: dict[str, StageSpec]
    """Rates and delays of the later funnel steps; each persona's factors come from its archetype."""
    waves: WaveSpec

    @model_validator(mode="after")
    def _consistent(self) -> FamilySpec:
        for name in self.messages:
            _check_name("message", name)
        for name in self.channels:
            _check_name("channel", name)
        natural = {a: p.natural_message for a, p in self.personas.archetypes.items() if p.natural_message is not None}
        unknown = {a: m for a, m in natural.items() if m not in self.messages}
        if unknown:
            raise ValueError(f"personas.archetypes: natural_message {unknown} not among the "
                             f"messages {list(self.messages)}")
        most = self.lifts.seconds[1]
        if most > len(self.messages) - 1:
            raise ValueError(f"lifts.seconds: up to {most} other messages, but there are {len(self.messages) - 1}")
        _check_funnel_stages(self.funnel)
        if any(s.persona_factor for s in self.funnel.values()):
            raise ValueError("funnel: give persona factors per archetype (personas.archetypes.<name>.funnel)")
        return self
