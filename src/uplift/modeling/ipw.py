"""Means of randomised rows weighted by the inverse of their assignment probability (Hajek).

A row assigned arm ``a`` with probability ``p_a`` stands for ``1 / p_a`` rows of the population;
the self-normalised (Hajek) mean of an outcome over the rows of an arm, ``sum w y / sum w`` with
``w = 1 / p_a``, estimates what that arm's outcome rate would be over everyone. Its difference from
the holdout's is the arm's randomised effect. The same arithmetic serves the model's mean effects
(:func:`uplift.modeling.estimator.arm_mean_effects`), policy values (:mod:`uplift.modeling.policyvalue`),
uplift by score bin (:func:`uplift.modeling.metrics.uplift_by_bin`), the segments' observed effects
(:func:`uplift.segments.effects.observed_effects`) and the arms' levels (:mod:`uplift.segments.armlevels`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.errors import DataError

__all__ = ["binomial_group_variance", "group_hajek", "group_means", "hajek_influence", "hajek_mean",
           "own_propensity"]


def own_propensity(propensity: pd.DataFrame, arm: np.ndarray) -> np.ndarray:
    """Per row, the probability of the arm it was assigned (``propensity``: one column per arm).

    The arm labels are factorised once (comparing strings row by row is slow); a label that is not a
    column reads the last column, as numpy's index -1 does (callers check their labels first). The
    probabilities are read column by column, never as one dense copy of every arm's (a training table at
    national size holds tens of millions of rows).
    """
    found, names = pd.factorize(np.asarray(arm, dtype=object))
    column = propensity.columns.get_indexer(names)[found]
    column[column < 0] = len(propensity.columns) - 1
    out = np.empty(len(column))
    for j, name in enumerate(propensity.columns):
        rows = column == j
        if rows.any():
            out[rows] = propensity[name].to_numpy(dtype=float)[rows]
    return out


def hajek_mean(y: np.ndarray, w: np.ndarray) -> float:
    """The self-normalised weighted mean ``sum w y / sum w`` (NaN without weight)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.sum(w * y) / np.sum(w))


def hajek_influence(y: np.ndarray, weight: np.ndarray, name: str) -> tuple[float, np.ndarray]:
    """The self-normalised mean and its per-row influence function ``w_i (y_i - V) / mean(w)``.

    Raises :class:`~uplift.errors.DataError` naming ``name`` when no row has weight.
    """
    total = weight.sum()
    if total <= 0:
        raise DataError(f"{name}: no row's assigned arm matches the recommendation, the value is not estimable")
    value = float(np.dot(weight, y) / total)
    influence = weight * (y - value) * (y.size / total)
    return value, influence


def group_means(groups: np.ndarray, y: np.ndarray, w: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group ``0..n_groups-1``, the weighted mean of ``y`` (NaN for a group without weight) and its weight."""
    sw = np.bincount(groups, weights=w, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(groups, weights=w * y, minlength=n_groups) / sw, sw


def group_hajek(groups: np.ndarray, y: np.ndarray, w: np.ndarray,
                n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted mean per group, its variance, and the number of rows.

    The linearised variance ``sum (w (y - mean))^2 / (sum w)^2`` is floored by the binomial variance at
    the pooled rate, ``p(1 - p) * sum(w^2) / sum(w)^2``: with rare outcomes a small group often has no
    event at all, and its empirical variance of 0 would claim a certainty it does not have.
    """
    mean, sw = group_means(groups, y, w, n_groups)
    sw2 = np.bincount(groups, weights=w**2, minlength=n_groups)
    n = np.bincount(groups, minlength=n_groups)
    pooled = float(np.sum(w * y) / np.sum(w)) if len(y) else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        resid = w * (y - mean[groups])
        var = np.bincount(groups, weights=resid**2, minlength=n_groups) / sw**2
        floor = pooled * (1 - pooled) * sw2 / sw**2
    return mean, np.maximum(var, floor), n


def binomial_group_variance(groups: np.ndarray, w: np.ndarray, rate: np.ndarray, n_groups: int) -> np.ndarray:
    """Binomial variance of a weighted group mean at the group's ``rate``: ``r(1 - r) sum(w^2) / sum(w)^2``."""
    sw = np.bincount(groups, weights=w, minlength=n_groups)
    sw2 = np.bincount(groups, weights=w**2, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return rate * (1 - rate) * sw2 / sw**2
