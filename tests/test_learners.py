"""The learners recover the simulator's true effects; estimator contract; targeting falls back when it should."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.errors import DataError, SchemaError
from uplift.modeling.estimator import MultiArmUplift, arm_mean_effects
from uplift.modeling.targeting import best_single_arm, choose_shrinkage, recommend, recommend_shrunk, shrink
from uplift.modeling.truthcheck import effect_recovery, true_outcome_probabilities
from uplift.modeling.validation import heldout_mask
from uplift.specs.model import ModelSpec

LGBM = {"n_estimators": 80, "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 100}

# Stated tolerance (strong world: 2 arms, ~79k person-waves, 30% of people held out):
# per arm, corr(estimated, true per-person uplift) >= MIN_CORR and the mean estimated effect within
# 40% of the true mean effect. Measured (seed 11): pooled 0.48 / 0.88, T 0.28 / 0.76, X 0.27 / 0.83,
# DR 0.23 / 0.79, logistic 0.34 / 0.70; mean effects within 12-31%.
MIN_CORR = {"pooled": 0.40, "t_shared": 0.15, "t": 0.15, "x": 0.15, "dr": 0.15, "t_logistic": 0.15}


@pytest.fixture(scope="module")
def split(strong_table):
    m = heldout_mask(strong_table.frame["person_id"], 0.3, 0)
    return strong_table.subset(np.flatnonzero(~m)), strong_table.subset(np.flatnonzero(m))


@pytest.fixture(scope="module")
def truth_p(split, strong_world):
    _, test = split
    return true_outcome_probabilities(test.frame[["person_id", "wave"]], strong_world.truth, test.arms)


@pytest.mark.parametrize("learner", sorted(MIN_CORR))
def test_learner_recovers_true_effects(learner, split, truth_p):
    train, test = split
    spec = ModelSpec(name=learner, learner=learner, lightgbm=LGBM)
    est = MultiArmUplift.from_table(spec, train).fit_table(train)
    pred = est.predict(test.frame[test.feature_names])
    assert list(pred.columns) == list(test.treatment_arms)
    rec = effect_recovery(pred, truth_p, test.control)
    assert (rec["true_corr"] >= MIN_CORR[learner]).all(), rec
    rel = (rec["est_mean_effect"] - rec["true_mean_effect"]).abs() / rec["true_mean_effect"].abs()
    assert (rel <= 0.40).all(), rec


def test_uplift_forest_runs_and_labels_arms(split):
    train, test = split
    spec = ModelSpec(name="f", learner="uplift_forest",
                     forest={"n_estimators": 5, "max_depth": 4, "min_samples_leaf": 300, "max_rows": 20_000})
    pred = MultiArmUplift.from_table(spec, train).fit_table(train).predict(test.frame[test.feature_names])
    assert list(pred.columns) == list(test.treatment_arms) and np.isfinite(pred.to_numpy()).all()


@pytest.mark.parametrize("learner", ["t", "x", "dr", "t_logistic", "uplift_forest"])
def test_causalml_learners_get_keyword_arguments(learner, split):
    """causalml 0.18 warns on positional ``treatment``/``y`` (1.0 reorders them to ``(X, y, treatment)``):
    fit and predict must pass them by keyword so the flip cannot swap them silently."""
    import warnings

    train, test = split
    small = train.subset(np.arange(4000))
    spec = ModelSpec(name=learner, learner=learner, lightgbm={"n_estimators": 5, "num_leaves": 4},
                     forest={"n_estimators": 2, "max_depth": 3, "min_samples_leaf": 200, "max_rows": None})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MultiArmUplift.from_table(spec, small).fit_table(small).predict(test.frame[test.feature_names].head(50))
    positional = [str(w.message) for w in caught if "by position is deprecated" in str(w.message)]
    assert positional == []


def test_predict_is_row_order_invariant_and_pure(split):
    train, test = split
    est = MultiArmUplift.from_table(ModelSpec(name="p", learner="pooled", lightgbm=LGBM), train).fit_table(train)
    X = test.frame[test.feature_names].head(500)
    before = X.copy()
    a = est.predict(X)
    b = est.predict(X.iloc[::-1]).iloc[::-1]
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(X, before)


def test_missing_feature_and_bad_type_are_named(split):
    train, test = split
    est = MultiArmUplift.from_table(ModelSpec(name="p", learner="t_shared", lightgbm=LGBM), train).fit_table(train)
    X = test.frame[test.feature_names].head(5)
    with pytest.raises(SchemaError, match=r"missing feature column\(s\) \['age'\]"):
        est.predict(X.drop(columns=["age"]))
    with pytest.raises(SchemaError, match=r"column 'age': expected numbers; 1 row"):
        est.predict(X.assign(age=["x", 30, 31, 32, 33]))


def test_arm_without_rows_is_refused(split):
    train, _ = split
    f = train.frame
    keep = np.flatnonzero(f["arm"].to_numpy() != train.treatment_arms[0])
    with pytest.raises(DataError, match="have no training rows"):
        MultiArmUplift.from_table(ModelSpec(name="t", learner="t", lightgbm=LGBM), train).fit_table(train.subset(keep))


def test_arm_mean_effects_match_difference_in_means():
    y = np.array([1, 0, 0, 0, 1, 1, 0, 0])
    arm = np.array(["c", "c", "c", "c", "a", "a", "a", "a"])
    prop = pd.DataFrame({"c": [0.5] * 8, "a": [0.5] * 8})
    assert arm_mean_effects(y, arm, prop, "c", ("a",))["a"] == pytest.approx(0.5 - 0.25)


def test_shrink_recommend_and_fallback():
    effects = pd.DataFrame({"a": [0.03, -0.01, 0.00], "b": [0.01, 0.02, -0.02]})
    means = pd.Series({"a": 0.01, "b": 0.005})
    pd.testing.assert_frame_equal(shrink(effects, means, 1.0), effects)
    zero = shrink(effects, means, 0.0)
    assert (zero["a"] == 0.01).all() and (zero["b"] == 0.005).all()
    assert list(recommend(effects, "c")) == ["a", "b", "c"]  # last row: nothing helps -> control
    assert best_single_arm(means, "c") == "a" and best_single_arm(-means, "c") == "c"
    with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\]"):
        shrink(effects, means, 1.5)


def test_shrunk_recommendations_in_chunks_equal_those_at_once():
    rng = np.random.default_rng(4)
    effects = pd.DataFrame(rng.normal(0.0, 0.02, size=(101, 3)), columns=["a", "b", "d"])
    means = pd.Series({"a": 0.004, "b": -0.001, "d": 0.002})
    for lam in (0.0, 0.35, 1.0):
        whole = recommend(shrink(effects, means, lam), "c")
        np.testing.assert_array_equal(recommend_shrunk(effects, means, lam, "c", chunk_rows=7), whole)
    assert set(whole) >= {"a", "c"}
    with pytest.raises(ValueError, match="chunk_rows"):
        recommend_shrunk(effects, means, 0.5, "c", chunk_rows=0)


def _randomised(n, heterogeneous, seed):
    """Two arms and a control; arm a helps x > 0 only when heterogeneous, else a constant +2 points."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    arm = rng.choice(np.array(["c", "a", "b"], dtype=object), n)
    effect_a = np.where(x > 0, 0.10, -0.06) if heterogeneous else 0.02
    p = 0.10 + np.where(arm == "a", effect_a, 0.0) + np.where(arm == "b", 0.01, 0.0)
    y = (rng.random(n) < p).astype(int)
    prop = pd.DataFrame({"c": np.full(n, 1 / 3), "a": np.full(n, 1 / 3), "b": np.full(n, 1 / 3)})
    # a noisy but informative model estimate
    noise = rng.normal(scale=0.05, size=(n, 2))
    est = pd.DataFrame({"a": effect_a + noise[:, 0], "b": 0.01 + noise[:, 1]})
    return y, arm, prop, est


