"""What a plan returns: the per-cell table, the totals, and re-scoring a plan under other effects.

Contacts come out of the LP fractional; the cells table rounds them *down* to whole people and
scales each cell's spend with them (the cell keeps its average price per contact), so the rounded
plan never spends more, nor contacts more people, than the LP did. A group's spend (segment x
channel, whose messages share the reach tiers) is attributed to its messages in proportion to
their contacts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from uplift.allocation.effects import (
    applicable_floors,
    check_effects,
    counts_group,
    floor_weights,
    own_sd,
    segment_kind,
    shared_factors,
    total_variance,
)
from uplift.allocation.explore import interval_z
from uplift.allocation.problem import Allocation, Problem
from uplift.allocation.rules.coverage import coverage_cells, group_has_nobody
from uplift.errors import DataError
from uplift.specs.planning import CostCatalogue, PlanningPolicy

if TYPE_CHECKING:  # prices import this module
    from uplift.allocation.prices import RulePrice

__all__ = [
    "CELL_COLUMNS",
    "FloorCheck",
    "PlanGain",
    "PlanTotals",
    "PlanResult",
    "calibrated_totals",
    "cell_figures",
    "cells_table",
    "cost_range",
    "floor_checks",
    "plan_cells",
    "plan_gain",
    "plan_totals",
    "evaluate_plan",
]

CELL_COLUMNS: tuple[str, ...] = (
    "segment",
    "arm",
    "message",
    "channel",
    "contacts",
    "holdout_people",
    "spend",
    "expected_conversions",
    "lo",
    "hi",
    "cost_per_conversion",
    "marginal_cost",
    "exploration",
)
"""Columns of :attr:`PlanResult.cells`; ``exploration`` is the EUR of the cell's spend that is exploration."""


@dataclass(frozen=True)
class PlanTotals:
    """Figures of a whole plan.

    Attributes
    ----------
    budget, spend : EUR. contacts, holdout_people : people.
    expected_conversions, lo, hi : incremental conversions and their interval (the policy's
        coverage, normal, cells independent).
    cost_per_conversion : spend / expected conversions (NaN without conversions).
    cost_per_conversion_lo, cost_per_conversion_hi : the same at the ends of the interval,
        ``spend / hi`` and ``spend / lo`` (inf when ``lo <= 0``: the plan may buy no conversion;
        NaN without spend or when ``hi <= 0``).
    marginal_cost : EUR of the next incremental conversion, ``1 / dual`` of the budget row
        (inf when more budget buys nothing; NaN for plans not made by the LP).
    exploration_spend : EUR spent by Thompson exploration.
    estimated_conversions : the sum of the cells' estimated conversions. Equal to
        ``expected_conversions`` unless the effects table carries a held-out calibration of what its
        estimates buy (:mod:`uplift.segments.promise`), which then sets ``expected_conversions``,
        ``lo`` and ``hi`` (:func:`calibrated_totals`).
    """

    budget: float
    spend: float
    contacts: int
    holdout_people: int
    expected_conversions: float
    lo: float
    hi: float
    cost_per_conversion: float
    marginal_cost: float
    exploration_spend: float
    cost_per_conversion_lo: float = float("nan")
    cost_per_conversion_hi: float = float("nan")
    estimated_conversions: float = float("nan")

    def as_dict(self) -> dict[str, float]:
        """The figures as a plain mapping (for JSON and tables)."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class PlanGain:
    """What a plan is expected to add over a reference plan at the same budget, with its uncertainty.

    Both plans are scored on the same estimates, so the comparison is paired: a cell both fund
    carries the same error in both, and an error every cell shares (the calibration's, an arm's
    level, a persona's effect) moves both totals together. The interval of the difference is
    therefore that of the *difference in contacts* per cell, much narrower than the two plans'
    own intervals side by side, which would double-count the errors they share.

    Attributes
    ----------
    extra_conversions, lo, hi : expected incremental conversions of the plan minus the
        reference's, and their interval (the policy's coverage, normal).
    probability_better : P(the plan buys more incremental conversions than the reference) under
        the effects' uncertainty (normal; 0.5 when the two plans are the same).
    extra_spend : EUR the plan spends beyond the reference (negative: less).
    """

    extra_conversions: float
    lo: float
    hi: float
    probability_better: float
    extra_spend: float

    def as_dict(self) -> dict[str, float]:
        """The figures as a plain mapping (for JSON and tables)."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class FloorCheck:
    """How a plan stands against one fairness floor of its policy.

    Attributes
    ----------
    name, kind, min_share : the floor's (``kind``: ``spend_share``, ``contact_share`` or ``conversion_share``).
    status : ``"held"``; ``"short"`` (a relaxed plan, see its conflicts); or ``"not_applicable"``:
        the floor does not bind plans over this kind of segment (its ``segment_kinds``), or counts a
        priority group the segment table does not count (``reason`` says which).
    share : the plan's share of spend, contacts or expected conversions the floor counts (NaN when
        the floor does not apply or the plan spends or converts nothing).
    """

    name: str
    kind: str
    min_share: float
    status: str
    share: float = float("nan")
    reason: str = ""

    def as_dict(self) -> dict[str, object]:
        """The check as a plain mapping (for JSON and tables)."""
        return dict(self.__dict__)

    def note(self, plan_kind: str | None) -> str:
        """The check in one line for the plan's notes (``plan_kind``: the kind of segment the plan is over)."""
        head = f"fairness floor {self.name!r}"
        if self.status == "not_applicable":
            why = self.reason or f"a plan over {plan_kind} segments (its segment_kinds)"
            return f"{head} does not apply to {why}; this plan is not bound by it"
        of = {"spend_share": "spend", "contact_share": "contacts"}.get(self.kind, "expected conversions")
        got = f"{self.share:.1%} of {of}" if math.isfinite(self.share) else f"the plan has no {of}"
        held = "held" if self.status == "held" else "fell short"
        return f"{head} {held}: {got} (asked: at least {self.min_share:.0%})"


