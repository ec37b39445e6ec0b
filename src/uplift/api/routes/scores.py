"""``POST /scores``: per row the uplift of every arm and the targeting rule's best arm."""

from __future__ import annotations

from functools import partial

import pydantic_core
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from uplift.api.deps import Bundle, Config
from uplift.api.handlers import RequestFieldError
from uplift.api.modelstore import ModelBundle
from uplift.api.schemas import ErrorBody, ScoreRequest, ScoreResponse
from uplift.api.scoring import rows_to_frame, score_rows

__all__ = ["router", "score_body"]

router = APIRouter(tags=["scores"])

_BODY_SCHEMA = ScoreRequest.model_json_schema()


def score_body(raw: bytes, bundle: ModelBundle, max_rows: int) -> bytes:
    """The JSON answer to the request body ``raw``: parse, check, score, encode (in a compute worker
    or the request's thread)."""
    try:  # one pass of pydantic's JSON parser instead of json.loads + validation (a 1,000-row body is large)
        request = ScoreRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
    if len(request.rows) > max_rows:
        raise RequestFieldError(
            f"rows: {len(request.rows)} rows; at most {max_rows} per request", ("body", "rows"),
            "too_long",
        )
    frame = rows_to_frame(request.rows, bundle.features)
    return pydantic_core.to_json(score_rows(bundle, frame, shrunk=request.shrunk))  # Rust encoder: ~3x json.dumps


@router.post(
    "/scores",
    response_model=ScoreResponse,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}},
    responses={422: {"model": ErrorBody, "description": "a row lacks a feature or has a mistyped one"},
               503: {"model": ErrorBody, "description": "no model"}},
)
async def score(request: Request, bundle: Bundle, settings: Config) -> Response:
    """Score anonymised rows (the feature columns of GET /model); at most ``max_score_rows`` rows.

    Body: a ``ScoreRequest`` (``rows``: objects with every feature column; ``shrunk``).
    """
    raw = await request.body()
    local = partial(score_body, raw, bundle, settings.max_score_rows)
    if bundle.compute is None:
        body = await run_in_threadpool(local)
    else:
        body = await bundle.compute.arun("score", raw, settings.max_score_rows, local=local)
    return Response(body, media_type="application/json")