def test_shrinkage_trusts_real_heterogeneity_and_falls_back_on_noise():
    y, arm, prop, est = _randomised(30_000, heterogeneous=True, seed=1)
    means = arm_mean_effects(y, arm, prop, "c", ("a", "b"))
    grid = (0.0, 0.25, 0.5, 0.75, 1.0)
    # any lam > 0 already turns the sign of a's effect into the decision; the one-SE rule takes the smallest
    assert choose_shrinkage(est, means, y=y, arm=arm, propensity=prop, control="c", grid=grid).lam > 0
    y, arm, prop, est = _randomised(30_000, heterogeneous=False, seed=2)
    means = arm_mean_effects(y, arm, prop, "c", ("a", "b"))
    assert choose_shrinkage(est, means, y=y, arm=arm, propensity=prop, control="c", grid=grid).lam == 0.0


def test_pooled_prediction_with_the_compiled_forest_equals_the_whole_booster(split):
    import pickle

    train, test = split
    est = MultiArmUplift.from_table(ModelSpec(name="p", learner="pooled", lightgbm=LGBM), train).fit_table(train)
    learner = est.learner_
    X = est._matrix(test.frame[test.feature_names].head(300), source="test")
    assert learner._forest() is not None  # the shipped kind of booster is compiled (tests/test_armtrees.py)
    got = learner.predict_outcomes(X)
    for i, arm in enumerate(learner.arms_):
        whole = learner.model_.predict_proba(np.hstack([X, np.tile(learner.arm_features_[i], (len(X), 1))]))[:, 1]
        np.testing.assert_allclose(got[arm], whole, rtol=0, atol=1e-12)
    again = pickle.loads(pickle.dumps(learner))  # the compiled forest is a cache: not pickled, rebuilt on use
    assert "_forest_cache" not in again.__dict__
    np.testing.assert_allclose(again.predict(X), learner.predict(X), rtol=0, atol=1e-12)
    learner.__dict__["_forest_cache"] = None  # a booster the forest cannot compile: evaluated per arm, same values
    np.testing.assert_allclose(learner.predict(X), again.predict(X), rtol=0, atol=1e-12)


