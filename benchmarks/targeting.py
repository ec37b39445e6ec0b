"""Targeting quality on a real randomised multi-arm experiment, every learner on the same repeated folds.

Any CSV with a :class:`uplift.adapters.ColumnMapping` (treatment column, control label, outcomes,
feature columns) works; Hillstrom is the default. For every repeat (a seed) the rows are split
into K folds stratified by arm and outcome (:func:`uplift.modeling.validation.fold_ids`); every
learner is fitted on K-1 folds and predicts the held-out fold (a mapping's cluster column keeps each cluster in
one fold, and the intervals are cluster-robust). Per fold and arm: Qini and AUUC
(:mod:`uplift.modeling.metrics`, pairwise-IPW weighted). Per repeat, on the out-of-fold
predictions of all rows: the IPW value (:mod:`uplift.modeling.policyvalue`) of the raw argmax
policy and of the shrunk targeting (factor chosen, for each fold, on the out-of-fold rows of the
other folds), beside every single-arm policy. With :class:`~benchmarks.netview.NetLevels` (a value per
conversion and contact costs) the same predictions are also judged by net value (:mod:`benchmarks.netview`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.netview import NetLevels, net_comparison, net_recommendations
from uplift.adapters import ColumnMapping, load_experiment_csv
from uplift.data.trainingtable import TrainingTable
from uplift.errors import SpecError
from uplift.modeling.estimator import MultiArmUplift, arm_mean_effects
from uplift.modeling.metrics import arm_metrics, pairwise_ipw_weights
from uplift.modeling.policyvalue import compare_policies, single_arm_policies
from uplift.modeling.targeting import choose_shrinkage, recommend, shrink
from uplift.modeling.validation import fold_ids
from uplift.specs import load_spec
from uplift.specs.model import ForestSpec, ModelSpec

__all__ = ["TargetingSettings", "TargetingResult", "LEARNER_NOTES", "learner_specs", "with_threads", "run_targeting",
           "evaluate_learners"]

LEARNER_NOTES: dict[str, str] = {
    "pooled": "ours: one LightGBM over all arms (models/pooled_lightgbm.yaml)",
    "t_shared": "ours: T-learner, one shared control model (models/t_shared_lightgbm.yaml)",
    "causalml_t": "causalml BaseTClassifier, LGBMClassifier with LightGBM defaults",
    "causalml_x": "causalml BaseXClassifier, LGBMClassifier / LGBMRegressor with LightGBM defaults, design propensity",
    "causalml_dr": "causalml BaseDRLearner, LGBMRegressor with LightGBM defaults, design propensity",
    "causalml_uplift_forest": "causalml UpliftRandomForestClassifier, causalml defaults (10 trees, depth 5, KL)",
    "logistic_baseline": "two-model logistic regression, one-hot features (models/t_logistic.yaml)",
}
"""Every learner of the comparison and what it is. causalml's meta-learners have no default base
learner (it must be passed), so they get LightGBM with its own defaults (100 trees, 31 leaves)."""


@dataclass(frozen=True)
class TargetingSettings:
    """What to run: the data, the outcomes, the repeated cross-validation and the learners.

    Attributes
    ----------
    csv, mapping : the experiment file and its column mapping YAML.
    outcomes : outcome columns (each declared in the mapping); the first is the headline.
    repeats, folds : repeated stratified K-fold.
    learners : names from :data:`LEARNER_NOTES`.
    rows : use a seeded sample of this many rows (None = all), for tiny test runs.
    threads : LightGBM threads per fit (see :func:`with_threads`).
    """

    csv: Path
    mapping: Path
    outcomes: tuple[str, ...] = ("visit",)
    repeats: int = 2
    folds: int = 3
    learners: tuple[str, ...] = tuple(LEARNER_NOTES)
    rows: int | None = None
    threads: int = 1
    net: NetLevels | None = None
    """Value per conversion and contact costs of the net-value view (None: no net view)."""


@dataclass(frozen=True)
class TargetingResult:
    """Per outcome, learner and arm: Qini / AUUC mean and spread; per learner: policy values.

    Attributes
    ----------
    arms : outcome, learner, arm, qini_mean, qini_sd, auuc_mean, auuc_sd, folds (fold values).
    policies : outcome, learner, policy, value, lo, hi, diff (to the best single arm), diff_lo,
        diff_hi, share_deviating, lam (mean chosen shrinkage, targeted only); means over repeats.
    single_arm : outcome, policy, value, lo, hi: the "everyone gets one arm" policies.
    seconds : outcome, learner, seconds (fit + predict over all folds and repeats).
    info : rows, arms, control, best single arm per outcome.
    net : outcome, cost, policy, value, lo, hi, diff, diff_lo, diff_hi, spend, lam
        (:func:`benchmarks.netview.net_comparison`), means over repeats; None without a net view.
    """

    settings: TargetingSettings
    arms: pd.DataFrame = field(repr=False)
    policies: pd.DataFrame = field(repr=False)
    single_arm: pd.DataFrame = field(repr=False)
    seconds: pd.DataFrame = field(repr=False)
    info: dict[str, object] = field(default_factory=dict)
    net: pd.DataFrame | None = field(default=None, repr=False)


def with_threads(spec: ModelSpec, threads: int) -> ModelSpec:
    """``spec`` with LightGBM limited to ``threads`` threads (other parameters unchanged).

    On a shared machine OpenMP threads that spin while another process holds the cores make a
    two-thread LightGBM fit ten times slower than a one-thread fit, so the benchmarks pin it.
    """
    return spec.model_copy(update={"lightgbm": {**spec.lightgbm, "n_jobs": threads}})


def learner_specs(root: Path, *, threads: int = 1) -> dict[str, ModelSpec]:
    """The model spec of every learner in :data:`LEARNER_NOTES`, LightGBM on ``threads`` threads."""
    models = root / "models"
    forest_defaults = ForestSpec(n_estimators=10, max_depth=5, min_samples_leaf=100, min_samples_treatment=10,
                                 evaluation_function="KL", max_rows=None)
    specs = {
        "pooled": load_spec(models / "pooled_lightgbm.yaml", ModelSpec),
        "t_shared": load_spec(models / "t_shared_lightgbm.yaml", ModelSpec),
        "causalml_t": ModelSpec(name="causalml_t_defaults", learner="t"),
        "causalml_x": ModelSpec(name="causalml_x_defaults", learner="x"),
        "causalml_dr": ModelSpec(name="causalml_dr_defaults", learner="dr"),
        "causalml_uplift_forest": ModelSpec(name="causalml_forest_defaults", learner="uplift_forest",
                                            forest=forest_defaults),
        "logistic_baseline": load_spec(models / "t_logistic.yaml", ModelSpec),
    }
    return {name: with_threads(spec, threads) for name, spec in specs.items()}


def _fold_metrics(table: TrainingTable, rows: np.ndarray, scores: pd.DataFrame) -> pd.DataFrame:
    f = table.frame.iloc[rows]
    weights = pairwise_ipw_weights(f["arm"].to_numpy(), table.propensity().iloc[rows], table.control)
    return arm_metrics(f["outcome"].to_numpy(), f["arm"].to_numpy(), scores, table.control, weights=weights)


def _crossfitted_targeting(
    oof: pd.DataFrame, means: list[pd.Series], folds: np.ndarray, table: TrainingTable, spec: ModelSpec
) -> tuple[np.ndarray, float]:
    """Shrunk policy per row: for fold k the factor is chosen on the other folds' out-of-fold rows."""
    f = table.frame
    out = np.empty(len(f), dtype=object)
    lams = []
    for k, mean in enumerate(means):
        own, other = folds == k, folds != k
        choice = choose_shrinkage(
            oof[other], mean, y=f["outcome"].to_numpy()[other], arm=f["arm"].to_numpy()[other],
            propensity=table.propensity()[other], control=table.control,
            grid=spec.targeting.shrinkage_grid, one_se_rule=spec.targeting.one_se_rule,
        )
        out[own] = recommend(shrink(oof[own], mean, choice.lam), table.control)
        lams.append(choice.lam)
    return out, float(np.mean(lams))


