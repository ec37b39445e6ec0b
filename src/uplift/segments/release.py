"""What of the segment table leaves the product: the planner's table and the released table.

The segment table (:func:`~uplift.segments.table.build_segment_table`) holds two kinds of figures.

- *Model estimates* of a segment: the calibrated ``effect``, its ``effect_sd`` and ``lo`` / ``hi``,
  the loadings of the errors it shares with other cells and its additive parts. They pool the
  segment's people with every other segment's (the learner, the calibration, the arm levels, the
  additive fit and the rank-1 messages x channels table all span the cells; a small cell's own
  observation gets little weight), so they are not counts, and they are released for every segment
  of at least the threshold (segments are merged up to the anonymity floor before that).
- *Raw figures* of the cell's own people: ``base_rate`` (the holdout's conversion rate in the
  segment), ``observed`` and ``observed_se`` (the randomised difference), the row counts, and the
  model's raw mean and persona mix, which together with the effect and its loadings would let the
  observed difference be solved for.

The planner's table (:func:`planner_table`) has the model estimates only: the run keeps it as its
segment table, and the service and ``uplift plan`` plan from it (the segment ``size`` stays exact
there: the planner reaches people, and no segment is below the floor). The released table
(:func:`released_segments`, what ``GET /segments`` and ``uplift segments`` show) adds the raw
figures under the disclosure policy (:mod:`uplift.disclosure`): ``size``, ``people_treated`` and
``people_control`` suppressed below the threshold or rounded; each priority group's share blanked
where it rests on fewer than the threshold's people in the group or outside it, else to a whole percent; ``base_rate``
withheld unless the
segment's holdout has at least the threshold of people, of converters and of people who did not
convert, ``observed`` and ``observed_se`` unless the arm's cell has too; suppressed cells protected
over the segment's arms and over each arm's segments of a kind.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.allocation.effects import PER_ARM_PREFIXES, group_columns
from uplift.disclosure import WITHHELD, Figure, Margin, Release, disclose, round_counts
from uplift.segments.additive import PART_PREFIX
from uplift.segments.composition import released_composition
from uplift.segments.table import SEGMENT_COLUMNS
from uplift.segments.tallies import TALLY_COLUMNS
from uplift.specs.disclosure import DisclosurePolicy

__all__ = [
    "RAW_COLUMNS",
    "RELEASED_COLUMNS",
    "RELEASED_COUNTS",
    "attribute_columns",
    "planner_table",
    "released_segments",
    "released_shares",
    "rerounded",
    "segment_release",
    "without_raw_figures",
]

RAW_COLUMNS: tuple[str, ...] = (
    "base_rate", "observed", "observed_se", "model", "persona_mix", "rows", "n_treated", "n_control", *TALLY_COLUMNS,
)
"""The segment table's figures about each cell's own people: never in the planner's table."""

RAW_FIGURES: tuple[str, ...] = ("base_rate", "observed", "observed_se")
RELEASED_COUNTS: tuple[str, ...] = ("size", "people_treated", "people_control")

RELEASED_COLUMNS: tuple[str, ...] = (
    "segment", "kind", "size", "arm", "message", "channel", "base_rate", "effect", "effect_sd", "lo", "hi",
    "observed", "observed_se", "people_treated", "people_control",
)
"""Columns of the released table, before the segment attributes and :data:`~uplift.disclosure.WITHHELD`."""

_CELLS = ("people_treated", "converters_treated", "people_control", "converters_control")


def segment_release(attributes: tuple[str, ...] = ()) -> Release:
    """The disclosure declaration of the segment table (``attributes``: its segment attribute columns)."""
    return Release(
        people=RELEASED_COUNTS,
        converters={"converters_treated": "people_treated", "converters_control": "people_control"},
        constant_within={c: ("segment",) for c in ("size", "people_control", "converters_control")},
        figures=(
            Figure(columns=("base_rate",), rests_on=("people_control", "converters_control")),
            Figure(columns=("observed", "observed_se"), rests_on=_CELLS),
        ),
        margins=(
            Margin(name="the segment's people over its arms and holdout", by=("kind", "segment"),
                   cells=("people_treated", "people_control")),
            Margin(name="the arm's people over the segments", by=("kind", "arm"), cells=("people_treated",)),
            Margin(name="the holdout's people over the segments", by=("kind", "arm"), cells=("people_control",)),
            Margin(name="the arm's converters over the segments", by=("kind", "arm"), cells=("converters_treated",)),
            Margin(name="the holdout's converters over the segments", by=("kind", "arm"),
                   cells=("converters_control",)),
        ),
        keep=("segment", "kind", "arm", "message", "channel", "effect", "effect_sd", "lo", "hi", *attributes),
        internal=("converters_treated", "converters_control"),
        floor="size",
    )


