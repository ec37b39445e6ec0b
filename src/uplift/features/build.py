"""Point-in-time training and scoring tables built from the three validated inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.errors import DataError
from uplift.features.context import build_context
from uplift.features.library import columns_of, compute
from uplift.features.outcome import label_outcome
from uplift.features.propensity import design_table, row_propensities
from uplift.specs.features import FeatureSetSpec
from uplift.trainingtable import PROPENSITY_PREFIX, FeatureColumn, TrainingTable
from uplift.vocabulary import arm_name

__all__ = ["build_training_table", "build_features", "feature_columns", "arms_of"]


def feature_columns(spec: FeatureSetSpec) -> tuple[FeatureColumn, ...]:
    """The model input columns the feature set produces, in order."""
    return tuple(c for name in spec.features for c in columns_of(name, spec.channels, spec.messages))


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
    """
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

    Inputs must already satisfy the contracts in :mod:`uplift.schemas`.
    """
    arms = arms_of(spec)
    unknown = sorted(set(exposures["arm"].unique()) - set(arms))
    if unknown:
        raise DataError(
            f"exposures: column 'arm' has {unknown} which the feature set {spec.name!r} does not declare "
            f"(its messages x channels plus {spec.control_arm!r})"
        )
    ex = exposures.sort_values(["wave", "person_id"], kind="stable").reset_index(drop=True)
    keys = pd.DataFrame({"person_id": ex["person_id"], "wave": ex["wave"], "as_of": ex["assigned_at"]})
    features = build_features(keys, audience, exposures, enrolments, spec)
    propensity = row_propensities(ex["wave"].to_numpy(), design_table(ex, arms))
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
