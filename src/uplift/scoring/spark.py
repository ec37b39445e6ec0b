"""Batch scoring on Spark: an audience beyond one machine, scored by the logged model through ``spark_udf``.

The job does what :func:`uplift.scoring.job.score_file` does, with Spark doing the moving:

1. every row is checked against the audience contract by the pandas path's own code
   (:func:`uplift.scoring.rows.check_contract`, in ``mapInPandas``); a person id that an earlier
   accepted row (by file, then row) already had is a reject, as in the pandas path;
2. rejects get the same records (file, row, column, reason, the row's values as text), written
   through the same writer to one file beside the output; ``strict`` fails instead, writing nothing;
3. each person's earlier exposures and funnel events (Parquet files, checked against their
   contracts) are grouped into the JSON columns the model takes (:mod:`uplift.scoring.history`);
4. the logged model scores the accepted rows (``mlflow.pyfunc.spark_udf``): uplift per arm, best
   arm and its uplift, segment and persona, exactly the pandas path's columns and numbers;
5. the scores are written as Parquet partitioned by ``best_arm`` into a folder that replaces the
   output only when everything succeeded (:func:`uplift.data.tableio.atomic_directory`).

Only local masters are used by the project (``local[N]``); nothing is downloaded at run time.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from uplift.data.contracts import AUDIENCE, ENROLMENTS, EXPOSURES, validate
from uplift.data.tableio import atomic_directory
from uplift.errors import SchemaError
from uplift.scoring.history import ENROLMENT_FIELDS, ENROLMENTS_COLUMN, EXPOSURE_FIELDS, EXPOSURES_COLUMN
from uplift.scoring.job import ScoreSummary, rejects_destination
from uplift.scoring.rows import REJECT_COLUMNS, as_text, check_contract, reject_message, repeated_id
from uplift.scoring.writer import ChunkWriter

__all__ = ["spark_session", "score_dataset", "SparkModel", "HistoryFiles", "PARTITION_COLUMN"]

PARTITION_COLUMN = "best_arm"
"""The output is partitioned by the recommended arm: one folder per arm (``best_arm=<arm>/``)."""

_FILE, _ROW, _COLUMN, _REASON = "_file", "_row", "_column", "_reason"
_SPARK_TYPES = {"person_id": "string", "age": "bigint", "migration_background": "boolean", "has_children": "boolean"}
_REJECT_BATCH = 50_000


def spark_session(cores: int = 2, *, driver_memory: str = "4g"):
    """A local Spark session (``local[cores]``) for scoring: UTC session time, no UI, no downloads.

    The Python workers run this interpreter (``PYSPARK_PYTHON`` unless set) and Spark binds to
    the loopback address (``SPARK_LOCAL_IP`` unless set).
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("uplift-score")
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(4 * cores))
        .config("spark.sql.files.maxPartitionBytes", str(16 << 20))
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "20000")
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .getOrCreate()
    )


def _contract_schema():
    from pyspark.sql.types import StructField, StructType, _parse_datatype_string

    fields = [StructField(c, _parse_datatype_string(_SPARK_TYPES.get(c, "string"))) for c in AUDIENCE.columns]
    fields += [StructField(_FILE, _parse_datatype_string("string")),
               StructField(_ROW, _parse_datatype_string("bigint")),
               StructField(_COLUMN, _parse_datatype_string("string")),
               StructField(_REASON, _parse_datatype_string("string"))]
    return StructType(fields)


