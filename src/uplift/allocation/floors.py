"""Conversion floors kept with a confidence: the margin each needs above its share.

A conversion-share floor asks ``sum_{c in F} e_c x_c >= s * sum_c e_c x_c`` for the estimated effects
``e``. Under the true effects ``t`` its slack ``D = sum_c a_c t_c x_c`` (``a_c = 1[c in F] - s``) is
uncertain: its variance is ``sum_c (a_c x_c sd_c)^2 + ||sum_c a_c x_c load_c||^2``, the cells' own
errors plus the errors they share (:func:`~uplift.allocation.effects.shared_factors`). Holding with
probability ``q`` (the floor's ``confidence``) asks ``E[D] >= z_q sd(D)``, a second-order-cone
constraint. The planner keeps its LP: it solves with a margin ``m`` on ``E[D]``, computes
``z_q sd(D)`` at the plan found, raises the margin to it and solves again, until the plan clears its
own margin (:func:`margins_needed`). The margins only grow, so the loop ends.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from uplift.allocation.problem import Problem

__all__ = ["confident_floors", "floor_slack", "margins_needed", "holding_probability"]


def confident_floors(problem: Problem) -> np.ndarray:
    """Mask of the problem's floors that are conversion shares asked to hold with confidence > 0.5."""
    return np.array([f.kind == "conversion_share" and f.confidence > 0.5 for f in problem.floors], dtype=bool)


def floor_slack(problem: Problem, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per floor, the expected slack ``E[D]`` of its conversion share at contacts ``x`` and its
    standard deviation ``sd(D)`` under the effects' uncertainty (conversions).

    For a spend floor the figures are those of its conversion share as well; only conversion
    floors use them.
    """
    k = len(problem.floors)
    mean, sd = np.zeros(k), np.zeros(k)
    for j, (floor, cells) in enumerate(zip(problem.floors, problem.floor_cells)):
        a = np.where(cells, 1.0, 0.0) - floor.min_share
        ax = a * x
        mean[j] = float(ax @ problem.effect)
        own = float(np.sum((ax * problem.effect_sd) ** 2))
        shared = ax @ problem.shared if problem.shared.shape[1] else np.zeros(0)
        sd[j] = float(np.sqrt(own + shared @ shared))
    return mean, sd


def margins_needed(problem: Problem, x: np.ndarray) -> np.ndarray:
    """Per floor, the margin ``z_q sd(D)`` a confident conversion floor needs at contacts ``x``
    (0 for the other floors)."""
    _, sd = floor_slack(problem, x)
    z = norm.ppf([f.confidence for f in problem.floors])
    return np.where(confident_floors(problem), z * sd, 0.0)


def holding_probability(problem: Problem, x: np.ndarray) -> np.ndarray:
    """Per floor, the probability under the effects' uncertainty that its conversion share holds at
    contacts ``x`` (normal approximation; 1 or 0 when the slack has no uncertainty)."""
    mean, sd = floor_slack(problem, x)
    certain = np.where(mean >= -1e-9, np.inf, -np.inf)  # no uncertainty: holds or not
    with np.errstate(divide="ignore", invalid="ignore"):
        return norm.cdf(np.where(sd > 0, mean / sd, certain))
