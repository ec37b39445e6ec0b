"""The budget (total spend at most the budget) and the holdout (contacts per segment at most
``(1 - holdout_share) x size``): the two rules every plan has and no conflict relaxes."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from uplift.allocation.rules.base import BaseFigures, DeclaredRule, Rows, RuleFamily, eur

if TYPE_CHECKING:
    from uplift.allocation.problem import Problem

__all__ = ["Budget", "Holdout"]


class Budget(RuleFamily):
    """``T <= budget``: one row. Its dual is the plan's marginal conversions per EUR."""

    kind: ClassVar[str] = "budget"

    def add_rows(self, problem: Problem, rows: Rows) -> None:
        rows.add(self.kind, "budget", -1, [problem.n + problem.m], [1.0])

    def rhs(self, problem: Problem, ref: np.ndarray, base: BaseFigures) -> np.ndarray:
        return np.full(len(ref), base.budget - base.spend_total)

    def in_play(self, problem: Problem, row: int, budget: float) -> str:
        return f"the budget ({eur(budget)})"

    def declared(self, problem: Problem, totals: BaseFigures) -> list[DeclaredRule]:
        rows = np.flatnonzero(problem.row_kind == self.kind)
        return [DeclaredRule(name="the budget", kind=self.kind, rows=rows, per_unit=np.full(len(rows), -1000.0),
                             unit="EUR 1,000 more budget", size=totals.budget / 1000.0, stated=eur(totals.budget),
                             droppable=False)]


class Holdout(RuleFamily):
    """Contacts in a segment over all arms at most ``(1 - holdout_share) x size``: one row per segment."""

    kind: ClassVar[str] = "segment_contacts"
    shown_in_play: ClassVar[bool] = False

    def add_rows(self, problem: Problem, rows: Rows) -> None:
        segments = problem.segments
        rows.add_block(self.kind, [f"segment {s!r}: contacts" for s in segments], np.arange(len(segments)),
                       problem.seg, np.arange(problem.n), np.ones(problem.n))

    def rhs(self, problem: Problem, ref: np.ndarray, base: BaseFigures) -> np.ndarray:
        return problem.contact_cap[ref] - base.contacts_seg[ref]
