"""Every plan the service recommends, stored with its inputs, model version, time and approval (SQLAlchemy Core).

SQLite by default (``sqlite:///<workdir>/plans.db``); any SQLAlchemy URL works, e.g.
``postgresql+psycopg://user@host/db``. The tables (:mod:`uplift.api.planschema`) are created when
missing and upgraded in place when an older version made them: ``plans`` (one row per answered
request) and ``plan_bodies`` (each distinct body once, zlib-compressed, as identical requests on one
model version get identical bodies). SQLite runs in WAL mode with ``synchronous=NORMAL``: a commit
does not wait for fsync, so a power cut may lose the last plans but never corrupts the file (the trade
for a plan log written on every request). A background thread copies the log into the database once a
second instead of SQLite's automatic checkpoint, which runs inside whichever commit crosses 1,000 pages
and fsyncs there: with plan bodies of a few hundred KB that put ~20 ms into every 15th request. The same
thread applies the retention rule (:class:`~uplift.api.retention.PlanRetention`) every
``every_seconds``: approved plans stay, unapproved ones expire by age and count, bodies no plan uses
any more go, and SQLite hands the freed pages back (incremental vacuum, in stores created with it).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from uplift.api.planschema import BODIES, PLANS, PackedBody, create_tables, pack_body, unpack_body
from uplift.api.retention import PlanRetention
from uplift.errors import DataError, PlanLockedError

__all__ = ["Expired", "PlanLabels", "PlanRecord", "PlanStore", "assemble_response", "now"]

log = logging.getLogger("uplift.api")

_CHECKPOINT_SECONDS = 1.0
"""How often the background thread copies SQLite's write-ahead log into the database."""
_DELETE_BATCH = 500
"""Rows deleted per transaction by the retention rule (short write locks)."""
_COMPACT_BATCH = 100
"""Uncompressed bodies of an older store compressed per retention round."""
_UPSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
"""Dialects with ``INSERT ... ON CONFLICT DO NOTHING``."""


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


def assemble_response(
    *, plan_id: str, created_at: datetime, model_name: str, model_version: int, request_json: str, body_json: str,
    approved_at: datetime | None = None, approved_by: str | None = None, labels: PlanLabels | None = None,
) -> str:
    """A plan's response JSON: its head (id, time, model, approval, labels, request) and its body
    (``body_json``, no braces)."""
    labels = labels or PlanLabels()
    head = json.dumps({"id": plan_id, "created_at": _iso(created_at), "model_name": model_name,
                       "model_version": model_version, "approved_at": _iso(approved_at), "approved_by": approved_by,
                       "created_by": labels.created_by, "name": labels.name, "note": labels.note,
                       "supersedes": labels.supersedes, "superseded_by": labels.superseded_by},
                      separators=(",", ":"))
    return f'{head[:-1]},"request":{request_json},{body_json}}}'


@dataclass(frozen=True)
class PlanLabels:
    """What planners add to a stored plan: who made it (a token's name), its name and note, the approved
    plan it supersedes, and the newest plan that supersedes it (``superseded_by``, read from the others)."""

    created_by: str | None = None
    name: str | None = None
    note: str | None = None
    supersedes: str | None = None
    superseded_by: str | None = None


@dataclass(frozen=True)
class PlanRecord:
    """One stored plan: the request as sent and the body as returned (JSON text; ``body_json`` has no
    braces), and its approval (None until a planner approves it)."""

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
    approved_at: datetime | None = None
    approved_by: str | None = None
    labels: PlanLabels = PlanLabels()

    @property
    def response_json(self) -> str:
        """The response as it was returned, with the plan's approval and labels."""
        return assemble_response(plan_id=self.id, created_at=self.created_at, model_name=self.model_name,
                                 model_version=self.model_version, request_json=self.request_json,
                                 body_json=self.body_json, approved_at=self.approved_at, approved_by=self.approved_by,
                                 labels=self.labels)


