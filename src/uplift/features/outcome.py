"""Outcome labels: did the declared funnel event happen within the attribution window?"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.specs.features import OutcomeSpec

__all__ = ["label_outcome"]


def label_outcome(keys: pd.DataFrame, enrolments: pd.DataFrame, outcome: OutcomeSpec) -> np.ndarray:
    """1 where ``outcome.event`` occurred in ``[as_of, as_of + attribution_days)`` for the key's person.

    Parameters
    ----------
    keys : DataFrame with ``person_id`` and ``as_of`` (UTC), positional index.
    enrolments : the enrolments contract (person_id, event, occurred_at).
    """
    events = enrolments.loc[enrolments["event"] == outcome.event, ["person_id", "occurred_at"]]
    left = pd.DataFrame({"row": np.arange(len(keys)), "person_id": keys["person_id"].to_numpy(),
                         # .array keeps the tz-aware dtype (to_numpy would box Timestamps)
                         "as_of": keys["as_of"].array})
    joined = left.merge(events, on="person_id", how="inner", sort=False)
    window = pd.Timedelta(days=outcome.attribution_days)
    hit = (joined["occurred_at"] >= joined["as_of"]) & (joined["occurred_at"] < joined["as_of"] + window)
    y = np.zeros(len(keys), dtype=np.int8)
    y[joined.loc[hit, "row"].to_numpy()] = 1
    return y
