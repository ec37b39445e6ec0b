"""Scoring decisions against a known truth: plans versus the oracle plan on the simulator (pure functions)."""

from uplift.evaluation.plans import (
    PLAN_SCORE_COLUMNS,
    FLOOR_COLUMNS,
    PlanComparison,
    compare_with_oracle,
    score_plan,
    true_effects_table,
)

__all__ = [
    "FLOOR_COLUMNS",
    "PLAN_SCORE_COLUMNS",
    "PlanComparison",
    "compare_with_oracle",
    "score_plan",
    "true_effects_table",
]
