"""Simulated visits from a hand-off's links: registrations that carry the URL of the line that reached them.

:func:`visits_from_sheets` draws, for every line of a hand-off's channel sheets, how many of its planned
contacts register (binomial, one rate for all) and writes each registration with the address its visitor
landed on, as a platform or a browser delivers it: the line's UTM URL, with a click id the platform appends
(``fbclid``, ``li_fat_id``) and the parameters in another order (a short link redirects to the same URL). The
truth (which line each registration came from) is returned beside it, for checking an attribution.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import pandas as pd

__all__ = ["visits_from_sheets"]

_CONTACTS = ("planned_contacts", "addresses")
_CLICK_IDS = {"meta": "fbclid", "linkedin": "li_fat_id"}


def visits_from_sheets(sheets: Mapping[str, pd.DataFrame], *, rate: float, start: dt.date,
                       seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Registrations from the lines of ``sheets`` (file name -> a hand-off channel sheet with ``url``,
    ``utm_term`` and its planned contacts).

    Returns
    -------
    enrolments : ``person_id``, ``event`` (registration), ``occurred_at`` (UTC), ``visit_url``.
    truth : ``person_id``, ``file``, ``utm_term``, ``message``: the line each registration came from.
    """
    if not 0 <= rate <= 1:
        raise ValueError(f"rate: expected a probability between 0 and 1, got {rate}")
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for name, sheet in sorted(sheets.items()):
        contacts = next(c for c in _CONTACTS if c in sheet.columns)
        channel = name.split("_", 1)[0]
        for line in sheet.itertuples(index=False):
            for _ in range(int(rng.binomial(int(getattr(line, contacts)), rate))):
                person = f"v{len(rows):07d}"
                when = pd.Timestamp(start, tz="UTC") + pd.Timedelta(hours=float(rng.uniform(0, 24 * 27)))
                rows.append((person, "registration", when, _delivered(line.url, channel, rng)))
                truth.append((person, name, line.utm_term, line.message))
    enrolments = pd.DataFrame(rows, columns=["person_id", "event", "occurred_at", "visit_url"])
    return enrolments, pd.DataFrame(truth, columns=["person_id", "file", "utm_term", "message"])


def _delivered(url: str, channel: str, rng: np.random.Generator) -> str:
    """``url`` as a visitor's browser lands on it: parameters shuffled, a platform's click id appended."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    order = rng.permutation(len(pairs))
    pairs = [pairs[i] for i in order]
    if channel in _CLICK_IDS:
        pairs.append((_CLICK_IDS[channel], f"{rng.integers(1 << 40):x}"))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs), ""))
