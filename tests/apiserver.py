"""Helpers for the API tests: a small trained MLflow store and the real ``uplift serve`` process on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOKENS = ("test-token-aaaaaaaaaaaaaaaa", "test-token-bbbbbbbbbbbbbbbb")
AUTH = {"Authorization": f"Bearer {TOKENS[0]}"}
SMALL = {
    "name": "pooled_api",
    "learner": "pooled",
    "lightgbm": {"n_estimators": 30, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 100, "n_jobs": 1},
    "cv": {"folds": 2, "test_share": 0.3, "seed": 0},
}
MIN_SIZE = 200  # above the smallest segments of the strong world, so the floor has something to remove
MAX_ROWS = 500
SHARED_SETTINGS = {"min_segment_size": MIN_SIZE, "max_score_rows": MAX_ROWS, "max_body_bytes": 1_000_000}
_SHARED: dict = {}
_LOGS: dict[str, Path] = {}  # base URL -> the server's log


MODEL = "uplift-registration"
"""The campaign model the strong world's trainings register as (outcome registration)."""


def train_version(workdir: Path, table, *, alias: str = "champion", disclosure=None, **spec):
    """Train and register one small campaign model (``MODEL``) in ``workdir``'s SQLite MLflow store, the gate moving
    ``alias``; returns the TrainedModel. ``disclosure``: the policy its released tables are made under (default
    ``serve/disclosure.yaml``)."""
    from uplift.config import Settings
    from uplift.pipeline import train_and_log

    path = workdir / f"{spec.get('name', SMALL['name'])}.yaml"
    path.write_text(yaml.safe_dump({**SMALL, **spec}))
    settings = Settings(workdir=workdir, experiment_name="api", alias=alias)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        return train_and_log(path, table, settings=settings, data_source="strong world", disclosure=disclosure)


def shared_store(tmp_path_factory, table) -> Path:
    """One store with ``uplift-registration`` v1 (champion), trained once per test session."""
    if "store" not in _SHARED:
        folder = tmp_path_factory.mktemp("api_store")
        _SHARED["trained"] = train_version(folder, table)
        _SHARED["store"] = folder
    return _SHARED["store"]


def shared_internal_segments(tmp_path_factory, table):
    """The full segment table behind :func:`shared_store`'s v1, with every raw count (never released)."""
    shared_store(tmp_path_factory, table)
    return _SHARED["trained"].segments


def uplift_command() -> list[str]:
    """The ``uplift`` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "uplift"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from uplift.cli import main; main()"]


def shared_server(request, tmp_path_factory, table, **settings) -> str:
    """One running server over :func:`shared_store` per test session (stopped when the session ends).

    The first caller's ``settings`` win; later callers get the same server.
    """
    if "server" not in _SHARED:
        store = shared_store(tmp_path_factory, table)
        context = running_server(store, **settings)
        _SHARED["server"] = context.__enter__()
        request.config.add_cleanup(lambda: context.__exit__(None, None, None))
    return _SHARED["server"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(store: Path, **settings) -> dict[str, str]:
    """Environment of a server process over ``store`` with ``UPLIFT_SERVICE_<KEY>`` settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("UPLIFT_SERVICE_") and k not in ("MLFLOW_TRACKING_URI", "UPLIFT_PROJECT_ROOT")}
    env["UPLIFT_PROJECT_ROOT"] = str(ROOT)
    values = {"workdir": str(store), "tokens": ",".join(TOKENS), "poll_seconds": "0.5", **settings}
    env.update({f"UPLIFT_SERVICE_{k.upper()}": str(v) for k, v in values.items() if v is not None})
    return env


@contextmanager
def running_server(store: Path, *, wait_for: tuple[int, ...] = (200,), pids: list[int] | None = None, **settings):
    """Start ``uplift serve`` over ``store`` on a free loopback port; yields the base URL; stops it afterwards.

    ``pids``, if given, gets the server process's id.
    """
    port = free_port()
    log = store / f"server-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*uplift_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=server_env(store, **settings), stdout=out, stderr=subprocess.STDOUT, cwd=store,
        )
    if pids is not None:
        pids.append(proc.pid)
    base = f"http://127.0.0.1:{port}"
    _LOGS[base] = log
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code in wait_for:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server_log(base: str) -> Path:
    """The log file of the server :func:`running_server` started at ``base``."""
    return _LOGS[base]


def descendants(pid: int) -> set[int]:
    """Process ids of every living descendant of ``pid`` (Linux ``/proc``)."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (name) "
        if fields[0] != "Z":
            parent_of[int(entry)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parent_of.items() if parent in frontier} - found
        found |= frontier
    return found
