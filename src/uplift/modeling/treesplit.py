"""Split a LightGBM booster into the trees that read some features and the trees that do not.

The pooled learner predicts every row once per arm, with the arm's features appended. A tree that
never splits on an arm feature gives the same value for every arm, so it only needs to be evaluated
once per row: :func:`split_by_features` cuts the model into those trees and the rest, and the
two boosters' raw scores add up to the original's exactly (LightGBM stores the initial score in the
leaves of the first tree, so nothing is lost).
"""

from __future__ import annotations

import re

import lightgbm as lgb

__all__ = ["split_by_features"]

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


def split_by_features(booster: lgb.Booster, features: set[int]) -> tuple[lgb.Booster | None, lgb.Booster | None]:
    """``(without, with_)``: boosters of the trees that never / at least once split on ``features``
    (column indices); None when there is no such tree. Single-class models only."""
    header, trees, footer = _blocks(booster.model_to_string())
    if "num_tree_per_iteration=1" not in header:
        raise ValueError("split_by_features handles single-class models only")
    uses: list[bool] = []
    for tree in trees:
        found = _SPLIT_FEATURES.search(tree)
        used = {int(f) for f in found.group(1).split()} if found else set()
        uses.append(bool(used & features))
    without = [t for t, u in zip(trees, uses) if not u]
    with_ = [t for t, u in zip(trees, uses) if u]
    return (_model(header, without, footer) if without else None, _model(header, with_, footer) if with_ else None)
