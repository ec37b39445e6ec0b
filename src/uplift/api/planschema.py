"""The plan store's tables, how a plan's body is packed into them, and the upgrade of older stores.

``plans``: one row per answered request (id, time, model, solver status, figures, the request JSON,
the body's hash, the approval: when and by which token name, and the planner's labels: the name of
the token that made it, a name, a note and the approved plan it supersedes). ``plan_bodies``: each distinct
body once, zlib-compressed (``body_z``); ``body`` holds the plain JSON of bodies stored before
compression, and is emptied as the store compacts them (:meth:`~uplift.api.planstore.PlanStore.compact`).

:func:`upgrade` adds what a store made by an older version lacks (approval and label columns, ``body_z``,
the indexes on ``plans.body_hash`` and ``plans.supersedes``), with ``ALTER TABLE ... ADD COLUMN`` only, so no plan is
rewritten or lost.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from dataclasses import dataclass

import sqlalchemy as sa

__all__ = ["BODIES", "BODY_COMPRESSION_LEVEL", "PLANS", "PackedBody", "create_tables", "pack_body", "unpack_body",
           "upgrade"]

BODY_COMPRESSION_LEVEL = 3
"""zlib level of stored bodies. On a 208 KB plan body of the benchmark world: level 1 9.2x in 0.6 ms, 3 10.5x
in 0.7 ms, 6 13.1x in 5.0 ms, 9 14.1x in 12.2 ms (median of 20, one run on the shared machine); the body is
compressed on every new plan's path (in its compute process), so the 7x dearer level 6 is not worth 24%."""

metadata = sa.MetaData()

PLANS = sa.Table(
    "plans",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("budget", sa.Float, nullable=False),
    sa.Column("spend", sa.Float, nullable=False),
    sa.Column("expected_conversions", sa.Float, nullable=False),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("body_hash", sa.String(64), sa.ForeignKey("plan_bodies.hash"), nullable=False),
    sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("approved_by", sa.String(100), nullable=True),
    sa.Column("created_by", sa.String(100), nullable=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("supersedes", sa.String(32), nullable=True),
    sa.Index("ix_plans_body_hash", "body_hash"),
    sa.Index("ix_plans_supersedes", "supersedes"),
)

BODIES = sa.Table(
    "plan_bodies",
    metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("body", sa.Text, nullable=False, server_default=""),
    sa.Column("body_z", sa.LargeBinary, nullable=True),
)


@dataclass(frozen=True)
class PackedBody:
    """A plan body as stored: the SHA-256 of its JSON text and the zlib-compressed text."""

    digest: str
    compressed: bytes


def pack_body(body_json: str, level: int = BODY_COMPRESSION_LEVEL) -> PackedBody:
    """``body_json`` hashed and compressed (pure; run where the body is computed)."""
    raw = body_json.encode()
    return PackedBody(digest=hashlib.sha256(raw).hexdigest(), compressed=zlib.compress(raw, level))


def unpack_body(body: str | None, body_z: bytes | None) -> str:
    """The JSON text of a stored body: ``body_z`` decompressed, or the plain ``body`` of an older row."""
    if body_z is not None:
        return zlib.decompress(body_z).decode()
    return body or ""


def create_tables(engine: sa.Engine, attempts: int = 5) -> None:
    """Create the tables if missing and bring an older store up to date (:func:`upgrade`).

    Several processes may open a new store at once (uvicorn ``workers``): the one that loses the race
    sees a table, column or index the other has just made ("already exists") and tries again, when
    everything is found in place. A database error that persists through ``attempts`` tries is raised.
    """
    for attempt in range(1, attempts + 1):
        try:
            metadata.create_all(engine)
            upgrade(engine)
            return
        except sa.exc.DBAPIError:
            if attempt == attempts:
                raise
            time.sleep(0.05 * attempt)


def upgrade(engine: sa.Engine) -> list[str]:
    """Add the columns and index a store made by an older version lacks; returns what was added."""
    added: list[str] = []
    inspector = sa.inspect(engine)
    with engine.begin() as conn:
        for table in (PLANS, BODIES):
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in present:
                    kind = column.type.compile(dialect=engine.dialect)
                    conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}")
                    added.append(f"{table.name}.{column.name}")
        indexes = {i["name"] for i in inspector.get_indexes(PLANS.name)}
        for index in PLANS.indexes:
            if index.name not in indexes:
                index.create(conn)
                added.append(f"index {index.name}")
    return added
