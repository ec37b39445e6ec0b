"""Analysis of a randomised wave: per-arm effects against the control, CUPED-adjusted effects, SRM check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from uplift.design.srm import SampleRatioCheck, srm_check
from uplift.errors import DataError, SchemaError
from uplift.vocabulary import HOLDOUT

__all__ = ["Analysis", "EFFECT_COLUMNS", "analyze"]

EFFECT_COLUMNS = (
    "arm",
    "n",
    "conversions",
    "rate",
    "effect",
    "se",
    "ci_low",
    "ci_high",
    "relative_lift",
    "p_value",
    "adjusted_effect",
    "adjusted_se",
    "adjusted_ci_low",
    "adjusted_ci_high",
    "adjusted_p_value",
    "variance_reduction",
)
"""Columns of :attr:`Analysis.arms` (``segments`` has ``segment`` first)."""


@dataclass(frozen=True, eq=False)
class Analysis:
    """Result of :func:`analyze`.

    Attributes
    ----------
    arms : pandas.DataFrame
        One row per arm, the control first, columns :data:`EFFECT_COLUMNS`. Effects are
        differences of proportions arm minus control; the control row has NaN effects.
        ``se`` is the unpooled (Wald) standard error, ``ci_low``/``ci_high`` the Newcombe hybrid
        score interval (good at low rates), ``p_value`` that of the pooled two-proportion z-test.
        ``adjusted_*`` are the CUPED estimate (NaN without covariates) with a Wald interval, and
        ``variance_reduction`` is ``1 - adjusted_se**2 / se**2``.
    segments : pandas.DataFrame or None
        The same per ``segment`` x arm (the control of the same segment as reference), or None.
    srm : SampleRatioCheck or None
        Sample-ratio-mismatch check against the design shares, or None if none were given.
    control : str
        Name of the control arm.
    outcome : str
        Name of the outcome column analysed.
    alpha : float
        Two-sided level; intervals have coverage ``1 - alpha``.
    covariates : tuple of str
        The pre-wave covariates used for CUPED.
    theta : pandas.Series
        CUPED coefficient per covariate (pooled least squares over all rows).
    """

    arms: pd.DataFrame = field(repr=False)
    segments: pd.DataFrame | None = field(repr=False)
    srm: SampleRatioCheck | None
    control: str
    outcome: str
    alpha: float
    covariates: tuple[str, ...]
    theta: pd.Series = field(repr=False)

    @property
    def treatment(self) -> pd.DataFrame:
        """The rows of :attr:`arms` other than the control."""
        return self.arms[self.arms["arm"] != self.control].reset_index(drop=True)


def analyze(
    frame: pd.DataFrame,
    *,
    arm_col: str = "arm",
    outcome_col: str = "outcome",
    control: str = HOLDOUT,
    segment_col: str | None = None,
    covariates: Sequence[str] = (),
    expected_shares: Mapping[str, float] | None = None,
    alpha: float = 0.05,
) -> Analysis:
    """Effect of every arm against the control in a randomised wave.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per randomised person: the arm, the 0/1 outcome, optional numeric pre-wave
        covariates and an optional segment column. Not modified.
    arm_col, outcome_col : str
        Names of the arm and outcome columns.
    control : str
        Name of the control arm (default ``"holdout"``).
    segment_col : str, optional
        Also report effects per value of this column.
    covariates : sequence of str
        Numeric columns measured before the wave, for the CUPED adjustment: the outcome is
        regressed on them over all rows (``theta``), ``y - (x - mean(x)) @ theta`` replaces ``y``.
        Because arms are randomised, the adjusted effect has the same expectation as the plain one
        and a smaller variance the more the covariates predict the outcome.
    expected_shares : mapping of arm to share, optional
        Design shares (e.g. :func:`~uplift.design.shares.design_shares`), for the SRM check.
    alpha : float
        Two-sided level of the intervals and tests.

    Returns
    -------
    Analysis

    Raises
    ------
    SchemaError
        A named column is missing.
    DataError
        The outcome is not 0/1, a value is missing, a covariate is not numeric, the control has no
        rows, or ``alpha`` is outside (0, 1).
    """
    if not 0.0 < alpha < 1.0:
        raise DataError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    covariates = tuple(covariates)
    needed = [arm_col, outcome_col, *([segment_col] if segment_col else []), *covariates]
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise SchemaError(f"analysis frame: missing column(s) {missing}; columns are {list(frame.columns)}")
    if len(frame) == 0:
        raise DataError("analysis frame: no rows")
    arm = _labels(frame[arm_col], arm_col)
    y = _binary(frame[outcome_col], outcome_col)
    if not (arm == control).any():
        raise DataError(f"column {arm_col!r}: no rows of the control arm {control!r}; arms are {sorted(set(arm))}")
    x = _numeric(frame, covariates)
    theta = _theta(x, y)
    y_adj = y - (x - x.mean(axis=0)) @ theta if covariates else None

    order = _arm_order(arm, control, expected_shares)
    arms_table = _compare(arm, y, y_adj, order, control, alpha)
    segments = None
    if segment_col:
        seg = _labels(frame[segment_col], segment_col)
        parts = []
        for value in sorted(set(seg)):
            rows = seg == value
            sub_order = [a for a in order if (arm[rows] == a).any()]
            table = _compare(arm[rows], y[rows], None if y_adj is None else y_adj[rows], sub_order, control, alpha)
            parts.append(table.assign(segment=value))
        segments = pd.concat(parts, ignore_index=True)[["segment", *EFFECT_COLUMNS]]
    srm = None
    if expected_shares is not None:
        srm = srm_check(pd.Series(arm).value_counts(), expected_shares)
    return Analysis(
        arms=arms_table,
        segments=segments,
        srm=srm,
        control=control,
        outcome=outcome_col,
        alpha=alpha,
        covariates=covariates,
        theta=pd.Series(theta, index=list(covariates), dtype=float, name="theta"),
    )


# -- input checks ---------------------------------------------------------------------------
def _labels(column: pd.Series, name: str) -> np.ndarray:
    if column.isna().any():
        raise DataError(f"column {name!r}: {int(column.isna().sum())} missing value(s)")
    return column.astype(str).to_numpy(dtype=object)


def _binary(column: pd.Series, name: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        raise DataError(
            f"column {name!r}: expected 0/1 outcomes; {int(bad.sum())} row(s) break it "
            f"(e.g. {column[bad].head(3).tolist()})"
        )
    return values


def _numeric(frame: pd.DataFrame, covariates: tuple[str, ...]) -> np.ndarray:
    for col in covariates:
        if not (pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col])):
            raise DataError(f"covariate {col!r}: expected numeric values, got dtype {frame[col].dtype}")
    x = frame.loc[:, list(covariates)].to_numpy(dtype=float) if covariates else np.empty((len(frame), 0))
    bad = ~np.isfinite(x)
    if bad.any():
        cols = [c for c, b in zip(covariates, bad.any(axis=0)) if b]
        raise DataError(f"covariate(s) {cols}: {int(bad.any(axis=1).sum())} row(s) with missing or infinite values")
    return x


def _theta(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.shape[1] == 0:
        return np.empty(0)
    xc = x - x.mean(axis=0)
    theta, *_ = np.linalg.lstsq(xc, y - y.mean(), rcond=None)
    return theta


def _arm_order(arm: np.ndarray, control: str, expected: Mapping[str, float] | None) -> list[str]:
    present = set(arm)
    declared = [a for a in (expected or {}) if a in present and a != control]
    rest = sorted(present - set(declared) - {control})
    return [control, *declared, *rest]


# -- statistics -----------------------------------------------------------------------------
def _wilson(p: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    denom = 1.0 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


def _compare(
    arm: np.ndarray,
    y: np.ndarray,
    y_adj: np.ndarray | None,
    order: list[str],
    control: str,
    alpha: float,
) -> pd.DataFrame:
    """Per-arm counts and effects against ``control`` (NaN effects if the control has no rows)."""
    z = float(stats.norm.ppf(1 - alpha / 2))
    groups = pd.DataFrame({"arm": arm, "y": y, "y_adj": y if y_adj is None else y_adj}).groupby("arm", sort=False)
    agg = groups.agg(n=("y", "size"), conversions=("y", "sum"), adj_mean=("y_adj", "mean"))
    agg["adj_var"] = groups["y_adj"].var(ddof=0)
    agg = agg.reindex(order)
    n = agg["n"].to_numpy(dtype=float)
    x = agg["conversions"].to_numpy(dtype=float)
    rate = x / n
    if control in agg.index and agg.loc[control, "n"] > 0:
        n0, x0 = float(agg.loc[control, "n"]), float(agg.loc[control, "conversions"])
        m0, v0 = float(agg.loc[control, "adj_mean"]), float(agg.loc[control, "adj_var"])
    else:
        n0 = x0 = m0 = v0 = np.nan
    r0 = x0 / n0
    with np.errstate(divide="ignore", invalid="ignore"):
        effect = rate - r0
        se = np.sqrt(rate * (1 - rate) / n + r0 * (1 - r0) / n0)
        l1, u1 = _wilson(rate, n, z)
        l0, u0 = _wilson(np.array(r0), np.array(n0), z)
        ci_low = effect - np.sqrt((rate - l1) ** 2 + (u0 - r0) ** 2)
        ci_high = effect + np.sqrt((u1 - rate) ** 2 + (r0 - l0) ** 2)
        pooled = (x + x0) / (n + n0)
        se0 = np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n0))
        p_value = np.where(se0 > 0, 2 * stats.norm.sf(np.abs(effect) / se0), 1.0)
        relative = np.where(r0 > 0, effect / r0, np.nan)
        if y_adj is None:
            adj_effect = adj_se = adj_low = adj_high = adj_p = reduction = np.full(len(order), np.nan)
        else:
            adj_effect = agg["adj_mean"].to_numpy(dtype=float) - m0
            adj_se = np.sqrt(agg["adj_var"].to_numpy(dtype=float) / n + v0 / n0)
            adj_low, adj_high = adj_effect - z * adj_se, adj_effect + z * adj_se
            adj_p = np.where(adj_se > 0, 2 * stats.norm.sf(np.abs(adj_effect) / adj_se), 1.0)
            reduction = np.where(se > 0, 1 - adj_se**2 / se**2, np.nan)
    table = pd.DataFrame(
        {
            "arm": order,
            "n": n.astype(np.int64),
            "conversions": x.astype(np.int64),
            "rate": rate,
            "effect": effect,
            "se": se,
            "ci_low": ci_low,
            "ci_high": ci_high,
            "relative_lift": relative,
            "p_value": p_value,
            "adjusted_effect": adj_effect,
            "adjusted_se": adj_se,
            "adjusted_ci_low": adj_low,
            "adjusted_ci_high": adj_high,
            "adjusted_p_value": adj_p,
            "variance_reduction": reduction,
        }
    )
    effect_cols = list(EFFECT_COLUMNS[4:])
    table.loc[table["arm"] == control, effect_cols] = np.nan
    table["arm"] = table["arm"].astype("str")
    return table
