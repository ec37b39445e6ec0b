"""The budget-split linear programme: variables, constraint matrices and right-hand sides.

Variables, in this order (``nv = n + m + 2``):

- ``x[c]``: contacts of cell ``c`` (one row of the effects table: a segment x arm),
- ``y[j]``: contacts bought in tier ``j`` of a (segment, channel) *group*; all messages on a channel
  in a segment share the group's reach tiers, so ``sum(x in group) == sum(y of group)``,
- ``T``: spend (EUR, ``sum(tier cost x y)``) and ``C``: expected conversions (``sum(effect x x)``).

Tier caps are bounds on ``y``; "never fund a negative effect" is an upper bound of 0 on ``x``.
Every other rule is a row of ``A_ub`` with a *kind* (see :data:`ROW_KINDS`), added by its family
(:mod:`uplift.allocation.rules`: one small unit per kind of rule). The right-hand sides
depend on the budget and on an allocation already made (the exploration part), so that the rules
hold for the sum of both (:func:`right_hand_sides`).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from uplift.allocation.channellines import ChannelLines, channel_lines, linking_rows
from uplift.allocation.effects import own_sd, shared_factors
from uplift.allocation.rules import FAMILIES, FAMILY, BaseFigures, Rows, fairness_floors
from uplift.allocation.unitrows import parent_factors
from uplift.specs.planning import CostCatalogue, FairnessFloor, PlanningPolicy

__all__ = [
    "ROW_KINDS",
    "ELASTIC_KINDS",
    "DROPPED",
    "Allocation",
    "Problem",
    "build_problem",
    "right_hand_sides",
    "variable_bounds",
]

ROW_KINDS: tuple[str, ...] = tuple(family.kind for family in FAMILIES)
"""Kinds of inequality rows, in the order they are stacked (one per rule family, :mod:`uplift.allocation.rules`)."""

ELASTIC_KINDS: frozenset[str] = frozenset(family.kind for family in FAMILIES if family.elastic)
"""Rows that get a slack variable when the policy is infeasible (the budget-independent rules)."""

DROPPED = 1e30
"""Right-hand side of a row the plan is solved without (:attr:`Problem.dropped`): HiGHS reads any
bound from 1e20 up as infinite, and scipy's ``linprog`` refuses ``inf``."""


@dataclass(frozen=True)
class Allocation:
    """Contacts per cell (``x``, length n) and per group tier (``y``, length m)."""

    x: np.ndarray
    y: np.ndarray

    @staticmethod
    def empty(problem: Problem) -> Allocation:
        """No contacts anywhere."""
        return Allocation(np.zeros(problem.n), np.zeros(problem.m))

    def __add__(self, other: Allocation) -> Allocation:
        return Allocation(self.x + other.x, self.y + other.y)


class SolverCache:
    """LP solvers kept with a problem between solves (see :mod:`uplift.allocation.solve`), the
    budget-independent part of its exploration draws (:mod:`uplift.allocation.explore`) and of its
    even reference plan (:mod:`uplift.allocation.references`), whether its rules conflicted at
    the last solve (:mod:`uplift.allocation.infeasibility`) and the cache its rules' prices are
    solved on (:meth:`for_pricing`); the problem itself stays immutable, the cache only saves work."""

    def __init__(self, warm_from: SolverCache | None = None) -> None:
        self.lock = threading.Lock()
        self.warm_from = warm_from
        """The cache of a problem with the same rows and other effects (:meth:`Problem.with_effect`):
        a new reduced LP here starts from the last basis of one there rather than cold."""
        self.reduced: dict[bytes, object] = {}
        self.systems: dict[tuple[frozenset[str], bool], object] = {}
        self.draws: tuple | None = None
        self.even: object | None = None
        self.infeasible = False
        self.restart = False
        """Start every solve of a kept reduced LP from ``warm_from``'s basis (the plans without one
        rule each start from the plan's, :meth:`for_pricing`)."""
        self._pricing: SolverCache | None = None

    def for_pricing(self) -> SolverCache:
        """The cache the plans without one rule are solved on (:mod:`uplift.allocation.prices`): it
        shares this one's matrices, keeps HiGHS instances of its own (their bases start from this
        cache's and then from one another's) and leaves this cache's bases and conflict flag alone,
        so a plan made after its prices is the plan made without them."""
        with self.lock:
            if self._pricing is None:
                child = SolverCache(warm_from=self)
                child.systems = self.systems
                child.restart = True
                self._pricing = child
            return self._pricing