@dataclass(frozen=True)
class Expired:
    """What one run of the retention rule deleted (and compacted)."""

    plans: int
    bodies: int
    compacted: int = 0


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect in a new, empty database only
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # PlanStore._maintain does it, off the request path
    cursor.close()


def _utc(t: datetime | None) -> datetime | None:
    return t if t is None or t.tzinfo else t.replace(tzinfo=UTC)


def _summary(row, *, request_json: str = "", body_json: str = "") -> PlanRecord:
    labels = PlanLabels(created_by=row.created_by, name=row.name, note=row.note, supersedes=row.supersedes,
                        superseded_by=row.superseded_by)
    return PlanRecord(
        id=row.id, created_at=_utc(row.created_at), model_name=row.model_name, model_version=int(row.model_version),
        status=row.status, budget=float(row.budget), spend=float(row.spend),
        expected_conversions=float(row.expected_conversions), request_json=request_json, body_json=body_json,
        approved_at=_utc(row.approved_at), approved_by=row.approved_by, labels=labels,
    )


def _record(row) -> PlanRecord:
    return _summary(row, request_json=row.request, body_json=unpack_body(row.body, row.body_z))


_NEWER = PLANS.alias("newer")
_SUPERSEDED_BY = (sa.select(_NEWER.c.id).where(_NEWER.c.supersedes == PLANS.c.id)
                  .order_by(_NEWER.c.approved_at.is_(None), _NEWER.c.created_at.desc()).limit(1)
                  .scalar_subquery().label("superseded_by"))
"""The plan that supersedes a plan: the newest approved one, else the newest draft."""
_SUMMARY_COLUMNS = [*(c for c in PLANS.c if c.name not in ("request", "body_hash")), _SUPERSEDED_BY]


