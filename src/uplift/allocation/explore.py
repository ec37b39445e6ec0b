"""Thompson-sampling exploration: the part of the budget spread over plausibly-best cells.

Each of ``policy.exploration_draws`` draws takes one effect per cell from its uncertainty (seeded
with ``policy.seed``): ``effect + own_sd * z_cell + shared @ w``, the cell's own error plus the
errors cells share (``Problem.shared``: the calibration's and the persona effects', drawn once per
draw for all cells, so a draw moves together every cell such an error moves), and spends the
exploration budget on that draw. The draws keep the structure the estimates were fitted to, so
that they come from the same structured uncertainty instead of spreading noise the structure rules
out: when the table names the additive parts its effects were fitted on (``part__*`` columns,
:mod:`uplift.segments.additive`), each draw is fitted on them per arm first; when every segment's messages x
channels table of estimates is rank 1 (:func:`uplift.segments.armtable.table_rank`; the targetable
estimates are projected so, see :mod:`uplift.segments.armtable`), each draw's tables are then projected on
rank 1 too. The exploration
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

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.stats import norm

from uplift.allocation.problem import Allocation, Problem
from uplift.segments.additive import smoothed_draws
from uplift.segments.armtable import low_rank_effects, table_rank

__all__ = ["clearly_negative", "effect_draws", "interval_z", "thompson_allocation"]


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

    The draws are seeded by the policy, so everything but the fill itself (the drawn effects, each
    group's best message, the order of the tiers) is the same at every budget: it is computed once
    per problem (:func:`_draws`) and kept with it.

    Parameters
    ----------
    problem : the planning LP (its policy gives the draws, seed and interval).
    budget : the exploration budget in EUR (``exploration_share`` of the budget, or of
        :attr:`~uplift.allocation.planner.PreparedPlan.useful_spend` past it).

    Returns
    -------
    Allocation
        Mean contacts per cell and tier over the draws; spends at most ``budget``.
    """
    if budget <= 0 or problem.n == 0:
        return Allocation.empty(problem)
    n_grp = len(problem.grp_seg)
    x, y = np.zeros(problem.n), np.zeros(problem.m)
    draws = _draws(problem)
    for draw in draws:
        if len(draw.tiers.order) == 0:
            continue
        y_draw = _fill(problem, draw.tiers, budget)
        contacts = np.bincount(problem.tier_grp, weights=y_draw, minlength=n_grp)
        np.add.at(x, draw.best_cell[draw.funded], contacts[draw.funded])
        y += y_draw
    draws_made = problem.policy.exploration_draws
    if problem.channel_lines.has_minimum or problem.channel_lines.linked:
        return _whole_lines(problem, x / draws_made, budget)
    return Allocation(x / draws_made, _cheapest_first(problem, y / draws_made))


def _whole_lines(problem: Problem, x: np.ndarray, budget: float) -> Allocation:
    """The exploration ``x`` (per cell) as its channels buy it: each channel line's contacts on its cells in
    proportion to their people (which costs no more than the draws' fill did), and each line at its channel's
    minimum or not at all: lines below it are raised to it, the most explored first, while the exploration's
    ``budget`` and the lines' reach allow, and left out otherwise (their money goes to the plan). The tiers are
    bought cheapest first."""
    lines = problem.channel_lines
    x = _within_contact_caps(problem, lines.spread(x))
    on = lines.line >= 0
    of_line = np.maximum(lines.line, 0)
    totals = lines.totals(x)
    short = (totals < lines.minimum * (1 - 1e-9)) & (totals > 0)
    x = np.where(on & short[of_line], 0.0, x)
    reach = np.bincount(problem.tier_grp, weights=problem.tier_cap, minlength=len(problem.grp_seg))
    for line in np.flatnonzero(short)[np.argsort(-totals[short], kind="stable")]:
        if not np.isfinite(lines.minimum[line]):
            continue
        cells = on & (lines.line == line)
        trial = x.copy()
        trial[cells] = lines.share[cells] * lines.minimum[line] if lines.coarse[cells].any() else lines.minimum[line]
        if _within_caps(problem, trial, reach, budget):
            x = trial
    contacts = np.bincount(problem.grp, weights=x, minlength=len(problem.grp_seg))
    return Allocation(x, _cheapest_first_contacts(problem, contacts))


