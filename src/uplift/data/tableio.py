"""Reading and writing tables (Parquet or CSV, chosen by suffix); writes are atomic.

A file that cannot be read (truncated or corrupt Parquet, CSV that is not UTF-8 or has a row with
the wrong number of fields) is one :class:`~uplift.errors.SchemaError` naming the file and what is
wrong (:func:`reading`). CSV may start with a UTF-8 byte-order mark. A write goes to a temporary
file beside the target, ``.<name>.<12 hex digits>.tmp``, renamed into place when it succeeds and
removed when it fails; one left behind by a process that was killed is removed by the next write
of the same target (:func:`atomic_path`).
"""

from __future__ import annotations

import csv
import fcntl
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from uplift.errors import SchemaError, UpliftError

__all__ = ["read_table", "write_table", "atomic_path", "atomic_directory", "reading", "stale_temporaries",
           "read_parquet_metadata", "CSV_ENCODING", "SUFFIXES"]

SUFFIXES = (".parquet", ".csv")

CSV_ENCODING = "utf-8-sig"
"""How CSV is read: UTF-8, with or without a byte-order mark (which is not part of the first column's name)."""

_EXPECTED = {
    ".parquet": "expected a complete Parquet file (was it truncated, or copied while still being written?)",
    ".csv": "expected UTF-8 text (a byte-order mark is fine) with a header row and as many fields on every "
            "line as the header has columns",
}


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SchemaError(f"{path}: unsupported file type {suffix!r}; expected one of {', '.join(SUFFIXES)}")
    return suffix


@contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Turn a reader's failure on ``path`` into one :class:`SchemaError` naming the file and what is wrong.

    Wraps the library calls that read ``path`` (pyarrow, pandas, the csv module): a truncated or
    corrupt Parquet file, CSV that is not UTF-8, a line with the wrong number of fields, an empty
    file. Errors of the project, and a file that is missing or may not be opened, pass through.
    """
    path = Path(path)
    try:
        yield
    except (UpliftError, FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start:exc.start + 1].hex()
        raise SchemaError(f"{path}: not UTF-8 text (byte 0x{byte} does not decode); {_EXPECTED['.csv']}") from None
    except (ValueError, OSError, csv.Error) as exc:  # pyarrow's ArrowInvalid is a ValueError, its IO errors OSError
        what = "Parquet" if path.suffix.lower() == ".parquet" else "CSV"
        reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
        raise SchemaError(f"{path}: cannot be read as {what}: {reason}; "
                          f"{_EXPECTED.get(path.suffix.lower(), _EXPECTED['.csv'])}") from None


def read_table(path: str | Path, *, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet or CSV file into a DataFrame.

    The types pandas guesses for CSV columns are left to the schema, which coerces them and
    reports what breaks.

    Raises
    ------
    SchemaError
        Not ``.parquet`` or ``.csv``, or the file cannot be read (:func:`reading`).
    FileNotFoundError
        No such file.
    """
    path = Path(path)
    suffix = _suffix(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with reading(path):
        if suffix == ".parquet":
            return pd.read_parquet(path, columns=columns)
        return pd.read_csv(path, usecols=columns, low_memory=False, encoding=CSV_ENCODING)


_TEMPORARY = "^\\.{name}\\.[0-9a-f]{{12}}\\.tmp$"
"""The names :func:`atomic_path` gives its temporary files for a target called ``name`` (escaped)."""


def stale_temporaries(path: str | Path) -> list[Path]:
    """Temporary files of :func:`atomic_path` for target ``path`` that no live writer holds.

    Only names of the writer's own pattern for this target (``.<name>.<12 hex digits>.tmp`` in
    the same folder) are considered; a writer holds a lock on its file until it ends, so a file
    without one was left by a process that was killed.
    """
    path = Path(path)
    pattern = re.compile(_TEMPORARY.format(name=re.escape(path.name)))
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if pattern.match(p.name) and not _held(p))


def _held(tmp: Path) -> bool:
    """Whether a live process holds the writer's lock on ``tmp`` (a file that vanished counts as held)."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # releases the lock just taken, if any
    return False


def _remove_stale(path: Path) -> None:
    for tmp in stale_temporaries(path):
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds.

    The temporary file is ``.<name>.<12 hex digits>.tmp``, locked (``flock``) while the block runs
    and removed if it raises. Temporary files of the same target left by a killed process are
    removed first (:func:`stale_temporaries`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp_path = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
        os.close(fd)


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

    with reading(path):
        raw = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in raw.items() if k != b"pandas"}
