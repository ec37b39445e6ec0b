"""Region declarations (``features/regions/*.yaml``): the simulated campaign world and its true effects.

A :class:`RegionSpec` declares everything :func:`uplift.simulate.simulate` needs: the
municipalities and their 4-digit postcode neighbourhoods, the latent personas and the
attribute profile of each, the messages (with their true lift per persona), the channels
(cost per contact and a person-dependent effectiveness), the funnel after registration,
and the wave design (holdout share, arm weights per wave, attribution window, start date).

Effects are declared on a relative scale. A person's registration probability within the
attribution window of a wave is::

    p(holdout)        = baseline.registration * persona.baseline * prod(matching baseline modifiers)
    p(message@channel) = p(holdout) * (1 + max(L, min_relative_lift))
    L = (message.lift[persona] + sum(matching message adjustments))
        * channel.multiplier * prod(matching channel modifiers)
        * wear_out ** (times the person was shown the message in earlier waves)

capped at ``max_probability``.

Every person has every attribute in the simulation (the effects may depend on them); the audience
file shows the required ones and only the optional ones listed in ``given_attributes``, as a
programme that hands over only age, gender and postcode would.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from uplift.data.vocabulary import (
    EDUCATION,
    EMPLOYMENT,
    FUNNEL_EVENTS,
    GENDERS,
    HOLDOUT,
    INCOME_BANDS,
    NO_MESSAGE,
    OPTIONAL_ATTRIBUTES,
    REQUIRED_ATTRIBUTES,
    SECTORS,
)
from uplift.errors import SpecError
from uplift.specs import Spec

__all__ = [
    "Condition",
    "Factor",
    "Adjustment",
    "Neighbourhood",
    "Municipality",
    "AgeProfile",
    "PersonaSpec",
    "DeprivationSpec",
    "BaselineSpec",
    "MessageSpec",
    "ChannelSpec",
    "DelaySpec",
    "StageSpec",
    "WaveSpec",
    "RegionHeader",
    "RegionSpec",
    "OTHER_PERSONA",
    "LATER_EVENTS",
]

OTHER_PERSONA = "other"
"""The persona of everybody who matches none of the declared personas."""

LATER_EVENTS: tuple[str, ...] = FUNNEL_EVENTS[1:]
"""The funnel events after registration; each needs a stage in :attr:`RegionSpec.funnel`."""

_LEVELS: dict[str, tuple[str, ...]] = {
    "gender": GENDERS,
    "employment": EMPLOYMENT,
    "sector": SECTORS,
    "education": EDUCATION,
    "income_band": INCOME_BANDS,
}
_JOBLESS = ("unemployed", "student")


def _check_levels(field: str, values: tuple[str, ...] | dict[str, float] | None) -> None:
    if values is None:
        return
    valid = _LEVELS[field]
    unknown = [v for v in values if v not in valid]
    if unknown:
        raise ValueError(f"{field}: {unknown} not valid; valid: {', '.join(valid)}")


def _check_name(kind: str, name: str) -> None:
    if not name or "@" in name or name in (NO_MESSAGE, HOLDOUT) or name != name.strip():
        raise ValueError(
            f"{kind} name {name!r} is not allowed: it must be non-empty, contain no '@' and not be "
            f"{NO_MESSAGE!r} or {HOLDOUT!r}"
        )


class Condition(Spec):
    """Who a modifier applies to: every given field must match (an empty condition matches everyone).

    List fields match if the person's level is one of the listed levels; ``persona`` refers to the
    latent persona (only the simulator knows it); ``deprivation_min`` compares with the
    person's neighbourhood deprivation (0 = affluent, 1 = poorest).
    """

    age_min: int | None = Field(None, ge=18, le=67)
    age_max: int | None = Field(None, ge=18, le=67)
    gender: tuple[str, ...] | None = None
    employment: tuple[str, ...] | None = None
    sector: tuple[str, ...] | None = None
    education: tuple[str, ...] | None = None
    income_band: tuple[str, ...] | None = None
    migration_background: bool | None = None
    has_children: bool | None = None
    deprivation_min: float | None = Field(None, ge=0, le=1)
    persona: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _valid_levels(self) -> Condition:
        for name in _LEVELS:
            _check_levels(name, getattr(self, name))
        if self.age_min is not None and self.age_max is not None and self.age_min > self.age_max:
            raise ValueError(f"age_min {self.age_min} is above age_max {self.age_max}")
        return self


class Factor(Spec):
    """Multiply a rate by ``factor`` for the people matching ``when``."""

    when: Condition = Condition()
    factor: float = Field(gt=0)


class Adjustment(Spec):
    """Add ``add`` to a message's relative lift for the people matching ``when`` (negative: puts them off)."""

    when: Condition = Condition()
    add: float


