"""Censored attribution windows: a row whose window ``[assigned_at, assigned_at + days)`` ends after the
last recorded time of the data cannot say the event did not happen, so it is left out of that event's
training (and counted), never labelled 0.

A censored row is left out whether or not its event already happened: keeping the early converters and
dropping the rest would bias the event's rate upwards. The assignment time does not depend on the arm
(waves are randomised within), so leaving rows out by it keeps the arms comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from uplift.data.trainingtable import TrainingTable
from uplift.errors import DataError

__all__ = ["CensoredRows", "last_recorded", "window_observed", "without_censored"]


@dataclass(frozen=True)
class CensoredRows:
    """An event's training rows with their windows observed to the end, and what was left out."""

    table: TrainingTable
    censored: int
    """Rows left out: their window reaches past ``observed_until``."""
    observed_until: pd.Timestamp
    attribution_days: int

    def describe(self) -> str:
        return (f"{self.censored:,} row(s) left out: their {self.attribution_days}-day window ends after the "
                f"last recorded time {self.observed_until:%Y-%m-%d %H:%M} UTC")


def last_recorded(*times: pd.Series) -> pd.Timestamp:
    """The last recorded time over the given timestamp columns (UTC): where the data end."""
    stamps = [pd.to_datetime(t, utc=True).max() for t in times if len(t)]
    stamps = [s for s in stamps if pd.notna(s)]
    if not stamps:
        raise DataError("no recorded time in the data: cannot tell which attribution windows are complete")
    return max(stamps)


def window_observed(assigned_at: pd.Series, attribution_days: int, observed_until: pd.Timestamp) -> np.ndarray:
    """Per row, whether its window ``[assigned_at, assigned_at + attribution_days)`` ends by ``observed_until``."""
    start = pd.to_datetime(assigned_at, utc=True)
    end = start + pd.Timedelta(days=attribution_days)
    return (end <= pd.Timestamp(observed_until).tz_convert("UTC")).to_numpy(dtype=bool)


def without_censored(table: TrainingTable, attribution_days: int, observed_until: pd.Timestamp) -> CensoredRows:
    """``table`` without the rows whose window is censored (column ``assigned_at`` needed).

    Raises
    ------
    DataError
        The table has no ``assigned_at`` column, or every row is censored.
    """
    where = table.source or "training table"
    if "assigned_at" not in table.frame.columns:
        raise DataError(f"{where}: column 'assigned_at' needed to tell which attribution windows are complete")
    keep = window_observed(table.frame["assigned_at"], attribution_days, observed_until)
    if not keep.any():
        raise DataError(f"{where}: every row's {attribution_days}-day window ends after the last recorded time "
                        f"{observed_until:%Y-%m-%d %H:%M} UTC; expected data recorded at least "
                        f"{attribution_days} days past the first assignment")
    return CensoredRows(table=table.subset(np.flatnonzero(keep)), censored=int((~keep).sum()),
                        observed_until=pd.Timestamp(observed_until), attribution_days=attribution_days)