def evaluate_learners(
    table: TrainingTable,
    specs: dict[str, ModelSpec],
    *,
    repeats: int,
    folds: int,
    progress: Callable[[str], None] | None = None,
    net: NetLevels | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, str, pd.DataFrame | None]:
    """Repeated K-fold evaluation of every learner on ``table`` (same folds for all).

    Returns
    -------
    fold_metrics : repeat, fold, learner, arm, qini, auuc.
    policies : repeat, learner, policy, value, lo, hi, diff, diff_lo, diff_hi, share_deviating, lam.
    single_arm : policy, value, lo, hi (one evaluation; these policies do not depend on a model).
    seconds : learner, seconds.
    best : the best single arm (highest IPW value of "everyone gets it" on all rows).
    net : repeat and the columns of :func:`benchmarks.netview.net_comparison`; None without ``net``.
    """
    import time

    say = progress or (lambda _m: None)
    f = table.frame
    y, arm, prop, cluster = f["outcome"].to_numpy(), f["arm"].to_numpy(), table.propensity(), table.clusters
    singles = {f"all:{a}": v for a, v in single_arm_policies(list(table.arms), len(f)).items()}
    first = next(iter(singles))
    single = compare_policies(y, arm, prop, singles, baseline=first, cluster=cluster)
    best = str(single["value"].idxmax())
    metric_rows, policy_rows, net_rows, seconds = [], [], [], {name: 0.0 for name in specs}
    for r in range(repeats):
        fold = fold_ids(arm, y, folds, seed=r, groups=cluster)
        net_recs = {}
        for name, spec in specs.items():
            say(f"repeat {r + 1}/{repeats}: {name}")
            oof = pd.DataFrame(np.nan, index=f.index, columns=list(table.treatment_arms))
            means = []
            start = time.perf_counter()
            for k in range(folds):
                fit_rows, val_rows = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
                model = MultiArmUplift.from_table(spec, table).fit_table(table.subset(fit_rows))
                pred = model.predict(f.iloc[val_rows][table.feature_names])
                oof.iloc[val_rows] = pred.to_numpy()
                means.append(model.mean_effects_)
                m = _fold_metrics(table, val_rows, pred.reset_index(drop=True))
                metric_rows.append(m[["qini", "auuc"]].rename_axis("arm").reset_index().assign(
                    repeat=r, fold=k, learner=name))
            seconds[name] += time.perf_counter() - start
            targeted, lam = _crossfitted_targeting(oof, means, fold, table, spec)
            policies = {"targeted": targeted, "argmax": recommend(oof, table.control), **singles}
            compared = compare_policies(y, arm, prop, policies, baseline=best,
                                        cluster=cluster).loc[["targeted", "argmax"]]
            compared = compared.rename_axis("policy").reset_index()
            compared["lam"] = [lam, 1.0]
            policy_rows.append(compared.assign(repeat=r, learner=name))
            if net is not None:
                net_recs[name] = net_recommendations(oof, means, fold, table, spec, net)
        if net is not None:
            net_rows.append(net_comparison(table, net_recs, net).assign(repeat=r))
    single = compare_policies(y, arm, prop, singles, baseline=best, cluster=cluster)
    return (
        pd.concat(metric_rows, ignore_index=True),
        pd.concat(policy_rows, ignore_index=True),
        single.rename_axis("policy").reset_index()[["policy", "value", "lo", "hi", "diff", "diff_lo", "diff_hi"]],
        pd.DataFrame({"learner": list(seconds), "seconds": list(seconds.values())}),
        best,
        pd.concat(net_rows, ignore_index=True) if net_rows else None,
    )


