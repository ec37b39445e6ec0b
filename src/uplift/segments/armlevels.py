"""Each arm's level from its randomised arm-vs-holdout difference, shrunk across the arms.

A segment kind's effect for a cell and arm is the arm's *level* (the mean over the kind's rows)
plus the cell's deviation from it. The level is what every cell of the arm shares, and the
randomised data measure it directly: the arm's observed difference over all the kind's rows
(thousands of rows per arm, where a cell has a few hundred). With rare outcomes even that is
noisy next to how much the arms truly differ, so the observed levels are shrunk towards their mean
over the arms by the method-of-moments between-arm variance ``A`` (Fay-Herriot across the arms):
``level_a = m + gamma_a (observed_a - m)``, ``gamma_a = A / (A + v_a)``, where ``v_a`` is the
variance of arm ``a``'s treated mean (the holdout's noise is common to every arm and does not
spread them). When the arms' observed differences spread no more than their noise, every arm gets
the mean level and the cells' deviations decide alone.

The level's error is shared by every cell of the arm: an own factor per arm with loading
``sqrt(gamma_a v_a)`` and one factor common to all arms (the holdout mean and ``m``) with
loading ``sqrt(v_holdout + mean(v) / K)``; ``uplift.allocation.effects.shared_factors`` adds them
to a plan's interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from uplift.modeling.ipw import group_hajek, own_propensity

__all__ = ["ArmLevels", "arm_levels"]


@dataclass(frozen=True)
class ArmLevels:
    """Per arm (in the order asked for): the observed and the shrunk level, and their errors."""

    arms: tuple[str, ...]
    observed: np.ndarray
    """Hajek difference of the arm's rows and the holdout's rows."""
    level: np.ndarray
    """The shrunk level ``m + gamma (observed - m)``."""
    gamma: np.ndarray
    """Weight of the arm's own observation (0: the mean level)."""
    own_sd: np.ndarray
    """Loading of the arm's level on its own error factor, ``sqrt(gamma v)``."""
    common_sd: float
    """Loading of every level on the error they share (the holdout's mean and the mean level)."""


def arm_levels(
    y: np.ndarray, arm: np.ndarray, propensity: pd.DataFrame, *, control: str, arms: tuple[str, ...]
) -> ArmLevels:
    """The arms' observed levels over these rows and their shrunk levels (see the module docstring).

    Parameters
    ----------
    y, arm : per row, the outcome (0/1) and the randomised arm.
    propensity : per row, the assignment probability of every arm (columns named as the arms),
        rows weighted by ``1 / P(own arm)``.
    control : the holdout arm; arms : the treatment arms, in the order of the result.

    Means and variances are :func:`uplift.modeling.ipw.group_hajek`'s (each variance floored by the
    binomial variance at the pooled rate of these rows, so an arm without an event is not a level
    known exactly). Arms without rows keep a nan level (and loadings 0). With fewer than three arms
    observed the between-arm variance is not estimated and each arm keeps its own observation.
    """
    found, names = pd.factorize(np.asarray(arm, dtype=object))  # once: comparing strings row by row is slow
    own = own_propensity(propensity, arm)
    codes = pd.Index([control, *arms]).get_indexer(names)[found]  # 0 = the holdout; rows of other arms left out
    kept = codes >= 0
    with np.errstate(invalid="ignore", divide="ignore"):  # an arm without rows: nan
        means, variances, _ = group_hajek(codes[kept], y[kept], 1.0 / own[kept], len(arms) + 1)
    base, v_base = float(means[0]), float(variances[0])
    observed = means[1:] - base
    v = variances[1:]
    ok = np.isfinite(observed) & np.isfinite(v)
    gamma = np.where(ok, 1.0, 0.0)
    m = float(np.mean(observed[ok])) if ok.any() else float("nan")
    if ok.sum() >= 3:
        A = max(float(np.var(observed[ok], ddof=1) - np.mean(v[ok])), 0.0)
        gamma[ok] = A / (A + v[ok]) if A > 0 else 0.0
    level = np.where(ok, m + gamma * (observed - m), np.nan)
    own_sd = np.where(ok, np.sqrt(gamma * np.where(ok, v, 0.0)), 0.0)
    common = v_base + (float(np.mean(v[ok])) / ok.sum() if ok.any() else 0.0)
    return ArmLevels(arms=tuple(arms), observed=observed, level=level, gamma=gamma, own_sd=own_sd,
                     common_sd=float(np.sqrt(common)) if np.isfinite(common) else 0.0)
