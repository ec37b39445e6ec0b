"""``POST /plans``, ``GET /plans``, ``GET /plans/{id}``: budget splits, each stored with inputs, model version, time."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from uplift.api.deps import Bundle, Planner, Plans
from uplift.api.planstore import PlanRecord, now
from uplift.api.schemas import ErrorBody, PlanList, PlanRequest, PlanResponse, PlanSummary

__all__ = ["router"]

router = APIRouter(tags=["plans"])


@router.post(
    "/plans",
    response_model=PlanResponse,
    responses={
        409: {"description": "strict=true and the policy's rules conflict (the conflicts are listed)"},
        422: {"model": ErrorBody, "description": "invalid body or override (the field is named)"},
        503: {"model": ErrorBody, "description": "no model"},
    },
)
def create_plan(request: PlanRequest, bundle: Bundle, planner: Planner, store: Plans) -> PlanResponse:
    """Split ``budget`` over the model's segments x arms; conflicting rules give status ``infeasible``."""
    body = planner.plan(bundle, request)
    response = PlanResponse(
        id=uuid.uuid4().hex,
        created_at=now(),
        model_name=bundle.name,
        model_version=bundle.version,
        request=request,
        **body,
    )
    store.add(
        PlanRecord(
            id=response.id,
            created_at=response.created_at,
            model_name=bundle.name,
            model_version=bundle.version,
            status=response.status,
            budget=request.budget,
            request=request.model_dump(mode="json"),
            response=response.model_dump(mode="json"),
        )
    )
    return response


@router.get("/plans", response_model=PlanList)
def list_plans(
    store: Plans,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> PlanList:
    """Stored plans, newest first."""
    records, total = store.list(limit=limit, offset=offset)
    items = [
        PlanSummary(
            id=r.id,
            created_at=r.created_at,
            model_name=r.model_name,
            model_version=r.model_version,
            status=r.status,
            budget=r.budget,
            spend=r.response["totals"]["spend"],
            expected_conversions=r.response["totals"]["expected_conversions"],
        )
        for r in records
    ]
    return PlanList(total=total, limit=limit, offset=offset, items=items)


@router.get("/plans/{plan_id}", response_model=PlanResponse, responses={404: {"model": ErrorBody}})
def get_plan(store: Plans, plan_id: Annotated[str, Path(max_length=64)]) -> PlanResponse:
    """A stored plan exactly as it was returned, with the request that made it."""
    record = store.get(plan_id)
    if record is None:
        raise HTTPException(404, f"no plan with id {plan_id!r}")
    return PlanResponse.model_validate(record.response)
