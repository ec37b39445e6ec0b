"""Reference plans a planned split is compared with: "even" and "single_best_message".

- **even**: the budget spread evenly (in EUR) over every segment x arm cell with people in it,
  ignoring the estimated effects and the policy's rules, but respecting reach: each message on a
  channel gets an equal part of the channel's reach tiers in the segment and an equal part of the
  segment's contactable people (``(1 - holdout_share) x size``); a cell that is full passes its
  share on to the others (water-filling).
- **single_best_message**: everything on the one message with the highest size-weighted mean
  effect, spread over segments and channels by the same LP as the plan (policy rules included,
  relaxed if they conflict; no exploration).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from uplift.allocation.infeasibility import solve_elastic
from uplift.allocation.problem import Allocation, Problem, build_problem
from uplift.allocation.solve import LPSolution
from uplift.specs.planning import CostCatalogue, PlanningPolicy

__all__ = [
    "REFERENCE_PLANS",
    "even_allocation",
    "best_message",
    "single_best_message_problem",
    "solve_without_exploration",
]

REFERENCE_PLANS: tuple[str, ...] = ("even", "single_best_message")


def even_allocation(problem: Problem, *, budget: float) -> Allocation:
    """Spread ``budget`` evenly over the cells with people, within their share of reach.

    Returns
    -------
    Allocation
        Contacts per cell and group tier; spends ``budget`` or everything reachable if less.
    """
    if not problem.n:
        return Allocation.empty(problem)
    shares = _even_shares(problem)
    spend = _water_fill(shares.capacity, budget)
    reach = shares.reach
    bought = np.where(reach > 0, np.clip((spend[:, None] - shares.before) / shares.price, 0.0, reach), 0.0)
    x = bought.sum(axis=1)
    n_grp = len(problem.grp_seg)
    y_grp = np.column_stack([np.bincount(problem.grp, weights=tier, minlength=n_grp) for tier in bought.T])
    y = y_grp[problem.tier_grp, problem.tier_rank]
    return Allocation(x, np.minimum(y, problem.tier_cap))


@dataclass(frozen=True)
class _EvenShares:
    """Per cell, its share of each tier of its group (padded to the most tiers a channel has): the
    contacts (``reach``, 0 on padding), their price (1 where there is no reach), the EUR of the
    cell's earlier tiers (``before``) and the most the cell can spend (``capacity``)."""

    reach: np.ndarray
    price: np.ndarray
    before: np.ndarray
    capacity: np.ndarray


def _even_shares(problem: Problem) -> _EvenShares:
    """The cells' shares of reach (budget-independent), computed once per problem and kept with it."""
    kept = problem.solvers.even
    if kept is not None:
        return kept
    # two threads may both get here: they compute the same shares, and either result is kept
    tiers = int(problem.tier_rank.max()) + 1
    cells_in_grp = np.bincount(problem.grp, minlength=len(problem.grp_seg))
    cells_in_seg = np.bincount(problem.seg, minlength=len(problem.segments))
    # per cell: its share of each tier of its group (padded to `tiers` columns)
    cap = np.zeros((len(problem.grp_seg), tiers))
    cost = np.full((len(problem.grp_seg), tiers), np.inf)
    cap[problem.tier_grp, problem.tier_rank] = problem.tier_cap
    cost[problem.tier_grp, problem.tier_rank] = problem.tier_cost
    q = cap[problem.grp] / cells_in_grp[problem.grp][:, None]
    p = cost[problem.grp]
    limit = problem.contact_cap[problem.seg] / cells_in_seg[problem.seg]
    cum = np.cumsum(q, axis=1)
    q = np.clip(np.minimum(cum, limit[:, None]) - (cum - q), 0.0, None)
    q[problem.frame["size"].to_numpy() <= 0] = 0.0
    price = np.where(q > 0, p, 1.0)  # finite everywhere: no inf * 0 on padding
    tier_spend = price * q
    shares = _EvenShares(
        reach=q,
        price=price,
        before=np.cumsum(tier_spend, axis=1) - tier_spend,
        capacity=tier_spend.sum(axis=1),
    )
    problem.solvers.even = shares
    return shares


def _water_fill(capacity: np.ndarray, budget: float) -> np.ndarray:
    """Equal spend per cell, each capped at its capacity, adding up to ``budget`` (or all capacity)."""
    if capacity.sum() <= budget:
        return capacity.copy()
    order = np.sort(capacity)
    n = len(order)
    # level after filling the i smallest cells completely: (budget - sum of them) / (n - i)
    filled = np.concatenate([[0.0], np.cumsum(order)[:-1]])
    level = (budget - filled) / (n - np.arange(n))
    i = int(np.argmax(level <= order))
    return np.minimum(capacity, level[i])


def best_message(frame: pd.DataFrame) -> str:
    """The message with the highest size-weighted mean effect over all its cells."""
    weight = frame["unit_people" if "unit_people" in frame.columns else "size"].to_numpy(dtype=float)
    weighted = pd.DataFrame(
        {"message": frame["message"].to_numpy(), "we": weight * frame["effect"].to_numpy(dtype=float), "w": weight}
    ).groupby("message", sort=True)[["we", "w"]].sum()
    score = weighted["we"] / weighted["w"].where(weighted["w"] > 0)
    score = score.fillna(-np.inf)
    return str(score.idxmax())


def single_best_message_problem(
    frame: pd.DataFrame, costs: CostCatalogue, policy: PlanningPolicy, *, source: str = "effects"
) -> tuple[Problem, np.ndarray]:
    """The plan LP restricted to :func:`best_message` (checked ``frame``; it does not depend on the
    budget), and the rows of ``frame`` its rows are, in its order."""
    rows = np.flatnonzero(frame["message"].to_numpy() == best_message(frame))
    sub = frame.iloc[rows].reset_index(drop=True)
    return build_problem(sub, costs, policy, source=source, require_floor_segments=False), rows


def solve_without_exploration(problem: Problem, *, budget: float, explain: bool = True) -> tuple[LPSolution, list[str]]:
    """The plan LP of ``problem`` at ``budget`` on its mean effects (relaxed if its rules conflict;
    ``explain`` as in :func:`~uplift.allocation.infeasibility.solve_elastic`)."""
    return solve_elastic(
        problem, objective=problem.effect, budget=budget, base=Allocation.empty(problem),
        fundable=problem.fundable(problem.effect), explain=explain,
    )
