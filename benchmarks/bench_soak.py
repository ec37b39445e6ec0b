"""Soak benchmark of the HTTP service: mixed traffic at a fixed rate for minutes, with the plan store's retention on.

Run ``.venv/bin/python -m benchmarks.bench_soak [--minutes 10 --rate 10 --people 40000]`` (not part of the test
suite: it takes the minutes asked for plus the model's training).

1. Trains and registers the shipped pooled spec on the default region, as :mod:`benchmarks.bench_service` does.
2. Starts one ``uplift serve`` with ``--compute-processes`` and a retention rule that keeps at most
   ``--retention-max`` unapproved plans, applied every ``--retention-seconds``.
3. Fires requests from a separate process at ``--rate`` per second (open loop: request k starts at
   k / rate seconds, whatever the answers; at most ``--in-flight`` at once, a request due while that many
   are in flight is counted as skipped) over a fixed mix of every route (:data:`MIX`): health, model,
   segments, plans repeated (cache hits), plans at new budgets (solves), plans with new policies
   (prepare + solve), the plan list, stored plans, approvals, 100-row scores.
4. Every minute: requests, errors (any answer but 200, or no answer), skipped, p50 / p99 per route, and the
   resident memory (``VmRSS``) of the server process and of its compute processes, and the plan store's size.

Goal: no errors, and memory flat after warm-up: the total RSS at the end grows less than 5% over the last
five minutes (from the end of minute ``minutes - 5``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

__all__ = ["MIX", "main", "memory_growth", "minute_summary"]

ROOT = Path(__file__).resolve().parents[1]
MIX = {
    "GET /health": 8, "GET /model": 4, "GET /segments": 12, "POST /plans (repeated)": 16,
    "POST /plans (new budget)": 14, "POST /plans (new policy)": 1, "GET /plans": 10, "GET /plans/{id}": 12,
    "POST /plans/{id}/approve": 1, "POST /scores (100 rows)": 22,
}
"""Share of each route in the traffic (weights; a request's route is drawn with these weights, seeded)."""
GOAL_GROWTH = 0.05
SCORE_ROWS = 100


# -- the load generator (its own process) ---------------------------------------------------------------------
def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    """Living descendants of ``pid`` (Linux ``/proc``): the compute processes and their helpers."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z":
                parent_of[int(entry)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parent_of.items() if p in frontier} - found
        found |= frontier
    return sorted(found)


class _Traffic:
    """Builds the requests of :data:`MIX` and remembers the plans the server stored (for reads and approvals)."""

    def __init__(self, rows: list[dict], seed: int) -> None:
        self.random = random.Random(seed)
        self.routes = list(MIX)
        self.weights = [MIX[r] for r in self.routes]
        self.rows = json.dumps({"rows": rows[:SCORE_ROWS]}).encode()
        self.base = {"budget": 1_500.0, "kind": "targetable", "channels": ["meta", "flyer"]}
        self.recent: deque[str] = deque(maxlen=50)
        self.count = 0

    def next(self) -> tuple[str, str, str, bytes | None]:
        """(route label, method, path, body) of the next request."""
        route = self.random.choices(self.routes, self.weights)[0]
        if route in ("GET /plans/{id}", "POST /plans/{id}/approve") and not self.recent:
            route = "GET /plans"
        self.count += 1
        k = self.count
        if route.startswith("POST /plans ("):
            body = dict(self.base)
            if route == "POST /plans (new budget)":
                body["budget"] = 1_500.0 + 0.01 * k
            elif route == "POST /plans (new policy)":
                body.update(budget=1_600.0, policy={"holdout_share": 0.1 + 1e-6 * k})
            return route, "POST", "/plans", json.dumps(body).encode()
        if route == "GET /segments":
            channel = self.random.choice(["meta", "flyer", "email", "linkedin"])
            return route, "GET", f"/segments?channel={channel}&limit=50&offset={self.random.randrange(0, 300)}", None
        if route == "GET /plans":
            return route, "GET", f"/plans?limit=20&offset={self.random.randrange(0, 100)}", None
        if route == "GET /plans/{id}":
            return route, "GET", f"/plans/{self.random.choice(self.recent)}", None
        if route == "POST /plans/{id}/approve":
            return route, "POST", f"/plans/{self.random.choice(self.recent)}/approve", None
        if route.startswith("POST /scores"):
            return route, "POST", "/scores", self.rows
        return route, "GET", route.split(" ", 1)[1], None


_PLAN_ID = re.compile(rb'^\{"id":"([0-9a-f]{32})"')


def _sample(server_pid: int, plans_db: Path) -> dict:
    workers = _children(server_pid)
    store = sum(p.stat().st_size for p in plans_db.parent.glob(plans_db.name + "*") if p.is_file())
    return {"server_mb": _rss_kb(server_pid) / 1024, "workers_mb": [_rss_kb(p) / 1024 for p in workers],
            "plans_db_mb": store / 2**20}


async def _soak(args: argparse.Namespace) -> None:
    import httpx

    traffic = _Traffic(json.loads(Path(args.rows).read_text()), args.seed)
    headers = {"Authorization": f"Bearer {args.token}", "content-type": "application/json"}
    limits = httpx.Limits(max_connections=args.in_flight, max_keepalive_connections=args.in_flight)
    window: list[tuple[str, float, int]] = []
    skipped = [0]
    in_flight = [0]

    async def one(client, route: str, method: str, path: str, body: bytes | None) -> None:
        started = time.perf_counter()
        try:
            r = await client.request(method, path, content=body, headers=headers)
            code = r.status_code
            if code == 200 and method == "POST" and path == "/plans":
                found = _PLAN_ID.match(r.content[:60])
                if found:
                    traffic.recent.append(found.group(1).decode())
        except httpx.HTTPError:
            code = -1
        finally:
            in_flight[0] -= 1
        window.append((route, time.perf_counter() - started, code))

    async with httpx.AsyncClient(base_url=args.url, timeout=60, limits=limits) as client:
        start = time.perf_counter()
        tasks: set[asyncio.Task] = set()
        for minute in range(1, args.minutes + 1):
            end = start + 60 * minute
            while True:
                due = start + traffic.count / args.rate
                if due >= end:
                    break
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                request = traffic.next()
                if in_flight[0] >= args.in_flight:
                    skipped[0] += 1
                    continue
                in_flight[0] += 1
                task = asyncio.create_task(one(client, *request))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(max(0.0, end - time.perf_counter()))
            done, window[:] = list(window), []
            stored = {}
            for approved in ("false", "true"):  # not counted: what the store holds under its retention rule
                r = await client.get(f"/plans?approved={approved}&limit=1", headers=headers)
                stored[approved] = r.json()["total"] if r.status_code == 200 else None
            line = {"minute": minute, "skipped": skipped[0], **_sample(args.server_pid, Path(args.plans_db)),
                    "unapproved": stored["false"], "approved": stored["true"], "results": done}
            skipped[0] = 0
            print(json.dumps(line), flush=True)
        await asyncio.gather(*tasks)


# -- the report ---------------------------------------------------------------------------------------------
def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


def minute_summary(line: dict) -> dict:
    """One minute of the load generator's output as counts, per-route p50 / p99 (ms) and memory (MB)."""
    per_route: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    for route, seconds, code in line["results"]:
        per_route.setdefault(route, []).append(1000 * seconds)
        if code != 200:
            errors[str(code)] = errors.get(str(code), 0) + 1
    workers = line["workers_mb"]
    return {
        "minute": line["minute"], "requests": len(line["results"]), "errors": errors, "skipped": line["skipped"],
        "routes": {r: {"n": len(v), "p50": statistics.median(v), "p99": _p(v, 0.99)} for r, v in per_route.items()},
        "server_mb": line["server_mb"], "workers_mb": workers, "total_mb": line["server_mb"] + sum(workers),
        "plans_db_mb": line["plans_db_mb"], "unapproved": line.get("unapproved"), "approved": line.get("approved"),
    }


def memory_growth(minutes: list[dict], last: int = 5) -> float | None:
    """Relative growth of the total RSS over the last ``last`` minutes (None if the run was shorter)."""
    if len(minutes) <= last:
        return None
    before, after = minutes[-last - 1]["total_mb"], minutes[-1]["total_mb"]
    return (after - before) / before


def _render(minutes: list[dict], header: str) -> str:
    lines = [header, "", "| minute | requests | errors | skipped | server MB | child processes MB | total MB | "
             "plans.db MB | plans stored: unapproved / approved |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in minutes:
        errors = sum(m["errors"].values())
        shown = " + ".join(f"{w:.0f}" for w in m["workers_mb"]) or "-"
        lines.append(f"| {m['minute']} | {m['requests']} | {errors} | {m['skipped']} | {m['server_mb']:.0f} | "
                     f"{shown} | {m['total_mb']:.0f} | {m['plans_db_mb']:.1f} | {m['unapproved']} / {m['approved']} |")
    routes = list(MIX)
    lines += ["", "p50 / p99 ms per route and minute:", "",
              "| route | " + " | ".join(str(m["minute"]) for m in minutes) + " |",
              "|---|" + "---:|" * len(minutes)]
    for route in routes:
        cells = []
        for m in minutes:
            r = m["routes"].get(route)
            cells.append(f"{r['p50']:.0f} / {r['p99']:.0f}" if r else "-")
        lines.append(f"| {route} | " + " | ".join(cells) + " |")
    total = sum(m["requests"] for m in minutes)
    errors = sum(sum(m["errors"].values()) for m in minutes)
    kinds: dict[str, int] = {}
    for m in minutes:
        for k, v in m["errors"].items():
            kinds[k] = kinds.get(k, 0) + v
    growth = memory_growth(minutes)
    verdict = "n/a (fewer than 6 minutes)" if growth is None else (
        f"{100 * growth:+.1f}% ({'met' if growth < GOAL_GROWTH else 'missed'}: goal < {100 * GOAL_GROWTH:.0f}%)")
    by_status = f" (by status: {kinds})" if kinds else ""
    lines += ["", "Child processes: the compute processes and multiprocessing's resource tracker (the ~12 MB one); "
              "plans.db with its write-ahead log.", "",
              f"{total:,} requests, {errors} errors{by_status}, {sum(m['skipped'] for m in minutes)} skipped; "
              f"total RSS over the last 5 minutes: {verdict}."]
    return "\n".join(lines)


# -- the run ------------------------------------------------------------------------------------------------
def _run(args: argparse.Namespace, workdir: Path) -> int:
    from benchmarks.bench_service import TOKEN, _prepare, _start_server

    prep = _prepare(workdir, people=args.people, waves=args.waves, seed=args.seed,
                    dimensions=["age_band", "gender", "neighbourhood"])
    rows_file = workdir / "soak-rows.json"
    rows_file.write_text(json.dumps(prep["score_rows"]))
    retention = {"UPLIFT_SERVICE_PLAN_RETENTION__UNAPPROVED_MAX": str(args.retention_max),
                 "UPLIFT_SERVICE_PLAN_RETENTION__EVERY_SECONDS": str(args.retention_seconds)}
    proc, base = _start_server(workdir, 1, args.compute_processes, extra_env=retention)
    plans_db = next(workdir.glob("plans-*.db"))
    print(f"prepared in {prep['seconds']:.0f} s; server {base} (pid {proc.pid}); {args.rate:g} requests/s for "
          f"{args.minutes} min", flush=True)
    minutes: list[dict] = []
    try:
        generator = subprocess.Popen(
            [sys.executable, __file__, "--load-generator", "--url", base, "--token", TOKEN, "--rows", str(rows_file),
             "--server-pid", str(proc.pid), "--plans-db", str(plans_db), "--rate", str(args.rate),
             "--in-flight", str(args.in_flight), "--minutes", str(args.minutes), "--seed", str(args.seed)],
            stdout=subprocess.PIPE, text=True)
        for raw in generator.stdout:
            m = minute_summary(json.loads(raw))
            minutes.append(m)
            print(f"  minute {m['minute']}: {m['requests']} requests, {sum(m['errors'].values())} errors, "
                  f"{m['skipped']} skipped, RSS server {m['server_mb']:.0f} MB + children "
                  f"{sum(m['workers_mb']):.0f} MB, plans.db {m['plans_db_mb']:.1f} MB, plans stored "
                  f"{m['unapproved']} unapproved / {m['approved']} approved", flush=True)
        generator.wait()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    load = os.getloadavg()[0]
    header = (f"Soak: {args.minutes} min at {args.rate:g} requests/s (open loop, at most {args.in_flight} in flight) "
              f"against one uvicorn worker with {args.compute_processes} compute processes; {prep['plan_cells']} cells "
              f"per plan, {SCORE_ROWS} rows per score; retention keeps {args.retention_max} unapproved plans, every "
              f"{args.retention_seconds:g} s; {os.cpu_count()} cores (load generator on the same machine, load average "
              f"at the end {load:.1f}).")
    text = _render(minutes, header)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=int, default=10)
    p.add_argument("--rate", type=float, default=10.0, help="requests per second (open loop)")
    p.add_argument("--in-flight", type=int, default=16, help="requests in flight at most")
    p.add_argument("--people", type=int, default=40_000)
    p.add_argument("--waves", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--compute-processes", type=int, default=2)
    p.add_argument("--retention-max", type=int, default=300, help="unapproved plans the store keeps")
    p.add_argument("--retention-seconds", type=float, default=20.0, help="how often the retention rule runs")
    p.add_argument("--workdir", type=Path, default=None, help="kept for inspection (default: a temporary folder)")
    p.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    p.add_argument("--load-generator", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--url", "--token", "--rows", "--plans-db"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    p.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.load_generator:
        if not args.url.startswith("http://127.0.0.1:"):
            raise SystemExit("the load generator only talks to loopback")
        asyncio.run(_soak(args))
        return 0
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return _run(args, args.workdir)
    with tempfile.TemporaryDirectory(prefix="uplift-soak-") as workdir:
        return _run(args, Path(workdir))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # run as a file by the parent: benchmarks/ is not an installed package
    sys.exit(main())
