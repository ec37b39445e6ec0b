"""Thompson-sampling exploration: the part of the budget spread over plausibly-best cells.

Each of ``policy.exploration_draws`` draws takes one effect per cell from ``N(effect, effect_sd)``
(seeded with ``policy.seed``) and spends the exploration budget on that draw; the exploration
allocation is the average of the draws' allocations. A cell whose interval lies entirely below zero
(``effect + z * effect_sd < 0``) is never explored; any other cell is explored in a draw where its
drawn effect is positive and among the best per EUR.

All messages on a channel in a segment cost the same and share the reach tiers, so a draw only
ever funds the message with the highest drawn effect in each (segment, channel) group. A draw is
filled greedily: group tiers in order of drawn conversions per EUR, each up to its reach, the
segment's contactable people, the channel maximum, the segment share cap and the money left. With
only the budget and the reach tiers binding this is the draw's LP optimum; with the other caps
binding it is a feasible allocation close to it, which is all exploration needs, at a fraction of
an LP's cost (a few milliseconds for thousands of cells instead of ~30 ms per draw). Channel
minimums and fairness floors are left to the exploitation LP, which applies them to the sum.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.stats import norm

from uplift.allocation.problem import Allocation, Problem

__all__ = ["clearly_negative", "interval_z", "thompson_allocation"]


@lru_cache(maxsize=64)
def interval_z(interval: float) -> float:
    """Normal quantile of a central ``interval`` (0.8 -> 1.2816)."""
    return float(norm.ppf(0.5 + interval / 2.0))


def clearly_negative(problem: Problem) -> np.ndarray:
    """Cells whose whole interval (the policy's coverage) is below zero."""
    z = interval_z(problem.policy.interval)
    return problem.effect + z * problem.effect_sd < 0


def thompson_allocation(problem: Problem, *, budget: float) -> Allocation:
    """Average allocation of ``policy.exploration_draws`` greedy fills on effects drawn from their uncertainty.

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
    usable = np.where((sampled > 0) & ~clearly_negative(problem), sampled, -np.inf)
    # cells laid out as (group, slot): the best message of every group in every draw at once
    n_grp = len(problem.grp_seg)
    order = np.argsort(problem.grp, kind="stable")
    counts = np.bincount(problem.grp, minlength=n_grp)
    slot = np.arange(problem.n) - np.repeat(np.cumsum(counts) - counts, counts)
    layout = np.full((n_grp, int(counts.max())), -1)
    layout[problem.grp[order], slot] = order
    values = np.where(layout >= 0, usable[:, np.maximum(layout, 0)], -np.inf)  # (draws, groups, slots)
    pick = values.argmax(axis=2)
    best_cells = np.take_along_axis(layout[None, :, :].repeat(draws, axis=0), pick[:, :, None], axis=2)[:, :, 0]
    best_values = np.take_along_axis(values, pick[:, :, None], axis=2)[:, :, 0]
    x, y = np.zeros(problem.n), np.zeros(problem.m)
    for best_cell, best in zip(best_cells, best_values):
        gain = np.where(best[problem.tier_grp] > 0, best[problem.tier_grp], 0.0)
        if not (gain > 0).any():
            continue
        y_draw = _fill(problem, gain, budget)
        contacts = np.bincount(problem.tier_grp, weights=y_draw, minlength=n_grp)
        funded = (best_cell >= 0) & (best > 0)
        np.add.at(x, best_cell[funded], contacts[funded])
        y += y_draw
    return Allocation(x / draws, y / draws)


def _fill(problem: Problem, gain: np.ndarray, budget: float) -> np.ndarray:
    """Tier contacts of one draw: tiers by ``gain`` per EUR, each as far as every cap allows."""
    policy = problem.policy
    cost = problem.tier_cost
    candidates = np.flatnonzero((gain > 0) & (problem.tier_cap > 0) & (cost > 0))
    # best conversions per EUR first; within a group the cheaper (lower) tier first
    order = candidates[np.lexsort((problem.tier_rank[candidates], -gain[candidates] / cost[candidates]))]
    tier_seg = problem.grp_seg[problem.tier_grp]
    tier_channel = problem.grp_channel[problem.tier_grp]
    seg_spend_cap = policy.max_segment_share * budget if policy.max_segment_share < 1.0 else np.inf
    channel_cap = np.array([policy.max_spend.get(ch, np.inf) for ch in problem.channels], dtype=float)
    # fast path: whole tiers in order until the money runs out; kept if no other cap is exceeded
    spend = problem.tier_cap[order] * cost[order]
    before = np.cumsum(spend) - spend
    take = np.clip((budget - before) / cost[order], 0.0, problem.tier_cap[order])
    y = np.zeros(problem.m)
    y[order] = take
    n_seg = len(problem.segments)
    tol = 1e-9 * max(budget, 1.0)
    if (
        (np.bincount(tier_seg, weights=y, minlength=n_seg) <= problem.contact_cap + 1e-9).all()
        and (np.bincount(tier_seg, weights=y * cost, minlength=n_seg) <= seg_spend_cap + tol).all()
        and (np.bincount(tier_channel, weights=y * cost, minlength=len(channel_cap)) <= channel_cap + tol).all()
    ):
        return _within_segment_share(problem, y)
    # a cap binds: tier by tier (plain Python floats; thousands of tiers take about a millisecond)
    seg_contacts = problem.contact_cap.astype(float).tolist()
    seg_spend = [float(seg_spend_cap)] * n_seg
    channel_spend = channel_cap.tolist()
    tier_cap, cost_l = problem.tier_cap.tolist(), cost.tolist()
    seg_l, channel_l = tier_seg.tolist(), tier_channel.tolist()
    left = float(budget)
    y = np.zeros(problem.m)
    for j in order.tolist():
        if left <= 1e-9:
            break
        s, k, c = seg_l[j], channel_l[j], cost_l[j]
        take_j = min(tier_cap[j], seg_contacts[s], left / c, seg_spend[s] / c, channel_spend[k] / c)
        if take_j <= 0:
            continue
        y[j] = take_j
        seg_contacts[s] -= take_j
        seg_spend[s] -= take_j * c
        channel_spend[k] -= take_j * c
        left -= take_j * c
    return _within_segment_share(problem, y)


def _within_segment_share(problem: Problem, y: np.ndarray) -> np.ndarray:
    """Scale down segments above ``max_segment_share`` of what the draw actually spent.

    The fill caps each segment at the share of the *budget*; when the draw cannot spend it all,
    the cap relative to the spend is tighter. Shrinking a segment lowers the total, so repeat.
    """
    share = problem.policy.max_segment_share
    if share >= 1.0:
        return y
    tier_seg = problem.grp_seg[problem.tier_grp]
    for _ in range(50):
        spend_seg = np.bincount(tier_seg, weights=problem.tier_cost * y, minlength=len(problem.segments))
        total = float(spend_seg.sum())
        over = spend_seg > share * total * (1 + 1e-9) + 1e-9
        if not over.any():
            break
        factor = np.ones(len(spend_seg))
        factor[over] = share * total / spend_seg[over]
        y = y * factor[tier_seg]
    return y
