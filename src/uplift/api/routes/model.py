"""``GET /model``: the model in service (name, version, run, arms, features, metrics)."""

from __future__ import annotations

from fastapi import APIRouter

from uplift.api.deps import Bundle
from uplift.api.schemas import ErrorBody, FeatureInfo, ModelInfo

__all__ = ["router"]

router = APIRouter(tags=["model"])


@router.get("/model", response_model=ModelInfo, responses={503: {"model": ErrorBody, "description": "no model"}})
def model_info(bundle: Bundle) -> ModelInfo:
    """Which version of the registered model answers, its arms, the feature columns scores need, its metrics."""
    return ModelInfo(
        name=bundle.name,
        version=bundle.version,
        alias=bundle.alias,
        run_id=bundle.run_id,
        arms=[a for a in bundle.arms if a != bundle.control],
        control=bundle.control,
        features=[FeatureInfo(name=n, kind=k) for n, k in bundle.features],
        metrics={k: v for k, v in bundle.metrics.items() if v == v and abs(v) != float("inf")},
        loaded_at=bundle.loaded_at,
    )