@dataclass(frozen=True)
class Problem:
    """The planning LP for one effects table, cost catalogue and policy (budget excluded).

    Arrays are indexed by cell ``c`` (n), segment ``s``, group ``g`` ((segment, channel)) and
    group tier ``j`` (m). ``rows`` holds the kind and label of every ``A_ub`` row.
    """

    frame: pd.DataFrame
    policy: PlanningPolicy
    effect: np.ndarray
    effect_sd: np.ndarray  # the sd of each cell's whole error (its interval)
    own_sd: np.ndarray  # the part of it no other cell shares (independent across cells)
    shared: np.ndarray  # (n, k): per contact, loadings on errors cells share (calibration, persona effects); k may be 0
    seg: np.ndarray
    segments: np.ndarray
    seg_size: np.ndarray
    contact_cap: np.ndarray
    grp: np.ndarray
    grp_seg: np.ndarray
    grp_channel: np.ndarray
    channels: tuple[str, ...]
    tier_grp: np.ndarray
    tier_rank: np.ndarray
    tier_cost: np.ndarray
    tier_cap: np.ndarray
    floors: tuple[FairnessFloor, ...]
    floor_weight: np.ndarray
    """``(floors, n)``: how much of each cell's contacts, spend and conversions each fairness floor
    counts (1 or 0 for a floor over segment columns, the group's share of the segment's people for a
    floor over a priority group)."""
    a_eq: sp.csr_matrix
    a_ub: sp.csr_matrix
    row_kind: np.ndarray
    row_label: tuple[str, ...]
    row_ref: np.ndarray
    rule_data: dict = field(default_factory=dict, compare=False, repr=False)
    """Per row kind, what its family prepared beyond the structure (e.g. the coverage floors' areas)."""
    dropped: np.ndarray | None = None
    """Rows the plan is solved without (their right-hand side :data:`DROPPED`), to price them
    (:mod:`uplift.allocation.prices`); None: none."""
    floor_margin: np.ndarray | None = None
    """Per fairness floor, expected conversions a conversion floor must clear above its share
    (its confidence margin, :mod:`uplift.allocation.floors`); None: no margins."""
    tier_order: bool = True
    """Whether solves fill every reach curve in order, re-solving as a mixed-integer programme
    where the LP does not (:mod:`uplift.allocation.solve`); False takes the LP's optimum as it is
    (the effect draws of a confident floor, whose plans only measure an optimism)."""
    solvers: SolverCache = field(default_factory=lambda: SolverCache(), compare=False, repr=False)
    lines: ChannelLines | None = field(default=None, compare=False, repr=False)
    """The cells' channel lines (:mod:`uplift.allocation.channellines`); None: every cell on its own."""
    parent: np.ndarray | None = field(default=None, compare=False, repr=False)
    """Per cell, the row of the unsplit effects table it is part of, when some rows are split per print unit
    (:mod:`uplift.allocation.unitrows`: the frame's ``parent`` column); None: every cell is a row of its own."""

    @property
    def n(self) -> int:
        """Number of cells."""
        return len(self.effect)

    @property
    def m(self) -> int:
        """Number of group tiers."""
        return len(self.tier_cost)

    @property
    def nv(self) -> int:
        """Number of LP variables."""
        return self.n + self.m + 2

    @cached_property
    def tier_seg(self) -> np.ndarray:
        """Segment of every group tier."""
        return self.grp_seg[self.tier_grp]

    @cached_property
    def tier_channel(self) -> np.ndarray:
        """Channel (index into ``channels``) of every group tier."""
        return self.grp_channel[self.tier_grp]

    @cached_property
    def row_blocks(self) -> tuple[tuple[str, np.ndarray, np.ndarray], ...]:
        """Per row kind present, in :data:`ROW_KINDS` order: its rows (a mask) and their ``row_ref``,
        looked up once rather than at every solve (:func:`right_hand_sides`)."""
        blocks = []
        for kind in ROW_KINDS:
            rows = self.row_kind == kind
            if rows.any():
                blocks.append((kind, rows, self.row_ref[rows]))
        return tuple(blocks)

    @cached_property
    def floor_cells(self) -> np.ndarray:
        """``(floors, n)`` mask: the cells each fairness floor counts (a weight above 0)."""
        return self.floor_weight > 0

    @cached_property
    def floor_group_weight(self) -> np.ndarray:
        """``(floors, groups)``: each fairness floor's weight of each (segment, channel) group (its
        segment's weight; 0 outside the floor)."""
        weights = np.zeros((len(self.floors), len(self.grp_seg)))
        for k, (cells, weight) in enumerate(zip(self.floor_cells, self.floor_weight, strict=True)):
            weights[k, self.grp[cells]] = weight[cells]
        return weights

    @cached_property
    def floor_groups(self) -> np.ndarray:
        """``(floors, groups)`` mask: the groups with a cell in each fairness floor."""
        return self.floor_group_weight > 0

    def with_effect(self, effect: np.ndarray) -> Problem:
        """The same problem with other effects per contact (e.g. a draw from their uncertainty).

        Only what the effects enter is replaced: the conversions row of ``a_eq``, the cells'
        coefficients of the conversion-floor rows and the frame's ``effect`` column; the rest is
        shared with this problem, and the copy gets solver caches of its own. Equal to
        :func:`build_problem` on ``frame.assign(effect=effect)``, without the cost of building it.
        """
        effect = np.asarray(effect, dtype=float)
        if effect.shape != self.effect.shape:
            raise ValueError(f"effect: expected {self.n} values, one per cell, got shape {effect.shape}")
        a_eq = _with_cell_coefficients(self.a_eq, np.arange(self.a_eq.shape[0]) == self.a_eq.shape[0] - 1,
                                       effect, self.n)
        effect_rows = self.rows({family.kind for family in FAMILIES if family.effect_rows})
        a_ub = _with_cell_coefficients(self.a_ub, effect_rows, effect, self.n,
                                       weight=lambda rows, cells: self.floor_weight[self.row_ref[rows], cells])
        return dataclasses.replace(self, frame=self.frame.assign(effect=effect), effect=effect, a_eq=a_eq,
                                   a_ub=a_ub, solvers=SolverCache(warm_from=self.solvers))

    @cached_property
    def channel_lines(self) -> ChannelLines:
        """:attr:`lines`, or no lines."""
        return self.lines if self.lines is not None else ChannelLines.none(self.n)

    @cached_property
    def message_order(self) -> np.ndarray:
        """Per cell, the rank of its message among the table's messages (sorted): every group of a channel line
        opens the same message first (:mod:`uplift.allocation.cellpricing`)."""
        codes, _ = pd.factorize(self.frame["message"], sort=True)
        return codes.astype(np.int64)

    def fundable(self, effect: np.ndarray) -> np.ndarray:
        """The cells that may get contacts under ``effect`` (per cell): a non-negative effect, or for a cell of a
        channel line, a non-negative people-weighted mix over its line (the line is bought whole), and not a
        line that can never reach its channel's minimum."""
        lines = self.channel_lines
        ok = lines.mix(np.asarray(effect, dtype=float)) >= 0
        on = lines.line >= 0
        if on.any():
            ok[on] &= np.isfinite(lines.minimum[lines.line[on]])
        return ok

    def rows(self, kinds: frozenset[str] | set[str]) -> np.ndarray:
        """Boolean mask of the ``A_ub`` rows of the given kinds."""
        return np.isin(self.row_kind, list(kinds))

    def group_spend(self, y: np.ndarray) -> np.ndarray:
        """EUR spent per group for tier contacts ``y``."""
        return np.bincount(self.tier_grp, weights=self.tier_cost * y, minlength=len(self.grp_seg))

    def spend(self, y: np.ndarray) -> float:
        """Total EUR for tier contacts ``y``."""
        return float(self.tier_cost @ y)


