"""Conversion floors kept with a confidence: the margin each needs above its share.

A conversion-share floor asks ``sum_c w_c e_c x_c >= s * sum_c e_c x_c`` for the estimated effects
``e`` (``w_c`` the floor's weight of cell ``c``: 1 in its segments, or the share of the segment's people
in its priority group). Under the true effects ``t`` its slack ``D = sum_c a_c t_c x_c`` (``a_c = w_c - s``) is
uncertain: its variance is ``sum_c (a_c x_c own_c)^2 + ||sum_c a_c x_c load_c||^2``, the cells' own
errors (:attr:`~uplift.allocation.problem.Problem.own_sd`) plus the errors they share
(:func:`~uplift.allocation.effects.shared_factors`). Holding with
probability ``q`` (the floor's ``confidence``) asks ``E[D] >= z_q sd(D)``, a second-order-cone
constraint. The planner keeps its LP: it solves with a margin ``m`` on ``E[D]``, computes
``z_q sd(D)`` at the plan found, raises the margin to it and solves again, until the plan clears its
own margin (:func:`margins_needed`). The margins only grow, so the loop ends.

The plan picks the floor's cells whose estimates look best, and the best-looking estimates are the
ones most likely to be too high: the plan's own ``E[D]`` over-states its slack (the optimizer's
curse). How much is measured on the estimates' own uncertainty (:func:`selection_optimism`): take
the estimates as the truth, draw effects from their uncertainty as the estimates themselves could
have come out (:func:`uplift.allocation.explore.effect_draws`), plan on each draw as the planner
would, and see how far the draw's slack exceeds the same plan's slack under the estimates. That
mean excess, the floor's optimism, is added to its margin and taken off its expected slack before
the holding probability is reported.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import norm

from uplift.allocation.effects import total_variance
from uplift.allocation.problem import Problem

__all__ = ["confident_floors", "floor_slack", "holding_probability", "margins_needed", "selection_optimism"]


def confident_floors(problem: Problem) -> np.ndarray:
    """Mask of the problem's floors that are conversion shares asked to hold with confidence > 0.5."""
    return np.array([f.kind == "conversion_share" and f.confidence > 0.5 for f in problem.floors], dtype=bool)


def floor_slack(problem: Problem, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per floor, the expected slack ``E[D]`` of its conversion share at contacts ``x`` and its
    standard deviation ``sd(D)`` under the effects' uncertainty (conversions).

    For a spend floor the figures are those of its conversion share as well; only conversion
    floors use them.
    """
    signed = _signed_contacts(problem, x)
    mean = np.array([float(ax @ problem.effect) for ax in signed])
    sd = np.array([np.sqrt(total_variance(ax, problem.own_sd, problem.shared)) for ax in signed])
    return mean, sd


def _signed_contacts(problem: Problem, x: np.ndarray) -> list[np.ndarray]:
    """Per floor, the contacts ``x`` signed so that their conversions are the floor's slack
    ``D = sum_i a_i x_i effect_i``: ``a_i = w_i - share``, ``w_i`` the floor's weight of cell ``i``
    (1 in the floor's cells and 0 elsewhere, or the share of the cell's people in its priority group)."""
    return [(weight - floor.min_share) * x for floor, weight in zip(problem.floors, problem.floor_weight, strict=True)]


def selection_optimism(problem: Problem, drawn: Sequence[tuple[Problem, np.ndarray]]) -> np.ndarray:
    """Per floor, how far a plan's expected slack over-states itself because the plan chose its cells
    on the estimates (0 for floors that are not confident conversion floors, and never below 0).

    ``drawn`` holds, per draw, a problem whose effects were drawn from the estimates' uncertainty
    (:func:`uplift.allocation.explore.effect_draws`) and the contacts the planner chose on it. With
    the estimates taken as the truth, a draw's plan expects ``E_draw[D]`` and gets ``E[D]``; the
    optimism is the mean of the difference over the draws.
    """
    if not drawn:
        return np.zeros(len(problem.floors))
    excess = [[float(ax @ (draw.effect - problem.effect)) for ax in _signed_contacts(problem, x)] for draw, x in drawn]
    return np.where(confident_floors(problem), np.maximum(np.mean(excess, axis=0), 0.0), 0.0)


def margins_needed(problem: Problem, x: np.ndarray, optimism: np.ndarray | None = None) -> np.ndarray:
    """Per floor, the margin ``z_q sd(D)`` a confident conversion floor needs at contacts ``x``, plus
    its ``optimism`` (:func:`selection_optimism`; none by default); 0 for the other floors."""
    _, sd = floor_slack(problem, x)
    z = norm.ppf([f.confidence for f in problem.floors])
    extra = np.zeros(len(problem.floors)) if optimism is None else optimism
    return np.where(confident_floors(problem), z * sd + extra, 0.0)


def holding_probability(problem: Problem, x: np.ndarray, optimism: np.ndarray | None = None) -> np.ndarray:
    """Per floor, the probability under the effects' uncertainty that its conversion share holds at
    contacts ``x``, its expected slack lowered by its ``optimism`` (:func:`selection_optimism`; none
    by default) (normal approximation; 1 or 0 when the slack has no uncertainty)."""
    mean, sd = floor_slack(problem, x)
    if optimism is not None:
        mean = mean - optimism
    certain = np.where(mean >= -1e-9, np.inf, -np.inf)  # no uncertainty: holds or not
    with np.errstate(divide="ignore", invalid="ignore"):
        return norm.cdf(np.where(sd > 0, mean / sd, certain))
