"""Learner factory: a model spec becomes a causalml learner (or our shared-control T-learner)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.linear_model import LogisticRegression

from uplift.specs.model import ModelSpec

__all__ = ["make_learner", "SharedControlTLearner", "encoding_for"]

_LGBM_DEFAULTS = {"verbose": -1, "n_jobs": 2, "deterministic": True, "force_col_wise": True}


def encoding_for(spec: ModelSpec) -> str:
    """How features are encoded for this learner: one-hot for the logistic baseline, ordinal otherwise."""
    return "onehot" if spec.learner == "t_logistic" else "ordinal"


def _lgbm_params(spec: ModelSpec) -> dict:
    return {**_LGBM_DEFAULTS, "random_state": spec.seed, **spec.lightgbm}


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


def make_learner(spec: ModelSpec, control: str):
    """Instantiate the (unfitted) learner that ``spec`` declares."""
    from causalml.inference.meta import BaseDRLearner, BaseTClassifier, BaseXClassifier
    from causalml.inference.tree import UpliftRandomForestClassifier

    params = _lgbm_params(spec)
    if spec.learner == "t":
        return BaseTClassifier(learner=LGBMClassifier(**params), control_name=control)
    if spec.learner == "t_shared":
        return SharedControlTLearner(lambda: LGBMClassifier(**params), control)
    if spec.learner == "x":
        return BaseXClassifier(
            outcome_learner=LGBMClassifier(**params), effect_learner=LGBMRegressor(**params), control_name=control
        )
    if spec.learner == "dr":
        return BaseDRLearner(learner=LGBMRegressor(**params), control_name=control)
    if spec.learner == "t_logistic":
        return BaseTClassifier(
            learner=LogisticRegression(C=spec.logistic_c, max_iter=2000), control_name=control
        )
    if spec.learner == "uplift_forest":
        f = spec.forest
        return UpliftRandomForestClassifier(
            control_name=control,
            n_estimators=f.n_estimators,
            max_depth=f.max_depth,
            min_samples_leaf=f.min_samples_leaf,
            min_samples_treatment=f.min_samples_treatment,
            evaluationFunction=f.evaluation_function,
            random_state=spec.seed,
            n_jobs=2,
        )
    raise ValueError(f"learner {spec.learner!r} is not valid")  # unreachable: the spec validates it
