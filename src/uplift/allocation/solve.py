"""Solving the planning LP, plain or elastic: what the planner calls.

:func:`solve_value` maximises expected conversions; with ``slack_cap`` the budget-independent
rows (:data:`~uplift.allocation.problem.ELASTIC_KINDS`) may be violated by at most that much.
:func:`solve_feasibility` finds the smallest weighted violation of those rows (phase 1 of the
elastic solve, see :mod:`uplift.allocation.infeasibility`).

A tiny spend penalty breaks ties so that cheaper tiers are filled first and money is not spent
where it buys nothing: a contact at the dearest tier price costs ``TIE_BREAK`` (1e-5) of the best
effect in the objective. The budget dual is corrected for it.

The work is done by four modules, each with one job: :mod:`uplift.allocation.lpsystem` (the
matrices and one HiGHS solve), :mod:`uplift.allocation.cellpricing` (column generation over the
cells), :mod:`uplift.allocation.reducedlp` (the reduced LP kept warm between solves, and across the
problems made by :meth:`~uplift.allocation.problem.Problem.with_effect`) and
:mod:`uplift.allocation.tierorder` (reach curves filled in order: the tangent rounds and the
mixed-integer re-solve; a problem with ``tier_order=False`` skips them, e.g. the confident floors'
effect draws and margin search, :mod:`uplift.allocation.planner`).
"""

from __future__ import annotations

import numpy as np

from uplift.allocation.cellpricing import _run_priced
from uplift.allocation.lineminimum import _with_line_minimums
from uplift.allocation.lpsystem import (
    _OPTIMAL,
    ALL_KINDS,
    TIE_BREAK,
    LPSolution,
    _scale,
    _system,
    _unpack,
    best_rate,
    spend_penalty,
)
from uplift.allocation.problem import Allocation, Problem, variable_bounds
from uplift.allocation.tierorder import _in_tier_order, breaks_tier_order
from uplift.errors import UpliftError

__all__ = [
    "ALL_KINDS",
    "TIE_BREAK",
    "LPSolution",
    "best_rate",
    "breaks_tier_order",
    "solve_feasibility",
    "solve_value",
    "spend_penalty",
]


def solve_value(
    problem: Problem,
    *,
    objective: np.ndarray,
    budget: float,
    base: Allocation,
    fundable: np.ndarray,
    kinds: frozenset[str] = ALL_KINDS,
    slack_cap: np.ndarray | None = None,
) -> LPSolution:
    """Maximise ``objective @ x`` (expected conversions) on top of ``base``.

    Parameters
    ----------
    objective : effect per contact of every cell used in the objective.
    budget : the whole budget (``base`` spend included).
    base : allocation already made; every rule holds for ``base + result``.
    fundable : cells that may get contacts.
    kinds : row kinds to enforce.
    slack_cap : per ``A_ub`` row, the violation allowed for elastic rows (None: no violation).
    """
    elastic = slack_cap is not None
    system, b_ub = _system(problem, budget=budget, base=base, kinds=kinds, elastic=elastic)
    eps = spend_penalty(problem, objective, fundable)
    scale = _scale(objective[fundable])
    c = np.concatenate([-objective, eps * problem.tier_cost, [0.0, 0.0], np.zeros(system.n_slack)]) / scale
    bounds = variable_bounds(problem, fundable=fundable, base=base)
    if elastic:
        caps = np.column_stack([np.zeros(system.n_slack), slack_cap[system.el_rows]])
        bounds = np.vstack([bounds, caps])
    res = _run_priced(problem, c, system, b_ub, bounds, objective)
    res = _in_tier_order(problem, c, system, b_ub, bounds, base, res)

    def reorder(fixed_system, fixed_b, fixed_bounds):  # the LP with the lines chosen, reach curves in order
        found = _run_priced(problem, c, fixed_system, fixed_b, fixed_bounds, objective, keep=False)
        return _in_tier_order(problem, c, fixed_system, fixed_b, fixed_bounds, base, found)

    res = _with_line_minimums(problem, c, system, b_ub, bounds, base, res, reorder)
    return _unpack(problem, res, system, objective, scale, eps)


def solve_feasibility(
    problem: Problem,
    *,
    objective: np.ndarray,
    budget: float,
    base: Allocation,
    fundable: np.ndarray,
    weights: np.ndarray,
) -> LPSolution:
    """Smallest ``weights``-weighted violation of the elastic rows that the hard rules allow.

    ``weights`` is per ``A_ub`` row (only elastic rows are read); the returned ``slack`` is what
    each elastic row must give up.
    """
    system, b_ub = _system(problem, budget=budget, base=base, kinds=ALL_KINDS, elastic=True)
    scale = _scale(weights[system.el_rows])
    # among the allocations with the least violation, the one with the most conversions: a sensible
    # vertex (cheap contacts before dear ones) rather than whichever HiGHS meets first
    value = _FEASIBILITY_VALUE / (max(budget, 1.0) * best_rate(problem, objective))
    prefer = np.where(fundable, -value * np.maximum(objective, 0.0), 0.0)
    c = np.concatenate([prefer, np.zeros(problem.nv - problem.n), weights[system.el_rows]]) / scale
    bounds = np.vstack([
        variable_bounds(problem, fundable=fundable, base=base),
        np.column_stack([np.zeros(system.n_slack), np.full(system.n_slack, np.inf)]),
    ])
    res = _run_priced(problem, c, system, b_ub, bounds, objective)
    res = _in_tier_order(problem, c, system, b_ub, bounds, base, res)
    if res.status != _OPTIMAL:
        raise UpliftError(f"the elastic planning LP is infeasible ({res.message}); please report this as a bug")
    return _unpack(problem, res, system, objective, scale, 0.0)


_FEASIBILITY_VALUE = 1e-4
"""Weight of expected conversions in the feasibility LP, relative to a conversion floor's violation.

A EUR buys at most ``best_rate`` conversions, so no EUR of violation is ever traded for conversions;
a conversion floor's violation would only be raised by one conversion for 10,000 more elsewhere. Far
smaller weights vanish in HiGHS's tolerances (1e-7 after scaling)."""
