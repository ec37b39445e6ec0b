"""Cut a LightGBM booster into groups of trees by which of some features each tree splits on.

The pooled learner predicts every row once per arm, with the arm's features (message, channel,
treated) appended. A tree's value only depends on the features it splits on: a tree that never
reads an arm feature gives the same value for every arm, one that reads only the message gives one
value per message, and so on. :func:`group_by_features` cuts the model into one booster per set of
features used, so each group can be evaluated once per distinct value of its features instead of
once per arm. The groups' raw scores add up to the original's exactly (LightGBM stores the initial
score in the leaves of the first tree, so nothing is lost).
"""

from __future__ import annotations

import re

import lightgbm as lgb

__all__ = ["group_by_features"]

_SPLIT_FEATURES = re.compile(r"^split_feature=(.*)$", re.MULTILINE)


def _blocks(text: str) -> tuple[str, list[str], str]:
    """Header, the tree blocks (``Tree=i`` through their trailing blank lines) and the footer."""
    start = text.index("\nTree=") + 1
    end = text.index("end of trees")
    body = text[start:end]
    parts = re.split(r"(?m)^(?=Tree=\d+$)", body)
    return text[:start], [p for p in parts if p], text[end:]


def _model(header: str, trees: list[str], footer: str) -> lgb.Booster:
    renumbered = [re.sub(r"^Tree=\d+", f"Tree={i}", tree, count=1) for i, tree in enumerate(trees)]
    sizes = " ".join(str(len(t.encode())) for t in renumbered)
    header = re.sub(r"(?m)^tree_sizes=.*$", f"tree_sizes={sizes}", header)
    return lgb.Booster(model_str=header + "".join(renumbered) + footer)


def group_by_features(booster: lgb.Booster, features: set[int]) -> dict[frozenset[int], lgb.Booster]:
    """One booster per set of ``features`` (column indices) that some tree splits on: the trees
    that split on exactly those of ``features`` (the empty set: the trees that split on none).
    Single-class models only."""
    header, trees, footer = _blocks(booster.model_to_string())
    if "num_tree_per_iteration=1" not in header:
        raise ValueError("group_by_features handles single-class models only")
    groups: dict[frozenset[int], list[str]] = {}
    for tree in trees:
        found = _SPLIT_FEATURES.search(tree)
        used = {int(f) for f in found.group(1).split()} if found else set()
        groups.setdefault(frozenset(used & features), []).append(tree)
    return {key: _model(header, group, footer) for key, group in groups.items()}
