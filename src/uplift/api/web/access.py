"""Who may see the page: the session cookie behind every page and fragment, and the CSRF token of every form.

The JSON API keeps its bearer tokens (:mod:`uplift.api.auth`); the page signs a planner in with the same
tokens once and then carries an opaque session cookie (:mod:`uplift.api.web.sessions`).
"""

from __future__ import annotations

from fastapi import Request

from uplift.api.auth import matching_name
from uplift.api.tokens import OPEN_NAME
from uplift.api.web.sessions import COOKIE, Session, SessionStore, token_digest

__all__ = ["CsrfRefused", "OPEN_DIGEST", "SignInRequired", "check_csrf", "current_session", "set_session_cookie",
           "sign_in_name"]

OPEN_DIGEST = "open"
"""The token digest of a session opened while the service has no tokens (dev mode)."""


class SignInRequired(Exception):
    """The request has no live session: a page answers with the sign-in form."""


class CsrfRefused(Exception):
    """A form's CSRF token is missing or is not the session's."""


def _digests(request: Request) -> set[str]:
    found = getattr(request.app.state, "token_digests", None)
    if found is None:
        found = {token_digest(token) for _, token in request.app.state.tokens} or {OPEN_DIGEST}
        request.app.state.token_digests = found
    return found


def current_session(request: Request) -> Session:
    """The live session of the request's cookie whose token is still configured; :class:`SignInRequired`
    otherwise (FastAPI dependency of every page)."""
    store: SessionStore = request.app.state.web_sessions
    session = store.find(request.cookies.get(COOKIE))
    if session is None or session.token_digest not in _digests(request):
        raise SignInRequired()
    return session


def sign_in_name(request: Request, token: str) -> tuple[str, str] | None:
    """(the token's name, its digest) if ``token`` is a configured token, else None; with no tokens
    configured (dev mode) everyone signs in as :data:`~uplift.api.tokens.OPEN_NAME`."""
    tokens = request.app.state.tokens
    if not tokens:
        return OPEN_NAME, OPEN_DIGEST
    if not token or len(token) > 1000:
        return None
    name = matching_name(token, tokens)
    return (name, token_digest(token)) if name is not None else None


def check_csrf(session: Session, form) -> None:
    """:class:`CsrfRefused` unless the form carries the session's CSRF token."""
    if not session.csrf_matches(form.get("csrf")):
        raise CsrfRefused()


def set_session_cookie(response, request: Request, name: str, value: str, *, max_age: int | None) -> None:
    """An HttpOnly, SameSite=Strict cookie for the page's paths, Secure when the request came over https."""
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
