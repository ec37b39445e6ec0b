"""A training table's feature columns as one float32 matrix, encoded once for every fit.

The ordinal learners (LightGBM and the uplift forest) see their features as numbers: numeric columns as they are,
a categorical column as the position of its value among the sorted distinct values of the rows the model is
fitted on (:func:`uplift.modeling.preprocess.make_preprocessor`). :class:`FeatureMatrix` holds every row's
features encoded against the sorted values of the whole table; :meth:`FeatureMatrix.encoded` turns that into what
a model fitted on some of the rows sees (the positions among the values those rows hold, the others missing), so
fits on a matrix equal fits on the table's frame, value for value (tested), without the frame's copies: rows are
views where they are a contiguous range, and the matrix is used as it is when every value is present.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from uplift.data.trainingtable import FeatureColumn
from uplift.errors import DataError

__all__ = ["FeatureMatrix", "encode_frame", "encoder_order", "vocabulary_lookup"]


@dataclass(frozen=True)
class FeatureMatrix:
    """Feature values of a table's rows.

    ``values`` (rows x features, C-ordered, float32 unless built otherwise) in the ordinal encoder's column
    order (:attr:`columns`: the categorical features, then the numeric ones): numeric columns as numbers,
    categorical ones as the position of the value in ``vocabulary[column]`` (sorted), missing as NaN.
    ``features`` keeps the table's declared order (a model's own). ``spare`` columns after the features hold
    nothing yet: a learner that appends features of its own (the pooled learner's arm features) writes them there
    and reads ``values`` as it is, without a wider copy.
    """

    values: np.ndarray = field(repr=False)
    features: tuple[FeatureColumn, ...]
    vocabulary: dict[str, tuple[str, ...]] = field(repr=False)
    spare: int = 0

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.features) + self.spare:
            raise DataError(f"a feature matrix of {len(self.features)} feature(s) and {self.spare} spare column(s) "
                             f"has {len(self.features) + self.spare} columns, not shape {self.values.shape}")

    def __len__(self) -> int:
        return len(self.values)

    @property
    def columns(self) -> tuple[FeatureColumn, ...]:
        """The features in the order of ``values``' columns."""
        return encoder_order(self.features)

    def rows(self, rows: slice | np.ndarray) -> FeatureMatrix:
        """The matrix of some rows (positions): a view for a slice, a copy for positions."""
        values = self.values[rows] if isinstance(rows, slice) else np.take(self.values, rows, axis=0)
        return FeatureMatrix(values=values, features=self.features, vocabulary=self.vocabulary, spare=self.spare)

    def present(self) -> dict[str, tuple[tuple[str, ...], bool]]:
        """Per categorical column: the values its rows hold (sorted) and whether a row misses it."""
        out = {}
        for j, f in enumerate(self.columns):
            if f.kind != "categorical":
                continue
            column = self.values[:, j]
            missing = np.isnan(column)
            vocab = self.vocabulary[f.name]
            counts = np.bincount(column[~missing].astype(np.int64), minlength=len(vocab))
            out[f.name] = (tuple(v for v, c in zip(vocab, counts, strict=True) if c), bool(missing.any()))
        return out

    def encoded(self, known: dict[str, tuple[str, ...]], dtype: type = np.float32) -> np.ndarray:
        """The matrix a model whose encoder knows the values ``known`` (per categorical column, sorted) reads:
        positions among those values, unknown and missing values NaN, and the ``spare`` columns after them.
        ``values`` itself (no copy) when every column's known values are the whole vocabulary and ``dtype`` is its
        own."""
        remap = {f.name: vocabulary_lookup(self.vocabulary[f.name], known[f.name]) for f in self.features
                 if f.kind == "categorical" and tuple(known[f.name]) != self.vocabulary[f.name]}
        if not remap and self.values.dtype == dtype:
            return self.values
        out = np.array(self.values, dtype=dtype, order="C")
        for j, f in enumerate(self.columns):
            if f.name in remap:
                column = out[:, j]
                codes = np.where(np.isnan(column), len(remap[f.name]) - 1, column).astype(np.int64)
                out[:, j] = remap[f.name][codes]
        return out


def encoder_order(features: tuple[FeatureColumn, ...]) -> tuple[FeatureColumn, ...]:
    """The order the ordinal encoder writes its columns in: the categorical features, then the numeric ones."""
    return tuple(f for f in features if f.kind == "categorical") + tuple(f for f in features if f.kind != "categorical")


def vocabulary_lookup(vocabulary: tuple[str, ...], known: tuple[str, ...]) -> np.ndarray:
    """Per position in ``vocabulary`` (and a trailing one for missing): the position in ``known``, else NaN."""
    where = {v: float(i) for i, v in enumerate(known)}
    return np.array([where.get(v, np.nan) for v in vocabulary] + [np.nan], dtype=np.float64)


def encode_frame(frame: pd.DataFrame, features: tuple[FeatureColumn, ...], *,
                 vocabulary: dict[str, tuple[str, ...]] | None = None, dtype: type = np.float32,
                 spare: int = 0) -> FeatureMatrix:
    """A checked feature frame (:func:`~uplift.modeling.preprocess.check_feature_frame`) as a matrix: each
    categorical column against ``vocabulary`` (default: its sorted distinct values); ``spare`` columns after the
    features."""
    vocabulary = dict(vocabulary or {})
    values = np.empty((len(frame), len(features) + spare), dtype=dtype)
    for j, f in enumerate(encoder_order(tuple(features))):
        column = frame[f.name]
        if f.kind == "numeric":
            values[:, j] = column.to_numpy(dtype=np.float64, na_value=np.nan)
            continue
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        known = vocabulary.setdefault(f.name, tuple(sorted(str(u) for u in uniques.tolist())))
        values[:, j] = vocabulary_lookup(tuple(str(u) for u in uniques.tolist()), known)[codes]
    return FeatureMatrix(values=values, features=tuple(features), vocabulary=vocabulary, spare=spare)
