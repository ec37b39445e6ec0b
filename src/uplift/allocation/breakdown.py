"""A plan's figures per channel, per message and per priority group, each with its interval.

The interval of a part of a plan is that of the plan whose contacts are the part's: every cell's
own error (independent across cells) plus the errors cells share (the calibration's, an arm's
level, a persona's effect), :func:`~uplift.allocation.effects.total_variance`. Adding up the cells'
own intervals would be wrong both ways: it ignores that shared errors move the cells together and
counts each cell's own error as if they all went the same way.

A priority group counts each cell with a weight: the share of the cell's people in the group
(a ``group__<name>`` column of the effects table), or, for a table without such columns, 1 for
the cells a fairness floor of the policy selects (the floor's group).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from uplift.allocation.explore import interval_z
from uplift.allocation.problem import Problem

__all__ = ["BREAKDOWN_DIMENSIONS", "GROUP_PREFIX", "PartFigures", "average_effects", "plan_breakdown",
           "priority_group_weights"]

BREAKDOWN_DIMENSIONS: tuple[str, ...] = ("channel", "message", "group")
GROUP_PREFIX = "group__"
"""Effects-table columns holding each segment's share of people in a priority group."""


@dataclass(frozen=True)
class PartFigures:
    """One part of a plan: ``dimension`` (channel, message or group) and its ``name``, what it spends and
    contacts, and its expected incremental conversions in ``[lo, hi]``."""

    dimension: str
    name: str
    spend: float
    contacts: float
    expected_conversions: float
    lo: float
    hi: float

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def priority_group_weights(problem: Problem) -> dict[str, np.ndarray]:
    """Per priority group, each cell's weight in it: the table's ``group__<name>`` shares, else 1 for the
    cells each applicable fairness floor of the policy selects (named after the floor)."""
    frame = problem.frame
    columns = [c for c in frame.columns if str(c).startswith(GROUP_PREFIX)]
    if columns:
        return {str(c)[len(GROUP_PREFIX):]: frame[c].to_numpy(dtype=float) for c in columns}
    return {floor.name: mask.astype(float) for floor, mask in zip(problem.floors, problem.floor_cells, strict=True)}


def plan_breakdown(problem: Problem, cells: pd.DataFrame) -> tuple[PartFigures, ...]:
    """The plan ``cells`` (rows aligned with ``problem``'s) per channel, per message and per priority group.

    Channels and messages appear in the table's order, only those the plan funds; every priority group
    appears (a group the plan does not reach has zeros).
    """
    contacts = cells["contacts"].to_numpy(dtype=float)
    funded = np.flatnonzero(contacts > 0)
    spend = cells["spend"].to_numpy(dtype=float)[funded]
    conv = cells["expected_conversions"].to_numpy(dtype=float)[funded]
    own = problem.own_sd[funded] * contacts[funded]
    shared = problem.shared[funded] * contacts[funded, None] if problem.shared is not None else None
    parts: list[tuple[str, str, np.ndarray]] = []
    for dimension in ("channel", "message"):
        labels = problem.frame[dimension].astype(str).to_numpy()[funded]
        for name in dict.fromkeys(labels):
            parts.append((dimension, name, (labels == name).astype(float)))
    for name, weight in priority_group_weights(problem).items():
        parts.append(("group", name, weight[funded]))
    if not parts:
        return ()
    weights = np.vstack([w for _, _, w in parts])  # parts x funded cells
    variance = (weights * own) ** 2
    total = variance.sum(axis=1)
    if shared is not None and shared.size:
        total = total + np.sum((weights @ shared) ** 2, axis=1)
    half = interval_z(problem.policy.interval) * np.sqrt(total)
    expected = weights @ conv
    return tuple(
        PartFigures(dimension=d, name=n, spend=float(s), contacts=float(c), expected_conversions=float(e),
                    lo=float(e - h), hi=float(e + h))
        for (d, n, _), s, c, e, h in zip(parts, weights @ spend, weights @ contacts[funded], expected, half,
                                         strict=True)
    )


def average_effects(effects: pd.DataFrame, *, interval: float) -> pd.DataFrame:
    """Per arm of a segment-effects table, the effect averaged over its segments weighted by their size
    (the effect on a person drawn from the table's people), with its interval.

    The interval is that of a plan contacting every person of every segment once on the arm, divided by
    the people: the cells' own errors and the errors they share (:func:`shared_factors`), as a plan's.

    Returns
    -------
    DataFrame
        One row per arm in the table's order: ``arm``, ``message``, ``channel``, ``segments``, ``people``,
        ``effect``, ``lo``, ``hi``, ``interval``.
    """
    from uplift.allocation.effects import own_sd, shared_factors

    shared = shared_factors(effects)
    own = own_sd(effects["effect_sd"].to_numpy(dtype=float), shared)
    size = effects["size"].to_numpy(dtype=float)
    effect = effects["effect"].to_numpy(dtype=float)
    arms = effects["arm"].astype(str).to_numpy()
    rows = []
    z = interval_z(interval)
    for arm in dict.fromkeys(arms):
        mask = arms == arm
        people = float(size[mask].sum())
        w = np.where(mask, size, 0.0) / people if people > 0 else np.zeros_like(size)
        mean = float(w @ effect)
        variance = float(np.sum((w * own) ** 2)) + (float(np.sum((w @ shared) ** 2)) if shared.size else 0.0)
        half = z * float(np.sqrt(variance))
        first = effects.loc[mask].iloc[0]
        rows.append({"arm": arm, "message": str(first["message"]), "channel": str(first["channel"]),
                     "segments": int(mask.sum()), "people": people, "effect": mean, "lo": mean - half,
                     "hi": mean + half, "interval": float(interval)})
    return pd.DataFrame(rows)
