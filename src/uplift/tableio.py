"""Reading and writing tables (Parquet or CSV, chosen by suffix); writes are atomic."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from uplift.errors import SchemaError

__all__ = ["read_table", "write_table", "atomic_path", "atomic_directory", "SUFFIXES"]

SUFFIXES = (".parquet", ".csv")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SchemaError(f"{path}: unsupported file type {suffix!r}; expected one of {', '.join(SUFFIXES)}")
    return suffix


def read_table(path: str | Path, *, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet or CSV file into a DataFrame.

    CSV columns are read as strings first where pandas would guess wrongly is left to the
    schema, which coerces types and reports what breaks.
    """
    path = Path(path)
    suffix = _suffix(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if suffix == ".parquet":
        return pd.read_parquet(path, columns=columns)
    return pd.read_csv(path, usecols=columns, low_memory=False)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder path beside ``path`` (not yet created); it replaces ``path`` only if the block succeeds.

    An existing folder at ``path`` is renamed aside, the new one renamed in, then the old one
    removed: readers see the old folder or the new one, never a half-written one (between the two
    renames, for a moment, none). If the block raises, ``path`` is left as it was.
    """
    import shutil
    import uuid

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_dir():
        raise SchemaError(f"{path}: exists and is not a folder; expected a folder for partitioned Parquet")
    token = uuid.uuid4().hex[:12]
    tmp = path.parent / f".{path.name}.{token}.tmp"
    old = path.parent / f".{path.name}.{token}.old"
    try:
        yield tmp
        if path.exists():
            os.rename(path, old)
        try:
            os.rename(tmp, path)
        except OSError:
            if old.exists():
                os.rename(old, path)  # put the previous output back
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_table(frame: pd.DataFrame, path: str | Path, *, metadata: dict[str, str] | None = None) -> Path:
    """Write ``frame`` to Parquet or CSV atomically (temporary file, then rename).

    ``metadata`` is stored as Parquet key-value metadata (ignored for CSV).
    """
    path = Path(path)
    suffix = _suffix(path)
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if metadata:
                merged = dict(table.schema.metadata or {})
                merged.update({k.encode(): v.encode() for k, v in metadata.items()})
                table = table.replace_schema_metadata(merged)
            # microseconds: what Spark and most Parquet readers take (this domain's times are to the second)
            pq.write_table(table, tmp, coerce_timestamps="us", allow_truncated_timestamps=True)
        else:
            frame.to_csv(tmp, index=False)
    return path


def read_parquet_metadata(path: str | Path) -> dict[str, str]:
    """Return the key-value metadata stored in a Parquet file (without pandas' own key)."""
    import pyarrow.parquet as pq

    raw = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in raw.items() if k != b"pandas"}
