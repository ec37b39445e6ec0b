"""Any randomised multi-arm experiment in one CSV (one row per person) as a training table.

A :class:`ColumnMapping` (YAML, e.g. ``features/datasets/hillstrom.yaml``) names the treatment
column and its control label, the outcome column (0/1) and the feature columns with their kinds.
Arm labels become snake_case arm names ("Mens E-Mail" -> "mens_e_mail"). The assignment
probabilities are the design's: declared per arm in the mapping, or, for a simple randomised
design with fixed shares, the realised arm shares.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from uplift.errors import SchemaError
from uplift.specs import Spec
from uplift.tableio import read_table
from uplift.trainingtable import PROPENSITY_PREFIX, FeatureColumn, TrainingTable

__all__ = ["ColumnMapping", "load_experiment_csv", "slug"]


def slug(label: str) -> str:
    """"Mens E-Mail" -> "mens_e_mail"."""
    return re.sub(r"[^0-9a-z]+", "_", str(label).lower()).strip("_")


class ColumnMapping(Spec):
    """How the columns of an experiment file map onto arm, outcome and features."""

    name: str
    treatment: str
    control: str
    outcomes: tuple[str, ...] = Field(min_length=1)
    """Columns usable as the 0/1 outcome; the first is the default."""
    features: dict[str, Literal["numeric", "categorical"]]
    id_column: str | None = None
    design_shares: dict[str, float] | None = None
    """Assignment probability per arm label; default: the realised shares (fixed-share randomisation)."""


def load_experiment_csv(path: str | Path, mapping: ColumnMapping, *, outcome: str | None = None) -> TrainingTable:
    """Read ``path`` and return the training table the mapping describes (one wave)."""
    path = Path(path)
    outcome = outcome or mapping.outcomes[0]
    if outcome not in mapping.outcomes:
        raise SchemaError(f"{path}: outcome {outcome!r} is not declared in mapping {mapping.name!r}; valid: {list(mapping.outcomes)}")
    wanted = [mapping.treatment, outcome, *mapping.features] + ([mapping.id_column] if mapping.id_column else [])
    raw = read_table(path)
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise SchemaError(f"{path}: missing column(s) {missing} required by mapping {mapping.name!r}")
    labels = raw[mapping.treatment].astype(str)
    if mapping.control not in set(labels):
        raise SchemaError(f"{path}: column {mapping.treatment!r} has no control rows labelled {mapping.control!r}")
    y = pd.to_numeric(raw[outcome], errors="coerce")
    bad = ~y.isin([0, 1])
    if bad.any():
        raise SchemaError(f"{path}: column {outcome!r}: expected 0/1; {int(bad.sum())} row(s) break it (e.g. {raw.loc[bad, outcome].iloc[0]!r})")
    arm = labels.map(slug)
    control = slug(mapping.control)
    arms = (control, *sorted(set(arm) - {control}))
    if mapping.design_shares:
        shares = {slug(k): float(v) for k, v in mapping.design_shares.items()}
    else:
        shares = arm.value_counts(normalize=True).to_dict()
    if set(shares) != set(arms):
        raise SchemaError(f"{path}: design shares given for {sorted(shares)} but the arms are {sorted(arms)}")
    features = tuple(FeatureColumn(name, kind) for name, kind in mapping.features.items())
    person = raw[mapping.id_column].astype(str) if mapping.id_column else pd.Series(np.arange(len(raw))).astype(str)
    frame = pd.concat(
        [
            pd.DataFrame({"person_id": person.to_numpy(), "wave": 1, "arm": arm.to_numpy(), "outcome": y.astype(np.int64).to_numpy()}),
            pd.DataFrame({f"{PROPENSITY_PREFIX}{a}": np.full(len(raw), shares[a]) for a in arms}),
            raw[list(mapping.features)].reset_index(drop=True),
        ],
        axis=1,
    )
    return TrainingTable(frame=frame, features=features, arms=arms, control=control, outcome=outcome, source=str(path))
