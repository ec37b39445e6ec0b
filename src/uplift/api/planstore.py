"""Every plan the service recommends, stored with its inputs, model version and time (SQLAlchemy Core).

SQLite by default (``sqlite:///<workdir>/plans.db``); any SQLAlchemy URL works, e.g.
``postgresql+psycopg://user@host/db``. The table is created when missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

__all__ = ["PlanRecord", "PlanStore"]

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
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("response", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class PlanRecord:
    """One stored plan: the request as sent, and the response as returned (both JSON-ready mappings)."""

    id: str
    created_at: datetime
    model_name: str
    model_version: int
    status: str
    budget: float
    request: dict
    response: dict


def _record(row) -> PlanRecord:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return PlanRecord(
        id=row.id,
        created_at=created,
        model_name=row.model_name,
        model_version=int(row.model_version),
        status=row.status,
        budget=float(row.budget),
        request=json.loads(row.request),
        response=json.loads(row.response),
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
        _metadata.create_all(self.engine)

    def add(self, record: PlanRecord) -> None:
        """Store ``record`` (its id must be new)."""
        with self.engine.begin() as conn:
            conn.execute(
                PLANS.insert().values(
                    id=record.id,
                    created_at=record.created_at,
                    model_name=record.model_name,
                    model_version=record.model_version,
                    status=record.status,
                    budget=record.budget,
                    request=json.dumps(record.request, separators=(",", ":")),
                    response=json.dumps(record.response, separators=(",", ":")),
                )
            )

    def get(self, plan_id: str) -> PlanRecord | None:
        """The plan with ``plan_id``, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(PLANS.select().where(PLANS.c.id == plan_id)).first()
        return _record(row) if row is not None else None

    def list(self, *, limit: int, offset: int) -> tuple[list[PlanRecord], int]:
        """Plans newest first (``limit`` from ``offset``) and the total count."""
        query = PLANS.select().order_by(PLANS.c.created_at.desc(), PLANS.c.id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            total = conn.execute(sa.select(sa.func.count()).select_from(PLANS)).scalar_one()
        return [_record(r) for r in rows], int(total)

    def close(self) -> None:
        self.engine.dispose()


def now() -> datetime:
    """The current time, UTC (the plans' clock)."""
    return datetime.now(UTC)
