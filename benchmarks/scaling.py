"""How each step grows with the number of person-waves: seconds, rows/s and peak memory at 1, 3, 10, 30 million.

    python -m benchmarks.scaling --out out/scaling [--rows 1000000 3000000 10000000 30000000] [--steps ...]

Per size, a simulated world of the demo region (``rows / waves`` people, 6 waves, seed 7) goes through the
steps, each in its own child process (``python -m benchmarks.scaling --child STEP JSON``): its time is measured
around the step alone (imports excluded), wall and CPU, and its peak memory is the child's ``VmHWM``.

========== ===========================================================================================
simulate   ``uplift.simulate.chunked.write_world_in_chunks`` (chunks of 500,000 people, Parquet row groups)
validate   ``uplift.features.outofcore.validate_inputs``: the contracts in batches, the rules across files
features   ``uplift.features.outofcore.write_training_table`` (validation included), DuckDB, ``--memory-limit``
train      ``uplift.modeling.validation.validate_model`` with ``models/pooled_lightgbm.yaml``: held-out people,
           5 folds on a stratified sample of at most ``--cv-rows`` training rows in ``--jobs`` processes, the
           final model on every training row; the table read by ``uplift.modeling.tablereader.read_for_training``
           (features straight into one float32 matrix, rows training-first so the final fit reads a view of it;
           besides them only the keys, arm, outcome, propensities and the segment table's columns)
segments   ``uplift.segments.build_segment_table`` on the out-of-sample predictions (same child as train:
           its peak memory is the child's so far)
plan       ``uplift.allocation.plan`` over the targetable segments, shipped costs and policy, EUR 0.05 a person
score      ``uplift.scoring.score_file`` of the whole audience with the trained model (history in memory)
========== ===========================================================================================

Results accumulate in ``OUT/results.jsonl`` (one line per size and step, so sizes can be run apart);
``OUT/scaling.md`` and ``OUT/scaling.png`` are rewritten from all lines after every size: the table, the
log-log plot of time and memory against rows, and per step the fitted exponent (least squares on log-log;
memory over the sizes from 3 million on) with the extrapolation to 30 million where that size was not run.
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["main", "fit_exponents", "render"]

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("simulate", "validate", "features", "train", "segments", "plan", "score")


def _status() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            out["peak_rss_mb"] = int(line.split()[1]) / 1024.0
    return out


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu, **_status()}


def _paths(work: Path) -> dict[str, Path]:
    return {n: work / "world" / f"{n}.parquet" for n in ("audience", "exposures", "enrolments")}


def _load_table(path: Path, spec, segment_spec):
    """The training table for ``spec``: its features straight into one float32 matrix, the other columns the model,
    its evaluation and the segment table read as a lean frame (``uplift.modeling.tablereader.read_for_training``)."""
    from uplift.modeling.tablereader import read_for_training
    from uplift.segments import columns_read
    from uplift.specs.groups import RULE_COLUMNS

    # the segment table's columns and those the priority groups of serve/groups.yaml are counted on
    return read_for_training(path, spec, keep=(*columns_read(segment_spec), *dict.fromkeys(RULE_COLUMNS.values())))


def _child(step: str, p: dict) -> dict:
    """The work of one child process; returns its measurements."""
    work = Path(p["work"])
    from uplift.pipeline import load_feature_set, load_segment_spec

    feature_set = load_feature_set(str(ROOT / "features" / "default.yaml"))
    if step == "simulate":
        from uplift.simulate.chunked import write_world_in_chunks
        from uplift.specs import load_spec
        from uplift.specs.region import RegionSpec

        region = load_spec(ROOT / "features" / "regions" / "haaglanden.yaml", RegionSpec)
        summary, m = _timed(lambda: write_world_in_chunks(region, work / "world", people=p["people"], waves=p["waves"],
                                                          seed=7))
        return {**m, "rows": summary.rows["exposures"], "people": p["people"]}
    if step == "validate":
        from uplift.features.outofcore import EngineSettings, validate_inputs

        settings = EngineSettings(memory_limit=p.get("memory_limit", "2GB"))
        rows, m = _timed(lambda: validate_inputs(_paths(work), feature_set, settings=settings))
        return {**m, "rows": rows["exposures"]}
    if step == "features":
        from uplift.features.outofcore import EngineSettings, write_training_table

        settings = EngineSettings(memory_limit=p.get("memory_limit", "2GB"))
        summary, m = _timed(lambda: write_training_table(_paths(work), feature_set, work / "table.parquet",
                                                         settings=settings))
        return {**m, "rows": summary.rows}
    if step == "train":
        return _train(p, work)
    if step == "plan":
        from uplift.allocation import plan
        from uplift.specs import load_spec
        from uplift.specs.planning import CostCatalogue, PlanningPolicy

        table = pd.read_parquet(work / "segments.parquet")
        table = table[table["kind"] == "targetable"]
        costs = load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue)
        policy = load_spec(ROOT / "serve" / "policy.yaml", PlanningPolicy)
        result, m = _timed(lambda: plan(table, budget=0.05 * p["people"], costs=costs, policy=policy, source="bench"))
        return {**m, "rows": p["rows"], "cells": len(table), "status": str(getattr(result, "status", ""))}
    if step == "score":
        from uplift.data.tableio import read_table
        from uplift.scoring import Scorer, SegmentLabeler, model_feature_set, score_file

        with (work / "model.pkl").open("rb") as handle:
            pyfunc = pickle.load(handle)
        segments = pd.read_parquet(work / "segments.parquet")
        scorer = Scorer(pyfunc, model_feature_set(feature_set, pyfunc), SegmentLabeler(segments, load_segment_spec()))
        paths = _paths(work)
        exposures, enrolments = read_table(paths["exposures"]), read_table(paths["enrolments"])
        as_of = exposures["assigned_at"].max() + pd.Timedelta(days=42)
        summary, m = _timed(lambda: score_file(paths["audience"], work / "scores.parquet", scorer=scorer,
                                               exposures=exposures, enrolments=enrolments, as_of=as_of,
                                               chunk_rows=250_000))
        return {**m, "rows": p["rows"], "audience_rows": summary.rows_scored}
    raise ValueError(f"step {step!r} is not valid; valid: {', '.join(STEPS)}")


def _train(p: dict, work: Path) -> dict:
    from uplift.modeling.validation import validate_model
    from uplift.pipeline import load_priority_groups, load_segment_spec
    from uplift.segments import build_segment_table
    from uplift.segments.composition import with_composition
    from uplift.specs import load_spec
    from uplift.specs.model import ModelSpec
    from uplift.tracking.pyfunc import UpliftPyfunc

    spec = load_spec(ROOT / "models" / "pooled_lightgbm.yaml", ModelSpec)
    spec = spec.model_copy(update={"cv": spec.cv.model_copy(update={"sample_rows": p["cv_rows"], "jobs": p["jobs"]})})
    segment_spec = load_segment_spec()
    (table, matrix), load = _timed(lambda: _load_table(work / "table.parquet", spec, segment_spec))
    report, train = _timed(partial(validate_model, spec, table, matrix=matrix))
    del table, matrix

    def segments():  # as the training job builds the served table: with each segment's share of the groups
        folds, heldout = report.out_of_sample_folds()
        rows, predictions = report.out_of_sample()
        table = build_segment_table(rows, predictions, segment_spec, folds=folds, heldout_fold=heldout)
        return with_composition(table, rows.frame, segment_spec, load_priority_groups())

    table_of_segments, seg = _timed(segments)
    table_of_segments.to_parquet(work / "segments.parquet")
    with (work / "model.pkl").open("wb") as handle:
        pickle.dump(UpliftPyfunc(report.model, shrinkage=report.shrinkage.lam), handle)
    rows = p["rows"]
    return {**train, "rows": rows, "load_seconds": load["seconds"], "cv_rows": len(report.train.frame),
            "segments": {**seg, "rows": rows, "cells": len(table_of_segments)}}


def run_child(step: str, payload: dict, *, timeout: float) -> dict:
    done = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--child", step, json.dumps(payload)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"step {step!r} failed (exit {done.returncode}): {done.stderr[-3000:]}")
    return json.loads(lines[-1])


def fit_exponents(results: pd.DataFrame) -> pd.DataFrame:
    """Per step: the slope of log(seconds) and of log(peak RSS) against log(rows) (memory over sizes >= 3M)."""
    out = []
    for step, g in results.groupby("step", sort=False):
        g = g.sort_values("rows")
        time_exp = np.polyfit(np.log(g["rows"]), np.log(g["seconds"]), 1)[0] if len(g) >= 2 else np.nan
        cpu_exp = np.polyfit(np.log(g["rows"]), np.log(g["cpu_seconds"]), 1)[0] if len(g) >= 2 else np.nan
        big = g[g["target"] >= 3_000_000]
        memory_from = 3_000_000
        if big["rows"].nunique() < 2:  # fewer than two sizes from 3M: over every size run, and said so
            big, memory_from = g, int(g["target"].min())
        fit = big["rows"].nunique() >= 2
        mem_exp = np.polyfit(np.log(big["rows"]), np.log(big["peak_rss_mb"]), 1)[0] if fit else np.nan
        out.append({"step": step, "time_exponent": time_exp, "cpu_exponent": cpu_exp,
                    "memory_exponent_from_3M": mem_exp, "memory_from": memory_from, "sizes": g["rows"].nunique()})
    return pd.DataFrame(out)


def _extrapolated(results: pd.DataFrame, exponents: pd.DataFrame, target: int) -> pd.DataFrame:
    """Seconds and memory at ``target`` rows from the largest size run and the fitted exponents (time grows by the
    CPU exponent: on a shared machine the wall-time exponent mostly follows the load)."""
    rows = []
    for e in exponents.itertuples():
        g = results[results["step"] == e.step].sort_values("rows")
        if (g["target"] == target).any() or np.isnan(e.cpu_exponent):
            continue
        last = g.iloc[-1]
        scale = target / last["rows"]
        mem_exp = e.memory_exponent_from_3M if not np.isnan(e.memory_exponent_from_3M) else 1.0
        rows.append({"step": e.step, "from_rows": int(last["rows"]),
                     "seconds": last["seconds"] * scale ** e.cpu_exponent,
                     "peak_rss_mb": last["peak_rss_mb"] * scale ** mem_exp})
    return pd.DataFrame(rows)


def crossover(results: pd.DataFrame, exponents: pd.DataFrame, *, seconds: float = 1800.0,
              memory_mb: float = 24 * 1024.0) -> dict[str, float]:
    """Person-waves at which one machine stops being enough, from each step's largest run and fitted exponents
    (wall time grown by the CPU-time exponent):
    where the steps together take ``seconds`` (wall) and where the largest step's peak memory reaches
    ``memory_mb`` (memory exponent from 3M, or 1 where not fitted). NaN when not reached below 10**10."""
    grid = np.logspace(6, 10, 400)
    total = np.zeros_like(grid)
    peak = np.zeros_like(grid)
    for e in exponents.itertuples():
        last = results[results["step"] == e.step].sort_values("rows").iloc[-1]
        t_exp = e.cpu_exponent if not np.isnan(e.cpu_exponent) else 1.0
        m_exp = e.memory_exponent_from_3M if not np.isnan(e.memory_exponent_from_3M) else 1.0
        total += last["seconds"] * (grid / last["rows"]) ** t_exp
        peak = np.maximum(peak, last["peak_rss_mb"] * (grid / last["rows"]) ** max(m_exp, 0.0))
    over_time, over_memory = grid[total > seconds], grid[peak > memory_mb]
    return {"time": float(over_time[0]) if len(over_time) else np.nan,
            "memory": float(over_memory[0]) if len(over_memory) else np.nan}


def _crossover(results: pd.DataFrame, exponents: pd.DataFrame) -> str:
    c = crossover(results, exponents)
    say = lambda v: "not below 10 billion" if np.isnan(v) else f"about {v / 1e6:,.0f} million"  # noqa: E731
    return ("**Where one machine stops** (extrapolated from the fitted exponents, not measured there): the steps "
            f"together pass 30 minutes at {say(c['time'])} person-waves; a step's peak memory passes 24 GB at "
            f"{say(c['memory'])} person-waves.")


def render(results: pd.DataFrame, out: Path, *, header: str) -> str:
    """Write ``scaling.png`` and return the Markdown report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exponents = fit_exponents(results)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for step, g in results.groupby("step", sort=False):
        g = g.sort_values("rows")
        e = exponents.set_index("step").loc[step]
        axes[0].loglog(g["rows"], g["seconds"], "o-", label=f"{step} (slope {e.time_exponent:.2f})")
        axes[1].loglog(g["rows"], g["peak_rss_mb"], "o-", label=f"{step} (slope {e.memory_exponent_from_3M:.2f})")
    axes[0].set(xlabel="person-waves", ylabel="seconds (wall)", title="time per step")
    axes[1].set(xlabel="person-waves", ylabel="peak RSS of the step's process (MB)",
                title="memory per step (slope from 3M)")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=110)
    plt.close(fig)

    lines = [header, "", "| person-waves | step | seconds | CPU seconds | rows/s | peak RSS MB | note |",
             "|---:|---|---:|---:|---:|---:|---|"]
    for r in results.sort_values(["rows", "order"]).itertuples():
        lines.append(f"| {int(r.rows):,} | {r.step} | {r.seconds:,.1f} | {r.cpu_seconds:,.1f} | "
                     f"{r.rows / r.seconds:,.0f} | {r.peak_rss_mb:,.0f} | {r.note} |")
    lines += ["", "Fitted exponents (log-log least squares; memory over the sizes from 3 million on, or over every "
              "size where fewer than two from 3 million were run):", "",
              "| step | time exponent (wall) | time exponent (CPU) | memory exponent | memory from | sizes |",
              "|---|---:|---:|---:|---:|---:|"]
    for e in exponents.itertuples():
        lines.append(f"| {e.step} | {e.time_exponent:.2f} | {e.cpu_exponent:.2f} | {e.memory_exponent_from_3M:.2f} "
                     f"| {e.memory_from:,} | {e.sizes} |")
    ext = _extrapolated(results, exponents, 30_000_000)
    if len(ext):
        lines += ["",
                  "**Extrapolated** to 30,000,000 person-waves (not run: the largest size run's wall time scaled by "
                  "the CPU-time exponent, its memory by the memory exponent, fitted as above, 1.0 where it could not "
                  "be):", "",
                  "| step | from person-waves | seconds | peak RSS MB |", "|---|---:|---:|---:|"]
        for r in ext.itertuples():
            lines.append(f"| {r.step} | {r.from_rows:,} | {r.seconds:,.0f} | {r.peak_rss_mb:,.0f} |")
    lines += ["", _crossover(results, exponents)]
    totals = results.groupby("rows")["seconds"].sum()
    lines += ["", "End to end (sum of the steps run): " + ", ".join(f"{int(k):,}: {v / 60:.1f} min"
                                                                    for k, v in totals.items()),
              "", "![time and memory against rows](scaling.png)"]
    return "\n".join(lines)


