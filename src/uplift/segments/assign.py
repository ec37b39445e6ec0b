"""Who belongs to which segment: targetable cells (merged up to the anonymity floor) and personas."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.errors import SchemaError
from uplift.simulate.conditions import matches
from uplift.specs.segments import PersonaRule

__all__ = ["PERSONA_NONE", "OTHER", "SUPPRESSED", "targetable_cells", "assign_personas", "segment_label"]

PERSONA_NONE = "none"
OTHER = "other"
SUPPRESSED = ""


def segment_label(dimensions: tuple[str, ...], values: tuple[str, ...]) -> str:
    """``"age_band=25-34|gender=female|municipality=Delft"``."""
    return "|".join(f"{d}={v}" for d, v in zip(dimensions, values))


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


def assign_personas(people: pd.DataFrame, rules: tuple[PersonaRule, ...]) -> np.ndarray:
    """Persona of each row: the first rule that matches, ``"none"`` if no rule does."""
    needed = {"age", "gender", "employment", "sector", "education", "income_band", "migration_background", "has_children"}
    used = {f for r in rules for f, v in r.rule.model_dump().items() if v is not None}
    used = {"age" if f in ("age_min", "age_max") else f for f in used}
    missing = sorted((needed & used) - set(people.columns))
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
