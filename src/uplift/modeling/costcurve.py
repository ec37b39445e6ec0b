"""The multi-arm cost curve: the value gained as the budget grows, each person getting at most one arm.

After the multi-armed Qini of Sverdrup, Wu, Wager & Athey (2024, "Qini curves for multi-armed
treatment rules", the ``maq`` package). Per person, the arms' estimated gains (value x uplift) and
incremental costs span a set of points with "no contact" at the origin; only the vertices of its
upper-left convex hull are ever worth buying, and moving from one vertex to the next buys
``dgain`` for ``dcost`` at the segment's slope. Sorting every person's segments by slope, largest
first, gives the solution path: spending a budget ``B`` per person buys the segments in that
order until their cost reaches ``B * n`` (a person upgraded twice moves to the later arm). The
curve is then valued on randomised rows by IPW, ``gain(B) = value * (V(pi_B) - V(no one))`` with
its paired standard error (cluster-robust with clusters), and ``net(B) = gain(B) - spend(B)``.

The budget at which the next euro stops paying: along the path, where the segments' estimated slope
(value per euro) falls below 1 (``break_even_spend``, the spend of the net-value rule without a
budget); on the evaluated curve, the spend of largest net gain (``best_spend``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from uplift.errors import DataError
from uplift.modeling.netvalue import net_difference

__all__ = ["SolutionPath", "CostCurve", "solution_path", "cost_curve"]


@dataclass(frozen=True)
class SolutionPath:
    """Every person's hull segments sorted by slope, largest first.

    Attributes
    ----------
    person : row of each segment.
    arm : the arm (column of the gains) a person holds after the segment.
    cost, gain : the segment's incremental cost and gain.
    slope : ``gain / cost``.
    n : number of people (rows).
    """

    person: np.ndarray
    arm: np.ndarray
    cost: np.ndarray
    gain: np.ndarray
    slope: np.ndarray
    n: int

    @property
    def spend(self) -> np.ndarray:
        """Spend per person after each segment."""
        return np.cumsum(self.cost) / self.n

    def break_even_spend(self) -> float:
        """Spend per person once every segment with slope >= 1 is bought (the next euro returns less than a euro)."""
        paying = self.slope >= 1.0
        return float(self.cost[paying].sum() / self.n)

    def allocation(self, segments: int, arms: list[str], control: str) -> np.ndarray:
        """Each person's arm after buying the first ``segments`` segments."""
        out = np.full(self.n, control, dtype=object)
        names = np.asarray(arms, dtype=object)
        out[self.person[:segments]] = names[self.arm[:segments]]  # later segments of a person overwrite earlier
        return out


def solution_path(gains: pd.DataFrame, costs: pd.DataFrame) -> SolutionPath:
    """The solution path of estimated ``gains`` (value x uplift per row and treatment arm) at ``costs``
    (incremental cost per row and arm, all > 0).

    Per person the hull is walked from the origin by taking, among the arms beyond the current point
    (more cost, more gain), the one of steepest slope (gift wrapping: at most one step per arm).

    Raises
    ------
    DataError
        An incremental cost is not positive (the curve is about spending), or the frames differ in shape.
    """
    c = costs.reindex(columns=gains.columns).to_numpy(float)
    g = gains.to_numpy(float)
    if c.shape != g.shape or np.isnan(c).any():
        raise DataError(f"costs must have the rows and arms of the gains; gains: {list(gains.columns)}, "
                        f"costs: {list(costs.columns)}")
    if (c <= 0).any():
        raise DataError("the cost curve needs a positive incremental cost for every arm and person")
    n, k = g.shape
    rows = np.arange(n)
    cur_c, cur_g, active = np.zeros(n), np.zeros(n), np.ones(n, dtype=bool)
    parts = []
    for _ in range(k):
        dc, dg = c - cur_c[:, None], g - cur_g[:, None]
        valid = (dc > 0) & (dg > 0) & active[:, None]
        slope = np.where(valid, dg / np.where(valid, dc, 1.0), -np.inf)
        j = np.argmax(slope, axis=1)
        ok = np.isfinite(slope[rows, j])
        if not ok.any():
            break
        who, arm = rows[ok], j[ok]
        parts.append((who, arm, dc[who, arm], dg[who, arm], slope[who, arm]))
        cur_c[who], cur_g[who] = c[who, arm], g[who, arm]
        active = ok
    if not parts:
        empty = np.array([], dtype=float)
        return SolutionPath(np.array([], dtype=int), np.array([], dtype=int), empty, empty, empty, n)
    person, arm, cost, gain, slope = (np.concatenate(x) for x in zip(*parts, strict=True))
    order = np.argsort(-slope, kind="stable")  # within a person the slopes fall step by step
    return SolutionPath(person[order], arm[order], cost[order], gain[order], slope[order], n)


