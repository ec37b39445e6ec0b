"""Experiment design and analysis: randomised assignment, power, per-arm effects, SRM, summaries.

Pure functions over DataFrames and an :class:`~uplift.specs.experiment.ExperimentSpec`; no I/O.
"""

from __future__ import annotations

from uplift.design.analysis import EFFECT_COLUMNS, Analysis, analyze
from uplift.design.assignment import (
    ASSIGNMENT_COLUMNS,
    EXPOSURE_COLUMNS,
    assign,
    hash_uniform,
    stratum_balance,
    to_exposures,
)
from uplift.design.power import holdout_n_needed, power_at, power_table
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
    "SampleRatioCheck",
    "age_band",
    "analyze",
    "assign",
    "design_shares",
    "hash_uniform",
    "holdout_n_needed",
    "power_at",
    "power_table",
    "srm_check",
    "stratum_balance",
    "stratum_keys",
    "summary_text",
    "to_exposures",
]
