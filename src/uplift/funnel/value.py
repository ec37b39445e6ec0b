"""The value segment table: per (segment, arm) the effect on a plan's value and on each of its events.

The value of a row is ``Y_v = sum_e w_e label_e`` (the policy's weights, each event labelled in its own
window). Its effect per segment and arm is estimated the way a single event's is
(:func:`uplift.segments.build_segment_table`: the calibrated model, each cell's interval with the errors
cells share), on ``Y_v`` itself with the out-of-sample predictions ``sum_e w_e pred_e``: the observed
value differences the calibration and the intervals rest on carry the covariance between the events of
the same people (a person who applies has registered), which adding the events' own intervals would
leave out. The estimator runs on ``Y_v / W`` (``W = sum_e w_e``), a number between 0 and 1 like a
conversion, so the binomial variance floors it uses stay upper bounds; every figure is scaled back by
``W``.

Every table is made on the same rows: those whose windows are observed for every event (the events'
censored rows left out, :mod:`uplift.funnel.censoring`). The value's estimator reads the cross-fitting
folds of the first event (its predictions of the other events come from models cross-fitted on their own
folds, each still out of sample for the row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from uplift.allocation.effects import shared_error_columns
from uplift.errors import DataError
from uplift.segments import build_segment_table
from uplift.segments.composition import PriorityGroups, with_composition
from uplift.specs.planning import ValueEvent
from uplift.specs.segments import SegmentSpec
from uplift.trainingtable import TrainingTable

__all__ = ["OUTCOME_COLUMN", "VALUE", "EventEstimates", "funnel_segment_table", "value_outcome", "describe_value"]

VALUE = "value"
"""The ``outcome`` of the value's rows in a funnel segment table."""

OUTCOME_COLUMN = "outcome"
"""The column of a funnel segment table naming what a row's effect is on: ``value`` or a funnel event."""

_SCALED = ("effect", "effect_sd", "lo", "hi", "observed", "observed_se", "model", "persona_mix", "base_rate")
"""Columns in units of the outcome (scaled back from ``Y_v / W``), besides the loadings on shared errors."""

_KEYS = ["person_id", "wave"]


@dataclass(frozen=True)
class EventEstimates:
    """One event's out-of-sample predictions and the rows they belong to (same order)."""

    event: ValueEvent
    rows: TrainingTable
    predictions: pd.DataFrame
    folds: np.ndarray | None = None
    heldout_fold: int | None = None

    @classmethod
    def from_report(cls, event: ValueEvent, report) -> EventEstimates:
        """From a :class:`~uplift.modeling.validation.ValidationReport` of the event's model."""
        rows, predictions = report.out_of_sample()
        folds, heldout = report.out_of_sample_folds()
        return cls(event=event, rows=rows, predictions=predictions, folds=folds, heldout_fold=heldout)

    def aligned(self, keys: pd.DataFrame) -> EventEstimates:
        """The same estimates on the rows ``keys`` (person_id, wave), in that order."""
        index = pd.MultiIndex.from_frame(self.rows.frame[_KEYS])
        at = index.get_indexer(pd.MultiIndex.from_frame(keys[_KEYS]))
        if (at < 0).any():
            raise DataError(f"{self.event.event}: {int((at < 0).sum())} row(s) without an estimate")
        return EventEstimates(
            event=self.event, rows=self.rows.subset(at),
            predictions=self.predictions.iloc[at].reset_index(drop=True),
            folds=None if self.folds is None else np.asarray(self.folds)[at], heldout_fold=self.heldout_fold)


def describe_value(events: Sequence[ValueEvent]) -> str:
    """E.g. ``value = 1 x registration (28 days) + 5 x application (70 days)``."""
    return "value = " + " + ".join(f"{e.weight:g} x {e.event} ({e.attribution_days} days)" for e in events)


