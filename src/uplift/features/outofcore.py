"""The point-in-time training table built out of core: DuckDB streams the three inputs into a Parquet file.

The same table as :func:`uplift.features.build_training_table`, row for row and dtype for dtype, from the SQL
definition that stands beside every feature function (:class:`uplift.features.library.SqlDef`). The inputs are
checked against their pandera contracts batch by batch (:func:`uplift.data.inputs.scan_inputs`), uniqueness and
the cross-file rules in SQL. DuckDB then splits the three inputs into buckets of people (ranges of
``person_id``, placed by a sample of the exposures; as many buckets as the exposures need for each to fit well
within the memory limit), joins each key with the same person's earlier history one bucket at a time, and writes
each bucket's rows of each wave ordered by person to a temporary Parquet part; the parts, read wave by wave and
bucket by bucket, are the table in its order (wave, then person) with no sort over the whole table. The result
is written in row groups, atomically, so memory stays bounded however many person-waves there are.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from uplift.data.inputs import INPUT_NAMES, ScannedInput, arm_mismatch, scan_inputs
from uplift.data.tableio import atomic_path
from uplift.data.trainingtable import PROPENSITY_PREFIX, table_metadata
from uplift.data.vocabulary import NO_MESSAGE, arm_name
from uplift.errors import DataError, SchemaError, SpecError
from uplift.features.build import arms_of, feature_columns, features_for_audience
from uplift.features.library import SqlDef, literal, quoted, resolve
from uplift.features.propensity import DESIGN_CELL, design_table
from uplift.specs.features import FeatureSetSpec

__all__ = ["BYTES_PER_BUCKET_ROW", "BYTES_PER_ROW_GROUP_ROW", "EngineSettings", "TableSummary", "bucket_count",
           "memory_bytes", "row_group_rows", "training_table_sql", "validate_inputs", "write_training_table"]

_NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class EngineSettings:
    """How the out-of-core build runs.

    Attributes
    ----------
    batch_rows : rows per batch, both for the contract checks of the inputs and for the row groups written (at
        most :func:`row_group_rows`: fewer under a small memory limit).
    memory_limit : DuckDB's memory limit (beyond it, joins, aggregates and the sort spill to ``temp_dir``), a
        size such as ``"2GB"``, ``"700MB"`` or ``"1.5GiB"``.
    threads : DuckDB's worker threads (None: one per core).
    temp_dir : where validated copies of inputs, the buckets and DuckDB's spill files go (None: beside the output).
    bucket_rows : exposure rows per bucket of people joined with their history at once (None: from the memory
        limit, :data:`BYTES_PER_BUCKET_ROW` of it per row).
    """

    batch_rows: int = 1_000_000
    memory_limit: str = "2GB"
    threads: int | None = None
    temp_dir: Path | None = None
    bucket_rows: int | None = None

    def __post_init__(self) -> None:
        memory_bytes(self.memory_limit)  # a limit the buckets cannot be sized by is an error before any work
        if self.bucket_rows is not None and self.bucket_rows < 1:
            raise SpecError(f"bucket_rows {self.bucket_rows!r}: expected a whole number of rows >= 1 (or None)")


#: memory a bucket of people may take per exposure row, history joins and aggregates included (measured on the
#: demo region: see docs/benchmarks.md, "Scaling")
BYTES_PER_BUCKET_ROW = 1_000

_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def memory_bytes(limit: str) -> int:
    """The bytes of a DuckDB memory limit such as ``"2GB"`` (10^9) or ``"1.5GiB"`` (2^30).

    Raises
    ------
    SpecError
        ``limit`` is not a number followed by one of B, KB, MB, GB, TB, KiB, MiB, GiB, TiB.
    """
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", str(limit).lower())
    if found is None or found[2] not in _UNITS:
        raise SpecError(f"memory_limit {limit!r}: expected a size such as '2GB', '700MB' or '1.5GiB' "
                        f"(units: {', '.join(sorted(_UNITS, key=_UNITS.get))})")
    return int(float(found[1]) * _UNITS[found[2]])


#: memory the Parquet writer may take per row of a row group of the table (it holds row groups in order while
#: they are written): 2,000,000,000 bytes, the default limit, for the default 1,000,000 rows
BYTES_PER_ROW_GROUP_ROW = 2_000


def row_group_rows(settings: EngineSettings) -> int:
    """Rows per row group of the table: ``batch_rows``, at most one per :data:`BYTES_PER_ROW_GROUP_ROW` bytes of
    the memory limit (so the row groups held while the table is written fit within it)."""
    return max(1, min(settings.batch_rows, memory_bytes(settings.memory_limit) // BYTES_PER_ROW_GROUP_ROW))


def bucket_count(exposure_rows: int, settings: EngineSettings) -> int:
    """How many buckets of people the history joins run in: enough for at most ``bucket_rows`` exposure rows
    each (on average), at least one."""
    per_bucket = settings.bucket_rows or max(1, memory_bytes(settings.memory_limit) // BYTES_PER_BUCKET_ROW)
    return max(1, math.ceil(exposure_rows / per_bucket))


@dataclass(frozen=True)
class TableSummary:
    """What was written: ``rows``, distinct ``people`` and ``waves``, the ``outcome_rate``, the feature columns."""

    path: Path
    rows: int
    people: int
    waves: int
    outcome_rate: float
    features: tuple[str, ...]


def _sql_of(name: str, spec: FeatureSetSpec) -> SqlDef:
    sql = resolve(name, spec).sql
    if sql is None:
        raise SpecError(f"feature {name!r} has no SQL definition, so the out-of-core engine cannot compute it; "
                        "build the table in memory (uplift.features.build_training_table)")
    return sql


def training_table_sql(spec: FeatureSetSpec, arms: tuple[str, ...], *, ordered: bool = True) -> str:
    """The query of the training table over the views ``a`` (audience), ``ex`` (exposures, ``t`` in ns and
    ``src`` the file position), ``ev`` (events, ``t`` in ns) and ``design`` (wave, design cell and one
    ``propensity__<arm>`` per arm), ordered as the in-memory build orders it (wave, then person) unless not
    ``ordered``."""
    aggregates: dict[str, list[str]] = {"prior_exposures": [], "prior_events": []}
    final = []
    for name in spec.features:
        sql = _sql_of(name, spec)
        for column, expr in sql.columns(spec).items():
            if sql.source == "person":
                final.append(f"{expr} AS {quoted(column)}")
                continue
            aggregates[sql.source].append(f"{expr} AS {quoted(column)}")
            value = f"{_ALIASES[sql.source]}.{quoted(column)}"
            final.append(f"{value if sql.fill is None else f'coalesce({value}, {sql.fill})'} AS {quoted(column)}")
    window = spec.outcome.attribution_days * _NS_PER_DAY
    # key rows are named by their position in the exposures file (src): integers hash and join faster than text
    ctes = ["keys AS (SELECT src, person_id, t AS as_of FROM ex)",
            f"""po AS (
  SELECT DISTINCT k.src FROM keys AS k JOIN ev AS v ON v.person_id = k.person_id
  WHERE v.event = {literal(spec.outcome.event)} AND v.t >= k.as_of AND v.t < k.as_of + {window}
)"""]
    joins = ["LEFT JOIN a ON a.person_id = k.person_id", "LEFT JOIN po ON po.src = k.src"]
    for source, history, alias in (("prior_exposures", "ex", "e"), ("prior_events", "ev", "v")):
        if aggregates[source]:
            cte = _ALIASES[source]
            ctes.append(f"""{cte} AS (
  SELECT k.src, {', '.join(aggregates[source])}
  FROM keys AS k JOIN {history} AS {alias} ON {alias}.person_id = k.person_id AND {alias}.t < k.as_of
  GROUP BY k.src
)""")
            joins.append(f"LEFT JOIN {cte} ON {cte}.src = k.src")
    propensities = [f"d.{quoted(PROPENSITY_PREFIX + arm)}" for arm in arms]
    return f"""WITH {', '.join(ctes)}
