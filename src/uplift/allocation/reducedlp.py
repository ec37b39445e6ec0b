"""The reduced LP (one open cell per group, its contacts on the group's tiers) kept in a HiGHS instance per
problem: later solves change only bounds and right-hand sides and start from the last optimal basis, or from the
basis of the problem it was made from (:meth:`~uplift.allocation.problem.Problem.with_effect`: same rows, other
effects), a few simplex iterations instead of a cold solve.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp

try:  # HiGHS's own bindings: warm-started re-solves; scipy's copy of HiGHS solves cold
    import highspy
except ImportError:  # pragma: no cover - highspy is a dependency; the fallback keeps the planner working
    highspy = None
else:

    class _SilentHighs(highspy.Highs):
        """A HiGHS instance that writes nothing: its output is off before ``Highs()`` enables its callbacks,
        where HiGHS otherwise prints its version and licence banner on stdout."""

        def enableCallbacks(self) -> None:  # noqa: N802 - highspy's name
            self.setOptionValue("output_flag", False)
            super().enableCallbacks()

from uplift.allocation.lpsystem import _INFEASIBLE, _OPTIMAL, _digest, _run, _System
from uplift.allocation.problem import Problem
from uplift.allocation.rules import FAMILY

__all__: list[str] = []

_REDUCED_KEPT = 8
"""Reduced LPs (HiGHS instances) kept per problem, oldest dropped first."""


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
    if res.status == _INFEASIBLE and not system.reads_mix and not _reads_message_mix(problem):
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
    """Whether a rule of the problem tells the messages of a (segment, channel) group apart (the channel lines'
    equalities do: they tie a message's cells across groups)."""
    return problem.channel_lines.linked or any(FAMILY[kind].reads_message_mix for kind, _, _ in problem.row_blocks)


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
            highs = _SilentHighs()
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