def attribute_columns(table: pd.DataFrame) -> tuple[str, ...]:
    """The segment attribute columns of a segment table (``age_band``, ``persona``, ...): what is
    neither a table column, nor a loading, nor an additive part."""
    known = set(SEGMENT_COLUMNS) | set(RELEASED_COLUMNS) | {WITHHELD}
    return tuple(c for c in table.columns
                 if c not in known and not str(c).startswith((*PER_ARM_PREFIXES, PART_PREFIX)))


def planner_table(segments: pd.DataFrame) -> pd.DataFrame:
    """The segment table without its raw figures (:data:`RAW_COLUMNS`): what the planner reads (a new frame)."""
    return segments.drop(columns=[c for c in RAW_COLUMNS if c in segments.columns])


def released_segments(segments: pd.DataFrame, policy: DisclosurePolicy) -> pd.DataFrame:
    """The segment table as it may leave the product under ``policy`` (see the module docstring).

    Parameters
    ----------
    segments : the segment table with its tallies (:func:`~uplift.segments.table.build_segment_table`).

    Returns
    -------
    DataFrame, columns :data:`RELEASED_COLUMNS`, the segment attributes and ``withheld``; no segment
    below the threshold. It keeps the table's ``attrs`` (the stages the estimator kept and their
    held-out evidence: losses over whole folds, no figure of a cell's own people).
    """
    segments = released_shares(segments, policy)
    attributes = attribute_columns(segments)
    out = disclose(segments, segment_release(attributes), policy, source="segment table")
    return _with_attrs(out[[*RELEASED_COLUMNS, *attributes, WITHHELD]].reset_index(drop=True), segments)


def _with_attrs(out: pd.DataFrame, source: pd.DataFrame) -> pd.DataFrame:
    out.attrs = dict(source.attrs)
    return out


def released_shares(segments: pd.DataFrame, policy: DisclosurePolicy) -> pd.DataFrame:
    """``segments`` with each priority group's share (``group__<name>``) as it may be released: blank
    where it rests on fewer than the threshold's people in the group or outside it (counted on the exact
    ``size``), else rounded to a whole percent, so that a share times a size is no exact count."""
    out = released_composition(segments, policy.threshold)
    for column in group_columns(out).values():
        out[column] = out[column].round(2)
    return out


def without_raw_figures(planner: pd.DataFrame, policy: DisclosurePolicy, why: str) -> pd.DataFrame:
    """A released table from the planner's table alone: the model estimates of the segments of at least
    the threshold, sizes rounded, every raw figure withheld for reason ``why``."""
    planner = released_shares(planner, policy)
    attributes = attribute_columns(planner)
    size = planner["size"].to_numpy(dtype=float)
    out = planner.loc[size >= policy.threshold, ["segment", "kind", "size", "arm", "message", "channel",
                                                  "effect", "effect_sd", "lo", "hi", *attributes]].copy()
    out["size"] = pd.array(round_counts(out["size"].to_numpy(dtype=float), policy.rounding_base), dtype="Int64")
    for column in RAW_FIGURES:
        out[column] = np.nan
    for column in ("people_treated", "people_control"):
        out[column] = pd.array([pd.NA] * len(out), dtype="Int64")
    out[WITHHELD] = f"{', '.join((*RAW_FIGURES, 'people_treated', 'people_control'))}: {why}"
    return _with_attrs(out[[*RELEASED_COLUMNS, *attributes, WITHHELD]].reset_index(drop=True), planner)


def rerounded(released: pd.DataFrame, policy: DisclosurePolicy) -> pd.DataFrame:
    """``released`` with its counts rounded to ``policy``'s base (for a release made under a finer base)."""
    out = released.copy()
    for column in RELEASED_COUNTS:
        values = round_counts(out[column].astype("Float64").to_numpy(dtype=float, na_value=np.nan),
                              policy.rounding_base)
        out[column] = pd.array(values, dtype="Float64").astype("Int64")
    return _with_attrs(out, released)
