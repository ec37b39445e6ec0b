"""Fairness floors: a priority group's minimum share of the plan's spend, contacts or expected conversions.

Each floor counts every cell ``c`` with a weight ``w_c`` (:attr:`~uplift.allocation.problem.Problem.floor_weight`):
1 or 0 for a floor over segment columns (``where``), the group's share of the segment's people for a
floor over a priority group (``group``, :func:`~uplift.allocation.effects.floor_weights`). A floor of
share ``s`` is one row, a linear constraint like the others:

- spend: ``sum_j w_j cost_j y_j >= s T`` (``w_j`` the weight of tier ``j``'s segment),
- contacts: ``sum_c w_c x_c >= s sum_c x_c``,
- conversions: ``sum_c w_c effect_c x_c >= s C`` (plus a margin for a confidence,
  :mod:`uplift.allocation.floors`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from uplift.allocation.effects import counts_group, floor_weights, segment_kind
from uplift.allocation.rules.base import BaseFigures, DeclaredRule, Rows, RuleFamily, Situation, eur, others, percent

if TYPE_CHECKING:
    import pandas as pd

    from uplift.allocation.problem import Problem
    from uplift.specs.planning import FairnessFloor, PlanningPolicy

__all__ = ["ContactFloor", "ConversionFloor", "SpendFloor", "fairness_floors"]


def fairness_floors(
    frame: pd.DataFrame, policy: PlanningPolicy, *, source: str, policy_source: str, require: bool
) -> tuple[tuple[FairnessFloor, ...], np.ndarray]:
    """The policy's fairness floors that count someone in ``frame`` and their weights, ``(floors, n)``.

    With ``require`` False a floor that counts nobody is left out instead of raising. A floor that does
    not apply to the table's kind of segment (its ``segment_kinds``), or counts a priority group the table
    does not count (its data lack the group's attributes), is left out.
    """
    floors, weights = [], []
    kind = segment_kind(frame)
    for i, floor in enumerate(policy.fairness_floors):
        if not floor.applies_to(kind) or not counts_group(frame, floor.group):
            continue
        w = floor_weights(frame, floor, source=source, allow_empty=not require,
                          key=f"{policy_source} fairness_floors[{i}]")
        if (w > 0).any():
            floors.append(floor)
            weights.append(w)
    return tuple(floors), np.array(weights, dtype=float).reshape(len(weights), len(frame))


class _ShareFloor(RuleFamily):
    """The fairness floors of one ``floor_kind``; a row per floor, ``row_ref`` its index in ``problem.floors``."""

    floor_kind: ClassVar[str]
    counts: ClassVar[str]  # what the share is of, in words

    def _floors(self, problem: Problem) -> list[int]:
        return [k for k, f in enumerate(problem.floors) if f.kind == self.floor_kind]

    def _stated(self, floor: FairnessFloor) -> str:
        who = f" in group {floor.group!r}" if floor.group is not None else ""
        return f"{percent(floor.min_share)} of {self.counts}{who}"

    def declared(self, problem: Problem, totals: BaseFigures) -> list[DeclaredRule]:
        rows = np.flatnonzero(problem.row_kind == self.kind)
        scale = self._total(totals)
        return [
            DeclaredRule(name=problem.row_label[r], kind=self.kind, rows=np.array([r]),
                         per_unit=np.array([0.01 * scale]), unit="percentage point more min_share",
                         size=100.0 * problem.floors[problem.row_ref[r]].min_share,
                         stated=self._stated(problem.floors[problem.row_ref[r]]))
            for r in rows
        ]

    def _total(self, totals: BaseFigures) -> float:
        raise NotImplementedError


class SpendFloor(_ShareFloor):
    """``sum_j w_j cost_j y_j - s T >= 0`` per spend-share floor."""

    kind: ClassVar[str] = "spend_floor"
    floor_kind: ClassVar[str] = "spend_share"
    counts: ClassVar[str] = "spend"
    elastic: ClassVar[bool] = True

    def add_rows(self, problem: Problem, rows: Rows) -> None:
        iy, it = problem.n + np.arange(problem.m), problem.n + problem.m
        for k in self._floors(problem):
            floor = problem.floors[k]
            weight = problem.floor_group_weight[k][problem.tier_grp]
            sel = problem.floor_groups[k][problem.tier_grp]
            rows.add(self.kind, f"fairness floor {floor.name!r}", k, np.concatenate([iy[sel], [it]]),
                     np.concatenate([-problem.tier_cost[sel] * weight[sel], [floor.min_share]]))

    def rhs(self, problem: Problem, ref: np.ndarray, base: BaseFigures) -> np.ndarray:
        out = []
        for k in ref:
            sel = problem.floor_groups[k]
            counted = float((base.spend_grp[sel] * problem.floor_group_weight[k][sel]).sum())
            out.append(counted - problem.floors[k].min_share * base.spend_total)
        return np.array(out, dtype=float)

    def _total(self, totals: BaseFigures) -> float:
        return totals.spend_total

    def conflicts(self, problem: Problem, situation: Situation, rows: np.ndarray) -> list[str]:
        policy, forced, messages = problem.policy, situation.forced, []
        n_seg = len(problem.segments)
        spend_seg = np.bincount(problem.grp_seg, weights=situation.spend_grp, minlength=n_seg)
        for r in rows:
            k = problem.row_ref[r]
            floor = problem.floors[k]
            weight_seg = np.zeros(n_seg)
            weight_seg[problem.seg] = problem.floor_weight[k]  # one weight per segment
            got = float(spend_seg @ weight_seg)
            most = float(situation.reach_seg @ weight_seg)
            whole = np.isin(weight_seg, (0.0, 1.0)).all()
            n_in = int(((weight_seg > 0) & (situation.reach_seg > 0)).sum())
            if whole and n_in * policy.max_segment_share < floor.min_share * (1 - 1e-9):
                messages.append(
                    f"fairness floor {floor.name!r} needs {floor.min_share:.0%} of spend but its {n_in} fundable "
                    f"segment(s) may take at most {n_in * policy.max_segment_share:.0%} under max_segment_share "
                    f"{policy.max_segment_share:.0%} (short by {eur(situation.slack[r])}); it conflicts with "
                    f"{others(situation.names, r)}"
                )
            elif forced > 0 and most < floor.min_share * forced * (1 - 1e-9):
                messages.append(
                    f"fairness floor {floor.name!r} needs {floor.min_share:.0%} of spend but only "
                    f"{most / forced:.0%} can be spent there under the reach and holdout caps ({eur(most)} of "
                    f"the {eur(forced)} the channel minimums force; short by "
                    f"{eur(floor.min_share * forced - most)})"
                )
            else:
                messages.append(
                    f"fairness floor {floor.name!r} needs {floor.min_share:.0%} of spend but gets "
                    f"{got / max(situation.spend, 1e-9):.0%} (short by {eur(situation.slack[r])}); it conflicts with "
                    f"{others(situation.names, r)}"
                )
        return messages


class ContactFloor(_ShareFloor):
    """``sum_c (s - w_c) x_c <= 0`` per contact-share floor (reach)."""

    kind: ClassVar[str] = "contact_floor"
    floor_kind: ClassVar[str] = "contact_share"
    counts: ClassVar[str] = "contacts"
    elastic: ClassVar[bool] = True
    unit: ClassVar[str] = "contacts"

    def add_rows(self, problem: Problem, rows: Rows) -> None:
        for k in self._floors(problem):
            floor = problem.floors[k]
            coefficient = floor.min_share - problem.floor_weight[k]
            nz = np.flatnonzero(coefficient != 0)
            rows.add(self.kind, f"fairness floor {floor.name!r}", k, nz, coefficient[nz])

    def rhs(self, problem: Problem, ref: np.ndarray, base: BaseFigures) -> np.ndarray:
        return np.array([float(problem.floor_weight[k] @ base.x) - problem.floors[k].min_share * float(base.x.sum())
                         for k in ref], dtype=float)

    def _total(self, totals: BaseFigures) -> float:
        return float(totals.x.sum())

    def conflicts(self, problem: Problem, situation: Situation, rows: np.ndarray) -> list[str]:
        x = situation.total.x
        messages = []
        for r in rows:
            floor = problem.floors[problem.row_ref[r]]
            got = float(problem.floor_weight[problem.row_ref[r]] @ x)
            messages.append(
                f"fairness floor {floor.name!r} needs {floor.min_share:.0%} of contacts but gets "
                f"{got / max(float(x.sum()), 1e-9):.0%} (short by {situation.slack[r]:,.0f} contacts); it conflicts "
                f"with {others(situation.names, r)}"
            )
        return messages


class ConversionFloor(_ShareFloor):
    """``sum_c w_c effect_c x_c - s C >= margin`` per conversion-share floor."""

    kind: ClassVar[str] = "conversion_floor"
    floor_kind: ClassVar[str] = "conversion_share"
    counts: ClassVar[str] = "expected conversions"
    elastic: ClassVar[bool] = True
    unit: ClassVar[str] = "conversions"
    effect_rows: ClassVar[bool] = True
    reads_message_mix: ClassVar[bool] = True

    def add_rows(self, problem: Problem, rows: Rows) -> None:
        ix, ic = np.arange(problem.n), problem.n + problem.m + 1
        for k in self._floors(problem):
            floor, weight = problem.floors[k], problem.floor_weight[k]
            cells = weight > 0
            rows.add(self.kind, f"fairness floor {floor.name!r}", k, np.concatenate([ix[cells], [ic]]),
                     np.concatenate([-problem.effect[cells] * weight[cells], [floor.min_share]]))

    def rhs(self, problem: Problem, ref: np.ndarray, base: BaseFigures) -> np.ndarray:
        margin = problem.floor_margin if problem.floor_margin is not None else np.zeros(len(problem.floors))
        out = []
        for k in ref:
            cells = problem.floor_cells[k]
            counted = (base.conv[cells] * problem.floor_weight[k][cells]).sum()
            out.append(counted - problem.floors[k].min_share * base.conv.sum() - margin[k])
        return np.array(out, dtype=float)

    def _total(self, totals: BaseFigures) -> float:
        return float(totals.conv.sum())

    def conflicts(self, problem: Problem, situation: Situation, rows: np.ndarray) -> list[str]:
        conv, messages = situation.conv, []
        for r in rows:
            k = problem.row_ref[r]
            floor = problem.floors[k]
            got, all_conv = float(conv @ problem.floor_weight[k]), conv.sum()
            messages.append(
                f"fairness floor {floor.name!r} needs {floor.min_share:.0%} of expected conversions but gets "
                f"{got / max(all_conv, 1e-12):.0%} (short by {situation.slack[r]:,.1f} conversions); it conflicts "
                f"with {others(situation.names, r)}"
            )
        return messages
