"""Honest evaluation of a model spec on a training table.

1. A held-out test set (``cv.test_share`` of the people, by a seeded hash of ``person_id``, so one
   person's waves never straddle the split) is set aside and used once, at the end.
2. On the rest, K folds stratified by arm and outcome give out-of-fold (OOF) predictions: per-arm
   Qini / AUUC / uplift@k with their spread over folds, and the data on which the shrinkage factor
   of the targeting policy is chosen.
3. The model is refitted on all training rows; on the test set it is scored per arm and its
   targeting policy is compared, by IPW value, with every single-arm policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from uplift.modeling.estimator import MultiArmUplift
from uplift.modeling.metrics import arm_metrics, pairwise_ipw_weights
from uplift.modeling.policyvalue import compare_policies, single_arm_policies
from uplift.modeling.targeting import ShrinkageChoice, best_single_arm, choose_shrinkage, recommend, shrink
from uplift.specs.model import ModelSpec
from uplift.trainingtable import TrainingTable

__all__ = ["ValidationReport", "validate_model", "heldout_mask", "fold_ids", "policy_recommendations"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ValidationReport:
    """Everything measured about one model spec on one training table."""

    spec: ModelSpec
    model: MultiArmUplift = field(repr=False)
    train: TrainingTable = field(repr=False)
    test: TrainingTable = field(repr=False)
    oof: pd.DataFrame = field(repr=False)
    test_predictions: pd.DataFrame = field(repr=False)
    cv_metrics: pd.DataFrame
    cv_fold_metrics: pd.DataFrame
    test_metrics: pd.DataFrame
    shrinkage: ShrinkageChoice
    policies: pd.DataFrame
    folds: np.ndarray = field(repr=False)
    """The cross-fitting fold of every training row (0..K-1)."""

    def out_of_sample(self) -> tuple[TrainingTable, pd.DataFrame]:
        """Every row with a prediction from a model that never saw it: cross-fitted on the training
        rows, the final model's on the held-out rows. For segment effects and calibration."""
        frame = pd.concat([self.train.frame, self.test.frame], ignore_index=True)
        table = TrainingTable(
            frame=frame, features=self.train.features, arms=self.train.arms, control=self.train.control,
            outcome=self.train.outcome, source=self.train.source,
        )
        preds = pd.concat([self.oof, self.test_predictions], ignore_index=True)
        return table, preds

    def out_of_sample_folds(self) -> tuple[np.ndarray, int]:
        """Per row of :meth:`out_of_sample`, the fold whose model predicted it, and the held-out fold.

        Training rows carry their cross-fitting fold ``0..K-1`` (fold ``k``'s model saw every other
        training fold); the held-out rows carry ``K``, predicted by the final model, which saw
        every training fold and no held-out row.
        """
        heldout = self.spec.cv.folds
        return np.concatenate([self.folds, np.full(len(self.test.frame), heldout)]), heldout

    def summary_metrics(self) -> dict[str, float]:
        """Flat scalar metrics (means over arms and policy values) for tracking and the promotion gate."""
        pol = self.policies
        out = {
            "cv_mean_qini": float(self.cv_metrics["qini"].mean()),
            "cv_mean_auuc": float(self.cv_metrics["auuc"].mean()),
            "cv_qini_fold_std": float(self.cv_fold_metrics.groupby("fold")["qini"].mean().std(ddof=1)),
            "test_mean_qini": float(self.test_metrics["qini"].mean()),
            "test_mean_auuc": float(self.test_metrics["auuc"].mean()),
            "shrinkage_lambda": float(self.shrinkage.lam),
        }
        for name in ("targeted", "argmax", "best_single_arm", f"all:{self.train.control}"):
            if name in pol.index:
                key = name.replace(":", "_").replace("@", ".")
                out[f"policy_value_{key}"] = float(pol.loc[name, "value"])
        if "targeted" in pol.index:
            out["targeting_gain_vs_best_arm"] = float(pol.loc["targeted", "diff"])
            out["targeting_gain_vs_best_arm_lo"] = float(pol.loc["targeted", "diff_lo"])
        return out


