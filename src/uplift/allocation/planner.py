"""The budget-split planner: :func:`plan` turns a segment-effects table into a :class:`PlanResult`.

Pure: no files, no clock, no global random state (exploration is seeded by the policy).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from uplift.allocation.effects import check_effects
from uplift.allocation.explore import thompson_allocation
from uplift.allocation.infeasibility import solve_elastic
from uplift.allocation.problem import Allocation, Problem, build_problem
from uplift.allocation.references import even_allocation, single_best_message_solution
from uplift.allocation.result import PlanResult, PlanTotals, plan_cells, plan_totals
from uplift.allocation.solve import LPSolution
from uplift.errors import InfeasiblePlanError, SpecError
from uplift.specs.planning import CostCatalogue, PlanningPolicy

__all__ = ["plan"]


def plan(
    effects: pd.DataFrame,
    *,
    budget: float,
    costs: CostCatalogue,
    policy: PlanningPolicy,
    strict: bool = False,
    references: bool = True,
    source: str = "effects",
) -> PlanResult:
    """Split ``budget`` over segments x arms to maximise expected incremental conversions.

    ``policy.exploration_share`` of the budget is spread by Thompson sampling
    (:func:`~uplift.allocation.explore.thompson_allocation`); the rest is the exploitation LP on the
    mean effects, with every rule applied to the sum of both. The LP (HiGHS) buys fractional
    contacts; the returned cells round them down (see :mod:`uplift.allocation.result`).

    Parameters
    ----------
    effects : segment-effects table (contract :data:`~uplift.allocation.effects.EFFECTS`). Not modified.
    budget : EUR available (spent at most).
    costs : channel prices and reach curves.
    policy : the rules (channel min/max spend, segment share cap, fairness floors, holdout,
        exploration, interval, seed).
    strict : raise :class:`InfeasiblePlanError` instead of returning a relaxed plan when the
        policy's rules conflict.
    references : also compute the "even" and "single_best_message" reference plans.
    source : name of the effects table in error messages.

    Returns
    -------
    PlanResult
        Status ``"optimal"``, or ``"infeasible"`` with the conflicts and the best relaxed plan.

    Raises
    ------
    SchemaError, DataError
        The effects table breaks its contract or a floor cannot be applied to it.
    SpecError
        ``budget`` is not a finite amount >= 0, or the policy names an unknown channel.
    InfeasiblePlanError
        Only with ``strict=True``, when the rules conflict.
    """
    if not (isinstance(budget, (int, float, np.number)) and math.isfinite(budget) and budget >= 0):
        raise SpecError(f"budget: expected a finite amount of EUR >= 0, got {budget!r}")
    budget = float(budget)
    frame = check_effects(effects, costs, source=source)
    problem = build_problem(frame, costs, policy, source=source)
    explored = thompson_allocation(problem, budget=budget * policy.exploration_share)
    solution, conflicts = solve_elastic(
        problem, objective=problem.effect, budget=budget, base=explored, fundable=problem.effect >= 0
    )
    if conflicts and strict:
        raise InfeasiblePlanError("the planning policy cannot be met: " + "; ".join(conflicts), conflicts)
    total = solution.allocation + explored
    cells = plan_cells(problem, total=total, explored=explored)
    totals = plan_totals(
        cells,
        problem.effect_sd,
        budget=budget,
        interval=policy.interval,
        marginal_cost=_marginal_cost(solution),
    )
    refs = _references(problem, frame, costs, budget=budget, source=source) if references else {}
    return PlanResult(
        cells=cells,
        totals=totals,
        references=refs,
        status="infeasible" if conflicts else "optimal",
        conflicts=tuple(conflicts),
        notes=tuple(_notes(problem, solution, total, budget)),
    )


def _marginal_cost(solution: LPSolution) -> float:
    return 1.0 / solution.budget_dual if solution.budget_dual > 0 else math.inf


def _references(
    problem: Problem, frame: pd.DataFrame, costs: CostCatalogue, *, budget: float, source: str
) -> dict[str, PlanTotals]:
    policy = problem.policy
    even = plan_cells(problem, total=even_allocation(problem, budget=budget))
    sub, solution, _ = single_best_message_solution(frame, costs, policy, budget=budget, source=source)
    best = plan_cells(sub, total=solution.allocation)
    return {
        "even": plan_totals(even, problem.effect_sd, budget=budget, interval=policy.interval),
        "single_best_message": plan_totals(
            best, sub.effect_sd, budget=budget, interval=policy.interval, marginal_cost=_marginal_cost(solution)
        ),
    }


def _notes(problem: Problem, solution: LPSolution, total: Allocation, budget: float) -> list[str]:
    """Why budget is left unspent, if it is."""
    spent = problem.spend(total.y)
    left = budget - spent
    if left <= max(1.0, 1e-4 * budget):
        return []
    room = (problem.tier_cap - total.y) > 1e-6 * np.maximum(problem.tier_cap, 1.0)
    open_grp = np.zeros(len(problem.grp_seg), dtype=bool)
    open_grp[problem.tier_grp[room]] = True
    contacts_seg = np.bincount(problem.seg, weights=total.x, minlength=len(problem.segments))
    seg_room = contacts_seg < problem.contact_cap * (1 - 1e-6)
    could = (problem.effect > 0) & open_grp[problem.grp] & seg_room[problem.seg]
    head = f"EUR {left:,.0f} of the EUR {budget:,.0f} budget is left unspent"
    if not could.any():
        return [f"{head}: every cell with a positive effect is at its reach or holdout cap"]
    binding = [
        problem.row_label[r]
        for r in np.flatnonzero(np.abs(solution.row_duals) > 1e-12)
        if problem.row_kind[r] not in ("budget", "segment_contacts")
    ]
    kinds = {problem.row_kind[r] for r in np.flatnonzero(np.abs(solution.row_duals) > 1e-12)}
    if "segment_share" in kinds:
        binding = [b for b in binding if not b.startswith("max_segment_share")]
        binding.append(f"max_segment_share {problem.policy.max_segment_share:.0%}")
    if not binding:
        return [f"{head}: the remaining cells buy too little to be worth it"]
    return [f"{head} because these rules bind: {', '.join(dict.fromkeys(binding))}"]