@dataclass(frozen=True)
class CostCurve:
    """The evaluated curve.

    Attributes
    ----------
    table : one row per budget: ``spend`` (per person), ``gain``, ``gain_se``, ``gain_lo``, ``gain_hi`` (value
        added over contacting no one), ``net``, ``net_se``, ``net_lo``, ``net_hi`` (gain minus spend),
        ``share_treated`` and ``path_slope`` (estimated value per euro of the last segment bought).
    break_even_spend : spend per person where the path's slope falls below 1.
    best_spend : the budget of the table with the largest evaluated net gain.
    """

    table: pd.DataFrame
    break_even_spend: float
    best_spend: float


def _budget_segments(path: SolutionPath, budgets: np.ndarray) -> np.ndarray:
    """For each budget (per person), how many segments of the path it buys."""
    return np.searchsorted(path.spend, budgets + 1e-12, side="right")


def cost_curve(
    gains: pd.DataFrame,
    costs: pd.DataFrame,
    *,
    y: ArrayLike,
    arm: ArrayLike,
    propensity: pd.DataFrame,
    full_costs: pd.DataFrame,
    value: float,
    control: str,
    points: int = 20,
    alpha: float = 0.05,
    cluster: ArrayLike | None = None,
) -> CostCurve:
    """The solution path of ``gains`` at ``costs`` valued on these randomised rows at ``points + 1`` budgets
    from 0 to the spend of the whole path (and at the break-even spend).

    Parameters
    ----------
    gains : estimated value x uplift per row and treatment arm.
    costs : incremental cost per row and treatment arm (> 0).
    y, arm, propensity, alpha, cluster : as :func:`uplift.modeling.policyvalue.ipw_value`.
    full_costs : each row's cost of every arm, the control included (for the net values).
    value : value of one conversion.
    control : the "no contact" arm.
    """
    path = solution_path(gains, costs)
    top = float(path.spend[-1]) if len(path.cost) else 0.0
    budgets = np.unique(np.concatenate([np.linspace(0.0, top, points + 1), [path.break_even_spend()]]))
    taken = _budget_segments(path, budgets)
    arms = list(gains.columns)
    none = np.full(path.n, control, dtype=object)
    free = full_costs * 0.0
    rows = []
    for budget, m in zip(budgets, taken, strict=True):
        policy = path.allocation(int(m), arms, control)
        gain = net_difference(y, arm, propensity, policy, none, costs=free, value=value, alpha=alpha, cluster=cluster)
        net = net_difference(y, arm, propensity, policy, none, costs=full_costs, value=value, alpha=alpha,
                             cluster=cluster)
        rows.append({"budget": float(budget), "spend": float(path.spend[m - 1]) if m else 0.0,
                     "gain": gain.value, "gain_se": gain.se, "gain_lo": gain.lo, "gain_hi": gain.hi,
                     "net": net.value, "net_se": net.se, "net_lo": net.lo, "net_hi": net.hi,
                     "share_treated": float(np.mean(policy != control)),
                     "path_slope": float(path.slope[m - 1]) if m else float("nan")})
    table = pd.DataFrame(rows)
    if table["net"].isna().all():
        raise DataError("the cost curve could not be valued on these rows")
    return CostCurve(table=table, break_even_spend=path.break_even_spend(),
                     best_spend=float(table.loc[table["net"].idxmax(), "spend"]))
