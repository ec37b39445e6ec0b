"""Disclosure control: the part of a frame of figures about people that may leave the product.

Every output (API, CLI tables and files, MLflow artifacts) passes its frames through :func:`disclose`
with a :class:`Release` that says which columns are counts of people, which are counts of converters,
which figures (rates, effects, their errors) rest on which counts, and which cells add up to totals
someone may know. Under a :class:`~uplift.specs.disclosure.DisclosurePolicy` (threshold ``T``,
rounding base ``b``), as statistical offices do:

1. *primary suppression*: a count of people below ``T`` is suppressed; so is a count of converters
   below ``T``, or one whose complement (the people of its cell who did not convert) is below ``T``;
2. *secondary suppression*: within every group of cells that add up to a total someone may know
   (a :class:`Margin`: a segment's people over its arms, an arm's people over the segments), the
   suppressed cells together hold at least ``T`` people (for converters: at least ``T`` converters
   and ``T`` non-converters), or none is suppressed. Otherwise subtracting the released cells from
   the total would give a small cell back. A released cell of a group that falls short is suppressed
   too (the one whose hiding withholds the fewest rows' figures, the smallest of those), over every
   margin, until nothing changes;
3. a figure is withheld wherever a count it rests on is suppressed, in its own row or in its
   reference row (e.g. the control arm's row, which every effect is measured against): a rate times
   its count is a count of converters, and a released rate over a hidden count could give it back;
4. released counts are rounded half up to a multiple of ``b`` (the threshold is a multiple of ``b``,
   so no released count shows below ``T``);
5. rows whose ``floor`` count is below ``T`` are left out, and only declared columns leave: counts,
   figures and the columns declared ``keep`` (labels, model estimates); ``internal`` counts serve the
   rules and are dropped.

Suppressed counts and withheld figures are null, and the ``withheld`` column says per row which and
why (``"column: reason; column: reason"``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from uplift.errors import SchemaError
from uplift.specs.disclosure import DEFAULT_THRESHOLD, DisclosurePolicy, load_disclosure_policy

__all__ = [
    "DEFAULT_THRESHOLD",
    "WITHHELD",
    "DisclosurePolicy",
    "Figure",
    "Margin",
    "Reference",
    "Release",
    "disclose",
    "load_disclosure_policy",
    "release_count",
    "round_counts",
]

WITHHELD = "withheld"
"""The column of a released frame that lists, per row, the suppressed counts and withheld figures and why."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Margin(_Frozen):
    """Count columns whose cells add up, within each group of rows sharing ``by``, to a total someone may
    know: the group's suppressed cells must together hold at least the threshold."""

    name: str = Field(min_length=1, description="what the total is, for the reason column")
    cells: tuple[str, ...] = Field(min_length=1)
    by: tuple[str, ...] = ()


class Reference(_Frozen):
    """The row other rows' figures also rest on: within each group sharing ``by``, the row whose
    ``column`` equals ``value`` (e.g. the control arm's row of the same segment)."""

    column: str
    value: str
    by: tuple[str, ...] = ()


class Figure(_Frozen):
    """Figure columns (rates, effects, their errors) and the counts they rest on: ``rests_on`` in the
    same row, ``rests_on_reference`` in the row's reference row (:attr:`Release.reference`)."""

    columns: tuple[str, ...] = Field(min_length=1)
    rests_on: tuple[str, ...] = ()
    rests_on_reference: tuple[str, ...] = ()


