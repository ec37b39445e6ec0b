"""Verdicts for a family of comparisons: adjusted p-values, intervals at the family's level, better/worse/unclear."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from uplift.design.comparisons import CUPED
from uplift.design.multiplicity import FamilyAdjustment, adjust_family
from uplift.design.rates import difference_interval
from uplift.specs.experiment import Multiplicity

__all__ = ["VERDICT_COLUMNS", "BETTER", "WORSE", "UNCLEAR", "decide"]

VERDICT_COLUMNS = (
    "estimate",
    "estimate_ci_low",
    "estimate_ci_high",
    "interval_level",
    "adjusted_p_value",
    "verdict",
    "family",
    "family_size",
)
"""Columns :func:`decide` adds."""

BETTER, WORSE, UNCLEAR = "better", "worse", "unclear"


def _raw_p(table: pd.DataFrame) -> np.ndarray:
    cuped = (table["method"] == CUPED).to_numpy()
    return np.where(cuped, table["cuped_p_value"].to_numpy(float), table["p_value"].to_numpy(float))


def _interval(table: pd.DataFrame, n0: np.ndarray, x0: np.ndarray, level: float) -> tuple[np.ndarray, ...]:
    """Estimate and interval of each row's method at two-sided level ``level``."""
    cuped = (table["method"] == CUPED).to_numpy()
    n, x = table["n"].to_numpy(float), table["conversions"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        low, high = difference_interval(x, n, x0, n0, level)
    z = float(stats.norm.ppf(1 - level / 2))
    c_est, c_se = table["cuped_effect"].to_numpy(float), table["cuped_se"].to_numpy(float)
    estimate = np.where(cuped, c_est, table["effect"].to_numpy(float))
    low = np.where(cuped, c_est - z * c_se, low)
    high = np.where(cuped, c_est + z * c_se, high)
    return estimate, low, high


def decide(
    table: pd.DataFrame,
    control_n: np.ndarray,
    control_conversions: np.ndarray,
    *,
    multiplicity: Multiplicity,
    alpha: float,
    family: str,
) -> tuple[pd.DataFrame, FamilyAdjustment]:
    """Adjust the comparisons in ``table`` together and give each a verdict with an interval that agrees.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of :func:`~uplift.design.comparisons.compare_arms` (control rows, with NaN p-values,
        are carried along and stay out of the family).
    control_n, control_conversions : numpy.ndarray
        People and conversions of each row's control group.
    multiplicity : {"none", "holm", "bh"}
        The adjustment.
    alpha : float
        Family level.
    family : str
        Name of the family, written to the ``family`` column of its members.

    Returns
    -------
    (table, adjustment)
        ``table`` with :data:`VERDICT_COLUMNS` added, and the family's :class:`FamilyAdjustment`.
        ``estimate`` and its interval come from the row's ``method`` at the family's level; the
        verdict is ``better``/``worse`` only when the adjusted p-value is at most ``alpha`` and the
        interval lies on one side of 0; an interval that would exclude 0 without that is extended
        to reach 0, so no interval claims more than the test.
    """
    adjustment = adjust_family(_raw_p(table), multiplicity, alpha)
    estimate, low, high = _interval(table, np.asarray(control_n, float), np.asarray(control_conversions, float),
                                    adjustment.level)
    member = np.isfinite(adjustment.adjusted)
    better = adjustment.reject & (low > 0)
    worse = adjustment.reject & (high < 0)
    unclear = member & ~better & ~worse
    low = np.where(unclear, np.minimum(low, 0.0), low)
    high = np.where(unclear, np.maximum(high, 0.0), high)
    verdict = np.where(better, BETTER, np.where(worse, WORSE, np.where(member, UNCLEAR, "")))
    out = table.assign(
        estimate=np.where(member, estimate, np.nan),
        estimate_ci_low=np.where(member, low, np.nan),
        estimate_ci_high=np.where(member, high, np.nan),
        interval_level=np.where(member, 1.0 - adjustment.level, np.nan),
        adjusted_p_value=adjustment.adjusted,
        verdict=verdict,
        family=np.where(member, family, ""),
        family_size=np.where(member, adjustment.size, 0).astype(np.int64),
    )
    return out, adjustment