def floor_checks(problem: Problem, cells: pd.DataFrame, kind: str | None) -> tuple[FloorCheck, ...]:
    """The plan ``cells`` (rows aligned with ``problem``'s) against every fairness floor of the problem's
    policy, in its order: a floor that does not apply to ``kind``, the table's kind of segment
    (:func:`~uplift.allocation.effects.segment_kind`), is ``not_applicable``; the others are measured
    on the cells the problem's floor counts, each with the floor's weight (``problem.floor_weight``)."""
    counted = {
        "spend_share": cells["spend"].to_numpy(dtype=float),
        "contact_share": cells["contacts"].to_numpy(dtype=float),
        "conversion_share": cells["expected_conversions"].to_numpy(dtype=float),
    }
    weights = {floor.name: weight for floor, weight in zip(problem.floors, problem.floor_weight, strict=True)}
    checks = []
    for floor in problem.policy.fairness_floors:
        if not floor.applies_to(kind):
            checks.append(FloorCheck(floor.name, floor.kind, float(floor.min_share), "not_applicable"))
            continue
        if not counts_group(problem.frame, floor.group):
            checks.append(FloorCheck(floor.name, floor.kind, float(floor.min_share), "not_applicable",
                                     reason=f"this plan: its segments do not count priority group {floor.group!r} "
                                            "(the data lack attributes its rule reads)"))
            continue
        if floor.name not in weights:  # counts nobody in part of a table (a reference plan's problem)
            continue
        value = counted[floor.kind]
        total, inside = float(value.sum()), float(value @ weights[floor.name])
        share = inside / total if total > 0 else float("nan")
        held = inside >= floor.min_share * total - 1e-9 * max(abs(total), 1.0)
        checks.append(FloorCheck(floor.name, floor.kind, float(floor.min_share), "held" if held else "short", share))
    return tuple(checks)


