"""Scoring one validated audience chunk: features as of the planned wave, per-arm uplift, best arm, segment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from uplift.errors import SchemaError
from uplift.features import build_features, feature_columns
from uplift.features.library import columns_of
from uplift.modeling.targeting import recommend
from uplift.scoring.labels import SegmentLabeler
from uplift.specs.features import FeatureSetSpec
from uplift.vocabulary import split_arm

if TYPE_CHECKING:
    from uplift.tracking.pyfunc import UpliftPyfunc

__all__ = ["UPLIFT_PREFIX", "Scorer", "score_chunk", "score_features", "model_feature_set", "effect_columns"]

UPLIFT_PREFIX = "uplift__"
"""Output column prefix: ``uplift__<arm>`` = shrunk estimated uplift of the arm (probability points)."""


def model_feature_set(base: FeatureSetSpec, model: "UpliftPyfunc") -> FeatureSetSpec:
    """``base`` restricted to the model's messages and channels (the universes it was trained with) and to
    the features whose columns the model reads (a model trained without an absent attribute scores
    audiences without it).

    Raises
    ------
    SchemaError
        The feature set does not produce every column the model reads.
    """
    arms = [split_arm(a) for a in model.arms]
    spec = base.model_copy(
        update={"messages": tuple(dict.fromkeys(m for m, _ in arms)), "channels": tuple(dict.fromkeys(c for _, c in arms))}
    )
    produced = {c.name for c in feature_columns(spec)}
    missing = [n for n in model.feature_names if n not in produced]
    if missing:
        raise SchemaError(f"feature set {base.name!r} does not produce the model's feature column(s) {missing}")
    read = set(model.feature_names)
    used = tuple(f for f in spec.features if any(c.name in read for c in columns_of(f, spec)))
    return spec.model_copy(update={"features": used})


@dataclass(frozen=True)
class Scorer:
    """Everything needed to score a chunk: the model, its feature set and the segment labeler."""

    model: "UpliftPyfunc"
    feature_set: FeatureSetSpec
    labeler: SegmentLabeler

    @property
    def columns(self) -> list[str]:
        """Output columns in order."""
        return ["person_id", *(UPLIFT_PREFIX + a for a in self.model.arms), "best_arm", "best_uplift", "segment", "persona"]

    def arrow_schema(self) -> pa.Schema:
        """The output's Arrow schema (every chunk is written with it)."""
        fields = [pa.field("person_id", pa.string())]
        fields += [pa.field(UPLIFT_PREFIX + a, pa.float64()) for a in self.model.arms]
        fields += [pa.field("best_arm", pa.string()), pa.field("best_uplift", pa.float64()),
                   pa.field("segment", pa.string()), pa.field("persona", pa.string())]
        return pa.schema(fields)


def score_chunk(
    audience: pd.DataFrame,
    *,
    scorer: Scorer,
    exposures: pd.DataFrame,
    enrolments: pd.DataFrame,
    as_of: pd.Timestamp,
) -> pd.DataFrame:
    """Score validated audience rows for a wave assigned at ``as_of``.

    Features come from :func:`uplift.features.build_features` with history strictly before
    ``as_of`` (the same code as training). Uplift columns are the shrunk estimates the targeting
    rule acts on; ``best_arm`` is :func:`~uplift.modeling.targeting.recommend` over them (the
    control when no arm is estimated to help) and ``best_uplift`` its uplift (0 for the control).

    Parameters
    ----------
    audience : rows that satisfy the audience contract (not modified).
    scorer : the model, its feature set and the segment labeler.
    exposures, enrolments : the validated history (may be empty).
    as_of : planned assignment time (UTC).

    Returns
    -------
    DataFrame with :attr:`Scorer.columns`, one row per audience row, same order.
    """
    model = scorer.model
    keys = pd.DataFrame({"person_id": audience["person_id"].to_numpy(), "wave": 0, "as_of": as_of})
    features = build_features(keys, audience, exposures, enrolments, scorer.feature_set)[model.feature_names]
    out = {"person_id": audience["person_id"].to_numpy()}
    out.update(effect_columns(model.effects(features, shrunk=True), model.control))
    out.update(segment=scorer.labeler.segments(audience), persona=scorer.labeler.personas(audience))
    return pd.DataFrame(out)[scorer.columns]


def effect_columns(effects: pd.DataFrame, control: str) -> dict[str, np.ndarray]:
    """``uplift__<arm>`` per arm, ``best_arm`` (the control when no arm helps) and ``best_uplift`` (0 for the control)."""
    best = recommend(effects, control)
    values = effects.to_numpy(float)
    col = pd.Index(effects.columns).get_indexer(best)
    best_uplift = np.where(col >= 0, values[np.arange(len(values)), np.maximum(col, 0)], 0.0)
    out = {UPLIFT_PREFIX + a: values[:, i] for i, a in enumerate(effects.columns)}
    out.update(best_arm=best, best_uplift=best_uplift)
    return out


def score_features(rows: pd.DataFrame, *, model: "UpliftPyfunc") -> pd.DataFrame:
    """Shrunk uplift per arm, best arm and its uplift for rows that carry the model's feature columns."""
    return pd.DataFrame(effect_columns(model.effects(rows, shrunk=True), model.control), index=rows.index)
