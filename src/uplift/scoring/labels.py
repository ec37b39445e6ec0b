"""The segment and persona of each scored person, as the model's segment table knows them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.errors import SchemaError
from uplift.features.library import age_band_of
from uplift.segments.assign import OTHER, PERSONA_NONE, SUPPRESSED, assign_personas, rules_for_columns
from uplift.specs.segments import SegmentSpec

__all__ = ["SegmentLabeler"]


class SegmentLabeler:
    """Label people with the targetable segments of a model's segment table and with personas.

    A person's segment is their exact cell (e.g. ``age_band=25-34|gender=female|municipality=Delft``)
    if the table has it; else the merged ``other`` cell of its parent (``...|municipality=other``),
    then of its grandparent, and so on, as :func:`~uplift.segments.assign.targetable_cells` merges
    small cells; else ``""`` (suppressed: the cell was under the anonymity floor). The persona is
    the first matching rule of the segment spec (``"none"`` if none matches).

    Parameters
    ----------
    segments : the model's segment table (columns ``segment`` and ``kind``).
    spec : the segment spec (dimensions and persona rules).
    """

    def __init__(self, segments: pd.DataFrame, spec: SegmentSpec) -> None:
        for col in ("segment", "kind"):
            if col not in segments.columns:
                raise SchemaError(f"segment table: column {col!r} is missing")
        self.spec = spec
        self._noted = False
        self.known = frozenset(segments.loc[segments["kind"] == "targetable", "segment"].astype(str))

    def segments(self, people: pd.DataFrame) -> np.ndarray:
        """Segment label per row of ``people`` (audience columns; ``age_band`` derived from ``age``)."""
        dims = self.spec.dimensions
        values = []
        for d in dims:
            if d == "age_band" and d not in people.columns:
                values.append(pd.Series(age_band_of(people["age"]), index=people.index, dtype="str"))
            elif d in people.columns:
                values.append(people[d].astype(str))
            else:
                raise SchemaError(f"scoring: segment dimension {d!r} is not an audience column")
        out = np.full(len(people), SUPPRESSED, dtype=object)
        open_ = np.ones(len(people), dtype=bool)
        known = list(self.known)
        for level in range(len(dims), 0, -1):
            label = pd.Series(f"{dims[0]}=", index=people.index) + values[0]
            for k in range(1, len(dims)):
                label = label + f"|{dims[k]}=" + (values[k] if k < level else OTHER)
            hit = open_ & label.isin(known).to_numpy()
            out[hit] = label.to_numpy(dtype=object)[hit]
            open_ &= ~hit
            if not open_.any():
                break
        return out

    def personas(self, people: pd.DataFrame) -> np.ndarray:
        """Persona name per row (``"none"`` when no rule matches; rules over absent attributes are off)."""
        rules = rules_for_columns(self.spec.personas, people.columns, note=not self._noted)
        self._noted = True  # the note comes with the first chunk, not with every chunk
        if not rules:
            return np.full(len(people), PERSONA_NONE, dtype=object)
        return assign_personas(people, rules)
