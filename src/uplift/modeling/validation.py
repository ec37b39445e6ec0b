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

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.model_selection import StratifiedKFold

from uplift.errors import ThinDataWarning
from uplift.modeling.estimator import MultiArmUplift
from uplift.modeling.metrics import arm_metrics, pairwise_ipw_weights
from uplift.modeling.policyvalue import compare_policies, single_arm_policies
from uplift.modeling.targeting import ShrinkageChoice, best_single_arm, choose_shrinkage, recommend, shrink
from uplift.quiet import quietly
from uplift.specs.model import ModelSpec
from uplift.trainingtable import TrainingTable

__all__ = ["ValidationReport", "validate_model", "heldout_mask", "fold_ids", "policy_recommendations", "CVSample",
           "cv_sample", "fit_fold"]

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
    cv_sample: CVSample | None = None
    """The stratified sample the folds were drawn from when the training rows outnumber ``cv.sample_rows``
    (``train`` is then that sample; the final model saw every training row)."""

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
        out["cv_rows"] = float(len(self.train.frame))
        out["refit_rows"] = float(self.cv_sample.of if self.cv_sample else len(self.train.frame))
        out["cv_sample_share"] = float(self.cv_sample.share if self.cv_sample else 1.0)
        return out


@dataclass(frozen=True)
class CVSample:
    """A stratified sample of the training rows for cross-validation: ``rows`` (positions, sorted) out of ``of``,
    drawn per stratum (arm x outcome) in proportion, with seed ``seed``."""

    rows: np.ndarray = field(repr=False)
    of: int
    seed: int

    @property
    def share(self) -> float:
        return len(self.rows) / self.of


