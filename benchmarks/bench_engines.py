"""DuckDB against Polars (lazy, streaming) on the heart of the point-in-time table, each in its own process.

The task both engines run on the same simulated inputs: join every exposure (the key) with the same person's
exposures strictly before it, count them (all, contacts, per channel, per message), take the last contact's
time and sum the earlier spend, join the audience's attributes, sort by wave and person and write Parquet.
Peak memory is the child's ``VmHWM``; times are wall and CPU seconds around the task (imports excluded).

``--tables`` compares the whole training-table step instead: the in-memory build (pandera on whole frames,
then the pandas feature functions: ``load_inputs`` + ``build_training_table`` + ``save``) against the
out-of-core one (``write_training_table``), on the same folder, alternating.

    python -m benchmarks.bench_engines --data DIR [--repeats 2] [--tables]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = ("meta", "linkedin", "flyer")
MESSAGES = ("heavy_work_future", "care_with_children", "fresh_start", "ict_role_model", "free_voucher", "steady_income")


def _duckdb(data: Path, out: Path) -> int:
    import duckdb

    con = duckdb.connect()
    ex, au = data / "exposures.parquet", data / "audience.parquet"
    con.execute(f"CREATE VIEW ex AS SELECT *, epoch_ns(assigned_at) AS t, file_row_number AS src "
                f"FROM read_parquet('{ex}', file_row_number = true)")
    counts = [f"count(*) FILTER (WHERE e.arm <> 'holdout' AND e.channel = '{c}') AS c_{c}" for c in CHANNELS]
    counts += [f"count(*) FILTER (WHERE e.arm <> 'holdout' AND e.message = '{m}') AS m_{m}" for m in MESSAGES]
    con.execute(f"""COPY (
      WITH pe AS (SELECT k.src, count(*) AS waves, count(*) FILTER (WHERE e.arm <> 'holdout') AS contacts,
                         {', '.join(counts)}, max(e.t) FILTER (WHERE e.arm <> 'holdout') AS last_t,
                         list_sum(list(e.cost_eur ORDER BY e.src)) AS spend
                  FROM ex AS k JOIN ex AS e ON e.person_id = k.person_id AND e.t < k.t GROUP BY k.src)
      SELECT k.person_id, k.wave, k.arm, a.* EXCLUDE (person_id), pe.* EXCLUDE (src)
      FROM ex AS k LEFT JOIN read_parquet('{au}') AS a ON a.person_id = k.person_id LEFT JOIN pe ON pe.src = k.src
      ORDER BY k.wave, k.person_id) TO '{out}' (FORMAT parquet)""")
    return con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]


def _polars(data: Path, out: Path) -> int:
    import polars as pl

    ex = pl.scan_parquet(data / "exposures.parquet").with_row_index("src").with_columns(
        pl.col("assigned_at").dt.epoch("ns").alias("t"))
    keys = ex.select("src", "person_id", pl.col("t").alias("as_of"))
    prior = keys.join(ex.select("person_id", "t", "arm", "message", "channel", "cost_eur",
                                pl.col("src").alias("e_src")),
                      on="person_id").filter(pl.col("t") < pl.col("as_of")).sort("src", "e_src")
    contact = pl.col("arm") != "holdout"
    aggs = [pl.len().alias("waves"), contact.sum().alias("contacts")]
    aggs += [(contact & (pl.col("channel") == c)).sum().alias(f"c_{c}") for c in CHANNELS]
    aggs += [(contact & (pl.col("message") == m)).sum().alias(f"m_{m}") for m in MESSAGES]
    aggs += [pl.col("t").filter(contact).max().alias("last_t"), pl.col("cost_eur").sum().alias("spend")]
    pe = prior.group_by("src").agg(aggs)
    audience = pl.scan_parquet(data / "audience.parquet")
    table = (ex.select("src", "person_id", "wave", "arm").join(audience, on="person_id", how="left")
             .join(pe, on="src", how="left").sort("wave", "person_id").drop("src"))
    table.sink_parquet(out)
    return pl.scan_parquet(out).select(pl.len()).collect().item()


def _in_memory(data: Path, out: Path) -> int:
    from uplift.data.inputs import load_inputs, locate_inputs
    from uplift.features import build_training_table
    from uplift.pipeline import load_feature_set

    paths = locate_inputs(data)
    inputs = load_inputs(paths["audience"], paths["exposures"], paths["enrolments"])
    table = build_training_table(inputs.audience, inputs.exposures, inputs.enrolments, load_feature_set("default"))
    table.save(out)
    return len(table.frame)


def _out_of_core(data: Path, out: Path) -> int:
    from uplift.data.inputs import locate_inputs
    from uplift.features.outofcore import write_training_table
    from uplift.pipeline import load_feature_set

    return write_training_table(locate_inputs(data), load_feature_set("default"), out).rows


ENGINES = {"duckdb": _duckdb, "polars": _polars, "in-memory table": _in_memory, "out-of-core table": _out_of_core}


def _child(engine: str, data: str, out: str) -> dict:
    fn = ENGINES[engine]
    wall, cpu = time.perf_counter(), time.process_time()
    rows = fn(Path(data), Path(out))
    result = {"engine": engine, "rows": rows, "seconds": time.perf_counter() - wall,
              "cpu_seconds": time.process_time() - cpu}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            result["peak_rss_mb"] = int(line.split()[1]) / 1024.0
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_engines", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="folder with audience.parquet and exposures.parquet")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--tables", action="store_true", help="the whole training-table step, in memory vs out of core")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child)))
        return 0
    print("| engine | rows | seconds | CPU seconds | peak RSS MB | load average |\n|---|---:|---:|---:|---:|---:|")
    for _ in range(args.repeats):
        pair = ("in-memory table", "out-of-core table") if args.tables else ("duckdb", "polars")
        for engine in pair:  # side by side, alternating, so both see the same load
            out = args.data / f".bench_engines_{engine.replace(' ', '_')}.parquet"
            done = subprocess.run([sys.executable, "-m", "benchmarks.bench_engines", "--data", str(args.data),
                                   "--child", engine, str(args.data), str(out)],
                                  cwd=ROOT, capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            out.unlink(missing_ok=True)
            load = Path("/proc/loadavg").read_text().split()[0]
            print(f"| {engine} | {r['rows']:,} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | {r['peak_rss_mb']:,.0f} "
                  f"| {load} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
