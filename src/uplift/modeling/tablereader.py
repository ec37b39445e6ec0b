"""A saved training table read for training with bounded memory: the feature columns straight into one float32
:class:`~uplift.modeling.featurematrix.FeatureMatrix`, the other columns a model and its evaluation read into a
lean frame, one column at a time (the reader holds one column of the file besides what it returns).

The rows come in the order :func:`~uplift.modeling.validation.validate_model` splits them: the training rows
first, then the held-out ones (each in the file's order), so the held-out split is two ranges of the matrix and
the final model is fitted on a view of it. ``validate_model(spec, table, matrix=matrix)`` then gives what
``validate_model(spec, TrainingTable.load(path))`` gives (tested).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from uplift.data.tableio import read_parquet_metadata
from uplift.data.trainingtable import CLUSTER_COLUMN, PROPENSITY_PREFIX, FeatureColumn, TrainingTable
from uplift.errors import SchemaError
from uplift.modeling.featurematrix import FeatureMatrix, encoder_order, vocabulary_lookup
from uplift.modeling.learnerkinds import learner_kind
from uplift.modeling.preprocess import check_feature_frame
from uplift.modeling.validation import heldout_mask
from uplift.specs.model import ModelSpec

__all__ = ["read_for_training", "read_heldout", "read_structure"]

_META_KEY = "uplift.training_table"


def read_structure(path: str | Path) -> dict:
    """The structure a saved training table declares in its metadata (``features``, ``arms``, ``control``,
    ``outcome``), without reading its rows."""
    path = Path(path)
    meta = read_parquet_metadata(path).get(_META_KEY)
    if meta is None:
        raise SchemaError(f"{path}: not a training table (no {_META_KEY!r} metadata); build it with `uplift features`")
    return json.loads(meta)


def read_heldout(path: str | Path, spec: ModelSpec, *, batch_rows: int = 250_000) -> TrainingTable:
    """Every column of the rows ``spec``'s split holds out, in the file's order: what
    ``TrainingTable.load(path)`` gives for those rows, reading the file in batches of ``batch_rows`` (memory: the
    held-out rows and one batch)."""
    path = Path(path)
    m = read_structure(path)
    file = pq.ParquetFile(path)
    key = CLUSTER_COLUMN if CLUSTER_COLUMN in file.schema_arrow.names else "person_id"
    parts = []
    for batch in file.iter_batches(batch_size=batch_rows):
        keys = batch.column(batch.schema.get_field_index(key)).to_pandas()
        parts.append(batch.filter(pa.array(heldout_mask(keys, spec.cv.test_share, spec.cv.seed))))
    rows = pa.Table.from_batches(parts, schema=file.schema_arrow)
    del parts
    frame = rows.to_pandas().reset_index(drop=True)
    del rows
    pa.default_memory_pool().release_unused()  # the rows are pandas' now: Arrow's pool gives its pages back
    return TrainingTable(frame=frame, features=tuple(FeatureColumn(n, k) for n, k in m["features"]),
                         arms=tuple(m["arms"]), control=m["control"], outcome=m["outcome"], source=str(path))


def read_for_training(path: str | Path, spec: ModelSpec, *, keep: Iterable[str] = (),
                      dtype: type = np.float32) -> tuple[TrainingTable, FeatureMatrix]:
    """The table at ``path`` as a lean :class:`TrainingTable` (keys, arm as a category, outcome, propensities (as
    categories of their float values: :func:`~uplift.modeling.validation.validate_model` makes those of the rows it
    evaluates on plain floats again),
    ``cluster`` when present, and the columns in ``keep`` the file has, e.g. what the segment table reads; no
    feature columns) and the :class:`FeatureMatrix` of its features, rows training-first for ``spec``'s split, with
    the spare columns ``spec``'s learner writes its own features into (the pooled learner's arm features: its fit
    then reads the matrix itself)."""
    path = Path(path)
    m = read_structure(path)
    features = tuple(FeatureColumn(n, k) for n, k in m["features"])
    names = set(pq.read_schema(path).names)
    key = CLUSTER_COLUMN if CLUSTER_COLUMN in names else "person_id"
    keys = pq.read_table(path, columns=[key]).column(0).to_pandas()
    is_test = heldout_mask(keys, spec.cv.test_share, spec.cv.seed)
    del keys
    order = np.concatenate([np.flatnonzero(~is_test), np.flatnonzero(is_test)])
    lean = ["person_id", "wave", "arm", "outcome", *(f"{PROPENSITY_PREFIX}{a}" for a in m["arms"])]
    lean += [c for c in (CLUSTER_COLUMN, *keep) if c in names and c not in lean]
    frame = pd.DataFrame({c: _column(path, c, order) for c in lean}, copy=False)  # no consolidating copy
    table = TrainingTable(frame=frame, features=(), arms=tuple(m["arms"]), control=m["control"],
                          outcome=m["outcome"], source=str(path))
    matrix = _matrix(path, features, order, dtype, spare=learner_kind(spec).spare_columns)
    pa.default_memory_pool().release_unused()  # the columns read are numpy's now: Arrow's pool gives its pages back
    return table, matrix


def _column(path: Path, name: str, order: np.ndarray) -> pd.Series:
    """One column in ``order``; text and the design probabilities as categories (a code per row and its values
    once: a wave's design holds a few probabilities per arm)."""
    column = pq.read_table(path, columns=[name]).column(0)
    text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    if text or (name.startswith(PROPENSITY_PREFIX) and pa.types.is_floating(column.type)):
        column = column.dictionary_encode()
    values = column.to_pandas()
    return values.take(order).reset_index(drop=True)


def _matrix(path: Path, features: tuple[FeatureColumn, ...], order: np.ndarray, dtype: type, *,
            spare: int) -> FeatureMatrix:
    values = np.empty((len(order), len(features) + spare), dtype=dtype)
    values[:, len(features):] = np.nan  # free until a learner writes its own features there
    vocabulary: dict[str, tuple[str, ...]] = {}
    for j, f in enumerate(encoder_order(features)):
        column = pq.read_table(path, columns=[f.name]).column(0)
        if f.kind == "numeric":
            checked = check_feature_frame(column.to_pandas().to_frame(f.name), (f,), source=str(path))
            values[:, j] = checked[f.name].to_numpy()[order]
            continue
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            cat = column.dictionary_encode().to_pandas()
        else:  # other types: their text as the in-memory encoder sees it
            text = check_feature_frame(column.to_pandas().to_frame(f.name), (f,), source=str(path))[f.name]
            cat = text.astype("category")
        categories = tuple(str(c) for c in cat.cat.categories.tolist())
        vocabulary[f.name] = tuple(sorted(categories))
        codes = cat.cat.codes.to_numpy()  # -1: missing, which the lookup's trailing NaN takes
        values[:, j] = vocabulary_lookup(categories, vocabulary[f.name])[codes[order]]
    return FeatureMatrix(values=values, features=features, vocabulary=vocabulary, spare=spare)