class Release(_Frozen):
    """What the columns of one kind of frame are, for :func:`disclose`.

    Attributes
    ----------
    people : count columns of people.
    converters : count column of converters -> the people column of the same cell (its complement is
        that count minus this one).
    constant_within : count column -> key columns within which it has one value (e.g. the holdout's
        people of a segment, repeated on each of the segment's arm rows): suppressed on all those
        rows together, counted once in a margin grouped by those keys.
    figures : the figures and the counts each rests on.
    margins : the totals someone may know.
    reference : the reference row of :attr:`Figure.rests_on_reference`.
    keep : other columns released as they are (labels, model estimates), when present.
    internal : counts the rules need that are never released.
    floor : a people column; rows where it is below the threshold are left out altogether.
    """

    people: tuple[str, ...] = ()
    converters: dict[str, str] = Field(default_factory=dict)
    constant_within: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    figures: tuple[Figure, ...] = ()
    margins: tuple[Margin, ...] = ()
    reference: Reference | None = None
    keep: tuple[str, ...] = ()
    internal: tuple[str, ...] = ()
    floor: str | None = None

    @property
    def counts(self) -> tuple[str, ...]:
        return (*self.people, *self.converters)

    @model_validator(mode="after")
    def _consistent(self) -> Release:
        counts = set(self.counts)
        problems = []
        problems += [f"converters {c!r}: its people column {p!r} is not in people" for c, p in self.converters.items()
                     if p not in self.people]
        problems += [f"figure {f.columns}: {c!r} is not a count" for f in self.figures
                     for c in (*f.rests_on, *f.rests_on_reference) if c not in counts]
        problems += [f"figure {f.columns}: rests on a reference row, but no reference is declared"
                     for f in self.figures if f.rests_on_reference and self.reference is None]
        problems += [f"margin {m.name!r}: {c!r} is not a count" for m in self.margins for c in m.cells
                     if c not in counts]
        problems += [f"margin {m.name!r}: mixes counts of people and of converters" for m in self.margins
                     if 0 < sum(c in self.converters for c in m.cells) < len(m.cells)]
        problems += [f"constant_within {c!r}: not a count" for c in self.constant_within if c not in counts]
        problems += [f"internal {c!r}: not a count" for c in self.internal if c not in counts]
        if self.floor is not None and self.floor not in self.people:
            problems.append(f"floor {self.floor!r}: not a count of people")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def round_counts(values: np.ndarray, base: int) -> np.ndarray:
    """``values`` rounded half up to a multiple of ``base`` (floats; NaN stays NaN)."""
    values = np.asarray(values, dtype=float)
    return base * np.floor(values / base + 0.5)


def release_count(n: float, policy: DisclosurePolicy) -> int | None:
    """One count as it may be released: None below the threshold, else rounded to the policy's base."""
    if not np.isfinite(n) or n < policy.threshold:
        return None
    return int(round_counts(np.array([n]), policy.rounding_base)[0])


# -- the steps ----------------------------------------------------------------------------------
class _State:
    """Per count column: its values, which cells are hidden and why (reasons are per row)."""

    def __init__(self, frame: pd.DataFrame, release: Release) -> None:
        self.values = {c: frame[c].to_numpy(dtype=float) for c in release.counts}
        self.hidden = {c: np.zeros(len(frame), dtype=bool) for c in release.counts}
        self.reason = {c: np.full(len(frame), "", dtype=object) for c in release.counts}
        self.together = {  # rows that share one value of a constant column: hidden together
            c: _codes(frame, keys) for c, keys in release.constant_within.items()
        }

    def hide(self, column: str, rows: np.ndarray, reason: str) -> None:
        rows = np.asarray(rows, dtype=bool) & ~self.hidden[column]
        if column in self.together:
            rows = np.isin(self.together[column], self.together[column][rows])
            rows &= ~self.hidden[column]
        self.hidden[column] |= rows
        self.reason[column][rows] = reason

    def complement(self, column: str, release: Release) -> np.ndarray:
        """People of the cell who did not convert (for a converter column), else +inf."""
        people = release.converters.get(column)
        if people is None:
            return np.full(len(self.values[column]), np.inf)
        return self.values[people] - self.values[column]


def _codes(frame: pd.DataFrame, keys: tuple[str, ...]) -> np.ndarray:
    """Group number of each row over ``keys`` (all rows one group without keys)."""
    if not keys:
        return np.zeros(len(frame), dtype=np.int64)
    return frame.groupby(list(keys), sort=False, dropna=False).ngroup().to_numpy()


def _primary(state: _State, release: Release, threshold: int) -> None:
    """Counts below the threshold, and converter counts whose complement is below it."""
    for column in release.counts:
        v = state.values[column]
        small = ~(v >= threshold)  # NaN: unknown, so suppressed
        state.hide(column, small,
                   f"fewer than {threshold} {'converters' if column in release.converters else 'people'}")
        if column in release.converters:
            state.hide(column, ~(state.complement(column, release) >= threshold),
                       f"fewer than {threshold} people of the cell did not convert")


