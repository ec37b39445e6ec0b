"""What every family of planning rules provides, and the pieces the families share.

A *family* (:class:`RuleFamily`) is one kind of rule of the planning LP: the budget, the holdout,
the channel maxima, the channel minima, the segment share cap, each kind of fairness floor, the
coverage floors. It adds its rows to the LP (:meth:`RuleFamily.add_rows`), computes their
right-hand sides for an allocation already made (:meth:`RuleFamily.rhs`), says in plain language
why its rows had to give way when the rules conflict (:meth:`RuleFamily.conflicts`), names them
among the rules in play (:meth:`RuleFamily.in_play`) and lists the rules a planner declared with
what loosening each by one unit does to its rows (:meth:`RuleFamily.declared`, from which
:mod:`uplift.allocation.prices` reads each rule's price). A new kind of rule is a new family.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:  # the problem imports the families; the families only read it
    from uplift.allocation.problem import Allocation, Problem
    from uplift.specs.planning import CostCatalogue, PlanningPolicy

__all__ = ["BaseFigures", "DeclaredRule", "Rows", "RuleFamily", "Situation", "eur", "others", "percent"]


def eur(value: float) -> str:
    """``EUR 1,234`` (rounded to the euro)."""
    return f"EUR {value:,.0f}"


def percent(share: float) -> str:
    """A share as a percentage, with as many decimals as it needs (``40%``, ``0.4%``, ``12.5%``)."""
    for digits in range(4):
        text = f"{100 * share:.{digits}f}"
        if abs(float(text) - 100 * share) < 1e-9:
            return f"{text}%"
    return f"{100 * share:.3g}%"


class Rows:
    """Collects sparse inequality rows (``A_ub x <= b``) with their kind, label and reference index."""

    def __init__(self, nv: int) -> None:
        self.nv = nv
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.kinds: list[str] = []
        self.labels: list[str] = []
        self.refs: list[int] = []

    def add(self, kind: str, label: str, ref: int, cols, vals) -> None:
        """One row: coefficients ``vals`` on columns ``cols``."""
        self.add_block(kind, [label], np.array([ref]), np.zeros(len(cols), dtype=int), cols, vals)

    def add_block(self, kind: str, labels: Sequence[str], refs: np.ndarray, rows, cols, vals) -> None:
        """``len(labels)`` rows at once: coefficient ``vals[i]`` in row ``rows[i]`` (0-based within the block)."""
        base = len(self.kinds)
        self.r.append(np.asarray(rows, dtype=int) + base)
        self.c.append(np.asarray(cols, dtype=int))
        self.v.append(np.asarray(vals, dtype=float))
        self.kinds.extend([kind] * len(labels))
        self.labels.extend(labels)
        self.refs.extend(int(r) for r in refs)

    def build(self) -> tuple[sp.csr_matrix, np.ndarray, tuple[str, ...], np.ndarray]:
        """The matrix, and per row its kind, label and reference index."""
        empty = np.zeros(0)
        matrix = sp.csr_matrix(
            (np.concatenate(self.v or [empty]), (np.concatenate(self.r or [empty]).astype(int),
                                                  np.concatenate(self.c or [empty]).astype(int))),
            shape=(len(self.kinds), self.nv),
        )
        return (matrix, np.array(self.kinds, dtype=object).astype(str), tuple(self.labels),
                np.array(self.refs, dtype=int))


@dataclass(frozen=True)
class BaseFigures:
    """What an allocation already made (the exploration, or nothing) spends, contacts and converts,
    in the aggregates the families' right-hand sides read, and the budget."""

    budget: float
    x: np.ndarray  # contacts per cell
    spend_grp: np.ndarray
    spend_total: float
    spend_seg: np.ndarray
    spend_ch: np.ndarray
    contacts_seg: np.ndarray
    conv: np.ndarray  # expected conversions per cell

    @staticmethod
    def of(problem: Problem, base: Allocation, budget: float) -> BaseFigures:
        spend_grp = problem.group_spend(base.y)
        return BaseFigures(
            budget=float(budget),
            x=base.x,
            spend_grp=spend_grp,
            spend_total=float(spend_grp.sum()),
            spend_seg=np.bincount(problem.grp_seg, weights=spend_grp, minlength=len(problem.segments)),
            spend_ch=np.bincount(problem.grp_channel, weights=spend_grp, minlength=len(problem.channels)),
            contacts_seg=np.bincount(problem.seg, weights=base.x, minlength=len(problem.segments)),
            conv=problem.effect * base.x,
        )