@dataclass(frozen=True)
class PlanResult:
    """The budget split and how it was reached.

    Attributes
    ----------
    cells : one row per segment x arm of the effects table, columns :data:`CELL_COLUMNS`.
    totals : the plan's figures.
    references : the same figures for the reference plans ``"even"`` and ``"single_best_message"``.
    gains : per reference plan, what this plan adds over it, paired (:class:`PlanGain`).
    status : ``"optimal"``, or ``"infeasible"`` when the policy's rules conflict (then ``cells``
        is the best relaxed plan).
    conflicts : one plain-language message per violated rule (empty when optimal).
    notes : other things a planner should know (budget left unspent and what binds, each fairness
        floor held, fell short or did not apply).
    floors : per fairness floor of the policy, how the plan stands against it (:class:`FloorCheck`).
    unit_lines : when the plan was made per print unit (``places``), the flyer lines it buys, one row per
        (channel, message, print unit) with contacts, copies and spend
        (:data:`~uplift.allocation.unitrows.UNIT_LINE_COLUMNS`); None otherwise.
    split_cells : when the plan was made per print unit, its cells per row of the split table (aligned with the
        problem's rows, e.g. for :func:`~uplift.allocation.breakdown.plan_breakdown`) before they are summed back
        to ``cells``; None otherwise.
    rules : the price of every declared rule (:class:`~uplift.allocation.prices.RulePrice`): whether it
        binds, its dual value and, for a binding rule, what holding it costs in expected conversions.
    """

    cells: pd.DataFrame
    totals: PlanTotals
    references: Mapping[str, PlanTotals]
    status: str
    conflicts: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    gains: Mapping[str, PlanGain] = field(default_factory=dict)
    floors: tuple[FloorCheck, ...] = ()
    rules: tuple[RulePrice, ...] = ()
    unit_lines: pd.DataFrame | None = None
    split_cells: pd.DataFrame | None = field(default=None, repr=False)


def plan_cells(problem: Problem, *, total: Allocation, explored: Allocation | None = None) -> pd.DataFrame:
    """The cells table of allocation ``total`` (of which ``explored`` is exploration).

    Parameters
    ----------
    problem : the LP the allocation solves.
    total : contacts per cell and group tier (exploration included).
    explored : the exploration part (None: no exploration).
    """
    return cells_table(problem, cell_figures(problem, total=total, explored=explored))