def _check_batches(originals: list[str]):
    """``mapInPandas`` function: every row with its contract columns coerced (null for a reject) or its failures."""
    contract = list(AUDIENCE.columns)

    def check(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for file, rows in batch.groupby(_FILE, sort=False):
                rows = rows.reset_index(drop=True)
                valid, failures = check_contract(rows[originals], source=str(file))
                out = pd.DataFrame(index=rows.index, columns=contract, dtype=object)
                out.loc[valid.index, contract] = valid[contract].astype(object).to_numpy()
                out[_FILE], out[_ROW] = str(file), rows[_ROW].to_numpy()
                out[_COLUMN], out[_REASON] = None, None
                if failures:
                    f = pd.DataFrame(failures,
                                     columns=["index", "column", "reason"]).drop_duplicates(["index", "column"])
                    grouped = f.groupby("index", sort=True).agg({"column": "; ".join, "reason": "; ".join})
                    out.loc[grouped.index, _COLUMN] = grouped["column"].to_numpy()
                    out.loc[grouped.index, _REASON] = grouped["reason"].to_numpy()
                yield out.astype({"age": "Int64"})

    return check


def _reject_texts(originals: list[str]):
    """``mapInPandas`` function: a reject's record (its values as text; a repeated id's reason from its value)."""

    def texts(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            reason = batch[_REASON].copy()
            repeat = reason.isna()
            reason[repeat] = [repeated_id(v) for v in batch.loc[repeat, "person_id"]]
            out = pd.DataFrame({"file": batch[_FILE], "row": batch[_ROW].astype("int64"),
                                "column": batch[_COLUMN], "reason": reason})
            yield pd.concat([out, as_text(batch[originals])], axis=1)

    return texts


def _read_audience(spark, audience: Path):
    from pyspark.sql import functions as F

    if not audience.exists():
        raise FileNotFoundError(f"{audience}: no such file or folder")
    raw = spark.read.parquet(str(audience))
    missing = [c for c in AUDIENCE.columns if c not in raw.columns]
    if missing:
        raise SchemaError(f"{audience}: missing column(s) {missing}; expected the audience contract's columns")
    originals = list(raw.columns)
    raw = raw.select("*", F.col("_metadata.file_name").alias(_FILE), (F.col("_metadata.row_index") + 1).alias(_ROW))
    return raw, originals


def _checked(raw, originals: list[str]):
    """(checked rows, accepted rows, reject keys): contract failures, then ids an earlier accepted row had.

    The checked rows are kept (memory, then disk) so that the rejects and the scoring read them
    instead of checking every row again; unpersist them when done.
    """
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    checked = raw.mapInPandas(_check_batches(originals),
                              schema=_contract_schema()).persist(StorageLevel.MEMORY_AND_DISK)
    first = Window.partitionBy("person_id").orderBy(_FILE, _ROW)
    valid = checked.where(F.col(_COLUMN).isNull()).withColumn("_n", F.row_number().over(first))
    repeats = valid.where(F.col("_n") > 1).select(_FILE, _ROW, F.lit("person_id").alias(_COLUMN),
                                                  F.lit(None).cast("string").alias(_REASON))
    bad = checked.where(F.col(_COLUMN).isNotNull()).select(_FILE, _ROW, _COLUMN, _REASON).unionByName(repeats)
    accepted = valid.where(F.col("_n") == 1).select(*AUDIENCE.columns)
    return checked, accepted, bad


def _reject_records(raw, bad, originals: list[str]):
    """The rejects as the pandas path writes them, in file and row order."""
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    schema = StructType([StructField(c, LongType() if c == "row" else StringType()) for c in REJECT_COLUMNS]
                        + [StructField(c, StringType()) for c in originals])
    joined = bad.join(raw, on=[_FILE, _ROW], how="inner")
    return joined.mapInPandas(_reject_texts(originals), schema=schema).orderBy("file", "row")


def _write_rejects(records, path: Path, originals: list[str]) -> None:
    import pyarrow as pa

    schema = pa.schema([pa.field(c, pa.int64() if c == "row" else pa.string()) for c in REJECT_COLUMNS]
                       + [pa.field(c, pa.string()) for c in originals])
    columns = [*REJECT_COLUMNS, *originals]
    with ChunkWriter(path, schema) as writer:
        rows: list = []
        for row in records.toLocalIterator():
            rows.append(tuple(row))
            if len(rows) == _REJECT_BATCH:
                writer.write(pd.DataFrame(rows, columns=columns))
                rows = []
        if rows:
            writer.write(pd.DataFrame(rows, columns=columns))


def _history_check(contract, path: str, control: str):
    def check(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from uplift.data.inputs import check_exposures

        for batch in batches:
            frame = validate(batch, contract, source=path)
            if contract is EXPOSURES:
                check_exposures(frame, source=path, control=control)
        yield pd.DataFrame({"ok": pd.Series(dtype="int64")})

    return check


def _history(spark, path: Path, contract, fields: dict[str, str], column: str, control: str):
    """The history file checked against its contract, grouped per person into the JSON column the model takes."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    try:
        frame = spark.read.parquet(str(path))
    except AnalysisException as exc:
        if "PARQUET_TYPE_ILLEGAL" in str(exc) and "NANOS" in str(exc):
            raise SchemaError(f"{path}: nanosecond timestamps, which Spark cannot read; expected micro- or "
                              f"millisecond Parquet timestamps (pyarrow: coerce_timestamps='us')") from None
        raise
    missing = [c for c in contract.columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"{path}\n  column {missing[0]!r}: missing; expected the column to be present")
    frame = frame.select("person_id", *fields)
    frame.mapInPandas(_history_check(contract, str(path), control), schema="ok bigint").count()
    if contract is EXPOSURES:
        twice = frame.groupBy("person_id", "wave").count().where(F.col("count") > 1).limit(3).collect()
        if twice:
            raise SchemaError(f"{path}: columns ['person_id', 'wave']: expected unique pairs; e.g. "
                              f"{[(r['person_id'], r['wave']) for r in twice]} appear more than once")
    records = F.struct(*[F.col(f) for f in fields])
    as_json = F.to_json(F.collect_list(records), {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"})
    return frame.groupBy("person_id").agg(as_json.alias(column))


def _result_type(arms: tuple[str, ...], *, net: bool = False):
    """The scores' Spark schema: the pandas path's columns (with ``net``: a model with economics, its net columns)."""
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    from uplift.scoring.score import NET_PREFIX, UPLIFT_PREFIX

    return StructType([StructField("person_id", StringType())]
                      + [StructField(UPLIFT_PREFIX + a, DoubleType()) for a in arms]
                      + ([StructField(NET_PREFIX + a, DoubleType()) for a in arms] if net else [])
                      + [StructField("best_arm", StringType()), StructField("best_uplift", DoubleType())]
                      + ([StructField("best_net", DoubleType())] if net else [])
                      + [StructField("segment", StringType()), StructField("persona", StringType())])


def _unwrap(exc: Exception) -> Exception:
    """A Python error raised in a Spark worker, as the project's error if it was one."""
    text = str(exc)
    marker = "uplift.errors.SchemaError: "
    if marker in text:
        return SchemaError(text.split(marker, 1)[1].split("\n\n", 1)[0].strip())
    return exc


@dataclass(frozen=True)
class SparkModel:
    """The logged model as the Spark job calls it.

    Attributes
    ----------
    uri : the logged model (``models:/<name>/<version>``, ``runs:/...`` or a folder).
    arms : the model's treatment arms (its output columns ``uplift__<arm>``).
    control : the control arm's name (exposure rows of the control carry message and channel ``none``).
    net : the model carries economics (its output adds ``net__<arm>`` and ``best_net``).
    """

    uri: str
    arms: tuple[str, ...]
    control: str = "holdout"
    net: bool = False


@dataclass(frozen=True)
class HistoryFiles:
    """Earlier exposures and funnel events (Parquet file or folder each), optional: the features read them."""

    exposures: str | Path | None = None
    enrolments: str | Path | None = None


@dataclass(frozen=True)
class _Audience:
    """The audience read and checked: its rows (with file and row), their original columns, the checked rows
    (persisted: unpersist when done), the accepted rows and the rejects' keys (:func:`_checked`)."""

    raw: object
    originals: list[str]
    checked: object
    accepted: object
    bad: object

    def reject_records(self):
        """The rejects as the pandas path writes them, in file and row order."""
        return _reject_records(self.raw, self.bad, self.originals)


def score_dataset(
    spark,
    audience: str | Path,
    out: str | Path,
    *,
    model: SparkModel,
    as_of: pd.Timestamp,
    history: HistoryFiles = HistoryFiles(),
    rejects: str | Path | None = None,
    strict: bool = False,
) -> ScoreSummary:
    """Score a Parquet audience (file or folder) on Spark; write ``out`` as Parquet partitioned by ``best_arm``.

    Parameters
    ----------
    spark : a SparkSession (e.g. :func:`spark_session`).
    audience : Parquet file or folder with the audience contract's columns.
    out : destination folder (replaced as a whole, only when the job succeeds).
    model : the logged model, its arms and control, and whether it carries economics.
    as_of : planned assignment time (UTC); features use history strictly before it.
    history : earlier exposures and funnel events (default: none).
    rejects : where invalid rows go (``.csv`` or ``.parquet``; default ``<out>.rejects.csv`` beside ``out``).
    strict : fail on any invalid row instead, writing nothing.

    Raises
    ------
    SchemaError
        A required column is missing, a history file breaks its contract, or (``strict``) a row is
        invalid; nothing is written.
    """
    from pyspark.errors import PythonException

    audience, out = Path(audience), Path(out)
    rejects_path = rejects_destination(out, rejects, strict=strict)
    started = time.perf_counter()
    people = None
    try:
        people = _read_checked(spark, audience)
        n_bad, n_read = people.bad.count(), people.raw.count()
        if strict and n_bad:
            raise _strict_failure(audience, n_bad, people)
        scored = _scores(spark, _with_history(spark, people.accepted, history, model.control), model, as_of)
        with atomic_directory(out) as tmp:
            scored.write.partitionBy(PARTITION_COLUMN).parquet(str(tmp))
            if rejects_path is not None:
                _write_rejects(people.reject_records(), rejects_path, people.originals)
    except PythonException as exc:
        raise _unwrap(exc) from None
    finally:
        if people is not None:
            people.checked.unpersist()
    return ScoreSummary(audience=audience, out=out, rejects=rejects_path, rows_read=n_read, rows_scored=n_read - n_bad,
                        rows_rejected=n_bad, chunks=0, seconds=time.perf_counter() - started)


def _read_checked(spark, audience: Path) -> _Audience:
    """Step 1: the audience read and every row checked (contract, then repeated ids)."""
    raw, originals = _read_audience(spark, audience)
    checked, accepted, bad = _checked(raw, originals)
    return _Audience(raw, originals, checked, accepted, bad)


def _strict_failure(audience: Path, n_bad: int, people: _Audience) -> SchemaError:
    """Step 2 under ``strict``: the error naming how many rows are invalid, with the first five rejects."""
    first = people.reject_records().limit(5).toPandas()
    return SchemaError(f"{audience}: {n_bad} invalid row(s) (--strict: nothing was written)\n" + reject_message(first))


def _with_history(spark, rows, history: HistoryFiles, control: str):
    """Step 3: the accepted rows with each given history file's JSON column (null for a person without one)."""
    for path, contract, fields, column in ((history.exposures, EXPOSURES, EXPOSURE_FIELDS, EXPOSURES_COLUMN),
                                           (history.enrolments, ENROLMENTS, ENROLMENT_FIELDS, ENROLMENTS_COLUMN)):
        if path is not None:
            rows = rows.join(_history(spark, Path(path), contract, fields, column, control), "person_id", "left")
    return rows


def _scores(spark, rows, model: SparkModel, as_of: pd.Timestamp):
    """Step 4: the logged model's scores of ``rows`` (``spark_udf`` in this interpreter), the pandas path's columns."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    udf = mlflow.pyfunc.spark_udf(spark, model.uri, result_type=_result_type(tuple(model.arms), net=model.net),
                                  env_manager="local", params={"as_of": as_of.isoformat()})
    return rows.select(udf(F.struct(*rows.columns)).alias("s")).select("s.*")
