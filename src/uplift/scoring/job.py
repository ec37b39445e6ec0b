"""The batch scoring job: stream the audience, validate each chunk, score it, write output and rejects."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from uplift.errors import SchemaError
from uplift.scoring.chunks import column_names, iter_chunks
from uplift.scoring.rows import REJECT_COLUMNS, SeenIds, reject_message, validate_rows
from uplift.scoring.score import Scorer, score_chunk
from uplift.scoring.writer import ChunkWriter

__all__ = ["ScoreSummary", "score_file", "default_rejects_path", "rejects_destination"]

Progress = Callable[[int, int], None]
"""Called after each chunk with (rows read so far, rows rejected so far)."""


@dataclass(frozen=True)
class ScoreSummary:
    """What a scoring job did."""

    audience: Path
    out: Path
    rejects: Path | None
    rows_read: int
    rows_scored: int
    rows_rejected: int
    chunks: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else float("nan")


def default_rejects_path(out: str | Path) -> Path:
    """``scores.parquet`` -> ``scores.rejects.csv`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.rejects.csv")


def rejects_destination(out: Path, rejects: str | Path | None, *, strict: bool) -> Path | None:
    """Where a job writes its rejects: ``rejects`` if given, else beside ``out`` (:func:`default_rejects_path`);
    None under ``strict`` (an invalid row fails the job instead)."""
    if strict:
        return None
    return Path(rejects) if rejects is not None else default_rejects_path(out)


def _rejects_schema(audience: Path) -> pa.Schema:
    fields = [pa.field(c, pa.int64() if c == "row" else pa.string()) for c in REJECT_COLUMNS]
    return pa.schema(fields + [pa.field(c, pa.string()) for c in column_names(audience)])


def score_file(
    audience: str | Path,
    out: str | Path,
    *,
    scorer: Scorer,
    exposures: pd.DataFrame,
    enrolments: pd.DataFrame,
    as_of: pd.Timestamp,
    chunk_rows: int = 100_000,
    rejects: str | Path | None = None,
    strict: bool = False,
    progress: Progress | None = None,
) -> ScoreSummary:
    """Score every row of ``audience`` chunk by chunk and write ``out`` (and the rejects) atomically.

    Memory holds one chunk at a time (plus the history and the ids seen so far, ~8 bytes each).
    Invalid rows are never dropped silently: with ``strict`` the first chunk that has one raises
    and nothing is written; otherwise they go to ``rejects`` (default beside ``out``, see
    :func:`default_rejects_path`), always written, empty when every row passed.

    Parameters
    ----------
    audience : Parquet or CSV file with the audience contract's columns.
    out : destination of the scores (``.parquet`` or ``.csv``).
    scorer : model, feature set, segment labeler.
    exposures, enrolments : validated history, read once.
    as_of : planned assignment time (UTC); features use history strictly before it.
    chunk_rows : rows per chunk.
    rejects : destination of the rejects (``.csv`` or ``.parquet``).
    strict : fail on the first invalid row instead of writing rejects.
    progress : callback after each chunk.

    Raises
    ------
    SchemaError
        A required column is missing, or (``strict``) a row is invalid; nothing is written.
    """
    audience, out = Path(audience), Path(out)
    rejects_path = rejects_destination(out, rejects, strict=strict)
    if rejects_path is not None and rejects_path.resolve() == out.resolve():
        raise SchemaError(f"--rejects {rejects_path}: must differ from --out")
    source = audience.name
    started = time.perf_counter()
    seen = SeenIds()
    read = scored = rejected = chunks = 0
    with ChunkWriter(out, scorer.arrow_schema()) as writer:
        bad_writer = ChunkWriter(rejects_path, _rejects_schema(audience)) if rejects_path is not None else None
        with bad_writer if bad_writer is not None else _Null():
            for chunk in iter_chunks(audience, chunk_rows):
                check = validate_rows(chunk.frame, source=source, first_row=chunk.first_row, seen=seen)
                if len(check.rejects):
                    if strict:
                        raise _strict_failure(audience, chunk, check.rejects)
                    bad_writer.write(check.rejects)
                if len(check.valid):
                    writer.write(score_chunk(check.valid, scorer=scorer, exposures=exposures,
                                             enrolments=enrolments, as_of=as_of))
                read += len(chunk.frame)
                scored += len(check.valid)
                rejected += len(check.rejects)
                chunks += 1
                if progress is not None:
                    progress(read, rejected)
    return ScoreSummary(
        audience=audience, out=out, rejects=rejects_path, rows_read=read, rows_scored=scored,
        rows_rejected=rejected, chunks=chunks, seconds=time.perf_counter() - started,
    )


def _strict_failure(audience: Path, chunk, rejects: pd.DataFrame) -> SchemaError:
    """Under ``strict``: the error naming the chunk's invalid rows, with the first of them."""
    return SchemaError(
        f"{audience}: {len(rejects)} invalid row(s) in rows {chunk.first_row}-"
        f"{chunk.first_row + len(chunk.frame) - 1} (--strict: nothing was written)\n" + reject_message(rejects)
    )


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> bool:
        return False
