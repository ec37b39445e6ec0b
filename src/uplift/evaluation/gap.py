"""Where a plan's shortfall comes from: the arms' levels or the segments' differences within an arm.

A cell's effect is its arm's *level* (the mean over the arm's cells) plus the cell's *deviation* from
it. Which message and channel to buy overall rests on the levels; which segments get them rests on
the deviations. :func:`with_arm_levels` swaps the levels between two tables of the same cells, so
that planning from the estimates with the truth's levels measures what the deviations' errors cost,
and planning from the truth with the estimates' levels what the levels' errors cost.
"""

from __future__ import annotations

import pandas as pd

from uplift.errors import SchemaError

__all__ = ["with_arm_levels"]


def with_arm_levels(effects: pd.DataFrame, levels_from: pd.DataFrame, *, source: str = "levels_from") -> pd.DataFrame:
    """``effects`` with every arm's level (mean effect over its cells) replaced by ``levels_from``'s.

    Parameters
    ----------
    effects : segment-effects table (``segment``, ``arm``, ``effect``; ``lo`` and ``hi`` move with
        the effect). Not modified.
    levels_from : a table of the same (segment, arm) cells whose arm means are taken.
    source : name of ``levels_from`` in error messages.

    Raises
    ------
    SchemaError
        A column is missing, or the two tables do not hold the same cells.
    """
    keys = ["segment", "arm"]
    for name, frame in (("effects", effects), (source, levels_from)):
        missing = [c for c in (*keys, "effect") if c not in frame.columns]
        if missing:
            raise SchemaError(f"{name}: missing column(s) {missing}")
    left = pd.MultiIndex.from_frame(effects[keys].astype(str))
    right = pd.MultiIndex.from_frame(levels_from[keys].astype(str))
    if len(left) != len(right) or not left.sort_values().equals(right.sort_values()):
        raise SchemaError(f"{source}: expected the same (segment, arm) cells as effects ({len(left)}); it has "
                          f"{len(right)}, and {len(left.difference(right))} of effects' cells are missing")
    ours = effects.groupby("arm")["effect"].transform("mean")
    theirs = effects["arm"].map(levels_from.groupby("arm")["effect"].mean())
    shift = (theirs - ours).to_numpy(dtype=float)
    out = effects.copy()
    for column in ("effect", "lo", "hi"):
        if column in out.columns:
            out[column] = out[column].to_numpy(dtype=float) + shift
    return out
