"""The budget-split linear programme: variables, constraint matrices and right-hand sides.

Variables, in this order (``nv = n + m + 2``):

- ``x[c]``: contacts of cell ``c`` (one row of the effects table: a segment x arm),
- ``y[j]``: contacts bought in tier ``j`` of a (segment, channel) *group*; all messages on a channel
  in a segment share the group's reach tiers, so ``sum(x in group) == sum(y of group)``,
- ``T``: spend (EUR, ``sum(tier cost x y)``) and ``C``: expected conversions (``sum(effect x x)``).

Tier caps are bounds on ``y``; "never fund a negative effect" is an upper bound of 0 on ``x``.
Every other rule is a row of ``A_ub`` with a *kind* (see :data:`ROW_KINDS`). The right-hand sides
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

from uplift.allocation.effects import applicable_floors, floor_mask, own_sd, shared_factors
from uplift.errors import SpecError
from uplift.specs.planning import CostCatalogue, FairnessFloor, PlanningPolicy

__all__ = [
    "ROW_KINDS",
    "ELASTIC_KINDS",
    "Allocation",
    "Problem",
    "build_problem",
    "right_hand_sides",
    "variable_bounds",
]

ROW_KINDS: tuple[str, ...] = (
    "budget",
    "segment_contacts",
    "channel_max",
    "channel_min",
    "segment_share",
    "spend_floor",
    "conversion_floor",
)
"""Kinds of inequality rows, in the order they are stacked."""

ELASTIC_KINDS: frozenset[str] = frozenset({"channel_min", "segment_share", "spend_floor", "conversion_floor"})
"""Rows that get a slack variable when the policy is infeasible (the budget-independent rules)."""


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
    even reference plan (:mod:`uplift.allocation.references`), and whether its rules conflicted at
    the last solve (:mod:`uplift.allocation.infeasibility`); the problem itself stays immutable,
    the cache only saves work."""

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
    floor_cells: np.ndarray
    a_eq: sp.csr_matrix
    a_ub: sp.csr_matrix
    row_kind: np.ndarray
    row_label: tuple[str, ...]
    row_ref: np.ndarray
    floor_margin: np.ndarray | None = None
    """Per fairness floor, expected conversions a conversion floor must clear above its share
    (its confidence margin, :mod:`uplift.allocation.floors`); None: no margins."""
    tier_order: bool = True
    """Whether solves fill every reach curve in order, re-solving as a mixed-integer programme
    where the LP does not (:mod:`uplift.allocation.solve`); False takes the LP's optimum as it is
    (the effect draws of a confident floor, whose plans only measure an optimism)."""
    solvers: SolverCache = field(default_factory=lambda: SolverCache(), compare=False, repr=False)

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
    def floor_groups(self) -> np.ndarray:
        """``(floors, groups)`` mask: the groups with a cell in each fairness floor."""
        groups = np.zeros((len(self.floors), len(self.grp_seg)), dtype=bool)
        for k, cells in enumerate(self.floor_cells):
            groups[k, self.grp[cells]] = True
        return groups

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
        a_ub = _with_cell_coefficients(self.a_ub, self.row_kind == "conversion_floor", effect, self.n)
        return dataclasses.replace(self, frame=self.frame.assign(effect=effect), effect=effect, a_eq=a_eq,
                                   a_ub=a_ub, solvers=SolverCache(warm_from=self.solvers))

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
) -> Problem:
    """Build the LP for a validated effects ``frame`` (see :func:`~uplift.allocation.effects.check_effects`).

    Parameters
    ----------
    frame : checked effects table (index 0..n-1).
    costs, policy : the declarations.
    source : name of the table in error messages.
    require_floor_segments : if False a fairness floor that selects no segment is dropped instead
        of raising (used for reference plans on part of the table). A floor that does not apply to
        the table's kind of segment (:func:`~uplift.allocation.effects.applicable_floors`) is left out.

    Raises
    ------
    SpecError
        The policy names a channel the cost catalogue does not have.
    DataError
        A fairness floor selects on a missing column or selects nothing.
    """
    for rule in ("min_spend", "max_spend"):
        unknown = sorted(set(getattr(policy, rule)) - set(costs.channels))
        if unknown:
            raise SpecError(
                f"policy {rule}: channel(s) {', '.join(map(repr, unknown))} not in the cost catalogue; "
                f"valid: {', '.join(sorted(costs.channels))}"
            )
    n = len(frame)
    effect = frame["effect"].to_numpy(dtype=float)
    seg, segments = pd.factorize(frame["segment"], sort=False)
    seg_size = np.zeros(len(segments))
    seg_size[seg] = frame["size"].to_numpy(dtype=float)
    channels = tuple(sorted(set(frame["channel"]) | set(policy.min_spend) | set(policy.max_spend)))
    chan_of_cell = np.searchsorted(np.array(channels), frame["channel"].to_numpy(dtype=object).astype(str))
    grp, grp_keys = pd.factorize(seg * len(channels) + chan_of_cell, sort=False)
    grp_keys = np.asarray(grp_keys)
    grp_seg, grp_channel = grp_keys // len(channels), grp_keys % len(channels)

    # group tiers: every group gets its channel's tiers
    shares = [np.array([t.share for t in costs.channel(ch).tiers]) for ch in channels]
    prices = [
        np.array([t.multiplier for t in costs.channel(ch).tiers]) * costs.channel(ch).unit_cost for ch in channels
    ]
    n_tiers = np.array([len(s) for s in shares])
    per_group = n_tiers[grp_channel]
    tier_grp = np.repeat(np.arange(len(grp_keys)), per_group)
    starts = np.cumsum(per_group) - per_group
    tier_rank = np.arange(len(tier_grp)) - np.repeat(starts, per_group)
    flat_share = np.concatenate(shares)
    flat_price = np.concatenate(prices)
    offset = np.concatenate([[0], np.cumsum(n_tiers)[:-1]])
    tier_index = offset[grp_channel[tier_grp]] + tier_rank
    tier_cost = flat_price[tier_index]
    tier_cap = flat_share[tier_index] * seg_size[grp_seg[tier_grp]]
    m = len(tier_cost)
    contact_cap = (1.0 - policy.holdout_share) * seg_size

    floors, masks = [], []
    for floor in applicable_floors(policy.fairness_floors, frame)[0]:
        mask = floor_mask(frame, floor, source=source, allow_empty=not require_floor_segments)
        if mask.any():
            floors.append(floor)
            masks.append(mask)
    floor_cells = np.array(masks, dtype=bool).reshape(len(masks), n)

    ix, iy, it, ic = np.arange(n), n + np.arange(m), n + m, n + m + 1
    n_grp = len(grp_keys)
    a_eq = sp.vstack(
        [
            sp.hstack(
                [
                    sp.csr_matrix((np.ones(n), (grp, ix)), shape=(n_grp, n)),
                    sp.csr_matrix((-np.ones(m), (tier_grp, np.arange(m))), shape=(n_grp, m)),
                    sp.csr_matrix((n_grp, 2)),
                ]
            ),
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

    builder = _Rows(n + m + 2)
    builder.add("budget", "budget", -1, [it], [1.0])
    builder.add_block("segment_contacts", [f"segment {s!r}: contacts" for s in segments], np.arange(len(segments)),
                      seg, ix, np.ones(n))
    tier_channel = grp_channel[tier_grp]
    for k, ch in enumerate(channels):
        if ch in policy.max_spend and (tier_channel == k).any():
            cols = iy[tier_channel == k]
            builder.add("channel_max", f"max_spend {ch!r}", k, cols, tier_cost[tier_channel == k])
    for k, ch in enumerate(channels):
        if policy.min_spend.get(ch, 0.0) > 0:
            cols = iy[tier_channel == k]
            builder.add("channel_min", f"min_spend {ch!r}", k, cols, -tier_cost[tier_channel == k])
    if policy.max_segment_share < 1.0:
        tier_seg = grp_seg[tier_grp]
        rows = np.concatenate([tier_seg, np.arange(len(segments))])
        cols = np.concatenate([iy, np.full(len(segments), it)])
        vals = np.concatenate([tier_cost, np.full(len(segments), -policy.max_segment_share)])
        builder.add_block("segment_share", [f"max_segment_share in segment {s!r}" for s in segments],
                          np.arange(len(segments)), rows, cols, vals)
    for k, (floor, mask) in enumerate(zip(floors, masks)):
        if floor.kind == "spend_share":
            in_floor = np.zeros(n_grp, dtype=bool)
            in_floor[grp[mask]] = True
            sel = in_floor[tier_grp]
            builder.add("spend_floor", f"fairness floor {floor.name!r}", k,
                        np.concatenate([iy[sel], [it]]), np.concatenate([-tier_cost[sel], [floor.min_share]]))
        else:
            builder.add("conversion_floor", f"fairness floor {floor.name!r}", k,
                        np.concatenate([ix[mask], [ic]]), np.concatenate([-effect[mask], [floor.min_share]]))
    a_ub, kinds, labels, refs = builder.build()
    shared = shared_factors(frame)
    return Problem(
        frame=frame,
        policy=policy,
        effect=effect,
        effect_sd=frame["effect_sd"].to_numpy(dtype=float),
        own_sd=own_sd(frame["effect_sd"].to_numpy(dtype=float), shared),
        shared=shared,
        seg=seg,
        segments=np.asarray(segments, dtype=object),
        seg_size=seg_size,
        contact_cap=contact_cap,
        grp=grp,
        grp_seg=grp_seg,
        grp_channel=grp_channel,
        channels=channels,
        tier_grp=tier_grp,
        tier_rank=tier_rank,
        tier_cost=tier_cost,
        tier_cap=tier_cap,
        floors=tuple(floors),
        floor_cells=floor_cells,
        a_eq=a_eq,
        a_ub=a_ub,
        row_kind=kinds,
        row_label=labels,
        row_ref=refs,
    )


def _with_cell_coefficients(matrix: sp.csr_matrix, rows: np.ndarray, effect: np.ndarray, n: int) -> sp.csr_matrix:
    """``matrix`` with the cells' coefficients (columns below ``n``) of ``rows`` set to ``-effect``,
    as :func:`build_problem` writes them in the conversions row and the conversion-floor rows (it
    stores every such coefficient, zeros included, so the sparsity pattern stays)."""
    data = matrix.data.copy()
    row_of = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    at = rows[row_of] & (matrix.indices < n)
    data[at] = -effect[matrix.indices[at]]
    return sp.csr_matrix((data, matrix.indices, matrix.indptr), shape=matrix.shape)


class _Rows:
    """Collects sparse inequality rows with their kind, label and reference index."""

    def __init__(self, nv: int) -> None:
        self.nv = nv
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.kinds: list[str] = []
        self.labels: list[str] = []
        self.refs: list[int] = []

    def add(self, kind: str, label: str, ref: int, cols, vals) -> None:
        self.add_block(kind, [label], np.array([ref]), np.zeros(len(cols), dtype=int), cols, vals)

    def add_block(self, kind: str, labels: list[str], refs: np.ndarray, rows, cols, vals) -> None:
        base = len(self.kinds)
        self.r.append(np.asarray(rows, dtype=int) + base)
        self.c.append(np.asarray(cols, dtype=int))
        self.v.append(np.asarray(vals, dtype=float))
        self.kinds.extend([kind] * len(labels))
        self.labels.extend(labels)
        self.refs.extend(int(r) for r in refs)

    def build(self) -> tuple[sp.csr_matrix, np.ndarray, tuple[str, ...], np.ndarray]:
        matrix = sp.csr_matrix(
            (np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.c))),
            shape=(len(self.kinds), self.nv),
        )
        return matrix, np.array(self.kinds), tuple(self.labels), np.array(self.refs, dtype=int)


