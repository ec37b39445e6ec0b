"""Cross-validation folds on 2 cores: one after the other, in 2 processes, or with 2 LightGBM threads per fit.

    python -m benchmarks.bench_parallel --table TABLE.parquet [--rows 200000] [--repeats 2]

The 5 folds of ``models/pooled_lightgbm.yaml`` on a stratified sample of ``--rows`` rows of a training table,
each configuration in its own child process, alternating so that all see the same load; wall and CPU seconds
around the folds, and whether the out-of-fold predictions equal the sequential run's exactly.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "CONFIGS"]

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"sequential": (1, 1), "2 processes": (2, 1), "2 LightGBM threads": (1, 2)}
"""name -> (fold processes, LightGBM threads per fit)."""


def _child(table_path: str, rows: int, jobs: int, threads: int, out: str) -> dict:
    from benchmarks.scaling import _load_table
    from uplift.modeling.validation import _cross_fit, cv_sample, fold_ids
    from uplift.specs import load_spec
    from uplift.specs.model import ModelSpec

    table = _load_table(Path(table_path))
    f = table.frame
    table = table.subset(cv_sample(f["arm"].to_numpy(), f["outcome"].to_numpy(), rows, seed=0).rows)
    spec = load_spec(ROOT / "models" / "pooled_lightgbm.yaml", ModelSpec)
    spec = spec.model_copy(update={"cv": spec.cv.model_copy(update={"jobs": jobs}),
                                   "lightgbm": {**spec.lightgbm, "n_jobs": threads}})
    folds = fold_ids(table.frame["arm"].to_numpy(), table.frame["outcome"].to_numpy(), spec.cv.folds, spec.cv.seed)
    wall, cpu = time.perf_counter(), time.process_time()
    fitted = _cross_fit(spec, table, folds, lambda _m: None)
    result = {"seconds": time.perf_counter() - wall, "cpu_seconds_parent": time.process_time() - cpu}
    np.save(out, np.concatenate([pred for pred, _ in fitted]))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_parallel", description=__doc__.splitlines()[0])
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        table, rows, jobs, threads, out = args.child
        print(json.dumps(_child(table, int(rows), int(jobs), int(threads), out)))
        return 0
    print("| configuration | seconds | equal to sequential | load average |\n|---|---:|---|---:|")
    for repeat in range(args.repeats):
        reference = None
        for name, (jobs, threads) in CONFIGS.items():
            out = args.table.parent / f".bench_parallel_{jobs}_{threads}.npy"
            load = Path("/proc/loadavg").read_text().split()[0]
            done = subprocess.run([sys.executable, "-m", "benchmarks.bench_parallel", "--table", str(args.table),
                                   "--child", str(args.table), str(args.rows), str(jobs), str(threads), str(out)],
                                  cwd=ROOT, capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            pred = np.load(out)
            out.unlink()
            reference = pred if reference is None else reference
            print(f"| {name} (run {repeat + 1}) | {r['seconds']:.1f} | "
                  f"{bool(np.array_equal(pred, reference))} | {load} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
