"""The planning LP as matrices, and one HiGHS solve of it (``scipy.optimize.linprog``).

:func:`_system` gives the constraint matrices of a set of row kinds (built once per problem and kept with it)
and the right-hand sides at a budget; :func:`_run` solves an LP on them; :func:`_unpack` turns a solve into an
:class:`LPSolution` (contacts, duals, slack). The objective's tie-breaking spend penalty (:data:`TIE_BREAK`) and
scale are set here too. The solves themselves are in :mod:`uplift.allocation.cellpricing` (column generation),
:mod:`uplift.allocation.reducedlp` (the reduced LP, kept warm) and :mod:`uplift.allocation.tierorder`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from uplift.allocation.problem import ELASTIC_KINDS, ROW_KINDS, Allocation, Problem, right_hand_sides
from uplift.errors import UpliftError

__all__ = ["ALL_KINDS", "TIE_BREAK", "LPSolution", "best_rate", "spend_penalty"]

ALL_KINDS: frozenset[str] = frozenset(ROW_KINDS)
TIE_BREAK = 1e-5
"""Objective penalty of one contact at the dearest tier price, relative to the best effect."""


_OPTIMAL, _INFEASIBLE = 0, 2


@dataclass(frozen=True)
class LPSolution:
    """One LP solve.

    Attributes
    ----------
    allocation : contacts found (on top of the ``base`` the LP was solved for).
    optimal : False when HiGHS reports the rows infeasible (then ``allocation`` is empty).
    value : expected conversions of ``allocation`` under the objective effects.
    budget_dual : extra conversions one more EUR of budget buys (0 when the budget is slack).
    row_duals : marginal of every ``A_ub`` row (minimisation sign; 0 for rows left out).
    slack : violation of every ``A_ub`` row (non-zero only for elastic rows of an elastic solve).
    """

    allocation: Allocation
    optimal: bool
    value: float
    budget_dual: float
    row_duals: np.ndarray
    slack: np.ndarray


def spend_penalty(problem: Problem, objective: np.ndarray, fundable: np.ndarray) -> float:
    """Tie-breaking penalty in conversions per EUR (see :data:`TIE_BREAK`)."""
    top = float(np.max(objective[fundable], initial=0.0))
    dearest = float(np.max(problem.tier_cost, initial=0.0))
    return TIE_BREAK * top / dearest if top > 0 and dearest > 0 else 0.0


def best_rate(problem: Problem, objective: np.ndarray) -> float:
    """Highest conversions per EUR any cell offers (first tier), at least a tiny positive number."""
    cheapest = np.full(len(problem.grp_seg), np.inf)
    np.minimum.at(cheapest, problem.tier_grp, problem.tier_cost)
    rate = np.where(objective > 0, objective / cheapest[problem.grp], 0.0)
    return float(max(rate.max(initial=0.0), 1e-12))


@dataclass(frozen=True)
class _System:
    """The constraint matrices of one set of row kinds and what every solve on them needs that does
    not depend on the budget, built once per problem (:func:`_matrices`).

    Attributes
    ----------
    rows : mask of the problem's ``A_ub`` rows that are kept.
    a_ub, a_eq : the matrices, with a slack column per elastic row in an elastic system.
    n_slack : number of slack columns; el_rows : the problem's row of each slack.
    a_eq_x, a_ub_x : the cells' columns of ``a_eq`` and ``a_ub``, transposed, for pricing cells
        from the duals (``a_ub_x`` None without rows); a_rest_x : ``a_eq_x`` without the group
        balance rows (the equalities the reduced LP keeps).
    digest : of the matrices, identifying them in the reduced LPs' cache key.
    reads_mix : whether rows beyond the problem's tell a group's messages apart (the fixed lines of
        :mod:`uplift.allocation.lineminimum`): the one-message-per-group LP then proves nothing infeasible.
    """

    rows: np.ndarray
    a_ub: sp.csr_matrix
    a_eq: sp.csr_matrix
    n_slack: int
    el_rows: np.ndarray
    a_eq_x: sp.csr_matrix
    a_ub_x: sp.csr_matrix | None
    a_rest_x: sp.csr_matrix
    digest: bytes
    reads_mix: bool = False


def _system(
    problem: Problem, *, budget: float, base: Allocation, kinds: frozenset[str], elastic: bool
) -> tuple[_System, np.ndarray]:
    """The matrices for ``kinds`` and the right-hand sides of their rows at ``budget`` on top of ``base``."""
    system = _matrices(problem, kinds, elastic)
    return system, right_hand_sides(problem, budget=budget, base=base)[system.rows]


def _matrices(problem: Problem, kinds: frozenset[str], elastic: bool) -> _System:
    """The constraint matrices for ``kinds`` (with a slack column per elastic row), built once per problem."""
    key = (kinds, elastic)
    cached = problem.solvers.systems.get(key)
    if cached is not None:
        return cached
    # two threads may both build it: they build the same system, and either is kept
    n = problem.n
    rows = problem.rows(kinds)
    a_ub = problem.a_ub[rows]
    a_eq = problem.a_eq
    n_slack = 0
    el_rows = np.flatnonzero(rows)
    if elastic:
        el = np.isin(problem.row_kind[rows], list(ELASTIC_KINDS))
        n_slack = int(el.sum())
        s = sp.csr_matrix((-np.ones(n_slack), (np.flatnonzero(el), np.arange(n_slack))), shape=(a_ub.shape[0], n_slack))
        a_ub = sp.hstack([a_ub, s], format="csr")
        a_eq = sp.hstack([a_eq, sp.csr_matrix((a_eq.shape[0], n_slack))], format="csr")
        el_rows = el_rows[el]
    a_eq_x = a_eq[:, :n].T.tocsr()
    built = _System(
        rows=rows,
        a_ub=a_ub,
        a_eq=a_eq,
        n_slack=n_slack,
        el_rows=el_rows,
        a_eq_x=a_eq_x,
        a_ub_x=a_ub[:, :n].T.tocsr() if a_ub.shape[0] else None,
        a_rest_x=a_eq_x[:, len(problem.grp_seg):],
        digest=_digest(a_ub.indptr, a_ub.indices, a_ub.data, np.array(a_eq.shape)),
    )
    with problem.solvers.lock:
        problem.solvers.systems[key] = built
    return built


def _run(c, a_ub, b_ub, a_eq, bounds):
    if a_ub.shape[0] == 0:
        a_ub, b_ub = None, None
    res = linprog(
        c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=np.zeros(a_eq.shape[0]), bounds=bounds, method="highs-ds"
    )
    if res.status not in (_OPTIMAL, _INFEASIBLE):
        raise UpliftError(f"the planning LP could not be solved (HiGHS status {res.status}: {res.message})")
    return res


def _digest(*parts: np.ndarray) -> bytes:
    """A short hash of the arrays' contents."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(np.ascontiguousarray(part).tobytes())
    return digest.digest()


