"""Channel lines bought at their channel's minimum or not at all: a mixed-integer re-solve where the LP is short.

A line (:mod:`uplift.allocation.channellines`) has a smallest size, ``m_L`` contacts: an ad set's minimum spend, a
print run's minimum copies. "Zero or at least ``m_L``" is not a linear rule. The LP is solved without it; when its
plan buys a line below its minimum, the plan is solved again as a mixed-integer programme (HiGHS through
``scipy.optimize.milp``) with a binary ``z_L`` per line concerned: ``sum of the line's contacts >= m_L z_L`` and
``<= R_L z_L`` (``R_L`` the line's whole reach), the semi-continuous line written as a MIP. Lines the mixed-integer
plan leaves short in turn join the binaries (at most :data:`_ROUNDS` rounds); a line still short after them is
closed (unless closing them breaks another rule, such as a channel's minimum spend: then the LP's plan stands and
the hand-off flags its short lines). The mixed-integer optimum's choices are then fixed (closed lines at 0, open
lines at least their minimum, as rows) and the LP solved once more, filling every reach curve in order as any plan
does (:mod:`uplift.allocation.tierorder`): the plan's duals, and so the prices of its rules, are those of the LP
with the chosen lines fixed. Without a line below its minimum the LP's plan stands and nothing more is solved.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from uplift.allocation.lpsystem import _INFEASIBLE, _OPTIMAL, _System
from uplift.allocation.problem import Allocation, Problem

__all__ = ["short_lines"]

_ROUNDS = 4
"""Mixed-integer re-solves at most, each adding the lines the last one left short."""
_SECONDS = 20.0
"""Time limit of one mixed-integer re-solve (HiGHS keeps the best solution found by then)."""
_TOL = 1e-6


def short_lines(problem: Problem, x: np.ndarray) -> np.ndarray:
    """Per line, whether contacts ``x`` (per cell, everything bought) give it some contacts but fewer than its
    channel's minimum."""
    lines = problem.channel_lines
    total = lines.totals(x)
    return (total > _TOL * (1.0 + lines.minimum)) & (total < lines.minimum * (1 - 1e-9) - _TOL)


def _with_line_minimums(problem: Problem, c, system: _System, b_ub, bounds, base: Allocation, res, reorder):
    """``res``, or when it buys a line below its minimum, the plan with every line at 0 or its minimum and the
    LP's duals at those choices (see the module's docstring). ``reorder(system, b_ub, bounds, res)`` fills the
    reach curves in order on the fixed LP (:func:`uplift.allocation.tierorder._in_tier_order`)."""
    lines = problem.channel_lines
    if res.status != _OPTIMAL or not lines.has_minimum:
        return res
    n = problem.n
    concerned = short_lines(problem, base.x + res.x[:n])
    if not concerned.any():
        return res
    closed = np.zeros(len(lines.label), dtype=bool)
    opened = np.zeros(len(lines.label), dtype=bool)
    fixed = None
    for _ in range(_ROUNDS):
        choice = _mixed_integer(problem, c, system, b_ub, bounds, base, concerned)
        if choice is None:  # infeasible or out of time: the short lines are closed
            closed |= concerned
            opened &= ~concerned
        else:
            closed = (closed & ~concerned) | (concerned & ~choice)
            opened = (opened & ~concerned) | (concerned & choice)
        fixed = _fixed(problem, c, system, b_ub, bounds, base, opened, closed, reorder)
        if fixed.status != _OPTIMAL:  # pragma: no cover - the choices are a feasible optimum's
            return res
        more = short_lines(problem, base.x + fixed.x[:n]) & ~concerned
        if not more.any():
            return fixed
        concerned |= more
    while True:  # what the rounds left short is closed, until nothing is
        more = short_lines(problem, base.x + fixed.x[:n])
        if not more.any():
            return fixed
        closed |= more
        opened &= ~more
        fixed = _fixed(problem, c, system, b_ub, bounds, base, opened, closed, reorder)
        if fixed.status != _OPTIMAL:  # closing them breaks a rule (a channel minimum): the LP's plan stands
            return res


def _line_matrix(problem: Problem, lines_mask: np.ndarray, width: int) -> sp.csr_matrix:
    """``(lines in mask, width)``: per line, 1 on its cells' columns."""
    lines = problem.channel_lines
    picked = np.flatnonzero(lines_mask)
    row_of = np.full(len(lines.label), -1)
    row_of[picked] = np.arange(len(picked))
    cells = np.flatnonzero((lines.line >= 0) & lines_mask[np.maximum(lines.line, 0)])
    return sp.csr_matrix((np.ones(len(cells)), (row_of[lines.line[cells]], cells)), shape=(len(picked), width))


