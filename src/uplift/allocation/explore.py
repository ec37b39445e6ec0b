"""Thompson-sampling exploration: the part of the budget spread over plausibly-best cells.

Each of ``policy.exploration_draws`` draws takes one effect per cell from ``N(effect, effect_sd)``
(seeded with ``policy.seed``) and solves the planning LP for that draw with the exploration budget,
keeping the hard rules (reach tiers, holdout, channel maxima) and the segment share cap; channel
minimums and fairness floors are left to the exploitation LP, which applies them to the sum. The
exploration allocation is the average of the draws' allocations (feasible, as every kept rule is
convex). A cell whose interval lies entirely below zero (``effect + z * effect_sd < 0``) is never
explored; any other cell is explored in a draw where its drawn effect is positive.

Without floors, all messages on a channel in a segment cost the same and share the reach tiers,
so a draw's LP only ever funds the message with the highest drawn effect in each (segment,
channel) group; the draw LP is therefore solved over the group tiers alone (no cell columns),
which is the same optimum at a third of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog
from scipy.stats import norm

from uplift.allocation.problem import Allocation, Problem
from uplift.allocation.solve import TIE_BREAK
from uplift.errors import UpliftError

__all__ = ["interval_z", "clearly_negative", "thompson_allocation"]


def interval_z(interval: float) -> float:
    """Normal quantile of a central ``interval`` (0.8 -> 1.2816)."""
    return float(norm.ppf(0.5 + interval / 2.0))


def clearly_negative(problem: Problem) -> np.ndarray:
    """Cells whose whole interval (the policy's coverage) is below zero."""
    z = interval_z(problem.policy.interval)
    return problem.effect + z * problem.effect_sd < 0


@dataclass(frozen=True)
class _GroupLP:
    """Rows over the variables ``[y (m), T]``: budget, segment contacts, channel max, segment share."""

    a_ub: sp.csr_matrix
    b_ub: np.ndarray
    a_eq: sp.csr_matrix


def _group_lp(problem: Problem, budget: float) -> _GroupLP:
    policy = problem.policy
    m, n_seg = problem.m, len(problem.segments)
    cols = np.arange(m)
    tier_seg = problem.grp_seg[problem.tier_grp]
    tier_channel = problem.grp_channel[problem.tier_grp]
    blocks = [
        sp.csr_matrix((problem.tier_cost, (np.zeros(m, dtype=int), cols)), shape=(1, m + 1)),
        sp.csr_matrix((np.ones(m), (tier_seg, cols)), shape=(n_seg, m + 1)),
    ]
    rhs = [[budget], problem.contact_cap]
    for k, ch in enumerate(problem.channels):
        sel = tier_channel == k
        if ch in policy.max_spend and sel.any():
            blocks.append(sp.csr_matrix((problem.tier_cost[sel], (np.zeros(sel.sum(), dtype=int), cols[sel])),
                                        shape=(1, m + 1)))
            rhs.append([policy.max_spend[ch]])
    if policy.max_segment_share < 1.0:
        rows = np.concatenate([tier_seg, np.arange(n_seg)])
        cols_t = np.concatenate([cols, np.full(n_seg, m)])
        vals = np.concatenate([problem.tier_cost, np.full(n_seg, -policy.max_segment_share)])
        blocks.append(sp.csr_matrix((vals, (rows, cols_t)), shape=(n_seg, m + 1)))
        rhs.append(np.zeros(n_seg))
    a_eq = sp.csr_matrix(np.concatenate([-problem.tier_cost, [1.0]])[None, :])
    return _GroupLP(sp.vstack(blocks, format="csr"), np.concatenate(rhs).astype(float), a_eq)


def thompson_allocation(problem: Problem, *, budget: float) -> Allocation:
    """Average allocation of ``policy.exploration_draws`` LPs on effects drawn from their uncertainty.

    Parameters
    ----------
    problem : the planning LP (its policy gives the draws, seed and interval).
    budget : the exploration budget in EUR (``exploration_share x`` the whole budget).

    Returns
    -------
    Allocation
        Mean contacts per cell and tier over the draws; spends at most ``budget``.
    """
    draws = problem.policy.exploration_draws
    if budget <= 0 or problem.n == 0:
        return Allocation.empty(problem)
    rng = np.random.default_rng(problem.policy.seed)
    sampled = rng.normal(problem.effect, problem.effect_sd, size=(draws, problem.n))
    excluded = clearly_negative(problem)
    lp = _group_lp(problem, budget)
    n_grp = len(problem.grp_seg)
    x, y = np.zeros(problem.n), np.zeros(problem.m)
    for effect in sampled:
        usable = np.where((effect > 0) & ~excluded, effect, -np.inf)
        order = np.lexsort((-usable, problem.grp))
        first = order[np.r_[True, problem.grp[order][1:] != problem.grp[order][:-1]]]
        best_cell = np.full(n_grp, -1)
        best_cell[problem.grp[first]] = first
        best = np.where(best_cell >= 0, usable[np.maximum(best_cell, 0)], -np.inf)
        gain = np.where(best[problem.tier_grp] > 0, best[problem.tier_grp], 0.0)
        if not (gain > 0).any():
            continue
        scale = float(gain.max())
        eps = TIE_BREAK * scale / float(problem.tier_cost.max())
        c = np.concatenate([(-gain + eps * problem.tier_cost) / scale, [0.0]])
        bounds = np.column_stack(
            [np.zeros(problem.m + 1), np.concatenate([np.where(gain > 0, problem.tier_cap, 0.0), [np.inf]])]
        )
        res = linprog(c, A_ub=lp.a_ub, b_ub=lp.b_ub, A_eq=lp.a_eq, b_eq=[0.0], bounds=bounds, method="highs-ds")
        if res.status != 0:
            raise UpliftError(f"an exploration LP could not be solved (HiGHS status {res.status}: {res.message})")
        y_draw = np.maximum(res.x[: problem.m], 0.0)
        contacts = np.bincount(problem.tier_grp, weights=y_draw, minlength=n_grp)
        funded = best_cell >= 0
        np.add.at(x, best_cell[funded], contacts[funded])
        y += y_draw
    return Allocation(x / draws, y / draws)
