"""The funnel after registration: who goes on to each later event, and when (the enrolments table)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.data.vocabulary import FUNNEL_EVENTS
from uplift.simulate.campaign import NS_PER_SECOND, to_utc
from uplift.simulate.effects import stage_rates
from uplift.specs.region import LATER_EVENTS, RegionSpec

__all__ = ["draw_funnel"]

_SECONDS_PER_DAY = 86_400


def draw_funnel(
    spec: RegionSpec,
    *,
    person_ids: np.ndarray,
    persona: np.ndarray,
    registered_at: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Draw every registrant's later funnel events and return the enrolments table.

    Each step is reached with P(step | previous step) from :func:`stage_rates` (persona
    dependent, never arm dependent) after a gamma-distributed delay (at least one minute).

    Parameters
    ----------
    spec : the region (funnel rates and delays).
    person_ids, persona : (n,) the registrants' ids and latent personas.
    registered_at : (n,) registration times, ns since the epoch (UTC).
    rng : the random generator (consumed).

    Returns
    -------
    DataFrame with ``person_id`` (str), ``event`` (str) and ``occurred_at`` (datetime64[ns, UTC]),
    sorted by time, then person, then funnel order.
    """
    rates = stage_rates(spec, persona)
    n = len(person_ids)
    reached = np.ones(n, dtype=bool)
    when = np.asarray(registered_at, dtype=np.int64)
    rows = [(np.arange(n), np.zeros(n, dtype=np.int64), when)]
    for j, event in enumerate(LATER_EVENTS):
        delay = spec.funnel[event].delay_days
        reached = reached & (rng.random(n) < rates[:, j])
        days = rng.gamma(delay.shape, delay.mean / delay.shape, size=n)
        when = when + np.maximum(np.floor(days * _SECONDS_PER_DAY), 60).astype(np.int64) * NS_PER_SECOND
        at = np.flatnonzero(reached)
        rows.append((at, np.full(len(at), j + 1, dtype=np.int64), when[at]))

    who = np.concatenate([r[0] for r in rows])
    rank = np.concatenate([r[1] for r in rows])
    occurred = np.concatenate([r[2] for r in rows])
    ids = np.asarray(person_ids, dtype=object)[who]
    order = np.lexsort((rank, ids.astype(str), occurred))
    return pd.DataFrame(
        {
            "person_id": pd.Series(ids[order], dtype="str"),
            "event": pd.Series(np.asarray(FUNNEL_EVENTS, dtype=object)[rank[order]], dtype="str"),
            "occurred_at": to_utc(occurred[order]),
        }
    )
