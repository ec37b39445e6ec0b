"""Dependencies the routers declare (``Annotated`` aliases): settings, the model bundle, the plan store."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from uplift.api.modelstore import ModelBundle, ModelStore
from uplift.api.planning import PlanService
from uplift.api.planstore import PlanStore
from uplift.api.settings import ServiceSettings

__all__ = ["Bundle", "Config", "Planner", "Plans", "Store", "get_bundle"]


def _settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


def _store(request: Request) -> ModelStore:
    return request.app.state.model_store


def get_bundle(request: Request) -> ModelBundle:
    """The bundle in service; 503 when no model has been loaded."""
    store: ModelStore = request.app.state.model_store
    bundle = store.bundle
    if bundle is None:
        reason = store.status.reason or "no model loaded"
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"no model: {reason}", headers={"Retry-After": "30"})
    return bundle


def _plans(request: Request) -> PlanStore:
    return request.app.state.plan_store


def _planner(request: Request) -> PlanService:
    return request.app.state.planner


Config = Annotated[ServiceSettings, Depends(_settings)]
Store = Annotated[ModelStore, Depends(_store)]
Bundle = Annotated[ModelBundle, Depends(get_bundle)]
Plans = Annotated[PlanStore, Depends(_plans)]
Planner = Annotated[PlanService, Depends(_planner)]
