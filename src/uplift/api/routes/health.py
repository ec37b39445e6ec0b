"""``GET /health``: is a model in service; open without a token, the details only with one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from uplift.api.auth import caller_or_none
from uplift.api.deps import Config, Store
from uplift.api.schemas import Health, HealthStatus

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=Health | HealthStatus,
    responses={200: {"description": "with a valid token the details (`Health`), else the status only"},
               503: {"model": Health | HealthStatus, "description": "down: no model to serve"}},
)
def health(store: Store, settings: Config, caller: Annotated[str | None, Depends(caller_or_none)]) -> JSONResponse:
    """``ok``, ``degraded`` (serving the last good version) or ``down`` (503: no model). Without a valid
    token only the status; with one also why, which version and run, since when, and the compute processes."""
    bundle = store.bundle
    status = store.status
    shown = "down" if bundle is None else "degraded" if status.status != "ok" else "ok"
    code = 503 if bundle is None else 200
    if caller is None:
        return JSONResponse(HealthStatus(status=shown).model_dump(mode="json"), status_code=code)
    body = Health(
        status=shown,
        reason=status.reason,
        model_name=settings.registered_model,
        alias=settings.alias,
        model_version=bundle.version if bundle else None,
        run_id=bundle.run_id if bundle else None,
        loaded_at=bundle.loaded_at if bundle else None,
        checked_at=status.checked_at,
        compute_processes=bundle.compute.processes if bundle is not None and bundle.compute is not None else 0,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=code)
