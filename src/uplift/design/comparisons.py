"""Every arm against the control in one group of people: counts, exact intervals, CUPED where it applies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from uplift.design.cuped import CupedGroups, cuped_effects
from uplift.design.rates import clopper_pearson, difference_interval, difference_p_value

__all__ = ["COMPARISON_COLUMNS", "Outcomes", "compare_arms"]

COMPARISON_COLUMNS = (
    "arm",
    "n",
    "conversions",
    "rate",
    "rate_ci_low",
    "rate_ci_high",
    "effect",
    "se",
    "ci_low",
    "ci_high",
    "relative_lift",
    "p_value",
    "cuped_effect",
    "cuped_se",
    "cuped_ci_low",
    "cuped_ci_high",
    "cuped_p_value",
    "variance_reduction",
    "method",
    "method_note",
)
"""Columns of :func:`compare_arms` (see :class:`~uplift.design.analysis.Analysis` for their meaning)."""

EXACT, CUPED = "exact", "cuped"


@dataclass(frozen=True)
class Outcomes:
    """One row per person: arm label, 0/1 outcome and, with covariates, the CUPED covariate term.

    Attributes
    ----------
    arm, y : numpy.ndarray
        Arm label and outcome.
    term : numpy.ndarray or None
        ``(x - mean(x)) @ theta`` (:func:`~uplift.design.cuped.cuped_terms`); the adjusted outcome
        is ``y - term``. None without covariates.
    """

    arm: np.ndarray
    y: np.ndarray
    term: np.ndarray | None = None

    def subset(self, rows: np.ndarray) -> Outcomes:
        """The people selected by the boolean mask ``rows``."""
        return Outcomes(self.arm[rows], self.y[rows], None if self.term is None else self.term[rows])


def _groups(outcomes: Outcomes, order: list[str]) -> CupedGroups:
    frame = pd.DataFrame({"arm": outcomes.arm, "y": outcomes.y})
    if outcomes.term is not None:
        frame = frame.assign(y_adj=outcomes.y - outcomes.term, term=outcomes.term)
    g = frame.groupby("arm", sort=False)
    n = g.size().reindex(order).to_numpy(dtype=float)
    x = g["y"].sum().reindex(order).to_numpy(dtype=float)
    if outcomes.term is None:
        nan = np.full(len(order), np.nan)
        return CupedGroups(n=n, conversions=x, mean=nan, var=nan, term_var=nan)
    return CupedGroups(
        n=n,
        conversions=x,
        mean=g["y_adj"].mean().reindex(order).to_numpy(dtype=float),
        var=g["y_adj"].var(ddof=1).reindex(order).fillna(0.0).to_numpy(dtype=float),
        term_var=g["term"].var(ddof=1).reindex(order).fillna(0.0).to_numpy(dtype=float),
    )


def compare_arms(outcomes: Outcomes, order: list[str], control: str, alpha: float) -> pd.DataFrame:
    """Per-arm counts, exact rate intervals, and effects against ``control`` (NaN if it has no rows).

    Parameters
    ----------
    outcomes : Outcomes
        The people of this comparison.
    order : list of str
        The arms present, control first; the rows come in this order.
    control : str
        The control arm.
    alpha : float
        Two-sided level of the intervals.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COMPARISON_COLUMNS`; the control row has NaN effects and an empty method.
    """
    groups = _groups(outcomes, order)
    n, x = groups.n, groups.conversions
    k = len(order)
    rate = x / n
    rate_low, rate_high = clopper_pearson(x, n, alpha)
    table = pd.DataFrame({"arm": order, "n": n.astype(np.int64), "conversions": x.astype(np.int64), "rate": rate,
                          "rate_ci_low": rate_low, "rate_ci_high": rate_high})
    nan = np.full(k, np.nan)
    c = order.index(control) if control in order else None
    if c is None:
        for col in COMPARISON_COLUMNS[6:]:
            table[col] = nan if col not in ("method", "method_note") else ""
        return table
    n0, x0, r0 = n[c], x[c], rate[c]
    with np.errstate(divide="ignore", invalid="ignore"):
        effect = rate - r0
        se = np.sqrt(rate * (1 - rate) / n + r0 * (1 - r0) / n0)
        relative = np.where(r0 > 0, effect / r0, np.nan)
    ci_low, ci_high = difference_interval(x, n, x0, n0, alpha)
    treated = np.arange(k) != c
    p_value = np.full(k, np.nan)
    p_value[treated] = difference_p_value(x[treated], n[treated], x0, n0)
    cuped = cuped_effects(groups, c, order, se)
    z = float(stats.norm.ppf(1 - alpha / 2))
    table = table.assign(
        effect=effect, se=se, ci_low=ci_low, ci_high=ci_high, relative_lift=relative, p_value=p_value,
        cuped_effect=cuped.effect, cuped_se=cuped.se, cuped_ci_low=cuped.effect - z * cuped.se,
        cuped_ci_high=cuped.effect + z * cuped.se, cuped_p_value=cuped.p_value,
        variance_reduction=cuped.variance_reduction,
        method=np.where(cuped.used, CUPED, EXACT), method_note=cuped.note,
    )
    table.loc[~treated, list(COMPARISON_COLUMNS[6:18])] = np.nan
    table.loc[~treated, ["method", "method_note"]] = ""
    table["arm"] = table["arm"].astype("str")
    return table
