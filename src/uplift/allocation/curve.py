"""What the next euro buys: a plan's expected incremental conversions against its budget.

:func:`budget_curve` plans one prepared problem (:class:`~uplift.allocation.planner.PreparedPlan`) at a
row of budgets, from nothing to well past the spend the rules let money buy conversions at, and
keeps each plan's totals: spend, expected incremental conversions with their interval (the same
shared-error interval as a plan's own) and the marginal cost of the next conversion. Each budget
is a re-solve of the prepared LPs (a few simplex iterations), without reference plans.

The curve flattens where money stops buying conversions: past :attr:`BudgetCurve.saturation`, the
most any budget of the curve spends, a larger budget buys nothing more (every cell with a positive
expected effect is bought up to its reach, caps and the segment sizes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from uplift.allocation.planner import PreparedPlan
from uplift.errors import SpecError

__all__ = ["BudgetCurve", "CurvePoint", "budget_curve", "curve_budgets"]

CURVE_POINTS = 20
"""Budgets on a curve by default (besides the planner's own budget)."""
PAST_SATURATION = 1.4
"""How far past the spend at which money stops buying conversions the curve runs."""


@dataclass(frozen=True)
class CurvePoint:
    """The plan at one budget: ``spend``, ``expected_conversions`` in ``[lo, hi]``, ``marginal_cost`` (EUR of
    the next conversion; inf when more budget buys none), and whether its rules could all hold."""

    budget: float
    spend: float
    expected_conversions: float
    lo: float
    hi: float
    marginal_cost: float
    feasible: bool

    def as_dict(self) -> dict[str, float | bool]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class BudgetCurve:
    """Plans at a row of budgets (ascending) and where money stops buying conversions.

    Attributes
    ----------
    points : one per budget, ascending.
    saturation : EUR the largest plan of the curve spends: a budget beyond it buys no more conversions.
    interval : coverage of the points' ``[lo, hi]``.
    """

    points: tuple[CurvePoint, ...]
    saturation: float
    interval: float

    def at(self, budget: float) -> CurvePoint:
        """The point of the curve at ``budget`` (which must be one of its budgets)."""
        for point in self.points:
            if math.isclose(point.budget, budget, rel_tol=1e-9, abs_tol=1e-9):
                return point
        raise SpecError(f"budget: EUR {budget:,.2f} is not on the curve")


def curve_budgets(*, useful_spend: float, budget: float, points: int = CURVE_POINTS) -> np.ndarray:
    """``points`` evenly spaced budgets from 0 to ``PAST_SATURATION`` x ``useful_spend`` (or 1.25 x ``budget``,
    if more), with ``budget`` and ``useful_spend`` themselves among them; ascending, unique."""
    if points < 2:
        raise SpecError(f"points: expected at least 2 budgets on a curve, got {points}")
    top = max(PAST_SATURATION * max(useful_spend, 0.0), 1.25 * max(budget, 0.0), 1.0)
    grid = np.linspace(0.0, top, points)
    return np.unique(np.round(np.concatenate([grid, [budget, useful_spend]]), 2))


def budget_curve(prepared: PreparedPlan, budgets: np.ndarray | list[float]) -> BudgetCurve:
    """The plans of ``prepared`` at each of ``budgets`` (EUR >= 0), without reference plans.

    A budget at which the rules cannot all hold (e.g. below a channel's minimum spend) gives the relaxed
    plan, marked ``feasible=False``.
    """
    values = np.unique(np.asarray(budgets, dtype=float))
    if values.size == 0:
        raise SpecError("budgets: expected at least one budget")
    found = []
    for b in values:
        result = prepared.plan(budget=float(b), references=False)
        t = result.totals
        found.append(CurvePoint(budget=float(b), spend=t.spend, expected_conversions=t.expected_conversions,
                                lo=t.lo, hi=t.hi, marginal_cost=t.marginal_cost, feasible=result.status == "optimal"))
    saturation = max(p.spend for p in found)
    return BudgetCurve(points=tuple(found), saturation=saturation, interval=prepared.policy.interval)
