"""Evaluate the pooled booster for every arm at once: one walk per tree and row, forking at arm splits.

The pooled learner's value for (row, arm) is the sum of its trees over the row with the arm's
features (message, channel, treated) appended. A tree that splits on an arm feature gives different
arms different leaves, but only from that split on: on the shipped model 81 of 150 trees read an arm
feature, mostly once, at a mean depth of 1.7 of a mean leaf depth of 5. Walking such a tree once per
arm (or once per distinct value of the arm features it reads) repeats everything above the split.
Here each tree is walked once per row with the set of arms that are still together: at a split on
a row feature they go one way, at an arm split the set divides (the direction of each arm is fixed
by the model, so it is computed once, when the forest is compiled) and each part walks on; a leaf
adds its value to the arms that reach it.

Trees are grouped by which arm features they read, as LightGBM would need to evaluate them once per
distinct value of those features; a tree adds its leaf to its group's slot of that value, and the
slots add up per arm group by group, so the raw scores equal LightGBM's sums over each group's trees
exactly and the whole booster's up to the order of the additions (~1e-14; the walk reproduces
LightGBM's numerical decision, missing values included; tested). Supported: binary
boosters without linear trees whose categorical splits are on arm features only, with at most 64
distinct values per group; :func:`compile_forest` returns None otherwise and the caller evaluates the
booster as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from numba import njit

__all__ = ["ArmForest", "compile_forest"]

_ZERO = float(np.float32(1e-35))
"""LightGBM's ``kZeroThreshold``: input values within it count as 0, and as "zero" for missing type Zero."""
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}
_MAX_VALUES = 64  # one bit per distinct arm value in a uint64


