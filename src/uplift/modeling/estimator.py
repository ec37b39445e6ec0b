"""The multi-treatment uplift estimator: every arm against the control at once, labelled by arm."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from uplift.data.trainingtable import FeatureColumn, TrainingTable
from uplift.errors import DataError
from uplift.modeling.featurematrix import FeatureMatrix
from uplift.modeling.ipw import hajek_mean, own_propensity
from uplift.modeling.learnerkinds import LearnerKind, learner_kind
from uplift.modeling.preprocess import (
    check_feature_frame,
    distinct_rows,
    encode_ordinal,
    make_preprocessor,
    ordinal_categories,
)
from uplift.specs.model import ModelSpec

__all__ = ["MultiArmUplift", "arm_mean_effects", "pair_propensity", "CONTINUOUS_LEARNERS", "PREDICT_CHUNK_ROWS"]

CONTINUOUS_LEARNERS = ("dr",)
PREDICT_CHUNK_ROWS = 250_000
"""Rows :meth:`MultiArmUplift.predict_matrix` encodes and predicts at a time."""
"""Learners that regress the outcome (causalml's DR learner with LightGBM regressors), so that can model an
amount (spend, sales); the others model 0/1 outcomes."""


def pair_propensity(propensity: pd.DataFrame, arm: str, control: str) -> np.ndarray:
    """P(T = arm | T in {arm, control}, x) for every row, from the design probabilities."""
    pt = propensity[arm].to_numpy(float)
    pc = propensity[control].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = pt / (pt + pc)
    return np.nan_to_num(out, nan=0.5)


def arm_mean_effects(
    y: np.ndarray, arm: np.ndarray, propensity: pd.DataFrame, control: str, arms: tuple[str, ...]
) -> pd.Series:
    """Average effect of each arm against the control (Hajek IPW difference in means)."""
    y = np.asarray(y, dtype=float)
    arm = np.asarray(arm)
    w = 1.0 / own_propensity(propensity, arm)
    c = arm == control
    base = hajek_mean(y[c], w[c])
    out = {}
    for a in arms:
        m = arm == a
        out[a] = hajek_mean(y[m], w[m]) - base if m.any() else np.nan
    return pd.Series(out, name="mean_effect")


class MultiArmUplift:
    """Estimate P(y | x, arm) - P(y | x, control) for every treatment arm.

    Parameters
    ----------
    spec : the model spec (learner and hyper-parameters).
    features : the feature columns (names and kinds) the model reads.
    arms : every arm, control included.
    control : the control arm's name.

    Attributes (after ``fit``)
    --------------------------
    preprocessor_ : the fitted column encoder.
    learner_ : the fitted learner.
    treatment_arms_ : tuple of arm names, the order of ``predict``'s columns.
    mean_effects_ : Series, IPW average effect per arm on the training rows (the shrinkage target).
    pair_propensity_ : Series, mean P(arm | arm or control) in training (used by the X-learner at predict time).
    """

    def __init__(
        self, spec: ModelSpec, features: tuple[FeatureColumn, ...], arms: tuple[str, ...], control: str
    ) -> None:
        self.spec = spec
        self.features = tuple(features)
        self.arms = tuple(arms)
        self.control = control

    @property
    def treatment_arms(self) -> tuple[str, ...]:
        return tuple(a for a in self.arms if a != self.control)

    @property
    def kind(self) -> LearnerKind:
        """The adapter of the spec's learner kind (:mod:`uplift.modeling.learnerkinds`)."""
        return learner_kind(self.spec)

    def _matrix(self, X: pd.DataFrame, *, source: str) -> np.ndarray:
        return self._encode(check_feature_frame(X, self.features, source=source))

    def _encode(self, frame: pd.DataFrame, dtype: type = np.float64) -> np.ndarray:
        """The learner's matrix for an already checked feature frame (``dtype`` for the ordinal encoding)."""
        kind = self.kind
        if kind.encoding == "ordinal":
            columns = self.__dict__.get("_ordinal_columns")
            if columns is None:
                columns = self.__dict__["_ordinal_columns"] = ordinal_categories(self.preprocessor_)
            m = encode_ordinal(columns, frame, dtype=dtype)
        else:
            m = self.preprocessor_.transform(frame)
        if kind.missing_as is not None:
            m = np.nan_to_num(m, nan=kind.missing_as)
        return np.ascontiguousarray(m, dtype=m.dtype if kind.encoding == "ordinal" else np.float64)

    def fit(self, X: pd.DataFrame, arm: np.ndarray, y: np.ndarray, propensity: pd.DataFrame) -> MultiArmUplift:
        self._check_arms(arm)
        frame = check_feature_frame(X, self.features, source="training features")
        encoding = self.kind.encoding
        # the ordinal encoder learns each column's sorted distinct values: fitted on those alone, as on every row
        fit_on = distinct_rows(frame, self.features) if encoding == "ordinal" else frame
        self.preprocessor_ = make_preprocessor(self.features, encoding).fit(fit_on)
        self.__dict__.pop("_ordinal_columns", None)  # the fast encoder reads the new categories
        # e.g. our LightGBM learners are fitted on float32 (half the memory; LightGBM bins without converting)
        Xm = self._encode(frame, self.kind.matrix_dtype)
        del frame
        return self._fit_encoded(Xm, arm, y, propensity)

    def fit_matrix(self, matrix: FeatureMatrix, arm: np.ndarray, y: np.ndarray,
                   propensity: pd.DataFrame) -> MultiArmUplift:
        """:meth:`fit` on rows whose features are already a :class:`FeatureMatrix` (ordinal learners): the same
        encoder and model as ``fit`` on those rows' frame, reading the matrix itself when every category of the
        table is among the rows (no copy)."""
        self._check_arms(arm)
        if self.kind.encoding != "ordinal":
            raise DataError(f"learner {self.spec.learner!r} reads one-hot features; a feature matrix holds "
                            "ordinal codes (load the table's frame for it)")
        present = matrix.present()
        self.preprocessor_ = make_preprocessor(self.features, "ordinal").fit(_vocabulary_rows(self.features, present))
        self.__dict__.pop("_ordinal_columns", None)
        Xm = self._matrix_for(matrix, self.kind.matrix_dtype, spare=True)
        return self._fit_encoded(Xm, arm, y, propensity, spare=matrix.spare if Xm.shape[1] > len(self.features) else 0)

    def _check_arms(self, arm: np.ndarray) -> None:
        counts = pd.Series(np.asarray(arm, dtype=object)).value_counts()
        empty = [a for a in self.arms if counts.get(a, 0) == 0]
        if empty:
            raise DataError(f"arm(s) {empty} have no training rows; every arm needs rows to be estimated")

    def _matrix_for(self, matrix: FeatureMatrix, dtype: type = np.float64, *, spare: bool = False) -> np.ndarray:
        """The learner's matrix for a :class:`FeatureMatrix` under this model's encoder: the features, and with
        ``spare`` the matrix's spare columns after them when they are the ones the learner fills (its
        ``spare_columns``); otherwise the features alone (a view of the columns to predict from; a contiguous
        copy to fit on)."""
        if matrix.features != self.features:
            raise DataError(f"feature matrix columns {[f.name for f in matrix.features]} differ from the model's "
                            f"{[f.name for f in self.features]}")
        known = {c: tuple(codes) for c, codes in ordinal_categories(self.preprocessor_) if codes is not None}
        m = matrix.encoded(known, dtype)
        if matrix.spare and not (spare and matrix.spare == self.kind.spare_columns):
            m = m[:, : len(self.features)]
            m = np.ascontiguousarray(m) if spare else m
        if self.kind.missing_as is not None:
            m = np.nan_to_num(m, nan=self.kind.missing_as)
        return m

    def _fit_encoded(self, Xm: np.ndarray, arm: np.ndarray, y: np.ndarray,
                     propensity: pd.DataFrame, *, spare: int = 0) -> MultiArmUplift:
        arm = np.asarray(arm, dtype=object)
        y = self._outcome(y)
        kind = self.kind
        keep = kind.fit_rows(self.spec, len(y), np.random.default_rng(self.spec.seed))
        if keep is not None:
            Xm, arm_fit, y_fit, prop_fit = Xm[keep], arm[keep], y[keep], propensity.iloc[keep]
        else:
            arm_fit, y_fit, prop_fit = arm, y, propensity
        learner = kind.build(self.spec, self.control)
        p = _PairPropensity(prop_fit, self.control, self.treatment_arms)
        kind.fit(learner, Xm, arm_fit, y_fit, propensity=prop_fit, pair=p, seed=self.spec.seed, spare=spare)
        self.learner_ = learner
        self.columns_ = kind.output_names(learner)
        self.treatment_arms_ = self.treatment_arms
        self.mean_effects_ = arm_mean_effects(y, arm, propensity[list(self.arms)], self.control, self.treatment_arms)
        self.pair_propensity_ = pd.Series({a: float(np.mean(p[a][np.isin(arm_fit, [a, self.control])]))
                                           for a in self.treatment_arms})
        return self

    def _outcome(self, y: np.ndarray) -> np.ndarray:
        """0/1 outcomes as integers; an amount (spend) as floats, for the learners that regress it."""
        y = np.asarray(y, dtype=float)
        if np.isin(y, (0.0, 1.0)).all():
            return y.astype(np.int64)
        if self.spec.learner not in CONTINUOUS_LEARNERS:
            raise DataError(f"learner {self.spec.learner!r} models 0/1 outcomes; a continuous outcome needs one of "
                            f"{list(CONTINUOUS_LEARNERS)}")
        return y

    def predict(self, X: pd.DataFrame, *, source: str = "features", checked: bool = False) -> pd.DataFrame:
        """Estimated uplift per row and treatment arm (probability points), columns labelled by arm.

        ``checked=True`` declares ``X`` already typed as :func:`check_feature_frame` returns it
        (every feature column; numbers as float64, text as ``str`` or NaN) and skips the check:
        for callers that validated the values themselves, such as the service's ``POST /scores``.
        """
        Xm = self._encode(X) if checked else self._matrix(X, source=source)
        raw = self.kind.predict(self.learner_, Xm, pair_means=self.pair_propensity_[list(self.treatment_arms)])
        raw = np.asarray(raw, dtype=float).reshape(len(Xm), -1)
        frame = pd.DataFrame(raw, columns=self.columns_, index=X.index)
        return frame[list(self.treatment_arms)]

    def predict_matrix(self, matrix: FeatureMatrix, *, index: pd.Index | None = None,
                       chunk_rows: int | None = None) -> pd.DataFrame:
        """:meth:`predict` for rows whose features are a :class:`FeatureMatrix` (equal to ``predict`` on their
        frame), ``chunk_rows`` rows at a time (default :data:`PREDICT_CHUNK_ROWS`): besides the result (float64,
        one column per treatment arm) only one chunk's encoded rows and the learner's work on them are held (each
        row's prediction is its own, so the result does not depend on the chunk size)."""
        chunk_rows = PREDICT_CHUNK_ROWS if chunk_rows is None else chunk_rows
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        dtype = np.float64 if self.kind.matrix_dtype is np.float64 else np.float32
        arms = list(self.treatment_arms)
        where = [self.columns_.index(a) for a in arms]
        out = np.empty((len(matrix), len(arms)))
        for start in range(0, len(matrix), chunk_rows):
            rows = slice(start, min(start + chunk_rows, len(matrix)))
            Xm = self._matrix_for(matrix.rows(rows), dtype)
            raw = self.kind.predict(self.learner_, Xm, pair_means=self.pair_propensity_[arms])
            out[rows] = np.asarray(raw, dtype=float).reshape(len(Xm), -1)[:, where]
            del Xm, raw
        index = index if index is not None else pd.RangeIndex(len(matrix))
        return pd.DataFrame(out, columns=arms, index=index, copy=False)

    @classmethod
    def from_table(cls, spec: ModelSpec, table: TrainingTable) -> MultiArmUplift:
        """An unfitted estimator for ``table``'s features and arms."""
        return cls(spec, table.features, table.arms, table.control)

    def fit_table(self, table: TrainingTable) -> MultiArmUplift:
        f = table.frame
        return self.fit(f[table.feature_names], f["arm"].to_numpy(), f["outcome"].to_numpy(), table.propensity())


def _vocabulary_rows(features: tuple[FeatureColumn, ...],
                     present: dict[str, tuple[tuple[str, ...], bool]]) -> pd.DataFrame:
    """A small frame the ordinal encoder fits on as on rows holding ``present``'s values (missing ones as NaN)."""
    values = {name: list(known) + ([np.nan] if missing else []) for name, (known, missing) in present.items()}
    n = max([len(v) for v in values.values()] + [1])
    out = {}
    for f in features:
        if f.kind == "categorical":
            out[f.name] = pd.Series(np.resize(np.asarray(values[f.name] or [np.nan], dtype=object), n), dtype=object)
        else:
            out[f.name] = np.zeros(n)
    return pd.DataFrame(out)


class _PairPropensity(Mapping):
    """P(arm | arm or control) per row for each treatment arm, computed when a learner reads an arm (no array per
    arm held for the learners that never read them; ``dict(pair)`` makes them all)."""

    def __init__(self, propensity: pd.DataFrame, control: str, arms: tuple[str, ...]) -> None:
        self.propensity, self.control, self.arms = propensity, control, arms

    def __getitem__(self, arm: str) -> np.ndarray:
        if arm not in self.arms:
            raise KeyError(arm)
        return pair_propensity(self.propensity, arm, self.control)

    def __iter__(self):
        return iter(self.arms)

    def __len__(self) -> int:
        return len(self.arms)