def build_problem(
    frame: pd.DataFrame,
    costs: CostCatalogue,
    policy: PlanningPolicy,
    *,
    source: str = "effects",
    require_floor_segments: bool = True,
    policy_source: str = "policy",
) -> Problem:
    """Build the LP for a validated effects ``frame`` (see :func:`~uplift.allocation.effects.check_effects`).

    The structure (cells, groups, tiers, the conversions and spend rows) is built here; every rule
    family (:data:`uplift.allocation.rules.FAMILIES`) then adds its own rows.

    Parameters
    ----------
    frame : checked effects table (index 0..n-1).
    costs, policy : the declarations.
    source : name of the table in error messages.
    require_floor_segments : if False a floor that selects no segment (or area) is dropped instead
        of raising (used for reference plans on part of the table). A fairness floor that does not
        apply to the table's kind of segment (:func:`~uplift.allocation.effects.applicable_floors`)
        is left out.
    policy_source : name of the policy in error messages (e.g. its file).

    Raises
    ------
    SpecError
        The policy names a channel the cost catalogue does not have.
    DataError
        A floor selects on a missing column, counts a group the table has no composition of, or
        selects nothing.
    """
    for family in FAMILIES:
        family.check(costs, policy, policy_source=policy_source)
    structure = _structure(frame, costs, policy)
    floors, weights = fairness_floors(frame, policy, source=source, policy_source=policy_source,
                                      require=require_floor_segments)
    problem = dataclasses.replace(structure, floors=floors, floor_weight=weights)
    data = {family.kind: family.prepare(problem, source=source, policy_source=policy_source,
                                        require=require_floor_segments) for family in FAMILIES}
    problem = dataclasses.replace(problem, rule_data=data)
    rows = Rows(problem.nv)
    for family in FAMILIES:
        family.add_rows(problem, rows)
    a_ub, kinds, labels, refs = rows.build()
    return dataclasses.replace(problem, a_ub=a_ub, row_kind=kinds, row_label=labels, row_ref=refs)


