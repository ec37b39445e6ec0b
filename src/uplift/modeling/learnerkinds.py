"""One adapter per learner kind (``learner:`` in a model spec): how to build, fit and predict it and what its
output columns are called, behind one interface, chosen from :data:`LEARNER_KINDS` by :func:`learner_kind`.

:class:`~uplift.modeling.estimator.MultiArmUplift` reads nothing else about a kind: a new kind of learner is a new
adapter registered here (and its name in :data:`uplift.specs.model.LEARNERS`), not another branch in the estimator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd

from uplift.modeling.ipw import own_propensity
from uplift.modeling.learners import PooledArmLearner, SharedControlTLearner
from uplift.specs.model import ModelSpec

__all__ = ["LEARNER_KINDS", "LearnerKind", "learner_kind", "lgbm_params"]

# one thread: on a shared 2-core machine an OpenMP pool of 2 that has to wait for a busy core was measured 12x
# slower than 1 thread (benchmarks/targeting.py); specs may set n_jobs in their lightgbm block
_LGBM_DEFAULTS = {"verbose": -1, "n_jobs": 1, "deterministic": True, "force_col_wise": True}


def lgbm_params(spec: ModelSpec) -> dict:
    """LightGBM's parameters for ``spec``: the project's defaults, the spec's seed, then its ``lightgbm`` block."""
    return {**_LGBM_DEFAULTS, "random_state": spec.seed, **spec.lightgbm}


@dataclass(frozen=True)
class LearnerKind:
    """What the estimator needs to know about one kind of learner.

    Attributes
    ----------
    name : the kind's name in model specs.
    encoding : how its features are encoded: ``ordinal`` (trees) or ``onehot`` (the logistic baseline).
    matrix_dtype : the dtype of the ordinal matrix it is fitted on (float32 for our LightGBM learners).
    missing_as : the number missing values become in its matrix (None: left as NaN).
    causalml : whether the fitted learner is a causalml object (the logged model then needs causalml).
    spare_columns : columns of its own it appends to the features at fit time (the pooled learner's arm
        features); a :class:`~uplift.modeling.featurematrix.FeatureMatrix` that reserves them is fitted on as it
        is (:meth:`fit` with ``spare``).
    """

    name: str
    encoding: Literal["ordinal", "onehot"] = "ordinal"
    matrix_dtype: type = np.float64
    missing_as: float | None = None
    causalml: bool = True
    spare_columns: int = 0

    def build(self, spec: ModelSpec, control: str) -> Any:
        """The unfitted learner ``spec`` declares, with ``control`` as its control arm."""
        raise NotImplementedError

    def fit_rows(self, spec: ModelSpec, n: int, rng: np.random.Generator) -> np.ndarray | None:
        """The rows (sorted indices) it is fitted on when not every one of the ``n`` rows; None: all of them."""
        return None

    def fit(self, learner: Any, X: np.ndarray, treatment: np.ndarray, y: np.ndarray, *,
            propensity: pd.DataFrame, pair: Mapping[str, np.ndarray], seed: int, spare: int = 0) -> None:
        """Fit ``learner`` on the matrix ``X``; ``propensity`` holds every arm's design probability per row,
        ``pair`` each treatment arm's P(arm | arm or control) per row, ``seed`` the spec's seed (for what the
        learner draws at fit time rather than at build time). ``spare``: X's last columns are free for the
        learner's own (0, or :attr:`spare_columns` of the kinds that have some)."""
        # keywords: causalml 1.0 turns the positional order into (X, y, treatment) (0.18 warns)
        learner.fit(X=X, treatment=treatment, y=y)

    def predict(self, learner: Any, X: np.ndarray, *, pair_means: pd.Series) -> np.ndarray:
        """Uplift per row and output column (:meth:`output_names` order); ``pair_means`` is each treatment arm's
        mean P(arm | arm or control) in training."""
        return learner.predict(X=X, verbose=False)

    def output_names(self, learner: Any) -> list[str]:
        """The arm of each column :meth:`predict` returns."""
        return [str(g) for g in learner.t_groups]


@dataclass(frozen=True)
class _CausalmlT(LearnerKind):
    """causalml's T-learner on LightGBM classifiers (``t``)."""

    def build(self, spec: ModelSpec, control: str) -> Any:
        from causalml.inference.meta import BaseTClassifier
        from lightgbm import LGBMClassifier

        return BaseTClassifier(learner=LGBMClassifier(**lgbm_params(spec)), control_name=control)


@dataclass(frozen=True)
class _LogisticT(LearnerKind):
    """causalml's T-learner on logistic regressions over one-hot features (``t_logistic``), the baseline."""

    encoding: Literal["ordinal", "onehot"] = "onehot"

    def build(self, spec: ModelSpec, control: str) -> Any:
        from causalml.inference.meta import BaseTClassifier
        from sklearn.linear_model import LogisticRegression

        return BaseTClassifier(learner=LogisticRegression(C=spec.logistic_c, max_iter=2000), control_name=control)


