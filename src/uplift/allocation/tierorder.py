"""Plans that fill every reach curve in order: a group's dearer tier only once its cheaper one is full.

A maximising LP does that by itself, except where a rule rewards spend itself (a channel minimum against a
conversion floor, a high spend floor or a segment cap, a share of all spend, beyond the budget the cells can
usefully take): there it buys dear contacts without the cheap ones, which no reach curve sells. Such a solution
is solved again with the spend those rules count taken on the curves' tangents (:mod:`uplift.allocation.reach`,
:func:`_at_tangents`): a few LPs, each plan in order and within the rules, until the plan stops improving. On a
problem small enough for it to be cheap, and wherever the tangents find no plan, a mixed-integer programme (HiGHS
through ``scipy.optimize.milp``) with a binary "tier open" per dearer tier of the groups concerned also runs
(:func:`_mixed_integer_order`), and the better plan in order is kept; its duals come from the LP with its choices
fixed. :func:`breaks_tier_order` says which groups a plan fills out of order.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from uplift.allocation.cellpricing import _run_priced
from uplift.allocation.lpsystem import _INFEASIBLE, _OPTIMAL, _run, _System
from uplift.allocation.problem import Allocation, Problem
from uplift.allocation.reach import tangent_system

__all__ = ["breaks_tier_order"]

_ORDER_ROUNDS = 4
"""Mixed-integer re-solves at most, each adding the groups whose tiers the last one left out of order."""
_ORDER_SECONDS = 20.0
"""Time limit of one mixed-integer re-solve (HiGHS keeps the best solution found by then)."""


def breaks_tier_order(problem: Problem, y: np.ndarray, *, added: np.ndarray | None = None) -> np.ndarray:
    """Per group, whether tier contacts ``y`` (length m, everything bought so far) use a dearer
    tier while the cheaper one before it has room; with ``added``, only where the dearer tier's
    contacts in ``added`` (part of ``y``) do."""
    previous = np.maximum(np.arange(problem.m) - 1, 0)  # a group's tiers are contiguous, cheapest first
    later = np.flatnonzero((problem.tier_rank > 0) & (problem.tier_cost > problem.tier_cost[previous]))
    cap = problem.tier_cap
    tol = 1e-6 * (1.0 + cap)
    used = (y if added is None else added)[later]
    broken = (used > tol[later]) & (y[later - 1] < cap[later - 1] - tol[later - 1])
    out = np.zeros(len(problem.grp_seg), dtype=bool)
    out[problem.tier_grp[later[broken]]] = True
    return out


def _in_tier_order(problem: Problem, c, system: _System, b_ub, bounds, base: Allocation, res):
    """``res``, or when it fills a reach curve out of order, the best plan found that fills them in order.

    First the tangent rounds (:func:`_at_tangents`): a few LPs, whatever the problem's size. Where
    they find no plan, or the problem is small enough for the mixed-integer re-solve to be cheap (at
    most :data:`_MILP_BINARIES` binaries on at most :data:`_MILP_COLUMNS` columns), that runs too
    (:func:`_mixed_integer_order`) and the better in-order plan is kept. The choice depends on the
    problem's size only, never on the clock, so a plan is the same on any machine (up to HiGHS's own
    time limit, which only a re-solve far beyond those sizes meets).
    ``base`` (the exploration, an average of fills) is taken as it is: only what this solve adds
    is held to the order.
    """
    if res.status != _OPTIMAL or not problem.tier_order:
        return res
    n, m = problem.n, problem.m
    groups = breaks_tier_order(problem, base.y + res.x[n : n + m], added=res.x[n : n + m])
    if not groups.any():
        return res
    tangent = _at_tangents(problem, c, system, b_ub, bounds, base, res)
    binaries = int(np.count_nonzero(groups[problem.tier_grp] & (problem.tier_rank > 0)))
    if tangent is not None and (binaries > _MILP_BINARIES or len(c) > _MILP_COLUMNS):
        return tangent
    mixed = _mixed_integer_order(problem, c, system, b_ub, bounds, base, res, groups)
    if tangent is None:
        return mixed
    in_order = mixed.status == _OPTIMAL and not breaks_tier_order(
        problem, base.y + mixed.x[n : n + m], added=mixed.x[n : n + m]).any()
    return mixed if in_order and float(c @ mixed.x) < float(c @ tangent.x) else tangent


_MILP_BINARIES = 64
"""Most binaries for which the mixed-integer re-solve also runs after successful tangent rounds."""
_MILP_COLUMNS = 4_000
"""Most LP columns for which it does (a 10,000-cell table has about 14,000)."""


def _mixed_integer_order(problem: Problem, c, system: _System, b_ub, bounds, base: Allocation, res, groups):
    """The mixed-integer re-solve that holds the out-of-order ``groups`` of ``res`` to the order.

    Binaries ``z_j`` for the dearer tiers ``j`` of the groups concerned: this solve's contacts
    ``y_j <= (cap_j - base_j) z_j`` and ``y_{j-1} + base_{j-1} >= cap_{j-1} z_j``. The mixed-integer
    optimum's choices are then fixed as bounds and the LP solved once more for the duals. Groups
    the fixed LP leaves out of order join the binaries (at most :data:`_ORDER_ROUNDS` rounds).
    """
    n, m = problem.n, problem.m
    first = res
    b = np.asarray(b_ub, dtype=float)
    cap, y0 = problem.tier_cap, base.y
    for _ in range(_ORDER_ROUNDS):
        later = np.flatnonzero(groups[problem.tier_grp] & (problem.tier_rank > 0))
        k = len(later)
        rows = np.arange(k)
        # y_j - (cap_j - base_j) z_j <= 0  and  -y_{j-1} + cap_{j-1} z_j <= base_{j-1}
        open_rows = sp.csr_matrix((np.concatenate([np.ones(k), -np.maximum(cap[later] - y0[later], 0.0)]),
                                   (np.concatenate([rows, rows]), np.concatenate([n + later, len(c) + rows]))),
                                  shape=(k, len(c) + k))
        full_rows = sp.csr_matrix((np.concatenate([-np.ones(k), cap[later - 1]]),
                                   (np.concatenate([rows, rows]), np.concatenate([n + later - 1, len(c) + rows]))),
                                  shape=(k, len(c) + k))
        constraints = [LinearConstraint(_widened(system.a_eq, k), 0.0, 0.0),
                       LinearConstraint(sp.vstack([_widened(system.a_ub, k), open_rows, full_rows], format="csr"),
                                        -np.inf, np.concatenate([b, np.zeros(k), y0[later - 1]]))]
        lower = np.concatenate([bounds[:, 0], np.zeros(k)])
        upper = np.concatenate([bounds[:, 1], np.ones(k)])
        found = milp(np.concatenate([c, np.zeros(k)]), constraints=constraints, bounds=Bounds(lower, upper),
                     integrality=np.concatenate([np.zeros(len(c)), np.ones(k)]),
                     options={"time_limit": _ORDER_SECONDS})
        if found.status == _INFEASIBLE:
            return SimpleNamespace(status=_INFEASIBLE, message="infeasible with the reach tiers filled in order")
        if found.x is None:  # pragma: no cover - out of time without a solution: the LP's plan stands
            return first
        opened = found.x[len(c):] > 0.5
        fixed = bounds.copy()
        fixed[n + later[~opened], 1] = 0.0  # closed: nothing more in this tier
        before = later[opened] - 1
        fixed[n + before, 0] = np.maximum(cap[before] - y0[before], 0.0)  # the tier before an open one: full
        res = _run(c, system.a_ub, b_ub, system.a_eq, fixed)
        if res.status != _OPTIMAL:  # pragma: no cover - the fixed choices are the feasible optimum's
            return res
        more = breaks_tier_order(problem, base.y + res.x[n : n + m], added=res.x[n : n + m]) & ~groups
        if not more.any():
            return res
        groups = groups | more
    return res


_TANGENT_ROUNDS = 8
"""Most LPs solved at the reach curves' tangents (:func:`_at_tangents`)."""
_TANGENT_TOL = 1e-6
"""Relative gain in the objective below which the tangent rounds stop."""


