"""Infeasible policies: the elastic solve and a plain-language account of what conflicts.

When the planning LP has no solution, every budget-independent rule (channel minimums, the
segment share cap, fairness floors) gets a slack variable. Phase 1 finds the smallest violation
(each slack weighted by the scale of its rule: EUR over the budget, conversions over what the
budget could buy at best); phase 2 keeps those violations and maximises expected conversions, which
gives the best relaxed plan. Each violated rule becomes one message saying what it needs, what
stops it (the budget, the reach caps, another rule) and by how much it falls short.
"""

from __future__ import annotations

import numpy as np

from uplift.allocation.problem import Allocation, Problem, right_hand_sides
from uplift.allocation.solve import LPSolution, best_rate, solve_feasibility, solve_value

__all__ = ["solve_elastic", "explain_conflicts"]


def _eur(value: float) -> str:
    return f"EUR {value:,.0f}"


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
    scale_eur = max(budget, 1.0)
    scale_conv = scale_eur * best_rate(problem, objective)
    weights = np.zeros(len(problem.row_kind))
    eur = np.isin(problem.row_kind, ["channel_min", "segment_share", "spend_floor"])
    weights[eur] = 1.0 / scale_eur
    weights[problem.row_kind == "conversion_floor"] = 1.0 / scale_conv
    return weights


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
    """One plain-language message per violated rule of the relaxed ``solution``.

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
    policy = problem.policy
    total = solution.allocation + base
    spend_grp = problem.group_spend(total.y)
    spend = float(spend_grp.sum())
    open_cells = fundable | (base.x > 0)
    n_grp, n_seg = len(problem.grp_seg), len(problem.segments)
    reach_grp = _reach_spend(problem, open_cells, problem.tier_grp, n_grp)
    reach_seg = _reach_spend(problem, open_cells, problem.grp_seg[problem.tier_grp], n_seg)
    spend_ch = np.bincount(problem.grp_channel, weights=spend_grp, minlength=len(problem.channels))
    reach_ch = np.bincount(problem.grp_channel, weights=reach_grp, minlength=len(problem.channels))
    conv = problem.effect * total.x
    kinds = problem.row_kind
    names = _rules_in_play(problem, solution, violated, budget=budget, base=base)
    forced = float(sum(policy.min_spend.values()))
    messages: list[str] = []

    min_rows = np.flatnonzero(violated & (kinds == "channel_min"))
    over_budget = len(min_rows) > 0 and forced > budget * (1 + 1e-9)
    if over_budget:
        parts = ", ".join(f"{ch} {_eur(v)}" for ch, v in sorted(policy.min_spend.items()) if v > 0)
        messages.append(
            f"channel minimums need {_eur(forced)} ({parts}) but the budget is {_eur(budget)} "
            f"(short by {_eur(forced - budget)})"
        )
    for r in min_rows:
        k = problem.row_ref[r]
        ch = problem.channels[k]
        need = policy.min_spend[ch]
        if not (problem.grp_channel == k).any():
            messages.append(f"min_spend {ch!r} needs {_eur(need)} but the effects table has no arm on {ch!r}")
        elif reach_ch[k] < need * (1 - 1e-9):
            messages.append(
                f"min_spend {ch!r} needs {_eur(need)} but only {_eur(reach_ch[k])} can be spent on {ch!r} under "
                f"the reach and holdout caps (segments x arms with a non-negative effect; short by "
                f"{_eur(need - reach_ch[k])})"
            )
        elif not over_budget:
            messages.append(
                f"min_spend {ch!r} needs {_eur(need)} but gets {_eur(spend_ch[k])} (short by "
                f"{_eur(solution.slack[r])}); it conflicts with {_others(names, r)}"
            )

    share_rows = np.flatnonzero(violated & (kinds == "segment_share"))
    if len(share_rows):
        cap = policy.max_segment_share
        open_seg = reach_seg > 0
        needed = int(np.ceil(1.0 / cap - 1e-9))
        if open_seg.sum() < needed:
            messages.append(
                f"max_segment_share {cap:.0%} needs spend in at least {needed} segments but only "
                f"{int(open_seg.sum())} can be funded (people to reach and a non-negative effect), so no spend "
                f"is possible; it conflicts with {_others(names, share_rows[0])}"
            )
        else:
            spend_seg = np.bincount(problem.grp_seg, weights=spend_grp, minlength=len(problem.segments))
            worst = share_rows[np.argsort(-solution.slack[share_rows])]
            shown = ", ".join(
                f"{problem.segments[problem.row_ref[r]]!r} takes {spend_seg[problem.row_ref[r]] / max(spend, 1e-9):.0%}"
                f" ({_eur(solution.slack[r])} over)"
                for r in worst[:3]
            )
            more = f" and {len(worst) - 3} more segment(s)" if len(worst) > 3 else ""
            messages.append(
                f"max_segment_share {cap:.0%} is exceeded: {shown}{more}; it conflicts with {_others(names, worst[0])}"
            )

    for r in np.flatnonzero(violated & np.isin(kinds, ["spend_floor", "conversion_floor"])):
        k = problem.row_ref[r]
        floor = problem.floors[k]
        cells = problem.floor_cells[k]
        if floor.kind == "spend_share":
            in_floor = np.zeros(n_seg, dtype=bool)
            in_floor[problem.seg[cells]] = True
            got = np.bincount(problem.grp_seg, weights=spend_grp, minlength=n_seg)[in_floor].sum()
            most = reach_seg[in_floor].sum()
            n_in = int((in_floor & (reach_seg > 0)).sum())
            if n_in * policy.max_segment_share < floor.min_share * (1 - 1e-9):
                messages.append(
                    f"fairness floor {floor.name!r} needs {floor.min_share:.0%} of spend but its {n_in} fundable "
                    f"segment(s) may take at most {n_in * policy.max_segment_share:.0%} under max_segment_share "
                    f"{policy.max_segment_share:.0%} (short by {_eur(solution.slack[r])}); it conflicts with "
                    f"{_others(names, r)}"
                )
            elif forced > 0 and most < floor.min_share * forced * (1 - 1e-9):
                messages.append(
                    f"fairness floor {floor.name!r} needs {floor.min_share:.0%} of spend but only "
                    f"{most / forced:.0%} can be spent there under the reach and holdout caps ({_eur(most)} of "
                    f"the {_eur(forced)} the channel minimums force; short by "
                    f"{_eur(floor.min_share * forced - most)})"
                )
            else:
                messages.append(
                    f"fairness floor {floor.name!r} needs {floor.min_share:.0%} of spend but gets "
                    f"{got / max(spend, 1e-9):.0%} (short by {_eur(solution.slack[r])}); it conflicts with "
                    f"{_others(names, r)}"
                )
        else:
            got, all_conv = conv[cells].sum(), conv.sum()
            messages.append(
                f"fairness floor {floor.name!r} needs {floor.min_share:.0%} of expected conversions but gets "
                f"{got / max(all_conv, 1e-12):.0%} (short by {solution.slack[r]:,.1f} conversions); it conflicts "
                f"with {_others(names, r)}"
            )
    return messages


def _rules_in_play(
    problem: Problem, solution: LPSolution, violated: np.ndarray, *, budget: float, base: Allocation
) -> dict[int, str]:
    """Short names of the rules that shape the relaxed plan: violated rows and tight rows."""
    policy = problem.policy
    alloc = solution.allocation
    v = np.concatenate([alloc.x, alloc.y, [problem.spend(alloc.y), float(problem.effect @ alloc.x)]])
    residual = right_hand_sides(problem, budget=budget, base=base) - problem.a_ub @ v
    conv_scale = max(float(problem.effect @ (alloc.x + base.x)), 1e-9)
    # within a cent: the relaxed plan may use the sliver of extra slack phase 2 allows its violated rows
    tol = np.where(problem.row_kind == "conversion_floor", 1e-6 * conv_scale, 1e-6 * max(budget, 1.0) + 1e-2)
    in_play = violated | ((residual <= tol) & (problem.row_kind != "segment_contacts"))
    names: dict[int, str] = {}
    for r in np.flatnonzero(in_play):
        kind, ref = problem.row_kind[r], problem.row_ref[r]
        if kind == "budget":
            names[r] = f"the budget ({_eur(budget)})"
        elif kind == "channel_min":
            ch = problem.channels[ref]
            names[r] = f"min_spend {ch!r} ({_eur(policy.min_spend[ch])})"
        elif kind == "channel_max":
            ch = problem.channels[ref]
            names[r] = f"max_spend {ch!r} ({_eur(policy.max_spend[ch])})"
        elif kind == "segment_share":
            names[r] = f"max_segment_share {policy.max_segment_share:.0%}"
        else:
            names[r] = problem.row_label[r]
    return names


def _others(names: dict[int, str], row: int) -> str:
    """The rules in play other than ``row``'s, as an English list."""
    own = names.get(row)
    others = list(dict.fromkeys(v for r, v in names.items() if v != own)) or ["the reach and holdout caps"]
    return ", ".join(others[:-1]) + " and " + others[-1] if len(others) > 1 else others[0]
