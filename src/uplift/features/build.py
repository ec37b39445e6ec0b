"""Point-in-time training and scoring tables built from the three validated inputs."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

from uplift.data.trainingtable import PROPENSITY_PREFIX, FeatureColumn, TrainingTable
from uplift.data.vocabulary import arm_name
from uplift.errors import DataError, MissingAttributesWarning, SchemaError
from uplift.features.context import build_context
from uplift.features.library import columns_of, compute, resolve
from uplift.features.outcome import label_outcome
from uplift.features.propensity import design_keys, design_table, row_propensities
from uplift.specs.features import FeatureSetSpec

__all__ = [
    "build_training_table",
    "build_features",
    "feature_columns",
    "arms_of",
    "missing_attributes",
    "features_for_audience",
]


def feature_columns(spec: FeatureSetSpec) -> tuple[FeatureColumn, ...]:
    """The model input columns the feature set produces, in order."""
    return tuple(c for name in spec.features for c in columns_of(name, spec))


def missing_attributes(spec: FeatureSetSpec, columns: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Per feature of ``spec`` that reads an attribute absent from ``columns``: the absent attributes."""
    present = set(columns)
    out = {}
    for name in spec.features:
        absent = tuple(a for a in resolve(name, spec).needs if a not in present)
        if absent:
            out[name] = absent
    return out


def features_for_audience(spec: FeatureSetSpec, columns: Iterable[str]) -> FeatureSetSpec:
    """``spec`` without the features whose attributes the audience (``columns``) lacks.

    Says (a :class:`~uplift.errors.MissingAttributesWarning`) which features were left out and which
    attributes they miss.

    Raises
    ------
    DataError
        No feature of ``spec`` can be computed from this audience.
    """
    skipped = missing_attributes(spec, columns)
    if not skipped:
        return spec
    kept = tuple(f for f in spec.features if f not in skipped)
    absent = sorted({a for attrs in skipped.values() for a in attrs})
    if not kept:
        raise DataError(f"feature set {spec.name!r}: the audience lacks {absent}, which every feature needs")
    warnings.warn(
        f"feature set {spec.name!r}: the audience has no {', '.join(absent)}; features left out: {', '.join(skipped)}",
        MissingAttributesWarning,
        stacklevel=2,
    )
    return spec.model_copy(update={"features": kept})


def arms_of(spec: FeatureSetSpec) -> tuple[str, ...]:
    """Control first, then every declared message x channel arm."""
    return (spec.control_arm, *(arm_name(m, c) for m in spec.messages for c in spec.channels))


def build_features(
    keys: pd.DataFrame,
    audience: pd.DataFrame,
    exposures: pd.DataFrame,
    enrolments: pd.DataFrame,
    spec: FeatureSetSpec,
) -> pd.DataFrame:
    """Features for each (person_id, wave, as_of) key from history strictly before ``as_of``.

    Used for training (keys = the wave's exposures) and for scoring a coming wave
    (keys = the audience with the planned assignment time), so both see the same code.

    Raises
    ------
    SchemaError
        The audience lacks an attribute a feature of ``spec`` reads (see :func:`features_for_audience`).
    """
    absent = missing_attributes(spec, audience.columns)
    if absent:
        needed = sorted({a for attrs in absent.values() for a in attrs})
        raise SchemaError(f"audience: missing column(s) {needed}, needed by feature(s) {list(absent)}")
    missing = sorted(set(keys["person_id"]) - set(audience["person_id"]))
    if missing:
        raise DataError(f"{len(missing)} person id(s) have history but no audience row (e.g. {missing[:3]})")
    ctx = build_context(keys, audience, exposures, enrolments, spec)
    frame = compute(ctx, spec.features)
    expected = [c.name for c in feature_columns(spec)]
    return frame[expected]


def build_training_table(
    audience: pd.DataFrame,
    exposures: pd.DataFrame,
    enrolments: pd.DataFrame,
    spec: FeatureSetSpec,
    *,
    source: str = "",
) -> TrainingTable:
    """One row per randomised (person, wave): features as of assignment, arm, outcome, propensities.

    Inputs must already satisfy the contracts in :mod:`uplift.data.contracts`. Features that need an
    attribute the audience lacks are left out, with one note (:func:`features_for_audience`).
    """
    arms = arms_of(spec)
    unknown = sorted(set(exposures["arm"].unique()) - set(arms))
    if unknown:
        raise DataError(
            f"exposures: column 'arm' has {unknown} which the feature set {spec.name!r} does not declare "
            f"(its messages x channels plus {spec.control_arm!r})"
        )
    spec = features_for_audience(spec, audience.columns)
    ex = exposures.sort_values(["wave", "person_id"], kind="stable").reset_index(drop=True)
    keys = pd.DataFrame({"person_id": ex["person_id"], "wave": ex["wave"], "as_of": ex["assigned_at"]})
    features = build_features(keys, audience, exposures, enrolments, spec)
    propensity = row_propensities(design_keys(ex), design_table(ex, arms))
    frame = pd.concat(
        [
            ex[["person_id", "wave", "assigned_at", "arm", "cost_eur"]],
            pd.DataFrame({"outcome": label_outcome(keys, enrolments, spec.outcome).astype(np.int64)}),
            propensity.add_prefix(PROPENSITY_PREFIX),
            features,
        ],
        axis=1,
    )
    return TrainingTable(
        frame=frame,
        features=feature_columns(spec),
        arms=arms,
        control=spec.control_arm,
        outcome=spec.outcome.describe(),
        source=source,
    )
