"""``uplift score``: score a whole audience file with the champion (or a version), chunk by chunk."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from uplift.cli.app import app, console, fail

__all__ = ["score", "parse_as_of", "load_history", "Engine"]


class Engine(str, Enum):
    pandas = "pandas"
    spark = "spark"


class _RowsPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s", style="cyan")


def parse_as_of(value: str | None) -> pd.Timestamp:
    """An ISO time as a UTC timestamp (naive times are taken as UTC); ``None`` = now."""
    if value is None:
        return pd.Timestamp.now(tz="UTC")
    try:
        ts = pd.Timestamp(value)
    except ValueError:
        fail(f"--as-of {value!r}: expected an ISO date or time, e.g. 2025-07-21 or 2025-07-21T09:00:00+02:00")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def load_history(exposures: Path | None, enrolments: Path | None, *,
                 control: str = "holdout") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The validated history files, or empty frames of the right shape when not given."""
    from uplift.data.contracts import ENROLMENTS, EXPOSURES, validate
    from uplift.data.inputs import check_exposures
    from uplift.data.tableio import read_table

    utc = pd.DatetimeTZDtype(tz="UTC")
    if exposures is not None:
        ex = validate(read_table(exposures), EXPOSURES, source=str(exposures))
        check_exposures(ex, source=str(exposures), control=control)
    else:
        ex = pd.DataFrame({"person_id": pd.Series(dtype="str"), "wave": pd.Series(dtype="int64"),
                           "arm": pd.Series(dtype="str"), "message": pd.Series(dtype="str"),
                           "channel": pd.Series(dtype="str"), "assigned_at": pd.Series(dtype=utc),
                           "assignment_probability": pd.Series(dtype="float64"),
                           "cost_eur": pd.Series(dtype="float64")})
    if enrolments is not None:
        en = validate(read_table(enrolments), ENROLMENTS, source=str(enrolments))
    else:
        en = pd.DataFrame({"person_id": pd.Series(dtype="str"), "event": pd.Series(dtype="str"),
                           "occurred_at": pd.Series(dtype=utc)})
    return ex, en


@app.command()
def score(
    audience: Annotated[Path, typer.Option(help="Audience file to score (.parquet or .csv).")],
    out: Annotated[Path, typer.Option(help="Where to write the scores (.parquet or .csv).")],
    exposures: Annotated[Path | None, typer.Option(help="Earlier exposures (history features).")] = None,
    enrolments: Annotated[Path | None, typer.Option(help="Earlier funnel events (history features).")] = None,
    as_of: Annotated[str | None,
                     typer.Option("--as-of", help="Planned assignment time, ISO (default: now, UTC).")] = None,
    model: Annotated[str, typer.Option(help="Registry alias or version number.")] = "champion",
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", min=1, help="Rows per chunk.")] = 100_000,
    rejects: Annotated[Path | None, typer.Option(help="Where invalid rows go (default: <out>.rejects.csv).")] = None,
    strict: Annotated[bool, typer.Option(help="Fail on the first invalid row; write nothing.")] = False,
    engine: Annotated[Engine, typer.Option(
        help="pandas: chunks in this process; spark: a Parquet file or folder "
             "on local Spark, scores partitioned by best_arm into folder --out.")] = Engine.pandas,
    spark_cores: Annotated[int, typer.Option("--spark-cores", min=1, help="Cores of the local Spark (local[N]).")] = 2,
) -> None:
    """Per person: uplift of every arm, the best arm, its uplift, segment and persona."""
    from uplift.config import get_settings
    from uplift.pipeline import load_feature_set, load_segment_spec
    from uplift.scoring import Scorer, SegmentLabeler, count_rows, model_feature_set, score_file
    from uplift.scoring.chunks import column_names
    from uplift.tracking.jobs import load_model

    if strict and rejects is not None:
        fail("give --rejects or --strict, not both")
    when = parse_as_of(as_of)
    column_names(audience)  # an unreadable file fails here, before the model is loaded
    total = count_rows(audience)
    settings = get_settings()
    if engine is Engine.spark:
        _score_on_spark(audience, out, exposures=exposures, enrolments=enrolments, when=when, model=model,
                        rejects=rejects, strict=strict, cores=spark_cores)
        return
    with console.status(f"loading model {settings.registered_model}@{model} and the history"):
        loaded = load_model(settings, model)
        pyfunc = loaded.model
        scorer = pyfunc.scorer  # the feature set and segment labels logged with the model
        if scorer is None:  # a model logged without them: the project's declarations
            feature_set = model_feature_set(load_feature_set(pyfunc.model.spec.feature_set), pyfunc)
            scorer = Scorer(model=pyfunc, feature_set=feature_set,
                            labeler=SegmentLabeler(loaded.segments, load_segment_spec()))
        ex, en = load_history(exposures, enrolments, control=pyfunc.control)
    with Progress(TextColumn("[bold]scoring[/]"), BarColumn(), MofNCompleteColumn(), _RowsPerSecond(),
                  TextColumn("{task.fields[rejected]} rejected"), TimeElapsedColumn(), console=console,
                  transient=False) as bar:
        task = bar.add_task("score", total=total, rejected=0)
        summary = score_file(audience, out, scorer=scorer, exposures=ex, enrolments=en, as_of=when,
                             chunk_rows=chunk_rows, rejects=rejects, strict=strict,
                             progress=lambda n, r: bar.update(task, completed=n, rejected=r))
    _report(settings, loaded, summary, audience=audience, out=out, when=when, chunk_rows=chunk_rows)