def test_fast_ordinal_encoding_equals_the_column_transformer(split):
    from uplift.modeling.preprocess import check_feature_frame, encode_ordinal, ordinal_categories

    train, test = split
    est = MultiArmUplift.from_table(ModelSpec(name="p", learner="pooled", lightgbm=LGBM), train).fit_table(train)
    raw = test.frame[test.feature_names].head(400).copy()
    cats = [f.name for f in est.features if f.kind == "categorical"]
    nums = [f.name for f in est.features if f.kind == "numeric"]
    assert cats and nums
    raw.loc[raw.index[:20], cats[0]] = "a level never seen in training"
    raw.loc[raw.index[20:40], cats[-1]] = None
    raw.loc[raw.index[40:60], nums[0]] = np.nan
    frame = check_feature_frame(raw, est.features, source="test")
    fast = encode_ordinal(ordinal_categories(est.preprocessor_), frame)
    slow = est.preprocessor_.transform(frame)
    np.testing.assert_array_equal(fast, slow)  # NaN where NaN, codes identical
    assert np.isnan(fast[:20, 0]).all() and np.isnan(fast[20:40, len(cats) - 1]).all()


def test_service_rows_are_typed_as_the_model_check_types_them(split):
    """POST /scores skips the model's own frame check (``checked=True``): that is only sound if
    the service's ``rows_to_frame`` yields exactly what ``check_feature_frame`` would."""
    from uplift.api.scoring import rows_to_frame
    from uplift.modeling.preprocess import check_feature_frame

    train, test = split
    est = MultiArmUplift.from_table(ModelSpec(name="p", learner="pooled", lightgbm=LGBM), train).fit_table(train)
    raw = test.frame[test.feature_names].head(200).astype(object)
    cats = [f.name for f in est.features if f.kind == "categorical"]
    nums = [f.name for f in est.features if f.kind == "numeric"]
    raw.loc[raw.index[:10], cats[0]] = None  # JSON null
    raw.loc[raw.index[10:20], nums[0]] = None
    rows = [{k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else v) for k, v in r.items()}
            for r in raw.to_dict("records")]
    rows = [{k: (int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in r.items()}
            for r in rows]  # JSON ints
    kinds = tuple((f.name, f.kind) for f in est.features)
    served = rows_to_frame(rows, kinds)
    checked = check_feature_frame(raw, est.features, source="test").reset_index(drop=True)
    pd.testing.assert_frame_equal(served, checked)
    pd.testing.assert_frame_equal(est.predict(served, checked=True), est.predict(raw).reset_index(drop=True))


def test_every_learner_kind_a_spec_may_name_has_one_adapter():
    from uplift.modeling.learnerkinds import LEARNER_KINDS, learner_kind
    from uplift.specs.model import LEARNERS
    from uplift.tracking.modellog import CAUSALML_LEARNERS

    assert tuple(LEARNER_KINDS) == LEARNERS
    assert all(kind.name == name for name, kind in LEARNER_KINDS.items())
    assert set(CAUSALML_LEARNERS) == {"t", "x", "dr", "t_logistic", "uplift_forest"}
    assert {n for n, k in LEARNER_KINDS.items() if k.encoding == "onehot"} == {"t_logistic"}
    assert {n for n, k in LEARNER_KINDS.items() if k.matrix_dtype is np.float32} == {"pooled", "t_shared"}
    assert learner_kind(ModelSpec(name="p", learner="pooled")) is LEARNER_KINDS["pooled"]