class Neighbourhood(Spec):
    """A 4-digit postcode area: how many residents, how deprived (0 = affluent, 1 = poorest)."""

    postcode: str = Field(pattern=r"^\d{4}$")
    residents: int = Field(gt=0)
    deprivation: float = Field(ge=0, le=1)
    name: str = ""


class Municipality(Spec):
    """A municipality and its neighbourhoods."""

    name: str = Field(min_length=1)
    neighbourhoods: tuple[Neighbourhood, ...] = Field(min_length=1)


class AgeProfile(Spec):
    """A triangular age distribution (years, inclusive bounds within 18-67)."""

    min: int = Field(ge=18, le=67)
    mode: float = Field(ge=18, le=67)
    max: int = Field(ge=18, le=67)

    @model_validator(mode="after")
    def _ordered(self) -> AgeProfile:
        if not (self.min <= self.mode <= self.max) or self.min == self.max:
            raise ValueError(f"age needs min <= mode <= max and min < max; got {self.min}, {self.mode}, {self.max}")
        return self


def _distribution(field: str, weights: dict[str, float]) -> dict[str, float]:
    _check_levels(field, weights)
    if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"{field}: expected non-negative weights per level with a positive total, got {weights}")
    return weights


class PersonaSpec(Spec):
    """A latent persona: how common it is and how its members' attributes are distributed.

    ``share`` is relative (all shares are normalised); ``deprivation_tilt`` multiplies the
    share by ``exp(tilt * deprivation)`` of the neighbourhood, so a positive tilt makes the
    persona more common in poorer neighbourhoods. Level weights are relative too. People
    who are ``unemployed`` or ``student`` get sector ``"none"``; ``sector`` must not list it.
    ``baseline`` multiplies the base registration probability for members.
    """

    description: str = ""
    share: float = Field(gt=0)
    deprivation_tilt: float = 0.0
    baseline: float = Field(1.0, gt=0)
    age: AgeProfile
    gender: dict[str, float]
    employment: dict[str, float]
    sector: dict[str, float]
    education: dict[str, float]
    income_band: dict[str, float]
    migration_background: float = Field(ge=0, le=1)
    has_children: float = Field(ge=0, le=1)

    @field_validator("gender", "employment", "sector", "education", "income_band")
    @classmethod
    def _weights(cls, v: dict[str, float], info) -> dict[str, float]:
        return _distribution(info.field_name, v)

    @model_validator(mode="after")
    def _sector_for_workers(self) -> PersonaSpec:
        if self.sector.get("none", 0) > 0:
            raise ValueError("sector: 'none' is given automatically to the unemployed and students; do not list it")
        working = sum(w for k, w in self.employment.items() if k not in _JOBLESS)
        if working > 0 and sum(self.sector.values()) <= 0:
            raise ValueError("sector: expected a positive weight for at least one sector")
        return self