def heldout_mask(person_id: pd.Series, share: float, seed: int) -> np.ndarray:
    """True for rows whose person falls in the test share (a seeded hash of the id: stable, by person)."""
    h = pd.util.hash_pandas_object(person_id.astype(str) + f"#{seed}", index=False).to_numpy()
    return (h / np.float64(2**64)) < share


def fold_ids(arm: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number per row, stratified by arm x outcome."""
    strata = pd.Series(arm).astype(str).to_numpy() + "|" + np.asarray(y).astype(str)
    out = np.empty(len(arm), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, val) in enumerate(splitter.split(np.zeros(len(arm)), strata)):
        out[val] = k
    return out


def _metrics(table: TrainingTable, scores: pd.DataFrame) -> pd.DataFrame:
    f = table.frame
    weights = pairwise_ipw_weights(f["arm"].to_numpy(), table.propensity(), table.control)
    return arm_metrics(f["outcome"].to_numpy(), f["arm"].to_numpy(), scores, table.control, weights=weights)


def policy_recommendations(
    effects: pd.DataFrame, model: MultiArmUplift, lam: float, arms: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """The policies compared on held-out rows: targeted (shrunk), argmax (unshrunk), best single arm, every arm."""
    n = len(effects)
    policies = {
        "targeted": recommend(shrink(effects, model.mean_effects_, lam), model.control),
        "argmax": recommend(effects, model.control),
        "best_single_arm": np.full(n, best_single_arm(model.mean_effects_, model.control), dtype=object),
    }
    policies.update({f"all:{a}": v for a, v in single_arm_policies(list(arms), n).items()})
    return policies


def validate_model(spec: ModelSpec, table: TrainingTable, *, progress: Progress | None = None) -> ValidationReport:
    """Cross-validate, choose the targeting policy, refit, and evaluate on the held-out test set."""
    say = progress or (lambda _msg: None)
    is_test = heldout_mask(table.frame["person_id"], spec.cv.test_share, spec.cv.seed)
    train, test = table.subset(np.flatnonzero(~is_test)), table.subset(np.flatnonzero(is_test))
    f = train.frame
    y, arm = f["outcome"].to_numpy(), f["arm"].to_numpy()
    folds = fold_ids(arm, y, spec.cv.folds, spec.cv.seed)

    oof = pd.DataFrame(np.nan, index=f.index, columns=list(table.treatment_arms))
    fold_rows = []
    for k in range(spec.cv.folds):
        say(f"fold {k + 1}/{spec.cv.folds}")
        fit_rows, val_rows = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        model = MultiArmUplift.from_table(spec, train).fit_table(train.subset(fit_rows))
        pred = model.predict(f.iloc[val_rows][train.feature_names])
        oof.iloc[val_rows] = pred.to_numpy()
        fold_rows.append(_metrics(train.subset(val_rows), pred.reset_index(drop=True)).assign(fold=k))
    cv_fold = pd.concat(fold_rows).rename_axis("arm").reset_index()
    cv_metrics = _metrics(train, oof)
    spread = cv_fold.groupby("arm")[["qini", "auuc"]].std(ddof=1).add_suffix("_fold_std")
    cv_metrics = cv_metrics.join(spread)

    say("refit on all training rows")
    model = MultiArmUplift.from_table(spec, train).fit_table(train)
    choice = choose_shrinkage(
        oof,
        model.mean_effects_,
        y=y,
        arm=arm,
        propensity=train.propensity(),
        control=train.control,
        grid=spec.targeting.shrinkage_grid,
        one_se_rule=spec.targeting.one_se_rule,
    )

    say("evaluate on the held-out test set")
    tf = test.frame
    test_pred = model.predict(tf[test.feature_names])
    test_metrics = _metrics(test, test_pred)
    policies = compare_policies(
        tf["outcome"].to_numpy(),
        tf["arm"].to_numpy(),
        test.propensity(),
        policy_recommendations(test_pred, model, choice.lam, table.arms),
        baseline="best_single_arm",
    )
    return ValidationReport(
        spec=spec,
        model=model,
        train=train,
        test=test,
        oof=oof,
        test_predictions=test_pred,
        cv_metrics=cv_metrics,
        cv_fold_metrics=cv_fold,
        test_metrics=test_metrics,
        shrinkage=choice,
        policies=policies,
        folds=folds,
    )
