"""``POST /plans/{id}/handoff``: a stored plan as the files its channels run on (a zip archive)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from uplift.api.deps import Bundle, Config, Planner, Plans
from uplift.api.modelstore import safe_segments
from uplift.api.redact import echo
from uplift.api.schemas import ErrorBody, PlanRequest

__all__ = ["HandoffRequest", "router"]

router = APIRouter(tags=["plans"])


class HandoffRequest(BaseModel):
    """Which wave the plan's links are for and when it starts."""

    model_config = ConfigDict(extra="forbid")
    wave: int = Field(ge=1, le=100_000, description="the wave the plan is for (utm_campaign=wave-<n>)")
    start: dt.date = Field(description="first day of the wave (ad sets run the hand-off declaration's days)")


@router.post(
    "/plans/{plan_id}/handoff",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}, "description": "one file per channel, holdout.csv, utm_key.csv and "
                                                                  "manifest.json (docs/handoff.md)"},
        404: {"model": ErrorBody, "description": "no such plan"},
        409: {"model": ErrorBody,
              "description": "the plan was made with another model version than the one in service"},
        422: {"model": ErrorBody, "description": "a channel without a hand-off declaration, or an invalid body"},
    },
)
def plan_handoff(plan_id: Annotated[str, Path(max_length=64)], body: HandoffRequest, store: Plans, planner: Planner,
                 bundle: Bundle, settings: Config) -> Response:
    """The hand-off of a stored plan: ad sets, print runs per neighbourhood and mailings with UTM-tagged links,
    the holdout per line and a manifest whose totals add up to the plan; places from the region declaration. A plan
    with print runs per unit (``unit_lines``) hands each over as one print run, as planned."""
    from uplift.handoff import areas_from_region, handoff_archive, handoff_tables
    from uplift.specs import load_spec, project_root
    from uplift.specs.handoff import HandoffSpec
    from uplift.specs.region import RegionSpec

    record = store.get(plan_id)
    if record is None:
        raise HTTPException(404, f"no plan with id {echo(plan_id)}")
    if (record.model_name, record.model_version) != (bundle.name, bundle.version):
        raise HTTPException(409, f"plan {echo(plan_id)} was made with {record.model_name} v{record.model_version}; the "
                                 f"service has v{bundle.version}, whose segments may differ: plan again")
    stored = json.loads(record.response_json)
    request = PlanRequest.model_validate(stored["request"])
    costs, policy = planner.rules_for(request)
    spec = load_spec(project_root() / "serve" / "handoff.yaml", HandoffSpec)
    areas = areas_from_region(load_spec(project_root() / spec.region, RegionSpec))
    segments = safe_segments(bundle.segments_of(request.kind), settings.min_segment_size)["segment"]
    cells = pd.DataFrame(stored["cells"], columns=["segment", "arm", "message", "channel", "contacts",
                                                   "holdout_people", "spend"])
    handoff = handoff_tables(cells, costs=costs, policy=policy, spec=spec, areas=areas, wave=body.wave,
                             start=body.start, min_size=settings.min_segment_size, segments=segments,
                             unit_lines=_unit_lines(stored.get("unit_lines")))
    name = f"handoff-{plan_id[:12]}-wave-{body.wave}.zip"
    return Response(handoff_archive(handoff), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _unit_lines(stored: list[dict] | None) -> pd.DataFrame | None:
    """A stored plan's print runs (:class:`~uplift.api.schemas.UnitLineOut`) as the planner's flyer lines
    (:data:`uplift.allocation.unitrows.UNIT_LINE_COLUMNS`); None for a plan without them."""
    from uplift.allocation.unitrows import UNIT_LINE_COLUMNS

    if stored is None:
        return None
    lines = pd.DataFrame(stored, columns=list(UNIT_LINE_COLUMNS))
    lines["postcodes"] = ["+".join(p) for p in lines["postcodes"]]
    lines["segments"] = [tuple(s) for s in lines["segments"]]
    return lines
