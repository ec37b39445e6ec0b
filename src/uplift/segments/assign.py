"""Who belongs to which segment: targetable cells (merged up to the anonymity floor) and personas."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

from uplift.celltargeting import OTHER
from uplift.errors import MissingAttributesWarning, SchemaError
from uplift.simulate.conditions import matches
from uplift.specs.segments import PersonaRule

__all__ = [
    "PERSONA_NONE",
    "OTHER",
    "SUPPRESSED",
    "targetable_cells",
    "assign_personas",
    "segment_label",
    "rule_attributes",
    "rules_for_columns",
]

PERSONA_NONE = "none"
SUPPRESSED = ""


def segment_label(dimensions: tuple[str, ...], values: tuple[str, ...]) -> str:
    """``"age_band=25-34|gender=female|municipality=Delft"``."""
    return "|".join(f"{d}={v}" for d, v in zip(dimensions, values, strict=True))


def targetable_cells(people: pd.DataFrame, dimensions: tuple[str, ...], min_size: int) -> pd.DataFrame:
    """The targetable cell of each row, merged until every shown cell has at least ``min_size`` people.

    A cell that is too small gives up its last dimension: its people join the ``other`` cell of their
    parent (e.g. ``age_band=55-67|gender=other|municipality=other``), together with every other
    too-small sibling. What is still too small after merging at the last level is suppressed
    (label ``""``): never shown, never planned for.

    Parameters
    ----------
    people : one row per (person, wave) with ``person_id`` and the dimension columns.

    Returns
    -------
    DataFrame aligned with ``people``: ``segment`` (label) and one column per dimension (value or ``other``).
    """
    missing = [d for d in (*dimensions, "person_id") if d not in people.columns]
    if missing:
        raise SchemaError(f"segments: missing column(s) {missing}")
    dims = list(dimensions)
    cells = pd.DataFrame({d: people[d].astype(str).to_numpy(dtype=object) for d in dims}, index=people.index)
    ids = people["person_id"]

    def people_per_cell() -> np.ndarray:
        return ids.groupby([cells[d] for d in dims], sort=False).transform("nunique").to_numpy()

    for level in range(len(dims) - 1, -1, -1):
        small = people_per_cell() < min_size
        if not small.any():
            break
        if level == 0:
            cells.loc[small, dims] = SUPPRESSED
            break
        cells.loc[small, dims[level:]] = OTHER
    # after the last merge a merged 'other' cell may still be under the floor: suppress it
    hidden = (cells[dims[0]] == SUPPRESSED).to_numpy() | (people_per_cell() < min_size)
    labels = cells[dims[0]].radd(f"{dims[0]}=")
    for d in dims[1:]:
        labels = labels + f"|{d}=" + cells[d]
    labels = labels.to_numpy(dtype=object)
    labels[hidden] = SUPPRESSED
    cells.insert(0, "segment", labels)
    return cells


_RULE_COLUMNS = {"age", "gender", "employment", "sector", "education", "income_band", "migration_background",
                 "has_children"}


def rule_attributes(rule: PersonaRule) -> set[str]:
    """The audience attributes a persona rule reads."""
    used = {f for f, v in rule.rule.model_dump().items() if v is not None}
    return {"age" if f in ("age_min", "age_max") else f for f in used} & _RULE_COLUMNS


def rules_for_columns(
    rules: tuple[PersonaRule, ...], columns: Iterable[str], *, note: bool = True
) -> tuple[PersonaRule, ...]:
    """The persona rules that only read attributes among ``columns``, in order.

    With ``note``, says (a :class:`~uplift.errors.MissingAttributesWarning`) which rules were switched
    off and which attributes they miss; callers that repeat an earlier selection pass ``note=False``.
    """
    present = set(columns)
    absent = {r.name: sorted(rule_attributes(r) - present) for r in rules}
    off = {name: attrs for name, attrs in absent.items() if attrs}
    if off and note:
        missing = sorted({a for attrs in off.values() for a in attrs})
        warnings.warn(
            f"persona rules switched off, the data have no {', '.join(missing)}: "
            + "; ".join(f"{name} (needs {', '.join(attrs)})" for name, attrs in off.items()),
            MissingAttributesWarning,
            stacklevel=2,
        )
    return tuple(r for r in rules if r.name not in off)


def assign_personas(people: pd.DataFrame, rules: tuple[PersonaRule, ...]) -> np.ndarray:
    """Persona of each row: the first rule that matches, ``"none"`` if no rule does.

    Every rule's attributes must be columns of ``people`` (:func:`rules_for_columns` keeps those that are).
    """
    used = {a for r in rules for a in rule_attributes(r)}
    missing = sorted(used - set(people.columns))
    if missing:
        raise SchemaError(f"segments: persona rules use column(s) {missing} that the table does not have")
    frame = people.copy()
    for col in ("migration_background", "has_children"):
        if col in frame.columns:
            frame[col] = frame[col].astype(float) > 0.5
    persona = np.full(len(people), PERSONA_NONE, dtype=object)
    free = np.ones(len(people), dtype=bool)
    for r in rules:
        hit = free & matches(r.rule, frame)
        persona[hit] = r.name
        free &= ~hit
    return persona
