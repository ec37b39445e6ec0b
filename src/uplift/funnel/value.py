"""The value segment table: per (segment, arm) the effect on a plan's value and on each of its events.

Each event's effects are estimated by its own model and calibrated on its own randomised differences
(:func:`uplift.segments.build_segment_table`), every event on the same rows: those whose windows are observed
for every event (the events' censored rows left out, :mod:`uplift.funnel.censoring`). The value's effect of a
cell is ``sum_e w_e tau_e``. Its error is ``sum_e w_e err_e``, and the events' errors of a cell are taken as
moving together: the value's own error is ``sum_e w_e own_e`` and its loading on each shared error (the
calibration's, an arm level's, a persona effect's, ...) ``sum_e w_e load_e``. For positively correlated errors
(a person who applies has registered, and the events' calibrations rest on the same people) this is the widest
the value's interval can be, a bound that needs no estimate of the covariance; were the events' errors
independent it would be at most ``sqrt(number of events)`` times too wide.

The value could instead be estimated directly on each row's value ``Y_v = sum_e w_e label_e`` with the
predictions ``sum_e w_e pred_e``. On a simulated region (40,000 people, 4 waves, the four events of
``serve/policy_funnel.yaml``, seed 7) that estimator followed the cells' true value less closely (correlation
0.16 against 0.38 for the weighted sum), and the plan made on it at EUR 20,000 bought 141 units of true value
(promising 336) where the plan on the weighted sum bought 216 (promising 153); its intervals were wider too
(median sd per contact 0.019 against 0.0077, both covering the cells' true values more often than their 80%).
A few course starts, weighing 10 each, dominate a cell's observed difference in value, and the calibration
cannot tell them from signal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from uplift.allocation.effects import own_sd, shared_error_columns
from uplift.data.trainingtable import TrainingTable
from uplift.errors import DataError
from uplift.segments import build_segment_table
from uplift.segments.composition import PriorityGroups, with_composition
from uplift.specs.planning import ValueEvent
from uplift.specs.segments import SegmentSpec

__all__ = ["OUTCOME_COLUMN", "VALUE", "EventEstimates", "funnel_segment_table", "value_rows", "describe_value"]

VALUE = "value"
"""The ``outcome`` of the value's rows in a funnel segment table."""

OUTCOME_COLUMN = "outcome"
"""The column of a funnel segment table naming what a row's effect is on: ``value`` or a funnel event."""

_SUMMED = ("effect", "observed", "model", "base_rate")
"""Columns of the value's rows that are the weighted sums of the events' (the observed differences and the
base rates exactly so: a randomised difference is linear in the outcome)."""

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


def value_rows(events: Sequence[tuple[ValueEvent, pd.DataFrame]], interval: float) -> pd.DataFrame:
    """The value's rows from each event's segment table (the same (segment, arm) cells in each).

    ``effect`` is ``sum_e w_e effect_e``; the own error and every loading on a shared error are summed with
    the weights, ``effect_sd`` is their whole and ``lo`` / ``hi`` its central ``interval``; ``observed``,
    ``model`` and ``base_rate`` are weighted sums too; the other columns are the first event's (size, rows,
    counts of people, attributes, parts: every event's table is made on the same rows).

    Raises
    ------
    DataError
        The events' tables do not hold the same (segment, arm) cells.
    """
    keys = ["segment", "arm"]
    columns = list(events[0][1].columns)
    first = events[0][1].set_index(keys)
    out = first.copy()
    loads = sorted({c for _, t in events for c in shared_error_columns(t)})
    own = np.zeros(len(out))
    summed = {c: np.zeros(len(out)) for c in (*_SUMMED, *loads)}
    for event, table in events:
        t = table.set_index(keys)
        if len(t) != len(first) or not t.index.isin(first.index).all():
            raise DataError(f"{event.event}: its segment table holds other (segment, arm) cells than "
                            f"{events[0][0].event}'s; expected tables made on the same rows")
        t = t.reindex(first.index)
        shared = t[shared_error_columns(t)].fillna(0.0).to_numpy(float)  # absent: no loading on that error
        own += event.weight * own_sd(t["effect_sd"].to_numpy(float), shared)
        for c in summed:
            if c in t.columns:
                summed[c] += event.weight * t[c].fillna(0.0).to_numpy(float)
    for c, values in summed.items():
        out[c] = values
    out = out.assign(**{c: np.nan for c in ("persona_mix", "observed_se") if c in out.columns})
    out["effect_sd"] = np.sqrt(own**2 + np.sum(out[loads].to_numpy(float) ** 2, axis=1))
    z = float(norm.ppf(0.5 + interval / 2))
    out["lo"] = out["effect"] - z * out["effect_sd"]
    out["hi"] = out["effect"] + z * out["effect_sd"]
    return out.reset_index()[columns + [c for c in ("lo", "hi", *loads) if c not in columns]]


def _event_table(a: EventEstimates, spec: SegmentSpec) -> pd.DataFrame:
    table = build_segment_table(a.rows, a.predictions, spec, folds=a.folds, heldout_fold=a.heldout_fold)
    table[OUTCOME_COLUMN] = a.event.event
    table["weight"] = a.event.weight
    table["attribution_days"] = float(a.event.attribution_days)
    return table


def funnel_segment_table(estimates: Sequence[EventEstimates], spec: SegmentSpec,
                         groups: PriorityGroups | None = None) -> pd.DataFrame:
    """The value's rows (:func:`value_rows`) stacked on each event's segment table, all on the rows every
    event observes.

    Columns: those of :func:`~uplift.segments.build_segment_table`, plus :data:`OUTCOME_COLUMN` (``value``
    or the event), ``weight`` and ``attribution_days`` (empty on the value's rows), and with ``groups`` each
    segment's share of every priority group (``group__<name>``,
    :func:`uplift.segments.composition.with_composition`, counted on those rows). The value's rows come
    first. The table carries no ``attrs``: each event's stage choice and promise calibration are its own, so
    a plan on value reports its estimates as they are. The estimates' events must differ.
    """
    if not estimates:
        raise DataError("a value needs at least one event's estimates")
    events = [e.event.event for e in estimates]
    if len(set(events)) < len(events):
        raise DataError(f"each event's estimates once; got {events}")
    aligned = [e.aligned(_common_keys(estimates)) for e in estimates]
    tables = [(a.event, _event_table(a, spec)) for a in aligned]
    value = value_rows(tables, spec.interval).assign(**{OUTCOME_COLUMN: VALUE, "weight": np.nan,
                                                          "attribution_days": np.nan})
    out = pd.concat([value, *(t for _, t in tables)], ignore_index=True)
    out.attrs = {}
    return out if groups is None else with_composition(out, aligned[0].rows.frame, spec, groups)
