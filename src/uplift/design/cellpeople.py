"""Who a planned cell is: each person's planned segment, and the area a channel that delivers per area reaches
them through.

A plan's cells are targetable segments (``age_band=25-34|gender=female|municipality=Delft``, or a merged
``...|municipality=other`` cell) x arms. A person belongs to the most specific segment of the plan that holds
them (:class:`uplift.scoring.labels.SegmentLabeler`, as scoring labels people); a person in no planned segment
is not part of the wave. A channel that can select people by their neighbourhood only (its ``targeting`` in the
cost catalogue: flyers, delivered per 4-digit postcode) reaches the people of a cell through their postcode, which
the design records so the hand-off can name the postcodes of each cell. Keep this mapping here, on its own, so
the hand-off can change it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from uplift.errors import SchemaError
from uplift.scoring.labels import SegmentLabeler
from uplift.segments.assign import SUPPRESSED
from uplift.specs.planning import ChannelCost, CostCatalogue
from uplift.specs.segments import SegmentSpec

__all__ = ["AREA_COLUMN", "NO_AREA", "delivered_per_area", "delivery_areas", "planned_segments"]

AREA_COLUMN = "neighbourhood"
"""The audience column a channel delivered per area reaches people through (the 4-digit postcode)."""

NO_AREA = ""
"""The area of a person reached on a channel bought per person (or not reached at all)."""


def planned_segments(audience: pd.DataFrame, segments: Iterable[str], spec: SegmentSpec) -> np.ndarray:
    """The planned segment of every audience row (``""`` for a person in none of ``segments``).

    Parameters
    ----------
    audience : audience rows with the segment spec's dimensions (``age_band`` from ``age``). Not modified.
    segments : the segment labels of the plan's cells.
    spec : the segment spec the plan's segment table was built with.
    """
    table = pd.DataFrame({"segment": sorted(set(map(str, segments)) - {SUPPRESSED}), "kind": "targetable"})
    return SegmentLabeler(table, spec).segments(audience)


def delivered_per_area(channel: ChannelCost) -> bool:
    """Whether ``channel`` reaches people only through their neighbourhood (its declared ``targeting``)."""
    return channel.targeting is not None and set(channel.targeting) == {AREA_COLUMN}


def delivery_areas(audience: pd.DataFrame, channels: np.ndarray, costs: CostCatalogue) -> np.ndarray:
    """Per row, the area the row's channel reaches the person through: their postcode for a channel delivered
    per area (:func:`delivered_per_area`), ``""`` otherwise.

    Raises
    ------
    SchemaError
        A channel delivered per area is used and the audience has no ``neighbourhood`` column.
    """
    channels = np.asarray(channels, dtype=object)
    per_area = np.array([c in costs.channels and delivered_per_area(costs.channels[c]) for c in channels], dtype=bool)
    out = np.full(len(channels), NO_AREA, dtype=object)
    if not per_area.any():
        return out
    if AREA_COLUMN not in audience.columns:
        used = sorted(set(channels[per_area]))
        raise SchemaError(f"audience: column {AREA_COLUMN!r} is missing; channel(s) {used} are delivered per area "
                          "(cost catalogue: targeting: [neighbourhood]) and need each person's postcode")
    out[per_area] = audience[AREA_COLUMN].astype(str).to_numpy(dtype=object)[per_area]
    return out
