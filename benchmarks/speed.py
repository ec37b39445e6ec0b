"""Speed and peak memory: simulate / features / train for N person-waves, planning, scoring, service.

Every step runs in its own child process (``python -m benchmarks.speed --child STEP JSON``), so
its peak resident memory (``ru_maxrss``) is its own; the time is measured inside the child around
the step only (imports excluded). causalml's UpliftRandomForestClassifier is fitted on a seeded
sample and its time scaled linearly to all rows (its memory is the sample's). The other benchmark
scripts (``bench_planning``, ``bench_scoring``, ``bench_service``) are run the same way when their
files exist; their Markdown output is kept as they print it.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["SpeedSettings", "SpeedResult", "run_speed", "run_child", "EXTERNAL_SCRIPTS"]

ROOT = Path(__file__).resolve().parents[1]

EXTERNAL_SCRIPTS: dict[str, str] = {
    "scoring": "bench_scoring",
    "service": "bench_service",
}
"""Benchmark scripts written alongside this one (``benchmarks/<name>.py`` with ``main(argv)``)."""


@dataclass(frozen=True)
class SpeedSettings:
    """Sizes of the speed benchmark.

    Attributes
    ----------
    rows : target person-waves (people = rows / waves).
    waves : simulated waves.
    forest_sample : rows the uplift forest is fitted on (then scaled linearly).
    learners : our learners timed on all rows.
    threads : LightGBM threads per fit.
    planning_argv : arguments for ``bench_planning.main`` (default: its 10,000-cell table).
    external : also run the scoring and service scripts if present.
    timeout : seconds a child may take.
    """

    rows: int = 50_000
    waves: int = 4
    forest_sample: int = 10_000
    learners: tuple[str, ...] = ("pooled", "t_shared")
    threads: int = 1
    planning_argv: tuple[str, ...] = ("--repeats", "3")
    external: bool = True
    external_argv: dict[str, tuple[str, ...]] = field(default_factory=dict)
    timeout: float = 3_600.0


@dataclass(frozen=True)
class SpeedResult:
    """``steps``: step, what, rows, seconds, seconds_all_rows, peak_rss_mb, note.
    ``outputs``: name -> Markdown printed by a benchmark script, or the reason it was skipped."""

    settings: SpeedSettings
    steps: pd.DataFrame
    outputs: dict[str, str]


def run_child(step: str, payload: dict, *, timeout: float) -> dict:
    """Run one step in a fresh interpreter; return its JSON result (``seconds``, ``peak_rss_mb``, ...)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.speed", "--child", step, json.dumps(payload)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark step {step!r} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1])


