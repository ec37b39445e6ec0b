"""The planner's page sessions: signing in with a service token sets an opaque cookie.

The cookie holds a random secret (``secrets.token_urlsafe(32)``); the store keeps only its SHA-256
(table ``web_sessions`` beside the plans, so every uvicorn worker and a restarted service know it),
with the token's name, the SHA-256 of the token signed in with, the session's CSRF token and its
expiry. A session ends when the planner signs out (its row is deleted: a copy of the cookie is
refused from then on), when it expires, or when its token is no longer configured.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

__all__ = ["COOKIE", "SIGN_IN_COOKIE", "Session", "SessionStore", "token_digest"]

COOKIE = "uplift_session"
"""The session cookie (HttpOnly, SameSite=Strict, Secure over https)."""
SIGN_IN_COOKIE = "uplift_sign_in"
"""The sign-in form's CSRF cookie (double submit: the form's hidden field must equal it)."""
LIFETIME = timedelta(hours=12)

_metadata = sa.MetaData()
SESSIONS = sa.Table(
    "web_sessions",
    _metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # SHA-256 of the cookie's secret
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("token_digest", sa.String(64), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)


def token_digest(token: str | bytes) -> str:
    """The SHA-256 of a token (hex): what a session remembers of the token it was opened with."""
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).hexdigest()


def _key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Session:
    """A signed-in planner: the token's ``name`` (never the token), the token's digest, the CSRF token."""

    name: str
    token_digest: str
    csrf: str
    expires_at: datetime

    def csrf_matches(self, given: str | None) -> bool:
        """Whether a form's CSRF field is this session's (constant time)."""
        return bool(given) and hmac.compare_digest(str(given).encode(), self.csrf.encode())


class SessionStore:
    """Sessions in the database behind ``engine`` (the plan store's)."""

    def __init__(self, engine: sa.Engine, *, lifetime: timedelta = LIFETIME) -> None:
        self.engine = engine
        self.lifetime = lifetime
        for attempt in range(5):  # several workers may create the table at once
            try:
                _metadata.create_all(engine)
                break
            except sa.exc.DBAPIError:
                if attempt == 4:
                    raise

    def open(self, *, name: str, digest: str, at: datetime | None = None) -> tuple[str, Session]:
        """A new session for the token named ``name`` (``digest``: its SHA-256); returns the cookie's secret
        and the session."""
        at = at or datetime.now(UTC)
        secret = secrets.token_urlsafe(32)
        session = Session(name=name, token_digest=digest, csrf=secrets.token_urlsafe(32), expires_at=at + self.lifetime)
        with self.engine.begin() as conn:
            conn.execute(SESSIONS.insert().values(id=_key(secret), name=name, token_digest=digest, csrf=session.csrf,
                                                  created_at=at, expires_at=session.expires_at))
            conn.execute(SESSIONS.delete().where(SESSIONS.c.expires_at < at))  # the expired ones go with a sign-in
        return secret, session

    def find(self, secret: str | None, *, at: datetime | None = None) -> Session | None:
        """The live session of a cookie's ``secret``, or None (unknown, signed out or expired)."""
        if not secret or len(secret) > 200:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(SESSIONS).where(SESSIONS.c.id == _key(secret))).first()
        if row is None or _utc(row.expires_at) <= (at or datetime.now(UTC)):
            return None
        return Session(name=row.name, token_digest=row.token_digest, csrf=row.csrf, expires_at=_utc(row.expires_at))

    def close(self, secret: str | None) -> None:
        """End the session of ``secret`` (nothing if there is none)."""
        if secret:
            with self.engine.begin() as conn:
                conn.execute(SESSIONS.delete().where(SESSIONS.c.id == _key(secret)))
