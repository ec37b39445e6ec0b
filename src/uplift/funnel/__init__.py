"""Value along the funnel: a plan's outcome as a weighted sum of funnel events (the planning policy's
``value`` block, :class:`uplift.specs.planning.ValueEvent`).

- :mod:`uplift.funnel.censoring`: an event's rows whose attribution window reaches past the end of the
  recorded data are left out of its training, and counted.
- :mod:`uplift.funnel.value`: the value segment table: each event's calibrated effects on the same rows,
  and the value's, ``sum_e w_e tau_e``, with an interval that takes the events' errors as moving together.
- :mod:`uplift.funnel.conversions`: a plan on value scored per event (expected incremental
  conversions with their intervals).
"""

from uplift.funnel.censoring import CensoredRows, last_recorded, without_censored
from uplift.funnel.conversions import EventConversions, event_conversions, value_plan_tables
from uplift.funnel.value import (
    OUTCOME_COLUMN,
    VALUE,
    EventEstimates,
    funnel_segment_table,
    value_rows,
)

__all__ = [
    "CensoredRows", "last_recorded", "without_censored",
    "EventConversions", "event_conversions", "value_plan_tables",
    "OUTCOME_COLUMN", "VALUE", "EventEstimates", "funnel_segment_table", "value_rows",
]