def _peak_mb() -> float:
    """Peak resident memory of this process in MB: ``VmHWM`` (reset by exec, unlike ``ru_maxrss``,
    which a child inherits from the parent it was forked from)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def _model_spec(learner: str, threads: int):
    from benchmarks.targeting import with_threads
    from uplift.specs import load_spec
    from uplift.specs.model import ModelSpec

    files = {"pooled": "pooled_lightgbm", "t_shared": "t_shared_lightgbm", "uplift_forest": "uplift_forest",
             "causalml_t": "t_lightgbm", "x": "x_lightgbm", "dr": "dr_lightgbm"}
    spec = with_threads(load_spec(ROOT / "models" / f"{files[learner]}.yaml", ModelSpec), threads)
    if spec.learner == "uplift_forest":
        spec = spec.model_copy(update={"forest": spec.forest.model_copy(update={"max_rows": None})})
    return spec


def _child(step: str, p: dict) -> dict:
    """The work of one child process (see :func:`run_child`)."""
    if step == "simulate":
        from uplift.simulate import simulate, write_world
        from uplift.specs import load_spec
        from uplift.specs.region import RegionSpec

        region = load_spec(ROOT / "features" / "regions" / "haaglanden.yaml", RegionSpec)
        start = time.perf_counter()
        world = simulate(region, people=p["people"], waves=p["waves"], seed=p["seed"])
        seconds = time.perf_counter() - start
        write_world(world, p["out"])
        return {"seconds": seconds, "seconds_with_write": time.perf_counter() - start, "rows": len(world.exposures)}
    if step == "features":
        from uplift.pipeline import load_feature_set, table_from_folder

        feature_set = load_feature_set(str(ROOT / "features" / "default.yaml"))
        start = time.perf_counter()
        table = table_from_folder(p["folder"], feature_set)
        seconds = time.perf_counter() - start
        table.save(p["table"])
        return {"seconds": seconds, "rows": len(table.frame)}
    if step == "train":
        import numpy as np

        from uplift.data.trainingtable import TrainingTable
        from uplift.modeling.estimator import MultiArmUplift

        table = TrainingTable.load(p["table"])
        total = len(table.frame)
        if p.get("sample") and p["sample"] < total:
            table = table.subset(np.sort(np.random.default_rng(0).choice(total, p["sample"], replace=False)))
        spec = _model_spec(p["learner"], p["threads"])
        start = time.perf_counter()
        MultiArmUplift.from_table(spec, table).fit_table(table)
        return {"seconds": time.perf_counter() - start, "rows": len(table.frame), "all_rows": total}
    if step == "call":
        import importlib

        module, _, name = p["target"].partition(":")
        fn: Callable = getattr(importlib.import_module(module), name)
        out = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(out):
            code = fn(list(p["argv"]))
        return {"seconds": time.perf_counter() - start, "stdout": out.getvalue(), "code": code}
    raise ValueError(f"step {step!r} is not valid; valid: simulate, features, train, call")


def run_speed(settings: SpeedSettings, *, workdir: Path, progress: Callable[[str], None] | None = None) -> SpeedResult:
    """Run every step in a child process; see the module docstring."""
    say = progress or (lambda _m: None)
    workdir.mkdir(parents=True, exist_ok=True)
    world, table = workdir / "world", workdir / "table.parquet"
    people = max(1, settings.rows // settings.waves)
    rows = []

    def add(step: str, what: str, res: dict, scaled: float | None = None, note: str = "") -> None:
        rows.append({"step": step, "what": what, "rows": res.get("rows"), "seconds": res["seconds"],
                     "seconds_all_rows": scaled if scaled is not None else res["seconds"],
                     "peak_rss_mb": res["peak_rss_mb"], "note": note})

    say(f"simulate {people:,} people x {settings.waves} waves")
    sim = run_child("simulate", {"people": people, "waves": settings.waves, "seed": 7, "out": str(world)},
                    timeout=settings.timeout)
    add("simulate", f"{people:,} people x {settings.waves} waves", sim,
        note=f"{sim['seconds_with_write']:.1f} s with writing Parquet")
    say("features")
    add("features", "validate inputs + point-in-time training table",
        run_child("features", {"folder": str(world), "table": str(table)}, timeout=settings.timeout))
    for learner in settings.learners:
        say(f"train {learner}")
        add("train", f"{learner} (ours), fit on all rows",
            run_child("train", {"table": str(table), "learner": learner, "threads": settings.threads},
                      timeout=settings.timeout), note=f"LightGBM {settings.threads} thread(s)")
    say("train causalml uplift forest on a sample")
    res = run_child("train", {"table": str(table), "learner": "uplift_forest", "sample": settings.forest_sample,
                              "threads": settings.threads}, timeout=settings.timeout)
    scale = res["all_rows"] / res["rows"]
    add("train", "causalml UpliftRandomForestClassifier (models/uplift_forest.yaml)", res, res["seconds"] * scale,
        note=f"fitted on {res['rows']:,} rows, time x {scale:.1f} (linear); memory of the sample fit")
    outputs = {}
    scripts = {"planning": "bench_planning", **EXTERNAL_SCRIPTS}
    for name, module in scripts.items():
        if name != "planning" and not settings.external:
            outputs[name] = "skipped: external benchmarks disabled (--no-external)"
            continue
        if not (ROOT / "benchmarks" / f"{module}.py").exists():
            outputs[name] = f"skipped: benchmarks/{module}.py does not exist yet"
            continue
        argv = settings.planning_argv if name == "planning" else settings.external_argv.get(name, ())
        say(f"{name} benchmark ({module})")
        try:
            res = run_child("call", {"target": f"benchmarks.{module}:main", "argv": list(argv)},
                            timeout=settings.timeout)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            outputs[name] = f"skipped: benchmarks/{module}.py failed: {str(exc)[-500:]}"
            continue
        outputs[name] = res["stdout"].strip()
        add(name, f"benchmarks/{module}.py {' '.join(argv)}".strip(), res, note="whole script (all its configurations)")
    return SpeedResult(settings=settings, steps=pd.DataFrame(rows), outputs=outputs)


def _main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "--child":
        result = _child(argv[1], json.loads(argv[2]))
        result["peak_rss_mb"] = _peak_mb()
        print(json.dumps(result))
        return 0
    print("usage: python -m benchmarks.speed --child STEP JSON (internal; use python -m benchmarks)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
