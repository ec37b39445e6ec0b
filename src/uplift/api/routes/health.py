"""``GET /health``: is a model in service, which version, since when; open without a token."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from uplift.api.deps import Config, Store
from uplift.api.schemas import Health

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health, "description": "no model to serve"}})
def health(store: Store, settings: Config):
    """Status of the model in service: ``ok``, ``degraded`` (serving the last good version) or ``no model`` (503)."""
    bundle = store.bundle
    status = store.status
    body = Health(
        status="no model" if bundle is None else status.status if status.status != "no model" else "degraded",
        reason=status.reason,
        model_name=settings.registered_model,
        alias=settings.alias,
        model_version=bundle.version if bundle else None,
        run_id=bundle.run_id if bundle else None,
        loaded_at=bundle.loaded_at if bundle else None,
        checked_at=status.checked_at,
        compute_processes=bundle.compute.processes if bundle is not None and bundle.compute is not None else 0,
    )
    if bundle is None:
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    return body
