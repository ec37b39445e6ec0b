"""The people behind each segment x arm's raw figures: what the disclosure rules count (:mod:`uplift.disclosure`).

The segment table's ``n_treated`` / ``n_control`` count rows (person-waves); a person randomised in
several waves is one person, so the rules count distinct people, and the converters among them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["TALLY_COLUMNS", "cell_tallies"]

TALLY_COLUMNS = ("people_treated", "converters_treated", "people_control", "converters_control")
"""Per (segment, arm): distinct people randomised to the arm in the segment, those of them with a
conversion there, and the same for the segment's control rows."""


def _people(groups: np.ndarray, person_id: np.ndarray, rows: np.ndarray, n_groups: int) -> np.ndarray:
    """Distinct people among ``rows`` per group, ``(n_groups,)``."""
    counts = pd.Series(person_id[rows]).groupby(groups[rows]).nunique()
    return counts.reindex(range(n_groups), fill_value=0).to_numpy(dtype=np.int64)


def cell_tallies(
    groups: np.ndarray, n_groups: int, *, person_id: np.ndarray, arm: np.ndarray, y: np.ndarray,
    arms: tuple[str, ...], control: str,
) -> pd.DataFrame:
    """One row per group and treatment arm: ``group``, ``arm`` and :data:`TALLY_COLUMNS`.

    Parameters
    ----------
    groups : group number (0..n_groups-1) of each row.
    person_id, arm, y : each row's person, arm and 0/1 outcome.
    arms : the treatment arms; control : the control arm.
    """
    groups, person_id, arm = np.asarray(groups), np.asarray(person_id), np.asarray(arm)
    converted = np.asarray(y, dtype=float) > 0
    is_control = arm == control
    people_control = _people(groups, person_id, is_control, n_groups)
    converters_control = _people(groups, person_id, is_control & converted, n_groups)
    parts = []
    for a in arms:
        is_arm = arm == a
        parts.append(pd.DataFrame({
            "group": np.arange(n_groups),
            "arm": a,
            "people_treated": _people(groups, person_id, is_arm, n_groups),
            "converters_treated": _people(groups, person_id, is_arm & converted, n_groups),
            "people_control": people_control,
            "converters_control": converters_control,
        }))
    return pd.concat(parts, ignore_index=True)