class DeprivationSpec(Spec):
    """How a neighbourhood's deprivation d (0-1) shifts attributes beyond the persona profile.

    With probability ``income_downshift * d`` a resident's income band moves one band down;
    the probability of a migration background becomes ``1 - (1 - p) * (1 - migration_lift * d)``.
    """

    income_downshift: float = Field(0.0, ge=0, le=1)
    migration_lift: float = Field(0.0, ge=0, le=1)


class BaselineSpec(Spec):
    """Registration without any message (the holdout arm), per wave, within the attribution window."""

    registration: float = Field(gt=0, lt=1)
    modifiers: tuple[Factor, ...] = ()


class MessageSpec(Spec):
    """A message (creative): its true relative lift per persona, plus adjustments for segments.

    A persona missing from ``lift`` gets lift 0 (the message leaves it cold).
    """

    description: str = ""
    lift: dict[str, float] = {}
    adjustments: tuple[Adjustment, ...] = ()


class ChannelSpec(Spec):
    """A channel: cost per contact (EUR) and how strongly it carries a message, per person."""

    description: str = ""
    cost_eur: float = Field(ge=0)
    multiplier: float = Field(1.0, gt=0)
    modifiers: tuple[Factor, ...] = ()


class DelaySpec(Spec):
    """A gamma-distributed delay in days (``mean`` and ``shape``)."""

    mean: float = Field(gt=0)
    shape: float = Field(2.0, gt=0)


class StageSpec(Spec):
    """One funnel step after registration: probability of reaching it given the previous step.

    ``persona_factor`` multiplies the rate for members of a persona (capped at 0.99); the
    rate never depends on the arm. ``delay_days`` is the time since the previous step.
    """

    rate: float = Field(gt=0, le=1)
    persona_factor: dict[str, float] = {}
    delay_days: DelaySpec

    @field_validator("persona_factor")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: f for k, f in v.items() if f <= 0}
        if bad:
            raise ValueError(f"persona_factor must be positive, got {bad}")
        return v


class WaveSpec(Spec):
    """The design of the campaign waves.

    Wave k is assigned at ``start + (k - 1) * gap_days`` plus a uniform per-person jitter in
    ``[0, jitter_hours)``. In every wave each eligible person (not registered before) is reached
    with probability ``reach`` and then randomised: holdout with ``holdout_share``, each
    treatment arm with ``(1 - holdout_share) * w / sum(w)``. ``arm_weights[k]`` tilts wave k:
    keys are messages, channels or arms, an arm's weight is the product of the factors of its
    message, its channel and itself (default 1; waves not listed are uniform).
    """

    count: int = Field(4, ge=1)
    start: dt.date
    gap_days: int = Field(42, gt=0)
    jitter_hours: float = Field(48.0, ge=0)
    holdout_share: float = Field(0.2, gt=0, lt=1)
    reach: float = Field(1.0, gt=0, le=1)
    arm_weights: dict[int, dict[str, float]] = {}

    @field_validator("arm_weights")
    @classmethod
    def _weights(cls, v: dict[int, dict[str, float]]) -> dict[int, dict[str, float]]:
        for wave, weights in v.items():
            if wave < 1:
                raise ValueError(f"arm_weights: wave {wave} is not a wave number (1, 2, ...)")
            bad = {k: w for k, w in weights.items() if w < 0}
            if bad:
                raise ValueError(f"arm_weights[{wave}]: weights must be >= 0, got {bad}")
        return v


def _check_funnel_stages(funnel: dict[str, StageSpec]) -> None:
    if tuple(funnel) != LATER_EVENTS:
        raise ValueError(f"funnel: expected the stages {list(LATER_EVENTS)} in this order, got {list(funnel)}")


class RegionHeader(Spec):
    """What a region and a family of regions (:class:`uplift.specs.family.FamilySpec`) both open with: a name, a
    description, and how a registration is counted (the attribution window after a contact and the mean delay
    from contact to registration)."""

    name: str = Field(min_length=1)
    description: str = ""
    attribution_days: int = Field(28, gt=0, le=366)
    registration_delay_days: float = Field(6.0, gt=0)


