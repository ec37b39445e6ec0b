"""Scoring one validated audience chunk: features as of the planned wave, per-arm uplift, best arm, segment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from uplift.data.vocabulary import split_arm
from uplift.errors import SchemaError
from uplift.features import build_features, feature_columns
from uplift.features.library import columns_of
from uplift.modeling.targeting import recommend
from uplift.scoring.labels import SegmentLabeler
from uplift.specs.features import FeatureSetSpec

if TYPE_CHECKING:
    from uplift.tracking.pyfunc import UpliftPyfunc

__all__ = ["UPLIFT_PREFIX", "NET_PREFIX", "Scorer", "score_chunk", "score_features", "model_feature_set",
           "effect_columns", "score_columns"]

UPLIFT_PREFIX = "uplift__"
"""Output column prefix: ``uplift__<arm>`` = shrunk estimated uplift of the arm (probability points)."""
NET_PREFIX = "net__"
"""Output column prefix of a model with economics: ``net__<arm>`` = value x shrunk uplift - incremental cost."""


def score_columns(model: "UpliftPyfunc") -> list[str]:
    """The per-person output columns of ``model``: uplift per arm, net value per arm (with economics), the rule's
    arm, its uplift and (with economics) its net value."""
    net = model.rule_economics is not None
    return [*(UPLIFT_PREFIX + a for a in model.arms), *((NET_PREFIX + a for a in model.arms) if net else ()),
            "best_arm", "best_uplift", *(("best_net",) if net else ())]


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
        update={"messages": tuple(dict.fromkeys(m for m, _ in arms)),
                "channels": tuple(dict.fromkeys(c for _, c in arms))}
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
        return ["person_id", *score_columns(self.model), "segment", "persona"]

    def arrow_schema(self) -> pa.Schema:
        """The output's Arrow schema (every chunk is written with it)."""
        return pa.schema([pa.field(c, pa.string() if c in ("person_id", "best_arm", "segment", "persona")
                                   else pa.float64()) for c in self.columns])


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
    effects = model.effects(features, shrunk=True)
    inputs = features.join(audience[model.cost_columns].set_axis(features.index)) if model.cost_columns else features
    best, net = model.decide(inputs, shrunk_effects=effects)
    out.update(effect_columns(effects, model.control, best=best, net=net))
    out.update(segment=scorer.labeler.segments(audience), persona=scorer.labeler.personas(audience))
    return pd.DataFrame(out)[scorer.columns]


def _at(values: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Per row the value in column ``col`` (0 where ``col`` is -1: the control)."""
    return np.where(col >= 0, values[np.arange(len(values)), np.maximum(col, 0)], 0.0)


def effect_columns(effects: pd.DataFrame, control: str, *, best: np.ndarray | None = None,
                   net: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
    """``uplift__<arm>`` per arm, ``best_arm`` (default: the arm of largest positive uplift, the control when none
    helps) and ``best_uplift`` (0 for the control); with ``net`` (net value per arm) also ``net__<arm>`` and
    ``best_net`` (0 for the control)."""
    best = recommend(effects, control) if best is None else best
    values = effects.to_numpy(float)
    col = pd.Index(effects.columns).get_indexer(best)
    out = {UPLIFT_PREFIX + a: values[:, i] for i, a in enumerate(effects.columns)}
    if net is not None:
        net_values = net[list(effects.columns)].to_numpy(float)
        out.update({NET_PREFIX + a: net_values[:, i] for i, a in enumerate(effects.columns)})
    out.update(best_arm=best, best_uplift=_at(values, col))
    if net is not None:
        out["best_net"] = _at(net_values, col)
    return out


def score_features(rows: pd.DataFrame, *, model: "UpliftPyfunc") -> pd.DataFrame:
    """Shrunk uplift per arm, the rule's arm and its uplift (with economics: net value per arm and of the arm) for
    rows that carry the model's feature columns (and cost columns)."""
    effects = model.effects(rows[model.feature_names] if model.cost_columns else rows, shrunk=True)
    best, net = model.decide(rows, shrunk_effects=effects)
    return pd.DataFrame(effect_columns(effects, model.control, best=best, net=net), index=rows.index)
