"""The disclosure policy (``serve/disclosure.yaml``): the fewest people any released figure may rest on.

Read by the command line and the service alike; :mod:`uplift.disclosure` applies it to every frame
an output releases.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from uplift.specs import Spec, load_spec, project_root

__all__ = ["DEFAULT_ROUNDING_BASE", "DEFAULT_THRESHOLD", "DisclosurePolicy", "default_disclosure_path",
           "load_disclosure_policy"]

DEFAULT_THRESHOLD = 10
"""Statistical offices publish no figure based on fewer than about 10 people; the service's production
mode refuses a lower threshold."""

DEFAULT_ROUNDING_BASE = 5


class DisclosurePolicy(Spec):
    """What a figure about people must rest on before it may leave the product.

    A count of people, or of converters, below ``threshold`` is suppressed, and so is a count of
    converters whose complement (the people of its cell who did not convert) is below it; every other
    released count is rounded to a multiple of ``rounding_base``; a rate or effect is withheld where a
    count it rests on is suppressed (see :mod:`uplift.disclosure`).
    """

    threshold: int = Field(DEFAULT_THRESHOLD, ge=1, le=1_000_000,
                           description="fewest people (converters, non-converters) a released figure rests on")
    rounding_base: int = Field(DEFAULT_ROUNDING_BASE, ge=1, le=1_000,
                               description="released counts are rounded to a multiple of this")

    @model_validator(mode="after")
    def _threshold_on_the_grid(self) -> DisclosurePolicy:
        # a count at the threshold must not round below it
        if self.threshold % self.rounding_base:
            raise ValueError(
                f"threshold {self.threshold} must be a multiple of rounding_base {self.rounding_base}, "
                "so that no count at or above the threshold is released rounded below it"
            )
        return self

    @property
    def lowered(self) -> bool:
        """True when the threshold is below the default (allowed in development only)."""
        return self.threshold < DEFAULT_THRESHOLD

    def satisfies(self, required: DisclosurePolicy) -> bool:
        """True when a release made under this policy may be served under ``required``: its threshold is
        at least ``required``'s (its counts are re-rounded to ``required``'s base where that is coarser)."""
        return self.threshold >= required.threshold


def default_disclosure_path() -> Path:
    """``<project root>/serve/disclosure.yaml``."""
    return project_root() / "serve" / "disclosure.yaml"


def load_disclosure_policy(path: str | Path | None = None) -> DisclosurePolicy:
    """The policy in ``path`` (default :func:`default_disclosure_path`); the defaults when no file is named
    and the project has none. A named file that is missing is an error."""
    if path is None:
        default = default_disclosure_path()
        return load_spec(default, DisclosurePolicy) if default.is_file() else DisclosurePolicy()
    return load_spec(path, DisclosurePolicy)
