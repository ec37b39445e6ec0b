"""Infeasible policies: the elastic solve and a plain-language account of what conflicts.

When the planning LP has no solution, every budget-independent rule (channel minimums, the
segment share cap, fairness and coverage floors) gets a slack variable. Phase 1 finds the smallest
violation (each slack weighted by the scale of its rule: EUR over the budget, conversions over what
the budget could buy at best, contacts over what it could buy at the cheapest price); phase 2 keeps those violations
and maximises expected conversions, which
gives the best relaxed plan. Each violated rule becomes one message, written by its family
(:mod:`uplift.allocation.rules`), saying what it needs, what stops it (the budget, the reach caps,
another rule) and by how much it falls short.
"""

from __future__ import annotations

import numpy as np

from uplift.allocation.problem import Allocation, Problem, right_hand_sides
from uplift.allocation.rules import FAMILIES, FAMILY, Situation
from uplift.allocation.solve import LPSolution, best_rate, solve_feasibility, solve_value

__all__ = ["solve_elastic", "explain_conflicts"]


def solve_elastic(
    problem: Problem, *, objective: np.ndarray, budget: float, base: Allocation, fundable: np.ndarray,
    explain: bool = True,
) -> tuple[LPSolution, list[str]]:
    """Solve the exploitation LP; if the rules conflict, the best relaxed plan and why.

    Returns
    -------
    solution : the optimal plan, or the best plan that violates the rules as little as possible.
    conflicts : empty when every rule holds, else one message per violated rule (with
        ``explain=False``, a caller that only needs the plan, the bare names of the violated rows).
    """
    # a conflict the budget does not cause (a reach cap, two rules) outlives a change of budget, so
    # after an infeasible solve the next one goes straight to phase 1; when the rules hold after
    # all, phase 1 finds no violation and phase 2 is the plain optimum
    if not problem.solvers.infeasible:
        solution = solve_value(problem, objective=objective, budget=budget, base=base, fundable=fundable)
        if solution.optimal:
            return solution, []
    weights = _slack_weights(problem, objective, budget)
    phase1 = solve_feasibility(
        problem, objective=objective, budget=budget, base=base, fundable=fundable, weights=weights
    )
    violated = phase1.slack * weights > 1e-7
    cap = np.where(violated, phase1.slack * (1 + 1e-6) + 1e-6 / np.maximum(weights, 1e-300), 1e-9)
    phase2 = solve_value(
        problem, objective=objective, budget=budget, base=base, fundable=fundable, slack_cap=cap
    )
    relaxed = phase2 if phase2.optimal else phase1
    problem.solvers.infeasible = bool(violated.any())
    if not violated.any():
        return relaxed, []
    if not explain:
        return relaxed, [str(kind) for kind in problem.row_kind[violated]]
    return relaxed, explain_conflicts(problem, relaxed, violated, budget=budget, base=base, fundable=fundable)


def _slack_weights(problem: Problem, objective: np.ndarray, budget: float) -> np.ndarray:
    """Per row, what one unit of its violation weighs: EUR over the budget, conversions over what the
    budget could buy at best, contacts over what it could buy at the cheapest tier."""
    scale = _unit_scales(problem, objective, budget)
    weights = np.zeros(len(problem.row_kind))
    for kind, rows, _ in problem.row_blocks:
        family = FAMILY[kind]
        if family.elastic:
            weights[rows] = 1.0 / scale[family.unit]
    return weights


def _unit_scales(problem: Problem, objective: np.ndarray, budget: float) -> dict[str, float]:
    """The size of a rule's violation that weighs as much as the whole budget, per unit of the rule."""
    scale_eur = max(budget, 1.0)
    cheapest = float(np.min(problem.tier_cost, initial=np.inf))
    return {"eur": scale_eur, "conversions": scale_eur * best_rate(problem, objective),
            "contacts": scale_eur / cheapest if np.isfinite(cheapest) and cheapest > 0 else scale_eur}


def _reach_spend(problem: Problem, fundable: np.ndarray, key: np.ndarray, n_keys: int) -> np.ndarray:
    """Most EUR that can be spent per ``key`` (a per-tier label: its group or its segment).

    Buys the dearest open tiers first until the segment's contactable people
    (``(1 - holdout_share) x size``) are used up; tiers of groups without a fundable cell are closed.
    """
    open_grp = np.zeros(len(problem.grp_seg), dtype=bool)
    open_grp[problem.grp[fundable]] = True
    cap = np.where(open_grp[problem.tier_grp], problem.tier_cap, 0.0)
    order = np.lexsort((-problem.tier_cost, key))
    k, c, q = key[order], problem.tier_cost[order], cap[order]
    cum = np.cumsum(q)
    start = np.r_[True, k[1:] != k[:-1]]
    before = cum - q - np.maximum.accumulate(np.where(start, cum - q, 0.0))
    limit = problem.contact_cap[problem.grp_seg[problem.tier_grp[order]]]
    take = np.clip(limit - before, 0.0, q)
    return np.bincount(k, weights=c * take, minlength=n_keys)


