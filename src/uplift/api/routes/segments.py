"""``GET /segments``: the model's per segment x arm effects with intervals, filtered and paged."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query

from uplift.api.deps import Bundle, Config
from uplift.api.modelstore import safe_segments
from uplift.api.schemas import ErrorBody, SegmentEffect, SegmentPage

__all__ = ["router"]

router = APIRouter(tags=["segments"])

_OPTIONAL = ("observed", "observed_se", "n_treated", "n_control", "age_band", "gender", "municipality", "persona")


@router.get("/segments", response_model=SegmentPage, responses={503: {"model": ErrorBody, "description": "no model"}})
def list_segments(
    bundle: Bundle,
    settings: Config,
    kind: Annotated[str | None, Query(description="targetable or persona", max_length=50)] = None,
    arm: Annotated[str | None, Query(description="exact arm, 'message@channel'", max_length=200)] = None,
    message: Annotated[str | None, Query(max_length=200)] = None,
    channel: Annotated[str | None, Query(max_length=200)] = None,
    segment: Annotated[str | None, Query(description="substring of the segment label", max_length=200)] = None,
    min_effect: Annotated[float | None, Query(description="only effects at least this large", allow_inf_nan=False)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> SegmentPage:
    """Per segment and arm: size, base rate, calibrated effect, its sd and interval; largest effect first."""
    table = safe_segments(bundle.segments, settings.min_segment_size)
    keep = np.ones(len(table), dtype=bool)
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
        item = {k: rec[k] for k in ("segment", "kind", "size", "arm", "message", "channel", "base_rate", "effect",
                                    "effect_sd", "lo", "hi")}
        for k in _OPTIONAL:
            v = rec.get(k)
            item[k] = None if v is None or (isinstance(v, float) and not np.isfinite(v)) else v
        items.append(SegmentEffect(**item, interval=bundle.interval))
    return SegmentPage(model_version=bundle.version, total=int(keep.sum()), limit=limit, offset=offset, items=items)