def _unpack(problem: Problem, res, system: _System, objective, scale: float, eps: float) -> LPSolution:
    n, m = problem.n, problem.m
    rows, el_rows = system.rows, system.el_rows
    duals = np.zeros(len(problem.row_kind))
    slack = np.zeros(len(problem.row_kind))
    if res.status != _OPTIMAL:
        return LPSolution(Allocation.empty(problem), False, 0.0, 0.0, duals, slack)
    x = np.maximum(res.x[:n], 0.0)
    y = np.maximum(res.x[n : n + m], 0.0)
    if res.ineqlin is not None and len(res.ineqlin.marginals):
        duals[rows] = np.asarray(res.ineqlin.marginals) * scale
    if system.n_slack:
        slack[el_rows] = np.maximum(res.x[problem.nv :], 0.0)
    budget_rows = problem.row_kind == "budget"
    raw = -float(duals[budget_rows][0]) if rows[budget_rows].any() else 0.0
    budget_dual = raw + eps if raw > eps * 1e-3 else 0.0
    return LPSolution(Allocation(x, y), True, float(objective @ x), budget_dual, duals, slack)


def _scale(coefficients: np.ndarray) -> float:
    """Largest absolute coefficient (1 if none): dividing the objective by it keeps HiGHS's
    absolute tolerances meaningful for effects of order 1e-3."""
    top = float(np.max(np.abs(coefficients), initial=0.0))
    return top if top > 0 else 1.0
