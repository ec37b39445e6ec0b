"""The price of every rule: whether it binds, its dual value and what holding it costs the plan.

Every rule a planner declared (:meth:`uplift.allocation.rules.RuleFamily.declared`: the budget, each
channel limit, the segment cap, each fairness and coverage floor) is priced at the plan found:

- its **dual value**, the expected conversions one more unit of the rule would buy (loosening it;
  negative when loosening a minimum or floor *raises* it and so costs): the LP's row duals times how
  a unit moves each of the rule's rows, e.g. a percentage point more of a floor's share moves its
  row by 1% of the plan's total spend, contacts or conversions;
- whether it **binds**: loosening it by its whole size would be worth more than a millionth of the
  plan's conversions at that rate;
- for a binding rule, its **cost**: the plan solved again without it (its rows' right-hand sides
  set to :data:`~uplift.allocation.problem.DROPPED`, the same exploration, the same confidence
  margins) buys this many more expected conversions. Both plans are scored on the same estimates,
  so the interval of the difference is paired (:func:`uplift.allocation.result.plan_gain`). The
  re-solves run on a solver cache of their own that starts from the plan's bases
  (:meth:`uplift.allocation.problem.SolverCache.for_pricing`): a few simplex iterations each.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from uplift.allocation.infeasibility import solve_elastic
from uplift.allocation.problem import Allocation, Problem
from uplift.allocation.result import plan_gain
from uplift.allocation.rules import FAMILIES, BaseFigures, DeclaredRule
from uplift.allocation.solve import LPSolution

__all__ = ["RULE_STATUSES", "RulePrice", "rule_prices"]

RULE_STATUSES: tuple[str, ...] = ("binds", "slack", "violated")

_BINDS = 1e-6
"""A rule binds when loosening it by its size is worth more than this share of the plan's conversions."""
_VIOLATED = 1e-6
"""A row gives way when its slack in the relaxed plan exceeds this (EUR, conversions or contacts; the relaxed
plan's other rows may use up to 1e-9, :func:`uplift.allocation.infeasibility.solve_elastic`)."""


@dataclass(frozen=True)
class RulePrice:
    """One declared rule at a plan: whether it binds and what it costs in expected conversions.

    Attributes
    ----------
    rule : e.g. ``"fairness floor 'women'"``; kind : its row kind (its family).
    stated : the rule as declared, e.g. ``"40% of spend"``.
    status : ``"binds"``, ``"slack"`` (holding it costs nothing at this plan) or ``"violated"`` (the
        rules conflict and this one gives way in the relaxed plan).
    dual : expected conversions one more :attr:`unit` of the rule buys (negative: costs).
    unit : the unit of :attr:`dual`, in words (``"percentage point more min_share"``).
    cost, lo, hi : expected conversions the plan without the rule buys beyond the plan, with the
        interval of that difference (paired, the policy's coverage :attr:`interval`); 0 for a slack
        rule, NaN for the budget (never dropped) and for a violated rule (the plans of conflicting
        rules are relaxed: their difference is not the rule's price).
    cost_share : :attr:`cost` as a share of the plan without the rule (NaN when not solved).
    """

    rule: str
    kind: str
    stated: str
    status: str
    dual: float
    unit: str
    cost: float
    lo: float
    hi: float
    cost_share: float
    interval: float

    def as_dict(self) -> dict[str, object]:
        """The figures as a plain mapping (for JSON and tables), with :attr:`text`."""
        return {**self.__dict__, "text": self.text}

    @property
    def text(self) -> str:
        """The price in one sentence."""
        return self.describe()

    def describe(self, counts: str = "expected conversions") -> str:
        """The price in one sentence, its figures counting ``counts`` (``"expected value"`` for a plan on value)."""
        rate = self.dual
        margin = (f"each {self.unit} would {'buy' if rate > 0 else 'cost'} {abs(rate):,.2f} {counts}"
                  if rate != 0 else f"each {self.unit} would change nothing")
        if self.status == "slack":
            return f"{self.rule} ({self.stated}) does not bind: it costs nothing at this plan"
        if self.status == "violated":
            return f"{self.rule} ({self.stated}) gives way: the rules conflict (see the conflicts)"
        if math.isnan(self.cost):
            return f"{self.rule} ({self.stated}) binds: {margin}"
        share = f"{self.cost_share:.0%}" if abs(self.cost_share) >= 0.01 else f"{self.cost_share:.1%}"
        figures = (f"{self.cost:,.1f} {counts} [{self.lo:,.1f}, {self.hi:,.1f}] ({share}, "
                   f"{self.interval:.0%} interval)")
        return f"holding {self.rule} at {self.stated} costs {figures}; {margin}"


def rule_prices(
    problem: Problem,
    solution: LPSolution,
    *,
    explored: Allocation,
    budget: float,
    resolve: bool = True,
) -> tuple[RulePrice, ...]:
    """The price of every declared rule of ``problem`` at ``solution`` (on top of ``explored``).

    Parameters
    ----------
    problem : the LP the solution solves, with the confidence margins it was solved with.
    solution : the exploitation LP's solution (its duals; for a relaxed plan, its slacks).
    explored : the exploration allocation (kept as it is when a rule is dropped).
    budget : the whole budget.
    resolve : solve the plan again without every binding rule to give its cost (False: duals only,
        costs NaN).
    """
    total = solution.allocation + explored
    totals = BaseFigures.of(problem, total, budget)
    value = float(problem.effect @ total.x)
    violated = solution.slack > _VIOLATED
    interval = problem.policy.interval
    out = []
    for family in FAMILIES:
        for rule in family.declared(problem, totals):
            dual = float(solution.row_duals[rule.rows] @ rule.per_unit)
            broken = bool(violated[rule.rows].any())
            binds = abs(dual) * rule.size > _BINDS * max(abs(value), 1.0)
            status = "violated" if broken else ("binds" if binds else "slack")
            if status == "slack":
                cost = lo = hi = share = 0.0
            elif status == "binds" and rule.droppable and resolve:
                cost, lo, hi, share = _cost(problem, rule, total, explored=explored, budget=budget, value=value)
            else:
                cost = lo = hi = share = float("nan")
            out.append(RulePrice(rule=rule.name, kind=rule.kind, stated=rule.stated, status=status, dual=dual,
                                 unit=rule.unit, cost=cost, lo=lo, hi=hi, cost_share=share, interval=interval))
    return tuple(out)


def _cost(
    problem: Problem, rule: DeclaredRule, total: Allocation, *, explored: Allocation, budget: float, value: float
) -> tuple[float, float, float, float]:
    """What the plan without ``rule`` buys beyond ``total``: the difference, its interval and its share."""
    dropped = np.zeros(len(problem.row_kind), dtype=bool)
    if problem.dropped is not None:
        dropped |= problem.dropped
    dropped[rule.rows] = True
    without = dataclasses.replace(problem, dropped=dropped, solvers=problem.solvers.for_pricing())
    solution, _ = solve_elastic(without, objective=problem.effect, budget=budget, base=explored,
                                fundable=problem.fundable(problem.effect), explain=False)
    alone = solution.allocation + explored
    gain = plan_gain(alone.x, total.x, problem.effect, problem.own_sd, spend=problem.spend(alone.y),
                     reference_spend=problem.spend(total.y), interval=problem.policy.interval, shared=problem.shared)
    other = value + gain.extra_conversions
    return gain.extra_conversions, gain.lo, gain.hi, gain.extra_conversions / other if other > 0 else float("nan")