def cv_sample(arm: np.ndarray, y: np.ndarray, size: int, seed: int) -> CVSample:
    """``size`` rows stratified by arm x outcome, positions sorted.

    Each stratum keeps its share: ``floor(share x size)`` rows, and the rows left over go to the strata with the
    largest remainders (largest-remainder rounding, so a stratum never gets more than one row beyond its exact
    share); within a stratum the rows are a seeded random choice.
    """
    n = len(arm)
    codes, _ = pd.factorize(pd.Series(arm).astype(str) + "|" + pd.Series(np.asarray(y)).astype(str))
    counts = np.bincount(codes)
    exact = counts * (size / n)
    take = np.floor(exact).astype(np.int64)
    short = size - int(take.sum())
    take[np.argsort(-(exact - take), kind="stable")[:short]] += 1
    perm = np.random.default_rng(seed).permutation(n)
    order = perm[np.argsort(codes[perm], kind="stable")]  # rows grouped by stratum, in random order within each
    grouped = codes[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(n) - starts[grouped]
    return CVSample(rows=np.sort(order[rank < take[grouped]]), of=n, seed=seed)


def heldout_mask(person_id: pd.Series, share: float, seed: int) -> np.ndarray:
    """True for rows whose person falls in the test share (a seeded hash of the id: stable, by person)."""
    h = pd.util.hash_pandas_object(person_id.astype(str) + f"#{seed}", index=False).to_numpy()
    return (h / np.float64(2**64)) < share


def fold_ids(arm: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number per row, stratified by arm x outcome.

    An arm x outcome stratum with fewer rows than folds (a rare outcome in a small arm) is named in a
    :class:`~uplift.errors.ThinDataWarning`: some folds have none of it."""
    strata = pd.Series(arm).astype(str).to_numpy() + "|" + np.asarray(y).astype(str)
    _warn_thin_strata(strata, folds)
    out = np.empty(len(arm), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # scikit-learn's words for it; _warn_thin_strata has said it in ours
        warnings.filterwarnings("ignore", message="The least populated class in y has only", category=UserWarning)
        for k, (_, val) in enumerate(splitter.split(np.zeros(len(arm)), strata)):
            out[val] = k
    return out


def _warn_thin_strata(strata: np.ndarray, folds: int, shown: int = 3) -> None:
    names, counts = np.unique(strata, return_counts=True)
    thin = np.flatnonzero(counts < folds)
    if len(thin):
        thinnest = thin[np.argsort(counts[thin], kind="stable")][:shown]
        listed = "; ".join("arm {!r} outcome {}: {} row(s)".format(*names[i].split("|", 1), counts[i])
                           for i in thinnest)
        more = f" and {len(thin) - shown} more" if len(thin) > shown else ""
        warnings.warn(ThinDataWarning(
            f"cross-validation: {len(thin)} arm x outcome group(s) have fewer rows than the {folds} folds "
            f"({listed}{more}): some folds have none of them, so their per-arm metrics are less certain"
        ), stacklevel=3)


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


def fit_fold(spec: ModelSpec, table: TrainingTable, folds: np.ndarray, k: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Fit on every fold but ``k`` and predict fold ``k``: its predictions (rows of fold ``k`` in order, one
    column per treatment arm) and its per-arm metrics."""
    fit_rows, val_rows = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
    model = MultiArmUplift.from_table(spec, table).fit_table(table.subset(fit_rows))
    pred = model.predict(table.frame.iloc[val_rows][table.feature_names])
    return pred.to_numpy(), _metrics(table.subset(val_rows), pred.reset_index(drop=True)).assign(fold=k)


def _cross_fit(spec: ModelSpec, train: TrainingTable, folds: np.ndarray, say: Progress) -> list:
    """Every fold's :func:`fit_fold`, in ``spec.cv.jobs`` processes (the same results as one after the other:
    each fit is seeded and single-threaded as the spec says)."""
    ks = range(spec.cv.folds)
    if spec.cv.jobs == 1:
        out = []
        for k in ks:
            say(f"fold {k + 1}/{spec.cv.folds}")
            out.append(fit_fold(spec, train, folds, k))
        return out
    say(f"{spec.cv.folds} folds in {spec.cv.jobs} processes")
    fit = quietly(fit_fold)  # the worker processes drop the same third-party notices as this one
    return Parallel(n_jobs=spec.cv.jobs, backend="loky")(delayed(fit)(spec, train, folds, k) for k in ks)


def validate_model(spec: ModelSpec, table: TrainingTable, *, progress: Progress | None = None) -> ValidationReport:
    """Cross-validate, choose the targeting policy, refit, and evaluate on the held-out test set.

    With ``spec.cv.sample_rows`` below the number of training rows, the folds are drawn from a sample stratified
    by arm and outcome (:func:`cv_sample`, recorded in the report and its metrics), and the final model is
    fitted on every training row.
    """
    say = progress or (lambda _msg: None)
    is_test = heldout_mask(table.frame["person_id"], spec.cv.test_share, spec.cv.seed)
    full, test = table.subset(np.flatnonzero(~is_test)), table.subset(np.flatnonzero(is_test))
    sample = None
    if spec.cv.sample_rows is not None and spec.cv.sample_rows < len(full.frame):
        sample = cv_sample(full.frame["arm"].to_numpy(), full.frame["outcome"].to_numpy(), spec.cv.sample_rows,
                           spec.cv.seed)
        say(f"cross-validating on a stratified sample of {len(sample.rows):,} of {sample.of:,} training rows")
    train = full.subset(sample.rows) if sample is not None else full
    f = train.frame
    y, arm = f["outcome"].to_numpy(), f["arm"].to_numpy()
    folds = fold_ids(arm, y, spec.cv.folds, spec.cv.seed)

    oof = pd.DataFrame(np.nan, index=f.index, columns=list(table.treatment_arms))
    fold_rows = []
    for k, (pred, metrics) in enumerate(_cross_fit(spec, train, folds, say)):
        oof.iloc[np.flatnonzero(folds == k)] = pred
        fold_rows.append(metrics)
    cv_fold = pd.concat(fold_rows).rename_axis("arm").reset_index()
    cv_metrics = _metrics(train, oof)
    spread = cv_fold.groupby("arm")[["qini", "auuc"]].std(ddof=1).add_suffix("_fold_std")
    cv_metrics = cv_metrics.join(spread)

    say("refit on all training rows")
    model = MultiArmUplift.from_table(spec, full).fit_table(full)
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
        cv_sample=sample,
    )
