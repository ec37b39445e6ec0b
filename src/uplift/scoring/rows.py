"""Row-level validation of audience chunks: valid rows go on, each invalid row becomes a reject record."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from uplift.data.contracts import AUDIENCE
from uplift.errors import SchemaError

__all__ = ["REJECT_COLUMNS", "RowCheck", "SeenIds", "validate_rows", "check_contract", "reject_records", "repeated_id",
           "as_text", "reject_message"]

REJECT_COLUMNS = ("file", "row", "column", "reason")
"""Leading columns of a rejects file; the row's original values (as text) follow under their own names."""

# uniqueness across chunks is checked by SeenIds (first occurrence wins), not per chunk by pandera
_ROW_SCHEMA = AUDIENCE.update_column("person_id", unique=False)


@dataclass(frozen=True)
class RowCheck:
    """The outcome of validating one chunk.

    Attributes
    ----------
    valid : the rows that satisfy the audience contract, coerced to its types (positional index).
    rejects : one row per rejected input row: ``file``, ``row`` (1-based data row number),
        ``column`` and ``reason`` (``"; "``-joined when several columns fail), then the original values as text.
    """

    valid: pd.DataFrame
    rejects: pd.DataFrame


class SeenIds:
    """Person ids accepted so far, as 64-bit hashes in a few sorted runs (memory ~8 bytes per id).

    Runs are merged when a newer run grows as large as the one before it, so there are at most
    about log2(n) runs and each id is re-sorted O(log n) times. Two different ids share a hash
    with probability about n^2 / 2^65 (3e-6 for ten million ids).
    """

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    @staticmethod
    def hashes(ids: pd.Series) -> np.ndarray:
        return pd.util.hash_pandas_object(ids.astype(str), index=False).to_numpy(np.uint64)

    def contains(self, h: np.ndarray) -> np.ndarray:
        out = np.zeros(len(h), dtype=bool)
        for run in self._runs:
            at = np.minimum(np.searchsorted(run, h), len(run) - 1)
            out |= run[at] == h
        return out

    def add(self, h: np.ndarray) -> None:
        if not len(h):
            return
        self._runs.append(np.unique(h))
        while len(self._runs) > 1 and len(self._runs[-2]) <= len(self._runs[-1]):
            last = self._runs.pop()
            self._runs[-1] = np.union1d(self._runs[-1], last)

    def __len__(self) -> int:
        return sum(len(r) for r in self._runs)


_TRUE = ("true", "1", "1.0", "yes")
_FALSE = ("false", "0", "0.0", "no")


def _booleans(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[int, str, str]]]:
    """Text booleans (CSV) to bool: ``true/false/1/0/yes/no`` in any case; anything else fails its row."""
    failures: list[tuple[int, str, str]] = []
    out = {}
    for name, column in AUDIENCE.columns.items():
        if name not in frame.columns:  # an optional attribute the file does not have
            continue
        col = frame[name]
        if str(column.dtype) != "bool" or pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            continue
        text = col.astype(str).str.strip().str.lower()
        value = pd.Series(np.where(text.isin(_TRUE), True, np.where(text.isin(_FALSE), False, None)), index=col.index)
        unknown = col.notna() & value.isna()
        failures += [(int(i), name, f"{col[i]!r} is not a valid bool (true/false)") for i in col.index[unknown]]
        out[name] = value
    return (frame.assign(**out) if out else frame), failures


def _reason(check: str, value: object) -> str:
    if check == "not_nullable":
        return "missing value"
    if check.startswith("coerce_dtype"):
        return f"{value!r} is not a valid {check.removeprefix('coerce_dtype(').rstrip(')')}"
    return f"{value!r} fails {check}"


def validate_rows(frame: pd.DataFrame, *, source: str, first_row: int, seen: SeenIds) -> RowCheck:
    """Check every row of an audience chunk against the AUDIENCE contract; never drop a row silently.

    A missing required column is a file-level problem and raises; an optional one may be absent. Per-row failures
    (missing or
    mistyped value, value out of range or vocabulary, a person id seen in an earlier row) make
    the row a reject. Accepted ids are added to ``seen``.

    Parameters
    ----------
    frame : one chunk, positional index (not modified).
    source : the file name reported in each reject.
    first_row : 1-based number of the chunk's first data row in the file.
    seen : ids accepted in earlier chunks (updated).

    Raises
    ------
    SchemaError
        A required column is missing from the file.
    """
    frame = frame.reset_index(drop=True)
    valid, failures = check_contract(frame, source=source, first_row=first_row)
    ids = valid["person_id"]
    h = SeenIds.hashes(ids)
    dup = ids.duplicated(keep="first").to_numpy() | seen.contains(h)
    failures += [(int(idx), "person_id", repeated_id(frame.at[idx, "person_id"])) for idx in valid.index[dup]]
    seen.add(h[~dup])
    valid = valid.loc[~dup].reset_index(drop=True)
    rows = np.arange(len(frame), dtype=np.int64) + first_row
    return RowCheck(valid=valid, rejects=reject_records(frame, failures, source=source, rows=rows))