def right_hand_sides(problem: Problem, *, budget: float, base: Allocation) -> np.ndarray:
    """``b_ub`` for the extra allocation on top of ``base`` so that every rule holds for the sum.

    The budget row gets ``budget - spend(base)``; minimums, maxima, caps and floors are shifted by
    what ``base`` already spends, contacts and converts; a conversion floor also by its margin
    (``problem.floor_margin``).
    """
    policy = problem.policy
    spend_grp = problem.group_spend(base.y)
    spend_total = float(spend_grp.sum())
    spend_seg = np.bincount(problem.grp_seg, weights=spend_grp, minlength=len(problem.segments))
    spend_ch = np.bincount(problem.grp_channel, weights=spend_grp, minlength=len(problem.channels))
    contacts_seg = np.bincount(problem.seg, weights=base.x, minlength=len(problem.segments))
    conv = problem.effect * base.x
    b = np.zeros(len(problem.row_kind))
    for kind, rows, ref in problem.row_blocks:
        if kind == "budget":
            b[rows] = budget - spend_total
        elif kind == "segment_contacts":
            b[rows] = problem.contact_cap[ref] - contacts_seg[ref]
        elif kind == "channel_max":
            b[rows] = [policy.max_spend[problem.channels[k]] - spend_ch[k] for k in ref]
        elif kind == "channel_min":
            b[rows] = [-(policy.min_spend[problem.channels[k]] - spend_ch[k]) for k in ref]
        elif kind == "segment_share":
            b[rows] = policy.max_segment_share * spend_total - spend_seg[ref]
        elif kind == "spend_floor":
            b[rows] = [
                float(spend_grp[problem.floor_groups[k]].sum()) - problem.floors[k].min_share * spend_total
                for k in ref
            ]
        else:
            margin = problem.floor_margin if problem.floor_margin is not None else np.zeros(len(problem.floors))
            b[rows] = [
                conv[problem.floor_cells[k]].sum() - problem.floors[k].min_share * conv.sum() - margin[k]
                for k in ref
            ]
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
