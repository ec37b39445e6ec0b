"""Honest evaluation of a model spec on a training table.

1. A held-out test set (``cv.test_share`` of the people, by a seeded hash of ``person_id``, so one
   person's waves never straddle the split) is set aside and used once, at the end.
2. On the rest, K folds stratified by arm and outcome give out-of-fold (OOF) predictions: per-arm
   Qini / AUUC / uplift@k with their spread over folds, and the data on which the shrinkage factor
   of the targeting policy is chosen.
3. The model is refitted on all training rows; on the test set it is scored per arm and its
   targeting policy is compared, by IPW value, with every single-arm policy.

When the table carries :class:`~uplift.economics.Economics` (what a conversion is worth, what a contact
costs), the targeting rule is the net-value rule of :mod:`uplift.modeling.netvalue`, chosen on the
out-of-fold rows by IPW net value, and the held-out comparison adds each policy's net value and the
multi-arm cost curve (:mod:`uplift.modeling.costcurve`). When the table has a ``cluster`` column
(people randomised in groups), the held-out split and the folds keep every cluster whole and every
interval is cluster-robust.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from uplift.data.trainingtable import TrainingTable
from uplift.errors import DataError, ThinDataWarning
from uplift.modeling.costcurve import CostCurve, cost_curve
from uplift.modeling.estimator import MultiArmUplift
from uplift.modeling.featurematrix import FeatureMatrix
from uplift.modeling.metrics import arm_metrics, pairwise_ipw_weights
from uplift.modeling.netvalue import NetRule, best_net_arm, choose_net_rule, compare_net_policies, recommend_net
from uplift.modeling.policyvalue import compare_policies, single_arm_policies
from uplift.modeling.targeting import (
    ShrinkageChoice,
    best_single_arm,
    choose_shrinkage,
    recommend,
    recommend_shrunk,
    shrink,
)
from uplift.quiet import quietly
from uplift.specs.model import ModelSpec

__all__ = ["ValidationReport", "validate_model", "heldout_mask", "split_keys", "fold_ids", "outcome_strata",
           "policy_recommendations",
           "net_policy_recommendations", "CVSample", "cv_sample", "fit_fold"]

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
    rule: NetRule | None = None
    """The net-value rule (shrinkage and budget price) when the table declares economics; ``shrinkage`` then
    holds its factor and out-of-fold table."""
    net_policies: pd.DataFrame | None = None
    """Held-out net value per person of every policy (:func:`~uplift.modeling.netvalue.compare_net_policies`),
    with economics."""
    cost_curve: CostCurve | None = None
    """The held-out multi-arm cost curve of the targeted estimates, when every arm has a positive cost."""

    def out_of_sample(self) -> tuple[TrainingTable, pd.DataFrame]:
        """Every row with a prediction from a model that never saw it: cross-fitted on the training
        rows, the final model's on the held-out rows. For segment effects and calibration."""
        frame = pd.concat([self.train.frame, self.test.frame], ignore_index=True)
        table = TrainingTable(
            frame=frame, features=self.train.features, arms=self.train.arms, control=self.train.control,
            outcome=self.train.outcome, source=self.train.source, economics=self.train.economics,
            outcome_kind=self.train.outcome_kind,
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
        out.update(self._net_metrics())
        out["cv_rows"] = float(len(self.train.frame))
        out["refit_rows"] = float(self.cv_sample.of if self.cv_sample else len(self.train.frame))
        out["cv_sample_share"] = float(self.cv_sample.share if self.cv_sample else 1.0)
        return out


    def _net_metrics(self) -> dict[str, float]:
        """Net value per person of each policy and the targeted rule's gain over the best single arm."""
        net = self.net_policies
        if net is None or self.rule is None:
            return {}
        out = {f"net_value_{name.replace(':', '_').replace('@', '.')}": float(net.loc[name, "value"])
               for name in net.index}
        out["net_gain_vs_best_arm"] = float(net.loc["targeted", "diff"])
        out["net_gain_vs_best_arm_lo"] = float(net.loc["targeted", "diff_lo"])
        out["net_rule_price"] = float(self.rule.price)
        out["net_spend_targeted"] = float(net.loc["targeted", "spend"])
        if self.cost_curve is not None:
            out["cost_curve_break_even_spend"] = self.cost_curve.break_even_spend
            out["cost_curve_best_spend"] = self.cost_curve.best_spend
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


def outcome_strata(y: np.ndarray) -> np.ndarray:
    """The outcome as a stratum label: itself when 0/1, else whether it is above 0 (spent something or not)."""
    y = np.asarray(y)
    if np.isin(y, (0, 1)).all():
        return y.astype(np.int64).astype(str)
    return np.where(y.astype(float) > 0, "positive", "zero_or_less")


def cv_sample(arm: np.ndarray, y: np.ndarray, size: int, seed: int) -> CVSample:
    """``size`` rows stratified by arm x outcome, positions sorted.

    Each stratum keeps its share: ``floor(share x size)`` rows, and the rows left over go to the strata with the
    largest remainders (largest-remainder rounding, so a stratum never gets more than one row beyond its exact
    share); within a stratum the rows are a seeded random choice.
    """
    n = len(arm)
    # the strata numbered by first appearance, as the text "arm|outcome" would number them (without the text)
    arm_codes, _ = pd.factorize(pd.Series(arm).astype(str))
    y = np.asarray(y)
    binary = np.isin(y, (0, 1)).all()  # outcome_strata's labels, one to one, as numbers
    outcome_codes, outcomes = pd.factorize(y.astype(np.int64) if binary else y.astype(float) > 0)
    codes, _ = pd.factorize(arm_codes.astype(np.int64) * max(len(outcomes), 1) + outcome_codes)
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


def split_keys(frame: pd.DataFrame) -> pd.Series:
    """What the held-out split hashes: the ``cluster`` column when people were randomised in groups, else
    ``person_id``."""
    from uplift.data.trainingtable import CLUSTER_COLUMN

    return frame[CLUSTER_COLUMN] if CLUSTER_COLUMN in frame.columns else frame["person_id"]


def heldout_mask(person_id: pd.Series, share: float, seed: int) -> np.ndarray:
    """True for rows whose person (or cluster: pass :func:`split_keys`) falls in the test share (a seeded hash of
    the id: stable, by person)."""
    if isinstance(person_id.dtype, pd.CategoricalDtype):  # each distinct id hashed once (a row's hash is its own)
        per_id = heldout_mask(pd.Series(person_id.cat.categories), share, seed)
        codes = person_id.cat.codes.to_numpy()
        return np.where(codes >= 0, per_id[codes], heldout_mask(pd.Series([np.nan]), share, seed)[0])
    h = pd.util.hash_pandas_object(person_id.astype(str) + f"#{seed}", index=False).to_numpy()
    return (h / np.float64(2**64)) < share


def fold_ids(arm: np.ndarray, y: np.ndarray, folds: int, seed: int, *, groups: np.ndarray | None = None) -> np.ndarray:
    """Fold number per row, stratified by arm x outcome; with ``groups`` (clusters) a group's rows share a fold.

    An arm x outcome stratum with fewer rows than folds (a rare outcome in a small arm) is named in a
    :class:`~uplift.errors.ThinDataWarning`: some folds have none of it.

    Raises
    ------
    DataError
        Fewer groups than folds.
    """
    strata = pd.Series(arm).astype(str).to_numpy() + "|" + outcome_strata(y)
    _warn_thin_strata(strata, folds)
    out = np.empty(len(arm), dtype=np.int64)
    if groups is None:
        splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(arm)), strata)
    else:
        n_groups = pd.Series(groups).nunique()
        if n_groups < folds:
            raise DataError(f"{n_groups} cluster(s) among the training rows; {folds} folds need at least {folds}")
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(arm)), strata, groups)
    with warnings.catch_warnings():  # scikit-learn's words for it; _warn_thin_strata has said it in ours
        warnings.filterwarnings("ignore", message="The least populated class in y has only", category=UserWarning)
        for k, (_, val) in enumerate(splits):
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
        "targeted": recommend_shrunk(effects, model.mean_effects_, lam, model.control),
        "argmax": recommend(effects, model.control),
        "best_single_arm": np.full(n, best_single_arm(model.mean_effects_, model.control), dtype=object),
    }
    policies.update({f"all:{a}": v for a, v in single_arm_policies(list(arms), n).items()})
    return policies


