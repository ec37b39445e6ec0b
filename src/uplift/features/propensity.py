"""Each row's assignment probability for every arm, from the recorded design of its wave."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.errors import DataError

__all__ = ["design_table", "row_propensities"]

_TOLERANCE = 0.01


def design_table(exposures: pd.DataFrame, arms: tuple[str, ...], *, source: str = "exposures") -> pd.DataFrame:
    """Probability of every arm in every wave: a (wave x arm) frame whose rows sum to 1.

    Within a wave, every row of the same arm must carry the same ``assignment_probability``
    (the design is the same for everyone in a wave). An arm without rows in a wave had
    probability 0 there; if the known probabilities of a wave do not add up to 1 (within
    1%), an arm is missing from the data and the function says so.
    """
    pairs = exposures.groupby(["wave", "arm"], sort=True)["assignment_probability"].agg(["min", "max"])
    uneven = pairs[(pairs["max"] - pairs["min"]) > 1e-9]
    if len(uneven):
        (wave, arm), row = next(iter(uneven.iterrows()))
        raise DataError(
            f"{source}: column 'assignment_probability' differs within wave {wave}, arm {arm!r} "
            f"({row['min']:.6g} to {row['max']:.6g}); expected one design probability per wave and arm "
            f"({len(uneven)} wave/arm pair(s) break it)"
        )
    table = pairs["min"].unstack("arm").reindex(columns=list(arms)).fillna(0.0)
    totals = table.sum(axis=1)
    off = totals[(totals - 1.0).abs() > _TOLERANCE]
    if len(off):
        wave, total = next(iter(off.items()))
        raise DataError(
            f"{source}: assignment probabilities of wave {wave} sum to {total:.4f}, expected 1: an arm that could be "
            f"assigned has no rows, or the arm list {list(arms)} is incomplete"
        )
    return table.div(totals, axis=0)


def row_propensities(waves: np.ndarray, design: pd.DataFrame) -> pd.DataFrame:
    """Look up each row's per-arm probabilities by its wave; one column per arm, positional index."""
    idx = design.index.get_indexer(waves)
    if (idx < 0).any():
        missing = sorted(set(np.asarray(waves)[idx < 0].tolist()))
        raise DataError(f"no design for wave(s) {missing}")
    return pd.DataFrame(design.to_numpy()[idx], columns=design.columns)
