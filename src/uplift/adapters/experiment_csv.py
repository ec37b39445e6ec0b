"""Any randomised multi-arm experiment in one CSV (one row per person) as a training table.

A :class:`ColumnMapping` (YAML, e.g. ``features/datasets/hillstrom.yaml``) names the treatment
column and its control label, the outcome columns and the feature columns with their kinds.
Arm labels become snake_case arm names ("Mens E-Mail" -> "mens_e_mail"). The assignment
probabilities are the design's: declared per arm in the mapping, or, for a simple randomised
design with fixed shares, the realised arm shares.

The outcome is 0/1 already, or made so by the mapping: ``positive`` names the label that counts
as a conversion ("Yes"), ``threshold`` counts values above it (spend above 0). ``economics``
declares what a conversion is worth and what a contact with each arm costs (fixed, or per person
from a column), with an optional budget: the targeting rule then maximises net value
(:mod:`uplift.modeling.netvalue`). ``cluster`` names the unit of randomisation when people were
randomised in groups (household, school): folds, the held-out split and intervals keep it whole.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from uplift.data.tableio import read_table
from uplift.data.trainingtable import CLUSTER_COLUMN, PROPENSITY_PREFIX, FeatureColumn, TrainingTable
from uplift.economics import Economics
from uplift.errors import SchemaError
from uplift.specs import Spec

__all__ = ["ColumnMapping", "MappingEconomics", "load_experiment_csv", "slug"]


def slug(label: str) -> str:
    """"Mens E-Mail" -> "mens_e_mail"."""
    return re.sub(r"[^0-9a-z]+", "_", str(label).lower()).strip("_")


class MappingEconomics(Spec):
    """What a conversion is worth and what a contact costs, as a mapping declares them."""

    value: float = Field(gt=0, allow_inf_nan=False)
    """Value of one conversion (one unit of the outcome), > 0."""
    costs: dict[str, float | str] = Field(default_factory=dict)
    """Per arm label of the treatment column: a fixed cost >= 0 per contact, or the name of a column with each
    person's cost. An arm left out costs 0 (the control usually)."""
    budget_per_person: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """The most the rule may spend on average per person (over contacting no one); none: no budget."""

    @field_validator("costs")
    @classmethod
    def _costs_non_negative(cls, costs: dict[str, float | str]) -> dict[str, float | str]:
        for label, cost in costs.items():
            if not isinstance(cost, str) and not (np.isfinite(cost) and cost >= 0):
                raise ValueError(f"cost of arm {label!r}: expected a number >= 0 or a column name, got {cost!r}")
            if isinstance(cost, str) and not cost.strip():
                raise ValueError(f"cost of arm {label!r}: an empty column name")
        return costs


class ColumnMapping(Spec):
    """How the columns of an experiment file map onto arm, outcome, features, costs and clusters."""

    name: str
    treatment: str
    control: str
    outcomes: tuple[str, ...] = Field(min_length=1)
    """Columns usable as the outcome; the first is the default."""
    features: dict[str, Literal["numeric", "categorical"]]
    id_column: str | None = None
    design_shares: dict[str, float] | None = None
    """Assignment probability per arm label; default: the realised shares (fixed-share randomisation)."""
    positive: str | None = None
    """The outcome label that counts as a conversion (e.g. "Yes"); every other label counts 0."""
    threshold: float | None = Field(default=None, allow_inf_nan=False)
    """Outcome values above this count as a conversion (e.g. 0 for "spent something")."""
    outcome_kind: Literal["binary", "continuous"] = "binary"
    """``continuous``: the outcome is an amount (spend, sales), kept as it is; ``economics.value`` is then the value
    of one unit and the model spec needs a learner that regresses it (``dr``)."""
    cluster: str | None = None
    """Column with the unit of randomisation (household, school, postcode) when people were randomised in groups."""
    economics: MappingEconomics | None = None

    @model_validator(mode="after")
    def _one_outcome_rule(self) -> ColumnMapping:
        if self.positive is not None and self.threshold is not None:
            raise ValueError("give positive (a label) or threshold (a number), not both")
        if self.outcome_kind == "continuous" and (self.positive is not None or self.threshold is not None):
            raise ValueError("a continuous outcome is kept as it is: drop positive / threshold, or use them with "
                             "outcome_kind: binary")
        return self


def _where(path: Path, mapping: ColumnMapping, source: str | None) -> str:
    return f"{path} (mapping {source or repr(mapping.name)})"