def net_policy_recommendations(effects: pd.DataFrame, model: MultiArmUplift, rule: NetRule, arms: tuple[str, ...],
                               costs: pd.DataFrame, value: float) -> dict[str, np.ndarray]:
    """The policies compared by net value: targeted (the net rule), argmax (unshrunk estimates, net of costs),
    best single arm (by average net value, no one when none pays), every arm for everyone (``all:<control>``:
    treat no one). ``costs``: incremental cost per row and treatment arm."""
    n, control = len(effects), model.control
    policies = {
        "targeted": rule.recommend(effects, model.mean_effects_, costs, value=value, control=control),
        "argmax": recommend_net(effects, costs, value=value, control=control),
        "best_single_arm": np.full(n, best_net_arm(model.mean_effects_, costs, value=value, control=control),
                                   dtype=object),
    }
    policies.update({f"all:{a}": v for a, v in single_arm_policies(list(arms), n).items()})
    return policies


def _fit(spec: ModelSpec, table: TrainingTable, matrix: FeatureMatrix | None) -> MultiArmUplift:
    """The spec's model fitted on ``table``'s rows (their features from ``matrix`` when given)."""
    if matrix is None:
        return MultiArmUplift.from_table(spec, table).fit_table(table)
    f = table.frame
    model = MultiArmUplift(spec, matrix.features, table.arms, table.control)
    return model.fit_matrix(matrix, f["arm"].to_numpy(), f["outcome"].to_numpy(), table.propensity())