SELECT k.person_id, k.wave, k.assigned_at, k.arm, k.cost_eur,
       CAST(po.src IS NOT NULL AS BIGINT) AS outcome,
       {', '.join(propensities)},
       {', '.join(final)}
FROM ex AS k
{chr(10).join(joins)}
JOIN design AS d ON d.wave = k.wave AND d.design_cell = k.design_cell""" + (
        "\nORDER BY k.wave, k.person_id" if ordered else "")


_ALIASES = {"prior_exposures": "pe", "prior_events": "pv"}
_VIEWS = ("a", "ex", "ev")


def _connect(settings: EngineSettings, spill: Path):
    import duckdb

    # insertion order kept: the table is the parts read in order (``_write_in_order``)
    config = {"memory_limit": settings.memory_limit, "temp_directory": str(spill), "preserve_insertion_order": True}
    if settings.threads is not None:
        config["threads"] = settings.threads
    con = duckdb.connect(config=config)
    con.execute("SET TimeZone = 'UTC'")
    return con


def _views(con, scanned: Mapping[str, ScannedInput]) -> None:
    """The three inputs as the views the query reads: ``a``, ``ex`` and ``ev``, times as ns since the epoch."""
    def parquet(name: str, rows: bool = False) -> str:
        numbered = ", file_row_number = true" if rows else ""
        return f"read_parquet({literal(str(scanned[name].path))}{numbered})"

    con.execute(f"CREATE VIEW a AS SELECT * FROM {parquet('audience')}")
    cell = (f"coalesce(CAST({DESIGN_CELL} AS VARCHAR), '')" if DESIGN_CELL in scanned["exposures"].columns
            else "''")
    con.execute(f"""CREATE VIEW ex AS SELECT person_id, wave, arm, message, channel, assigned_at,
        epoch_ns(assigned_at) AS t, assignment_probability, cost_eur, {cell} AS {DESIGN_CELL},
        file_row_number AS src
        FROM {parquet('exposures', rows=True)}""")
    con.execute(f"CREATE VIEW ev AS SELECT person_id, event, epoch_ns(occurred_at) AS t FROM {parquet('enrolments')}")


def _duplicates(con, view: str, keys: list[str], source: Path, contract: str) -> None:
    """The whole-file uniqueness the batches could not check, reported as the contract check would."""
    cols = ", ".join(keys)
    found = con.execute(f"""SELECT count(*), list({'(' + cols + ')' if len(keys) > 1 else cols}) FROM (
        SELECT {cols} FROM {view} GROUP BY {cols} HAVING count(*) > 1 ORDER BY {cols})""").fetchone()
    if found[0]:
        what = (f"column {keys[0]!r}: expected unique values" if len(keys) == 1
                else f"column '<frame>': expected unique {keys}")
        examples = ", ".join(repr(v) for v in found[1][:3])
        raise SchemaError(f"{source}: does not match the {contract} contract\n  {what}; {found[0]} value(s) occur more "
                          f"than once (e.g. {examples})")


def _check_together(con, scanned: Mapping[str, ScannedInput], spec: FeatureSetSpec, arms: tuple[str, ...]) -> None:
    """The rules across rows and files, with the messages of the in-memory build."""
    present = [r[0] for r in con.execute("SELECT DISTINCT arm FROM ex ORDER BY arm").fetchall()]
    unknown = sorted(set(present) - set(arms))
    if unknown:
        raise DataError(
            f"exposures: column 'arm' has {unknown} which the feature set {spec.name!r} does not declare "
            f"(its messages x channels plus {spec.control_arm!r})"
        )
    mislabelled = f"""SELECT count(*), arg_min(arm, src), arg_min(message, src), arg_min(channel, src) FROM ex
        WHERE arm <> CASE WHEN message = {literal(NO_MESSAGE)} AND channel = {literal(NO_MESSAGE)}
                          THEN {literal(spec.control_arm)} ELSE message || {literal(arm_name('', ''))} || channel END"""
    bad = con.execute(mislabelled).fetchone()
    if bad[0]:
        raise SchemaError(arm_mismatch(str(scanned["exposures"].source), spec.control_arm, *bad))
    _duplicates(con, "a", ["person_id"], scanned["audience"].source, "audience")
    _duplicates(con, "ex", ["person_id", "wave"], scanned["exposures"].source, "exposures")
    count, examples = con.execute("""SELECT count(*), list(person_id) FILTER (WHERE r <= 3) FROM (
        SELECT person_id, row_number() OVER (ORDER BY person_id) AS r
        FROM (SELECT DISTINCT person_id FROM ex) AS p ANTI JOIN a USING (person_id))""").fetchone()
    if count:
        raise DataError(f"{count} person id(s) have history but no audience row (e.g. {sorted(examples)})")


def _design(con, arms: tuple[str, ...], source: Path) -> pd.DataFrame:
    """The (wave, design cell) x arm design (:func:`uplift.features.propensity.design_table`) from the
    per-pair extremes."""
    pairs = con.execute(f"""SELECT wave, {DESIGN_CELL}, arm, min(assignment_probability) AS lo,
        max(assignment_probability) AS hi FROM ex GROUP BY wave, {DESIGN_CELL}, arm""").df()
    rows = pd.concat([pairs[["wave", DESIGN_CELL, "arm", end]].rename(columns={end: "assignment_probability"})
                      for end in ("lo", "hi")])
    design = design_table(rows, arms, source=str(source)).add_prefix(PROPENSITY_PREFIX)
    design.columns.name = None
    return design.reset_index().astype({"wave": "int64", DESIGN_CELL: "str"})


_SAMPLE_ROWS = 100_000  # person ids sampled from the exposures to place the bounds between buckets


def _bucket_bounds(con, buckets: int) -> list[str]:
    """The person ids that open the second, third, ... bucket: evenly spaced through a sample of the exposures'
    person ids in sorted order, so each bucket is a range of ids with about as many exposure rows as the others."""
    if buckets == 1:
        return []
    sample = [r[0] for r in con.execute(f"""SELECT person_id FROM (SELECT person_id FROM ex
        USING SAMPLE reservoir({_SAMPLE_ROWS} ROWS) REPEATABLE (7)) ORDER BY person_id""").fetchall()]
    return list(dict.fromkeys(sample[len(sample) * i // buckets] for i in range(1, buckets)))


def _bucket_of(bounds: list[str]) -> str:
    """The SQL of a row's bucket: how many ``bounds`` its ``person_id`` is not below."""
    whens = " ".join(f"WHEN person_id < {literal(b)} THEN {i}" for i, b in enumerate(bounds))
    return f"CASE {whens} ELSE {len(bounds)} END" if bounds else "0"


