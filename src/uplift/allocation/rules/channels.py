"""Channel limits: at most ``max_spend`` and at least ``min_spend`` EUR per channel (``serve/policy.yaml``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from uplift.allocation.rules.base import BaseFigures, DeclaredRule, Rows, RuleFamily, Situation, eur, others
from uplift.errors import SpecError

if TYPE_CHECKING:
    from uplift.allocation.problem import Problem
    from uplift.specs.planning import CostCatalogue, PlanningPolicy

__all__ = ["ChannelMax", "ChannelMin"]


class _ChannelLimit(RuleFamily):
    """A per-channel EUR limit of the policy field :attr:`field`; one row per channel it names."""

    field: ClassVar[str]

    def check(self, costs: CostCatalogue, policy: PlanningPolicy, *, policy_source: str) -> None:
        unknown = sorted(set(getattr(policy, self.field)) - set(costs.channels))
        if unknown:
            raise SpecError(
                f"{policy_source} {self.field}: channel(s) {', '.join(map(repr, unknown))} not in the cost catalogue; "
                f"valid: {', '.join(sorted(costs.channels))}"
            )

    def _limit(self, problem: Problem, k: int) -> float:
        return float(getattr(problem.policy, self.field)[problem.channels[k]])

    def in_play(self, problem: Problem, row: int, budget: float) -> str:
        k = problem.row_ref[row]
        return f"{self.field} {problem.channels[k]!r} ({eur(self._limit(problem, k))})"

    def declared(self, problem: Problem, totals: BaseFigures) -> list[DeclaredRule]:
        sign = -1.0 if self.kind == "channel_max" else 1.0  # h = spend - max, or min - spend
        return [
            DeclaredRule(name=f"{self.field} {problem.channels[problem.row_ref[r]]!r}", kind=self.kind,
                         rows=np.array([r]), per_unit=np.array([1000.0 * sign]),
                         unit=f"EUR 1,000 more {self.field}", size=self._limit(problem, problem.row_ref[r]) / 1000.0,
                         stated=eur(self._limit(problem, problem.row_ref[r])))
            for r in np.flatnonzero(problem.row_kind == self.kind)
        ]


class ChannelMax(_ChannelLimit):
    """Spend on a channel at most its ``max_spend`` (a channel without tiers in the table gets no row)."""

    kind: ClassVar[str] = "channel_max"
    field: ClassVar[str] = "max_spend"

    def add_rows(self, problem: Problem, rows: Rows) -> None:
        iy, tier_channel = problem.n + np.arange(problem.m), problem.tier_channel
        for k, ch in enumerate(problem.channels):
            if ch in problem.policy.max_spend and (tier_channel == k).any():
                on = tier_channel == k
                rows.add(self.kind, f"max_spend {ch!r}", k, iy[on], problem.tier_cost[on])

    def rhs(self, problem: Problem, ref: np.ndarray, base: BaseFigures) -> np.ndarray:
        return np.array([self._limit(problem, k) - base.spend_ch[k] for k in ref], dtype=float)


class ChannelMin(_ChannelLimit):
    """Spend on a channel at least its ``min_spend`` (elastic: a minimum can conflict with the budget,
    the reach caps or another rule)."""

    kind: ClassVar[str] = "channel_min"
    field: ClassVar[str] = "min_spend"
    elastic: ClassVar[bool] = True

    def add_rows(self, problem: Problem, rows: Rows) -> None:
        iy, tier_channel = problem.n + np.arange(problem.m), problem.tier_channel
        for k, ch in enumerate(problem.channels):
            if problem.policy.min_spend.get(ch, 0.0) > 0:
                on = tier_channel == k
                rows.add(self.kind, f"min_spend {ch!r}", k, iy[on], -problem.tier_cost[on])

    def rhs(self, problem: Problem, ref: np.ndarray, base: BaseFigures) -> np.ndarray:
        return np.array([-(self._limit(problem, k) - base.spend_ch[k]) for k in ref], dtype=float)

    def conflicts(self, problem: Problem, situation: Situation, rows: np.ndarray) -> list[str]:
        policy, budget, forced = problem.policy, situation.budget, situation.forced
        messages = []
        over_budget = len(rows) > 0 and forced > budget * (1 + 1e-9)
        if over_budget:
            parts = ", ".join(f"{ch} {eur(v)}" for ch, v in sorted(policy.min_spend.items()) if v > 0)
            messages.append(
                f"channel minimums need {eur(forced)} ({parts}) but the budget is {eur(budget)} "
                f"(short by {eur(forced - budget)})"
            )
        for r in rows:
            k = problem.row_ref[r]
            ch = problem.channels[k]
            need = policy.min_spend[ch]
            if not (problem.grp_channel == k).any():
                messages.append(f"min_spend {ch!r} needs {eur(need)} but the effects table has no arm on {ch!r}")
            elif situation.reach_ch[k] < need * (1 - 1e-9):
                messages.append(
                    f"min_spend {ch!r} needs {eur(need)} but only {eur(situation.reach_ch[k])} can be spent on {ch!r} "
                    f"under the reach and holdout caps (segments x arms with a non-negative effect; short by "
                    f"{eur(need - situation.reach_ch[k])})"
                )
            elif not over_budget:
                messages.append(
                    f"min_spend {ch!r} needs {eur(need)} but gets {eur(situation.spend_ch[k])} (short by "
                    f"{eur(situation.slack[r])}); it conflicts with {others(situation.names, r)}"
                )
        return messages
