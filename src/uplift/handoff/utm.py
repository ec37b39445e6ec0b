"""The UTM scheme of every link a hand-off writes, and its strict inverse.

One scheme for every channel (``docs/handoff.md``)::

    utm_source   = the channel          (meta, linkedin, flyer, email: a channel of the cost catalogue)
    utm_medium   = how it is carried    (paid_social, print, email: from the channel's hand-off kind)
    utm_campaign = the wave             ("wave-3")
    utm_content  = the message          (a message name of the plan)
    utm_term     = the cell             (the line's code: an ad set's audience or a print run's neighbourhood)

:func:`parse_utm` never guesses: a value that is not exactly what the scheme writes (another case, spaces,
a repeated parameter, a wave that is not ``wave-<n>``) is reported with its reason.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

__all__ = ["MEDIUM", "UTM_KEYS", "Utm", "campaign", "code", "link", "parse_utm", "parse_utm_url", "utm_value"]

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")

MEDIUM = {"ad_sets": "paid_social", "print_run": "print", "mailing": "email"}
"""``utm_medium`` per hand-off kind."""

_CAMPAIGN = re.compile(r"^wave-([1-9][0-9]{0,5})$")
_TOKEN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,79}$")
"""What the scheme writes in source, content and term: lower-case letters, digits, ``_ . -``; at most 80."""
_CODE_LENGTH = 48


@dataclass(frozen=True)
class Utm:
    """The UTM values of one link (or one visit), checked against the scheme."""

    source: str
    medium: str
    wave: int
    content: str
    term: str

    def query(self) -> str:
        """The query string of the link, parameters in the scheme's order."""
        return urlencode({"utm_source": self.source, "utm_medium": self.medium, "utm_campaign": campaign(self.wave),
                          "utm_content": self.content, "utm_term": self.term})


def campaign(wave: int) -> str:
    """``utm_campaign`` of ``wave``: ``"wave-3"``."""
    return f"wave-{int(wave)}"


def code(*parts: str) -> str:
    """A cell's ``utm_term``: its parts as a readable slug (``25-34_female_den-haag``), lower-case ASCII.

    A slug longer than 48 characters keeps its first 39 and adds 8 hex digits of the full text's hash, so
    two long codes differ whenever their parts do.
    """
    text = "_".join(_slug(p) for p in parts if p != "")
    if len(text) <= _CODE_LENGTH:
        return text
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:8]
    return f"{text[:_CODE_LENGTH - 9].rstrip('_.-')}-{digest}"


def utm_value(name: str) -> str:
    """A channel's or message's name as a UTM value: itself when the scheme writes it as it is (lower-case letters,
    digits, ``_ . -``), else its slug (:func:`code`)."""
    return name if _TOKEN.match(name) else code(name)


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9.]+", "-", ascii_text.lower()).strip("-.")
    return slug or "x"


def link(base_url: str, utm: Utm) -> str:
    """``base_url`` with the UTM parameters of ``utm`` (``base_url`` has no query string)."""
    return f"{base_url}?{utm.query()}"


def parse_utm(values: dict[str, object]) -> Utm | str:
    """The :class:`Utm` of a visit's UTM values, or the reason they do not follow the scheme.

    ``values`` maps ``utm_source`` ... ``utm_term`` to a value (missing keys and empty values count as
    absent). Returns ``"no utm"`` when every value is absent (a visit that came by no campaign link). A
    reason names the parameter, never the visitor's value, so reasons can be counted.
    """
    given = {k: _text(values.get(k)) for k in UTM_KEYS}
    present = {k: v for k, v in given.items() if v is not None}
    if not present:
        return "no utm"
    missing = [k for k in UTM_KEYS if k not in present]
    if missing:
        return f"missing {', '.join(missing)}"
    wave = _CAMPAIGN.match(present["utm_campaign"])
    if wave is None:
        return "utm_campaign is not wave-<n>"
    for key in ("utm_source", "utm_medium", "utm_content", "utm_term"):
        if not _TOKEN.match(present[key]):
            return f"{key} is not what the scheme writes (lower-case letters, digits, _ . -)"
    return Utm(source=present["utm_source"], medium=present["utm_medium"], wave=int(wave.group(1)),
               content=present["utm_content"], term=present["utm_term"])


def parse_utm_url(url: object) -> Utm | str:
    """The :class:`Utm` of a visited URL, or the reason it does not follow the scheme (a repeated
    parameter is malformed: which one counts would be a guess)."""
    text = _text(url)
    if text is None:
        return "no utm"
    try:
        query = urlsplit(text).query
        pairs = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=50)
    except ValueError:
        return "the URL's query string cannot be read"
    repeated = [k for k in UTM_KEYS if len(pairs.get(k, ())) > 1]
    if repeated:
        return f"{', '.join(repeated)} given more than once"
    return parse_utm({k: pairs[k][0] for k in UTM_KEYS if k in pairs})


def _text(value: object) -> str | None:
    """A value as text; None, NaN and the empty string are absent."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text != "" else None