def cells_table(problem: Problem, figures: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """The cells table of :func:`cell_figures`' ``figures``: the cells' labels, then the figures."""
    frame = problem.frame
    labels = {c: frame[c] for c in ("segment", "arm", "message", "channel")}  # Series as stored: no text re-inference
    return pd.DataFrame({**labels, **figures}, index=frame.index)


def cell_figures(problem: Problem, *, total: Allocation, explored: Allocation | None = None) -> dict[str, np.ndarray]:
    """The numeric columns of :func:`plan_cells` (no labels, no frame): enough for :func:`plan_totals`."""
    policy = problem.policy
    explored = explored if explored is not None else Allocation.empty(problem)
    x = np.maximum(total.x, 0.0)
    lp_spend = _attribute(problem, total)
    contacts = _keep_floors(problem, x, np.floor(x + 1e-6), lp_spend)
    scale = np.divide(contacts, x, out=np.zeros_like(x), where=x > 0)
    spend = lp_spend * scale
    exploration = np.minimum(_attribute(problem, explored) * scale, spend)
    conv = problem.effect * contacts
    half = interval_z(policy.interval) * problem.effect_sd * contacts
    ratio = policy.holdout_share / (1.0 - policy.holdout_share)
    with np.errstate(over="ignore"):  # a tiny positive effect has a huge (inf) price per conversion
        cost_per_conversion = np.divide(spend, conv, out=np.full_like(spend, np.nan), where=conv > 0)
        marginal_cost = _next_conversion_cost(problem, total)
    return {
        "contacts": contacts.astype(np.int64),
        "holdout_people": np.floor(ratio * contacts + 1e-9).astype(np.int64),
        "spend": spend,
        "expected_conversions": conv,
        "lo": conv - half,
        "hi": conv + half,
        "cost_per_conversion": cost_per_conversion,
        "marginal_cost": marginal_cost,
        "exploration": exploration,
    }


def _keep_floors(problem: Problem, x: np.ndarray, contacts: np.ndarray, lp_spend: np.ndarray) -> np.ndarray:
    """Rounded contacts that keep every fairness floor the LP met.

    Rounding each cell down to whole people removes less than one contact per cell, which can
    leave a floor a hair short (a cell outside the floor loses relatively less). Where a floor
    that held before rounding falls short after it, whole contacts are taken from funded cells
    that count less than the floor's share towards it (cells in no floor first, least conversions
    per EUR first; cells whose contacts another floor needs only when no other will do) until it holds again: spend and
    contacts only go down, so the budget, caps and
    holdout still hold. No cell gives up contacts a coverage floor's area needs (:class:`_CoverageRoom`);
    the rounding itself may leave an area short by less than one contact per funded cell.
    """
    if not problem.floors:
        return contacts
    price = np.divide(lp_spend, x, out=np.zeros_like(x), where=x > 0)
    contacts = contacts.copy()
    room = _CoverageRoom(problem, x, contacts)
    order = None  # sorted only once a floor falls short, which is rare

    def value(kind: str, c: np.ndarray) -> np.ndarray:
        if kind == "spend_share":
            return price * c
        return c if kind == "contact_share" else problem.effect * c

    def per_contact(kind: str, c: int) -> float:
        if kind == "spend_share":
            return float(price[c])
        return 1.0 if kind == "contact_share" else float(problem.effect[c])

    slack = _FloorSlack(problem, price, contacts)
    for _ in range(2 * len(problem.floors)):
        changed = False
        per_floor = zip(problem.floors, problem.floor_cells, problem.floor_weight, strict=True)
        for k, (floor, mask, weight) in enumerate(per_floor):
            share = float(floor.min_share)
            before = value(floor.kind, x)
            if before.sum() <= 0 or (before * weight)[mask].sum() < share * before.sum() * (1 - 1e-9):
                continue  # the LP did not meet it either (a relaxed plan): nothing to keep
            after = value(floor.kind, contacts)
            gap = share * after.sum() - (after * weight)[mask].sum()  # > 0: short by this much
            if gap <= 1e-12 * max(after.sum(), 1.0):
                continue
            need = gap / share  # the total must come down by this much from cells outside the floor
            if order is None:
                order = _trim_order(problem, price)
            # first from cells whose contacts no other floor needs (else two floors trim each other in turn)
            for spare_others in (True, False):
                for c in order:
                    if need <= 0:
                        break
                    if weight[c] >= share or contacts[c] <= 0:
                        continue  # taking from it would not bring the floor closer
                    unit = per_contact(floor.kind, c)
                    if weight[c] > 0:  # a cell that counts in part brings it closer by its shortfall only
                        unit = unit * (share - weight[c]) / share
                    if unit <= 0:
                        continue
                    take = min(contacts[c], np.ceil(need / unit - 1e-9), room.allowed(c),
                               slack.room(c, k) if spare_others else np.inf)
                    if take <= 0:
                        continue
                    contacts[c] -= take
                    room.take(c, take)
                    slack.take(c, take)
                    need -= take * unit
                    changed = True
        if not changed:
            break
    return contacts


class _FloorSlack:
    """Each fairness floor's slack at the rounded contacts (its counted spend, contacts or conversions less its
    share of all of them), kept up to date as contacts are taken."""

    def __init__(self, problem: Problem, price: np.ndarray, contacts: np.ndarray) -> None:
        kinds = [f.kind for f in problem.floors]
        self.unit = np.array([price if k == "spend_share" else (np.ones_like(price) if k == "contact_share"
                                                                  else problem.effect) for k in kinds])
        self.share = np.array([f.min_share for f in problem.floors])
        self.lift = problem.floor_weight - self.share[:, None]  # per floor and cell: what a unit adds to its slack
        self.slack = (self.unit * self.lift) @ contacts

    def room(self, c: int, own: int) -> float:
        """Whole contacts cell ``c`` may give up without taking a floor other than ``own`` that holds below it."""
        loss = self.unit[:, c] * self.lift[:, c]
        held = (loss > 0) & (self.slack >= 0)
        held[own] = False
        return float(np.min(np.floor(self.slack[held] / loss[held] + 1e-9), initial=np.inf))

    def take(self, c: int, n: float) -> None:
        """Cell ``c`` gave up ``n`` contacts."""
        self.slack -= n * self.unit[:, c] * self.lift[:, c]


class _CoverageRoom:
    """How many whole contacts each cell may give up without taking an area of a coverage floor the LP met
    below its minimum (an area the rounding left short may give up nothing more)."""

    def __init__(self, problem: Problem, x: np.ndarray, contacts: np.ndarray) -> None:
        targets = problem.rule_data.get("coverage")
        floors = problem.policy.coverage_floors
        self.of_cell: dict[int, list[tuple[int, float]]] = {}
        self.slack: list[float] = []
        per_target = zip(targets.floor, targets.cells, targets.weight, strict=True) if targets else ()
        for t, (i, cells, weight) in enumerate(per_target):
            need = floors[i].min_contacts
            met = float(x[cells] @ weight) >= need * (1 - 1e-9)
            self.slack.append(float(contacts[cells] @ weight) - need if met else np.inf)
            for c, w in zip(cells, weight, strict=True):
                self.of_cell.setdefault(int(c), []).append((t, float(w)))

    def allowed(self, c: int) -> float:
        """Whole contacts cell ``c`` may give up (inf outside every covered area)."""
        return min((max(np.floor(self.slack[t] / w + 1e-9), 0.0) for t, w in self.of_cell.get(int(c), ())),
                   default=np.inf)

    def take(self, c: int, n: float) -> None:
        """Cell ``c`` gave up ``n`` contacts."""
        for t, w in self.of_cell.get(int(c), ()):
            self.slack[t] -= n * w


def _trim_order(problem: Problem, price: np.ndarray) -> np.ndarray:
    """The cells in the order :func:`_keep_floors` takes contacts from them: cells outside every
    floor first, then the fewest conversions per EUR (at ``price`` per contact) first."""
    in_any = problem.floor_cells.any(axis=0)
    rate = np.divide(problem.effect, price, out=np.zeros_like(price), where=price > 0)
    return np.lexsort((rate, in_any))


def _attribute(problem: Problem, alloc: Allocation) -> np.ndarray:
    """Spend per cell: its group's spend shared in proportion to contacts."""
    spend_grp = problem.group_spend(alloc.y)
    contacts_grp = np.bincount(problem.grp, weights=alloc.x, minlength=len(spend_grp))
    per_contact = np.divide(spend_grp, contacts_grp, out=np.zeros_like(spend_grp), where=contacts_grp > 1e-9)
    return per_contact[problem.grp] * alloc.x


def _next_conversion_cost(problem: Problem, alloc: Allocation) -> np.ndarray:
    """EUR of one more incremental conversion in each cell: next open tier's price / effect."""
    left = problem.tier_cap - alloc.y
    tol = 1e-6 * np.maximum(problem.tier_cap, 1.0)
    open_tier = left > tol
    price = np.where(open_tier, problem.tier_cost, np.inf)
    next_price = np.full(len(problem.grp_seg), np.inf)
    np.minimum.at(next_price, problem.tier_grp, price)
    contacts_seg = np.bincount(problem.seg, weights=alloc.x, minlength=len(problem.segments))
    seg_full = contacts_seg >= problem.contact_cap - 1e-6 * np.maximum(problem.contact_cap, 1.0)
    policy = problem.policy
    ch_full = np.zeros(len(problem.channels), dtype=bool)
    spend_ch = np.bincount(problem.grp_channel, weights=problem.group_spend(alloc.y), minlength=len(problem.channels))
    for k, ch in enumerate(problem.channels):
        if ch in policy.max_spend:
            ch_full[k] = spend_ch[k] >= policy.max_spend[ch] * (1 - 1e-9) - 1e-6
    price_cell = next_price[problem.grp]
    blocked = seg_full[problem.seg] | ch_full[problem.grp_channel[problem.grp]] | (problem.effect <= 0)
    return np.where(blocked, np.inf, np.divide(price_cell, np.maximum(problem.effect, 1e-300)))


def plan_totals(
    cells: pd.DataFrame | Mapping[str, np.ndarray],
    own: np.ndarray,
    *,
    budget: float,
    interval: float,
    marginal_cost: float = float("nan"),
    shared: np.ndarray | None = None,
) -> PlanTotals:
    """Totals of a cells table or :func:`cell_figures` (``own`` and ``shared`` aligned with its rows).

    The interval adds each cell's own error (``own``: its sd, independent across cells,
    :attr:`Problem.own_sd`) and the errors cells share: ``shared`` (n x k, :attr:`Problem.shared`) holds each cell's
    per-contact loadings on k
    independent shared factors, whose variance in the total is ``||contacts @ shared||^2``.
    """
    contacts = np.asarray(cells["contacts"], dtype=float)
    spend = float(np.sum(cells["spend"]))
    conv = float(np.sum(cells["expected_conversions"]))
    half = _half_width(contacts, own, shared, interval)
    lo, hi = conv - half, conv + half
    cheap, dear = cost_range(spend, lo, hi)
    return PlanTotals(
        budget=float(budget),
        spend=spend,
        contacts=int(contacts.sum()),
        holdout_people=int(np.sum(cells["holdout_people"])),
        expected_conversions=conv,
        lo=conv - half,
        hi=conv + half,
        cost_per_conversion=spend / conv if conv > 0 else float("nan"),
        marginal_cost=float(marginal_cost),
        exploration_spend=float(np.sum(cells["exploration"])) if "exploration" in cells else 0.0,
        cost_per_conversion_lo=cheap,
        cost_per_conversion_hi=dear,
        estimated_conversions=conv,
    )


def calibrated_totals(totals: PlanTotals, calibration, interval: float) -> PlanTotals:
    """``totals`` with its expected conversions and interval calibrated on held-out rows
    (:func:`uplift.segments.promise.promise_of`: the estimated conversions times the held-out ratio, the
    half-width scaled by it with the ratio's own uncertainty added); the costs per conversion follow."""
    from uplift.segments.promise import promise_of

    half = (totals.hi - totals.lo) / 2
    conv, lo, hi = promise_of(calibration, planned=totals.estimated_conversions, half_width=half, interval=interval)
    cheap, dear = cost_range(totals.spend, lo, hi)
    return dataclasses.replace(totals, expected_conversions=conv, lo=lo, hi=hi,
                               cost_per_conversion=totals.spend / conv if conv > 0 else float("nan"),
                               cost_per_conversion_lo=cheap, cost_per_conversion_hi=dear)


def plan_gain(
    contacts: np.ndarray,
    reference_contacts: np.ndarray,
    effect: np.ndarray,
    own: np.ndarray,
    *,
    spend: float,
    reference_spend: float,
    interval: float,
    shared: np.ndarray | None = None,
) -> PlanGain:
    """What a plan adds over a reference plan (both as contacts on the same cells), paired.

    The difference ``sum_i (x_i - r_i) effect_i`` has the variance of a plan whose contacts are
    ``x - r``: each cell's own error (``own``, independent across cells) plus the shared factors
    (``shared``, per-contact loadings, may be None), as in :func:`plan_totals`.
    """
    diff = np.asarray(contacts, dtype=float) - np.asarray(reference_contacts, dtype=float)
    gain = float(diff @ np.asarray(effect, dtype=float))
    sd = math.sqrt(total_variance(diff, np.asarray(own, dtype=float), shared))
    half = interval_z(interval) * sd
    if sd > 0:
        better = 0.5 * math.erfc(-gain / (sd * math.sqrt(2.0)))  # the normal cdf at gain / sd
    else:
        better = 1.0 if gain > 0 else (0.0 if gain < 0 else 0.5)
    return PlanGain(
        extra_conversions=gain, lo=gain - half, hi=gain + half, probability_better=better,
        extra_spend=float(spend) - float(reference_spend),
    )


def cost_range(spend: float, lo: float, hi: float) -> tuple[float, float]:
    """EUR per incremental conversion at the ends of a conversions interval ``[lo, hi]``:
    ``(spend / hi, spend / lo)``; inf for an end at or below 0 conversions (no finite cost), both
    NaN without spend or when even ``hi`` buys no conversion."""
    if not spend > 0 or not hi > 0:
        return float("nan"), float("nan")
    return spend / hi, (spend / lo if lo > 0 else float("inf"))


def _half_width(contacts: np.ndarray, own: np.ndarray, shared: np.ndarray | None, interval: float) -> float:
    """Half the ``interval`` of a total of ``contacts x effect``: the cells' own errors (independent)
    plus the errors they share (``shared``, per-contact loadings on independent factors, may be None)."""
    return interval_z(interval) * math.sqrt(total_variance(contacts, own, shared))


def evaluate_plan(
    cells: pd.DataFrame,
    effects: pd.DataFrame,
    *,
    costs: CostCatalogue | None = None,
    policy: PlanningPolicy | None = None,
    source: str = "effects",
) -> dict[str, object]:
    """Re-score a plan's contacts under another effects table (e.g. the simulator's true effects).

    Parameters
    ----------
    cells : a plan's cells (needs ``segment``, ``arm``, ``contacts``, ``spend``).
    effects : segment-effects table covering every cell with contacts.
    costs : if given, ``effects`` is fully checked against the contract first.
    policy : if given, the share each fairness floor achieves is reported, and its interval is used.

    Returns
    -------
    dict
        ``spend``, ``contacts``, ``expected_conversions``, ``lo``, ``hi`` (interval from the
        table's ``effect_sd`` and shared-error loadings, as a plan's own) and ``floors`` (floor name -> achieved
        share of spend, contacts or conversions under these effects, each cell counted with the floor's weight;
        for a coverage floor the worst area's contacts over its minimum; empty without ``policy``; only the
        fairness floors that apply to the table's kind of segment) and ``rounding`` (coverage floor name ->
        how far below 1 rounding contacts down to whole people may leave its worst area: its funded cells'
        weights over the minimum).

    Raises
    ------
    DataError
        A funded cell has no row in ``effects``, or a required column is missing.
    """
    merged = _cells_with_effects(cells, effects, costs=costs, source=source)
    contacts = merged["contacts"].to_numpy(dtype=float)
    spend = merged["spend"].to_numpy(dtype=float)
    conv = merged["effect"].to_numpy(dtype=float) * contacts
    interval = policy.interval if policy is not None else 0.8
    shared = shared_factors(merged)
    half = _half_width(contacts, own_sd(merged["effect_sd"].to_numpy(dtype=float), shared), shared, interval)
    floors: dict[str, float] = {}
    allowance: dict[str, float] = {}
    if policy is not None:
        floors.update(_fairness_shares(merged, policy, {"spend_share": spend, "contact_share": contacts,
                                                        "conversion_share": conv}, source=source))
        coverage, allowance = _coverage_shares(merged, policy, contacts, source=source)
        floors.update(coverage)
    total = float(conv.sum())
    return {
        "spend": float(spend.sum()),
        "contacts": int(contacts.sum()),
        "expected_conversions": total,
        "lo": total - half,
        "hi": total + half,
        "floors": floors,
        "rounding": allowance,
    }


def _cells_with_effects(cells: pd.DataFrame, effects: pd.DataFrame, *, costs: CostCatalogue | None,
                        source: str) -> pd.DataFrame:
    """The plan's cells with their rows of ``effects`` (checked against the contract when ``costs`` is given); a
    cell without contacts may lack one and is left out, a funded one may not."""
    for name, frame, columns in (("cells", cells, ("segment", "arm", "contacts", "spend")),
                                 (source, effects, ("segment", "arm", "effect", "effect_sd"))):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(f"{name}: missing column(s) {', '.join(map(repr, missing))}")
    if costs is not None:
        effects = check_effects(effects, costs, source=source)
    keys = ["segment", "arm"]
    left = cells[keys + ["contacts", "spend"]].astype({"segment": str, "arm": str})
    right = effects.drop(columns=[c for c in ("contacts", "spend") if c in effects.columns])
    right = right.astype({"segment": str, "arm": str})
    merged = left.merge(right, on=keys, how="left", validate="one_to_one", indicator=True)
    orphan = (merged["_merge"] == "left_only") & (merged["contacts"] > 0)
    if orphan.any():
        examples = ", ".join(f"({s!r}, {a!r})" for s, a in merged.loc[orphan, keys].head(3).itertuples(index=False))
        raise DataError(f"{source}: no effect for {int(orphan.sum())} funded cell(s) of the plan, e.g. {examples}")
    return merged[merged["_merge"] == "both"].reset_index(drop=True)


def _fairness_shares(merged: pd.DataFrame, policy: PlanningPolicy, counted_by_kind: Mapping[str, np.ndarray], *,
                     source: str) -> dict[str, float]:
    """Floor name -> the share of what each fairness floor counts (spend, contacts or conversions, by its kind)
    that falls to its people, for the floors that apply to the table's kind of segment."""
    shares: dict[str, float] = {}
    for floor in applicable_floors(policy.fairness_floors, merged)[0]:
        if not counts_group(merged, floor.group):
            continue
        weight = floor_weights(merged, floor, source=source, allow_empty=True)
        counted = counted_by_kind[floor.kind]
        total_counted = counted.sum()
        shares[floor.name] = float((counted * weight).sum() / total_counted) if total_counted != 0 else float("nan")
    return shares


def _coverage_shares(merged: pd.DataFrame, policy: PlanningPolicy, contacts: np.ndarray, *,
                     source: str) -> tuple[dict[str, float], dict[str, float]]:
    """Coverage floor name -> its worst area's contacts as a share of the floor's minimum (1 or more: it holds
    everywhere), and coverage floor name -> how far below 1 the rounding of contacts down to whole people may
    leave it (less than one contact per funded cell of the area). A floor per neighbourhood over cells without a
    neighbourhood column (a plan per print unit's) is not scored here."""
    shares: dict[str, float] = {}
    allowance: dict[str, float] = {}
    for i, cover in enumerate(policy.coverage_floors):
        if (not cover.applies_to(segment_kind(merged)) or not counts_group(merged, cover.group)
                or group_has_nobody(merged, cover)):  # as the planner: nobody to cover, nothing to hold
            continue
        if cover.area not in merged.columns and cover.area == "neighbourhood":
            continue  # a floor per print unit: the plan's cells are per segment, its units are in its unit lines
        areas = coverage_cells(merged, cover, key=f"policy coverage_floors[{i}] {cover.name!r}", source=source,
                               require=False)
        got = [(float(contacts[cells] @ weight), float(weight[contacts[cells] > 0].sum()))
               for _, cells, weight in areas]
        worst = min(got, default=(float("nan"), 0.0))
        shares[cover.name] = worst[0] / cover.min_contacts
        allowance[cover.name] = worst[1] / cover.min_contacts
    return shares, allowance
