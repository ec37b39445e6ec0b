"""The controlled vocabulary of the data contracts: funnel events, attribute levels, arm names."""

from __future__ import annotations

__all__ = [
    "FUNNEL_EVENTS",
    "GENDERS",
    "EMPLOYMENT",
    "SECTORS",
    "EDUCATION",
    "INCOME_BANDS",
    "REQUIRED_ATTRIBUTES",
    "OPTIONAL_ATTRIBUTES",
    "HOLDOUT",
    "NO_MESSAGE",
    "arm_name",
    "split_arm",
    "funnel_rank",
]

FUNNEL_EVENTS: tuple[str, ...] = (
    "registration",
    "advice_conversation",
    "application",
    "granted",
    "started",
    "completed",
)
"""Funnel events in order; a later event implies the earlier ones were reached."""

GENDERS: tuple[str, ...] = ("female", "male", "other")
EMPLOYMENT: tuple[str, ...] = (
    "employed_permanent",
    "employed_flexible",
    "self_employed",
    "unemployed",
    "student",
)
SECTORS: tuple[str, ...] = (
    "construction",
    "retail",
    "hospitality",
    "administration",
    "security",
    "cleaning",
    "education",
    "care",
    "logistics",
    "ict",
    "other",
    "none",
)
EDUCATION: tuple[str, ...] = ("no_diploma", "secondary", "vocational", "upper_vocational", "higher")
INCOME_BANDS: tuple[str, ...] = ("minimum", "low", "middle", "high")

REQUIRED_ATTRIBUTES: tuple[str, ...] = ("person_id", "age", "gender", "municipality", "neighbourhood")
"""Audience columns every programme hands over: the pseudonymous id, age, gender and place."""
OPTIONAL_ATTRIBUTES: tuple[str, ...] = (
    "employment",
    "sector",
    "education",
    "income_band",
    "migration_background",
    "has_children",
)
"""Standard audience columns a programme may hand over; features and persona rules that need an absent one are
switched off."""

HOLDOUT = "holdout"
"""Default name of the control arm: randomised to receive no message."""
NO_MESSAGE = "none"
"""``message`` and ``channel`` value of holdout rows."""


def arm_name(message: str, channel: str) -> str:
    """Name of the arm that shows ``message`` on ``channel``: ``"message@channel"``."""
    return f"{message}@{channel}"


def split_arm(arm: str) -> tuple[str, str]:
    """Inverse of :func:`arm_name`; the holdout arm splits into ``("none", "none")``."""
    if arm == HOLDOUT:
        return NO_MESSAGE, NO_MESSAGE
    message, sep, channel = arm.partition("@")
    if not sep or not message or not channel:
        raise ValueError(f"arm {arm!r} is not of the form 'message@channel' nor {HOLDOUT!r}")
    return message, channel


def funnel_rank(event: str) -> int:
    """1-based position of ``event`` in the funnel (registration = 1)."""
    try:
        return FUNNEL_EVENTS.index(event) + 1
    except ValueError:
        raise ValueError(f"{event!r} is not a funnel event; valid: {', '.join(FUNNEL_EVENTS)}") from None
