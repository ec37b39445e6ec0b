"""Our own multi-arm learners on LightGBM (the shared-control T-learner and the pooled learner), and the
entry points that build any learner a spec declares (through its kind's adapter,
:mod:`uplift.modeling.learnerkinds`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier

from uplift.modeling.armtrees import ArmForest, compile_forest
from uplift.specs.model import ModelSpec

__all__ = ["make_learner", "PooledArmLearner", "SharedControlTLearner", "encoding_for"]


def encoding_for(spec: ModelSpec) -> str:
    """How features are encoded for this learner: one-hot for the logistic baseline, ordinal otherwise."""
    from uplift.modeling.learnerkinds import learner_kind

    return learner_kind(spec).encoding


class SharedControlTLearner:
    """T-learner that fits the control outcome model once and one outcome model per treatment arm.

    causalml's ``BaseTClassifier`` refits the control model for every arm; with 18 arms that is 18 fits of
    the largest group. Rows can carry weights (inverse assignment probability), so waves with different
    designs are mixed correctly. ``predict`` returns P(y|x, arm) - P(y|x, control), one column per arm in
    ``t_groups`` order (sorted, as causalml).
    """

    def __init__(self, make_model: Callable[[], LGBMClassifier], control_name: str) -> None:
        self.make_model = make_model
        self.control_name = control_name

    def fit(self, X: np.ndarray, treatment: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None):
        treatment = np.asarray(treatment)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        self.t_groups = np.array(sorted(set(treatment.tolist()) - {self.control_name}), dtype=object)
        self.models_ = {}
        for group in [self.control_name, *self.t_groups]:
            mask = treatment == group
            self.models_[group] = self.make_model().fit(X[mask], y[mask], sample_weight=w[mask] / w[mask].mean())
        return self

    def predict_outcomes(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return {g: m.predict_proba(X)[:, 1] for g, m in self.models_.items()}

    def predict(self, X: np.ndarray) -> np.ndarray:
        outcomes = self.predict_outcomes(X)
        base = outcomes[self.control_name]
        return np.column_stack([outcomes[g] - base for g in self.t_groups])


class PooledArmLearner:
    """One outcome model for all arms: the arm enters as features (message, channel, treated).

    Messages are shared across channels and channels across messages, so what the data say about
    ``m@meta`` also informs ``m@flyer``: with 18 arms and rare outcomes this pools far more data per
    estimate than one model per arm. Rows are weighted by inverse assignment probability. ``predict``
    returns P(y | x, arm) - P(y | x, control) per arm in ``t_groups`` order.
    """

    arm_columns = 3
    """The arm features after the row's: message, channel, treated."""

    def __init__(self, make_model: Callable[[], LGBMClassifier], control_name: str) -> None:
        self.make_model = make_model
        self.control_name = control_name

    @staticmethod
    def _parts(arm: str) -> tuple[str, str]:
        message, _, channel = str(arm).partition("@")
        return message, channel

    def _write_arm_columns(self, Xa: np.ndarray, arms: np.ndarray, chunk_rows: int = 1_000_000) -> None:
        """Each row's arm features into ``Xa``'s last columns, a chunk of rows at a time."""
        index = pd.Index(self.arms_)
        for start in range(0, len(arms), chunk_rows):
            rows = slice(start, start + chunk_rows)
            Xa[rows, self.n_features_ :] = self.arm_features_[index.get_indexer(arms[rows])]

    def fit(self, X: np.ndarray, treatment: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
            spare: int = 0):
        """Fit on the features ``X`` with each row's arm features appended. ``spare`` (0 or :attr:`arm_columns`):
        X's last columns are free; the arm features are written there and LightGBM reads ``X`` itself (a
        C-ordered float32 or float64 matrix, e.g. a range of rows of a
        :class:`~uplift.modeling.featurematrix.FeatureMatrix` that reserves them), no wider copy."""
        if spare not in (0, self.arm_columns):
            raise ValueError(f"spare must be 0 or {self.arm_columns} (the arm features), got {spare}")
        treatment = np.asarray(treatment, dtype=object)
        self.t_groups = np.array(sorted(set(treatment.tolist()) - {self.control_name}), dtype=object)
        self.arms_ = [self.control_name, *self.t_groups]
        messages = sorted({self._parts(a)[0] for a in self.t_groups})
        channels = sorted({self._parts(a)[1] for a in self.t_groups})
        rows = [[float(len(messages)), float(len(channels)), 0.0]]  # the control: its own "no message/channel" level
        for a in self.t_groups:
            m, c = self._parts(a)
            rows.append([float(messages.index(m)), float(channels.index(c)), 1.0])
        self.arm_features_ = np.array(rows)
        self.n_features_ = X.shape[1] - spare
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        # one matrix in X's dtype (float32 from the estimator): the features, then the arm's; LightGBM reads it as is
        if spare and X.flags.c_contiguous and X.dtype in (np.float32, np.float64):
            Xa = X
        else:
            Xa = np.empty((len(X), self.n_features_ + self.arm_columns), dtype=X.dtype)
            Xa[:, : self.n_features_] = X[:, : self.n_features_]
        self._write_arm_columns(Xa, treatment)
        cat = [self.n_features_, self.n_features_ + 1]
        self.model_ = self.make_model().fit(Xa, y, sample_weight=w / w.mean(), categorical_feature=cat)
        return self

    def _forest(self) -> ArmForest | None:
        """The booster compiled for evaluating every arm in one walk per tree and row
        (:mod:`uplift.modeling.armtrees`; None if it cannot evaluate this booster exactly), built on
        first use."""
        if "_forest_cache" not in self.__dict__:
            self.__dict__["_forest_cache"] = compile_forest(self.model_.booster_, self.arm_features_)
        return self.__dict__["_forest_cache"]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_forest_cache", None)  # rebuilt from the booster after unpickling
        return state

    def predict_outcomes(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """P(y | x, arm) for every arm: the compiled forest's raw scores through the logistic link,
        equal to the booster's own prediction per arm; the booster once per arm where there is no
        compiled forest (another objective or link, linear trees)."""
        forest = self._forest() if self._plain_logistic() else None
        if forest is None:
            n = len(X)
            p = self.model_.predict_proba(self._stacked(X, self.arm_features_))[:, 1]
            return {a: p[i * n : (i + 1) * n] for i, a in enumerate(self.arms_)}
        p = 1.0 / (1.0 + np.exp(-forest.raw_scores(X)))
        return {a: p[i] for i, a in enumerate(self.arms_)}

    def _plain_logistic(self) -> bool:
        binary = getattr(self.model_, "objective_", None) == "binary"
        return binary and self.model_.get_params().get("sigmoid", 1.0) == 1.0

    @staticmethod
    def _stacked(X: np.ndarray, arm_values: np.ndarray) -> np.ndarray:
        """``X`` once per row of ``arm_values``, each copy with those arm features appended."""
        n, m = X.shape
        out = np.empty((n * len(arm_values), m + arm_values.shape[1]), dtype=np.float64)
        for i, values in enumerate(arm_values):
            out[i * n : (i + 1) * n, :m] = X
            out[i * n : (i + 1) * n, m:] = values
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        outcomes = self.predict_outcomes(X)
        base = outcomes[self.control_name]
        return np.column_stack([outcomes[g] - base for g in self.t_groups])


def make_learner(spec: ModelSpec, control: str):
    """Instantiate the (unfitted) learner that ``spec`` declares (its kind's adapter builds it)."""
    from uplift.modeling.learnerkinds import learner_kind

    return learner_kind(spec).build(spec, control)
