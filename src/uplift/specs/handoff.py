"""The hand-off declaration (``serve/handoff.yaml``): where the campaign's links land and how long a wave runs."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from uplift.specs import Spec

__all__ = ["HandoffSpec"]


class HandoffSpec(Spec):
    """What every hand-off of a plan shares (:mod:`uplift.handoff`).

    Attributes
    ----------
    landing_url : the page every ad set, print run and mailing links to (``https``, no query string: the
        hand-off adds the UTM parameters, ``docs/handoff.md``).
    days : how many days a wave's ad sets run (start date included).
    creatives : the creative id of each message on the platforms and at the printer; a message not listed
        has its own name as creative id.
    short_url : optional base of short links for print (e.g. ``https://omscholen.nl/f/``); a print run's
        short code is appended to it, and the short link must redirect to the print run's full UTM URL.
    region : the region declaration whose municipalities and neighbourhoods (with residents) place the lines
        when no audience is given (relative to the project root).
    """

    landing_url: str = Field(min_length=1)
    days: int = Field(default=28, ge=1, le=366)
    creatives: dict[str, str] = Field(default_factory=dict)
    short_url: str | None = None
    region: str = "features/regions/haaglanden.yaml"

    @field_validator("landing_url", "short_url")
    @classmethod
    def _plain_https(cls, url: str | None) -> str | None:
        if url is None:
            return url
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.netloc:
            raise ValueError(f"expected an https URL with a host (e.g. https://example.org/page), got {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"expected a URL without query string or fragment (the hand-off adds the UTM "
                             f"parameters), got {url!r}")
        return url

    def creative(self, message: str) -> str:
        """The creative id of ``message``."""
        return self.creatives.get(message, message)
