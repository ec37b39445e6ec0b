"""Intervals and tests for conversion rates that stay honest at small counts (0, 1, 2 ... events).

A rate gets the exact (Clopper-Pearson) interval. A difference of two rates gets Newcombe's
square-and-add (MOVER) interval built from the two exact intervals, and a p-value that is never
smaller than Fisher's exact test nor than the smallest level at which that interval excludes no
difference, so a claim always has both the exact test and the interval behind it.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

__all__ = ["P_FLOOR", "clopper_pearson", "difference_interval", "difference_p_value", "interval_p_value"]

P_FLOOR = 1e-16
"""p-values below this are reported as this (the interval's p-value is found by bisection down to it)."""

_BISECTIONS = 48


def clopper_pearson(x: np.ndarray, n: np.ndarray, alpha: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided ``1 - alpha`` interval of the rate ``x / n`` (Clopper & Pearson, 1934).

    Parameters
    ----------
    x, n : array_like
        Events and trials, ``0 <= x <= n``; ``n == 0`` gives NaN.
    alpha : float or array_like
        Two-sided level(s), broadcast against ``x``.

    Returns
    -------
    (low, high) : numpy.ndarray
        ``low = Beta(alpha/2; x, n - x + 1)`` (0 when ``x = 0``) and
        ``high = Beta(1 - alpha/2; x + 1, n - x)`` (1 when ``x = n``).
    """
    x, n, alpha = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, n, alpha)))
    with np.errstate(invalid="ignore"):
        low = np.where(x > 0, special.betaincinv(np.maximum(x, 1), n - x + 1, alpha / 2), 0.0)
        high = np.where(x < n, special.betaincinv(x + 1, np.maximum(n - x, 1), 1 - alpha / 2), 1.0)
    empty = n <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def difference_interval(
    x1: np.ndarray, n1: np.ndarray, x0: np.ndarray, n0: np.ndarray, alpha: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided ``1 - alpha`` interval of ``x1/n1 - x0/n0``: square-and-add of the exact intervals.

    With ``(l1, u1)`` and ``(l0, u0)`` the Clopper-Pearson intervals of the two rates and
    ``d = p1 - p0``::

        low  = d - sqrt((p1 - l1)**2 + (u0 - p0)**2)
        high = d + sqrt((u1 - p1)**2 + (p0 - l0)**2)

    (Newcombe 1998, method 10 with exact instead of Wilson limits; Zou & Donner 2008). Each side
    reaches at least as far as either rate's own exact interval would alone, so the interval is
    never narrower than what the noise of the smaller group allows.
    """
    p1, p0 = np.asarray(x1, float) / np.asarray(n1, float), np.asarray(x0, float) / np.asarray(n0, float)
    l1, u1 = clopper_pearson(x1, n1, alpha)
    l0, u0 = clopper_pearson(x0, n0, alpha)
    d = p1 - p0
    return d - np.hypot(p1 - l1, u0 - p0), d + np.hypot(u1 - p1, p0 - l0)


def interval_p_value(x1: np.ndarray, n1: np.ndarray, x0: np.ndarray, n0: np.ndarray) -> np.ndarray:
    """The smallest level at which :func:`difference_interval` excludes 0 (1 if none does).

    The interval narrows as the level ``alpha`` grows, so the level where its near edge crosses 0 is
    found by bisection on ``log(alpha)`` between :data:`P_FLOOR` and 1; the upper end of the final
    bracket is returned, so the interval at the returned level does exclude 0.
    """
    x1, n1, x0, n0 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x1, n1, x0, n0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        d = x1 / n1 - x0 / n0
    sign = np.sign(np.nan_to_num(d))

    def excludes_zero(alpha: np.ndarray) -> np.ndarray:
        low, high = difference_interval(x1, n1, x0, n0, alpha)
        return np.where(sign > 0, low > 0, high < 0)

    lo_t = np.full(d.shape, np.log(P_FLOOR))
    hi_t = np.zeros(d.shape)
    at_floor = excludes_zero(np.exp(lo_t))
    never = ~excludes_zero(np.exp(hi_t)) | (sign == 0)
    for _ in range(_BISECTIONS):
        mid = (lo_t + hi_t) / 2
        ok = excludes_zero(np.exp(mid))
        hi_t = np.where(ok, mid, hi_t)
        lo_t = np.where(ok, lo_t, mid)
    p = np.where(at_floor, P_FLOOR, np.exp(hi_t))
    p = np.where(never, 1.0, p)
    return np.where(np.isnan(d), np.nan, p)


def difference_p_value(x1: np.ndarray, n1: np.ndarray, x0: np.ndarray, n0: np.ndarray) -> np.ndarray:
    """Two-sided p-value of "no difference": the larger of Fisher's exact test and :func:`interval_p_value`.

    Fisher's exact test (two-sided, tables as likely or less likely than the observed one) keeps
    the chance of a false claim at or below the level whatever the counts; taking the larger of
    the two makes a claim at level ``alpha`` imply both that test and an interval that excludes
    no difference. NaN where either group is empty.
    """
    x1, n1, x0, n0 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x1, n1, x0, n0)))
    p = interval_p_value(x1, n1, x0, n0)
    out = np.full(p.shape, np.nan)
    for i in np.flatnonzero(np.isfinite(p)):
        table = [[int(x1.flat[i]), int(n1.flat[i] - x1.flat[i])], [int(x0.flat[i]), int(n0.flat[i] - x0.flat[i])]]
        out.flat[i] = max(float(stats.fisher_exact(table).pvalue), float(p.flat[i]), P_FLOOR)
    return np.minimum(out, 1.0)
