"""Scoring decisions against a known truth: plans versus the oracle plan on the simulator (pure functions)."""

from uplift.evaluation.frontier import (
    FRONTIER_COLUMNS,
    equivalent_noise_ratio,
    noise_frontier,
    reference_estimates,
    target_ratio,
)
from uplift.evaluation.gap import with_arm_levels
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
    "FRONTIER_COLUMNS",
    "PLAN_SCORE_COLUMNS",
    "PlanComparison",
    "compare_with_oracle",
    "equivalent_noise_ratio",
    "noise_frontier",
    "reference_estimates",
    "score_plan",
    "target_ratio",
    "true_effects_table",
    "with_arm_levels",
]
