"""Strata of an audience: the derived ``age_band`` and one stratum key string per person."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from uplift.errors import DataError, SchemaError

__all__ = ["AGE_BANDS", "age_band", "stratum_keys"]

AGE_BANDS: tuple[tuple[str, int, int], ...] = (
    ("18-24", 18, 24),
    ("25-34", 25, 34),
    ("35-44", 35, 44),
    ("45-54", 45, 54),
    ("55-67", 55, 67),
)
"""Age bands as (label, first age, last age), both ends inclusive."""

ALL = "all"


def age_band(age: pd.Series) -> pd.Series:
    """Age band label (``"18-24"`` ... ``"55-67"``) of each age in years.

    Parameters
    ----------
    age : pandas.Series
        Whole years, 18 to 67.

    Returns
    -------
    pandas.Series
        String labels, same index as ``age``.

    Raises
    ------
    DataError
        An age is missing or outside 18-67.
    """
    years = pd.to_numeric(age, errors="coerce").to_numpy(dtype=float)
    lo, hi = AGE_BANDS[0][1], AGE_BANDS[-1][2]
    bad = ~((years >= lo) & (years <= hi))
    if bad.any():
        examples = age[bad].head(3).tolist()
        raise DataError(
            f"column 'age': expected whole years {lo}-{hi}; {int(bad.sum())} row(s) break it (e.g. {examples})"
        )
    labels = np.array([label for label, _, _ in AGE_BANDS], dtype=object)
    firsts = np.array([first for _, first, _ in AGE_BANDS], dtype=float)
    index = np.searchsorted(firsts, np.floor(years), side="right") - 1
    return pd.Series(labels[index], index=age.index, name="age_band", dtype="str")


def stratum_keys(audience: pd.DataFrame, strata: Sequence[str]) -> pd.Series:
    """One key per person, ``"col=value|col=value"`` over ``strata`` (``"all"`` when there are none).

    ``age_band`` is derived from ``age`` when the audience has no ``age_band`` column.

    Raises
    ------
    SchemaError
        A stratum column (or ``age`` for ``age_band``) is missing.
    DataError
        A stratum column has missing values.
    """
    if not strata:
        return pd.Series(ALL, index=audience.index, name="stratum", dtype="str")
    parts = []
    for col in strata:
        if col == "age_band" and col not in audience.columns:
            if "age" not in audience.columns:
                raise SchemaError("audience: stratum 'age_band' needs column 'age' (or 'age_band'), which is missing")
            values = age_band(audience["age"])
        elif col in audience.columns:
            values = audience[col]
        else:
            raise SchemaError(f"audience: stratum column {col!r} is missing; columns are {list(audience.columns)}")
        if values.isna().any():
            raise DataError(f"audience: stratum column {col!r} has {int(values.isna().sum())} missing value(s)")
        parts.append(col + "=" + values.astype(str))
    key = parts[0]
    for part in parts[1:]:
        key = key + "|" + part
    return key.rename("stratum").astype("str")
