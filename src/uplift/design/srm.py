"""Sample-ratio-mismatch check: do the realised arm counts fit the design shares?"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from uplift.errors import DataError

__all__ = ["SRM_THRESHOLD", "SampleRatioCheck", "srm_check"]

SRM_THRESHOLD = 0.001
"""A split is flagged as broken when the chi-square p-value is below this."""


@dataclass(frozen=True, eq=False)
class SampleRatioCheck:
    """Result of :func:`srm_check`.

    Attributes
    ----------
    statistic : float
        Pearson chi-square statistic of the observed counts against the expected ones.
    p_value : float
        Its p-value (``len(table) - 1`` degrees of freedom).
    flagged : bool
        ``p_value < threshold``: the randomisation or the data pipeline is probably broken.
    threshold : float
        The p-value below which the split is flagged.
    table : pandas.DataFrame
        One row per arm: ``arm, observed, expected, observed_share, expected_share``.
    """

    statistic: float
    p_value: float
    flagged: bool
    threshold: float
    table: pd.DataFrame = field(repr=False)


def srm_check(
    observed: Mapping[str, int] | pd.Series,
    expected_shares: Mapping[str, float] | pd.Series,
    *,
    threshold: float = SRM_THRESHOLD,
) -> SampleRatioCheck:
    """Chi-square goodness of fit of realised arm counts against the design shares.

    Parameters
    ----------
    observed : mapping or Series of arm to count
        People per arm actually found in the data.
    expected_shares : mapping or Series of arm to share
        Design share per arm (normalised to sum to 1). An arm with a share but no count counts 0.
    threshold : float
        Flag the split when the p-value falls below this (default 0.001).

    Returns
    -------
    SampleRatioCheck

    Raises
    ------
    DataError
        An observed arm has no design share, a share is not positive, or there are no people.
    """
    obs = pd.Series(observed, dtype=float)
    exp = pd.Series(expected_shares, dtype=float)
    unknown = sorted(set(obs.index[obs > 0]) - set(exp.index))
    if unknown:
        raise DataError(f"expected_shares: arm(s) {unknown} are in the data but have no design share")
    if not (np.isfinite(exp).all() and (exp > 0).all()):
        raise DataError(f"expected_shares must be positive; got {exp.to_dict()}")
    if len(exp) < 2:
        raise DataError("expected_shares: a sample-ratio check needs at least two arms")
    obs = obs.reindex(exp.index, fill_value=0.0)
    total = float(obs.sum())
    if total <= 0:
        raise DataError("sample-ratio check: no people observed in any arm")
    share = exp / exp.sum()
    expected = share * total
    result = stats.chisquare(obs.to_numpy(), expected.to_numpy())
    table = pd.DataFrame(
        {
            "arm": exp.index.astype(str),
            "observed": obs.to_numpy().astype(np.int64),
            "expected": expected.to_numpy(),
            "observed_share": obs.to_numpy() / total,
            "expected_share": share.to_numpy(),
        }
    )
    p = float(result.pvalue)
    return SampleRatioCheck(float(result.statistic), p, bool(p < threshold), threshold, table)
