"""Bytes per stored plan: plain JSON bodies (the layout before compression) against the compressed store.

Run ``.venv/bin/python -m benchmarks.bench_planstore --source PLANS_DB`` on a store the service filled, e.g. the
soak benchmark's (``python -m benchmarks.bench_soak --workdir DIR`` keeps ``DIR/plans-<port>.db``). Its distinct
plan bodies are written, one plan each, into two fresh SQLite stores: one as the service stored them before
(plain text bodies, no approval columns) and one through :class:`uplift.api.planstore.PlanStore` (zlib, level
:data:`uplift.api.planschema.BODY_COMPRESSION_LEVEL`). Prints the file sizes per plan and the time to pack a body.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["main"]

_PLAIN_LAYOUT = (
    "CREATE TABLE plan_bodies (hash VARCHAR(64) PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE plans (id VARCHAR(32) PRIMARY KEY, created_at DATETIME NOT NULL, model_name VARCHAR(200) NOT NULL, "
    "model_version INTEGER NOT NULL, status VARCHAR(20) NOT NULL, budget FLOAT NOT NULL, spend FLOAT NOT NULL, "
    "expected_conversions FLOAT NOT NULL, request TEXT NOT NULL, body_hash VARCHAR(64) NOT NULL "
    "REFERENCES plan_bodies (hash))",
    "CREATE INDEX ix_plans_created_at ON plans (created_at)",
)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def _bodies(source: Path, limit: int) -> list[tuple[str, str]]:
    """Up to ``limit`` distinct (request JSON, body JSON) pairs of the store at ``source``."""
    from uplift.api.planschema import unpack_body

    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as con:
        rows = con.execute("SELECT p.request, b.body, b.body_z FROM plans p JOIN plan_bodies b ON p.body_hash = b.hash "
                           "GROUP BY b.hash LIMIT ?", (limit,)).fetchall()
    return [(request, unpack_body(body, body_z)) for request, body, body_z in rows]


def _plain_store(path: Path, pairs: list[tuple[str, str]]) -> None:
    import hashlib

    with sqlite3.connect(path) as con:
        for statement in _PLAIN_LAYOUT:
            con.execute(statement)
        for i, (request, body) in enumerate(pairs):
            digest = hashlib.sha256(body.encode()).hexdigest()
            con.execute("INSERT OR IGNORE INTO plan_bodies VALUES (?, ?)", (digest, body))
            con.execute("INSERT INTO plans VALUES (?, ?, 'uplift', 1, 'optimal', 1.0, 1.0, 1.0, ?, ?)",
                        (f"{i:032x}", datetime(2025, 3, 1).isoformat(" "), request, digest))
    with sqlite3.connect(path) as con:
        con.execute("VACUUM")


def _packed_store(path: Path, pairs: list[tuple[str, str]]) -> list[float]:
    """Fills a :class:`PlanStore` at ``path``; the seconds each body took to pack."""
    from uplift.api.planschema import pack_body
    from uplift.api.planstore import PlanRecord, PlanStore

    store = PlanStore(f"sqlite:///{path}")
    seconds = []
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    for i, (request, body) in enumerate(pairs):
        started = time.perf_counter()
        packed = pack_body(body)
        seconds.append(time.perf_counter() - started)
        store.add(PlanRecord(id=f"{i:032x}", created_at=t0 + timedelta(seconds=i), model_name="uplift",
                             model_version=1, status="optimal", budget=1.0, spend=1.0, expected_conversions=1.0,
                             request_json=request, body_json=body), packed)
    store.close()
    con = sqlite3.connect(path)
    con.execute("VACUUM")  # in WAL mode the compacted pages go to the log first
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # then into the file, and the log is emptied
    con.close()
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, required=True, help="a plans.db the service filled")
    p.add_argument("--plans", type=int, default=500, help="distinct bodies to store (at most)")
    args = p.parse_args(argv)
    pairs = _bodies(args.source, args.plans)
    if not pairs:
        raise SystemExit(f"{args.source}: no plans")
    with tempfile.TemporaryDirectory(prefix="uplift-planstore-") as tmp:
        plain, packed = Path(tmp) / "plain.db", Path(tmp) / "packed.db"
        _plain_store(plain, pairs)
        seconds = _packed_store(packed, pairs)
        n = len(pairs)
        body = statistics.median(len(b.encode()) for _, b in pairs)
        print(f"{n} plans with distinct bodies (median body {body / 1024:.0f} KB) from {args.source.name}:")
        print("| store | file MB | KB per plan |\n|---|---:|---:|")
        for name, path in (("plain JSON bodies (before)", plain), ("zlib bodies (PlanStore)", packed)):
            print(f"| {name} | {_size(path) / 2**20:.1f} | {_size(path) / n / 1024:.1f} |")
        print(f"packing a body (SHA-256 + zlib): median {1000 * statistics.median(seconds):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
