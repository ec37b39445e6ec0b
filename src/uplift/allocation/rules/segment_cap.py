"""The segment share cap: no segment takes more than ``max_segment_share`` of the total spend."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from uplift.allocation.rules.base import BaseFigures, DeclaredRule, Rows, RuleFamily, Situation, eur, others, percent

if TYPE_CHECKING:
    from uplift.allocation.problem import Problem

__all__ = ["SegmentShare"]


class SegmentShare(RuleFamily):
    """``spend in segment s - cap x T <= 0`` for every segment (no rows when the cap is 100%)."""

    kind: ClassVar[str] = "segment_share"
    elastic: ClassVar[bool] = True

    def add_rows(self, problem: Problem, rows: Rows) -> None:
        cap, segments = problem.policy.max_segment_share, problem.segments
        if cap >= 1.0:
            return
        iy, it = problem.n + np.arange(problem.m), problem.n + problem.m
        ids = np.concatenate([problem.tier_seg, np.arange(len(segments))])
        cols = np.concatenate([iy, np.full(len(segments), it)])
        vals = np.concatenate([problem.tier_cost, np.full(len(segments), -cap)])
        rows.add_block(self.kind, [f"max_segment_share in segment {s!r}" for s in segments],
                       np.arange(len(segments)), ids, cols, vals)

    def rhs(self, problem: Problem, ref: np.ndarray, base: BaseFigures) -> np.ndarray:
        return problem.policy.max_segment_share * base.spend_total - base.spend_seg[ref]

    def in_play(self, problem: Problem, row: int, budget: float) -> str:
        return f"max_segment_share {problem.policy.max_segment_share:.0%}"

    def conflicts(self, problem: Problem, situation: Situation, rows: np.ndarray) -> list[str]:
        if not len(rows):
            return []
        cap = problem.policy.max_segment_share
        open_seg = situation.reach_seg > 0
        needed = int(np.ceil(1.0 / cap - 1e-9))
        if open_seg.sum() < needed:
            return [
                f"max_segment_share {cap:.0%} needs spend in at least {needed} segments but only "
                f"{int(open_seg.sum())} can be funded (people to reach and a non-negative effect), so no spend "
                f"is possible; it conflicts with {others(situation.names, rows[0])}"
            ]
        spend_seg = np.bincount(problem.grp_seg, weights=situation.spend_grp, minlength=len(problem.segments))
        worst = rows[np.argsort(-situation.slack[rows])]
        shown = ", ".join(
            f"{problem.segments[problem.row_ref[r]]!r} takes "
            f"{spend_seg[problem.row_ref[r]] / max(situation.spend, 1e-9):.0%}"
            f" ({eur(situation.slack[r])} over)"
            for r in worst[:3]
        )
        more = f" and {len(worst) - 3} more segment(s)" if len(worst) > 3 else ""
        return [f"max_segment_share {cap:.0%} is exceeded: {shown}{more}; it conflicts with "
                f"{others(situation.names, worst[0])}"]

    def declared(self, problem: Problem, totals: BaseFigures) -> list[DeclaredRule]:
        rows = np.flatnonzero(problem.row_kind == self.kind)
        if not len(rows):
            return []
        cap = problem.policy.max_segment_share
        # h_s = spend_s - cap x T: a percentage point more cap moves every row by -T / 100
        return [DeclaredRule(name="max_segment_share", kind=self.kind, rows=rows,
                             per_unit=np.full(len(rows), -0.01 * totals.spend_total),
                             unit="percentage point more max_segment_share", size=100.0 * cap, stated=percent(cap))]
