"""The compiled forest gives every arm LightGBM's own raw score, missing values and edge values included."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from uplift.modeling.armtrees import compile_forest

# arm features: message (categorical, 3 + a "none" level for the control), channel (categorical), treated
ARMS = np.array([[3, 2, 0], [0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1], [2, 0, 1], [2, 1, 1]], dtype=float)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows with a NaN-holed feature, a mostly-zero feature, a plain one and an integer code; an
    outcome whose arm effects depend on them (so trees split on arm features deep and shallow)."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([
        np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
        np.where(rng.random(n) < 0.5, 0.0, rng.exponential(size=n)),
        rng.normal(size=n),
        rng.integers(0, 6, n).astype(float),
    ])
    arm = ARMS[rng.integers(0, len(ARMS), n)]
    logit = -1.5 + 0.8 * np.nan_to_num(x[:, 0]) - 0.6 * x[:, 1] + arm[:, 2] * (0.5 * (arm[:, 0] == 1) * x[:, 2]
                                                                             - 0.4 * (arm[:, 1] == 1) * (x[:, 3] > 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return np.hstack([x, arm]), y


def _booster(**params) -> lgb.Booster:
    X, y = _data(6_000, 0)
    data = lgb.Dataset(X, y, categorical_feature=[4, 5], free_raw_data=False)
    base = {"objective": "binary", "num_leaves": 15, "min_data_in_leaf": 40, "learning_rate": 0.2, "verbose": -1,
            "seed": 0, "deterministic": True, "force_col_wise": True, "num_threads": 1, "cat_smooth": 1,
            "min_data_per_group": 20}
    return lgb.train({**base, **params}, data, num_boost_round=60)


def _rows(booster: lgb.Booster) -> np.ndarray:
    """Test rows plus the hard cases: every numeric threshold of the model as a value, NaN, 0, +-0.0, tiny values."""
    X = _data(800, 1)[0][:, :4]
    thresholds = [(n["split_feature"], n["threshold"]) for n in _nodes(booster) if n["decision_type"] == "<="
                  and n["split_feature"] < 4]
    edge = np.repeat(X[:1], len(thresholds) + 5, axis=0)
    for i, (f, t) in enumerate(thresholds):
        edge[i, f] = t
    edge[-5:, :] = np.array([[np.nan] * 4, [0.0] * 4, [-0.0] * 4, [1e-36] * 4, [-1e-36] * 4])
    return np.vstack([X, edge])


def _nodes(booster: lgb.Booster) -> list[dict]:
    out = []

    def walk(node):
        if "split_feature" in node:
            out.append(node)
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    return out


def _per_arm(booster: lgb.Booster, X: np.ndarray) -> np.ndarray:
    return np.stack([booster.predict(np.hstack([X, np.tile(a, (len(X), 1))]), raw_score=True) for a in ARMS])


@pytest.mark.parametrize("params", [{}, {"zero_as_missing": True}, {"use_missing": False}],
                         ids=["missing NaN", "missing zero", "no missing"])
def test_compiled_forest_equals_the_booster_for_every_arm(params):
    booster = _booster(**params)
    nodes = _nodes(booster)
    kinds = {n["missing_type"] for n in nodes if n["split_feature"] < 4}
    assert {"NaN": "NaN", "zero_as_missing": "Zero", "use_missing": "None"}[next(iter(params), "NaN")] in kinds
    assert any(n["decision_type"] == "==" for n in nodes)  # categorical arm splits (message, channel)
    if not params:  # and a numerical one (treated); with zero_as_missing its 0 is "missing" and it may go unused
        assert any(n["split_feature"] == 6 for n in nodes)
    forest = compile_forest(booster, ARMS)
    assert forest is not None
    # trees that read no arm feature, only the message, the channel, ...: one slot per distinct value read
    assert forest.slots < len(ARMS) * len(forest.groups) and len(forest.groups) >= 3
    X = _rows(booster)
    np.testing.assert_allclose(forest.raw_scores(X), _per_arm(booster, X), rtol=0, atol=1e-12)


def test_compiled_forest_refuses_what_it_cannot_evaluate_exactly():
    X, y = _data(3_000, 0)
    row_categorical = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1},
                                lgb.Dataset(X, y, categorical_feature=[3, 4, 5]), num_boost_round=20)
    assert any(n["decision_type"] == "==" and n["split_feature"] == 3 for n in _nodes(row_categorical))
    assert compile_forest(row_categorical, ARMS) is None
    linear = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1, "linear_tree": True},
                       lgb.Dataset(np.nan_to_num(X), y), num_boost_round=5)
    assert compile_forest(linear, ARMS) is None
    regression = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, y),
                           num_boost_round=5)
    assert compile_forest(regression, ARMS) is None


def test_compiled_forest_refuses_trees_nested_deeper_than_python_recurses():
    # a tree some thousand levels deep overflows the recursion of LightGBM's JSON dump and of the
    # flattening; simulated by leaving the recursion limit only a few frames above this one
    import inspect
    import sys

    booster = _booster()
    assert compile_forest(booster, ARMS) is not None
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 12)
    try:
        refused = compile_forest(booster, ARMS)
    finally:
        sys.setrecursionlimit(limit)
    assert refused is None
