"""``POST /scores``: per row the uplift of every arm and the targeting rule's best arm."""

from __future__ import annotations

from fastapi import APIRouter

from uplift.api.deps import Bundle, Config
from uplift.api.handlers import RequestFieldError
from uplift.api.schemas import ErrorBody, ScoreRequest, ScoreResponse
from uplift.api.scoring import rows_to_frame, score_rows

__all__ = ["router"]

router = APIRouter(tags=["scores"])


@router.post(
    "/scores",
    response_model=ScoreResponse,
    responses={422: {"model": ErrorBody, "description": "a row lacks a feature or has a mistyped one"},
               503: {"model": ErrorBody, "description": "no model"}},
)
def score(request: ScoreRequest, bundle: Bundle, settings: Config) -> ScoreResponse:
    """Score anonymised rows (the feature columns of GET /model); at most ``max_score_rows`` rows."""
    if len(request.rows) > settings.max_score_rows:
        raise RequestFieldError(
            f"rows: {len(request.rows)} rows; at most {settings.max_score_rows} per request", ("body", "rows"),
            "too_long",
        )
    frame = rows_to_frame(request.rows, bundle.features)
    return ScoreResponse(**score_rows(bundle, frame, shrunk=request.shrunk))
