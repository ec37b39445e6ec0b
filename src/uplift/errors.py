"""The error hierarchy of uplift.

Every error the package raises on purpose derives from :class:`UpliftError` and
also from the built-in exception it means, so callers can catch either::

    UpliftError
    ├── SchemaError(UpliftError, ValueError)        a data file breaks its contract
    ├── SpecError(UpliftError, ValueError)          a YAML declaration is invalid
    ├── DataError(UpliftError, ValueError)          data are valid per row but unusable together
    ├── ModelNotFoundError(UpliftError, LookupError) no registered model / alias to load
    ├── InfeasiblePlanError(UpliftError, ValueError) planning constraints cannot all hold
    └── PlanLockedError(UpliftError)                 an approved plan cannot be changed, only superseded

and two warnings, issued where the product goes on with less than it was declared to use::

    MissingAttributesWarning(UserWarning)           features or persona rules switched off: attributes absent
    ThinDataWarning(UserWarning)                    too few rows for part of what was asked (e.g. a CV stratum)
"""

from __future__ import annotations

__all__ = [
    "UpliftError",
    "SchemaError",
    "SpecError",
    "DataError",
    "ModelNotFoundError",
    "InfeasiblePlanError",
    "PlanLockedError",
    "MissingAttributesWarning",
    "ThinDataWarning",
]


class UpliftError(Exception):
    """Base class of every error raised on purpose by uplift."""


class SchemaError(UpliftError, ValueError):
    """A data file or frame breaks its contract (column missing, wrong type, value out of range)."""


class SpecError(UpliftError, ValueError):
    """A declaration (YAML spec) is missing, malformed or inconsistent."""


class DataError(UpliftError, ValueError):
    """Rows are individually valid but cannot be used together (e.g. an arm without rows)."""


class ModelNotFoundError(UpliftError, LookupError):
    """The model registry has no model, version or alias with the requested name."""


class InfeasiblePlanError(UpliftError, ValueError):
    """The planning constraints cannot all hold; ``conflicts`` says which and by how much."""

    def __init__(self, message: str, conflicts: list[str] | None = None) -> None:
        super().__init__(message)
        self.conflicts = list(conflicts or [])


class PlanLockedError(UpliftError):
    """A stored plan cannot be changed: it is approved (a new plan supersedes it instead)."""


class MissingAttributesWarning(UserWarning):
    """Features or persona rules were switched off because the audience lacks attributes they need.

    The message names what was switched off and the absent attributes; it is issued where the
    selection is made (building a training table, a segment table, the first chunk of a scoring job).
    """


class ThinDataWarning(UserWarning):
    """The data have too few rows for part of what was asked; the work goes on and its figures are less certain.

    The message names the group that is thin, how many rows it has and what it would need (e.g. an arm x outcome
    stratum with fewer rows than cross-validation folds).
    """