def explain_conflicts(
    problem: Problem,
    solution: LPSolution,
    violated: np.ndarray,
    *,
    budget: float,
    base: Allocation,
    fundable: np.ndarray,
) -> list[str]:
    """One plain-language message per violated rule of the relaxed ``solution``, from the rule's family
    (:meth:`uplift.allocation.rules.RuleFamily.conflicts`), in the families' order.

    Each message says what the rule needs, what it gets, by how much it falls short and which
    other rules it conflicts with (violated rules and rules that are tight in the relaxed plan).

    Parameters
    ----------
    problem : the LP.
    solution : the relaxed plan (on top of ``base``) and its slacks.
    violated : per ``A_ub`` row, whether its rule had to give way.
    budget : the whole budget; base : the exploration allocation already made.
    fundable : cells the exploitation LP may fund (non-negative effects).
    """
    situation = _situation(problem, solution, violated, budget=budget, base=base, fundable=fundable)
    messages: list[str] = []
    for family in FAMILIES:
        rows = np.flatnonzero(violated & (problem.row_kind == family.kind))
        if len(rows):
            messages.extend(family.conflicts(problem, situation, rows))
    return messages


def _situation(
    problem: Problem, solution: LPSolution, violated: np.ndarray, *, budget: float, base: Allocation,
    fundable: np.ndarray,
) -> Situation:
    """What the families' conflict messages read of the relaxed plan (:class:`~uplift.allocation.rules.Situation`)."""
    total = solution.allocation + base
    spend_grp = problem.group_spend(total.y)
    open_cells = fundable | (base.x > 0)
    n_grp, n_seg = len(problem.grp_seg), len(problem.segments)
    reach_grp = _reach_spend(problem, open_cells, problem.tier_grp, n_grp)
    return Situation(
        total=total,
        slack=solution.slack,
        budget=float(budget),
        spend=float(spend_grp.sum()),
        spend_grp=spend_grp,
        spend_ch=np.bincount(problem.grp_channel, weights=spend_grp, minlength=len(problem.channels)),
        reach_grp=reach_grp,
        reach_seg=_reach_spend(problem, open_cells, problem.grp_seg[problem.tier_grp], n_seg),
        reach_ch=np.bincount(problem.grp_channel, weights=reach_grp, minlength=len(problem.channels)),
        conv=problem.effect * total.x,
        forced=float(sum(problem.policy.min_spend.values())),
        names=_rules_in_play(problem, solution, violated, budget=budget, base=base),
        open_cells=open_cells,
    )


def _rules_in_play(
    problem: Problem, solution: LPSolution, violated: np.ndarray, *, budget: float, base: Allocation
) -> dict[int, str]:
    """Short names of the rules that shape the relaxed plan: violated rows and tight rows."""
    alloc = solution.allocation
    v = np.concatenate([alloc.x, alloc.y, [problem.spend(alloc.y), float(problem.effect @ alloc.x)]])
    residual = right_hand_sides(problem, budget=budget, base=base) - problem.a_ub @ v
    # within a cent (or a millionth of the plan's conversions or contacts): the relaxed plan may use
    # the sliver of extra slack phase 2 allows its violated rows
    tolerance = {"eur": 1e-6 * max(budget, 1.0) + 1e-2,
                 "conversions": 1e-6 * max(float(problem.effect @ (alloc.x + base.x)), 1e-9),
                 "contacts": 1e-6 * max(float((alloc.x + base.x).sum()), 1.0) + 1e-2}
    tol = np.zeros(len(problem.row_kind))
    shown = np.zeros(len(problem.row_kind), dtype=bool)
    for kind, rows, _ in problem.row_blocks:
        family = FAMILY[kind]
        tol[rows] = tolerance[family.unit]
        shown[rows] = family.shown_in_play
    in_play = violated | ((residual <= tol) & shown)
    return {int(r): FAMILY[problem.row_kind[r]].in_play(problem, int(r), budget) for r in np.flatnonzero(in_play)}