def _structure(frame: pd.DataFrame, costs: CostCatalogue, policy: PlanningPolicy) -> Problem:
    """The problem without its rules: cells, segments, (segment, channel) groups and their reach
    tiers, and the equalities (group balance, spend ``T``, conversions ``C``)."""
    n = len(frame)
    effect = frame["effect"].to_numpy(dtype=float)
    seg, segments = pd.factorize(frame["segment"], sort=False)
    seg_size = np.zeros(len(segments))
    seg_size[seg] = frame["size"].to_numpy(dtype=float)
    channels = tuple(sorted(set(frame["channel"]) | set(policy.min_spend) | set(policy.max_spend)))
    chan_of_cell = np.searchsorted(np.array(channels), frame["channel"].to_numpy(dtype=object).astype(str))
    split = "parent" in frame.columns
    # a group is (segment, channel), or (segment, channel, print unit) for rows split per unit
    unit = pd.factorize(frame["unit"], sort=False)[0].astype(np.int64) if split else np.zeros(n, dtype=np.int64)
    grp, grp_keys = pd.factorize((seg.astype(np.int64) * len(channels) + chan_of_cell) * (int(unit.max()) + 1) + unit,
                                 sort=False)
    grp_keys = np.asarray(grp_keys) // (int(unit.max()) + 1)
    grp_seg, grp_channel = grp_keys // len(channels), grp_keys % len(channels)
    grp_people = seg_size[grp_seg].copy()
    if split:
        grp_people[grp] = frame["unit_people"].to_numpy(dtype=float)
    tier_grp, tier_rank, tier_cost, tier_cap = _tiers(costs, channels, grp_channel, grp_people)
    shared = shared_factors(frame)
    own = own_sd(frame["effect_sd"].to_numpy(dtype=float), shared)
    parent = frame["parent"].to_numpy(dtype=np.int64) if split else None
    if split:  # a split parent's own error is one error of all its rows: a shared factor of theirs
        own, by_parent = parent_factors(parent, own)
        shared = np.concatenate([shared, by_parent], axis=1)
    lines = channel_lines(frame, costs)
    return Problem(
        frame=frame,
        policy=policy,
        effect=effect,
        effect_sd=frame["effect_sd"].to_numpy(dtype=float),
        own_sd=own,
        shared=shared,
        seg=seg,
        segments=np.asarray(segments, dtype=object),
        seg_size=seg_size,
        contact_cap=(1.0 - policy.holdout_share) * seg_size,
        grp=grp,
        grp_seg=grp_seg,
        grp_channel=grp_channel,
        channels=channels,
        tier_grp=tier_grp,
        tier_rank=tier_rank,
        tier_cost=tier_cost,
        tier_cap=tier_cap,
        floors=(),
        floor_weight=np.zeros((0, n)),
        a_eq=_equalities(effect, grp, tier_grp, tier_cost, len(grp_keys),
                         linking_rows(lines, n + len(tier_cost) + 2)),
        a_ub=sp.csr_matrix((0, n + len(tier_cost) + 2)),
        row_kind=np.zeros(0, dtype=str),
        row_label=(),
        row_ref=np.zeros(0, dtype=int),
        lines=lines,
        parent=parent,
    )


