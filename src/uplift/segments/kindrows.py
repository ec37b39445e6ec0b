"""A segment kind's randomised rows: what every estimate of its effects reads, and the rows of one fold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from uplift.errors import DataError

__all__ = ["KindRows"]


@dataclass(frozen=True)
class KindRows:
    """A segment kind's randomised rows: per row its group (``0..n_groups-1``), outcome, arm, assignment
    probabilities (one column per arm) and out-of-sample predicted uplift (one column per treatment arm,
    the arms of the result); ``folds``: the cross-fitting fold that predicted each row, ``heldout_fold``
    the rows no model saw (None: no leak correction)."""

    groups: np.ndarray
    n_groups: int
    y: np.ndarray
    arm: np.ndarray
    propensity: pd.DataFrame
    predictions: pd.DataFrame
    control: str
    folds: np.ndarray | None = None
    heldout_fold: int | None = None

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(self.predictions.columns)

    def subset(self, index: np.ndarray) -> KindRows:
        """The rows at the positions ``index`` (frames renumbered from 0), in the same groups."""
        return KindRows(
            self.groups[index], self.n_groups, y=self.y[index], arm=self.arm[index],
            propensity=self.propensity.iloc[index].reset_index(drop=True),
            predictions=self.predictions.iloc[index].reset_index(drop=True), control=self.control,
            folds=None if self.folds is None else np.asarray(self.folds)[index], heldout_fold=self.heldout_fold,
        )

    def fold_of_row(self) -> np.ndarray:
        """Each row's cross-fitting fold.

        Raises
        ------
        DataError
            The rows carry no folds.
        """
        if self.folds is None:
            raise DataError("KindRows.folds: expected the cross-fitting fold of every row, got None")
        return np.asarray(self.folds)
