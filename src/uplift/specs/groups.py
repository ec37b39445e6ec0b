"""Priority groups (``serve/groups.yaml``): who the programmes exist to reach, as rules over audience attributes.

A group is a rule over the attributes every audience row has (gender, age, municipality,
neighbourhood, employment, sector, education, income band, migration background, children) and,
through the neighbourhood, its deprivation. No channel needs to target a group: the segment table
carries each segment's share of the group's people (:mod:`uplift.segments.composition`), and
fairness and coverage floors over a ``group`` count every segment with that share
(:class:`uplift.specs.planning.FairnessFloor`).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from uplift.data.vocabulary import EDUCATION, EMPLOYMENT, GENDERS, INCOME_BANDS, SECTORS
from uplift.specs import Spec

__all__ = ["GroupRule", "GroupSpec", "PriorityGroup", "RULE_COLUMNS"]

_LEVELS: dict[str, tuple[str, ...]] = {
    "gender": GENDERS,
    "employment": EMPLOYMENT,
    "sector": SECTORS,
    "education": EDUCATION,
    "income_band": INCOME_BANDS,
}

RULE_COLUMNS: dict[str, str] = {
    "age_min": "age",
    "age_max": "age",
    "age_band": "age_band",
    "gender": "gender",
    "municipality": "municipality",
    "neighbourhood": "neighbourhood",
    "employment": "employment",
    "sector": "sector",
    "education": "education",
    "income_band": "income_band",
    "migration_background": "migration_background",
    "has_children": "has_children",
    "deprivation_min": "neighbourhood",
    "deprivation_max": "neighbourhood",
}
"""The audience column each rule key reads (the deprivation keys read the neighbourhood's score)."""


class GroupRule(Spec):
    """Who belongs to a group: every given key must match (lists: one of the values)."""

    age_min: int | None = Field(None, ge=18, le=67)
    age_max: int | None = Field(None, ge=18, le=67)
    age_band: tuple[str, ...] | None = Field(None, min_length=1)
    gender: tuple[str, ...] | None = Field(None, min_length=1)
    municipality: tuple[str, ...] | None = Field(None, min_length=1)
    neighbourhood: tuple[str, ...] | None = Field(None, min_length=1)
    employment: tuple[str, ...] | None = Field(None, min_length=1)
    sector: tuple[str, ...] | None = Field(None, min_length=1)
    education: tuple[str, ...] | None = Field(None, min_length=1)
    income_band: tuple[str, ...] | None = Field(None, min_length=1)
    migration_background: bool | None = None
    has_children: bool | None = None
    deprivation_min: float | None = Field(None, ge=0, le=1, description="neighbourhood deprivation at least (0-1)")
    deprivation_max: float | None = Field(None, ge=0, le=1, description="neighbourhood deprivation at most (0-1)")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(RULE_COLUMNS))
            if unknown:
                raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))}; expected audience attributes: "
                                 f"{', '.join(RULE_COLUMNS)}")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> GroupRule:
        if not self.keys():
            raise ValueError(f"a rule needs at least one key; expected some of: {', '.join(RULE_COLUMNS)}")
        for name, valid in _LEVELS.items():
            unknown = [v for v in getattr(self, name) or () if v not in valid]
            if unknown:
                raise ValueError(f"{name}: {unknown} not valid; expected some of: {', '.join(valid)}")
        for lo, hi in (("age_min", "age_max"), ("deprivation_min", "deprivation_max")):
            low, high = getattr(self, lo), getattr(self, hi)
            if low is not None and high is not None and low > high:
                raise ValueError(f"{lo} {getattr(self, lo)} is above {hi} {getattr(self, hi)}")
        return self

    def keys(self) -> list[str]:
        """The keys the rule sets."""
        return [k for k in RULE_COLUMNS if getattr(self, k) is not None]

    @property
    def uses_deprivation(self) -> bool:
        """Whether the rule reads the neighbourhood's deprivation score."""
        return self.deprivation_min is not None or self.deprivation_max is not None


class PriorityGroup(Spec):
    """A named group: ``name`` is how floors refer to it (letters, digits and underscores)."""

    name: str = Field(min_length=1)
    description: str = ""
    rule: GroupRule

    @field_validator("name")
    @classmethod
    def _plain(cls, name: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValueError(f"name {name!r}: expected lower-case letters, digits and "
                             "underscores, starting with a letter")
        return name


class GroupSpec(Spec):
    """The priority groups (``serve/groups.yaml``).

    Attributes
    ----------
    groups : the groups, each a rule over audience attributes.
    deprivation_from : where the neighbourhoods' deprivation scores are declared, a region
        declaration (``features/regions/<region>.yaml``: each neighbourhood's postcode and
        ``deprivation``, 0 affluent to 1 poorest), relative to the project root; needed by rules
        with ``deprivation_min`` / ``deprivation_max``.
    """

    groups: tuple[PriorityGroup, ...] = Field(min_length=1)
    deprivation_from: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> GroupSpec:
        names = [g.name for g in self.groups]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"group names must be unique; repeated: {', '.join(repeated)}")
        needs = [g.name for g in self.groups if g.rule.uses_deprivation]
        if needs and self.deprivation_from is None:
            raise ValueError(f"group(s) {', '.join(needs)} use deprivation_min / deprivation_max; expected "
                             "'deprivation_from' naming a region declaration with the neighbourhoods' deprivation")
        return self
