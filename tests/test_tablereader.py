"""Training from the float32 feature matrix read column by column equals training from the table's frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import feature_set_for
from uplift.data.trainingtable import TrainingTable
from uplift.errors import DataError
from uplift.features import build_training_table
from uplift.modeling.estimator import MultiArmUplift
from uplift.modeling.featurematrix import encode_frame
from uplift.modeling.preprocess import check_feature_frame
from uplift.modeling.tablereader import read_for_training
from uplift.modeling.validation import heldout_mask, validate_model
from uplift.specs.model import ModelSpec

pytestmark = pytest.mark.filterwarnings("ignore::uplift.errors.ThinDataWarning")

SMALL = {"n_estimators": 15, "learning_rate": 0.2, "num_leaves": 7, "min_child_samples": 40, "subsample": 0.8,
         "subsample_freq": 1}


@pytest.fixture(scope="module")
def saved(region, tmp_path_factory):
    from uplift.simulate import simulate

    world = simulate(region.subset(messages=["fresh_start", "free_voucher"], channels=["meta", "flyer"]),
                     people=5_000, waves=2, seed=5)
    table = build_training_table(world.audience, world.exposures, world.enrolments, feature_set_for(world))
    return table.save(tmp_path_factory.mktemp("reader") / "table.parquet")


def _spec(learner: str = "pooled", **cv) -> ModelSpec:
    return ModelSpec(name="small", learner=learner, lightgbm=SMALL, cv={"folds": 3, "seed": 2, **cv})


@pytest.mark.parametrize("cv", [{}, {"sample_rows": 3_000}])
def test_matrix_training_equals_frame_training(saved, cv):
    spec = _spec(**cv)
    reference = validate_model(spec, TrainingTable.load(saved))
    table, matrix = read_for_training(saved, spec, keep=("age_band", "gender", "municipality"))
    assert matrix.values.dtype == np.float32 and matrix.values.flags.c_contiguous
    assert "prior_waves" not in table.frame.columns and isinstance(table.frame["arm"].dtype, pd.CategoricalDtype)
    # a wave's design holds few probabilities: categories for the whole table, floats again where evaluated
    assert all(isinstance(table.frame[c].dtype, pd.CategoricalDtype) for c in table.propensity_columns)
    report = validate_model(spec, table, matrix=matrix)
    assert all(report.test.frame[c].dtype == np.float64 for c in report.test.propensity_columns)
    pd.testing.assert_frame_equal(report.oof, reference.oof, check_exact=True)
    pd.testing.assert_frame_equal(report.test_predictions, reference.test_predictions, check_exact=True)
    pd.testing.assert_frame_equal(report.cv_fold_metrics, reference.cv_fold_metrics, check_exact=True)
    np.testing.assert_array_equal(report.folds, reference.folds)
    assert report.summary_metrics() == reference.summary_metrics()
    assert report.model.learner_.model_.booster_.model_to_string() == \
        reference.model.learner_.model_.booster_.model_to_string()
    # the held-out people are the same rows, read after the training rows
    pd.testing.assert_series_equal(report.test.frame["person_id"].astype(str),
                                   reference.test.frame["person_id"].astype(str), check_dtype=False)
    # the model reads raw frames as before (what the logged model and the service give it)
    raw = TrainingTable.load(saved).frame.head(500)
    pd.testing.assert_frame_equal(report.model.predict(raw[reference.train.feature_names]),
                                  reference.model.predict(raw[reference.train.feature_names]), check_exact=True)


def test_final_fit_reads_a_view_of_the_matrix(saved):
    spec = _spec()
    table, matrix = read_for_training(saved, spec)
    n_test = int(heldout_mask(table.frame["person_id"], spec.cv.test_share, spec.cv.seed).sum())
    train_rows = matrix.rows(slice(0, len(matrix) - n_test))
    assert np.shares_memory(train_rows.values, matrix.values)
    model = MultiArmUplift(spec, matrix.features, table.arms, table.control)
    known = {f.name: matrix.vocabulary[f.name] for f in matrix.features if f.kind == "categorical"}
    assert matrix.encoded(known) is matrix.values  # every category present: the matrix itself, no copy
    f = table.frame.iloc[: len(matrix) - n_test]
    model.fit_matrix(train_rows, f["arm"].to_numpy(), f["outcome"].to_numpy(), table.subset(
        slice(0, len(matrix) - n_test)).propensity())
    assert model.learner_.model_.n_features_in_ == len(matrix.features) + 3


def test_a_category_missing_from_the_fit_rows_is_unknown_to_the_model():
    from uplift.data.trainingtable import FeatureColumn

    features = (FeatureColumn("colour", "categorical"), FeatureColumn("size", "numeric"))
    frame = check_feature_frame(pd.DataFrame({"colour": ["red", "blue", None, "green", "blue"],
                                              "size": [1.0, 2.5, np.nan, 4.0, 5.0]}), features, source="t")
    matrix = encode_frame(frame, features)
    assert matrix.vocabulary == {"colour": ("blue", "green", "red")}
    np.testing.assert_array_equal(matrix.values[:, 0], [2, 0, np.nan, 1, 0])
    # a model that saw only blue and red: red is its code 1, green unknown (missing)
    recoded = matrix.encoded({"colour": ("blue", "red")})
    np.testing.assert_array_equal(recoded[:, 0], [1, 0, np.nan, np.nan, 0])
    np.testing.assert_array_equal(recoded[:, 1], matrix.values[:, 1])
    assert matrix.present() == {"colour": (("blue", "green", "red"), True)}
    assert matrix.rows(np.array([0, 1])).present() == {"colour": (("blue", "red"), False)}


def test_a_matrix_of_other_rows_is_refused(saved):
    spec = _spec()
    table, matrix = read_for_training(saved, spec)
    with pytest.raises(DataError, match="feature matrix has"):
        validate_model(spec, table, matrix=matrix.rows(slice(0, 10)))
    with pytest.raises(DataError, match="one-hot"):
        MultiArmUplift(_spec("t_logistic"), matrix.features, table.arms, table.control).fit_matrix(
            matrix, table.frame["arm"].to_numpy(), table.frame["outcome"].to_numpy(), table.propensity())


def test_segment_table_from_the_lean_frame_equals_the_full_one(saved):
    from uplift.pipeline import load_segment_spec
    from uplift.segments import build_segment_table, columns_read

    spec, segment_spec = _spec(), load_segment_spec()
    reference = validate_model(spec, TrainingTable.load(saved))
    table, matrix = read_for_training(saved, spec, keep=columns_read(segment_spec))
    report = validate_model(spec, table, matrix=matrix)

    def segments(r):
        folds, heldout = r.out_of_sample_folds()
        return build_segment_table(*r.out_of_sample(), segment_spec, folds=folds, heldout_fold=heldout)

    pd.testing.assert_frame_equal(segments(report), segments(reference), check_exact=True)


def test_held_out_split_of_ids_as_categories_is_the_split_of_their_text():
    ids = pd.Series([f"p{i}" for i in np.random.default_rng(0).integers(0, 900, 3_000)])
    np.testing.assert_array_equal(heldout_mask(ids.astype("category"), 0.2, 3), heldout_mask(ids, 0.2, 3))


@pytest.mark.parametrize("learner", ["pooled", "t_shared"])
def test_prediction_in_chunks_equals_prediction_at_once(saved, learner):
    spec = _spec(learner)
    table, matrix = read_for_training(saved, spec)
    f = table.frame
    model = MultiArmUplift(spec, matrix.features, table.arms, table.control).fit_matrix(
        matrix, f["arm"].to_numpy(), f["outcome"].to_numpy(), table.propensity())
    whole = model.predict_matrix(matrix, chunk_rows=len(matrix))
    pd.testing.assert_frame_equal(model.predict_matrix(matrix, chunk_rows=37), whole, check_exact=True)
    assert list(whole.columns) == list(table.treatment_arms) and whole.to_numpy().dtype == np.float64
    with pytest.raises(ValueError, match="chunk_rows"):
        model.predict_matrix(matrix, chunk_rows=0)


def test_held_out_evaluation_in_small_chunks_equals_the_frame_report(saved, monkeypatch):
    import uplift.modeling.estimator as estimator

    spec = _spec()
    reference = validate_model(spec, TrainingTable.load(saved))
    monkeypatch.setattr(estimator, "PREDICT_CHUNK_ROWS", 101)
    table, matrix = read_for_training(saved, spec)
    report = validate_model(spec, table, matrix=matrix)
    pd.testing.assert_frame_equal(report.test_predictions, reference.test_predictions, check_exact=True)
    pd.testing.assert_frame_equal(report.test_metrics, reference.test_metrics, check_exact=True)
    pd.testing.assert_frame_equal(report.policies, reference.policies, check_exact=True)
    assert report.summary_metrics() == reference.summary_metrics()


def test_pooled_fit_writes_its_arm_features_into_the_spare_columns_without_a_copy(saved):
    import tracemalloc

    from uplift.modeling.featurematrix import FeatureMatrix

    spec = _spec()
    table, matrix = read_for_training(saved, spec)
    m = len(matrix.features)
    assert matrix.spare == 3 and matrix.values.shape == (len(table.frame), m + 3)
    assert np.isnan(matrix.values[:, m:]).all()  # free until the learner writes there
    f = table.frame

    def fit_peak(features):
        model = MultiArmUplift(spec, matrix.features, table.arms, table.control)
        tracemalloc.start()
        model.fit_matrix(features, f["arm"].to_numpy(), f["outcome"].to_numpy(), table.propensity())
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return model, peak

    without = FeatureMatrix(values=matrix.values[:, :m].copy(), features=matrix.features,
                            vocabulary=matrix.vocabulary)
    unreserved, peak_copy = fit_peak(without)
    model, peak = fit_peak(matrix)
    assert peak_copy - peak > 0.9 * matrix.values.nbytes  # the learner's wider copy is not made
    assert unreserved.learner_.model_.booster_.model_to_string() == model.learner_.model_.booster_.model_to_string()
    learner = model.learner_
    np.testing.assert_array_equal(matrix.values[:, m:], learner.arm_features_[
        pd.Index(learner.arms_).get_indexer(f["arm"].astype(str))])
    # the same booster as from the frame's rows (the learner's own wider copy)
    frame = TrainingTable.load(saved)
    order = np.concatenate([np.flatnonzero(~heldout_mask(frame.frame["person_id"], spec.cv.test_share,
                                                         spec.cv.seed)),
                            np.flatnonzero(heldout_mask(frame.frame["person_id"], spec.cv.test_share, spec.cv.seed))])
    same_rows = frame.subset(order)
    reference = MultiArmUplift.from_table(spec, same_rows).fit_table(same_rows)
    assert learner.model_.booster_.model_to_string() == reference.learner_.model_.booster_.model_to_string()


def test_a_matrix_whose_width_is_not_its_features_and_spare_columns_is_refused():
    from uplift.data.trainingtable import FeatureColumn
    from uplift.modeling.featurematrix import FeatureMatrix

    with pytest.raises(DataError, match="1 feature\\(s\\) and 3 spare"):
        FeatureMatrix(values=np.zeros((4, 2), dtype=np.float32), features=(FeatureColumn("a", "numeric"),),
                      vocabulary={}, spare=3)


def test_a_learner_without_arm_features_reads_the_features_of_a_matrix_with_spare_columns(saved):
    table, matrix = read_for_training(saved, _spec())  # the pooled learner's spare columns
    plain, unreserved = read_for_training(saved, _spec("t_shared"))
    assert matrix.spare == 3 and unreserved.spare == 0
    f = table.frame
    fitted = [MultiArmUplift(_spec("t_shared"), m.features, table.arms, table.control).fit_matrix(
        m, f["arm"].to_numpy(), f["outcome"].to_numpy(), table.propensity()) for m in (matrix, unreserved)]
    assert [m.models_[table.control].booster_.model_to_string() for m in (x.learner_ for x in fitted)] == \
        [fitted[1].learner_.models_[table.control].booster_.model_to_string()] * 2
    pd.testing.assert_frame_equal(fitted[0].predict_matrix(matrix), fitted[1].predict_matrix(unreserved),
                                  check_exact=True)