def _margin_units(frame: pd.DataFrame, state: _State, margin: Margin) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cells of ``margin``: per cell its column (index into ``margin.cells``), first row and group."""
    group = _codes(frame, margin.by)
    columns, rows = [], []
    for k, column in enumerate(margin.cells):
        if column in state.together:  # one cell per value of the constant column within the group
            key = pd.Series(list(zip(group, state.together[column], strict=True)))
            first = np.flatnonzero(~key.duplicated().to_numpy())
        else:
            first = np.arange(len(frame))
        columns.append(np.full(len(first), k))
        rows.append(first)
    column, row = np.concatenate(columns), np.concatenate(rows)
    return column, row, group[row]


def _reach(frame: pd.DataFrame, state: _State, release: Release, column: np.ndarray, row: np.ndarray,
           margin: Margin) -> np.ndarray:
    """Per cell of a margin, how many rows' figures hiding it withholds: the rows sharing a constant cell,
    the rows resting on a reference row's cell, else its own row."""
    reach = np.ones(len(row))
    for k, c in enumerate(margin.cells):
        at = column == k
        if c in state.together:
            sizes = np.bincount(state.together[c])
            reach[at] = sizes[state.together[c][row[at]]]
    if release.reference is not None:
        ref = release.reference
        group = _codes(frame, ref.by)
        is_ref = (frame[ref.column].astype(str) == ref.value).to_numpy()
        on_ref = is_ref[row]
        reach[on_ref] = np.maximum(reach[on_ref], np.bincount(group)[group[row[on_ref]]])
    return reach


def _protect_margin(frame: pd.DataFrame, state: _State, margin: Margin, release: Release, threshold: int) -> bool:
    """Suppress released cells of each group of ``margin`` whose suppressed cells hold fewer than
    ``threshold`` (people, or converters or non-converters), the cheapest first (:func:`_reach`, then the
    smallest); True when anything changed."""
    column, row, group = _margin_units(frame, state, margin)
    value, complement, hidden = (np.empty(len(row)), np.empty(len(row)), np.empty(len(row), dtype=bool))
    for k, c in enumerate(margin.cells):
        at = column == k
        value[at], hidden[at] = state.values[c][row[at]], state.hidden[c][row[at]]
        complement[at] = state.complement(c, release)[row[at]]
    reach = _reach(frame, state, release, column, row, margin)
    # an unknown count holds nobody for sure; a people cell has no complement to protect (+inf)
    value = np.nan_to_num(value, nan=0.0)
    complement = np.nan_to_num(complement, nan=0.0, posinf=np.inf)
    changed = False
    reason = f"hidden with a smaller cell of {margin.name}"
    order = np.argsort(group, kind="stable")
    for cells in np.split(order, np.flatnonzero(np.diff(group[order])) + 1):
        shut = hidden[cells].copy()
        while shut.any() and not shut.all():
            short_value = value[cells][shut].sum() < threshold
            short_complement = complement[cells][shut].sum() < threshold
            if not (short_value or short_complement):
                break
            measure = np.where(shut, np.inf, value[cells] if short_value else complement[cells])
            # the cell whose hiding withholds the fewest rows' figures, the smallest of those (the first of equals)
            pick = int(np.lexsort((measure, np.where(shut, np.inf, reach[cells])))[0])
            shut[pick] = True
            target = np.zeros(len(frame), dtype=bool)
            target[row[cells[pick]]] = True
            state.hide(margin.cells[column[cells[pick]]], target, reason)
            changed = True
    return changed


def _secondary(frame: pd.DataFrame, state: _State, release: Release, threshold: int) -> None:
    """Apply every margin until none changes anything (suppression only grows, so this ends)."""
    changed = bool(release.margins)
    while changed:
        changed = False
        for margin in release.margins:
            changed |= _protect_margin(frame, state, margin, release, threshold)


def _reference_rows(frame: pd.DataFrame, reference: Reference) -> np.ndarray:
    """Per row, the position of its reference row (-1 when its group has none)."""
    group = _codes(frame, reference.by)
    is_ref = (frame[reference.column].astype(str) == reference.value).to_numpy()
    first = pd.Series(np.flatnonzero(is_ref), index=group[is_ref]).groupby(level=0).first()
    return first.reindex(group).fillna(-1).to_numpy(dtype=np.int64)