def _split_into_buckets(con, folder: Path, bounds: list[str]) -> None:
    """Each of the views ``a``, ``ex`` and ``ev`` written once to ``folder/<view>/bucket=<b>/`` by the range of
    ``person_id`` it falls in, so a person's rows are all in one bucket and the buckets follow the ids' order; an
    empty table ``<view>_empty`` of each keeps its columns for buckets without rows."""
    folder.mkdir(parents=True, exist_ok=True)
    for view in _VIEWS:
        con.execute(f"CREATE TEMP TABLE {view}_empty AS SELECT * FROM {view} LIMIT 0")
        con.execute(f"""COPY (SELECT *, {_bucket_of(bounds)} AS bucket FROM {view})
            TO {literal(str(folder / view))} (FORMAT parquet, PARTITION_BY (bucket))""")


def _point_views_at_bucket(con, folder: Path, bucket: int) -> None:
    """The views ``a``, ``ex`` and ``ev`` replaced by the rows of one bucket."""
    for view in _VIEWS:
        files = folder / view / f"bucket={bucket}"
        rows = (f"read_parquet({literal(str(files / '*.parquet'))}, hive_partitioning = false)"
                if files.is_dir() else f"{view}_empty")
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {rows}")


def _write_bucket(con, query: str, waves: list[int], folder: Path, bucket: int) -> dict[int, Path]:
    """One bucket's rows of the training table, one Parquet part per wave ordered by person."""
    _point_views_at_bucket(con, folder, bucket)
    con.execute(f"CREATE OR REPLACE TEMP TABLE bucket_rows AS {query}")
    parts = {}
    for wave in waves:
        parts[wave] = folder / "parts" / f"wave-{wave}-bucket-{bucket:05d}.parquet"
        con.execute(f"""COPY (SELECT * FROM bucket_rows WHERE wave = {wave} ORDER BY person_id)
            TO {literal(str(parts[wave]))} (FORMAT parquet)""")
    con.execute("DROP TABLE bucket_rows")
    return parts