def _at_tangents(problem: Problem, c, system: _System, b_ub, bounds, base: Allocation, res):
    """The LP solved again with the spend its rules reward taken on the reach curves' tangents at
    the plan in hand (:func:`uplift.allocation.reach.tangent_system`), round after round until the
    plan stops improving: a plan that fills every curve in order and meets the rules at the spend
    the curves charge. None when the first round is infeasible (the tangents can be stricter than
    the curves, e.g. for a channel minimum only dear tiers can reach) or the plan still breaks the
    order; the mixed-integer re-solve then takes over.

    Each round is solved by column generation like the plan's own LP, without keeping its reduced
    LP (every round's tangents differ).
    """
    n, m = problem.n, problem.m
    rank = -c[:n]
    free = np.array([[-np.inf, np.inf]])
    found, value = None, np.inf  # the LP's own value is above every in-order plan's: not a round to beat
    for _ in range(_TANGENT_ROUNDS):
        a_ub, a_eq, shift = tangent_system(problem, system.a_ub, system.a_eq, base=base, added=res.x[n : n + m])
        a_eq_x = a_eq[:, :n].T.tocsr()
        at = _System(rows=system.rows, a_ub=a_ub, a_eq=a_eq, n_slack=system.n_slack, el_rows=system.el_rows,
                     a_eq_x=a_eq_x, a_ub_x=a_ub[:, :n].T.tocsr() if a_ub.shape[0] else None,
                     a_rest_x=a_eq_x[:, len(problem.grp_seg):], digest=b"", reads_mix=system.reads_mix)
        new = _run_priced(problem, np.append(c, 0.0), at, np.asarray(b_ub, dtype=float) - shift,
                          np.vstack([bounds, free]), rank, keep=False)
        if new.status != _OPTIMAL:  # the first round's tangents ask too much (a later one cannot: its
            break                   # plan in hand meets them)
        res = SimpleNamespace(status=_OPTIMAL, x=new.x[:-1], ineqlin=new.ineqlin,
                              eqlin=SimpleNamespace(marginals=new.eqlin.marginals[:-1]), message=new.message)
        found, gain, value = res, value - float(c @ res.x), float(c @ res.x)
        if gain <= _TANGENT_TOL * max(abs(value), 1e-12):  # c is minimised: the gain is the fall
            break
    if found is None or breaks_tier_order(problem, base.y + found.x[n : n + m], added=found.x[n : n + m]).any():
        return None
    return found


def _widened(a: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """``a`` with ``k`` zero columns appended (for the binaries)."""
    return sp.hstack([a, sp.csr_matrix((a.shape[0], k))], format="csr")