class PlanStore:
    """Add, fetch, list, approve and expire plans.

    Parameters
    ----------
    url : SQLAlchemy database URL.
    retention : which plans to delete and how often (None: keep every plan).
    """

    def __init__(self, url: str, *, retention: PlanRetention | None = None) -> None:
        kwargs: dict = {}
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = sa.create_engine(url, **kwargs)
        if self.is_sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        create_tables(self.engine)
        self.retention = retention
        self._stop = threading.Event()
        self._maintainer: threading.Thread | None = None
        if self.is_sqlite or (retention is not None and retention.enabled):
            self._maintainer = threading.Thread(target=self._maintain, name="plan-store-maintenance", daemon=True)
            self._maintainer.start()

    def _maintain(self) -> None:
        """Until :meth:`close`: a passive checkpoint of SQLite's log every :data:`_CHECKPOINT_SECONDS`,
        and the retention rule every ``retention.every_seconds``; an error is logged and tried again."""
        rule = self.retention
        tick = _CHECKPOINT_SECONDS if self.is_sqlite else (rule.every_seconds if rule else 3600.0)
        next_expiry = time.monotonic() + (rule.every_seconds if rule else 0.0)
        while not self._stop.wait(tick):
            if self.is_sqlite:
                self.checkpoint()
            if rule is not None and rule.enabled and time.monotonic() >= next_expiry:
                next_expiry = time.monotonic() + rule.every_seconds
                try:
                    done = self.expire(rule, now())
                except sa.exc.SQLAlchemyError as exc:  # e.g. locked or full: the next round tries again
                    log.warning("plan retention failed: %s", exc)
                    continue
                if done.plans or done.bodies or done.compacted:
                    log.info("plan retention: %d plans and %d bodies deleted, %d bodies compacted",
                             done.plans, done.bodies, done.compacted)

    def checkpoint(self) -> None:
        """One passive checkpoint of SQLite's write-ahead log (nothing for other databases)."""
        if not self.is_sqlite:
            return
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except sa.exc.SQLAlchemyError as exc:  # e.g. the disk is full: the next round tries again
            log.warning("plan store checkpoint failed: %s", exc)

    def _insert_body(self, conn, body: PackedBody) -> None:
        """Store ``body`` unless a body with its hash is stored (one statement: safe against a
        concurrent insert of the same body)."""
        values = {"hash": body.digest, "body": "", "body_z": body.compressed}
        upsert = _UPSERTS.get(self.engine.dialect.name)
        if upsert is not None:
            conn.execute(upsert(BODIES).values(**values).on_conflict_do_nothing(index_elements=["hash"]))
        elif conn.execute(sa.select(BODIES.c.hash).where(BODIES.c.hash == body.digest)).first() is None:
            conn.execute(BODIES.insert().values(**values))

    def add(self, record: PlanRecord, body: PackedBody | None = None) -> None:
        """Store ``record`` (its id must be new); its body is stored once per distinct content.

        ``body`` is ``record.body_json`` packed (:func:`~uplift.api.planschema.pack_body`), when the
        caller has it already. The body is written first, then the plan, in one transaction: the
        retention rule deletes only bodies no plan uses, in one statement, so it cannot take the
        body between the two (with PostgreSQL the foreign key refuses it and the add is retried once).
        """
        body = body if body is not None else pack_body(record.body_json)
        labels = record.labels
        row = {"id": record.id, "created_at": record.created_at, "model_name": record.model_name,
               "model_version": record.model_version, "status": record.status, "budget": record.budget,
               "spend": record.spend, "expected_conversions": record.expected_conversions,
               "request": record.request_json, "body_hash": body.digest,
               "approved_at": record.approved_at, "approved_by": record.approved_by,
               "created_by": labels.created_by, "name": labels.name, "note": labels.note,
               "supersedes": labels.supersedes}
        for attempt in (1, 2):
            try:
                with self.engine.begin() as conn:
                    self._insert_body(conn, body)
                    conn.execute(PLANS.insert().values(**row))
                return
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise

    def get(self, plan_id: str) -> PlanRecord | None:
        """The plan with ``plan_id``, or None."""
        with self.engine.connect() as conn:
            query = (sa.select(PLANS, _SUPERSEDED_BY, BODIES.c.body, BODIES.c.body_z)
                     .join(BODIES, PLANS.c.body_hash == BODIES.c.hash))
            row = conn.execute(query.where(PLANS.c.id == plan_id)).first()
        return _record(row) if row is not None else None

    def list(self, *, limit: int, offset: int, approved: bool | None = None) -> tuple[list[PlanRecord], int]:
        """Plans newest first (``limit`` from ``offset``, without their JSON bodies) and the total count;
        ``approved`` True or False lists only approved or unapproved plans."""
        where = [] if approved is None else [PLANS.c.approved_at.is_not(None) if approved
                                              else PLANS.c.approved_at.is_(None)]
        query = (sa.select(*_SUMMARY_COLUMNS).where(*where).order_by(PLANS.c.created_at.desc(), PLANS.c.id.desc())
                 .limit(limit).offset(offset))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            total = conn.execute(sa.select(sa.func.count()).select_from(PLANS).where(*where)).scalar_one()
        return [_summary(r) for r in rows], int(total)

    def approve(self, plan_id: str, *, by: str, at: datetime) -> PlanRecord | None:
        """Mark the plan approved by ``by`` (a token's name) at ``at``, unless it is approved already
        (the first approval stays); the plan's summary, or None if there is no such plan."""
        with self.engine.begin() as conn:
            conn.execute(PLANS.update().where(PLANS.c.id == plan_id, PLANS.c.approved_at.is_(None))
                         .values(approved_at=at, approved_by=by))
            row = conn.execute(sa.select(*_SUMMARY_COLUMNS).where(PLANS.c.id == plan_id)).first()
        return _summary(row) if row is not None else None

    def label(self, plan_id: str, *, name: str | None = None, note: str | None = None,
              supersedes: str | None = None) -> PlanRecord | None:
        """Set the name, note or superseded plan (each only when given) of an unapproved plan; the plan's
        summary, or None if there is no such plan.

        Raises
        ------
        PlanLockedError
            The plan is approved: approved plans are not edited, a new plan supersedes them.
        DataError
            ``supersedes`` names no stored plan, or the plan itself.
        """
        values = {k: v for k, v in (("name", name), ("note", note), ("supersedes", supersedes)) if v is not None}
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(PLANS.c.approved_at).where(PLANS.c.id == plan_id)).first()
            if found is None:
                return None
            if found.approved_at is not None:
                raise PlanLockedError(f"plan {plan_id} is approved: it cannot be edited; make a new plan that "
                                      "supersedes it")
            if supersedes is not None and (supersedes == plan_id or conn.execute(
                    sa.select(PLANS.c.id).where(PLANS.c.id == supersedes)).first() is None):
                raise DataError(f"supersedes: no other stored plan with id {supersedes[:40]!r}")
            if values:  # the approval is checked again in the statement: a plan approved meanwhile stays as it is
                done = conn.execute(PLANS.update().where(PLANS.c.id == plan_id, PLANS.c.approved_at.is_(None))
                                    .values(**values)).rowcount
                if not done:
                    raise PlanLockedError(f"plan {plan_id} was approved meanwhile: it cannot be edited")
            row = conn.execute(sa.select(*_SUMMARY_COLUMNS).where(PLANS.c.id == plan_id)).first()
        return _summary(row)

    def expire(self, rule: PlanRetention, at: datetime) -> Expired:
        """Apply ``rule`` as of ``at``: delete unapproved plans past its age or count, then the bodies
        no plan uses, then compress a batch of bodies an older version stored plain."""
        unapproved = PLANS.c.approved_at.is_(None)
        doomed = []
        cutoff = rule.cutoff(at)
        if cutoff is not None:
            doomed.append(sa.select(PLANS.c.id).where(unapproved, PLANS.c.created_at < cutoff))
        if rule.unapproved_max is not None:
            doomed.append(sa.select(PLANS.c.id).where(unapproved)
                          .order_by(PLANS.c.created_at.desc(), PLANS.c.id.desc()).offset(rule.unapproved_max))
        plans = sum(self._delete_plans(query) for query in doomed)
        used = sa.select(PLANS.c.body_hash).where(PLANS.c.body_hash == BODIES.c.hash)
        bodies = 0
        while True:  # one statement per batch: a plan added meanwhile keeps its body (see add)
            with self.engine.begin() as conn:
                batch = sa.select(BODIES.c.hash).where(~used.exists()).limit(_DELETE_BATCH).scalar_subquery()
                gone = conn.execute(BODIES.delete().where(BODIES.c.hash.in_(batch), ~used.exists())).rowcount
            bodies += gone
            if gone < _DELETE_BATCH:
                break
        compacted = self.compact(_COMPACT_BATCH)
        if self.is_sqlite and (plans or bodies or compacted):
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA incremental_vacuum")
        return Expired(plans=plans, bodies=bodies, compacted=compacted)

    def _delete_plans(self, query: sa.Select) -> int:
        """Delete the plans whose ids ``query`` selects, :data:`_DELETE_BATCH` per transaction."""
        deleted = 0
        while True:
            with self.engine.begin() as conn:
                ids = conn.execute(query.limit(_DELETE_BATCH)).scalars().all()
                if ids:  # the rule's condition again: a plan approved since the select stays
                    deleted += conn.execute(PLANS.delete().where(PLANS.c.id.in_(ids),
                                                                 PLANS.c.approved_at.is_(None))).rowcount
            if len(ids) < _DELETE_BATCH:
                return deleted

    def compact(self, limit: int) -> int:
        """Compress up to ``limit`` bodies stored plain by an older version; returns how many."""
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(BODIES.c.hash, BODIES.c.body).where(BODIES.c.body_z.is_(None))
                                .limit(limit)).all()
            for digest, text in rows:
                conn.execute(BODIES.update().where(BODIES.c.hash == digest)
                             .values(body="", body_z=pack_body(text).compressed))
        return len(rows)

    def close(self) -> None:
        self._stop.set()
        if self._maintainer is not None:
            self._maintainer.join(timeout=10)
        self.checkpoint()
        self.engine.dispose()


def now() -> datetime:
    """The current time, UTC (the plans' clock)."""
    return datetime.now(UTC)