def _tiers(costs: CostCatalogue, channels: tuple[str, ...], grp_channel: np.ndarray,
           grp_people: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every group gets its channel's reach tiers over its people: per tier its group, rank in the group, price
    and capacity."""
    shares = [np.array([t.share for t in costs.channel(ch).tiers]) for ch in channels]
    prices = [
        np.array([t.multiplier for t in costs.channel(ch).tiers]) * costs.channel(ch).unit_cost for ch in channels
    ]
    n_tiers = np.array([len(s) for s in shares])
    per_group = n_tiers[grp_channel]
    tier_grp = np.repeat(np.arange(len(grp_channel)), per_group)
    starts = np.cumsum(per_group) - per_group
    tier_rank = np.arange(len(tier_grp)) - np.repeat(starts, per_group)
    flat_share = np.concatenate(shares)
    flat_price = np.concatenate(prices)
    offset = np.concatenate([[0], np.cumsum(n_tiers)[:-1]])
    tier_index = offset[grp_channel[tier_grp]] + tier_rank
    return tier_grp, tier_rank, flat_price[tier_index], flat_share[tier_index] * grp_people[tier_grp]


def _equalities(effect: np.ndarray, grp: np.ndarray, tier_grp: np.ndarray, tier_cost: np.ndarray,
                n_grp: int, linking: sp.csr_matrix) -> sp.csr_matrix:
    """``A_eq``: per group, its cells' contacts equal its tiers' contacts; the channel lines' ``linking``
    rows (:func:`~uplift.allocation.channellines.linking_rows`); ``T`` the tiers' spend; ``C`` the cells'
    expected conversions (always the last row)."""
    n, m = len(effect), len(tier_cost)
    ix, iy, it, ic = np.arange(n), n + np.arange(m), n + m, n + m + 1
    return sp.vstack(
        [
            sp.hstack(
                [
                    sp.csr_matrix((np.ones(n), (grp, ix)), shape=(n_grp, n)),
                    sp.csr_matrix((-np.ones(m), (tier_grp, np.arange(m))), shape=(n_grp, m)),
                    sp.csr_matrix((n_grp, 2)),
                ]
            ),
            linking,
            sp.csr_matrix(
                (np.concatenate([-tier_cost, [1.0]]), (np.zeros(m + 1, dtype=int), np.concatenate([iy, [it]]))),
                shape=(1, n + m + 2),
            ),
            sp.csr_matrix(
                (np.concatenate([-effect, [1.0]]), (np.zeros(n + 1, dtype=int), np.concatenate([ix, [ic]]))),
                shape=(1, n + m + 2),
            ),
        ],
        format="csr",
    )


def _with_cell_coefficients(matrix: sp.csr_matrix, rows: np.ndarray, effect: np.ndarray, n: int,
                            weight=None) -> sp.csr_matrix:
    """``matrix`` with the cells' coefficients (columns below ``n``) of ``rows`` set to ``-effect``
    (times ``weight(rows, cells)`` if given), as :func:`build_problem` writes them in the conversions
    row and the conversion-floor rows (it stores every such coefficient, zeros included, so the
    sparsity pattern stays)."""
    data = matrix.data.copy()
    row_of = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    at = rows[row_of] & (matrix.indices < n)
    cells = matrix.indices[at]
    coefficient = effect[cells] if weight is None else effect[cells] * weight(row_of[at], cells)
    data[at] = -coefficient
    return sp.csr_matrix((data, matrix.indices, matrix.indptr), shape=matrix.shape)


def right_hand_sides(problem: Problem, *, budget: float, base: Allocation) -> np.ndarray:
    """``b_ub`` for the extra allocation on top of ``base`` so that every rule holds for the sum.

    Each family computes its rows' (:meth:`~uplift.allocation.rules.RuleFamily.rhs`): the budget row
    gets ``budget - spend(base)``; minimums, maxima, caps and floors are shifted by what ``base``
    already spends, contacts and converts; a conversion floor also by its margin
    (``problem.floor_margin``). Rows the problem is solved without (``problem.dropped``) get
    :data:`DROPPED`.
    """
    figures = BaseFigures.of(problem, base, budget)
    b = np.zeros(len(problem.row_kind))
    for kind, rows, ref in problem.row_blocks:
        b[rows] = FAMILY[kind].rhs(problem, ref, figures)
    if problem.dropped is not None:
        b[problem.dropped] = DROPPED
    return b


def variable_bounds(problem: Problem, *, fundable: np.ndarray, base: Allocation) -> np.ndarray:
    """``(nv, 2)`` bounds: ``x`` in [0, inf) where ``fundable`` else [0, 0]; ``y`` up to the tier
    capacity left after ``base``; ``T`` >= 0; ``C`` free."""
    bounds = np.zeros((problem.nv, 2))
    bounds[: problem.n, 1] = np.where(fundable, np.inf, 0.0)
    bounds[problem.n : problem.n + problem.m, 1] = np.maximum(problem.tier_cap - base.y, 0.0)
    bounds[-2] = (-np.inf, np.inf)
    bounds[-1] = (-np.inf, np.inf)
    return bounds
