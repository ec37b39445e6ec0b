"""How long the plan store keeps plans: approved plans always; unapproved ones up to an age and a count."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PlanRetention"]


class PlanRetention(BaseModel):
    """The plan store's retention rule (``plan_retention`` in ``serve/service.yaml``).

    An unapproved plan is deleted once it is older than ``unapproved_days`` or when more than
    ``unapproved_max`` newer unapproved plans exist; ``null`` turns either limit off. Approved plans
    are never deleted. The rule runs every ``every_seconds`` on a background thread.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    unapproved_days: float | None = Field(30.0, gt=0, description="age after which an unapproved plan is deleted")
    unapproved_max: int | None = Field(5_000, ge=0, description="unapproved plans kept at most, newest first")
    every_seconds: float = Field(300.0, gt=0, le=86_400, description="how often the rule runs")

    @property
    def enabled(self) -> bool:
        """False when both limits are off (nothing is ever deleted)."""
        return self.unapproved_days is not None or self.unapproved_max is not None

    def cutoff(self, now: datetime) -> datetime | None:
        """Unapproved plans created before this time are deleted (None: no age limit)."""
        return None if self.unapproved_days is None else now - timedelta(days=self.unapproved_days)
