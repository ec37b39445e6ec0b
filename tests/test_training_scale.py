"""Training that uses the machine: folds in processes give the sequential result; the stratified CV sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import feature_set_for
from uplift.features import build_training_table
from uplift.modeling.estimator import MultiArmUplift
from uplift.modeling.preprocess import check_feature_frame
from uplift.modeling.validation import cv_sample, validate_model
from uplift.specs.model import ModelSpec

SMALL = {"n_estimators": 20, "learning_rate": 0.2, "num_leaves": 7, "min_child_samples": 50, "subsample": 0.8,
         "subsample_freq": 1}


@pytest.fixture(scope="module")
def table(region):
    from uplift.simulate import simulate

    world = simulate(region.subset(messages=["fresh_start", "free_voucher"], channels=["meta", "flyer"]),
                     people=6_000, waves=2, seed=3)
    return build_training_table(world.audience, world.exposures, world.enrolments, feature_set_for(world))


def _spec(**cv) -> ModelSpec:
    return ModelSpec(name="small", learner="pooled", lightgbm=SMALL, cv={"folds": 3, "seed": 1, **cv})


def test_folds_in_processes_equal_folds_in_turn(table):
    one, two = validate_model(_spec(jobs=1), table), validate_model(_spec(jobs=2), table)
    pd.testing.assert_frame_equal(one.oof, two.oof, check_exact=True)
    pd.testing.assert_frame_equal(one.cv_fold_metrics, two.cv_fold_metrics, check_exact=True)
    pd.testing.assert_frame_equal(one.test_predictions, two.test_predictions, check_exact=True)
    assert one.summary_metrics() == two.summary_metrics()


def test_pooled_fit_reads_float32_and_predicts_as_its_booster(table):
    model = MultiArmUplift.from_table(_spec(), table).fit_table(table)
    frame = table.frame[table.feature_names]
    x32 = model._encode(check_feature_frame(frame, table.features, source="t"), np.float32)
    assert x32.dtype == np.float32 and x32.flags.c_contiguous
    # fitted on float32 values, the trees' thresholds sort float64 inputs the same way
    learner = model.learner_
    stacked = learner._stacked(x32.astype(np.float64), learner.arm_features_[[0]])
    booster = learner.model_.predict_proba(stacked)[:, 1]
    np.testing.assert_allclose(learner.predict_outcomes(model._matrix(frame, source="t"))[table.control], booster,
                               rtol=0, atol=1e-12)


def test_cv_sample_is_stratified_by_arm_and_outcome_and_recorded(table):
    f = table.frame
    sample = cv_sample(f["arm"].to_numpy(), f["outcome"].to_numpy(), 4_000, seed=1)
    assert len(sample.rows) == 4_000 and sample.of == len(f) and np.all(np.diff(sample.rows) > 0)
    strata = f["arm"] + "|" + f["outcome"].astype(str)
    share_all = strata.value_counts(normalize=True)
    kept = strata.iloc[sample.rows].value_counts().reindex(share_all.index, fill_value=0)
    assert (kept - share_all * 4_000).abs().max() <= 1.0  # each stratum keeps its share, to rounding
    spec = _spec(sample_rows=4_000)
    report = validate_model(spec, table)
    assert report.cv_sample is not None and len(report.train.frame) == len(report.oof) == 4_000
    metrics = report.summary_metrics()
    assert metrics["cv_rows"] == 4_000 and metrics["refit_rows"] == report.cv_sample.of > 4_000
    assert metrics["cv_sample_share"] == pytest.approx(4_000 / report.cv_sample.of)
    full = validate_model(_spec(), table)  # the final model saw every training row either way
    pd.testing.assert_frame_equal(report.test_predictions, full.test_predictions, check_exact=True)
