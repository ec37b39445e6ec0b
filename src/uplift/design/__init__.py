"""Experiment design and analysis: assignment (also from a plan), power, per-arm effects, verdicts over many arms,
SRM, summaries, and what a plan promised against what its wave delivered.

Pure functions over DataFrames and an :class:`~uplift.specs.experiment.ExperimentSpec`; no I/O.
"""

from __future__ import annotations

from uplift.design.analysis import EFFECT_COLUMNS, Analysis, Inference, analyze
from uplift.design.assignment import (
    ASSIGNMENT_COLUMNS,
    EXPOSURE_COLUMNS,
    assign,
    hash_uniform,
    stratum_balance,
    to_exposures,
)
from uplift.design.fromplan import PlanDesign, design_from_plan, registered_people
from uplift.design.multiplicity import FamilyAdjustment, adjust_family
from uplift.design.power import detectable_effect, holdout_n_needed, power_at, power_table
from uplift.design.promised import Calibration, PlanOutcome, promised_and_delivered
from uplift.design.rates import clopper_pearson, difference_interval, difference_p_value
from uplift.design.shares import design_shares
from uplift.design.srm import SRM_THRESHOLD, SampleRatioCheck, srm_check
from uplift.design.strata import AGE_BANDS, age_band, stratum_keys
from uplift.design.summary import summary_text

__all__ = [
    "AGE_BANDS",
    "ASSIGNMENT_COLUMNS",
    "EFFECT_COLUMNS",
    "EXPOSURE_COLUMNS",
    "SRM_THRESHOLD",
    "Analysis",
    "Calibration",
    "FamilyAdjustment",
    "Inference",
    "PlanDesign",
    "PlanOutcome",
    "SampleRatioCheck",
    "adjust_family",
    "age_band",
    "analyze",
    "assign",
    "clopper_pearson",
    "design_from_plan",
    "design_shares",
    "detectable_effect",
    "difference_interval",
    "difference_p_value",
    "hash_uniform",
    "holdout_n_needed",
    "power_at",
    "power_table",
    "promised_and_delivered",
    "registered_people",
    "srm_check",
    "stratum_balance",
    "stratum_keys",
    "summary_text",
    "to_exposures",
]
