"""Budget allocation: split a campaign budget over segments x arms with an LP (pure, no I/O).

Entry points: :func:`plan` (the split, with exploration, reference plans and conflict
explanations; :func:`prepare_plan` does its budget-independent half once) and :func:`evaluate_plan` (re-score any
plan's contacts under another effects
table, e.g. the simulator's truth). See ``docs/planning.md``.
"""

from __future__ import annotations

from uplift.allocation.effects import EFFECTS, check_effects
from uplift.allocation.planner import PreparedPlan, plan, prepare_plan, reference_plans
from uplift.allocation.prices import RulePrice
from uplift.allocation.references import REFERENCE_PLANS
from uplift.allocation.result import (
    CELL_COLUMNS,
    FloorCheck,
    PlanGain,
    PlanResult,
    PlanTotals,
    cost_range,
    evaluate_plan,
)

__all__ = [
    "CELL_COLUMNS",
    "EFFECTS",
    "FloorCheck",
    "REFERENCE_PLANS",
    "PlanGain",
    "PlanResult",
    "PlanTotals",
    "PreparedPlan",
    "RulePrice",
    "check_effects",
    "cost_range",
    "evaluate_plan",
    "plan",
    "prepare_plan",
    "reference_plans",
]