@dataclass(frozen=True)
class Situation:
    """The relaxed plan of a conflicted policy, as the families' conflict messages read it.

    Attributes
    ----------
    total : the relaxed plan's allocation (exploration included); slack : per row, how far it gave way.
    budget : the whole budget; spend, spend_grp, spend_ch : the relaxed plan's EUR in all, per group, per channel.
    reach_grp, reach_seg, reach_ch : most EUR the reach and holdout caps let be spent per group, segment, channel.
    conv : expected conversions per cell; forced : EUR the channel minimums force out.
    open_cells : cells the plan may fund (a non-negative effect, or explored).
    names : short names of the rules in play (violated or tight), by row.
    """

    total: Allocation
    slack: np.ndarray
    budget: float
    spend: float
    spend_grp: np.ndarray
    spend_ch: np.ndarray
    reach_grp: np.ndarray
    reach_seg: np.ndarray
    reach_ch: np.ndarray
    conv: np.ndarray
    forced: float
    names: dict[int, str]
    open_cells: np.ndarray


@dataclass(frozen=True)
class DeclaredRule:
    """One rule as a planner declared it, with the LP rows it became, for its price.

    Attributes
    ----------
    name : e.g. ``"fairness floor 'women'"``; kind : the family's kind.
    rows : the ``A_ub`` rows of the rule.
    per_unit : per row, how much loosening the rule by one :attr:`unit` moves the row (``d h_r /
        d param``, with the row written ``h_r <= 0``); the rule's dual value is ``row_duals @ per_unit``
        (expected conversions per unit: positive when loosening it buys more).
    unit : what one unit is, in words (``"EUR 1,000 more budget"``).
    size : the rule's own size in units (how far it could be loosened), to tell a binding rule from a
        slack one: it binds when loosening it by its size would be worth more than a millionth of the plan.
    stated : the rule as declared, in words (``"40% of spend"``).
    droppable : whether the plan is solved again without it to price it (the budget is not).
    """

    name: str
    kind: str
    rows: np.ndarray
    per_unit: np.ndarray
    unit: str
    size: float
    stated: str
    droppable: bool = True


class RuleFamily:
    """One kind of planning rule: its rows, right-hand sides, conflict messages and declared rules.

    Class attributes
    ----------------
    kind : the row kind its rows carry (:attr:`uplift.allocation.problem.Problem.row_kind`).
    elastic : whether its rows get a slack variable when the rules conflict (budget-independent rules).
    unit : what its rows count, ``"eur"``, ``"conversions"`` or ``"contacts"`` (how a violation is
        weighed and when a row counts as tight).
    effect_rows : whether its cells' coefficients are the effects times a weight
        (:meth:`~uplift.allocation.problem.Problem.with_effect` swaps them).
    reads_message_mix : whether its rows tell the messages of a (segment, channel) group apart
        (only then may the full LP be feasible where the one-message-per-group LP is not).
    shown_in_play : whether its tight rows are named among the rules in play.
    """

    kind: ClassVar[str]
    elastic: ClassVar[bool] = False
    unit: ClassVar[str] = "eur"
    effect_rows: ClassVar[bool] = False
    reads_message_mix: ClassVar[bool] = False
    shown_in_play: ClassVar[bool] = True

    def check(self, costs: CostCatalogue, policy: PlanningPolicy, *, policy_source: str) -> None:
        """Check the family's rules against the cost catalogue before the LP is built (raise
        :class:`~uplift.errors.SpecError` naming ``policy_source`` and the key)."""

    def prepare(self, problem: Problem, *, source: str, policy_source: str, require: bool) -> Any:
        """What the family needs beyond the problem's structure (checked against the table), kept
        in ``problem.rule_data[kind]``; None if nothing. ``require`` False: drop a rule that
        selects nothing instead of raising (reference plans on part of the table)."""
        return None

    def add_rows(self, problem: Problem, rows: Rows) -> None:
        """Add the family's rows (over ``[x, y, T, C]``, :mod:`uplift.allocation.problem`)."""
        raise NotImplementedError

    def rhs(self, problem: Problem, ref: np.ndarray, base: BaseFigures) -> np.ndarray:
        """Right-hand sides of the family's rows (``ref``: their reference indices) so that its
        rules hold for ``base`` plus what the LP adds."""
        raise NotImplementedError

    def conflicts(self, problem: Problem, situation: Situation, rows: np.ndarray) -> list[str]:
        """One message per violated rule among ``rows`` (the family's violated rows)."""
        return [f"{problem.row_label[r]} gives way by {situation.slack[r]:,.1f} ({self.unit}); it conflicts with "
                f"{others(situation.names, r)}" for r in rows]

    def in_play(self, problem: Problem, row: int, budget: float) -> str:
        """Short name of ``row`` among the rules in play."""
        return problem.row_label[row]

    def declared(self, problem: Problem, totals: BaseFigures) -> list[DeclaredRule]:
        """The rules of this family in ``problem``, with their rows and how a unit moves them at a
        plan whose figures are ``totals`` (exploration included)."""
        return []


def others(names: dict[int, str], row: int) -> str:
    """The rules in play other than ``row``'s, as an English list."""
    own = names.get(row)
    rest = list(dict.fromkeys(v for r, v in names.items() if v != own)) or ["the reach and holdout caps"]
    return ", ".join(rest[:-1]) + " and " + rest[-1] if len(rest) > 1 else rest[0]
