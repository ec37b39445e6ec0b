"""Who a hand-off's lines reach: the audience's people per line (for the next wave's design and its checks).

A line (:func:`uplift.handoff.plan_lines`) names an age band, a gender and municipalities, or for a print run its
postcodes; :func:`line_people` lists the people of an audience it covers. A person is in every line whose audience
includes them (a Meta ad set and a print run of another message may both): the plan assumes one arm per person and
wave (docs/planning.md), and a design that assigns arms decides who gets which.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.celltargeting import ALL
from uplift.errors import SchemaError
from uplift.features.library import age_band_of

__all__ = ["line_people"]


def line_people(lines: pd.DataFrame, audience: pd.DataFrame, *, source: str = "audience") -> pd.DataFrame:
    """One row per (line, person) the line's audience definition covers: ``channel``, ``message``, ``line``,
    ``person_id``.

    Parameters
    ----------
    lines : :func:`~uplift.handoff.plan_lines`' frame (``age_band``, ``gender``, ``municipalities``, ``postcodes``).
    audience : one row per person with ``person_id``, ``age``, ``gender``, ``municipality``, ``neighbourhood``.
    """
    missing = [c for c in ("person_id", "age", "gender", "municipality", "neighbourhood") if c not in audience.columns]
    if missing:
        raise SchemaError(f"{source}: missing column(s) {', '.join(missing)}; expected the audience contract")
    band = age_band_of(audience["age"])
    gender = audience["gender"].astype(str).to_numpy()
    place = audience["municipality"].astype(str).to_numpy()
    postcode = audience["neighbourhood"].astype(str).to_numpy()
    ids = audience["person_id"].astype(str).to_numpy()
    parts = []
    for line in lines.itertuples(index=False):
        hit = np.ones(len(ids), dtype=bool)
        if line.age_band != ALL:
            hit &= band == line.age_band
        if line.gender != ALL:
            hit &= gender == line.gender
        if len(line.postcodes):
            hit &= np.isin(postcode, list(line.postcodes))
        elif len(line.municipalities):
            hit &= np.isin(place, list(line.municipalities))
        parts.append(pd.DataFrame({"channel": line.channel, "message": line.message, "line": line.line,
                                   "person_id": ids[hit]}))
    if not parts:
        return pd.DataFrame(columns=["channel", "message", "line", "person_id"])
    return pd.concat(parts, ignore_index=True)