def _predict(model: MultiArmUplift, table: TrainingTable, matrix: FeatureMatrix | None) -> pd.DataFrame:
    if matrix is None:
        return model.predict(table.frame[table.feature_names])
    return model.predict_matrix(matrix, index=table.frame.index)


def fit_fold(spec: ModelSpec, table: TrainingTable, folds: np.ndarray, k: int,
             matrix: FeatureMatrix | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """Fit on every fold but ``k`` and predict fold ``k``: its predictions (rows of fold ``k`` in order, one
    column per treatment arm) and its per-arm metrics. ``matrix``: the rows' features, when ``table`` holds none."""
    fit_rows, val_rows = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
    part = (lambda rows: matrix.rows(rows)) if matrix is not None else (lambda rows: None)
    model = _fit(spec, table.subset(fit_rows), part(fit_rows))
    val = table.subset(val_rows)
    pred = _predict(model, val, part(val_rows))
    return pred.to_numpy(), _metrics(val, pred.reset_index(drop=True)).assign(fold=k)


def _cross_fit(spec: ModelSpec, train: TrainingTable, folds: np.ndarray, say: Progress,
               matrix: FeatureMatrix | None = None) -> list:
    """Every fold's :func:`fit_fold`, in ``spec.cv.jobs`` processes (the same results as one after the other:
    each fit is seeded and single-threaded as the spec says)."""
    ks = range(spec.cv.folds)
    if spec.cv.jobs == 1:
        out = []
        for k in ks:
            say(f"fold {k + 1}/{spec.cv.folds}")
            out.append(fit_fold(spec, train, folds, k, matrix))
        return out
    say(f"{spec.cv.folds} folds in {spec.cv.jobs} processes")
    fit = quietly(fit_fold)  # the worker processes drop the same third-party notices as this one
    return Parallel(n_jobs=spec.cv.jobs, backend="loky")(delayed(fit)(spec, train, folds, k, matrix) for k in ks)


def _plain_propensities(table: TrainingTable) -> TrainingTable:
    """``table`` with propensity columns held as categories (:func:`~uplift.modeling.tablereader.read_for_training`)
    made float columns again, for the metrics and the segment table (the final fit reads the categories as they
    are)."""
    f = table.frame
    columns = [c for c in table.propensity_columns if isinstance(f[c].dtype, pd.CategoricalDtype)]
    if not columns:
        return table
    frame = f.assign(**{c: f[c].to_numpy(dtype=float) for c in columns})
    return dataclasses.replace(table, frame=frame)


def _positions(mask: np.ndarray) -> slice | np.ndarray:
    """The rows where ``mask`` holds: a slice when they are one contiguous range (views, no copies)."""
    rows = np.flatnonzero(mask)
    if len(rows) == 0 or rows[-1] - rows[0] + 1 == len(rows):
        return slice(int(rows[0]), int(rows[-1]) + 1) if len(rows) else slice(0, 0)
    return rows


@dataclass(frozen=True)
class _Rule:
    """The chosen targeting rule: its shrinkage choice and, with economics, the net-value rule."""

    shrinkage: ShrinkageChoice
    net: NetRule | None


def _choose_rule(spec: ModelSpec, train: TrainingTable, oof: pd.DataFrame, model: MultiArmUplift) -> _Rule:
    """The shrinkage factor by out-of-fold IPW value: of conversions, or of net value when economics are declared."""
    f = train.frame
    common = dict(y=f["outcome"].to_numpy(), arm=f["arm"].to_numpy(), propensity=train.propensity(),
                  control=train.control, grid=spec.targeting.shrinkage_grid, one_se_rule=spec.targeting.one_se_rule)
    econ = train.economics
    if econ is None:
        return _Rule(choose_shrinkage(oof, model.mean_effects_, **common), None)
    net = choose_net_rule(oof, model.mean_effects_, costs=econ.cost_matrix(f, train.arms, source=train.source),
                          economics=econ, cluster=train.clusters, **common)
    return _Rule(ShrinkageChoice(lam=net.lam, table=net.table), net)


@dataclass(frozen=True)
class _Heldout:
    """What the held-out rows say about the model and its rule."""

    predictions: pd.DataFrame
    metrics: pd.DataFrame
    policies: pd.DataFrame
    net_policies: pd.DataFrame | None
    cost_curve: CostCurve | None


def _evaluate_heldout(model: MultiArmUplift, test: TrainingTable, rule: _Rule,
                      matrix: FeatureMatrix | None = None) -> _Heldout:
    """Score the held-out rows (in chunks, with a matrix); value every policy in conversions (and in net value with
    economics)."""
    tf = test.frame
    pred = _predict(model, test, matrix)
    metrics = _metrics(test, pred)  # first: its pairwise weights are gone before the policies are made
    y, arm, propensity, cluster = tf["outcome"].to_numpy(), tf["arm"].to_numpy(), test.propensity(), test.clusters
    econ = test.economics
    if econ is None or rule.net is None:
        recs = policy_recommendations(pred, model, rule.shrinkage.lam, test.arms)
        policies = compare_policies(y, arm, propensity, recs, baseline="best_single_arm", cluster=cluster)
        return _Heldout(pred, metrics, policies, None, None)
    full = econ.cost_matrix(tf, test.arms, source=test.source)
    inc = full[list(test.treatment_arms)].sub(full[test.control], axis=0)
    recs = net_policy_recommendations(pred, model, rule.net, test.arms, inc, econ.value)
    policies = compare_policies(y, arm, propensity, recs, baseline="best_single_arm", cluster=cluster)
    net = compare_net_policies(y, arm, propensity, recs, "best_single_arm", costs=full, value=econ.value,
                               cluster=cluster)
    curve = None
    if (inc.to_numpy(float) > 0).all():
        gains = econ.value * shrink(pred, model.mean_effects_, rule.net.lam)
        curve = cost_curve(gains, inc, y=y, arm=arm, propensity=propensity, full_costs=full, value=econ.value,
                           control=test.control, cluster=cluster)
    return _Heldout(pred, metrics, policies, net, curve)


def validate_model(spec: ModelSpec, table: TrainingTable, *, progress: Progress | None = None,
                   matrix: FeatureMatrix | None = None) -> ValidationReport:
    """Cross-validate, choose the targeting policy, refit, and evaluate on the held-out test set.

    With ``spec.cv.sample_rows`` below the number of training rows, the folds are drawn from a sample stratified
    by arm and outcome (:func:`cv_sample`, recorded in the report and its metrics), and the final model is
    fitted on every training row.

    ``matrix``: the features of ``table``'s rows as a :class:`FeatureMatrix` (``table`` then need not hold
    them; :func:`uplift.modeling.tablereader.read_for_training`), for the ordinal learners: the same report as
    from the table's frame, with the held-out split and the final fit on views of it where the rows are ranges.
    """
    say = progress or (lambda _msg: None)
    if matrix is not None and len(matrix) != len(table.frame):
        raise DataError(f"{table.source or 'training table'}: the feature matrix has {len(matrix):,} rows, the "
                        f"table {len(table.frame):,}")
    is_test = heldout_mask(split_keys(table.frame), spec.cv.test_share, spec.cv.seed)
    full_rows, test_rows = _positions(~is_test), _positions(is_test)
    full, test = table.subset(full_rows), table.subset(test_rows)
    full_x, test_x = (matrix.rows(full_rows), matrix.rows(test_rows)) if matrix is not None else (None, None)
    sample = None
    if spec.cv.sample_rows is not None and spec.cv.sample_rows < len(full.frame):
        sample = cv_sample(full.frame["arm"].to_numpy(), full.frame["outcome"].to_numpy(), spec.cv.sample_rows,
                           spec.cv.seed)
        say(f"cross-validating on a stratified sample of {len(sample.rows):,} of {sample.of:,} training rows")
    train = full.subset(sample.rows) if sample is not None else full
    train, test = _plain_propensities(train), _plain_propensities(test)
    train_x = full_x.rows(sample.rows) if sample is not None and full_x is not None else full_x
    f = train.frame
    y, arm = f["outcome"].to_numpy(), f["arm"].to_numpy()
    folds = fold_ids(arm, y, spec.cv.folds, spec.cv.seed, groups=train.clusters)

    oof = pd.DataFrame(np.nan, index=f.index, columns=list(table.treatment_arms))
    fold_rows = []
    for k, (pred, metrics) in enumerate(_cross_fit(spec, train, folds, say, train_x)):
        oof.iloc[np.flatnonzero(folds == k)] = pred
        fold_rows.append(metrics)
    cv_fold = pd.concat(fold_rows).rename_axis("arm").reset_index()
    cv_metrics = _metrics(train, oof)
    spread = cv_fold.groupby("arm")[["qini", "auuc"]].std(ddof=1).add_suffix("_fold_std")
    cv_metrics = cv_metrics.join(spread)

    say("refit on all training rows")
    del train_x
    model = _fit(spec, full, full_x)
    rule = _choose_rule(spec, train, oof, model)
    say("evaluate on the held-out test set")
    held = _evaluate_heldout(model, test, rule, test_x)
    return ValidationReport(
        spec=spec,
        model=model,
        train=train,
        test=test,
        oof=oof,
        test_predictions=held.predictions,
        cv_metrics=cv_metrics,
        cv_fold_metrics=cv_fold,
        test_metrics=held.metrics,
        shrinkage=rule.shrinkage,
        policies=held.policies,
        folds=folds,
        cv_sample=sample,
        rule=rule.net,
        net_policies=held.net_policies,
        cost_curve=held.cost_curve,
    )
