"""Benchmark of batch scoring: the pandas path (``uplift score``) against Spark ``local[2]`` (``--engine spark``).

Same logged model, same audience files, same history, same 2 cores. For each size (default 1,000,000 and
10,000,000 rows) each engine scores the file in its own child process, end to end: the pandas path is
:func:`uplift.scoring.score_file` with the model's bundled scorer (one Parquet file out), Spark is
:func:`uplift.scoring.spark.score_dataset` through ``mlflow.pyfunc.spark_udf`` (Parquet partitioned by
best arm out), Spark's start-up included. Reported per run: wall seconds, rows/s, and the peak of the
resident memory summed over the child and all its descendants (Spark's JVM and its Python workers),
sampled every 0.2 s from ``/proc``.

The model is the pooled learner of ``models/pooled_lightgbm.yaml`` (all 18 arms) trained on a simulated world
and logged to a temporary MLflow store by the project's own training job; the audience rows are resampled
from that world (``bench_scoring.write_audience``, row groups of 100,000 rows so Spark can split the file).

Run: ``make bench-spark`` or ``PYSPARK_PYTHON=.venv/bin/python SPARK_LOCAL_IP=127.0.0.1 .venv/bin/python
benchmarks/bench_spark.py --rows 1000000 10000000``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
AS_OF = "2025-07-21T00:00:00+00:00"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, MB."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        stack += _children(p)
    return total / 1024


def run_measured(cmd: list[str]) -> tuple[dict, float]:
    """Run ``cmd``; its last stdout line as JSON and the peak summed RSS of its process tree (MB)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1]), peak[0]


def child(engine: str, store: Path, audience: Path, history: Path, out: Path) -> None:
    """Score ``audience`` with ``engine`` and print rows and seconds as JSON (Spark's start-up included)."""
    import mlflow

    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    started = time.perf_counter()
    pyfunc = mlflow.pyfunc.load_model("models:/uplift-registration/1").unwrap_python_model()
    as_of = pd.Timestamp(AS_OF)
    if engine == "pandas":
        from uplift.data.tableio import read_table
        from uplift.scoring import score_file

        ex, en = read_table(history / "exposures.parquet"), read_table(history / "enrolments.parquet")
        summary = score_file(audience, out / "scores.parquet", scorer=pyfunc.scorer, exposures=ex, enrolments=en,
                             as_of=as_of, chunk_rows=100_000)
    else:
        from uplift.scoring.spark import HistoryFiles, SparkModel, score_dataset, spark_session

        spark = spark_session(2)
        summary = score_dataset(spark, audience, out / "scores",
                                model=SparkModel("models:/uplift-registration/1", pyfunc.arms, pyfunc.control),
                                as_of=as_of,
                                history=HistoryFiles(history / "exposures.parquet", history / "enrolments.parquet"))
        spark.stop()
    print(json.dumps({"rows": summary.rows_read, "seconds": time.perf_counter() - started,
                      "job_seconds": summary.seconds}))


def prepare(folder: Path, people: int, seed: int) -> pd.DataFrame:
    """Train and log the pooled model on a simulated world; write its history and audience (returned)."""
    import yaml

    from uplift.config import Settings
    from uplift.data.tableio import write_table
    from uplift.features import build_training_table
    from uplift.pipeline import load_feature_set, train_and_log
    from uplift.simulate import simulate
    from uplift.specs import load_spec
    from uplift.specs.region import RegionSpec

    region = load_spec(ROOT / "features" / "regions" / "haaglanden.yaml", RegionSpec)
    world = simulate(region, people=people, waves=2, seed=seed)
    table = build_training_table(world.audience, world.exposures, world.enrolments, load_feature_set("default"))
    spec = yaml.safe_load((ROOT / "models" / "pooled_lightgbm.yaml").read_text())
    spec["cv"] = {**spec.get("cv", {}), "folds": 2}  # the benchmark is about scoring: a quick validation
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    train_and_log(folder / "spec.yaml", table, settings=Settings(workdir=folder / "store", experiment_name="bench"),
                  data_source="bench_spark")
    write_table(world.exposures, folder / "history" / "exposures.parquet")
    write_table(world.enrolments, folder / "history" / "enrolments.parquet")
    write_table(world.audience, folder / "world_audience.parquet")
    return world.audience


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", type=int, default=[1_000_000, 10_000_000])
    parser.add_argument("--engines", nargs="+", choices=["pandas", "spark"], default=["pandas", "spark"])
    parser.add_argument("--people", type=int, default=20_000, help="people in the simulated training world")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, help="write the results as JSON and Markdown here")
    parser.add_argument("--work", type=Path, help="keep the trained model and history here and reuse them next time")
    parser.add_argument("--child", nargs=5, metavar=("ENGINE", "STORE", "AUDIENCE", "HISTORY", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        engine, *paths = args.child
        child(engine, *map(Path, paths))
        return []

    from types import SimpleNamespace

    from benchmarks.bench_scoring import write_audience

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_spark_") as scratch:
        tmp = args.work or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        if (tmp / "world_audience.parquet").exists():
            world = SimpleNamespace(audience=pd.read_parquet(tmp / "world_audience.parquet"))
        else:
            world = SimpleNamespace(audience=prepare(tmp, args.people, args.seed))
            print(f"trained and logged the pooled model ({args.people:,} people x 2 waves) in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        for rows in args.rows:
            audience = write_audience(world, tmp / f"audience_{rows}.parquet", rows, chunk=100_000, seed=rows % 1000)
            for engine in args.engines:
                out = tmp / f"out_{engine}_{rows}"
                out.mkdir(exist_ok=True)
                cmd = [sys.executable, __file__, "--child", engine, str(tmp / "store"), str(audience),
                       str(tmp / "history"), str(out)]
                measured, peak = run_measured(cmd)
                result = {"engine": engine if engine == "pandas" else "spark local[2]", "rows": measured["rows"],
                          "seconds": measured["seconds"], "rows_per_s": measured["rows"] / measured["seconds"],
                          "job_rows_per_s": measured["rows"] / measured["job_seconds"], "peak_rss_mb": peak}
                results.append(result)
                print(f"{result['engine']:>15}: {rows:>11,} rows in {measured['seconds']:7.0f} s = "
                      f"{result['rows_per_s']:8,.0f} rows/s (job alone {result['job_rows_per_s']:8,.0f} rows/s), "
                      f"peak RSS of the process tree {peak:7,.0f} MB", flush=True)
                shutil.rmtree(out)
            audience.unlink()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "spark_scoring.json").write_text(json.dumps(results, indent=2))
        lines = ["| engine | rows | seconds | rows/s | rows/s (job alone) | peak RSS, process tree (MB) |",
                 "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['engine']} | {r['rows']:,} | {r['seconds']:,.0f} | {r['rows_per_s']:,.0f} | "
                  f"{r['job_rows_per_s']:,.0f} | {r['peak_rss_mb']:,.0f} |" for r in results]
        (args.out / "spark_scoring.md").write_text("\n".join(lines) + "\n")
    return results


if __name__ == "__main__":
    main()
