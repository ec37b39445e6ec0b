"""The as-of context every feature function reads: keys, attributes, and history strictly before."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uplift.specs.features import FeatureSetSpec

__all__ = ["AsOfContext", "build_context"]


@dataclass(frozen=True)
class AsOfContext:
    """What is known about each key row at its as-of time.

    Attributes
    ----------
    keys : DataFrame, one row per (person_id, wave) with ``as_of`` (UTC timestamp); positional index 0..n-1.
    people : DataFrame, the audience attributes aligned row by row with ``keys``.
    prior_exposures : DataFrame, exposures with ``assigned_at < as_of`` of the same person; column ``row`` is the
        position of the key row they belong to.
    prior_events : DataFrame, enrolment events with ``occurred_at < as_of``; column ``row`` as above.
    spec : the feature set being computed (channels and messages universes).
    """

    keys: pd.DataFrame
    people: pd.DataFrame
    prior_exposures: pd.DataFrame = field(repr=False)
    prior_events: pd.DataFrame = field(repr=False)
    spec: FeatureSetSpec

    @property
    def n(self) -> int:
        return len(self.keys)

    def count_by_row(self, frame: pd.DataFrame) -> np.ndarray:
        """Number of rows of ``frame`` (a prior_* table or a filter of one) per key row."""
        return np.bincount(frame["row"].to_numpy(), minlength=self.n)

    def sum_by_row(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        return np.bincount(frame["row"].to_numpy(), weights=frame[column].to_numpy(float), minlength=self.n)

    def max_by_row(self, frame: pd.DataFrame, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        out = np.full(self.n, -np.inf)
        np.maximum.at(out, frame["row"].to_numpy(), values)
        out[np.isneginf(out)] = fill
        return out


def _prior(keys: pd.DataFrame, history: pd.DataFrame, time_col: str) -> pd.DataFrame:
    """Rows of ``history`` of the same person strictly before each key's as-of time."""
    if history.empty:
        return history.assign(row=pd.Series(dtype="int64"))
    left = pd.DataFrame({"row": np.arange(len(keys)), "person_id": keys["person_id"].to_numpy(),
                         # .array keeps the tz-aware dtype (to_numpy would box Timestamps)
                         "as_of": keys["as_of"].array})
    joined = left.merge(history, on="person_id", how="inner", sort=False)
    joined = joined[joined[time_col] < joined["as_of"]]
    return joined.drop(columns=["as_of"]).reset_index(drop=True)


def build_context(
    keys: pd.DataFrame,
    audience: pd.DataFrame,
    exposures: pd.DataFrame,
    enrolments: pd.DataFrame,
    spec: FeatureSetSpec,
) -> AsOfContext:
    """Join attributes and strictly-earlier history onto ``keys`` (person_id, wave, as_of)."""
    keys = keys[["person_id", "wave", "as_of"]].reset_index(drop=True)
    people = keys[["person_id"]].merge(audience, on="person_id", how="left", sort=False, validate="many_to_one")
    hist_cols = ["person_id", "wave", "arm", "message", "channel", "assigned_at", "cost_eur"]
    return AsOfContext(
        keys=keys,
        people=people,
        prior_exposures=_prior(keys, exposures[hist_cols], "assigned_at"),
        prior_events=_prior(keys, enrolments[["person_id", "event", "occurred_at"]], "occurred_at"),
        spec=spec,
    )
