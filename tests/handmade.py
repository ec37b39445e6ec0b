"""A tiny hand-written campaign (3 people, 2 waves) whose features and outcomes are worked out by hand."""

from __future__ import annotations

import pandas as pd

from uplift.specs.features import FeatureSetSpec, OutcomeSpec

T1 = pd.Timestamp("2026-01-05 09:00", tz="UTC")
T2 = pd.Timestamp("2026-02-16 09:00", tz="UTC")

SPEC = FeatureSetSpec(
    name="handmade",
    outcome=OutcomeSpec(event="registration", attribution_days=28),
    channels=("meta", "flyer"),
    messages=("a", "b"),
    features=(
        "age", "age_band", "gender", "migration_background",
        "prior_waves", "prior_contacts", "prior_contacts_by_channel", "prior_contacts_by_message",
        "days_since_last_contact", "prior_spend_eur", "funnel_stage", "days_since_last_event",
    ),
)


def audience() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_id": ["p1", "p2", "p3"],
            "age": [23, 45, 58],
            "gender": ["female", "male", "female"],
            "municipality": ["Den Haag", "Delft", "Den Haag"],
            "neighbourhood": ["2521", "2611", "2525"],
            "employment": ["employed_flexible", "employed_permanent", "self_employed"],
            "sector": ["hospitality", "construction", "cleaning"],
            "education": ["no_diploma", "vocational", "secondary"],
            "income_band": ["minimum", "middle", "low"],
            "migration_background": [True, False, True],
            "has_children": [False, True, True],
        }
    )


def exposures() -> pd.DataFrame:
    # wave 1: p1 a@meta, p2 holdout, p3 b@flyer; wave 2: p1 b@meta, p2 a@flyer, p3 a@meta
    rows = [
        ("p1", 1, "a@meta", "a", "meta", T1, 0.4, 0.6),
        ("p2", 1, "holdout", "none", "none", T1, 0.2, 0.0),
        ("p3", 1, "b@flyer", "b", "flyer", T1, 0.4, 0.4),
        ("p1", 2, "b@meta", "b", "meta", T2, 0.4, 0.6),
        ("p2", 2, "a@flyer", "a", "flyer", T2, 0.3, 0.4),
        ("p3", 2, "a@meta", "a", "meta", T2, 0.3, 0.6),
    ]
    return pd.DataFrame(rows, columns=["person_id", "wave", "arm", "message", "channel", "assigned_at",
                                       "assignment_probability", "cost_eur"])


def enrolments() -> pd.DataFrame:
    rows = [
        ("p1", "registration", T1 + pd.Timedelta(days=3)),        # outcome of wave 1 for p1
        ("p1", "advice_conversation", T1 + pd.Timedelta(days=10)),
        ("p3", "registration", T1 + pd.Timedelta(days=30)),       # after the 28-day window of wave 1
        ("p2", "registration", T2 + pd.Timedelta(days=27)),       # inside the window of wave 2
    ]
    return pd.DataFrame(rows, columns=["person_id", "event", "occurred_at"])
