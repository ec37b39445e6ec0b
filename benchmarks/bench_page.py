"""How long the planner's page takes, beside the JSON API for the same plans.

Run ``.venv/bin/python -m benchmarks.bench_page [--workdir DIR] [--plans 30]`` (``make bench-page``). With
``--workdir`` holding a trained store (e.g. the service benchmark's), that model is served; otherwise the
service benchmark's model is trained first (the default region, the shipped pooled spec, targetable segments
by age band x gender x neighbourhood: 323 segments x 12 arms on meta and flyer = 3,876 cells per plan).
One ``uplift serve`` (compute processes: one per core), one request at a time from this process over
loopback; a time is the request's round trip (the server's time plus well under a millisecond of loopback).

Scenarios, each at budgets no other request used (nothing comes from the plan cache):

- ``API new``: ``POST /plans`` (budget, channels meta and flyer; references included).
- ``page new``: the page's form for the same plan (``POST /ui/plans``, which plans and stores it and
  answers 303) and then the plan page (``GET /ui/plans/{id}``): what a planner waits for after pressing
  *Make the plan*. Its chart (``parts.svg``, rendered by vl-convert on first request) comes as its own
  request and is timed apart.
- ``API stored`` / ``page stored``: ``GET /plans/{id}`` and ``GET /ui/plans/{id}`` of a stored plan.
- ``curve``: ``GET /ui/plans/{id}/curve`` for a new budget (25 plans of the prepared problem, its
  rendering) and its chart apart.

Goals: page new < 300 ms, page stored < 50 ms, curve < 1 s (medians; p90 beside them).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.bench_service import PLAN_CHANNELS, TOKEN, _prepare, _start_server

__all__ = ["main"]

GOALS_MS = {"page new": 300.0, "page stored": 50.0, "curve": 1000.0}


def _sign_in(client) -> None:
    form = client.get("/ui/sign-in").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    done = client.post("/ui/sign-in", data={"csrf": csrf, "token": TOKEN, "next": "/ui/"})
    if done.status_code != 303:
        raise SystemExit(f"sign-in failed: {done.status_code}")


def _form_fields(client) -> dict[str, list[str]]:
    """The build form's fields as the page fills them in (the service's policy), channels meta and flyer."""
    html = client.get("/ui/plan").text
    fields: dict[str, list[str]] = {}
    for tag in re.findall(r"<input[^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if not name or (('type="checkbox"' in tag) and "checked" not in tag):
            continue
        fields.setdefault(name.group(1), []).append(value.group(1) if value else "")
    for select in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, flags=re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', select[1])
        fields[select[0]] = [chosen.group(1) if chosen else ""]
    fields["channel"] = list(PLAN_CHANNELS)
    return fields


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return 1000 * (time.perf_counter() - started), out


def _call(send, url: str, code: int = 200, **kwargs):
    """``send(url, **kwargs)`` (a client's get or post), checked for the status ``code``."""
    return _check(send(url, **kwargs), code)


def _check(response, code: int = 200):
    if response.status_code != code:
        raise SystemExit(f"{response.request.method} {response.request.url}: "
                         f"{response.status_code} {response.text[:300]}")
    return response


def _run(base: str, plans: int) -> dict[str, list[float]]:
    import httpx

    times: dict[str, list[float]] = {k: [] for k in ("API new", "page new", "page new: form (plan + store)",
                                                      "page new: plan page", "plan chart (first)", "API stored",
                                                      "page stored", "curve", "curve chart (first)")}
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    page = httpx.Client(base_url=base, timeout=120)
    _sign_in(page)
    fields = _form_fields(page)
    warm = _check(api.post("/plans", json={"budget": 1499.0, "channels": PLAN_CHANNELS}))  # prepares the problem
    stored = warm.json()["id"]
    _check(page.get(f"/ui/plans/{stored}"))
    for i in range(plans):
        budget = 1500.0 + 7.31 * i
        t, _ = _timed(_call, api.post, "/plans", json={"budget": budget, "channels": PLAN_CHANNELS})
        times["API new"].append(t)
        form = {**fields, "budget": [f"{budget + 3.17:.2f}"]}
        t_form, made = _timed(_call, page.post, "/ui/plans", 303, data=form)
        location = made.headers["location"]
        t_page, _ = _timed(_call, page.get, location)
        times["page new: form (plan + store)"].append(t_form)
        times["page new: plan page"].append(t_page)
        times["page new"].append(t_form + t_page)
        t, _ = _timed(_call, page.get, f"{location}/parts.svg")
        times["plan chart (first)"].append(t)
        times["API stored"].append(_timed(_call, api.get, f"/plans/{stored}")[0])
        times["page stored"].append(_timed(_call, page.get, f"/ui/plans/{stored}")[0])
        if i % 3 == 0:  # a curve is 25 plans: every third round
            times["curve"].append(_timed(_call, page.get, f"{location}/curve")[0])
            times["curve chart (first)"].append(_timed(_call, page.get, f"{location}/curve.svg")[0])
    return times


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _report(times: dict[str, list[float]], cells: str) -> str:
    api_new = statistics.median(times["API new"])
    api_stored = statistics.median(times["API stored"])
    lines = [f"Planner's page against the JSON API ({cells}); ms, one request at a time over loopback", "",
             "| request | n | median | p90 | goal | ratio to the JSON API (medians) |", "|---|---:|---:|---:|---|---|"]
    against = {"page new": ("API new", api_new), "page new: form (plan + store)": ("API new", api_new),
               "page new: plan page": ("API new", api_new), "page stored": ("API stored", api_stored),
               "curve": ("API new", api_new)}
    for name, values in times.items():
        median = statistics.median(values)
        goal = GOALS_MS.get(name)
        met = "" if goal is None else f"< {goal:.0f}: {'met' if median < goal else 'not met'}"
        ratio = f"{median / against[name][1]:.2f} x {against[name][0]}" if name in against else ""
        lines.append(f"| {name} | {len(values)} | {median:.1f} | {_p(values, 0.9):.1f} | {met} | {ratio} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_page", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None, help="a store with a champion to serve (else trained)")
    parser.add_argument("--people", type=int, default=40_000)
    parser.add_argument("--plans", type=int, default=30, help="new plans per scenario")
    parser.add_argument("--compute-processes", type=int, default=None)
    parser.add_argument("--registered-model", default=None, help="the model to serve (default: the service's)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="uplift-bench-page-") as scratch:
        workdir = args.workdir or Path(scratch)
        if not (workdir / "mlflow.db").exists():
            prep = _prepare(workdir, people=args.people, waves=2, seed=7,
                            dimensions=["age_band", "gender", "neighbourhood"])
            cells = f"{prep['plan_cells']:,} cells per plan"
        else:
            cells = f"the store in {workdir}"
        extra = {"UPLIFT_SERVICE_PLANS_DB_URL": f"sqlite:///{Path(scratch) / 'plans.db'}"}
        if args.registered_model:
            extra["UPLIFT_SERVICE_REGISTERED_MODEL"] = args.registered_model
        proc, base = _start_server(workdir, 1, args.compute_processes, extra_env=extra)
        try:
            import httpx

            head = httpx.post(f"{base}/plans", json={"budget": 1500, "channels": PLAN_CHANNELS},
                              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120).json()
            cells = f"{cells}; {len(head['cells']):,} funded cells at EUR 1,500"
            report = _report(_run(base, args.plans), cells)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