def _binary_outcome(raw: pd.Series, mapping: ColumnMapping, outcome: str, where: str) -> np.ndarray:
    """The outcome as 0/1 (by the mapping's positive label or threshold, or as given), or the amount as it is for a
    continuous outcome."""
    if mapping.positive is not None:
        text = raw.astype(str).str.strip()
        if not (text == mapping.positive).any():
            seen = sorted(text.unique().tolist())[:10]
            raise SchemaError(f"{where}: key 'positive': label {mapping.positive!r} never occurs in column "
                              f"{outcome!r}; expected one of its labels {seen}")
        return (text == mapping.positive).to_numpy(np.int64)
    y = pd.to_numeric(raw, errors="coerce")
    if mapping.outcome_kind == "continuous":
        bad = ~np.isfinite(y.to_numpy(float))
        if bad.any():
            raise SchemaError(f"{where}: column {outcome!r}: expected finite numbers (key 'outcome_kind' is "
                              f"continuous); {int(bad.sum())} row(s) break it (e.g. {raw[bad].iloc[0]!r})")
        return y.to_numpy(float)
    if mapping.threshold is not None:
        if y.isna().any():
            raise SchemaError(f"{where}: column {outcome!r}: expected numbers to compare with key 'threshold' "
                              f"{mapping.threshold:g}; {int(y.isna().sum())} row(s) are not "
                              f"(e.g. {raw[y.isna()].iloc[0]!r})")
        above = (y > mapping.threshold).to_numpy()
        if above.all() or not above.any():
            raise SchemaError(f"{where}: key 'threshold' {mapping.threshold:g}: expected some values of column "
                              f"{outcome!r} above it and some not; {'all' if above.all() else 'none'} are")
        return above.astype(np.int64)
    bad = ~y.isin([0, 1])
    if bad.any():
        raise SchemaError(f"{where}: column {outcome!r}: expected 0/1 (or declare 'positive' or 'threshold' in the "
                          f"mapping); {int(bad.sum())} row(s) break it (e.g. {raw[bad].iloc[0]!r})")
    return y.to_numpy(np.int64)


def _economics(mapping: ColumnMapping, labels: set[str], where: str) -> Economics | None:
    """The mapping's economics with arm labels turned into arm names; unknown labels fail."""
    declared = mapping.economics
    if declared is None:
        return None
    unknown = sorted(set(declared.costs) - labels)
    if unknown:
        raise SchemaError(f"{where}: key 'economics.costs': arm(s) {unknown} are not labels of column "
                          f"{mapping.treatment!r}; expected some of {sorted(labels)}")
    return Economics(value=declared.value, costs={slug(k): v for k, v in declared.costs.items()},
                     budget_per_person=declared.budget_per_person)


def _wanted_columns(mapping: ColumnMapping, outcome: str) -> list[str]:
    costs = [c for c in (mapping.economics.costs.values() if mapping.economics else ()) if isinstance(c, str)]
    extra = [c for c in (mapping.id_column, mapping.cluster) if c]
    return list(dict.fromkeys([mapping.treatment, outcome, *mapping.features, *extra, *costs]))


def load_experiment_csv(path: str | Path, mapping: ColumnMapping, *, outcome: str | None = None,
                        mapping_source: str | None = None) -> TrainingTable:
    """Read ``path`` and return the training table the mapping describes (one wave).

    ``mapping_source`` (the mapping's file) is named in error messages. Cost columns are kept in the
    table's frame under their own names (scoring reads them from the same columns); the cluster
    column becomes ``cluster``.

    Raises
    ------
    SchemaError
        A column the mapping needs is missing, the outcome cannot be read as 0/1 under the mapping's rule,
        a cost is declared for an arm the file does not have, or a cost column holds a negative number.
    """
    path = Path(path)
    where = _where(path, mapping, mapping_source)
    outcome = outcome or mapping.outcomes[0]
    if outcome not in mapping.outcomes:
        raise SchemaError(f"{where}: outcome {outcome!r} is not declared in key 'outcomes'; "
                          f"valid: {list(mapping.outcomes)}")
    raw = read_table(path)
    missing = [c for c in _wanted_columns(mapping, outcome) if c not in raw.columns]
    if missing:
        raise SchemaError(f"{where}: missing column(s) {missing} required by the mapping")
    labels = raw[mapping.treatment].astype(str)
    if mapping.control not in set(labels):
        raise SchemaError(f"{where}: column {mapping.treatment!r} has no control rows labelled {mapping.control!r}")
    y = _binary_outcome(raw[outcome], mapping, outcome, where)
    economics = _economics(mapping, set(labels), where)
    arm = labels.map(slug)
    control = slug(mapping.control)
    arms = (control, *sorted(set(arm) - {control}))
    if mapping.design_shares:
        shares = {slug(k): float(v) for k, v in mapping.design_shares.items()}
    else:
        shares = arm.value_counts(normalize=True).to_dict()
    if set(shares) != set(arms):
        raise SchemaError(f"{where}: design shares given for {sorted(shares)} but the arms are {sorted(arms)}")
    features = tuple(FeatureColumn(name, kind) for name, kind in mapping.features.items())
    person = raw[mapping.id_column].astype(str) if mapping.id_column else pd.Series(np.arange(len(raw))).astype(str)
    parts = [
        pd.DataFrame({"person_id": person.to_numpy(), "wave": 1, "arm": arm.to_numpy(), "outcome": y}),
        pd.DataFrame({f"{PROPENSITY_PREFIX}{a}": np.full(len(raw), shares[a]) for a in arms}),
        raw[list(mapping.features)].reset_index(drop=True),
    ]
    if mapping.cluster:
        parts.append(pd.DataFrame({CLUSTER_COLUMN: raw[mapping.cluster].astype(str).to_numpy()}))
    cost_columns = [c for c in (economics.columns if economics else ()) if c not in mapping.features]
    if cost_columns:
        parts.append(raw[cost_columns].reset_index(drop=True))
    frame = pd.concat(parts, axis=1)
    if economics is not None:
        economics.cost_matrix(frame, arms, source=where)  # every per-person cost is a number >= 0
    return TrainingTable(frame=frame, features=features, arms=arms, control=control, outcome=outcome,
                         source=str(path), economics=economics, outcome_kind=mapping.outcome_kind)
