"""What a plan promised against what its wave delivered: per planned cell, message and priority group, the
calibration of the model over the cells, and the total.

The wave was designed from the plan (:mod:`uplift.design.fromplan`): every planned segment randomised on its
own, with its holdout inside it. A cell's realised incremental conversions are its contacts times the
difference between its arm's rate and its segment's holdout rate, with the exact square-and-add interval of
that difference (:func:`~uplift.design.rates.difference_interval`) scaled by the contacts, so a cell with no
conversion still gets an honest interval. The plan's promise for the cell is its expected conversions (and
interval) scaled to the contacts the design gave it. Sums over cells (a message, a priority group, the wave)
add the cells' estimates; the cells are randomised apart, so their errors are independent and their
variances add (each cell's from its exact interval). A priority group's realised figure compares its members
in each arm with its members in the segment's holdout (the whole holdout where the group has nobody there).

The calibration regresses the cells' realised effect per contact on the promised one (weighted least
squares, weights the inverse of the realised variance): slope 1 and intercept 0 when the model's cell effects
are right on average.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from uplift.data.vocabulary import HOLDOUT, split_arm
from uplift.design.rates import difference_interval
from uplift.errors import DataError, SchemaError
from uplift.features.propensity import DESIGN_CELL

__all__ = ["Calibration", "PlanOutcome", "promised_and_delivered", "OUTCOME_COLUMNS"]

OUTCOME_COLUMNS = ("promised", "promised_lo", "promised_hi", "realised", "realised_lo", "realised_hi")
"""The figures of every table of :class:`PlanOutcome`: incremental conversions promised (the plan's
interval) and realised (the analysis's interval)."""

_MIN_CELLS = 3


@dataclass(frozen=True)
class Calibration:
    """Realised effect per contact = intercept + slope x promised effect per contact, over the cells.

    Attributes
    ----------
    slope, slope_lo, slope_hi, intercept, intercept_lo, intercept_hi : the fit and its intervals (NaN with
        fewer than 3 cells or no spread in the promises).
    cells : the cells fitted.
    level : the intervals' coverage.
    """

    slope: float
    slope_lo: float
    slope_hi: float
    intercept: float
    intercept_lo: float
    intercept_hi: float
    cells: int
    level: float

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PlanOutcome:
    """The plan against its wave.

    Attributes
    ----------
    cells : per planned cell (``segment, arm, message, channel``): ``contacts`` (designed), the figures of
        :data:`OUTCOME_COLUMNS`, and the counts they rest on (``n_arm, conversions_arm, n_holdout,
        conversions_holdout``; never released, see :mod:`uplift.design.release`).
    messages, groups : the same per message (``message``) and per priority group (``group``).
    total : the same for the wave (one row).
    calibration : the model's calibration over the cells.
    level : coverage of the realised intervals; the promised ones are the plan's own.
    """

    cells: pd.DataFrame
    messages: pd.DataFrame
    groups: pd.DataFrame
    total: pd.DataFrame
    calibration: Calibration
    level: float

    def sentence(self) -> str:
        """``the plan promised 214 [171, 257], the wave delivered 188 [131, 245]`` (from the total row)."""
        t = self.total.iloc[0]

        def fig(v, lo, hi):
            return "withheld" if pd.isna(v) else f"{v:,.0f} [{lo:,.0f}, {hi:,.0f}]"

        return (f"the plan promised {fig(t['promised'], t['promised_lo'], t['promised_hi'])} incremental conversions, "
                f"the wave delivered {fig(t['realised'], t['realised_lo'], t['realised_hi'])} "
                f"({self.level:.0%} interval)")


def promised_and_delivered(
    frame: pd.DataFrame,
    plan: pd.DataFrame,
    *,
    outcome_col: str,
    control: str = HOLDOUT,
    groups: Mapping[str, np.ndarray] | None = None,
    level: float = 0.95,
    source: str = "plan",
) -> PlanOutcome:
    """Compare the plan's cells with the wave's randomised estimates.

    Parameters
    ----------
    frame : one row per person of the wave: ``arm``, ``design_cell`` (the planned segment) and the 0/1 outcome.
    plan : the plan's cells (``segment, arm, contacts, expected_conversions, lo, hi``).
    outcome_col : the outcome column of ``frame``.
    control : the holdout arm.
    groups : priority group name -> bool per row of ``frame`` (membership).
    level : coverage of the realised intervals.

    Raises
    ------
    SchemaError
        A needed column is missing.
    DataError
        The wave was not designed from a plan (no design cells), or shares no cell with ``plan``.
    """
    for col, where in ((("arm", DESIGN_CELL, outcome_col), "the wave's rows"),
                       (("segment", "arm", "contacts", "expected_conversions", "lo", "hi"), source)):
        missing = [c for c in col if c not in (frame.columns if where != source else plan.columns)]
        if missing:
            raise SchemaError(f"{where}: missing column(s) {missing}")
    if (frame[DESIGN_CELL].fillna("") == "").all():
        raise DataError("the wave's exposures have no design cells: it was not designed from a plan "
                        "(`uplift experiment design --plan`)")
    rows = pd.DataFrame({"segment": frame[DESIGN_CELL].astype(str).to_numpy(),
                         "arm": frame["arm"].astype(str).to_numpy(), "y": frame[outcome_col].to_numpy(dtype=float)})
    z = float(norm.ppf(0.5 + level / 2))
    cells = _cells(rows, plan, control, level, source)
    if cells.empty:
        raise DataError(f"{source}: none of the plan's funded cells is in the wave; was the wave designed from it?")
    members = {} if groups is None else {g: np.asarray(m, dtype=bool) for g, m in groups.items()}
    return PlanOutcome(
        cells=cells,
        messages=_sum_over(cells, "message", z),
        groups=pd.DataFrame([_group_row(rows, cells, g, m, control, z) for g, m in members.items()],
                            columns=["group", *OUTCOME_COLUMNS, "n_arm", "conversions_arm", "n_holdout",
                                     "conversions_holdout"]),
        total=_sum_over(cells.assign(wave="all"), "wave", z),
        calibration=_calibration(cells, level),
        level=level,
    )


def _counts(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.groupby(["segment", "arm"]).agg(n=("y", "size"), x=("y", "sum"))


def _cells(rows: pd.DataFrame, plan: pd.DataFrame, control: str, level: float, source: str) -> pd.DataFrame:
    """One row per planned cell with contacts in the wave."""
    counts = _counts(rows)
    funded = plan[pd.to_numeric(plan["contacts"], errors="coerce").fillna(0) > 0]
    key = pd.MultiIndex.from_arrays([funded["segment"].astype(str), funded["arm"].astype(str)])
    got = counts.reindex(key)
    hold = counts.reindex(pd.MultiIndex.from_arrays([funded["segment"].astype(str),
                                                     np.full(len(funded), control, dtype=object)]))
    out = pd.DataFrame({"segment": key.get_level_values(0), "arm": key.get_level_values(1)})
    out["message"] = [split_arm(a)[0] for a in out["arm"]]
    out["channel"] = [split_arm(a)[1] for a in out["arm"]]
    out["contacts"] = got["n"].fillna(0).to_numpy(dtype=np.int64)
    out["n_arm"], out["conversions_arm"] = out["contacts"], got["x"].fillna(0).to_numpy(dtype=np.int64)
    out["n_holdout"] = hold["n"].fillna(0).to_numpy(dtype=np.int64)
    out["conversions_holdout"] = hold["x"].fillna(0).to_numpy(dtype=np.int64)
    scale = out["contacts"].to_numpy(float) / funded["contacts"].to_numpy(float)
    for col, plan_col in (("promised", "expected_conversions"), ("promised_lo", "lo"), ("promised_hi", "hi")):
        out[col] = pd.to_numeric(funded[plan_col], errors="coerce").to_numpy(float) * scale
    n1, x1 = out["n_arm"].to_numpy(float), out["conversions_arm"].to_numpy(float)
    n0, x0 = out["n_holdout"].to_numpy(float), out["conversions_holdout"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = x1 / n1 - x0 / n0
        lo, hi = difference_interval(x1, n1, x0, n0, 1 - level)
    out["realised"], out["realised_lo"], out["realised_hi"] = n1 * d, n1 * lo, n1 * hi
    out = out[(out["n_arm"] > 0) & (out["n_holdout"] > 0)].reset_index(drop=True)
    return out


def _sd(frame: pd.DataFrame, z: float) -> np.ndarray:
    return (frame["realised_hi"] - frame["realised_lo"]).to_numpy(float) / (2 * z)


def _sum_over(cells: pd.DataFrame, by: str, z: float) -> pd.DataFrame:
    """Sums per ``by``: promised and its bounds add up (the plan's cells share errors: the sum of the bounds is
    the interval when they all move together, the widest it can be); realised adds, variances add."""
    work = cells.assign(var=_sd(cells, z) ** 2)
    agg = work.groupby(by, sort=True).agg(
        promised=("promised", "sum"), promised_lo=("promised_lo", "sum"), promised_hi=("promised_hi", "sum"),
        realised=("realised", "sum"), var=("var", "sum"), n_arm=("n_arm", "sum"),
        conversions_arm=("conversions_arm", "sum"))
    holdouts = cells.drop_duplicates("segment").groupby(by)[["n_holdout", "conversions_holdout"]].sum()
    agg = agg.join(holdouts)
    half = z * np.sqrt(agg.pop("var"))
    agg.insert(4, "realised_lo", agg["realised"] - half)
    agg.insert(5, "realised_hi", agg["realised"] + half)
    return agg.reset_index()


def _group_row(rows: pd.DataFrame, cells: pd.DataFrame, group: str, member: np.ndarray, control: str,
               z: float) -> dict:
    """A priority group's promised (each cell's promise times the group's share of its contacts) and realised
    (its members' conversions in each arm less the same number at the segment's holdout rate among members)."""
    if len(member) != len(rows):
        raise DataError(f"priority group {group!r}: {len(member)} membership values for {len(rows)} rows")
    inside = _counts(rows[member])
    key = pd.MultiIndex.from_arrays([cells["segment"], cells["arm"]])
    hold_key = pd.MultiIndex.from_arrays([cells["segment"], np.full(len(cells), control, dtype=object)])
    n1 = inside["n"].reindex(key).fillna(0).to_numpy(float)
    x1 = inside["x"].reindex(key).fillna(0).to_numpy(float)
    n0g = inside["n"].reindex(hold_key).fillna(0).to_numpy(float)
    x0g = inside["x"].reindex(hold_key).fillna(0).to_numpy(float)
    n0 = np.where(n0g > 0, n0g, cells["n_holdout"].to_numpy(float))
    x0 = np.where(n0g > 0, x0g, cells["conversions_holdout"].to_numpy(float))
    share = np.divide(n1, cells["n_arm"].to_numpy(float), out=np.zeros_like(n1), where=cells["n_arm"].to_numpy() > 0)
    p1, p0 = (x1 + 1) / (n1 + 2), (x0 + 1) / (n0 + 2)  # smoothed for the variance only: zero cells stay honest
    with np.errstate(invalid="ignore", divide="ignore"):
        realised = np.where(n1 > 0, x1 - n1 * x0 / n0, 0.0)
        var = np.where(n1 > 0, n1 ** 2 * (p1 * (1 - p1) / np.maximum(n1, 1) + p0 * (1 - p0) / n0), 0.0)
    half = z * float(np.sqrt(var.sum()))
    used = n0g > 0
    segs = ~pd.Series(cells["segment"]).duplicated().to_numpy()
    return {"group": group, "promised": float((cells["promised"] * share).sum()),
            "promised_lo": float((cells["promised_lo"] * share).sum()),
            "promised_hi": float((cells["promised_hi"] * share).sum()),
            "realised": float(realised.sum()), "realised_lo": float(realised.sum()) - half,
            "realised_hi": float(realised.sum()) + half, "n_arm": int(n1.sum()), "conversions_arm": int(x1.sum()),
            "n_holdout": int((n0g * segs).sum()) if used.any() else 0,
            "conversions_holdout": int((x0g * segs).sum()) if used.any() else 0}


def _calibration(cells: pd.DataFrame, level: float) -> Calibration:
    """Weighted least squares of the realised effect per contact on the promised one (statsmodels)."""
    import statsmodels.api as sm

    z = float(norm.ppf(0.5 + level / 2))
    n = cells["contacts"].to_numpy(float)
    x = cells["promised"].to_numpy(float) / n
    y = cells["realised"].to_numpy(float) / n
    sd = _sd(cells, z) / n
    ok = np.isfinite(x) & np.isfinite(y) & (sd > 0)
    nan = Calibration(*(float("nan"),) * 6, cells=int(ok.sum()), level=level)
    if ok.sum() < _MIN_CELLS or np.ptp(x[ok]) <= 1e-9 * max(float(np.abs(x[ok]).max()), 1e-12):
        return nan
    fit = sm.WLS(y[ok], sm.add_constant(x[ok]), weights=1.0 / sd[ok] ** 2).fit()
    ci = fit.conf_int(alpha=1 - level)
    return Calibration(slope=float(fit.params[1]), slope_lo=float(ci[1, 0]), slope_hi=float(ci[1, 1]),
                       intercept=float(fit.params[0]), intercept_lo=float(ci[0, 0]), intercept_hi=float(ci[0, 1]),
                       cells=int(ok.sum()), level=level)