class RegionSpec(RegionHeader):
    """A simulated labour-market region; see the module docstring for how effects combine."""

    municipalities: tuple[Municipality, ...] = Field(min_length=1)
    deprivation: DeprivationSpec = DeprivationSpec()
    personas: dict[str, PersonaSpec]
    baseline: BaselineSpec
    messages: dict[str, MessageSpec] = Field(min_length=1)
    channels: dict[str, ChannelSpec] = Field(min_length=1)
    wear_out: float = Field(0.6, ge=0, le=1)
    min_relative_lift: float = Field(-0.9, ge=-1, le=0)
    max_probability: float = Field(0.9, gt=0, le=1)
    funnel: dict[str, StageSpec]
    waves: WaveSpec
    given_attributes: tuple[str, ...] = OPTIONAL_ATTRIBUTES
    """The optional audience attributes the programme hands over (the audience file's other columns are
    always there); ``[]`` gives an audience of id, age, gender, municipality and neighbourhood only."""

    @field_validator("given_attributes")
    @classmethod
    def _optional_attributes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [a for a in v if a not in OPTIONAL_ATTRIBUTES]
        if unknown:
            raise ValueError(f"{unknown} are not optional audience attributes; valid: {', '.join(OPTIONAL_ATTRIBUTES)}")
        if len(set(v)) != len(v):
            raise ValueError(f"attributes listed more than once: {sorted({a for a in v if v.count(a) > 1})}")
        return v

    # -- validation --------------------------------------------------------------------
    @model_validator(mode="after")
    def _consistent(self) -> RegionSpec:
        postcodes = [n.postcode for m in self.municipalities for n in m.neighbourhoods]
        dupes = sorted({p for p in postcodes if postcodes.count(p) > 1})
        if dupes:
            raise ValueError(f"municipalities: postcode(s) {dupes} listed more than once")
        names = [m.name for m in self.municipalities]
        if len(set(names)) != len(names):
            raise ValueError(f"municipalities: names must be unique, got {names}")
        if OTHER_PERSONA not in self.personas:
            raise ValueError(f"personas: expected a persona {OTHER_PERSONA!r} for people who match none")
        for name in self.messages:
            _check_name("message", name)
        for name in self.channels:
            _check_name("channel", name)
        overlap = set(self.messages) & set(self.channels)
        if overlap:
            raise ValueError(f"messages and channels share the name(s) {sorted(overlap)}")
        personas = set(self.personas)
        for message, spec in self.messages.items():
            unknown = sorted(set(spec.lift) - personas)
            if unknown:
                raise ValueError(f"messages.{message}.lift: unknown persona(s) {unknown}; valid: {sorted(personas)}")
        _check_funnel_stages(self.funnel)
        for event, stage in self.funnel.items():
            unknown = sorted(set(stage.persona_factor) - personas)
            if unknown:
                raise ValueError(f"funnel.{event}.persona_factor: unknown persona(s) {unknown}")
        for condition, where in self._conditions():
            if condition.persona is not None and not set(condition.persona) <= personas:
                raise ValueError(f"{where}: unknown persona(s) {sorted(set(condition.persona) - personas)}")
        arms = set(self.arm_names(include_control=False))
        names_ok = set(self.messages) | set(self.channels) | arms
        for wave, weights in self.waves.arm_weights.items():
            unknown = sorted(set(weights) - names_ok)
            if unknown:
                raise ValueError(
                    f"waves.arm_weights[{wave}]: {unknown} are neither messages, channels nor arms of this region"
                )
            if not any(self._arm_weight(a, wave) > 0 for a in arms):
                raise ValueError(f"waves.arm_weights[{wave}]: every treatment arm has weight 0")
        if self.waves.jitter_hours / 24 + self.attribution_days > self.waves.gap_days:
            raise ValueError(
                f"waves.gap_days ({self.waves.gap_days}) must be at least attribution_days ({self.attribution_days}) "
                f"plus the jitter ({self.waves.jitter_hours} h), so a wave's window ends before the next wave starts"
            )
        return self

    def _conditions(self):
        for i, f in enumerate(self.baseline.modifiers):
            yield f.when, f"baseline.modifiers[{i}]"
        for m, spec in self.messages.items():
            for i, a in enumerate(spec.adjustments):
                yield a.when, f"messages.{m}.adjustments[{i}]"
        for c, spec in self.channels.items():
            for i, f in enumerate(spec.modifiers):
                yield f.when, f"channels.{c}.modifiers[{i}]"

    # -- derived -----------------------------------------------------------------------
    def audience_columns(self) -> tuple[str, ...]:
        """The columns of the simulated audience file: the required ones, then the given optional ones."""
        return REQUIRED_ATTRIBUTES + tuple(a for a in OPTIONAL_ATTRIBUTES if a in self.given_attributes)

    def arm_names(self, *, include_control: bool = True) -> tuple[str, ...]:
        """Arms in canonical order: the control first, then every message x channel (message-major)."""
        treated = tuple(f"{m}@{c}" for m in self.messages for c in self.channels)
        return ((HOLDOUT,) + treated) if include_control else treated

    def _arm_weight(self, arm: str, wave: int) -> float:
        weights = self.waves.arm_weights.get(wave, {})
        message, _, channel = arm.partition("@")
        return weights.get(message, 1.0) * weights.get(channel, 1.0) * weights.get(arm, 1.0)

    def wave_probabilities(self, wave: int) -> dict[str, float]:
        """Probability of each arm (control first) for everyone randomised in ``wave``; sums to 1."""
        treated = self.arm_names(include_control=False)
        weights = [self._arm_weight(a, wave) for a in treated]
        total = sum(weights)
        share = 1.0 - self.waves.holdout_share
        probs = {HOLDOUT: self.waves.holdout_share}
        probs.update({a: share * w / total for a, w in zip(treated, weights, strict=True)})
        return probs

    # -- building variants -------------------------------------------------------------
    def updated(self, **changes: Any) -> RegionSpec:
        """A validated copy with top-level fields replaced (unlike ``model_copy(update=...)``, which skips checks).

        Raises
        ------
        SpecError
            If the result is not a valid region.
        """
        raw = self.model_dump(warnings=False)
        raw.update({k: _plain(v) for k, v in changes.items()})
        return _validated(raw, f"region {self.name!r}")

    def subset(self, *, messages: list[str] | None = None, channels: list[str] | None = None) -> RegionSpec:
        """A smaller world with only the given messages and/or channels (wave weights pruned to match).

        Raises
        ------
        SpecError
            If a requested message or channel is not declared.
        """
        keep_m = list(self.messages) if messages is None else list(messages)
        keep_c = list(self.channels) if channels is None else list(channels)
        for kind, keep, declared in (("message", keep_m, self.messages), ("channel", keep_c, self.channels)):
            unknown = [k for k in keep if k not in declared]
            if unknown:
                raise SpecError(f"region {self.name!r}: unknown {kind}(s) {unknown}; valid: {', '.join(declared)}")
        arms = {f"{m}@{c}" for m in keep_m for c in keep_c}
        names = set(keep_m) | set(keep_c) | arms
        weights = {
            wave: {k: w for k, w in ws.items() if k in names} for wave, ws in self.waves.arm_weights.items()
        }
        waves = self.waves.model_dump()
        waves["arm_weights"] = weights
        raw = self.model_dump(warnings=False)
        raw.update(
            messages={m: raw["messages"][m] for m in keep_m},
            channels={c: raw["channels"][c] for c in keep_c},
            waves=waves,
        )
        return _validated(raw, f"region {self.name!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, Spec):
        return value.model_dump()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _validated(raw: dict, where: str) -> RegionSpec:
    try:
        return RegionSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise SpecError(f"{where}: invalid RegionSpec: {problems}") from None
