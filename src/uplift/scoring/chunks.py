"""Streaming an audience file in fixed-size chunks (pyarrow record batches), and its SHA-256 digest."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from uplift.data.tableio import CSV_ENCODING, reading
from uplift.errors import SchemaError

__all__ = ["Chunk", "iter_chunks", "count_rows", "file_digest", "column_names"]

_CSV_BLOCK_BYTES = 4 << 20


@dataclass(frozen=True)
class Chunk:
    """One chunk of a file: its rows as a DataFrame and the 1-based number of its first data row."""

    frame: pd.DataFrame
    first_row: int


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise SchemaError(f"{path}: unsupported file type {suffix!r}; expected .parquet or .csv")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    return suffix


def column_names(path: str | Path) -> list[str]:
    """The column names of a Parquet or CSV file (without reading its rows; a CSV's byte-order mark is not a name)."""
    path = Path(path)
    with reading(path):
        if _suffix(path) == ".parquet":
            import pyarrow.parquet as pq

            names = list(pq.read_schema(path).names)
        else:
            with path.open(newline="", encoding=CSV_ENCODING) as handle:
                names = next(csv.reader(handle), None)
    if not names:
        raise SchemaError(f"{path}: empty CSV file; expected a header row")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SchemaError(f"{path}: column name(s) {repeated} appear more than once; expected each column once")
    return names


def _batches(path: Path, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    names = column_names(path)
    with reading(path):
        if _suffix(path) == ".parquet":
            import pyarrow.parquet as pq

            yield from pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
            return
        import pyarrow.csv as pcsv

        # every column as text: the contract coerces and reports per row what does not parse; a UTF-8
        # byte-order mark is skipped by the reader (and by column_names), so the names agree
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
            convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                strings_can_be_null=True),
        )
        yield from reader


def iter_chunks(path: str | Path, chunk_rows: int) -> Iterator[Chunk]:
    """Yield the rows of ``path`` (Parquet or CSV) as DataFrames of exactly ``chunk_rows`` rows (the last may be
    shorter).

    Only one chunk (plus at most one record batch) is held in memory at a time. CSV columns are
    read as text (empty cells as missing) so that a bad value is reported per row by the
    contract instead of failing the whole read.

    Parameters
    ----------
    path : the audience file.
    chunk_rows : rows per chunk (>= 1).
    """
    if chunk_rows < 1:
        raise SchemaError(f"chunk_rows must be >= 1, got {chunk_rows}")
    path = Path(path)
    pending: list[pa.RecordBatch] = []
    held = 0
    first = 1
    for batch in _batches(path, chunk_rows):
        pending.append(batch)
        held += batch.num_rows
        while held >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield Chunk(table.slice(0, chunk_rows).to_pandas(), first)
            first += chunk_rows
            rest = table.slice(chunk_rows)
            pending = rest.to_batches()
            held = rest.num_rows
    if held:
        yield Chunk(pa.Table.from_batches(pending).to_pandas(), first)


def count_rows(path: str | Path) -> int:
    """Number of data rows: from the Parquet footer, or by counting a CSV's line ends (quoted line breaks aside)."""
    path = Path(path)
    if _suffix(path) == ".parquet":
        import pyarrow.parquet as pq

        with reading(path):
            return int(pq.ParquetFile(path).metadata.num_rows)
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(_CSV_BLOCK_BYTES):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"
    return max(lines - 1, 0)


def file_digest(path: str | Path) -> str:
    """SHA-256 of the file's bytes, hex (read in blocks); of a folder (a Parquet dataset), over every file
    in it by relative name, in name order: each name, then its bytes."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for file in files:
        if path.is_dir():
            h.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            while block := handle.read(1 << 20):
                h.update(block)
    return h.hexdigest()
