"""Solving the planning LP with HiGHS (``scipy.optimize.linprog``), plain or elastic.

:func:`solve_value` maximises expected conversions; with ``slack_cap`` the budget-independent
rows (:data:`~uplift.allocation.problem.ELASTIC_KINDS`) may be violated by at most that much.
:func:`solve_feasibility` finds the smallest weighted violation of those rows (phase 1 of the
elastic solve, see :mod:`uplift.allocation.infeasibility`).

A tiny spend penalty breaks ties so that cheaper tiers are filled first and money is not spent
where it buys nothing: a contact at the dearest tier price costs ``TIE_BREAK`` (1e-5) of the best
effect in the objective. The budget dual is corrected for it.

A reach curve is filled in order: a group's dearer tier only once its cheaper one is full. A
maximising LP does that by itself, except where a rule rewards spend itself (a channel minimum
against a conversion floor, a high spend floor or a segment cap, a share of all spend, beyond the
budget the cells can usefully take): there it buys dear contacts without the cheap ones, which no
reach curve sells. Such a solution is solved again with the spend those rules count taken on the
curves' tangents (:mod:`uplift.allocation.reach`, :func:`_at_tangents`): a few LPs, each plan in
order and within the rules, until the plan stops improving. On a problem small enough for it to be
cheap, and wherever the tangents find no plan, a mixed-integer programme (HiGHS through
``scipy.optimize.milp``) with a binary "tier open" per dearer tier of the groups concerned also
runs (:func:`_mixed_integer_order`), and the better plan in order is kept; its duals come from the
LP with its choices fixed. A problem with ``tier_order=False`` skips all of it (the confident
floors' effect draws and margin search, :mod:`uplift.allocation.planner`).

A problem made by :meth:`~uplift.allocation.problem.Problem.with_effect` starts each new reduced
LP from the last basis of its parent's (same rows, other effects): a few iterations instead of a
cold solve.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

try:  # HiGHS's own bindings: warm-started re-solves; scipy's copy of HiGHS solves cold
    import highspy
except ImportError:  # pragma: no cover - highspy is a dependency; the fallback keeps the planner working
    highspy = None

from uplift.allocation.problem import (
    ELASTIC_KINDS,
    ROW_KINDS,
    Allocation,
    Problem,
    right_hand_sides,
    variable_bounds,
)
from uplift.allocation.reach import tangent_system
from uplift.allocation.rules import FAMILY
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

ALL_KINDS: frozenset[str] = frozenset(ROW_KINDS)
TIE_BREAK = 1e-5
"""Objective penalty of one contact at the dearest tier price, relative to the best effect."""

_OPTIMAL, _INFEASIBLE = 0, 2
_REDUCED_KEPT = 8
"""Reduced LPs (HiGHS instances) kept per problem, oldest dropped first."""
_PRICING_ROUNDS = 6
_PRICING_TOL = 1e-7


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


def _run_priced(problem: Problem, c, system: _System, b_ub, bounds, rank: np.ndarray, *, keep: bool = True):
    """Solve by column generation over the cells; the result is the optimum of the full LP.

    All messages on a channel in a segment share price and reach, so the optimum nearly always
    uses one message per group. The LP is first solved with only the best-``rank`` fundable cell
    per group, in the reduced form of :func:`_run_reduced` (tiers only); if no other cell prices
    out (its reduced cost from the duals is negative) that is the optimum. Otherwise the cells
    that price out are opened and the full LP is solved again until none is left. ``keep=False``
    solves the reduced LP without keeping it in the problem's cache.
    """
    n = problem.n
    fundable = bounds[:n, 1] > 0
    score = np.where(fundable, rank, -np.inf)
    top = np.full(len(problem.grp_seg), -np.inf)
    np.maximum.at(top, problem.grp, score)
    tied = fundable & (score >= top[problem.grp])
    # one active cell per group: the first of the best
    first = np.full(len(problem.grp_seg), n)
    np.minimum.at(first, problem.grp[tied], np.flatnonzero(tied))
    active = np.zeros(n, dtype=bool)
    active[first[first < n]] = True
    a_ub, a_eq, a_eq_x, a_ub_x = system.a_ub, system.a_eq, system.a_eq_x, system.a_ub_x

    def priced_out(res) -> np.ndarray:
        dual = a_eq_x @ res.eqlin.marginals
        if a_ub_x is not None:
            dual = dual + a_ub_x @ res.ineqlin.marginals
        return fundable & ~active & (c[:n] - dual < -_PRICING_TOL)

    res = _run_reduced(problem, c, system, b_ub, bounds, active, keep=keep)
    if res is not None and res.status == _INFEASIBLE:
        return res
    if res is not None:
        entering = priced_out(res)
        if not entering.any():
            return res
        active |= entering
    for _ in range(_PRICING_ROUNDS):
        if active.sum() == fundable.sum():
            break
        restricted = bounds.copy()
        restricted[:n, 1] = np.where(active, bounds[:n, 1], 0.0)
        res = _run(c, a_ub, b_ub, a_eq, restricted)
        if res.status != _OPTIMAL:
            break
        entering = priced_out(res)
        if not entering.any():
            return res
        active |= entering
    return _run(c, a_ub, b_ub, a_eq, bounds)


def _run_reduced(problem: Problem, c, system: _System, b_ub, bounds, active: np.ndarray, *, keep: bool = True):
    """The LP with at most one open cell per group, its contacts substituted by the group's tiers.

    With one cell ``a`` open in group ``g``, ``x[a] = sum(y of g)``, so ``x = P y`` and the LP over
    ``[x, y, T, C, slack]`` becomes one over ``[y, T, C, slack]`` without the group balance rows:
    a third of the columns and none of the per-group equalities. Returns a result in the full
    variable space with duals from which every closed cell's reduced cost follows (the balance
    row's dual is the one that makes the open cell's reduced cost 0). When the reduced LP is
    infeasible and the policy has no conversion floor, the full LP is infeasible too and that is
    returned; otherwise None when it is not optimal (the caller then solves the full LP).
    """
    n, m = problem.n, problem.m
    n_grp = len(problem.grp_seg)
    open_cell = np.full(n_grp, -1)
    open_cell[problem.grp[active]] = np.flatnonzero(active)
    tier_open = open_cell[problem.tier_grp]
    has = tier_open >= 0
    bounds_red = bounds[n:].copy()
    bounds_red[:m, 1] = np.where(has, bounds_red[:m, 1], 0.0)
    if keep:
        key = _structure_key(active, c, system)
        with problem.solvers.lock:
            cache = problem.solvers.reduced
            reduced = cache.get(key)
            if reduced is None:
                reduced = _ReducedLP.build(problem, c, system.a_ub, system.a_eq, tier_open, has)
                reduced.start_from(_sibling(problem.solvers.warm_from, reduced, key))
                cache[key] = reduced
                while len(cache) > _REDUCED_KEPT:  # e.g. a feasibility objective that changes with the budget
                    cache.pop(next(iter(cache)))
            elif problem.solvers.restart:  # a plan without one rule: from the plan's basis, not the last such plan's
                reduced.start_from(_sibling(problem.solvers.warm_from, reduced, key))
    else:
        reduced = _ReducedLP.build(problem, c, system.a_ub, system.a_eq, tier_open, has)
    res = reduced.solve(b_ub, bounds_red)
    if res.status == _INFEASIBLE and not _reads_message_mix(problem):
        # every other rule reads only a group's contacts, which the reduced LP leaves free: the full
        # LP is infeasible too (with conversion floors the mix of messages matters, so solve it)
        return SimpleNamespace(status=_INFEASIBLE, message="infeasible")
    if res.status != _OPTIMAL:
        return None
    z = res.x
    x = np.zeros(n)
    contacts = np.bincount(problem.tier_grp, weights=z[:m], minlength=n_grp)
    x[open_cell[open_cell >= 0]] = contacts[open_cell >= 0]
    eq_rest, ub = res.eq_duals, res.ub_duals
    # balance-row duals: the open cell's reduced cost is 0
    dual_open = system.a_rest_x @ eq_rest
    if system.a_ub_x is not None:
        dual_open = dual_open + system.a_ub_x @ ub
    balance = np.zeros(n_grp)
    opened = open_cell >= 0
    balance[opened] = (c[:n] - dual_open)[open_cell[opened]]
    return SimpleNamespace(
        status=_OPTIMAL,
        x=np.concatenate([x, z]),
        ineqlin=SimpleNamespace(marginals=ub),
        eqlin=SimpleNamespace(marginals=np.concatenate([balance, eq_rest])),
        message="optimal",
    )


def _reads_message_mix(problem: Problem) -> bool:
    """Whether a rule of the problem tells the messages of a (segment, channel) group apart."""
    return any(FAMILY[kind].reads_message_mix for kind, _, _ in problem.row_blocks)


def _sibling(warm_from, reduced: _ReducedLP, key: bytes | None = None) -> _ReducedLP | None:
    """The reduced LP of ``warm_from`` (a solver cache or None) under the same ``key``, else its most
    recently built one with the dimensions of ``reduced`` (the same rows with other effects): whose
    basis is a warm start."""
    if warm_from is None:
        return None
    with warm_from.lock:
        same = warm_from.reduced.get(key) if key is not None else None
        if same is not None:
            return same
        candidates = list(warm_from.reduced.values())
    for other in reversed(candidates):
        if other.shape == reduced.shape:
            return other
    return None


def _structure_key(active: np.ndarray, c: np.ndarray, system: _System) -> bytes:
    """What the reduced LP's matrices depend on (open cells, objective, rows): a digest."""
    return _digest(active, c) + system.digest


