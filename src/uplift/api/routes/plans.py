"""``POST /plans``, ``GET /plans``, ``GET /plans/{id}``, ``PATCH /plans/{id}``, ``POST /plans/{id}/approve``:
budget splits, each stored with inputs, model version, time, who made it, its name and note, and approval."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response

from uplift.api.auth import Caller
from uplift.api.deps import Bundle, Planner, Plans
from uplift.api.modelstore import ModelBundle
from uplift.api.planning import PlanService
from uplift.api.planstore import PlanLabels, PlanRecord, PlanStore, now
from uplift.api.redact import echo
from uplift.api.schemas import ErrorBody, PlanLabelsIn, PlanList, PlanRequest, PlanResponse, PlanSummary

__all__ = ["router", "store_plan"]

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
def create_plan(request: PlanRequest, bundle: Bundle, planner: Planner, store: Plans, caller: Caller) -> Response:
    """Split ``budget`` over the model's segments x arms; conflicting rules give status ``infeasible``.

    The plan is stored with the request, the model version and the time; the same request on the
    same model version is answered from a cache (with a new id and time, stored again).
    """
    record = store_plan(bundle, planner, store, request, labels=PlanLabels(created_by=caller))
    return Response(record.response_json, media_type="application/json")


def store_plan(bundle: ModelBundle, planner: PlanService, store: PlanStore, request: PlanRequest, *,
               labels: PlanLabels) -> PlanRecord:
    """Plan ``request`` on ``bundle`` and store it with ``labels``: what ``POST /plans`` and the planner's
    page do."""
    computed = planner.plan(bundle, request)
    plan_id, created_at = uuid.uuid4().hex, now()
    request_json = request.model_dump_json()
    record = PlanRecord(
        id=plan_id,
        created_at=created_at,
        model_name=computed.model_name,
        model_version=computed.model_version,
        status=computed.status,
        budget=request.budget,
        spend=computed.spend,
        expected_conversions=computed.expected_conversions,
        request_json=request_json,
        body_json=computed.fragment,
        labels=labels,
    )
    store.add(record, computed.packed)
    return record


PlanId = Annotated[str, Path(max_length=64)]


def _summary(r: PlanRecord) -> PlanSummary:
    return PlanSummary(id=r.id, created_at=r.created_at, model_name=r.model_name, model_version=r.model_version,
                       status=r.status, budget=r.budget, spend=r.spend, expected_conversions=r.expected_conversions,
                       approved_at=r.approved_at, approved_by=r.approved_by, **dataclasses.asdict(r.labels))


@router.get("/plans", response_model=PlanList)
def list_plans(
    store: Plans,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    approved: Annotated[bool | None, Query(description="true: approved plans only; false: unapproved only")] = None,
) -> PlanList:
    """Stored plans, newest first (unapproved plans expire under the service's retention rule)."""
    records, total = store.list(limit=limit, offset=offset, approved=approved)
    return PlanList(total=total, limit=limit, offset=offset, items=[_summary(r) for r in records])


@router.get("/plans/{plan_id}", response_model=PlanResponse, responses={404: {"model": ErrorBody}})
def get_plan(store: Plans, plan_id: PlanId) -> Response:
    """A stored plan exactly as it was returned, with the request that made it and its approval."""
    record = store.get(plan_id)
    if record is None:
        raise HTTPException(404, f"no plan with id {echo(plan_id)}")
    return Response(record.response_json, media_type="application/json")


@router.post("/plans/{plan_id}/approve", response_model=PlanSummary, responses={404: {"model": ErrorBody}})
def approve_plan(store: Plans, plan_id: PlanId, caller: Caller) -> PlanSummary:
    """Approve a stored plan in the name of the caller's token (its name, never the token). Approved plans
    are kept whatever the retention rule; approving an approved plan changes nothing and returns it."""
    record = store.approve(plan_id, by=caller, at=now())
    if record is None:
        raise HTTPException(404, f"no plan with id {echo(plan_id)} (never stored, or expired unapproved)")
    return _summary(record)


@router.patch(
    "/plans/{plan_id}",
    response_model=PlanSummary,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody, "description": "the plan is approved"},
               422: {"model": ErrorBody, "description": "invalid labels, or `supersedes` names no other stored plan"}},
)
def label_plan(store: Plans, plan_id: PlanId, labels: PlanLabelsIn) -> PlanSummary:
    """Name a stored plan, note on it, or say which plan it supersedes; 409 once it is approved (approved plans
    are not edited: a new plan supersedes them)."""
    record = store.label(plan_id, name=labels.name, note=labels.note, supersedes=labels.supersedes)
    if record is None:
        raise HTTPException(404, f"no plan with id {echo(plan_id)} (never stored, or expired unapproved)")
    return _summary(record)
