"""Model specs (``models/*.yaml``): learner, hyper-parameters, validation scheme, promotion gate."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from uplift.specs import Spec

__all__ = ["LEARNERS", "ModelSpec", "CVSpec", "TargetingSpec", "PromotionSpec", "ForestSpec"]

LEARNERS = ("t", "t_shared", "pooled", "x", "dr", "uplift_forest", "t_logistic")
"""Learner names: causalml's T-, X- and DR-learner on LightGBM; ``t_shared``, our T-learner that fits the
control model once for all arms; ``pooled``, our single LightGBM over all arms with message and channel
as features (pools what one channel teaches about a message across channels); causalml's UpliftRandomForestClassifier;
and a two-model logistic baseline."""


class CVSpec(Spec):
    """Validation: a held-out test share (by person) and K folds stratified by arm and outcome."""

    folds: int = Field(5, ge=2, le=20)
    test_share: float = Field(0.2, gt=0, lt=0.9)
    seed: int = 0
    jobs: int = Field(1, ge=1, le=64)
    """Folds fitted at once, each in its own process (1: one after the other in this one). Results are the same."""
    sample_rows: int | None = Field(None, ge=1000)
    """Cross-validate on a sample of at most this many training rows, stratified by arm and outcome (the final
    model is still fitted on every training row); None: on all of them."""


class TargetingSpec(Spec):
    """How per-person estimates become a decision: shrink towards arm averages by a factor chosen on
    out-of-fold data (0 = everyone gets the best arm on average, 1 = trust the model fully)."""

    shrinkage_grid: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    one_se_rule: bool = True
    """Among factors whose out-of-fold value is within one standard error of the best, take the smallest."""


class PromotionSpec(Spec):
    """The champion gate: a challenger takes the alias only when it beats the champion on the same held-out
    people by a paired comparison whose one-sided lower bound at ``confidence`` is above the margin
    (:mod:`uplift.tracking.evidence`). Campaign models are judged by their plan's incremental conversions
    at ``plan_budget``, experiment models by their targeting policy's value per 1,000 people."""

    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    """Level of the one-sided lower bound on the gain."""
    margin_conversions: float = Field(0.0, ge=0.0)
    """Campaign models: the gain in the plan's incremental conversions must exceed this (lower bound)."""
    margin_per_1000: float = Field(0.0, ge=0.0)
    """Experiment models: the gain in conversions per 1,000 people must exceed this (lower bound)."""
    plan_budget: float = Field(2_000.0, gt=0.0)
    """Campaign models: EUR of the plan both models are judged by (``serve/`` costs and planning policy)."""

    @model_validator(mode="before")
    @classmethod
    def _old_fields(cls, data: Any) -> Any:
        old = sorted({"metric", "greater_is_better", "min_improvement"} & set(data)) if isinstance(data, dict) else []
        if old:
            raise ValueError(
                f"{', '.join(old)}: the gate no longer compares a tracked metric between runs; it compares the two "
                "models on the same held-out people (fields: confidence, margin_conversions, margin_per_1000, "
                "plan_budget; see docs/metrics.md, 'The champion gate')"
            )
        return data


class ForestSpec(Spec):
    """Parameters of causalml's UpliftRandomForestClassifier (``learner: uplift_forest``)."""

    n_estimators: int = 20
    max_depth: int = 6
    min_samples_leaf: int = 200
    min_samples_treatment: int = 50
    evaluation_function: Literal["KL", "ED", "Chi", "CTS", "DDP", "IT", "CIT", "IDDP"] = "KL"
    max_rows: int | None = 200_000
    """Fit on a seeded sample of at most this many rows (the forest is slow); None = all rows."""


class ModelSpec(Spec):
    """One trainable model: which learner, on which feature set, validated and promoted how."""

    name: str
    description: str = ""
    learner: Literal["t", "t_shared", "pooled", "x", "dr", "uplift_forest", "t_logistic"]
    feature_set: str = "default"
    lightgbm: dict[str, Any] = Field(default_factory=dict)
    """LightGBM parameters for the base learners (``n_estimators``, ``learning_rate``, ``num_leaves``, ...)."""
    logistic_c: float = 1.0
    forest: ForestSpec = ForestSpec()
    cv: CVSpec = CVSpec()
    targeting: TargetingSpec = TargetingSpec()
    promotion: PromotionSpec = PromotionSpec()
    seed: int = 0