def _digest(*parts: np.ndarray) -> bytes:
    """A short hash of the arrays' contents."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(np.ascontiguousarray(part).tobytes())
    return digest.digest()


@dataclass(frozen=True)
class _ReducedResult:
    status: int
    x: np.ndarray | None = None
    ub_duals: np.ndarray | None = None
    eq_duals: np.ndarray | None = None


class _ReducedLP:
    """A reduced LP kept in a HiGHS instance: later solves change only bounds and right-hand
    sides and start from the last optimal basis (a few simplex iterations instead of a cold solve).

    Without ``highspy`` it falls back to ``scipy.optimize.linprog`` (same HiGHS, cold each time).
    """

    def __init__(self, c, a_ub, a_eq, n_ub: int) -> None:
        self.c, self.a_ub, self.a_eq, self.n_ub = c, a_ub, a_eq, n_ub
        self.lock = threading.Lock()
        self.highs = None
        if highspy is not None:
            matrix = sp.vstack([a_ub, a_eq], format="csc") if n_ub else a_eq.tocsc()
            lp = highspy.HighsLp()
            lp.num_col_, lp.num_row_ = len(c), matrix.shape[0]
            lp.col_cost_ = np.asarray(c, dtype=float)
            lp.col_lower_ = np.zeros(len(c))
            lp.col_upper_ = np.full(len(c), highspy.kHighsInf)
            lp.row_lower_ = np.concatenate([np.full(n_ub, -highspy.kHighsInf), np.zeros(a_eq.shape[0])])
            lp.row_upper_ = np.concatenate([np.zeros(n_ub), np.zeros(a_eq.shape[0])])
            lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
            lp.a_matrix_.start_ = matrix.indptr
            lp.a_matrix_.index_ = matrix.indices
            lp.a_matrix_.value_ = matrix.data
            highs = highspy.Highs()
            highs.setOptionValue("output_flag", False)
            highs.setOptionValue("solver", "simplex")
            highs.passModel(lp)
            self.highs = highs
            self.cols = np.arange(len(c), dtype=np.int32)
            self.rows = np.arange(n_ub, dtype=np.int32)
        self.shape = (len(c), a_ub.shape[0] + a_eq.shape[0])

    def start_from(self, other: _ReducedLP | None) -> None:
        """Start the first solve from ``other``'s last optimal basis (same shape), if it has one."""
        if other is None or self.highs is None or other.highs is None or other.shape != self.shape:
            return
        with other.lock:
            basis = other.highs.getBasis()
        if basis.valid:
            self.highs.setBasis(basis)

    @staticmethod
    def build(problem: Problem, c, a_ub, a_eq, tier_open: np.ndarray, has: np.ndarray) -> _ReducedLP:
        n, n_grp = problem.n, len(problem.grp_seg)
        rest = len(c) - n  # y, T, C and slack columns keep their order
        substitution = sp.vstack(
            [
                sp.csr_matrix((np.ones(int(has.sum())), (tier_open[has], np.flatnonzero(has))), shape=(n, rest)),
                sp.identity(rest, format="csr"),
            ],
            format="csr",
        )
        a_ub_red = (a_ub @ substitution).tocsr() if a_ub.shape[0] else a_ub[:, n:]
        a_eq_red = (a_eq[n_grp:] @ substitution).tocsr()
        return _ReducedLP(substitution.T @ c, a_ub_red, a_eq_red, a_ub.shape[0])

    def solve(self, b_ub: np.ndarray, bounds: np.ndarray) -> _ReducedResult:
        """The status and, when optimal, primal values and duals (scipy's sign convention)."""
        if self.highs is None:
            res = _run(self.c, self.a_ub, b_ub, self.a_eq, bounds)
            if res.status != _OPTIMAL:
                return _ReducedResult(res.status)
            ub = np.asarray(res.ineqlin.marginals) if self.n_ub else np.zeros(0)
            return _ReducedResult(_OPTIMAL, np.asarray(res.x), ub, np.asarray(res.eqlin.marginals))
        inf = highspy.kHighsInf
        with self.lock:
            highs = self.highs
            lower = np.where(np.isfinite(bounds[:, 0]), bounds[:, 0], -inf)
            upper = np.where(np.isfinite(bounds[:, 1]), bounds[:, 1], inf)
            highs.changeColsBounds(len(self.cols), self.cols, lower, upper)
            if self.n_ub:
                highs.changeRowsBounds(self.n_ub, self.rows, np.full(self.n_ub, -inf), np.asarray(b_ub, dtype=float))
            highs.run()
            status = highs.getModelStatus()
            if status != highspy.HighsModelStatus.kOptimal:
                highs.clearSolver()  # start the next solve cold rather than from a useless basis
                return _ReducedResult(_INFEASIBLE if status == highspy.HighsModelStatus.kInfeasible else -1)
            solution = highs.getSolution()
            x = np.array(solution.col_value)
            duals = np.array(solution.row_dual)
        return _ReducedResult(_OPTIMAL, x, duals[: self.n_ub], duals[self.n_ub :])


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
    most :data:`_MILP_BINARIES` binaries on at most :data:`_MILP_COLUMNS` columns), that runs too (:func:`_mixed_integer_order`) and the better in-order plan is kept. The
    choice depends on the problem's size only, never on the clock, so a plan is the same on any
    machine (up to HiGHS's own time limit, which only a re-solve far beyond those sizes meets).
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
                       LinearConstraint(sp.vstack([_widened(system.a_ub, k), open_rows, full_rows], format="csr"), -np.inf,
                                        np.concatenate([b, np.zeros(k), y0[later - 1]]))]
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
                     a_rest_x=a_eq_x[:, len(problem.grp_seg):], digest=b"")
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


def _scale(coefficients: np.ndarray) -> float:
    """Largest absolute coefficient (1 if none): dividing the objective by it keeps HiGHS's
    absolute tolerances meaningful for effects of order 1e-3."""
    top = float(np.max(np.abs(coefficients), initial=0.0))
    return top if top > 0 else 1.0
