"""Adjusting a family of comparisons for testing many at once: Holm, Benjamini-Hochberg, or none."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from statsmodels.stats.multitest import fdrcorrection

from uplift.errors import DataError
from uplift.specs.experiment import MULTIPLICITY, Multiplicity

__all__ = ["MULTIPLICITY", "Multiplicity", "FamilyAdjustment", "adjust_family", "describe_method"]



def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values: ``max_{j <= i} min(1, (m - j + 1) p_(j))`` in sorted order.

    Written out because statsmodels' ``multipletests(method="holm")`` runs a full garbage collection
    on every call (0.25 s measured inside the test process), which the API and the tests pay per family.
    """
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted_sorted = np.minimum(np.maximum.accumulate(p[order] * (m - np.arange(m))), 1.0)
    out = np.empty(m)
    out[order] = adjusted_sorted
    return out


@dataclass(frozen=True)
class FamilyAdjustment:
    """The outcome of adjusting one family of p-values.

    Attributes
    ----------
    adjusted : numpy.ndarray
        Adjusted p-values, in the input order (NaN where the input was NaN).
    reject : numpy.ndarray of bool
        ``adjusted <= alpha``.
    level : float
        The two-sided level of the intervals that go with the verdicts: ``alpha`` for ``none``;
        ``alpha / (m - R)`` for ``holm`` (``alpha`` when all ``m`` are rejected), the level Holm's
        last step tests at; ``max(R, 1) * alpha / m`` for ``bh``, the false-coverage-rate level of
        Benjamini & Yekutieli (2005). ``R`` is the number rejected. A comparison is rejected
        exactly when its unadjusted p-value is at most ``level``, so an interval at this level
        that inverts the same test excludes no difference exactly for the rejected comparisons.
    size : int
        ``m``, the number of comparisons adjusted together (finite p-values).
    """

    adjusted: np.ndarray
    reject: np.ndarray
    level: float
    size: int


def adjust_family(p_values: np.ndarray, method: Multiplicity, alpha: float) -> FamilyAdjustment:
    """Adjust the finite entries of ``p_values`` together (NaN entries are not in the family).

    Parameters
    ----------
    p_values : array_like
        Unadjusted two-sided p-values of the family's comparisons.
    method : {"none", "holm", "bh"}
        The adjustment (:data:`MULTIPLICITY`).
    alpha : float
        Family level, in (0, 1).

    Raises
    ------
    DataError
        ``method`` is not one of :data:`MULTIPLICITY`, or ``alpha`` is outside (0, 1).
    """
    if method not in MULTIPLICITY:
        raise DataError(f"{method!r} is not a valid multiplicity adjustment; valid: {', '.join(MULTIPLICITY)}")
    if not 0.0 < alpha < 1.0:
        raise DataError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    p = np.asarray(p_values, dtype=float)
    member = np.isfinite(p)
    m = int(member.sum())
    adjusted = np.full(p.shape, np.nan)
    if m and method == "none":
        adjusted[member] = p[member]
    elif m and method == "holm":
        adjusted[member] = _holm(p[member])
    elif m:
        adjusted[member] = fdrcorrection(p[member], alpha=alpha, method="indep")[1]
    reject = np.where(member, adjusted <= alpha, False)
    r = int(reject.sum())
    if method == "holm":
        level = alpha / max(m - r, 1)
    elif method == "bh":
        level = max(r, 1) * alpha / max(m, 1)
    else:
        level = alpha
    return FamilyAdjustment(adjusted=adjusted, reject=reject, level=float(level), size=m)


def describe_method(method: str, alpha: float) -> str:
    """What the adjustment guarantees, in plain words (for summaries)."""
    if method == "holm":
        return f"Holm: the chance that any of them is wrongly called better or worse is at most {100 * alpha:g}%"
    if method == "bh":
        return (f"Benjamini-Hochberg: on average at most {100 * alpha:g}% of those called better or worse are "
                "wrongly so")
    return f"not adjusted: each is tested at {100 * alpha:g}% on its own"