@dataclass(frozen=True)
class _CausalmlX(LearnerKind):
    """causalml's X-learner (``x``): LightGBM outcome classifiers and effect regressors; the propensity it
    weighs the two effect models by is the design's, at predict time its training mean per arm."""

    def build(self, spec: ModelSpec, control: str) -> Any:
        from causalml.inference.meta import BaseXClassifier
        from lightgbm import LGBMClassifier, LGBMRegressor

        params = lgbm_params(spec)
        return BaseXClassifier(outcome_learner=LGBMClassifier(**params), effect_learner=LGBMRegressor(**params),
                               control_name=control)

    def fit(self, learner, X, treatment, y, *, propensity, pair, seed, spare=0) -> None:
        learner.fit(X=X, treatment=treatment, y=y, p=dict(pair))

    def predict(self, learner, X, *, pair_means) -> np.ndarray:
        p = {a: np.full(len(X), pair_means[a]) for a in pair_means.index}
        return learner.predict(X=X, p=p, verbose=False)


@dataclass(frozen=True)
class _CausalmlDR(LearnerKind):
    """causalml's doubly robust learner on LightGBM regressors (``dr``), with the design's propensities; its
    cross-fitting folds are drawn with the spec's seed (causalml draws them afresh on every fit without one)."""

    def build(self, spec: ModelSpec, control: str) -> Any:
        from causalml.inference.meta import BaseDRLearner
        from lightgbm import LGBMRegressor

        return BaseDRLearner(learner=LGBMRegressor(**lgbm_params(spec)), control_name=control)

    def fit(self, learner, X, treatment, y, *, propensity, pair, seed, spare=0) -> None:
        learner.fit(X=X, treatment=treatment, y=y, p=dict(pair), seed=seed)


@dataclass(frozen=True)
class _UpliftForest(LearnerKind):
    """causalml's UpliftRandomForestClassifier (``uplift_forest``): missing values as -1, fitted on a seeded
    sample of at most ``forest.max_rows`` rows."""

    missing_as: float | None = -1.0

    def build(self, spec: ModelSpec, control: str) -> Any:
        from causalml.inference.tree import UpliftRandomForestClassifier

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

    def fit_rows(self, spec: ModelSpec, n: int, rng: np.random.Generator) -> np.ndarray | None:
        cap = spec.forest.max_rows
        return np.sort(rng.choice(n, cap, replace=False)) if cap and n > cap else None

    def predict(self, learner, X, *, pair_means) -> np.ndarray:
        return learner.predict(X=X)

    def output_names(self, learner) -> list[str]:
        return [str(c) for c in learner.classes_[1:]]


@dataclass(frozen=True)
class _OwnLightGBM(LearnerKind):
    """Our LightGBM learners (``t_shared``, ``pooled``; :mod:`uplift.modeling.learners`): fitted on float32 with
    rows weighted by the inverse of their own arm's assignment probability."""

    learner_class: type = PooledArmLearner
    matrix_dtype: type = np.float32
    causalml: bool = False

    def build(self, spec: ModelSpec, control: str) -> Any:
        from lightgbm import LGBMClassifier

        return self.learner_class(partial(LGBMClassifier, **lgbm_params(spec)), control)

    def fit(self, learner, X, treatment, y, *, propensity, pair, seed, spare=0) -> None:
        own = own_propensity(propensity, treatment)
        if spare:  # only the pooled learner declares spare columns
            learner.fit(X=X, treatment=treatment, y=y, sample_weight=1.0 / own, spare=spare)
        else:
            learner.fit(X=X, treatment=treatment, y=y, sample_weight=1.0 / own)

    def predict(self, learner, X, *, pair_means) -> np.ndarray:
        return learner.predict(X=X)


LEARNER_KINDS: dict[str, LearnerKind] = {
    kind.name: kind
    for kind in (_CausalmlT("t"), _OwnLightGBM("t_shared", learner_class=SharedControlTLearner),
                 _OwnLightGBM("pooled", learner_class=PooledArmLearner, spare_columns=PooledArmLearner.arm_columns),
                 _CausalmlX("x"), _CausalmlDR("dr"), _UpliftForest("uplift_forest"), _LogisticT("t_logistic"))
}
"""Every learner kind a model spec may name (the keys are :data:`uplift.specs.model.LEARNERS`, in its order)."""


def learner_kind(spec: ModelSpec) -> LearnerKind:
    """The adapter of ``spec``'s learner (the spec has validated the name)."""
    return LEARNER_KINDS[spec.learner]