def _within_contact_caps(problem: Problem, x: np.ndarray) -> np.ndarray:
    """``x`` with every line that reaches a segment above its contactable people scaled down by that segment's
    excess (the largest over its cells), so that no segment is: spreading a line moves contacts onto cells the draws
    did not fund, which other channels may have filled."""
    lines = problem.channel_lines
    contacts = np.bincount(problem.seg, weights=x, minlength=len(problem.segments))
    ratio = np.minimum(1.0, np.divide(problem.contact_cap, contacts, out=np.ones_like(contacts), where=contacts > 0))
    if (ratio >= 1.0).all():
        return x
    on = lines.line >= 0
    factor = ratio[problem.seg].copy()
    per_line = np.ones(len(lines.label))
    np.minimum.at(per_line, lines.line[on], ratio[problem.seg[on]])
    factor[on] = per_line[lines.line[on]]
    return x * factor


def _within_caps(problem: Problem, x: np.ndarray, reach: np.ndarray, budget: float) -> bool:
    """Whether contacts ``x`` (per cell) fit the groups' ``reach``, the segments' contactable people, the channel
    maximums and the exploration's ``budget`` (the rules the exploitation LP cannot relax)."""
    contacts = np.bincount(problem.grp, weights=x, minlength=len(problem.grp_seg))
    if (contacts > reach * (1 + 1e-9)).any():
        return False
    if (np.bincount(problem.seg, weights=x, minlength=len(problem.segments)) > problem.contact_cap * (1 + 1e-9)).any():
        return False
    y = _cheapest_first_contacts(problem, contacts)
    spend_ch = np.bincount(problem.tier_channel, weights=y * problem.tier_cost, minlength=len(problem.channels))
    return problem.spend(y) <= budget * (1 + 1e-9) and (spend_ch <= _channel_caps(problem) * (1 + 1e-9)).all()


