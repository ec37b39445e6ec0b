"""A channel's lines: the cells of one channel and message that the channel cannot tell apart, bought as one.

The segment table's cells are age band x gender x municipality; a channel selects people by what it declares in
the cost catalogue (``targeting``): LinkedIn by age band and municipality, a flyer by neighbourhood only. The
cells of one channel and message that look the same to the channel (:func:`uplift.celltargeting.line_key`,
what the hand-off runs as one ad set or print run, :mod:`uplift.handoff.lines`) form a *line*, and the planner
buys a line, not its cells: the LP keeps one variable per cell, and equalities tie the cells of a line together
so that each gets the line's contacts in proportion to its people (:func:`linking_rows`). So the line's effect
per contact is the people-weighted mix of its cells' effects, its uncertainty their mix with the shared and own
parts each cell carries (every figure is still summed cell by cell), its reach the tiers of its people, and the
floors, caps and breakdowns that count cells count its contacts where they land.

Rows split per print unit (:mod:`uplift.allocation.unitrows`: a flyer planned per neighbourhood) are keyed by
their unit instead: a flyer line is one message in one print unit, every cell's people living there, each cell
weighted by its people in the unit (``unit_people``).

A line also has the channel's smallest size (``min_line_spend`` EUR per ad set or mailing, ``min_print_run``
copies of ``people_per_copy`` contacts per print run): the contacts its reach curve sells for that spend, or
the copies' contacts, plus one contact per cell for the rounding to whole contacts
(:attr:`ChannelLines.minimum`). A line is bought at that size or not at all (:mod:`uplift.allocation.lineminimum`).

Only a table of targetable cells has lines (every segment names an age band, a gender and a municipality); a
table of persona segments, or a channel without a ``targeting`` declaration, is planned cell by cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from uplift.celltargeting import cell_targeting, line_key, parse_segment
from uplift.specs.planning import ChannelCost, CostCatalogue

__all__ = ["ChannelLines", "channel_lines", "linking_rows", "line_minimum"]

_DIMENSIONS = ("age_band", "gender", "municipality")


@dataclass(frozen=True)
class ChannelLines:
    """The lines of a problem's cells.

    Attributes
    ----------
    line : per cell, its line (index into the per-line arrays), -1 for a cell planned on its own without a
        minimum (its channel declares no targeting, or the table is not of targetable cells).
    share : per cell, its share of its line's people (1 for a cell without a line).
    coarse : per cell, whether its line may hold more than one cell (its channel cannot select every
        segment dimension): the cells the linking equalities tie together.
    label : per line, ``channel | message | what the channel selects``.
    people : per line, the people of its cells.
    minimum : per line, the contacts it needs at least when bought (0: no minimum; ``inf``: it can never
        reach its channel's minimum and is not bought).
    """

    line: np.ndarray
    share: np.ndarray
    coarse: np.ndarray
    label: tuple[str, ...]
    people: np.ndarray
    minimum: np.ndarray

    @staticmethod
    def none(n: int) -> ChannelLines:
        """No lines: every cell on its own."""
        return ChannelLines(np.full(n, -1), np.ones(n), np.zeros(n, dtype=bool), (), np.zeros(0), np.zeros(0))

    @property
    def linked(self) -> bool:
        """Whether some cell is on a coarse channel (its line's cells are tied together)."""
        return bool(self.coarse.any())

    @property
    def has_minimum(self) -> bool:
        """Whether some line has a minimum size."""
        return bool((self.minimum > 0).any())

    def totals(self, x: np.ndarray) -> np.ndarray:
        """Per line, the contacts ``x`` (per cell) gives it."""
        on = self.line >= 0
        return np.bincount(self.line[on], weights=x[on], minlength=len(self.label))

    def mix(self, values: np.ndarray) -> np.ndarray:
        """Per cell, the people-weighted mean of ``values`` over its line's cells (its own value off a
        line, or on a line of one cell)."""
        on = self.coarse
        if not on.any():
            return np.asarray(values, dtype=float)
        per_line = np.bincount(self.line[on], weights=self.share[on] * values[on], minlength=len(self.label))
        return np.where(on, per_line[np.maximum(self.line, 0)], values)

    def whole(self, cells: np.ndarray) -> np.ndarray:
        """``cells`` (a mask) widened to every cell of the lines it touches on a coarse channel."""
        if not self.coarse.any():
            return cells
        hit = np.zeros(len(self.label), dtype=bool)
        picked = cells & self.coarse
        hit[self.line[picked]] = True
        return cells | (self.coarse & hit[np.maximum(self.line, 0)])

    def spread(self, x: np.ndarray) -> np.ndarray:
        """``x`` with every coarse line's contacts moved onto its cells in proportion to their people."""
        if not self.coarse.any():
            return x
        total = self.totals(x)
        return np.where(self.coarse, self.share * total[np.maximum(self.line, 0)], x)


def channel_lines(frame: pd.DataFrame, costs: CostCatalogue) -> ChannelLines:
    """The lines of a checked effects table's cells (see the module's docstring)."""
    n = len(frame)
    segments = frame["segment"].astype(str).to_numpy()
    labels = list(dict.fromkeys(segments))
    parsed = [parse_segment(s) if "=" in s else {} for s in labels]
    if not labels or any(any(d not in p for d in _DIMENSIONS) for p in parsed):
        return ChannelLines.none(n)
    places = tuple(sorted({p["municipality"] for p in parsed} - {"other"}))
    targets = cell_targeting(labels, places)
    channel = frame["channel"].astype(str).to_numpy()
    message = frame["message"].astype(str).to_numpy()
    split = "unit" in frame.columns
    size = frame["unit_people" if split else "size"].to_numpy(dtype=float)
    unit = frame["unit"].astype(str).to_numpy() if split else np.full(n, "", dtype=object)
    keys = np.full(n, "", dtype=object)
    coarse = np.zeros(n, dtype=bool)
    for ch in np.unique(channel):
        targeting = costs.channel(str(ch)).targeting
        if targeting is None:
            continue
        on = channel == ch
        fine = all(d in targeting for d in ("age_band", "gender")) and (
            "municipality" in targeting or "neighbourhood" in targeting)
        coarse[on] = not fine
        keys[on] = [f"{ch}|{m}|" + (s if fine else f"unit={u}" if u else _key_text(line_key(targets[s], targeting)))
                    for m, s, u in zip(message[on], segments[on], unit[on], strict=True)]
    with_line = keys != ""
    line = np.full(n, -1)
    codes, names = pd.factorize(pd.Series(keys[with_line]), sort=True)
    line[with_line] = codes
    people = np.bincount(codes, weights=size[with_line], minlength=len(names))
    share = np.ones(n)
    share[with_line] = np.divide(size[with_line], people[codes], out=np.zeros(int(with_line.sum())),
                                 where=people[codes] > 0)
    cells = np.bincount(codes, minlength=len(names))
    line_channel = [str(name).split("|", 1)[0] for name in names]
    minimum = np.array([line_minimum(costs.channel(ch), people[k], cells[k]) for k, ch in enumerate(line_channel)])
    return ChannelLines(line, share, coarse, tuple(map(str, names)), people, minimum)


def _key_text(key: tuple[str, str, tuple[str, ...]]) -> str:
    age, gender, places = key
    return f"age_band={age}|gender={gender}|places={'+'.join(places) or 'all'}"


def line_minimum(channel: ChannelCost, people: float, cells: int) -> float:
    """The contacts a line of ``people`` (over ``cells`` cells) needs at least on ``channel``: those whose
    reach curve costs ``min_line_spend``, or ``min_print_run`` copies of ``people_per_copy`` contacts, plus
    one per cell (the plan rounds each cell down to whole contacts); 0 without a minimum, ``inf`` when the
    line's people cannot take it."""
    caps = np.array([t.share for t in channel.tiers]) * people
    if channel.min_print_run > 0:
        needed = channel.min_print_run * channel.people_per_copy
    elif channel.min_line_spend > 0:
        needed = _contacts_for(channel.min_line_spend, caps,
                               np.array([t.multiplier for t in channel.tiers]) * channel.unit_cost)
    else:
        return 0.0
    needed = float(np.ceil(needed - 1e-9)) + cells
    return needed if needed <= caps.sum() * (1 - 1e-9) else float("inf")


def _contacts_for(spend: float, caps: np.ndarray, prices: np.ndarray) -> float:
    """Contacts a reach curve (tiers ``caps`` at ``prices``, cheapest first) sells for ``spend`` EUR (``inf``
    beyond its whole reach)."""
    left, contacts = spend, 0.0
    for cap, price in zip(caps, prices, strict=True):
        if left <= cap * price:
            return contacts + left / price
        left -= cap * price
        contacts += cap
    return float("inf")


def linking_rows(lines: ChannelLines, nv: int) -> sp.csr_matrix:
    """Equalities over the LP's variables (``nv`` columns, cells first) that give every cell of a coarse line
    its share of the line's contacts: ``x_c - (share_c / share_a) x_a = 0`` against the line's largest cell
    ``a`` (``x_c = 0`` for every cell of a line without people)."""
    rows, cols, vals = [], [], []
    r = 0
    on = np.flatnonzero(lines.coarse)
    if not len(on):
        return sp.csr_matrix((0, nv))
    order = on[np.lexsort((-lines.share[on], lines.line[on]))]
    starts = np.flatnonzero(np.r_[True, lines.line[order][1:] != lines.line[order][:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], len(order)], strict=True):
        members = order[start:stop]
        anchor, rest = members[0], members[1:]
        if lines.share[anchor] <= 0:  # nobody in the line: none of its cells is bought
            rest = members
        for c in rest:
            rows.append(r)
            cols.append(c)
            vals.append(1.0)
            if lines.share[anchor] > 0:
                rows.append(r)
                cols.append(anchor)
                vals.append(-lines.share[c] / lines.share[anchor])
            r += 1
    return sp.csr_matrix((vals, (rows, cols)), shape=(r, nv))
