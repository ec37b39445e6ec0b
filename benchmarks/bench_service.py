"""Benchmark of the HTTP service: p50 / p99 latency and throughput of ``POST /plans`` and ``POST /scores``.

Run ``.venv/bin/python -m benchmarks.bench_service [--people 40000 --requests 300 --concurrency 2 4]``.

1. Simulates the default region (6 messages x 3 channels = 18 arms), trains the shipped pooled
   LightGBM spec (2 validation folds) and registers it in a fresh SQLite MLflow store in ``--workdir`` (a temp folder
   by default), with
   the targetable segments cut by ``--dimensions`` (default age band x gender x neighbourhood, which
   gives about 300 segments of at least 50 people at 40,000 residents).
2. Starts ``uplift serve`` on a free loopback port over that store, one server per
   ``--compute-processes`` value (e.g. ``0 2``: the request threads and two compute processes side by
   side; each scenario is fired at the servers in turn).
3. Fires the scenarios from a separate process (this file with ``--load-generator``: asyncio +
   httpx, bounded by ``--requests`` and ``--time-limit``; the scenarios with a goal with one request in
   flight and with each ``--concurrency`` level, default 2 (the cores) and 4, the others at the last):
   plans over ~300 segments x 12 arms (``channels: [meta, flyer]`` of the 18 arms) with a repeated
   body (served from the per-(model version, body) cache), with a fresh budget per request (every
   request solves the LPs, with and without the reference plans; the prepared LP matrices are
   kept per request shape), with a fresh policy per request (every request also checks the table
   and builds the LPs), and scores of 1,000 rows.
4. Times the planner in-process on the same table to show where a fresh plan's time goes.

Prints Markdown tables (and writes them to ``--out`` if given).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the library is imported where it is used: the load generator process does not need it
    from uplift.specs.segments import SegmentSpec

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789abcdef"
BENCH_CV = {"folds": 2, "test_share": 0.25, "seed": 0}
"""The shipped pooled spec (``models/pooled_lightgbm.yaml``) is served; it is validated with 2 folds here to save
time."""
PLAN_CHANNELS = ["meta", "flyer"]  # 6 messages x 2 channels = 12 arms
# EUR; the report states what the plan spends (in quick mode less: the budget is past the useful spend)
PLAN_BUDGET = 1_500.0
GOALS_MS = {"plans": 50.0, "scores": 100.0}


# -- the load generator (runs in its own process) ------------------------------------------------
async def _fire(url: str, bodies: list[bytes], *, concurrency: int, time_limit: float) -> dict:
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = list(reversed(bodies))
    headers = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    deadline = time.perf_counter() + time_limit
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client) -> None:
        while queue and time.perf_counter() < deadline:
            body = queue.pop()
            start = time.perf_counter()
            try:
                r = await client.post(url, content=body, headers=headers)
                code = r.status_code
            except httpx.HTTPError:
                code = -1
            latencies.append(time.perf_counter() - start)
            statuses[code] = statuses.get(code, 0) + 1

    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await client.post(url, content=bodies[0], headers=headers)  # warm-up (connection, first solve)
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"latencies": latencies, "statuses": statuses, "wall": wall}


def _load_generator(args: argparse.Namespace) -> int:
    bodies = [line.encode() for line in Path(args.bodies).read_text().splitlines() if line.strip()]
    if not args.url.startswith("http://127.0.0.1:"):
        raise SystemExit("the load generator only talks to loopback")
    result = asyncio.run(_fire(args.url, bodies, concurrency=args.concurrency[-1], time_limit=args.time_limit))
    print(json.dumps(result))
    return 0


# -- preparation -----------------------------------------------------------------------------
def _with_dimensions(spec: SegmentSpec, dimensions: tuple[str, ...]) -> SegmentSpec:
    """The shipped segment spec cut by ``dimensions``, validated; the targetable kind's additive parts follow the
    cut: the shipped terms are (the first two dimensions) + (the place), so the place part becomes the last
    dimension's (e.g. the neighbourhood's) and the estimates and draws are fitted as shipped."""
    from uplift.specs.segments import SegmentSpec

    effects = dict(spec.effects)
    targetable = spec.effect_method("targetable")
    if targetable.smooth_over:
        terms = ((dimensions[:2], dimensions[2:]) if len(dimensions) > 2 else (dimensions,))
        effects["targetable"] = targetable.model_copy(update={"smooth_over": tuple(t for t in terms if t)})
    return SegmentSpec.model_validate({**spec.model_dump(), "dimensions": dimensions, "effects": effects})


def _prepare(workdir: Path, *, people: int, waves: int, seed: int, dimensions: list[str]) -> dict:

    import yaml

    from uplift.config import Settings
    from uplift.features import build_training_table
    from uplift.pipeline import load_feature_set, load_segment_spec, train_and_log
    from uplift.simulate import simulate
    from uplift.specs import load_spec
    from uplift.specs.region import RegionSpec

    started = time.perf_counter()
    region = load_spec(ROOT / "features" / "regions" / "haaglanden.yaml", RegionSpec)
    world = simulate(region, people=people, waves=waves, seed=seed)
    table = build_training_table(world.audience, world.exposures, world.enrolments, load_feature_set("default"),
                                 source="bench world")
    spec_path = workdir / "pooled_bench.yaml"
    spec = yaml.safe_load((ROOT / "models" / "pooled_lightgbm.yaml").read_text())
    spec_path.write_text(yaml.safe_dump({**spec, "name": "pooled_bench", "cv": BENCH_CV}))
    segment_spec = _with_dimensions(load_segment_spec(), tuple(dimensions))
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    trained = train_and_log(spec_path, table, settings=Settings(workdir=workdir, experiment_name="bench"),
                            data_source="bench world", segment_spec=segment_spec)
    seg = trained.segments
    targetable = seg[seg["kind"] == "targetable"]
    planned = targetable[targetable["channel"].isin(PLAN_CHANNELS)]
    rows = table.frame[table.feature_names].head(1000)
    return {
        "arms": len(table.treatment_arms),
        "rows": len(table.frame),
        "targetable_segments": int(targetable["segment"].nunique()),
        "plan_segments": int(planned["segment"].nunique()),
        "plan_arms": int(planned["arm"].nunique()),
        "plan_cells": len(planned),
        "seconds": time.perf_counter() - started,
        "score_rows": json.loads(rows.to_json(orient="records")),
        "version": trained.version,
        "segments": planned,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(workdir: Path, workers: int, compute_processes: int | None = None,
                  extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPLIFT_SERVICE_") and k != "MLFLOW_TRACKING_URI"}
    env.update({"UPLIFT_PROJECT_ROOT": str(ROOT), "UPLIFT_SERVICE_WORKDIR": str(workdir),
                "UPLIFT_SERVICE_TOKENS": TOKEN, "UPLIFT_SERVICE_LOG_LEVEL": "warning",
                "UPLIFT_SERVICE_WORKERS": str(workers),
                "UPLIFT_SERVICE_PLANS_DB_URL": f"sqlite:///{workdir / f'plans-{port}.db'}"})  # one store per server
    if compute_processes is not None:
        env["UPLIFT_SERVICE_COMPUTE_PROCESSES"] = str(compute_processes)
    env.update(extra_env or {})
    script = Path(sys.executable).parent / "uplift"
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from uplift.cli import main; main()"]
    log_path = workdir / f"server-{port}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([*command, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200 and (workers == 1 or _all_up(base, workers)):
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit("server did not come up within 120 s")


def _all_up(base: str, workers: int) -> bool:
    """With several workers, give every worker time to load the model (health answers from any one)."""
    time.sleep(5.0 * workers)
    return True


def _run_scenario(base: str, path: str, bodies: list[dict], *, concurrency: int, time_limit: float,
                  workdir: Path) -> dict:
    file = workdir / f"bodies-{path.strip('/')}-{len(bodies)}.jsonl"
    file.write_text("\n".join(json.dumps(b) for b in bodies))
    out = subprocess.run(
        [sys.executable, __file__, "--load-generator", "--url", base + path, "--bodies", str(file),
         "--concurrency", str(concurrency), "--time-limit", str(time_limit)],
        capture_output=True, text=True, check=True, timeout=time_limit + 300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _summary(name: str, result: dict, goal: float | None, concurrency: int) -> dict:
    lat = sorted(1000 * x for x in result["latencies"])
    n = len(lat)
    p99 = lat[min(n - 1, int(round(0.99 * (n - 1))))]
    errors = sum(v for k, v in result["statuses"].items() if int(k) != 200)
    return {
        "scenario": name, "requests": n, "concurrency": concurrency, "p50": statistics.median(lat), "p99": p99,
        "throughput": n / result["wall"], "errors": errors, "goal": goal,
    }


def _median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _planner_profile(segments, repeats: int) -> tuple[str, list[tuple[str, float]]]:
    """Median in-process seconds of plan() variants on the benchmark table (where a fresh plan's time goes)."""
    from uplift.allocation import plan, prepare_plan
    from uplift.allocation.effects import check_effects
    from uplift.specs import load_spec
    from uplift.specs.planning import CostCatalogue, PlanningPolicy, apply_overrides

    costs = load_spec(ROOT / "serve" / "costs.yaml", CostCatalogue)
    policy = load_spec(ROOT / "serve" / "policy.yaml", PlanningPolicy)
    greedy = apply_overrides(policy, {"exploration_share": 0.0})

    def timed(fn) -> float:
        return _median_seconds(fn, repeats)

    prepared = prepare_plan(segments, costs=costs, policy=policy)
    budgets = iter([PLAN_BUDGET + 0.01 * k for k in range(1_000)])
    result = prepared.plan(budget=PLAN_BUDGET)
    status = (f"The benchmark's plan at EUR {PLAN_BUDGET:,.0f}: {result.status}, spends EUR {result.totals.spend:,.0f}"
              + "".join(f"; {c}" for c in result.conflicts) + ".")
    return status, [
        ("contract check (`check_effects`)", timed(lambda: check_effects(segments, costs))),
        ("`prepare_plan()` (contract check + LP matrices)", timed(lambda: prepare_plan(segments, costs=costs,
                                                                                      policy=policy))),
        ("prepared plan at a new budget, default policy + references",
         timed(lambda: prepared.plan(budget=float(next(budgets))))),
        ("prepared plan at a new budget, default policy, no references",
         timed(lambda: prepared.plan(budget=float(next(budgets)), references=False))),
        ("`plan()` default policy (10% exploration x 8 draws) + references",
         timed(lambda: plan(segments, budget=PLAN_BUDGET, costs=costs, policy=policy))),
        ("`plan()` default policy, no references",
         timed(lambda: plan(segments, budget=PLAN_BUDGET, costs=costs, policy=policy, references=False))),
        ("`plan()` no exploration, no references",
         timed(lambda: plan(segments, budget=PLAN_BUDGET, costs=costs, policy=greedy, references=False))),
    ]


def _scores_profile(workdir: Path, rows: list[dict], repeats: int) -> list[tuple[str, float]]:
    """Median in-process seconds of the steps of one 1,000-row score request."""
    import mlflow
    import pydantic_core
    from mlflow import MlflowClient

    from uplift.api.modelstore import registry_loader
    from uplift.api.schemas import ScoreRequest
    from uplift.api.scoring import rows_to_frame, score_rows
    from uplift.config import DEFAULT_CAMPAIGN_MODEL

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri)
    version = client.get_model_version_by_alias(DEFAULT_CAMPAIGN_MODEL, "champion").version
    bundle = registry_loader(client, DEFAULT_CAMPAIGN_MODEL, "champion", min_segment_size=50)(str(version))
    raw = json.dumps({"rows": rows}).encode()
    request = ScoreRequest.model_validate_json(raw)
    frame = rows_to_frame(request.rows, bundle.features)
    result = score_rows(bundle, frame, shrunk=True)

    def timed(fn) -> float:
        return _median_seconds(fn, repeats)

    return [
        ("parse + validate the body (pydantic, one pass)", timed(lambda: ScoreRequest.model_validate_json(raw))),
        ("check rows, build the feature frame", timed(lambda: rows_to_frame(request.rows, bundle.features))),
        ("model: `UpliftPyfunc.effects` on the checked frame (encoding + the compiled forest)",
         timed(lambda: bundle.model.effects(frame, checked=True))),
        ("`score_rows`: the model, shrink, best arm, per-row dicts",
         timed(lambda: score_rows(bundle, frame, shrunk=True))),
        ("JSON encoding (`pydantic_core.to_json`)", timed(lambda: pydantic_core.to_json(result))),
    ]


