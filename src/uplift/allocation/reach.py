"""The reach curves bought in order, and the planning LP's rules with spend counted on them.

A group's reach curve (:mod:`uplift.allocation.problem`: a (segment, channel) group's tiers,
contiguous, cheapest first) sells its cheap contacts before its dear ones, so reaching ``X``
contacts costs ``f(X)``, convex and piecewise linear. The LP prices each tier separately and, where
a rule rewards spend itself (a channel minimum, a spend floor's own segments, the total spend a
segment-share cap is a share of), it may buy dear contacts before cheap ones: more spend for the
same contacts, which no reach curve sells.

:func:`tangent_system` rewrites those rules with the group's spend at its tangent at the contacts
``X0`` of a plan in hand, ``f(X0) + f'(X0) (X - X0)``: below ``f`` everywhere (``f`` is convex), so
a plan that meets the rewritten rules meets the true ones, and equal to ``f`` at ``X0``. Every tier
of a group then counts the same in those rules, so the LP has no reason left to buy out of order.
Solving it again at the new plan's contacts until the plan stops improving is the convex-concave
procedure: each round's plan is feasible and at least as good as the last, and it stops at a plan
no tangent can improve (a local optimum of the rules as the curves state them).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from uplift.allocation.problem import Allocation, Problem

__all__ = ["curve_spend", "tangent_system"]


def curve_spend(problem: Problem, contacts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the EUR its reach curve charges for ``contacts`` (tiers filled cheapest first),
    and the price of its next contact there (the last tier's once the curve is full)."""
    n_grp = len(problem.grp_seg)
    grp, cap, cost = problem.tier_grp, problem.tier_cap, problem.tier_cost
    index = np.arange(problem.m)
    first = np.full(n_grp, problem.m)
    np.minimum.at(first, grp, index)
    cum = np.cumsum(cap)
    before = cum - cap - (cum[first[grp]] - cap[first[grp]])  # the group's cheaper tiers' contacts
    filled = np.clip(contacts[grp] - before, 0.0, cap)
    spend = np.bincount(grp, weights=cost * filled, minlength=n_grp)
    room = filled < cap - 1e-9 * (1.0 + cap)
    next_tier = np.full(n_grp, problem.m)
    np.minimum.at(next_tier, grp[room], index[room])
    last = np.full(n_grp, -1)
    np.maximum.at(last, grp, index)
    price = cost[np.where(next_tier < problem.m, next_tier, last)]
    return spend, price


def tangent_system(
    problem: Problem, a_ub: sp.csr_matrix, a_eq: sp.csr_matrix, *, base: Allocation, added: np.ndarray
) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """The LP's rows with the spend they reward taken at its tangent at the plan ``base + added``.

    Parameters
    ----------
    a_ub, a_eq : the LP's matrices over ``[x, y, T, C, slack...]`` (``y`` the tier contacts added on
        top of ``base``, ``T`` their spend).
    base : allocation the LP adds to (its spend is in the right-hand sides already).
    added : tier contacts (length m) the LP added to ``base`` in the plan in hand.

    Returns
    -------
    a_ub, a_eq : with one more column, ``U``: the tangent spend of ``y``, ``sum over groups of
        f'(X0) x (contacts of y in the group)``, defined by one more equality row. Every ``a_ub``
        coefficient that rewards a tier's spend (negative) is replaced by the same coefficient on the
        group's tangent price, and a negative coefficient on ``T`` (the total spend a segment cap is a
        share of) moves to ``U``; coefficients that charge spend keep the tier's own price.
    shift : per ``a_ub`` row, what to subtract from its right-hand side: the tangent's constant part,
        ``f(X0) - f'(X0) X0`` in terms of ``y`` (``base``'s own spend taken out again).
    """
    n, m, n_grp = problem.n, problem.m, len(problem.grp_seg)
    base_contacts = np.bincount(problem.tier_grp, weights=base.y, minlength=n_grp)
    added_contacts = np.bincount(problem.tier_grp, weights=added, minlength=n_grp)
    spend, price = curve_spend(problem, base_contacts + added_contacts)
    # the tangent of the group's whole spend, as a function of the contacts y adds: price * y + const
    const = spend - price * added_contacts - problem.group_spend(base.y)

    tiers = a_ub[:, n : n + m].tocoo()
    per_eur = tiers.data / problem.tier_cost[tiers.col]  # a spend rule's coefficient per EUR
    group = problem.tier_grp[tiers.col]
    rewards = per_eur < 0
    data = np.where(rewards, per_eur * price[group], tiers.data)
    shift = np.zeros(a_ub.shape[0])
    # one constant per (row, group): every tier of a group has the row's same coefficient per EUR
    pairs, first = np.unique(tiers.row[rewards] * n_grp + group[rewards], return_index=True)
    np.add.at(shift, pairs // n_grp, per_eur[rewards][first] * const[group[rewards][first]])

    total = a_ub[:, n + m].toarray().ravel()
    on_u = np.where(total < 0, total, 0.0)
    shift += on_u * const.sum()
    a_new = sp.hstack(
        [
            a_ub[:, :n],
            sp.csr_matrix((data, (tiers.row, tiers.col)), shape=(a_ub.shape[0], m)),
            sp.csr_matrix(np.where(total < 0, 0.0, total)[:, None]),
            a_ub[:, n + m + 1 :],
            sp.csr_matrix(on_u[:, None]),
        ],
        format="csr",
    )
    u_row = sp.csr_matrix(
        (np.concatenate([-price[problem.tier_grp], [1.0]]),
         (np.zeros(m + 1, dtype=int), np.concatenate([n + np.arange(m), [a_eq.shape[1]]]))),
        shape=(1, a_eq.shape[1] + 1),
    )
    eq_new = sp.vstack([sp.hstack([a_eq, sp.csr_matrix((a_eq.shape[0], 1))]), u_row], format="csr")
    return a_new, eq_new, shift
