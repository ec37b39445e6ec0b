"""The planning LP solved by column generation over the cells: first with one cell per group (the reduced LP of
:mod:`uplift.allocation.reducedlp`), then with every cell whose reduced cost prices it in, until none does.
"""

from __future__ import annotations

import numpy as np

from uplift.allocation.lpsystem import _INFEASIBLE, _OPTIMAL, _run, _System
from uplift.allocation.problem import Problem
from uplift.allocation.reducedlp import _run_reduced

__all__: list[str] = []

_PRICING_ROUNDS = 6
_PRICING_TOL = 1e-7


def _run_priced(problem: Problem, c, system: _System, b_ub, bounds, rank: np.ndarray, *, keep: bool = True):
    """Solve by column generation over the cells; the result is the optimum of the full LP.

    All messages on a channel in a segment share price and reach, so the optimum nearly always
    uses one message per group. The LP is first solved with only the best-``rank`` fundable cell
    per group, in the reduced form of :func:`_run_reduced` (tiers only); if no other cell prices
    out (its reduced cost from the duals is negative) that is the optimum. Otherwise the cells
    that price out are opened and the full LP is solved again until none is left. ``keep=False``
    solves the reduced LP without keeping it in the problem's cache.

    The cells of a channel line (:mod:`uplift.allocation.channellines`) are tied together, so they are ranked
    by their line's mix and opened line by line: every group of a line opens the same message.
    """
    n = problem.n
    lines = problem.channel_lines
    fundable = bounds[:n, 1] > 0
    score = np.where(fundable, lines.mix(np.asarray(rank, dtype=float)), -np.inf)
    top = np.full(len(problem.grp_seg), -np.inf)
    np.maximum.at(top, problem.grp, score)
    tied = fundable & (score >= top[problem.grp])
    # one active cell per group: the first of the best (on a coarse channel, the first message, as in every
    # other group of its line)
    order = np.where(lines.coarse, problem.message_order * n, 0) + np.arange(n)
    first = np.full(len(problem.grp_seg), np.iinfo(np.int64).max)
    np.minimum.at(first, problem.grp[tied], order[tied])
    active = np.isin(order, first[first < np.iinfo(np.int64).max])
    a_ub, a_eq, a_eq_x, a_ub_x = system.a_ub, system.a_eq, system.a_eq_x, system.a_ub_x

    def priced_out(res) -> np.ndarray:
        dual = a_eq_x @ res.eqlin.marginals
        if a_ub_x is not None:
            dual = dual + a_ub_x @ res.ineqlin.marginals
        return lines.whole(fundable & ~active & (c[:n] - dual < -_PRICING_TOL)) & fundable & ~active

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

