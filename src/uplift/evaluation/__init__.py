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
    FLOOR_COLUMNS,
    PLAN_SCORE_COLUMNS,
    PlanComparison,
    compare_with_oracle,
    score_plan,
    true_effects_table,
)
from uplift.evaluation.trueform import (
    FittedForm,
    TrueForm,
    fit_true_form,
    people_for_rows,
    shown_before,
    true_form,
)

__all__ = [
    "FLOOR_COLUMNS",
    "FRONTIER_COLUMNS",
    "FittedForm",
    "PLAN_SCORE_COLUMNS",
    "PlanComparison",
    "TrueForm",
    "compare_with_oracle",
    "equivalent_noise_ratio",
    "fit_true_form",
    "noise_frontier",
    "people_for_rows",
    "reference_estimates",
    "score_plan",
    "shown_before",
    "target_ratio",
    "true_effects_table",
    "true_form",
    "with_arm_levels",
]
