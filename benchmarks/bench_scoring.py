"""Benchmark of ``uplift score``: throughput against the bare LightGBM booster, and peak memory on a big file.

What is compared (same model, same rows, same machine):

* **ours**: :func:`uplift.scoring.score_file` end to end on an audience Parquet file: read in pyarrow batches,
  validate every row (AUDIENCE contract, duplicate ids), build point-in-time features from the history, encode,
  predict every arm, shrink, pick the best arm, label segment and persona, write Parquet atomically.
* **bare booster**: the pooled learner's single ``lightgbm.Booster`` called once per arm (control included, as the
  pooled learner does) on the *already encoded* feature matrix with the arm columns appended, no I/O at all.

The ratio ours / bare is the share of the booster's throughput that survives everything around it (goal >= 0.5).
Peak memory: a child process scores ``--rows`` rows (default 10,000,000) made by resampling a simulated audience
chunk by chunk (never materialised, written to a temporary folder, deleted afterwards) and reports its peak RSS
(``VmHWM`` of the child; goal < 2 GB).

Run: ``.venv/bin/python benchmarks/bench_scoring.py`` (about 15 min on 2 cores), quick: ``--rows 300000``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def build_scorer(people: int, seed: int):
    """Simulate a world (all 18 arms), fit the pooled learner, wrap it as the scorer ``uplift score`` uses."""
    from uplift.features import build_training_table
    from uplift.modeling.estimator import MultiArmUplift
    from uplift.pipeline import load_feature_set, load_segment_spec
    from uplift.scoring import Scorer, SegmentLabeler, model_feature_set
    from uplift.segments import build_segment_table
    from uplift.simulate import simulate
    from uplift.specs import load_spec
    from uplift.specs.model import ModelSpec
    from uplift.specs.region import RegionSpec
    from uplift.tracking.pyfunc import UpliftPyfunc

    region = load_spec(ROOT / "features" / "regions" / "haaglanden.yaml", RegionSpec)
    world = simulate(region, people=people, waves=2, seed=seed)
    features = load_feature_set(str(ROOT / "features" / "default.yaml"))
    table = build_training_table(world.audience, world.exposures, world.enrolments, features)
    spec = load_spec(ROOT / "models" / "pooled_lightgbm.yaml", ModelSpec)
    model = MultiArmUplift.from_table(spec, table).fit_table(table)
    pyfunc = UpliftPyfunc(model, shrinkage=0.5)
    segment_spec = load_segment_spec()
    segments = build_segment_table(table, model.predict(table.frame[table.feature_names]), segment_spec)
    scorer = Scorer(pyfunc, model_feature_set(features, pyfunc), SegmentLabeler(segments, segment_spec))
    return scorer, world


def write_audience(world, path: Path, rows: int, *, chunk: int = 500_000, seed: int = 0) -> Path:
    """``rows`` audience rows resampled from the world's audience, written chunk by chunk (fresh unique ids)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    base = world.audience
    writer = None
    try:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            part = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
            part["person_id"] = pd.Series(np.char.add("b", np.char.zfill(np.arange(start, start + n).astype(str), 10)),
                                          dtype="str")
            if start == 0:  # keep some real ids so the history join finds people
                k = min(n, len(base))
                part.loc[: k - 1, :] = base.iloc[:k].to_numpy()
            table = pa.Table.from_pandas(part, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path


def bare_booster_seconds(scorer, audience: pd.DataFrame, world, as_of) -> float:
    """Seconds for the pooled booster alone to predict every arm on the encoded rows (encoding not timed)."""
    from uplift.features import build_features

    model = scorer.model.model
    learner = model.learner_
    keys = pd.DataFrame({"person_id": audience["person_id"], "wave": 0, "as_of": as_of})
    features = build_features(keys, audience, world.exposures, world.enrolments, scorer.feature_set)
    X = model._matrix(features[scorer.model.feature_names], source="bench")
    booster = learner.model_.booster_
    encoded = [np.hstack([X, np.repeat(learner.arm_features_[[k]], len(X), axis=0)]) for k in range(len(learner.arms_))]
    started = time.perf_counter()
    for Xa in encoded:
        booster.predict(Xa)
    return time.perf_counter() - started


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM; ``ru_maxrss`` can carry the parent's peak over fork/exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(state: Path, audience: Path, out: Path, chunk_rows: int) -> None:
    """Score ``audience`` in this process and print rows, seconds and peak RSS as JSON."""
    from uplift.scoring import score_file

    with state.open("rb") as handle:
        scorer, exposures, enrolments, as_of = pickle.load(handle)
    loaded_mb = peak_rss_mb()
    summary = score_file(audience, out, scorer=scorer, exposures=exposures, enrolments=enrolments, as_of=as_of,
                         chunk_rows=chunk_rows)
    print(json.dumps({"rows": summary.rows_read, "seconds": summary.seconds, "peak_rss_mb": peak_rss_mb(),
                      "rss_before_scoring_mb": loaded_mb}))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the memory run")
    parser.add_argument("--throughput-rows", type=int, default=200_000, help="rows of the throughput comparison")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=20_000, help="people in the simulated training world")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", nargs=4, metavar=("STATE", "AUDIENCE", "OUT", "CHUNK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), Path(args.child[2]), int(args.child[3]))
        return {}

    from uplift.scoring import score_file

    as_of = pd.Timestamp("2025-07-21", tz="UTC")
    t0 = time.perf_counter()
    scorer, world = build_scorer(args.people, args.seed)
    print(f"trained the pooled model on {args.people:,} people x 2 waves in {time.perf_counter() - t0:.0f} s")
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench_scoring_") as tmp:
        tmp = Path(tmp)
        small = write_audience(world, tmp / "small.parquet", args.throughput_rows, seed=1)
        summary = score_file(small, tmp / "small_scores.parquet", scorer=scorer, exposures=world.exposures,
                             enrolments=world.enrolments, as_of=as_of, chunk_rows=args.chunk_rows)
        bare = bare_booster_seconds(scorer, pd.read_parquet(small), world, as_of)
        ours_rps, bare_rps = summary.rows_read / summary.seconds, args.throughput_rows / bare
        results.update(ours_rows_per_s=ours_rps, bare_booster_rows_per_s=bare_rps, ratio=ours_rps / bare_rps,
                       arms=len(scorer.model.arms))
        print(f"throughput on {args.throughput_rows:,} rows, {len(scorer.model.arms)} arms + control: ours "
              f"{ours_rps:,.0f} rows/s, bare booster {bare_rps:,.0f} rows/s, ratio "
              f"{ours_rps / bare_rps:.2f} (goal >= 0.5)")

        big = tmp / "big.parquet"
        t0 = time.perf_counter()
        write_audience(world, big, args.rows, seed=2)
        print(f"wrote {args.rows:,} audience rows ({big.stat().st_size / 2**20:,.0f} MB) in "
              f"{time.perf_counter() - t0:.0f} s")
        state = tmp / "state.pkl"
        with state.open("wb") as handle:
            pickle.dump((scorer, world.exposures, world.enrolments, as_of), handle)
        proc = subprocess.run([sys.executable, __file__, "--child", str(state), str(big),
                               str(tmp / "big_scores.parquet"),
                               str(args.chunk_rows)], capture_output=True, text=True, check=True)
        measured = json.loads(proc.stdout.strip().splitlines()[-1])
        results.update(memory_rows=measured["rows"], memory_seconds=measured["seconds"],
                       peak_rss_mb=measured["peak_rss_mb"], rss_before_scoring_mb=measured["rss_before_scoring_mb"])
        print(f"scored {measured['rows']:,} rows in a child process in {measured['seconds']:.0f} s "
              f"({measured['rows'] / measured['seconds']:,.0f} rows/s); peak RSS {measured['peak_rss_mb']:,.0f} MB "
              f"(goal < 2048 MB; {measured['rss_before_scoring_mb']:,.0f} MB of it before the "
              "first row: imports and model)")
    return results


if __name__ == "__main__":
    main()