def value_outcome(labels: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Per row, ``sum_e weights[e] * labels[e]``."""
    return sum(float(weights[e]) * np.asarray(y, dtype=float) for e, y in labels.items())


def _common_keys(estimates: Sequence[EventEstimates]) -> pd.DataFrame:
    """The (person, wave) rows every event has, in the first event's order."""
    keys = estimates[0].rows.frame[_KEYS].reset_index(drop=True)
    keep = np.ones(len(keys), dtype=bool)
    index = pd.MultiIndex.from_frame(keys)
    for est in estimates[1:]:
        keep &= index.isin(pd.MultiIndex.from_frame(est.rows.frame[_KEYS]))
    if not keep.any():
        raise DataError("no row has every event of the value observed to the end of its window")
    return keys[keep].reset_index(drop=True)


def _value_rows(aligned: Sequence[EventEstimates], total_weight: float) -> tuple[TrainingTable, pd.DataFrame]:
    """The rows with ``Y_v / W`` as their outcome and the predictions ``sum_e w_e pred_e / W``."""
    first = aligned[0].rows
    y = value_outcome({a.event.event: a.rows.frame["outcome"].to_numpy() for a in aligned},
                      {a.event.event: a.event.weight for a in aligned})
    frame = first.frame.copy()
    frame["outcome"] = y / total_weight
    rows = TrainingTable(frame=frame, features=first.features, arms=first.arms, control=first.control,
                         outcome=describe_value([a.event for a in aligned]), source=first.source,
                         outcome_kind="continuous")
    predictions = sum(a.event.weight * a.predictions.to_numpy(dtype=float) for a in aligned) / total_weight
    return rows, pd.DataFrame(predictions, columns=aligned[0].predictions.columns)


def _scaled(table: pd.DataFrame, factor: float) -> pd.DataFrame:
    out = table.copy()
    columns = [c for c in _SCALED if c in out.columns] + shared_error_columns(out)
    out[columns] = out[columns].astype(float) * factor
    return out


def funnel_segment_table(estimates: Sequence[EventEstimates], spec: SegmentSpec,
                         groups: PriorityGroups | None = None) -> pd.DataFrame:
    """The value's segment table stacked on each event's, all on the rows every event observes.

    Columns: those of :func:`~uplift.segments.build_segment_table`, plus :data:`OUTCOME_COLUMN`
    (``value`` or the event), ``weight`` and ``attribution_days`` (empty on the value's rows), and with
    ``groups`` each segment's share of every priority group (``group__<name>``,
    :func:`uplift.segments.composition.with_composition`, counted on those rows). The value's rows come
    first; the table's ``attrs`` are the value table's (the stages its estimator kept and the calibration
    of a plan's promise). The estimates' events must differ.
    """
    if not estimates:
        raise DataError("a value needs at least one event's estimates")
    events = [e.event.event for e in estimates]
    if len(set(events)) < len(events):
        raise DataError(f"each event's estimates once; got {events}")
    keys = _common_keys(estimates)
    aligned = [e.aligned(keys) for e in estimates]
    total = float(sum(e.event.weight for e in estimates))
    rows, predictions = _value_rows(aligned, total)
    first = aligned[0]
    value = _scaled(build_segment_table(rows, predictions, spec, folds=first.folds,
                                        heldout_fold=first.heldout_fold), total)
    value[OUTCOME_COLUMN] = VALUE
    value["weight"] = np.nan
    value["attribution_days"] = np.nan
    parts = [value]
    for a in aligned:
        table = build_segment_table(a.rows, a.predictions, spec, folds=a.folds, heldout_fold=a.heldout_fold)
        table[OUTCOME_COLUMN] = a.event.event
        table["weight"] = a.event.weight
        table["attribution_days"] = float(a.event.attribution_days)
        parts.append(table)
    out = pd.concat(parts, ignore_index=True)
    out.attrs = dict(value.attrs)
    return out if groups is None else with_composition(out, rows.frame, spec, groups)