@dataclass(frozen=True)
class ArmForest:
    """A booster's trees as flat arrays, ready for :meth:`raw_scores`.

    Nodes of all trees share the arrays; a child ``c < 0`` is the leaf ``~c``. A node with
    ``feature == -1`` splits on arm features: ``arm_left`` holds the bits of its tree's group values
    that go left. Per tree: its root (a node, or ``~leaf`` for a one-leaf tree), the first output
    slot of its group and the bits of all of its group's values.
    """

    feature: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    missing: np.ndarray
    left: np.ndarray
    right: np.ndarray
    arm_left: np.ndarray
    leaf_value: np.ndarray
    root: np.ndarray
    slot: np.ndarray
    full: np.ndarray
    slots: int
    groups: tuple[tuple[int, np.ndarray], ...]
    """Per group, in the order of its first tree: its first slot and, per arm, the slot offset of the arm's value."""

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """Raw scores (log-odds), shape (arms, rows), of the rows ``X`` (without the arm features)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        parts = np.zeros((len(X), self.slots))
        _walk(X, self.feature, self.threshold, self.default_left, self.missing, self.left, self.right,
              self.arm_left, self.leaf_value, self.root, self.slot, self.full, parts)
        raw = np.zeros((len(self.groups[0][1]), len(X)))
        for first, variant in self.groups:  # in the order LightGBM's per-group sums would be added
            raw += parts[:, first + variant].T
        return raw


def compile_forest(booster: lgb.Booster, arm_values: np.ndarray) -> ArmForest | None:
    """The :class:`ArmForest` of ``booster``, whose last ``arm_values.shape[1]`` columns are the arm
    features, for the arms whose feature rows are ``arm_values``; None if the booster is not one it
    evaluates exactly (see the module's docstring), or whose trees are nested too deep to walk
    recursively (some thousand levels: LightGBM's own JSON dump and the flattening recurse)."""
    try:
        return _compile(booster, arm_values)
    except RecursionError:
        return None


def _compile(booster: lgb.Booster, arm_values: np.ndarray) -> ArmForest | None:
    dump = booster.dump_model()
    if dump.get("num_tree_per_iteration", 1) != 1 or dump.get("objective", "").split()[0] != "binary":
        return None
    n_row = dump["max_feature_idx"] + 1 - arm_values.shape[1]
    trees = [t["tree_structure"] for t in dump["tree_info"]]
    reads = [frozenset(f - n_row for f in _split_features(t) if f >= n_row) for t in trees]
    group_of: dict[frozenset[int], tuple[int, np.ndarray, np.ndarray]] = {}
    slots = 0
    for read in reads:
        if read not in group_of:
            columns = sorted(read)
            _, first, variant = np.unique(arm_values[:, columns], axis=0, return_index=True, return_inverse=True)
            if len(first) > _MAX_VALUES:
                return None
            group_of[read] = (slots, arm_values[first], variant.reshape(-1))
            slots += len(first)
    nodes: dict[str, list] = {k: []
                              for k in ("feature", "threshold", "default_left", "missing", "left", "right", "arm_left")}
    leaves: list[float] = []
    root, slot, full = [], [], []
    for tree, read in zip(trees, reads, strict=True):
        start, values, _ = group_of[read]
        try:
            root.append(_flatten(tree, nodes, leaves, n_row, values))
        except _Unsupported:
            return None
        slot.append(start)
        full.append((1 << len(values)) - 1)
    return ArmForest(
        feature=np.array(nodes["feature"], dtype=np.int64),
        threshold=np.array(nodes["threshold"], dtype=np.float64),
        default_left=np.array(nodes["default_left"], dtype=np.bool_),
        missing=np.array(nodes["missing"], dtype=np.int8),
        left=np.array(nodes["left"], dtype=np.int64),
        right=np.array(nodes["right"], dtype=np.int64),
        arm_left=np.array(nodes["arm_left"], dtype=np.uint64),
        leaf_value=np.array(leaves, dtype=np.float64),
        root=np.array(root, dtype=np.int64),
        slot=np.array(slot, dtype=np.int64),
        full=np.array(full, dtype=np.uint64),
        slots=slots,
        groups=tuple((start, variant) for start, _, variant in group_of.values()),
    )


class _Unsupported(Exception):
    """A tree this module does not evaluate exactly."""


def _split_features(node: dict) -> set[int]:
    if "split_feature" not in node:
        return set()
    return {node["split_feature"]} | _split_features(node["left_child"]) | _split_features(node["right_child"])


def _flatten(node: dict, nodes: dict[str, list], leaves: list[float], n_row: int, values: np.ndarray) -> int:
    """Append ``node``'s subtree to the flat arrays; its index (``~leaf`` for a leaf)."""
    if "split_feature" not in node:
        if "leaf_coeff" in node:  # a linear tree's leaf
            raise _Unsupported
        leaves.append(float(node["leaf_value"]))
        return ~(len(leaves) - 1)
    feature = node["split_feature"]
    categorical = node["decision_type"] == "=="
    if categorical and feature < n_row:
        raise _Unsupported
    index = len(nodes["feature"])
    missing = _MISSING[node["missing_type"]]
    for key in nodes:
        nodes[key].append(0)
    nodes["missing"][index] = missing
    nodes["default_left"][index] = bool(node["default_left"])
    if feature < n_row:
        nodes["feature"][index] = feature
        nodes["threshold"][index] = float(node["threshold"])
    else:  # the arms' directions: the same decision, at each of the group's values
        column = values[:, feature - n_row]
        if categorical:
            cats = {int(c) for c in str(node["threshold"]).split("||")}
            goes = [not np.isnan(v) and int(v) >= 0 and int(v) in cats for v in column]
        else:
            goes = [bool(_numeric_left(float(v), float(node["threshold"]), missing, bool(node["default_left"])))
                    for v in column]
        nodes["feature"][index] = -1
        nodes["arm_left"][index] = sum(1 << i for i, g in enumerate(goes) if g)
    nodes["left"][index] = _flatten(node["left_child"], nodes, leaves, n_row, values)
    nodes["right"][index] = _flatten(node["right_child"], nodes, leaves, n_row, values)
    return index


@njit(cache=True, nogil=True, inline="always")
def _numeric_left(v, threshold, missing, default_left):
    """LightGBM's ``NumericalDecision`` after its input drops values within ``kZeroThreshold``:
    whether ``v`` goes left at a numerical split (``missing``: 0 none, 1 zero, 2 NaN)."""
    if v != v:  # NaN
        if missing == 2:
            return default_left
        v = 0.0
    elif -_ZERO <= v <= _ZERO:
        v = 0.0
    if missing == 1 and v == 0.0:
        return default_left
    return v <= threshold


@njit(cache=True, nogil=True)
def _walk(X, feature, threshold, default_left, missing, left, right, arm_left, leaf_value, root, slot, full, out):
    """Add every tree's leaf values to ``out[row, slot + value]`` for the values reaching each leaf."""
    stack_node = np.empty(_MAX_VALUES, np.int64)  # arms waiting at a right child: at most one per arm but one
    stack_bits = np.empty(_MAX_VALUES, np.uint64)
    for i in range(X.shape[0]):
        row = X[i]
        sums = out[i]
        for t in range(root.shape[0]):
            stack_node[0] = root[t]
            stack_bits[0] = full[t]
            top = 1
            while top > 0:
                top -= 1
                node = stack_node[top]
                bits = stack_bits[top]
                while node >= 0:
                    f = feature[node]
                    if f < 0:  # an arm split
                        goes_left = bits & arm_left[node]
                        goes_right = bits & ~arm_left[node]
                        if goes_left == 0:
                            node = right[node]
                        elif goes_right == 0:
                            node = left[node]
                        else:  # the arms part: the right ones wait on the stack
                            stack_node[top] = right[node]
                            stack_bits[top] = goes_right
                            top += 1
                            node = left[node]
                            bits = goes_left
                        continue
                    if _numeric_left(row[f], threshold[node], missing[node], default_left[node]):
                        node = left[node]
                    else:
                        node = right[node]
                value = leaf_value[~node]
                j = slot[t]
                if bits == 1:  # a tree that reads no arm feature
                    sums[j] += value
                    continue
                while bits != 0:
                    if bits & np.uint64(1):
                        sums[j] += value
                    bits >>= np.uint64(1)
                    j += 1