def repeated_id(value: object) -> str:
    """The reason of a row whose person id an earlier accepted row already had."""
    return f"{value!r} repeats an earlier row's person_id"


def check_contract(frame: pd.DataFrame, *, source: str,
                   first_row: int = 1) -> tuple[pd.DataFrame, list[tuple[int, str, str]]]:
    """The rows of ``frame`` that satisfy the audience contract (coerced, index kept) and each failure.

    Person ids are not checked for repeats here (:func:`validate_rows` does it across chunks).

    Parameters
    ----------
    frame : rows with a positional index (0..n-1; not modified).
    source : the file name used in a frame-level error.
    first_row : 1-based number of the first row, for a frame-level error.

    Returns
    -------
    valid : the passing rows, coerced to the contract's types, with their positions as index.
    failures : ``(position, column, reason)`` per failing value.

    Raises
    ------
    SchemaError
        A required column is missing, or a failure cannot be pinned to rows.
    """
    missing = [name for name, c in AUDIENCE.columns.items() if c.required and name not in frame.columns]
    if missing:
        raise SchemaError(f"{source}: missing column(s) {missing}; expected the audience contract's required columns")
    prepared, failures = _booleans(frame)
    # a column whose type does not coerce is not value-checked in the same pass: re-check the rest
    bad: set[int] = {f[0] for f in failures}
    while True:
        try:
            valid = _ROW_SCHEMA.validate(prepared.drop(index=sorted(bad)), lazy=True)
            return valid, failures
        except pa.errors.SchemaErrors as err:
            cases = err.failure_cases
            cases = cases[cases["index"].notna()]
            cases = cases[~cases["failure_case"].astype(str).str.startswith("TypeError(")]
            found = [(int(i), str(c), _reason(str(k), v))
                     for i, c, k, v in zip(cases["index"], cases["column"], cases["check"], cases["failure_case"],
                                           strict=True)]
            new = {f[0] for f in found} - bad
            if not new:  # a frame-level failure that cannot be pinned to rows
                raise SchemaError(f"{source}: rows {first_row}-{first_row + len(frame) - 1} break the audience "
                                  f"contract: {err.failure_cases.head(3).to_dict('records')}") from None
            failures += found
            bad |= new


def reject_records(frame: pd.DataFrame, failures: list[tuple[int, str, str]], *, source: str | np.ndarray,
                   rows: np.ndarray) -> pd.DataFrame:
    """One reject per failing row of ``frame``: file, row number, columns and reasons, then its values as text.

    Parameters
    ----------
    frame : the rows as read (positional index; not modified).
    failures : ``(position, column, reason)``; a row that fails several columns gets them ``"; "``-joined.
    source : the file name, or one per row of ``frame``.
    rows : the 1-based row number in its file of each row of ``frame``.
    """
    originals = [str(c) for c in frame.columns]
    if not failures:
        return pd.DataFrame({c: pd.Series(dtype="str") for c in (*REJECT_COLUMNS, *originals)}).astype({"row": "int64"})
    f = pd.DataFrame(failures, columns=["index", "column", "reason"]).drop_duplicates(["index", "column"])
    grouped = f.groupby("index", sort=True).agg({"column": "; ".join, "reason": "; ".join})
    at = grouped.index.to_numpy()
    rows_ = frame.loc[grouped.index]
    out = pd.DataFrame(
        {
            "file": source if isinstance(source, str) else np.asarray(source, dtype=object)[at],
            "row": np.asarray(rows, dtype=np.int64)[at],
            "column": grouped["column"].to_numpy(),
            "reason": grouped["reason"].to_numpy(),
        }
    )
    text = as_text(rows_).reset_index(drop=True)
    text.columns = originals
    return pd.concat([out, text], axis=1)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every value as the text a rejects file shows (missing stays missing)."""
    return frame.astype(object).where(frame.notna(), None).astype(str).where(frame.notna(), None)


def reject_message(rejects: pd.DataFrame, *, limit: int = 5) -> str:
    """A few rejects as readable lines: ``file row N, column 'c': reason``."""
    lines = [f"  {r.file} row {r.row}, column {r.column!r}: {r.reason}" for r in rejects.head(limit).itertuples()]
    more = f"\n  ... and {len(rejects) - limit} more row(s)" if len(rejects) > limit else ""
    return "\n".join(lines) + more
