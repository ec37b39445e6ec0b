"""``GET /segments``: the model's per segment x arm effects with intervals, filtered and paged, as released."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Request

from uplift.api.deps import Bundle, Config
from uplift.api.modelstore import ModelBundle, safe_segments
from uplift.api.schemas import ErrorBody, SegmentEffect, SegmentPage
from uplift.disclosure import WITHHELD

__all__ = ["router"]

router = APIRouter(tags=["segments"])

_FIELDS = ("segment", "kind", "size", "arm", "message", "channel", "base_rate", "effect", "effect_sd", "lo", "hi",
           "observed", "observed_se", "people_treated", "people_control", "age_band", "gender", "municipality",
           "persona")


def _released(bundle: ModelBundle, request: Request) -> pd.DataFrame:
    """The bundle's released table (one made from the planner's table when the bundle came without one)."""
    if bundle.released is not None:
        return bundle.released
    from uplift.segments.release import without_raw_figures

    return without_raw_figures(bundle.segments, request.app.state.disclosure,
                               f"model version {bundle.version} was loaded without a released segment table")


def _value(v: Any) -> Any:
    """A JSON value: None for a suppressed count or a withheld figure."""
    if v is None or v is pd.NA or (isinstance(v, float) and not np.isfinite(v)):
        return None
    return int(v) if isinstance(v, np.integer) else v


@router.get("/segments", response_model=SegmentPage, responses={503: {"model": ErrorBody, "description": "no model"}})
def list_segments(
    bundle: Bundle,
    settings: Config,
    request: Request,
    kind: Annotated[str | None, Query(description="targetable or persona", max_length=50)] = None,
    arm: Annotated[str | None, Query(description="exact arm, 'message@channel'", max_length=200)] = None,
    message: Annotated[str | None, Query(max_length=200)] = None,
    channel: Annotated[str | None, Query(max_length=200)] = None,
    segment: Annotated[str | None, Query(description="substring of the segment label", max_length=200)] = None,
    min_effect: Annotated[float | None,
                          Query(description="only effects at least this large", allow_inf_nan=False)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> SegmentPage:
    """Per segment and arm: size, base rate, calibrated effect, its sd and interval; largest effect first.

    Counts and raw figures are as the disclosure policy releases them: counts rounded, null below the
    threshold; base rates and observed differences null where they rest on too few people (``withheld``).
    """
    shown = safe_segments(bundle.segments, settings.min_segment_size)["segment"]
    table = _released(bundle, request)
    keep = table["segment"].isin(shown).to_numpy(copy=True)
    for column, value in (("kind", kind), ("arm", arm), ("message", message), ("channel", channel)):
        if value is not None:
            keep &= (table[column].astype(str) == value).to_numpy()
    if segment:
        keep &= table["segment"].astype(str).str.contains(segment, regex=False).to_numpy()
    if min_effect is not None:
        keep &= table["effect"].to_numpy(float) >= min_effect
    rows = table[keep].sort_values(["effect", "segment", "arm"], ascending=[False, True, True])
    page = rows.iloc[offset : offset + limit]
    items = []
    for rec in page.to_dict("records"):
        item = {k: _value(rec.get(k)) for k in _FIELDS}
        reasons = str(rec.get(WITHHELD) or "")
        items.append(SegmentEffect(**item, withheld=[r for r in reasons.split("; ") if r], interval=bundle.interval))
    return SegmentPage(model_version=bundle.version, total=int(keep.sum()), limit=limit, offset=offset, items=items)
