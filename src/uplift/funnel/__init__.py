"""Value along the funnel: a plan's outcome as a weighted sum of funnel events (the planning policy's
``value`` block, :class:`uplift.specs.planning.ValueEvent`).

- :mod:`uplift.funnel.censoring`: an event's rows whose attribution window reaches past the end of the
  recorded data are left out of its training, and counted.
- :mod:`uplift.funnel.value`: the value segment table, estimated on each row's value
  ``Y_v = sum_e w_e label_e`` with the predictions ``sum_e w_e pred_e`` (so the intervals carry the
  covariance between the events), stacked with every event's own segment table on the same rows.
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
    value_outcome,
)

__all__ = [
    "CensoredRows", "last_recorded", "without_censored",
    "EventConversions", "event_conversions", "value_plan_tables",
    "OUTCOME_COLUMN", "VALUE", "EventEstimates", "funnel_segment_table", "value_outcome",
]
