"""Feature-set declarations (``features/*.yaml``): which features, which outcome, which window."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from uplift.data.vocabulary import FUNNEL_EVENTS, HOLDOUT, OPTIONAL_ATTRIBUTES, REQUIRED_ATTRIBUTES
from uplift.specs import Spec

__all__ = ["OutcomeSpec", "AttributeSpec", "FeatureSetSpec"]


class OutcomeSpec(Spec):
    """The outcome: did ``event`` happen within ``attribution_days`` after assignment?"""

    event: str = "registration"
    attribution_days: int = Field(28, gt=0, le=366)

    @field_validator("event")
    @classmethod
    def _known_event(cls, v: str) -> str:
        if v not in FUNNEL_EVENTS:
            raise ValueError(f"{v!r} is not a funnel event; valid: {', '.join(FUNNEL_EVENTS)}")
        return v

    def describe(self) -> str:
        return f"{self.event} within {self.attribution_days} days of assignment"


class AttributeSpec(Spec):
    """An audience attribute of the programme's own (language, benefit status, ...): its kind and values.

    ``categorical`` values must be one of ``levels``; ``boolean`` values true / false; ``numeric``
    values lie within ``min`` and ``max`` where given. The audience contract checks the column when
    it is there; ``required`` makes its absence an error.
    """

    kind: Literal["categorical", "boolean", "numeric"]
    levels: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    required: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _fits_kind(self) -> AttributeSpec:
        if self.kind == "categorical" and not self.levels:
            raise ValueError("a categorical attribute needs its levels")
        if self.kind != "categorical" and self.levels:
            raise ValueError(f"levels are for categorical attributes, not {self.kind}")
        if self.kind != "numeric" and (self.min is not None or self.max is not None):
            raise ValueError(f"min and max are for numeric attributes, not {self.kind}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if len(set(self.levels)) != len(self.levels):
            raise ValueError("levels listed more than once: "
                             f"{sorted({v for v in self.levels if self.levels.count(v) > 1})}")
        return self


class FeatureSetSpec(Spec):
    """A versioned list of features computed as of each wave's assignment time.

    ``channels`` and ``messages`` fix the universe of the per-channel and per-message
    history features, so the same columns exist at training and at scoring time.
    ``attributes`` declares audience attributes of the programme's own; a feature of the same name
    is the attribute itself (categorical, or 0/1 for a boolean, or the number).
    """

    name: str
    version: int = 1
    outcome: OutcomeSpec = OutcomeSpec()
    control_arm: str = HOLDOUT
    channels: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    features: tuple[str, ...] = Field(min_length=1)
    attributes: dict[str, AttributeSpec] = {}

    @field_validator("attributes")
    @classmethod
    def _own_names(cls, v: dict[str, AttributeSpec]) -> dict[str, AttributeSpec]:
        standard = sorted(set(v) & set(REQUIRED_ATTRIBUTES + OPTIONAL_ATTRIBUTES))
        if standard:
            raise ValueError(f"{standard} are standard audience attributes; declare only attributes of your own")
        bad = [name for name in v if not name.isidentifier() or "__" in name]
        if bad:
            raise ValueError(f"attribute names {bad} must be identifiers without '__'")
        return v

    @field_validator("features")
    @classmethod
    def _unique(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        dupes = sorted({f for f in v if v.count(f) > 1})
        if dupes:
            raise ValueError(f"features listed twice: {dupes}")
        return v