def run_targeting(settings: TargetingSettings, *, root: Path,
                  progress: Callable[[str], None] | None = None) -> TargetingResult:
    """Load the experiment once per outcome and evaluate every learner; see the module docstring."""
    mapping = load_spec(settings.mapping, ColumnMapping)
    specs = {name: spec for name, spec in learner_specs(root, threads=settings.threads).items()
             if name in settings.learners}
    unknown = sorted(set(settings.learners) - set(specs))
    if unknown:
        raise SpecError(f"learners {unknown} are not valid; valid: {list(LEARNER_NOTES)}")
    arms, policies, singles, seconds, nets, info = [], [], [], [], [], {}
    for outcome in settings.outcomes:
        table = load_experiment_csv(settings.csv, mapping, outcome=outcome)
        if settings.rows is not None and settings.rows < len(table.frame):
            keep = np.sort(np.random.default_rng(0).choice(len(table.frame), settings.rows, replace=False))
            table = table.subset(keep)
        say = (lambda m, o=outcome: progress(f"{o}: {m}")) if progress else None
        fold_m, pol, single, secs, best, net = evaluate_learners(
            table, specs, repeats=settings.repeats, folds=settings.folds, progress=say, net=settings.net)
        if net is not None:
            numeric = ["value", "lo", "hi", "diff", "diff_lo", "diff_hi", "spend", "lam"]
            net_means = net.groupby(["cost", "policy"], sort=False)[numeric].mean()
            nets.append(net_means.reset_index().assign(outcome=outcome))
        summary = fold_m.groupby(["learner", "arm"], sort=False).agg(
            qini_mean=("qini", "mean"), qini_sd=("qini", "std"), auuc_mean=("auuc", "mean"),
            auuc_sd=("auuc", "std"), folds=("qini", "size")).reset_index()
        arms.append(summary.assign(outcome=outcome))
        numeric = ["value", "lo", "hi", "diff", "diff_lo", "diff_hi", "share_deviating", "lam"]
        policies.append(pol.groupby(["learner", "policy"],
                                    sort=False)[numeric].mean().reset_index().assign(outcome=outcome))
        singles.append(single.assign(outcome=outcome))
        seconds.append(secs.assign(outcome=outcome))
        means = arm_mean_effects(table.frame["outcome"].to_numpy(), table.frame["arm"].to_numpy(),
                                 table.propensity(), table.control, table.treatment_arms)
        info[outcome] = {"rows": len(table.frame), "arms": list(table.arms), "control": table.control,
                         "best_single_arm": best, "base_rate": float(table.frame["outcome"].mean()),
                         "mean_effects": {a: float(v) for a, v in means.items()}}
    return TargetingResult(
        settings=settings,
        arms=pd.concat(arms, ignore_index=True),
        policies=pd.concat(policies, ignore_index=True),
        single_arm=pd.concat(singles, ignore_index=True),
        seconds=pd.concat(seconds, ignore_index=True),
        info=info,
        net=pd.concat(nets, ignore_index=True) if nets else None,
    )
