"""CUPED: narrowing an effect's interval with pre-wave covariates, only where the adjustment is defined.

The outcome is regressed on the covariates over all rows (``theta``) and ``y - (x - mean(x)) @ theta``
replaces ``y`` (Deng, Xu, Kohavi & Walker 2013). Its standard error comes from the sample variance of
the adjusted outcome within each group, which says nothing about the outcome's own noise when a
group has (almost) no conversions: all-zero outcomes leave only the covariates' variance, and the
interval collapses. So the adjustment is used for a comparison only when both groups have at least
:data:`CUPED_MIN_EVENTS` conversions and as many non-conversions, the covariate term varies in both,
and it narrows the interval; otherwise the comparison keeps the exact interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["CUPED_MIN_EVENTS", "CupedGroups", "CupedEffects", "cuped_theta", "cuped_terms", "cuped_effects"]

CUPED_MIN_EVENTS = 10
"""Conversions and non-conversions each group of a comparison needs before CUPED is used (the
usual floor for a normal approximation to a count; below it the outcome's noise is not seen)."""

_FLAT = 1e-12


def cuped_theta(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of ``y`` on the centred columns of ``x`` (shape ``(k,)``; empty if ``k = 0``)."""
    if x.shape[1] == 0:
        return np.empty(0)
    xc = x - x.mean(axis=0)
    theta, *_ = np.linalg.lstsq(xc, y - y.mean(), rcond=None)
    return theta


def cuped_terms(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """The covariate term ``(x - mean(x)) @ theta`` per row, subtracted from the outcome."""
    if x.shape[1] == 0:
        return np.zeros(x.shape[0])
    return (x - x.mean(axis=0)) @ theta


@dataclass(frozen=True)
class CupedGroups:
    """Per-group sums CUPED needs, arrays aligned with the groups (control included).

    Attributes
    ----------
    n, conversions : numpy.ndarray
        People and conversions per group.
    mean, var : numpy.ndarray
        Mean and sample variance (ddof 1) of the adjusted outcome per group.
    term_var : numpy.ndarray
        Sample variance of the covariate term per group (0: the covariates are constant there).
    """

    n: np.ndarray
    conversions: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    term_var: np.ndarray


@dataclass(frozen=True)
class CupedEffects:
    """CUPED effect of each group against the control (NaN where not defined) and the method kept.

    Attributes
    ----------
    effect, se, p_value : numpy.ndarray
        Difference of adjusted means, its standard error and the two-sided z-test p-value.
    variance_reduction : numpy.ndarray
        ``1 - se**2 / plain_se**2``.
    used : numpy.ndarray of bool
        True where CUPED is defined and narrows the interval.
    note : numpy.ndarray of str
        Why the exact interval is kept ("" where CUPED is used).
    """

    effect: np.ndarray
    se: np.ndarray
    p_value: np.ndarray
    variance_reduction: np.ndarray
    used: np.ndarray
    note: np.ndarray


def _group_note(groups: CupedGroups, i: int, name: str) -> str:
    n, x = groups.n[i], groups.conversions[i]
    if min(x, n - x) < CUPED_MIN_EVENTS:
        return (f"{name} has {int(x)} conversions of {int(n)}; CUPED needs {CUPED_MIN_EVENTS} conversions and "
                f"{CUPED_MIN_EVENTS} non-conversions in each group")
    if not groups.term_var[i] > _FLAT:
        return f"the covariates do not vary within {name}"
    return ""


def cuped_effects(groups: CupedGroups, control: int, names: list[str], plain_se: np.ndarray) -> CupedEffects:
    """CUPED effect of every group against group ``control``, and whether to use it.

    Parameters
    ----------
    groups : CupedGroups
        Per-group sums; ``groups.mean`` all NaN means no covariates were given.
    control : int
        Index of the control group.
    names : list of str
        Group names, for the notes.
    plain_se : numpy.ndarray
        Unadjusted (Wald) standard error of each group's effect, for ``variance_reduction``.
    """
    k = len(names)
    effect = groups.mean - groups.mean[control]
    se = np.sqrt(groups.var / groups.n + groups.var[control] / groups.n[control])
    with np.errstate(divide="ignore", invalid="ignore"):
        p_value = np.where(se > 0, 2 * stats.norm.sf(np.abs(effect) / se), 1.0)
        reduction = np.where(plain_se > 0, 1 - se**2 / plain_se**2, np.nan)
    notes = np.full(k, "", dtype=object)
    defined = np.zeros(k, dtype=bool)
    no_covariates = bool(np.isnan(groups.mean).all())
    control_note = "" if no_covariates else _group_note(groups, control, names[control])
    for i in range(k):
        if i == control:
            continue
        if no_covariates:
            notes[i] = "no covariates"
            continue
        notes[i] = control_note or _group_note(groups, i, names[i])
        defined[i] = not notes[i]
    used = defined & (np.nan_to_num(reduction, nan=-1.0) > 0)
    notes[defined & ~used] = "CUPED does not narrow the interval here"
    nan = np.where(defined, 1.0, np.nan)
    return CupedEffects(effect * nan, se * nan, p_value * nan, reduction * nan, used, notes)
