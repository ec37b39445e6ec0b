"""Loading the three campaign inputs (audience, exposures, enrolments) and checking their contracts."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from uplift.data.contracts import ENROLMENTS, EXPOSURES, audience_schema, validate
from uplift.data.tableio import CSV_ENCODING, SUFFIXES, read_table, reading
from uplift.data.vocabulary import HOLDOUT, NO_MESSAGE, arm_name
from uplift.errors import SchemaError
from uplift.specs.features import AttributeSpec

__all__ = ["CampaignInputs", "load_inputs", "locate_inputs", "check_exposures", "scan_input", "scan_inputs",
           "ScannedInput", "arm_mismatch", "INPUT_NAMES"]

INPUT_NAMES = ("audience", "exposures", "enrolments")


@dataclass(frozen=True)
class CampaignInputs:
    """The three validated inputs."""

    audience: pd.DataFrame
    exposures: pd.DataFrame
    enrolments: pd.DataFrame


def locate_inputs(folder: str | Path) -> dict[str, Path]:
    """Find ``audience``, ``exposures`` and ``enrolments`` (.parquet or .csv) in ``folder``."""
    folder = Path(folder)
    found: dict[str, Path] = {}
    for name in INPUT_NAMES:
        candidates = [folder / f"{name}{s}" for s in SUFFIXES if (folder / f"{name}{s}").exists()]
        if not candidates:
            raise FileNotFoundError(f"{folder}: no {name}.parquet or {name}.csv (run `uplift "
                                    "simulate` or pass the files)")
        found[name] = candidates[0]
    return found


def check_exposures(exposures: pd.DataFrame, *, source: str, control: str = HOLDOUT) -> None:
    """Arm names must agree with message and channel ("message@channel"; the control is "none"/"none")."""
    message, channel = exposures["message"].astype(str), exposures["channel"].astype(str)
    none = ((message == NO_MESSAGE) & (channel == NO_MESSAGE)).to_numpy()
    expected = np.where(none, control, (message + arm_name("", "") + channel).to_numpy(dtype=object))
    bad = exposures["arm"].astype(str).to_numpy(dtype=object) != expected
    if bad.any():
        row = exposures.loc[bad].iloc[0]
        raise SchemaError(arm_mismatch(source, control, int(bad.sum()), row["arm"], row["message"], row["channel"]))


def arm_mismatch(source: str, control: str, rows: int, arm: str, message: str, channel: str) -> str:
    """The message of exposures whose arm names disagree with their message and channel (one example)."""
    return (f"{source}: column 'arm': expected 'message@channel' (or {control!r} with message and channel 'none'); "
            f"{rows} row(s) break it (e.g. arm={arm!r}, message={message!r}, channel={channel!r})")


def load_inputs(
    audience: str | Path,
    exposures: str | Path,
    enrolments: str | Path,
    *,
    control: str = HOLDOUT,
    attributes: Mapping[str, AttributeSpec] | None = None,
) -> CampaignInputs:
    """Read and validate the three files; the first broken file raises one :class:`SchemaError`.

    ``attributes`` are the programme's own audience attributes (checked when present).
    """
    frames = {}
    for name, path, schema in (
        ("audience", audience, audience_schema(attributes)),
        ("exposures", exposures, EXPOSURES),
        ("enrolments", enrolments, ENROLMENTS),
    ):
        frames[name] = validate(read_table(path), schema, source=str(path))
    check_exposures(frames["exposures"], source=str(exposures), control=control)
    return CampaignInputs(**frames)


# -- the same contracts on batches, for inputs larger than memory ----------------------------------------------------
@dataclass(frozen=True)
class ScannedInput:
    """An input file checked batch by batch against its contract.

    Attributes
    ----------
    source : the file as given.
    path : the file to read the checked values from: ``source`` itself when its column types are already the
        contract's (so coercion changes nothing), else a Parquet copy of the coerced batches.
    rows : number of rows.
    columns : the columns of the file, in order.
    """

    source: Path
    path: Path
    rows: int
    columns: tuple[str, ...]


def _batch_schema(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """``schema`` without its uniqueness checks, which only the whole file can answer (checked after the batches)."""
    columns = {}
    for name, column in schema.columns.items():
        columns[name] = copy.deepcopy(column)
        columns[name].unique = False
    return pa.DataFrameSchema(columns, strict=schema.strict, name=schema.name, coerce=schema.coerce)


_NATIVE = {"str": ("string", "large_string"), "int64": ("int64",), "float64": ("double",), "bool": ("bool",)}


def _is_native(arrow_type, column: pa.Column) -> bool:
    """Whether a Parquet column of ``arrow_type`` already holds what the contract coerces to (coercion is the
    identity: every engine reads the same values)."""
    import pyarrow

    dtype = str(column.dtype)
    if dtype.startswith("datetime64[ns, UTC]"):
        return pyarrow.types.is_timestamp(arrow_type) and arrow_type.tz in ("UTC", "+00:00", "Etc/UTC")
    return str(arrow_type) in _NATIVE.get(dtype, ())


def _batches(path: Path, batch_rows: int):
    """The rows of ``path`` as DataFrames of at most ``batch_rows`` rows, and the file's Arrow schema (Parquet)."""
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".parquet":
        with reading(path):
            file = pq.ParquetFile(path)
            schema = file.schema_arrow

        def frames():
            with reading(path):
                for batch in file.iter_batches(batch_size=batch_rows):
                    yield batch.to_pandas()

        return schema, frames()

    def csv_frames():
        with reading(path):
            yield from pd.read_csv(path, chunksize=batch_rows, low_memory=False, encoding=CSV_ENCODING)

    return None, csv_frames()