def _write_parts(con, spec: FeatureSetSpec, arms: tuple[str, ...], folder: Path, buckets: int) -> list[Path]:
    """The training table's rows in parts that, read in the order returned (wave, then bucket), are ordered by
    wave, then person (the views ``a``, ``ex`` and ``ev`` are left pointing at the last bucket)."""
    waves = [w for (w,) in con.execute("SELECT DISTINCT wave FROM ex ORDER BY wave").fetchall()]
    bounds = _bucket_bounds(con, buckets)
    _split_into_buckets(con, folder, bounds)
    (folder / "parts").mkdir()
    query = training_table_sql(spec, arms, ordered=False)
    if not waves:  # no exposures: a part with the table's columns and no rows
        con.execute(f"COPY ({query}) TO {literal(str(folder / 'parts' / 'empty.parquet'))} (FORMAT parquet)")
        return [folder / "parts" / "empty.parquet"]
    by_bucket = [_write_bucket(con, query, waves, folder, b) for b in range(len(bounds) + 1)]
    return [parts[wave] for wave in waves for parts in by_bucket]


def _write_in_order(con, parts: list[Path], out: Path, metadata: Mapping[str, str], batch_rows: int) -> tuple[int, int]:
    """The parts one after the other (DuckDB keeps the order of the files and of their rows) written to ``out`` in
    row groups of ``batch_rows`` rows with ``metadata``; returns its rows and outcomes."""
    kv = ", ".join(f"{literal(k)}: {literal(v)}" for k, v in metadata.items())
    files = f"read_parquet([{', '.join(literal(str(p)) for p in parts)}])"
    con.execute(f"""COPY (SELECT * FROM {files}) TO {literal(str(out))}
        (FORMAT parquet, ROW_GROUP_SIZE {batch_rows}, KV_METADATA {{{kv}}})""")
    return con.execute(f"SELECT count(*), coalesce(sum(outcome), 0) FROM read_parquet({literal(str(out))})").fetchone()