def _table(rows: list[dict]) -> str:
    lines = ["| scenario | compute processes | requests | in flight | p50 ms | p99 ms | req/s | "
             "errors | goal p99 | met |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        goal = f"< {r['goal']:.0f} ms" if r["goal"] else "-"
        met = "-" if not r["goal"] else ("yes" if r["p99"] < r["goal"] else "no")
        lines.append(f"| {r['scenario']} | {r['compute']} | {r['requests']} | {r['concurrency']} | "
                     f"{r['p50']:.1f} | {r['p99']:.1f} | "
                     f"{r['throughput']:.1f} | {r['errors']} | {goal} | {met} |")
    return "\n".join(lines)


def _run_server_scenarios(workdir: Path, args: argparse.Namespace, prep: dict) -> list[dict]:
    """One server per ``--compute-processes`` value, all started at once; every scenario and level is
    fired at each server in turn, so a change in the shared machine's speed hits them alike."""
    servers = []
    try:
        for compute in args.compute_processes:
            proc, base = _start_server(workdir, args.workers, compute)
            servers.append((proc, base, str(compute) if compute is not None else f"{os.cpu_count() or 1} (default)"))
        n = args.requests
        plan_base = {"budget": PLAN_BUDGET, "kind": "targetable", "channels": PLAN_CHANNELS}
        # bodies per (scenario, run): a "new" scenario never repeats a body of an earlier run, so no
        # answer comes from the service's plan cache (each server has its own)
        scenarios = [
            ("POST /plans, repeated body (cache hit)", "/plans", lambda run: [plan_base] * n, "plans"),
            ("POST /plans, new budget each (solve + references)", "/plans",
             lambda run: [{**plan_base, "budget": PLAN_BUDGET + 0.01 * (run * n + i)} for i in range(n)], "plans"),
            ("POST /plans, new policy each (prepare + solve + references)", "/plans",
             lambda run: [{**plan_base, "budget": PLAN_BUDGET + 100,
                           "policy": {"holdout_share": 0.1 + 1e-6 * (run * n + i)}}
                          for i in range(n)], None),
            ("POST /plans, new budget each (solve, no references)", "/plans",
             lambda run: [{**plan_base, "budget": PLAN_BUDGET + 200 + 0.01 * (run * n + i), "include_references": False}
                          for i in range(n)], None),
            ("POST /scores, 1,000 rows", "/scores", lambda run: [{"rows": prep["score_rows"]}] * n, "scores"),
        ]
        rows: list[dict] = []
        for name, path, make_bodies, goal in scenarios:
            levels = list(dict.fromkeys((1, *args.concurrency))) if goal else [args.concurrency[-1]]
            for run, concurrency in enumerate(levels):
                for _, base, shown in servers:
                    result = _run_scenario(base, path, make_bodies(run), concurrency=concurrency,
                                           time_limit=args.time_limit, workdir=workdir)
                    rows.append({**_summary(name, result, GOALS_MS[goal] if goal else None, concurrency),
                                 "compute": shown})
                    print(f"  {name}, {shown} compute processes, {concurrency} in flight: p50 "
                          f"{rows[-1]['p50']:.1f} ms, "
                          f"p99 {rows[-1]['p99']:.1f} ms", flush=True)
        return sorted(rows, key=lambda r: [s[2] for s in servers].index(r["compute"]))  # stable: per server, as fired
    finally:
        for proc, _, _ in servers:
            proc.terminate()
        for proc, _, _ in servers:
            proc.wait(timeout=30)


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare the store, start the server, fire the scenarios from a separate process, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=40_000)
    parser.add_argument("--waves", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dimensions", nargs="+", default=["age_band", "gender", "neighbourhood"])
    parser.add_argument("--requests", type=int, default=300, help="requests per scenario (at most)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[2, 4], help="requests in flight (levels)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--compute-processes", type=int, nargs="+", default=[None],
                        help="the service's compute_processes, one server per value, side by side (default: "
                             "the service's default, one per core; 0 = in the request threads)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per scenario (at most)")
    parser.add_argument("--repeats", type=int, default=5, help="in-process planner timings")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    parser.add_argument("--load-generator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load_generator:
        return _load_generator(args)

    if args.workdir is not None:  # kept for inspection
        return _benchmark(args, args.workdir)
    # the model store, plan stores and server logs take about 1 GB: removed after the run
    with tempfile.TemporaryDirectory(prefix="uplift-bench-") as workdir:
        return _benchmark(args, Path(workdir))


def _benchmark(args: argparse.Namespace, workdir: Path) -> int:
    """Prepare the model in ``workdir``, fire the scenarios, print (and write) the tables."""
    workdir.mkdir(parents=True, exist_ok=True)
    prep = _prepare(workdir, people=args.people, waves=args.waves, seed=args.seed, dimensions=args.dimensions)
    print(f"prepared in {prep['seconds']:.0f} s: {prep['rows']:,} training rows, {prep['arms']} arms, "
          f"{prep['targetable_segments']} targetable segments; plans over {prep['plan_segments']} segments x "
          f"{prep['plan_arms']} arms = {prep['plan_cells']} cells", flush=True)
    rows = _run_server_scenarios(workdir, args, prep)
    plan_status, profile = _planner_profile(prep["segments"], args.repeats)
    score_profile = _scores_profile(workdir, prep["score_rows"], args.repeats)
    cores = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = "\n".join([
        f"Service benchmark: {prep['plan_segments']} segments x {prep['plan_arms']} arms = {prep['plan_cells']} "
        f"cells per plan, {len(prep['score_rows'])} rows per score request; {cores} cores, load average {load:.1f}; "
        f"{args.workers} uvicorn worker(s); load from a separate process on loopback.",
        "",
        _table(rows),
        "",
        "Where a fresh plan's time goes (in-process, median of "
        f"{args.repeats}):",
        "",
        "| step | ms |",
        "|---|---:|",
        *[f"| {name} | {1000 * s:.1f} |" for name, s in profile],
        "",
        plan_status,
        "",
        f"Where a 1,000-row score request's time goes (in-process, median of {args.repeats}; the `score_rows` "
        "row includes the model row):",
        "",
        "| step | ms |",
        "|---|---:|",
        *[f"| {name} | {1000 * s:.1f} |" for name, s in score_profile],
    ])
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