def scan_input(
    path: str | Path,
    schema: pa.DataFrameSchema,
    *,
    stage: Path,
    batch_rows: int = 1_000_000,
    check: Callable[[pd.DataFrame, str], None] | None = None,
) -> ScannedInput:
    """Check ``path`` against ``schema`` batch by batch (pandera, with coercion); ``check(frame, source)`` is an
    extra check per batch. Uniqueness is left to the caller (it needs the whole file).

    The first batch that breaks the contract raises one :class:`SchemaError` naming the file and the rows of
    that batch. Where the file's column types differ from the contract's, the coerced batches are written to
    ``stage`` (Parquet) and that copy is what :attr:`ScannedInput.path` names.
    """
    import pyarrow
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    arrow_schema, frames = _batches(path, batch_rows)
    checked = _batch_schema(schema)
    native = arrow_schema is not None and all(
        _is_native(arrow_schema.field(name).type, column)
        for name, column in schema.columns.items() if name in arrow_schema.names
    )
    writer = None
    rows, columns = 0, ()
    try:
        for frame in frames:
            where = f"{path} (rows {rows + 1:,}-{rows + len(frame):,})"
            frame = validate(frame, checked, source=where)
            if check is not None:
                check(frame, where)
            if not rows:
                columns = tuple(frame.columns)
            if not native:
                table = pyarrow.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    stage.parent.mkdir(parents=True, exist_ok=True)
                    writer = pq.ParquetWriter(stage, table.schema)
                writer.write_table(table.cast(writer.schema))
            rows += len(frame)
    finally:
        if writer is not None:
            writer.close()
    if not rows:
        columns = tuple(arrow_schema.names) if arrow_schema is not None else tuple(pd.read_csv(path, nrows=0).columns)
        validate(pd.DataFrame({c: [] for c in columns}), checked, source=str(path))
    return ScannedInput(source=path, path=path if native or writer is None else stage, rows=rows, columns=columns)


def scan_inputs(
    paths: Mapping[str, str | Path],
    *,
    stage_dir: Path,
    batch_rows: int = 1_000_000,
    attributes: Mapping[str, AttributeSpec] | None = None,
) -> dict[str, ScannedInput]:
    """:func:`scan_input` for ``audience``, ``exposures`` and ``enrolments``; the first broken file raises.

    What needs more than one row at a time is the caller's to check: the uniqueness of the audience's ids and of
    the exposures' (person, wave), and the exposures' arm names against their message and channel
    (:func:`check_exposures`, :func:`arm_mismatch`; :mod:`uplift.features.outofcore` checks all three in SQL).
    """
    schemas = {"audience": audience_schema(attributes), "exposures": EXPOSURES, "enrolments": ENROLMENTS}
    return {
        name: scan_input(paths[name], schemas[name], stage=stage_dir / f"{name}.parquet", batch_rows=batch_rows)
        for name in INPUT_NAMES
    }
