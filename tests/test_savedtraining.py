"""Training from a saved table (read for the spec, features as one float32 matrix) logs the run the table in
memory logs: the same metrics, parameters, model, segment tables and gate."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import feature_set_for
from uplift.data.trainingtable import TrainingTable
from uplift.features import build_training_table
from uplift.modeling.tablereader import read_heldout
from uplift.modeling.validation import heldout_mask
from uplift.specs.model import ModelSpec

pytestmark = pytest.mark.filterwarnings("ignore::uplift.errors.ThinDataWarning")

SPEC = {"name": "pooled_saved", "learner": "pooled",
        "lightgbm": {"n_estimators": 15, "learning_rate": 0.2, "num_leaves": 7, "min_child_samples": 40},
        "cv": {"folds": 2, "test_share": 0.3, "seed": 4}}


@pytest.fixture(scope="module")
def world(region, tmp_path_factory):
    from uplift.simulate import simulate

    world = simulate(region.subset(messages=["fresh_start", "free_voucher"], channels=["meta", "flyer"]),
                     people=4_000, waves=2, seed=11)
    table = build_training_table(world.audience, world.exposures, world.enrolments, feature_set_for(world))
    path = table.save(tmp_path_factory.mktemp("saved") / "training.parquet")
    return TrainingTable.load(path), path, world.truth


def _train(folder, spec_path, source, truth):
    from uplift.config import Settings
    from uplift.pipeline import train_and_log

    settings = Settings(workdir=folder, experiment_name="saved")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        trained = train_and_log(spec_path, source, settings=settings, data_source="world", truth=truth)
    run = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").get_run(trained.run_id)
    return trained, run


def test_a_saved_table_logs_the_run_its_frame_logs(world, tmp_path):
    table, path, truth = world
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    (tmp_path / "frame").mkdir()
    (tmp_path / "file").mkdir()
    reference, ref_run = _train(tmp_path / "frame", spec_path, table, truth)
    trained, run = _train(tmp_path / "file", spec_path, path, truth)

    assert set(table.feature_names) - set(trained.report.train.frame.columns)  # read for the spec: a lean frame
    assert run.data.metrics == ref_run.data.metrics
    assert run.data.params == ref_run.data.params
    ours = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    assert ours == {k: v for k, v in ref_run.data.tags.items() if not k.startswith("mlflow.")}
    assert "training_table_digest" in ours and "data_until" in ours
    assert trained.promoted == reference.promoted and trained.reason == reference.reason
    booster = trained.report.model.learner_.model_.booster_.model_to_string()
    assert booster == reference.report.model.learner_.model_.booster_.model_to_string()
    pd.testing.assert_frame_equal(trained.segments, reference.segments, check_exact=True)
    pd.testing.assert_frame_equal(trained.truth_policies, reference.truth_policies, check_exact=True)
    # the logged held-out rows carry every column, as the frame's do (the gate scores the champion on them)
    pd.testing.assert_frame_equal(trained.report.test.frame, reference.report.test.frame, check_exact=True)
    raw = table.frame.head(300)
    pd.testing.assert_frame_equal(trained.report.model.predict(raw[table.feature_names]),
                                  reference.report.model.predict(raw[table.feature_names]), check_exact=True)
    pickle.dumps(trained.report.model)  # the model as logged holds no view of the training matrix it could drag


def test_held_out_rows_read_in_batches_equal_the_loaded_tables(world):
    table, path, _ = world
    spec = ModelSpec(**SPEC)
    mask = heldout_mask(table.frame["person_id"], spec.cv.test_share, spec.cv.seed)
    heldout = read_heldout(path, spec, batch_rows=333)
    pd.testing.assert_frame_equal(heldout.frame, table.subset(np.flatnonzero(mask)).frame, check_exact=True)
    assert heldout.features == table.features and heldout.arms == table.arms
