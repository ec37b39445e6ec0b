"""Which simulated people a declared :class:`~uplift.specs.region.Condition` applies to."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.specs.region import Condition

__all__ = ["matches"]

_LIST_FIELDS = ("gender", "employment", "sector", "education", "income_band", "persona")
_BOOL_FIELDS = ("migration_background", "has_children")


def matches(when: Condition, people: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the people every given field of ``when`` matches.

    Parameters
    ----------
    when : the condition; fields left ``None`` match everyone.
    people : DataFrame with the audience attributes plus ``persona`` (str) and
        ``deprivation`` (float, of the person's neighbourhood), one row per person.

    Returns
    -------
    ndarray of bool, shape (len(people),)
    """
    mask = np.ones(len(people), dtype=bool)
    age = people["age"].to_numpy()
    if when.age_min is not None:
        mask &= age >= when.age_min
    if when.age_max is not None:
        mask &= age <= when.age_max
    for name in _LIST_FIELDS:
        levels = getattr(when, name)
        if levels is not None:
            mask &= people[name].isin(levels).to_numpy()
    for name in _BOOL_FIELDS:
        value = getattr(when, name)
        if value is not None:
            mask &= people[name].to_numpy(dtype=bool) == value
    if when.deprivation_min is not None:
        mask &= people["deprivation"].to_numpy() >= when.deprivation_min
    return mask
