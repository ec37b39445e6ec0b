"""Writing a table chunk by chunk to Parquet or CSV through a temporary file renamed into place at the end."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import pyarrow as pa

from uplift.data.tableio import atomic_path
from uplift.errors import SchemaError

__all__ = ["ChunkWriter"]


class ChunkWriter:
    """Context manager: ``write`` chunks with one fixed Arrow schema; the file appears only on success.

    Parquet goes through a ``pyarrow.parquet.ParquetWriter`` (one row group per chunk), CSV
    through a ``pyarrow.csv.CSVWriter`` (header once). If the block raises, the temporary file is
    removed and an existing file at ``path`` is left as it was.

    Parameters
    ----------
    path : the destination (``.parquet`` or ``.csv``).
    schema : the Arrow schema of every chunk.
    """

    def __init__(self, path: str | Path, schema: pa.Schema) -> None:
        self.path = Path(path)
        self.schema = schema
        self.suffix = self.path.suffix.lower()
        if self.suffix not in (".parquet", ".csv"):
            raise SchemaError(f"{self.path}: unsupported file type {self.suffix!r}; expected .parquet or .csv")
        self.rows = 0

    def __enter__(self) -> ChunkWriter:
        self._stack = ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        if self.suffix == ".parquet":
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(tmp, self.schema)
        else:
            import pyarrow.csv as pcsv

            self._writer = pcsv.CSVWriter(tmp, self.schema)
        self._stack.callback(self._writer.close)
        return self

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame`` (its columns must match the schema's names)."""
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        self._writer.write_table(table)
        self.rows += len(frame)

    def __exit__(self, *exc) -> bool:
        return self._stack.__exit__(*exc)
