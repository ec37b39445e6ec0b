"""Every plan the service recommends, stored with its inputs, model version and time (SQLAlchemy Core).

SQLite by default (``sqlite:///<workdir>/plans.db``); any SQLAlchemy URL works, e.g.
``postgresql+psycopg://user@host/db``. Tables are created when missing: ``plans`` (one row per
answered request: id, time, model, status, figures, request JSON, body hash) and ``plan_bodies`` (the
body JSON once per distinct content, as identical requests on one model version get identical bodies). SQLite runs in WAL mode with
``synchronous=NORMAL``: a commit does not wait for fsync, so a power cut may lose the last plans
but never corrupts the file (the trade for a plan log written on every request). The log is copied
into the database by a background thread once a second instead of by SQLite's automatic
checkpoint, which runs inside whichever commit crosses 1,000 pages and fsyncs there: with plan
bodies of a few hundred KB that put ~20 ms into every 15th request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

__all__ = ["PlanRecord", "PlanStore", "assemble_response", "now"]

log = logging.getLogger("uplift.api")

_CHECKPOINT_SECONDS = 1.0
"""How often the background thread copies SQLite's write-ahead log into the database."""

_metadata = sa.MetaData()

PLANS = sa.Table(
    "plans",
    _metadata,
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
)

BODIES = sa.Table(
    "plan_bodies",
    _metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
)


def assemble_response(
    *, plan_id: str, created_at: datetime, model_name: str, model_version: int, request_json: str, body_json: str
) -> str:
    """A plan's response JSON: its head (id, time, model, request) and its body (``body_json``, no braces)."""
    head = json.dumps({"id": plan_id, "created_at": created_at.isoformat().replace("+00:00", "Z"),
                       "model_name": model_name, "model_version": model_version}, separators=(",", ":"))
    return f'{head[:-1]},"request":{request_json},{body_json}}}'


@dataclass(frozen=True)
class PlanRecord:
    """One stored plan: the request as sent and the body as returned (JSON text; ``body_json`` has no braces)."""

    id: str
    created_at: datetime
    model_name: str
    model_version: int
    status: str
    budget: float
    spend: float
    expected_conversions: float
    request_json: str
    body_json: str

    @property
    def body_hash(self) -> str:
        return hashlib.sha256(self.body_json.encode()).hexdigest()

    @property
    def response_json(self) -> str:
        """The response exactly as it was returned."""
        return assemble_response(plan_id=self.id, created_at=self.created_at, model_name=self.model_name,
                                 model_version=self.model_version, request_json=self.request_json,
                                 body_json=self.body_json)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # PlanStore._checkpoints does it, off the request path
    cursor.close()


def _summary(row) -> PlanRecord:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return PlanRecord(
        id=row.id, created_at=created, model_name=row.model_name, model_version=int(row.model_version),
        status=row.status, budget=float(row.budget), spend=float(row.spend),
        expected_conversions=float(row.expected_conversions), request_json="", body_json="",
    )


def _record(row) -> PlanRecord:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return PlanRecord(
        id=row.id,
        created_at=created,
        model_name=row.model_name,
        model_version=int(row.model_version),
        status=row.status,
        budget=float(row.budget),
        spend=float(row.spend),
        expected_conversions=float(row.expected_conversions),
        request_json=row.request,
        body_json=row.body,
    )


class PlanStore:
    """Add, fetch and list plans.

    Parameters
    ----------
    url : SQLAlchemy database URL.
    """

    def __init__(self, url: str) -> None:
        kwargs: dict = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = sa.create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        _metadata.create_all(self.engine)
        self._known: set[str] = set()  # body hashes known to be stored
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if url.startswith("sqlite"):
            self._checkpointer = threading.Thread(target=self._checkpoints, name="plan-store-checkpoints", daemon=True)
            self._checkpointer.start()

    def _checkpoints(self) -> None:
        """Copy the write-ahead log into the database every :data:`_CHECKPOINT_SECONDS` (passive:
        never waits for a reader or writer) until :meth:`close`."""
        while not self._stop.wait(_CHECKPOINT_SECONDS):
            self.checkpoint()

    def checkpoint(self) -> None:
        """One passive checkpoint of SQLite's write-ahead log (nothing for other databases)."""
        if self._checkpointer is None:
            return
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except sa.exc.SQLAlchemyError as exc:  # e.g. the disk is full: the next round tries again
            log.warning("plan store checkpoint failed: %s", exc)

    def add(self, record: PlanRecord) -> None:
        """Store ``record`` (its id must be new); its body is stored once per distinct content."""
        digest = record.body_hash
        with self.engine.begin() as conn:
            if digest not in self._known:
                exists = conn.execute(sa.select(BODIES.c.hash).where(BODIES.c.hash == digest)).first()
                if exists is None:
                    try:
                        with conn.begin_nested():
                            conn.execute(BODIES.insert().values(hash=digest, body=record.body_json))
                    except sa.exc.IntegrityError:  # stored by a concurrent request meanwhile
                        pass
            conn.execute(
                PLANS.insert().values(
                    id=record.id,
                    created_at=record.created_at,
                    model_name=record.model_name,
                    model_version=record.model_version,
                    status=record.status,
                    budget=record.budget,
                    spend=record.spend,
                    expected_conversions=record.expected_conversions,
                    request=record.request_json,
                    body_hash=digest,
                )
            )
        with self._lock:
            self._known.add(digest)

    def get(self, plan_id: str) -> PlanRecord | None:
        """The plan with ``plan_id``, or None."""
        with self.engine.connect() as conn:
            query = sa.select(PLANS, BODIES.c.body).join(BODIES, PLANS.c.body_hash == BODIES.c.hash)
            row = conn.execute(query.where(PLANS.c.id == plan_id)).first()
        return _record(row) if row is not None else None

    def list(self, *, limit: int, offset: int) -> tuple[list[PlanRecord], int]:
        """Plans newest first (``limit`` from ``offset``, without their JSON bodies) and the total count."""
        columns = [c for c in PLANS.c if c.name not in ("request", "body_hash")]
        query = sa.select(*columns).order_by(PLANS.c.created_at.desc(), PLANS.c.id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            total = conn.execute(sa.select(sa.func.count()).select_from(PLANS)).scalar_one()
        return [_summary(r) for r in rows], int(total)

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)
            self.checkpoint()
        self.engine.dispose()


def now() -> datetime:
    """The current time, UTC (the plans' clock)."""
    return datetime.now(UTC)
