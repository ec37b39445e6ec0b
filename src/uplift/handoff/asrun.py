"""A plan's contacts as its channels deliver them: a line reaches every cell it cannot tell apart.

A channel that does not select on a segment dimension runs the cells it cannot tell apart as one line
(:mod:`uplift.handoff.lines`), and that line's contacts land on all of those cells in proportion to their people,
funded or not: a flyer run in Delft reaches Delft's young and old, women and men alike. :func:`as_run` moves each
line's contacts and spend there, so that a plan can be scored as it will be run
(:func:`uplift.allocation.evaluate_plan`). The planner buys such lines whole already
(:mod:`uplift.allocation.channellines`), so for its plans this moves only the rounding to whole contacts; a plan made
cell by cell on every channel (another planner, or a table without targetable cells) is scored here as it would run.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from uplift.celltargeting import cell_targeting, line_key
from uplift.specs.planning import CostCatalogue

__all__ = ["as_run"]


def as_run(cells: pd.DataFrame, sizes: Mapping[str, float], *, costs: CostCatalogue,
           municipalities: tuple[str, ...]) -> pd.DataFrame:
    """``cells`` (every segment x arm of a plan, funded or not) with each line's contacts and spend spread over
    the line's cells in proportion to their people (``sizes``: segment -> people). Channels without a
    ``targeting`` declaration, and lines the channel can tell apart cell by cell, keep their cells' figures.
    Contacts become fractional (expected contacts per cell)."""
    out = cells.copy()
    contacts = out["contacts"].to_numpy(dtype=float).copy()
    spend = out["spend"].to_numpy(dtype=float).copy()
    targets = cell_targeting(out["segment"].astype(str), municipalities)
    size = out["segment"].astype(str).map(sizes).to_numpy(dtype=float)
    for (channel, _message), idx in out.groupby(["channel", "message"], sort=False).indices.items():
        targeting = costs.channel(str(channel)).targeting
        if targeting is None:
            continue
        keys = [line_key(targets[str(s)], targeting) for s in out["segment"].to_numpy()[idx]]
        for members in pd.Series(range(len(idx))).groupby(pd.Series(keys).astype(str)).indices.values():
            rows = idx[members]
            weight = size[rows] / size[rows].sum()
            contacts[rows], spend[rows] = contacts[rows].sum() * weight, spend[rows].sum() * weight
    out["contacts"], out["spend"] = contacts, spend
    return out