def effect_draws(problem: Problem, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``(draws, n)`` effects drawn from the estimates' uncertainty, with the structure they were fitted to.

    Each draw is ``effect + own_sd * z_cell + shared @ w``: the cells' own errors plus the errors
    cells share (:attr:`Problem.shared`, drawn once per draw for all cells). When the table names the
    additive parts its effects were fitted on (``part__*``), each draw is fitted on them per arm; when
    every segment's messages x channels table of estimates is rank 1, each draw's tables are projected
    on rank 1 too. The exploration (:func:`thompson_allocation`) and the conversion floors' allowance
    for the plan's own selection (:func:`uplift.allocation.floors.selection_optimism`) draw from it.
    """
    sampled = rng.normal(problem.effect, problem.own_sd, size=(draws, problem.n))
    if problem.shared.size:  # after the cells' own draws, so a problem without shared errors draws as before
        sampled += rng.standard_normal((draws, problem.shared.shape[1])) @ problem.shared.T
    frame, effect, parent = problem.frame, problem.effect, problem.parent
    if parent is not None:  # rows split per print unit draw as their parent row: one estimate, one error
        first = np.flatnonzero(np.r_[True, parent[1:] != parent[:-1]])
        frame, effect, sampled = frame.iloc[first], effect[first], sampled[:, first]
    segment, arm = frame["segment"].to_numpy(), frame["arm"].to_numpy()
    sampled = smoothed_draws(frame, sampled)  # fitted on the parts the estimates were fitted on, if any
    if table_rank(segment, arm, effect) == 1:  # the estimates are rank-1 tables: so are the draws
        sampled = low_rank_effects(segment, arm, sampled, rank=1)
    if parent is not None:
        sampled = sampled[:, np.cumsum(np.r_[True, parent[1:] != parent[:-1]]) - 1]
    return sampled


def _cheapest_first(problem: Problem, y: np.ndarray) -> np.ndarray:
    """The same contacts per group as ``y``, bought on the group's reach curve cheapest tier first.

    Each draw fills its tiers in order, but their average does not (one draw's full cheap tier and
    part of a dear one, another draw's nothing, average to half of each), and a reach curve sells
    no dear contact before the cheap ones.
    """
    return _cheapest_first_contacts(problem, np.bincount(problem.tier_grp, weights=y, minlength=len(problem.grp_seg)))


def _cheapest_first_contacts(problem: Problem, contacts: np.ndarray) -> np.ndarray:
    """Tier contacts buying ``contacts`` per group on its reach curve, cheapest tier first."""
    cap = problem.tier_cap
    before = _exclusive_cumsum_by(cap, problem.tier_grp)  # a group's tiers are contiguous, cheapest first
    return np.clip(contacts[problem.tier_grp] - before, 0.0, cap)


@dataclass(frozen=True)
class _Tiers:
    """Tiers in fill order and what filling them needs that does not depend on the budget: per
    position, its segment, reach, price, and the reach and spend of the same segment's earlier tiers."""

    order: np.ndarray
    seg: np.ndarray
    cap: np.ndarray
    price: np.ndarray
    contacts_before: np.ndarray
    spend_before: np.ndarray


@dataclass(frozen=True)
class _Draw:
    """One Thompson draw: its tiers in fill order and, per group, the cell it funds."""

    tiers: _Tiers
    best_cell: np.ndarray
    funded: np.ndarray


def _in_order(problem: Problem, order: np.ndarray) -> _Tiers:
    seg = problem.tier_seg[order]
    cap, price = problem.tier_cap[order], problem.tier_cost[order]
    return _Tiers(order, seg, cap, price, _exclusive_cumsum_by(cap, seg), _exclusive_cumsum_by(cap * price, seg))


def _draws(problem: Problem) -> tuple[_Draw, ...]:
    """The policy's draws for ``problem`` (budget-independent), computed once and kept with it."""
    kept = problem.solvers.draws
    if kept is not None:
        return kept
    # two threads may both get here: they compute the same seeded draws, and either result is kept
    draws = problem.policy.exploration_draws
    sampled = effect_draws(problem, draws, np.random.default_rng(problem.policy.seed))
    usable = np.where((sampled > 0) & ~clearly_negative(problem), sampled, -np.inf)
    # cells laid out as (group, slot): the best message of every group in every draw at once
    n_grp = len(problem.grp_seg)
    by_group = np.argsort(problem.grp, kind="stable")
    counts = np.bincount(problem.grp, minlength=n_grp)
    slot = np.arange(problem.n) - np.repeat(np.cumsum(counts) - counts, counts)
    layout = np.full((n_grp, int(counts.max())), -1)
    layout[problem.grp[by_group], slot] = by_group
    values = np.where(layout >= 0, usable[:, np.maximum(layout, 0)], -np.inf)  # (draws, groups, slots)
    pick = values.argmax(axis=2)
    best_cells = np.take_along_axis(layout[None, :, :].repeat(draws, axis=0), pick[:, :, None], axis=2)[:, :, 0]
    best_values = np.take_along_axis(values, pick[:, :, None], axis=2)[:, :, 0]
    out = []
    for best_cell, best in zip(best_cells, best_values, strict=True):
        gain = np.where(best[problem.tier_grp] > 0, best[problem.tier_grp], 0.0)
        cost = problem.tier_cost
        candidates = np.flatnonzero((gain > 0) & (problem.tier_cap > 0) & (cost > 0))
        # best conversions per EUR first; within a group the cheaper (lower) tier first
        order = candidates[np.lexsort((problem.tier_rank[candidates], -gain[candidates] / cost[candidates]))]
        out.append(_Draw(_in_order(problem, order), best_cell, (best_cell >= 0) & (best > 0)))
    problem.solvers.draws = tuple(out)
    return problem.solvers.draws


def _fill(problem: Problem, tiers: _Tiers, budget: float) -> np.ndarray:
    """Tier contacts of one draw: tiers in ``tiers``' order, each as far as every cap allows."""
    y = _fill_vectorised(problem, tiers, budget)
    caps = _channel_caps(problem)
    spend_ch = np.bincount(problem.tier_channel, weights=y * problem.tier_cost, minlength=len(caps))
    if not (spend_ch <= caps + 1e-9 * max(budget, 1.0)).all():
        y = _fill_tier_by_tier(problem, tiers.order, budget)
    return _within_segment_share(problem, y)


def _segment_spend_cap(problem: Problem, budget: float) -> float:
    share = problem.policy.max_segment_share
    return share * budget if share < 1.0 else np.inf


def _channel_caps(problem: Problem) -> np.ndarray:
    return np.array([problem.policy.max_spend.get(ch, np.inf) for ch in problem.channels], dtype=float)


def _fill_vectorised(problem: Problem, tiers: _Tiers, budget: float) -> np.ndarray:
    """The tier-by-tier fill without channel maxima, in array operations.

    In a segment a tier gets what the segment's contact and spend caps leave after the earlier
    tiers' full reach: a tier cut by a cap leaves nothing for the later ones, so this is what
    filling tier by tier gives. Then the money runs out at one point of the order.
    """
    price = tiers.price
    room = np.minimum(
        problem.contact_cap[tiers.seg] - tiers.contacts_before,
        (_segment_spend_cap(problem, budget) - tiers.spend_before) / price,
    )
    take = np.clip(room, 0.0, tiers.cap)
    spend = take * price
    take = np.minimum(take, np.maximum(budget - (np.cumsum(spend) - spend), 0.0) / price)
    y = np.zeros(problem.m)
    y[tiers.order] = take
    return y


def _fill_tier_by_tier(problem: Problem, order: np.ndarray, budget: float) -> np.ndarray:
    """Tiers in ``order``, each as far as its reach, the segment's contactable people and spend
    cap, the channel maximum and the money left allow (plain Python floats: about a millisecond
    for thousands of tiers)."""
    cost = problem.tier_cost
    seg_contacts = problem.contact_cap.astype(float).tolist()
    seg_spend = [float(_segment_spend_cap(problem, budget))] * len(problem.segments)
    channel_spend = _channel_caps(problem).tolist()
    tier_cap, cost_l = problem.tier_cap.tolist(), cost.tolist()
    seg_l = problem.tier_seg.tolist()
    channel_l = problem.tier_channel.tolist()
    left = float(budget)
    y = np.zeros(problem.m)
    for j in order.tolist():
        if left <= 1e-9:
            break
        s, k, c = seg_l[j], channel_l[j], cost_l[j]
        take = min(tier_cap[j], seg_contacts[s], left / c, seg_spend[s] / c, channel_spend[k] / c)
        if take <= 0:
            continue
        y[j] = take
        seg_contacts[s] -= take
        seg_spend[s] -= take * c
        channel_spend[k] -= take * c
        left -= take * c
    return y


def _exclusive_cumsum_by(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per position: the sum of ``values`` at earlier positions of the same group."""
    idx = np.argsort(groups, kind="stable")
    v, g = values[idx], groups[idx]
    total = np.cumsum(v)
    start = np.r_[True, g[1:] != g[:-1]] if len(g) else np.zeros(0, dtype=bool)
    base = np.maximum.accumulate(np.where(start, total - v, 0.0)) if len(g) else total
    out = np.empty_like(values, dtype=float)
    out[idx] = total - v - base
    return out


def _within_segment_share(problem: Problem, y: np.ndarray) -> np.ndarray:
    """Scale down segments above ``max_segment_share`` of what the draw actually spent.

    The fill caps each segment at the share of the *budget*; when the draw cannot spend it all,
    the cap relative to the spend is tighter. Shrinking a segment lowers the total, so repeat.
    """
    share = problem.policy.max_segment_share
    if share >= 1.0:
        return y
    tier_seg = problem.tier_seg
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