def _withheld_figures(frame: pd.DataFrame, state: _State, release: Release) -> dict[str, np.ndarray]:
    """Per figure column, the reason it is withheld on each row ("" where it is released)."""
    ref = _reference_rows(frame, release.reference) if release.reference is not None else None
    out = {}
    for figure in release.figures:
        reason = np.full(len(frame), "", dtype=object)
        for column in figure.rests_on:
            why = "rests on " + column + " (" + state.reason[column].astype(str) + ")"
            reason = np.where((reason == "") & state.hidden[column], why, reason)
        for column in figure.rests_on_reference:
            at = np.maximum(ref, 0)
            where = f"of the {release.reference.column} {release.reference.value!r} row"
            why = np.where(ref >= 0, f"rests on {column} {where} (" + state.reason[column][at].astype(str) + ")",
                           f"has no {release.reference.column} {release.reference.value!r} row to rest on")
            hidden_ref = np.where(ref >= 0, state.hidden[column][at], True)
            reason = np.where((reason == "") & hidden_ref, why, reason)
        for column in figure.columns:
            shown = frame[column].notna().to_numpy()
            out[column] = np.where(shown, reason, "")
    return out


def _check(frame: pd.DataFrame, release: Release, source: str) -> None:
    needed = [*release.counts, *(c for f in release.figures for c in f.columns),
              *(c for m in release.margins for c in m.by),
              *(c for keys in release.constant_within.values() for c in keys)]
    if release.reference is not None:
        needed += [release.reference.column, *release.reference.by]
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise SchemaError(f"{source}: missing column(s) {missing} the disclosure rules need; columns "
                          f"are {list(frame.columns)}")
    for column in release.counts:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise SchemaError(f"{source}: column {column!r}: expected a count, got dtype {frame[column].dtype}")


def disclose(frame: pd.DataFrame, release: Release, policy: DisclosurePolicy, *, source: str = "frame") -> pd.DataFrame:
    """The releasable part of ``frame`` under ``policy`` (see the module docstring); ``frame`` is not changed.

    Returns
    -------
    DataFrame with the kept rows (index as in ``frame``), the released counts (nullable integers,
    rounded; null where suppressed), the figures (NaN where withheld), the ``keep`` columns present,
    and :data:`WITHHELD`. Internal and undeclared columns are left out.

    Raises
    ------
    SchemaError
        A column the rules need is missing, or a count column is not numeric.
    """
    _check(frame, release, source)
    threshold = policy.threshold
    state = _State(frame, release)
    _primary(state, release, threshold)
    _secondary(frame, state, release, threshold)
    figures = _withheld_figures(frame, state, release)
    reasons = [(c, state.reason[c]) for c in release.counts if c not in release.internal]
    reasons += [(c, figures[c]) for f in release.figures for c in f.columns]
    out = {}
    for column in frame.columns:
        if column in release.counts and column not in release.internal:
            rounded = round_counts(state.values[column], policy.rounding_base)
            out[column] = pd.array(np.where(state.hidden[column], np.nan, rounded), dtype="Float64").astype("Int64")
        elif column in figures:
            out[column] = _withhold(frame[column], figures[column] != "")
        elif column in release.keep:
            out[column] = frame[column].to_numpy()
    released = pd.DataFrame(out, index=frame.index)
    released[WITHHELD] = _reason_text(reasons, len(frame))
    if release.floor is not None:
        released = released[state.values[release.floor] >= threshold]
    return released


def _withhold(column: pd.Series, hidden: np.ndarray) -> np.ndarray:
    """``column``'s values with the ``hidden`` rows null: NaN for numbers, None for anything else (a
    verdict, a method's name, a flag)."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return np.where(hidden, np.nan, column.to_numpy(dtype=float))
    return np.where(hidden, None, column.to_numpy(dtype=object))


def _reason_text(reasons: list[tuple[str, np.ndarray]], n: int) -> np.ndarray:
    """Per row, ``"column: reason; column: reason"`` over the columns withheld on it."""
    text = np.full(n, "", dtype=object)
    for column, reason in reasons:
        entry = np.where(reason != "", column + ": " + reason.astype(str), "")
        text = np.where((text != "") & (entry != ""), text + "; " + entry, np.where(entry != "", entry, text))
    return text