def _mixed_integer(problem: Problem, c, system: _System, b_ub, bounds, base: Allocation, concerned: np.ndarray):
    """Which of the ``concerned`` lines the mixed-integer optimum buys (a mask over the lines), or None."""
    lines = problem.channel_lines
    k, width = int(concerned.sum()), len(c)
    on_lines = _line_matrix(problem, concerned, width)
    need = np.maximum(lines.minimum[concerned] - lines.totals(base.x)[concerned], 0.0)
    reach = _line_reach(problem)[concerned]
    # m z - sum x <= 0  and  sum x - R z <= 0
    rows = sp.vstack([sp.hstack([-on_lines, sp.diags(need)]), sp.hstack([on_lines, -sp.diags(reach)])], format="csr")
    a_ub = sp.hstack([system.a_ub, sp.csr_matrix((system.a_ub.shape[0], k))], format="csr")
    a_eq = sp.hstack([system.a_eq, sp.csr_matrix((system.a_eq.shape[0], k))], format="csr")
    constraints = [LinearConstraint(a_eq, 0.0, 0.0),
                   LinearConstraint(sp.vstack([a_ub, rows], format="csr"), -np.inf,
                                    np.concatenate([np.asarray(b_ub, dtype=float), np.zeros(2 * k)]))]
    found = milp(np.concatenate([c, np.zeros(k)]), constraints=constraints,
                 bounds=Bounds(np.concatenate([bounds[:, 0], np.zeros(k)]), np.concatenate([bounds[:, 1], np.ones(k)])),
                 integrality=np.concatenate([np.zeros(width), np.ones(k)]), options={"time_limit": _SECONDS})
    if found.status == _INFEASIBLE or found.x is None:
        return None
    choice = np.zeros(len(lines.label), dtype=bool)
    choice[np.flatnonzero(concerned)] = found.x[width:] > 0.5
    return choice


def _line_reach(problem: Problem) -> np.ndarray:
    """Per line, the contacts its cells' groups can sell at most (their reach tiers)."""
    lines = problem.channel_lines
    reach_grp = np.bincount(problem.tier_grp, weights=problem.tier_cap, minlength=len(problem.grp_seg))
    on = lines.line >= 0
    # a line's cells are in distinct groups, each selling its reach to the line at most
    return np.bincount(lines.line[on], weights=reach_grp[problem.grp[on]], minlength=len(lines.label))


def _fixed(problem: Problem, c, system: _System, b_ub, bounds, base: Allocation, opened, closed, reorder):
    """The LP with the closed lines at 0 and the opened ones at least their minimum (rows appended to
    ``system``), reach curves in order; the result's row duals are those of ``system``'s rows."""
    lines = problem.channel_lines
    n = problem.n
    fixed_bounds = bounds.copy()
    shut = (lines.line >= 0) & closed[np.maximum(lines.line, 0)]
    fixed_bounds[:n, 1] = np.where(shut, 0.0, fixed_bounds[:n, 1])
    extra = _line_matrix(problem, opened, system.a_ub.shape[1])
    need = np.maximum(lines.minimum[opened] - lines.totals(base.x)[opened], 0.0)
    a_ub = sp.vstack([system.a_ub, -extra], format="csr")
    a_eq_x = system.a_eq_x
    widened = _System(rows=system.rows, a_ub=a_ub, a_eq=system.a_eq, n_slack=system.n_slack, el_rows=system.el_rows,
                      a_eq_x=a_eq_x, a_ub_x=a_ub[:, :n].T.tocsr() if a_ub.shape[0] else None,
                      a_rest_x=system.a_rest_x, digest=b"", reads_mix=True)
    b = np.concatenate([np.asarray(b_ub, dtype=float), -need])
    res = reorder(widened, b, fixed_bounds)
    if res.status != _OPTIMAL:
        return res
    kept = system.a_ub.shape[0]
    return SimpleNamespace(status=_OPTIMAL, x=res.x, message=res.message, eqlin=res.eqlin,
                           ineqlin=SimpleNamespace(marginals=np.asarray(res.ineqlin.marginals)[:kept]))
