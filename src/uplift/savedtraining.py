"""A model spec validated on a training table, in memory or saved as Parquet (what ``uplift features`` writes).

A saved table is read for the spec (:func:`uplift.modeling.tablereader.read_for_training`: the features as one
float32 matrix, the other columns the model, its evaluation, the segment tables and the priority groups read as
a lean frame) when its learner reads ordinal features; memory is then bounded by the matrix, not by the table's
frame. What is logged is what the frame gives: the held-out rows with every column (the gate scores the champion
on them, the logged model's input example comes from them), the table's digest, and the same report (tested).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from uplift.data.trainingtable import TrainingTable, file_digest
from uplift.modeling.learnerkinds import learner_kind
from uplift.modeling.tablereader import read_for_training, read_heldout, read_structure
from uplift.modeling.validation import ValidationReport, validate_model
from uplift.segments import columns_read
from uplift.specs.groups import RULE_COLUMNS
from uplift.specs.model import ModelSpec
from uplift.specs.segments import SegmentSpec

__all__ = ["Validated", "validate_on", "lean_columns"]

Progress = Callable[[str], None]
Prepare = Callable[[TrainingTable], TrainingTable]


@dataclass(frozen=True)
class Validated:
    """A spec's validation and what its run logs."""

    report: ValidationReport
    """As :func:`~uplift.modeling.validation.validate_model` returns it (its tables lean for a saved table): what
    the segment tables and the truth checks read."""
    table: TrainingTable
    """The rows validated on (a lean frame for a saved table)."""
    logged: ValidationReport
    """The report the run logs: ``report`` with the held-out rows' every column."""
    digest: str
    """The table's digest (:meth:`TrainingTable.digest`)."""


def lean_columns(path: str | Path, segment_spec: SegmentSpec) -> tuple[str, ...]:
    """The columns of the table at ``path`` besides its features that a training run reads: every column that is
    not a feature (keys, times, costs, truth keys), and the segment tables' and priority groups' attributes."""
    features = {name for name, _ in read_structure(path)["features"]}
    names = pq.read_schema(path).names
    wanted = dict.fromkeys([*(c for c in names if c not in features), *columns_read(segment_spec),
                            *RULE_COLUMNS.values()])
    return tuple(c for c in wanted if c in names)


def validate_on(spec: ModelSpec, source: TrainingTable | str | Path, *, segment_spec: SegmentSpec,
                prepare: Prepare = lambda table: table, progress: Progress | None = None) -> Validated:
    """Validate ``spec`` on ``source``: a table in memory, or the path of a saved one (read for the spec when its
    learner reads ordinal features, else loaded whole). ``prepare`` completes the table before validation (e.g.
    the campaign's economics)."""
    if isinstance(source, TrainingTable):
        table = prepare(source)
        report = validate_model(spec, table, progress=progress)
        return Validated(report, table, report, table.digest())
    path = Path(source)
    if learner_kind(spec).encoding != "ordinal":
        return validate_on(spec, TrainingTable.load(path), segment_spec=segment_spec, prepare=prepare,
                           progress=progress)
    if progress:
        progress(f"reading {path.name}")
    lean, matrix = read_for_training(path, spec, keep=lean_columns(path, segment_spec))
    table = prepare(lean)
    report = validate_model(spec, table, progress=progress, matrix=matrix)
    del matrix
    heldout = read_heldout(path, spec)
    heldout = dataclasses.replace(heldout, economics=table.economics, outcome_kind=table.outcome_kind)
    return Validated(report, table, dataclasses.replace(report, test=heldout), file_digest(path))