def _load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def run_size(target: int, args: argparse.Namespace, record) -> None:
    work = args.work / f"rows_{target}"
    work.mkdir(parents=True, exist_ok=True)
    people = max(1, target // args.waves)
    base = {"work": str(work), "people": people, "waves": args.waves, "cv_rows": args.cv_rows, "jobs": args.jobs,
            "memory_limit": args.memory_limit}
    exposures = _paths(work)["exposures"]
    if "simulate" not in args.steps and exposures.exists():  # a world kept from an earlier run (--keep)
        import pyarrow.parquet as pq

        base["rows"] = pq.ParquetFile(exposures).metadata.num_rows
    for order, step in enumerate(STEPS):
        if step not in args.steps or step == "segments":
            continue
        load = _load_average()
        print(f"[{time.strftime('%H:%M:%S')}] {target:,}: {step} (load {load})", file=sys.stderr, flush=True)
        res = run_child(step, base, timeout=args.timeout)
        if step == "simulate":
            base["rows"] = res["rows"]
        note = f"load {load}"
        if step == "train":
            seg = res.pop("segments")
            note += f"; CV on {res['cv_rows']:,} rows, {args.jobs} process(es); table read {res['load_seconds']:.0f} s"
            record({**res, "step": "train", "order": order, "target": target, "note": note})
            record({**seg, "step": "segments", "order": order + 1, "target": target,
                    "note": f"{seg['cells']:,} cells; memory: the train child's peak so far"})
            continue
        if step in ("validate", "features"):
            note += f"; DuckDB memory limit {args.memory_limit}"
        if step == "plan":
            note += f"; {res['cells']:,} targetable cells"
        if step == "score":
            note += f"; {res['audience_rows']:,} audience rows"
        record({**res, "rows": base.get("rows", res.get("rows")), "step": step, "order": order, "target": target,
                "note": note})
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out/scaling"))
    p.add_argument("--work", type=Path, help="where the worlds and tables go (default OUT/work)")
    p.add_argument("--rows", nargs="+", type=int, default=[1_000_000, 3_000_000, 10_000_000, 30_000_000])
    p.add_argument("--waves", type=int, default=6)
    p.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    p.add_argument("--cv-rows", type=int, default=1_000_000, help="CV on a stratified sample of at most this many rows")
    p.add_argument("--jobs", type=int, default=2, help="folds fitted at once in processes")
    p.add_argument("--memory-limit", default="2GB", help="DuckDB's memory limit in validate and features")
    p.add_argument("--timeout", type=float, default=4 * 3600.0)
    p.add_argument("--keep", action="store_true", help="keep each size's world and table")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child[0], json.loads(args.child[1]))))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    args.work = args.work or args.out / "work"
    log = args.out / "results.jsonl"

    def record(row: dict) -> None:
        with log.open("a") as handle:
            handle.write(json.dumps(row) + "\n")

    for target in args.rows:
        run_size(target, args, record)
        results = pd.read_json(log, lines=True)
        header = (f"# Scaling benchmark\n\nCommand: `python -m benchmarks.scaling {' '.join(argv or sys.argv[1:])}`; "
                  f"{time.strftime('%Y-%m-%d %H:%M')} UTC; 2 cores shared with other work (load average per step in "
                  f"the notes).")
        (args.out / "scaling.md").write_text(render(results, args.out, header=header) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