def validate_inputs(
    paths: Mapping[str, str | Path], spec: FeatureSetSpec, *, settings: EngineSettings = EngineSettings()
) -> dict[str, int]:
    """Every check :func:`write_training_table` makes before it computes a feature (contracts in batches, the
    rules across rows and files in SQL), without writing anything; returns the rows of each input.

    Raises as :func:`write_training_table` does.
    """
    parent = settings.temp_dir or Path(tempfile.gettempdir())
    with tempfile.TemporaryDirectory(prefix=".uplift-inputs-", dir=parent) as tmp:
        scanned = scan_inputs({n: Path(paths[n]) for n in INPUT_NAMES}, stage_dir=Path(tmp) / "checked",
                              batch_rows=settings.batch_rows, attributes=spec.attributes)
        con = _connect(settings, Path(tmp) / "spill")
        try:
            _views(con, scanned)
            _check_together(con, scanned, spec, arms_of(spec))
            _design(con, arms_of(spec), scanned["exposures"].source)
        finally:
            con.close()
    return {name: s.rows for name, s in scanned.items()}


def write_training_table(
    paths: Mapping[str, str | Path],
    spec: FeatureSetSpec,
    out: str | Path,
    *,
    settings: EngineSettings = EngineSettings(),
) -> TableSummary:
    """Check the three inputs and write the training table to ``out`` (Parquet, atomically), out of core.

    The file equals ``build_training_table(...).save(out)`` of the same inputs row for row and dtype for dtype
    (read back with :meth:`uplift.data.trainingtable.TrainingTable.load`); features whose attributes the audience
    lacks are left out, with the same note.

    Parameters
    ----------
    paths : ``audience``, ``exposures`` and ``enrolments`` files (Parquet or CSV).
    spec : the feature set; every feature needs an SQL definition.
    out : the ``.parquet`` file to write.
    settings : batch size, memory limit (which also sizes the buckets of people), threads, temporary folder.

    Raises
    ------
    SchemaError
        An input breaks its contract (the first batch that does, or a repeated id).
    DataError
        Unknown arms, exposures of people without an audience row, a design that is not one probability per
        wave and arm summing to 1.
    SpecError
        A feature has no SQL definition.
    """
    out = Path(out)
    arms = arms_of(spec)
    for name in spec.features:  # before reading any data: a feature the engine cannot compute is a spec error
        _sql_of(name, spec)
    parent = settings.temp_dir or out.parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".uplift-features-", dir=parent) as tmp:
        scanned = scan_inputs({n: Path(paths[n]) for n in INPUT_NAMES}, stage_dir=Path(tmp) / "checked",
                              batch_rows=settings.batch_rows, attributes=spec.attributes)
        con = _connect(settings, Path(tmp) / "spill")
        try:
            _views(con, scanned)
            _check_together(con, scanned, spec, arms)
            spec = features_for_audience(spec, scanned["audience"].columns)
            con.register("design", _design(con, arms, scanned["exposures"].source))
            metadata = table_metadata(feature_columns(spec), arms, spec.control_arm, spec.outcome.describe())
            people, waves = con.execute("SELECT count(DISTINCT person_id), count(DISTINCT wave) FROM ex").fetchone()
            parts = _write_parts(con, spec, arms, Path(tmp) / "buckets",
                                 bucket_count(scanned["exposures"].rows, settings))
            with atomic_path(out) as tmp_out:
                rows, outcomes = _write_in_order(con, parts, tmp_out, metadata, row_group_rows(settings))
        finally:
            con.close()
    return TableSummary(path=out, rows=rows, people=people, waves=waves, outcome_rate=outcomes / rows if rows else 0.0,
                        features=tuple(c.name for c in feature_columns(spec)))
