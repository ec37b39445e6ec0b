"""Feature-set declarations (``features/*.yaml``): which features, which outcome, which window."""

from __future__ import annotations

from pydantic import Field, field_validator

from uplift.specs import Spec
from uplift.vocabulary import FUNNEL_EVENTS, HOLDOUT

__all__ = ["OutcomeSpec", "FeatureSetSpec"]


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


class FeatureSetSpec(Spec):
    """A versioned list of features computed as of each wave's assignment time.

    ``channels`` and ``messages`` fix the universe of the per-channel and per-message
    history features, so the same columns exist at training and at scoring time.
    """

    name: str
    version: int = 1
    outcome: OutcomeSpec = OutcomeSpec()
    control_arm: str = HOLDOUT
    channels: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    features: tuple[str, ...] = Field(min_length=1)

    @field_validator("features")
    @classmethod
    def _unique(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        dupes = sorted({f for f in v if v.count(f) > 1})
        if dupes:
            raise ValueError(f"features listed twice: {dupes}")
        return v