def _report(settings, loaded, summary, *, audience: Path, out: Path, when: pd.Timestamp, chunk_rows: int) -> None:
    from uplift.scoring import file_digest
    from uplift.tracking.jobs import log_scoring

    digest = file_digest(audience)
    run_id = log_scoring(settings, model=loaded, summary=summary, digest=digest, as_of=when, chunk_rows=chunk_rows)
    console.print(
        f"scored {summary.rows_scored:,} of {summary.rows_read:,} rows with {loaded.name} v{loaded.version} "
        f"as of {when.isoformat()} in {summary.seconds:.1f} s ({summary.rows_per_second:,.0f} rows/s) -> {out}"
    )
    if summary.rows_rejected:
        console.print(f"[yellow]{summary.rows_rejected:,} row(s) rejected[/] -> {summary.rejects} "
                      "(file, row, column, reason)")
    elif summary.rejects is not None:
        console.print(f"0 rows rejected ({summary.rejects} is empty)")
    console.print(f"MLflow run {run_id[:8]} in experiment 'uplift-scoring' (input sha256 {digest[:12]})")


def _score_on_spark(audience: Path, out: Path, *, exposures: Path | None, enrolments: Path | None, when: pd.Timestamp,
                    model: str, rejects: Path | None, strict: bool, cores: int) -> None:
    from uplift.config import get_settings
    from uplift.scoring.spark import HistoryFiles, SparkModel, score_dataset, spark_session
    from uplift.tracking.jobs import load_model

    for path, name in ((audience, "--audience"), (exposures, "--exposures"), (enrolments, "--enrolments")):
        if path is not None and path.is_file() and path.suffix.lower() != ".parquet":
            fail(f"{name} {path}: --engine spark reads Parquet (a .parquet file or a folder of them)")
    settings = get_settings()
    with console.status(f"loading model {settings.registered_model}@{model} and starting Spark local[{cores}]"):
        loaded = load_model(settings, model)
        spark = spark_session(cores)
    try:
        with console.status(f"scoring {audience} on Spark local[{cores}]"):
            called = SparkModel(f"models:/{loaded.name}/{loaded.version}", arms=loaded.model.arms,
                                control=loaded.model.control, net=loaded.model.rule_economics is not None)
            summary = score_dataset(spark, audience, out, model=called, as_of=when,
                                    history=HistoryFiles(exposures, enrolments), rejects=rejects, strict=strict)
    finally:
        spark.stop()
    _report(settings, loaded, summary, audience=audience, out=out, when=when, chunk_rows=0)
