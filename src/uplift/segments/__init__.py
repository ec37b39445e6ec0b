"""Segments (targetable cells and personas) and calibrated per-arm effects with intervals for each."""

from uplift.segments.assign import PERSONA_NONE, assign_personas, targetable_cells
from uplift.segments.effects import fay_herriot
from uplift.segments.estimator import KindRows, segment_effects
from uplift.segments.release import planner_table, released_segments
from uplift.segments.stages import STAGES, StageChoice, select_stages, stage_table
from uplift.segments.table import (
    SEGMENT_COLUMNS,
    build_segment_table,
    columns_read,
    truth_persona_mix,
    truth_segment_effects,
)

__all__ = [
    "KindRows",
    "PERSONA_NONE",
    "SEGMENT_COLUMNS",
    "STAGES",
    "StageChoice",
    "assign_personas",
    "build_segment_table",
    "columns_read",
    "fay_herriot",
    "planner_table",
    "released_segments",
    "segment_effects",
    "select_stages",
    "stage_table",
    "targetable_cells",
    "truth_persona_mix",
    "truth_segment_effects",
]
