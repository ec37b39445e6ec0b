"""The training table: one row per (person, wave) with features, the randomised arm and the outcome.

Every learner, metric and report reads this one structure, whether it was built from the
simulator's files by :func:`uplift.features.build_training_table` or from a real experiment
by an adapter (:mod:`uplift.adapters`). Columns of :attr:`TrainingTable.frame`:

``person_id`` (str), ``wave`` (int)
    the key.
``arm`` (str)
    the arm the row was randomised to; one of :attr:`TrainingTable.arms`.
``outcome`` (int 0/1)
    the declared outcome within the attribution window; a finite number for a table with
    ``outcome_kind = "continuous"`` (an experiment's spend or sales).
``propensity__<arm>`` (float, one per arm, control included)
    the probability that this row was assigned to ``<arm>`` (known from the design).
feature columns
    as listed in :attr:`TrainingTable.features`.
``cluster`` (str, optional)
    the unit of randomisation when people were randomised in groups (household, school): folds, the
    held-out split and every interval keep a cluster's rows together.

An experiment's table may carry the :class:`~uplift.economics.Economics` of its mapping (value of a
conversion, contact costs): the targeting rule then maximises net value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from uplift.data.tableio import read_parquet_metadata, read_table, write_table
from uplift.economics import Economics
from uplift.errors import DataError, SchemaError

__all__ = ["FeatureColumn", "TrainingTable", "PROPENSITY_PREFIX", "CLUSTER_COLUMN", "table_metadata", "file_digest"]

PROPENSITY_PREFIX = "propensity__"
CLUSTER_COLUMN = "cluster"
_META_KEY = "uplift.training_table"


def table_metadata(features: tuple[FeatureColumn, ...], arms: tuple[str, ...], control: str,
                   outcome: str) -> dict[str, str]:
    """The Parquet key-value metadata that makes a file a training table (:meth:`TrainingTable.load` reads it)."""
    structure = {"features": [[f.name, f.kind] for f in features], "arms": list(arms), "control": control,
                 "outcome": outcome}
    return {_META_KEY: json.dumps(structure)}


@dataclass(frozen=True)
class FeatureColumn:
    """A model input column and how it is encoded."""

    name: str
    kind: Literal["numeric", "categorical"]


@dataclass(frozen=True)
class TrainingTable:
    """A validated training table; see the module docstring for the columns."""

    frame: pd.DataFrame = field(repr=False)
    features: tuple[FeatureColumn, ...]
    arms: tuple[str, ...]
    control: str
    outcome: str
    source: str = ""
    economics: Economics | None = None
    """Value of a conversion and contact costs (an experiment mapping's); None: conversions alone."""
    outcome_kind: Literal["binary", "continuous"] = "binary"
    """``continuous``: the outcome is an amount (spend), modelled by learners that regress it."""

    def __post_init__(self) -> None:
        self.check()

    # -- structure -------------------------------------------------------------------------
    @property
    def treatment_arms(self) -> tuple[str, ...]:
        """All arms but the control, in declaration order."""
        return tuple(a for a in self.arms if a != self.control)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def clusters(self) -> np.ndarray | None:
        """The cluster of every row (the ``cluster`` column), or None when people were randomised one by one."""
        return self.frame[CLUSTER_COLUMN].astype(str).to_numpy() if CLUSTER_COLUMN in self.frame.columns else None

    @property
    def propensity_columns(self) -> list[str]:
        """The ``propensity__<arm>`` columns, in the arms' order."""
        return [f"{PROPENSITY_PREFIX}{a}" for a in self.arms]

    def propensity(self) -> pd.DataFrame:
        """Assignment probabilities, one column per arm (control included)."""
        cols = {f"{PROPENSITY_PREFIX}{a}": a for a in self.arms}
        return self.frame[list(cols)].rename(columns=cols)

    def check(self) -> None:
        """Raise :class:`SchemaError` / :class:`DataError` if the table breaks its contract."""
        where = self.source or "training table"
        if self.control not in self.arms:
            raise DataError(f"{where}: control arm {self.control!r} not among arms {list(self.arms)}")
        needed = ["person_id", "wave", "arm", "outcome"] + [f"{PROPENSITY_PREFIX}{a}" for a in self.arms]
        needed += self.feature_names
        missing = [c for c in needed if c not in self.frame.columns]
        if missing:
            raise SchemaError(f"{where}: missing column(s) {missing}")
        unknown = set(self.frame["arm"].unique()) - set(self.arms)
        if unknown:
            raise DataError(f"{where}: column 'arm' has values {sorted(unknown)} not among arms {list(self.arms)}")
        if self.outcome_kind == "continuous":
            y = pd.to_numeric(self.frame["outcome"], errors="coerce").to_numpy(float)
            bad_y = ~np.isfinite(y)
            expected = "finite numbers"
        else:
            bad_y = ~self.frame["outcome"].isin([0, 1]).to_numpy()
            expected = "0/1"
        if bad_y.any():
            raise SchemaError(f"{where}: column 'outcome': expected {expected}; {int(bad_y.sum())} row(s) break it")
        # column by column: no dense copy of every arm's probabilities (a table may hold tens of millions of rows)
        arm = pd.Index(self.arms).get_indexer(self.frame["arm"])
        total, own, in_range = np.zeros(len(self.frame)), np.empty(len(self.frame)), True
        for j, column in enumerate(self.propensity().items()):
            values = column[1].to_numpy(dtype=float)
            in_range = in_range and bool(np.all((values >= 0) & (values <= 1)))
            total += values
            own[arm == j] = values[arm == j]
        if not in_range or not np.allclose(total, 1.0, atol=1e-6):
            raise SchemaError(f"{where}: propensity columns must lie in [0, 1] and sum to 1 per row")
        if len(own) and not np.all(own > 0):
            raise DataError(f"{where}: {int((own <= 0).sum())} row(s) were assigned an arm with propensity 0")

    # -- identity and persistence ---------------------------------------------------------
    def digest(self) -> str:
        """SHA-256 over the rows (order-sensitive) and the declared structure."""
        h = hashlib.sha256()
        h.update(json.dumps(self._meta(), sort_keys=True).encode())
        h.update(pd.util.hash_pandas_object(self.frame, index=False).to_numpy().tobytes())
        return h.hexdigest()

    def _meta(self) -> dict:
        return json.loads(table_metadata(self.features, self.arms, self.control, self.outcome)[_META_KEY])

    def save(self, path: str | Path) -> Path:
        """Write as Parquet (atomically) with the structure in the file's metadata."""
        return write_table(self.frame, path, metadata=table_metadata(self.features, self.arms, self.control,
                                                                     self.outcome))

    @classmethod
    def load(cls, path: str | Path) -> TrainingTable:
        """Read a table written by :meth:`save`."""
        path = Path(path)
        meta = read_parquet_metadata(path).get(_META_KEY)
        if meta is None:
            raise SchemaError(f"{path}: not a training table (no {_META_KEY!r} metadata); build "
                              "it with `uplift features`")
        m = json.loads(meta)
        return cls(
            frame=read_table(path),
            features=tuple(FeatureColumn(n, k) for n, k in m["features"]),
            arms=tuple(m["arms"]),
            control=m["control"],
            outcome=m["outcome"],
            source=str(path),
        )

    def subset(self, rows: np.ndarray | pd.Index | slice) -> TrainingTable:
        """A table over some rows (positional), same structure."""
        return TrainingTable(
            frame=self.frame.iloc[rows].reset_index(drop=True),
            features=self.features,
            arms=self.arms,
            control=self.control,
            outcome=self.outcome,
            source=self.source,
            economics=self.economics,
            outcome_kind=self.outcome_kind,
        )


def file_digest(path: str | Path, *, batch_rows: int = 1_000_000) -> str:
    """:meth:`TrainingTable.digest` of the table saved at ``path``, read in batches (memory bounded by
    ``batch_rows``): equal to ``TrainingTable.load(path).digest()``, since each row's hash is its own."""
    import pyarrow.parquet as pq

    path = Path(path)
    meta = read_parquet_metadata(path).get(_META_KEY)
    if meta is None:
        raise SchemaError(f"{path}: not a training table (no {_META_KEY!r} metadata); build it with `uplift features`")
    h = hashlib.sha256()
    h.update(json.dumps(json.loads(meta), sort_keys=True).encode())
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        h.update(pd.util.hash_pandas_object(batch.to_pandas(), index=False).to_numpy().tobytes())
    return h.hexdigest()
