"""Each row's assignment probability for every arm, from the recorded design of its wave (and design cell)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.errors import DataError

__all__ = ["DESIGN_CELL", "design_cells", "design_keys", "design_table", "row_propensities"]

_TOLERANCE = 0.01

DESIGN_CELL = "design_cell"
"""Optional exposures column: the cell of a plan's design a row was randomised in (a wave designed from a plan
randomises each planned segment on its own, at its own probabilities). Empty or absent: the wave's design is one
set of probabilities for everyone in it."""


def design_cells(exposures: pd.DataFrame) -> np.ndarray:
    """The design cell of every row (``""`` where the column is absent or empty)."""
    if DESIGN_CELL not in exposures.columns:
        return np.full(len(exposures), "", dtype=object)
    return exposures[DESIGN_CELL].fillna("").astype(str).to_numpy(dtype=object)


def design_keys(exposures: pd.DataFrame) -> pd.MultiIndex:
    """The (wave, design cell) of every row, the key :func:`row_propensities` looks a row's design up by."""
    return pd.MultiIndex.from_arrays([exposures["wave"].to_numpy(), design_cells(exposures)],
                                     names=["wave", DESIGN_CELL])


def design_table(exposures: pd.DataFrame, arms: tuple[str, ...], *, source: str = "exposures") -> pd.DataFrame:
    """Probability of every arm in every wave and design cell: a (wave, design cell) x arm frame whose rows sum to 1.

    Within a wave and design cell (:data:`DESIGN_CELL`; one cell, ``""``, for a wave designed for everyone
    alike), every row of the same arm must carry the same ``assignment_probability``. An arm without rows there
    had probability 0; if the known probabilities do not add up to 1 (within 1%), an arm is missing from the
    data and the function says so.
    """
    keyed = pd.DataFrame({"wave": exposures["wave"].to_numpy(), DESIGN_CELL: design_cells(exposures),
                          "arm": exposures["arm"].to_numpy(),
                          "assignment_probability": exposures["assignment_probability"].to_numpy(dtype=float)})
    pairs = keyed.groupby(["wave", DESIGN_CELL, "arm"], sort=True)["assignment_probability"].agg(["min", "max"])
    uneven = pairs[(pairs["max"] - pairs["min"]) > 1e-9]
    if len(uneven):
        (wave, cell, arm), row = next(iter(uneven.iterrows()))
        where = f"wave {wave}" + (f", design cell {cell!r}" if cell else "")
        raise DataError(
            f"{source}: column 'assignment_probability' differs within {where}, arm {arm!r} "
            f"({row['min']:.6g} to {row['max']:.6g}); expected one design probability per wave and arm "
            f"(per wave, design cell and arm where the column {DESIGN_CELL!r} is given; "
            f"{len(uneven)} pair(s) break it)"
        )
    table = pairs["min"].unstack("arm").reindex(columns=list(arms)).fillna(0.0)
    totals = table.sum(axis=1)
    off = totals[(totals - 1.0).abs() > _TOLERANCE]
    if len(off):
        (wave, cell), total = next(iter(off.items()))
        where = f"wave {wave}" + (f", design cell {cell!r}" if cell else "")
        raise DataError(
            f"{source}: assignment probabilities of {where} sum to {total:.4f}, expected 1: an arm that could be "
            f"assigned has no rows, or the arm list {list(arms)} is incomplete"
        )
    return table.div(totals, axis=0)


def row_propensities(keys: pd.MultiIndex | np.ndarray, design: pd.DataFrame) -> pd.DataFrame:
    """Look up each row's per-arm probabilities by its (wave, design cell) (:func:`design_keys`; an array of
    waves stands for rows without a design cell); one column per arm, positional index."""
    if not isinstance(keys, pd.MultiIndex):
        keys = pd.MultiIndex.from_arrays([np.asarray(keys), np.full(len(keys), "", dtype=object)],
                                         names=["wave", DESIGN_CELL])
    idx = design.index.get_indexer(keys)
    if (idx < 0).any():
        missing = sorted(set(keys[idx < 0].tolist()))
        raise DataError(f"no design for (wave, design cell) {missing[:5]}")
    return pd.DataFrame(design.to_numpy()[idx], columns=design.columns)
