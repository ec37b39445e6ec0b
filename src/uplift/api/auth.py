"""Bearer-token access: every endpoint but ``/health`` needs one of the configured tokens.

A request's caller is the configured token's name (:mod:`uplift.api.tokens`), never the token;
``/health`` answers everyone, with details only to a caller.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from uplift.api.tokens import OPEN_NAME

__all__ = ["Caller", "caller_or_none", "matching_name", "require_token", "token_matches"]

_bearer = HTTPBearer(auto_error=False, description="One of the service's configured tokens.")


def matching_name(candidate: str, tokens: tuple[tuple[str, bytes], ...]) -> str | None:
    """The name of the token ``candidate`` equals, or None; compares against every token in constant time each."""
    given = candidate.encode()
    found = None
    for name, token in tokens:
        if hmac.compare_digest(given, token):
            found = name
    return found


def token_matches(candidate: str, tokens: tuple[bytes, ...]) -> bool:
    """True if ``candidate`` equals one of ``tokens`` (unnamed)."""
    return matching_name(candidate, tuple(("", t) for t in tokens)) is not None


def _name_of(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    tokens: tuple[tuple[str, bytes], ...] = request.app.state.tokens
    if not tokens:
        return OPEN_NAME
    if credentials is None or credentials.scheme.lower() != "bearer":
        return None
    return matching_name(credentials.credentials, tokens)


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Dependency: the caller's token name; 401 unless the request carries a valid bearer token (open,
    as :data:`~uplift.api.tokens.OPEN_NAME`, when no tokens are configured)."""
    name = _name_of(request, credentials)
    if name is not None:
        return name
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})


def caller_or_none(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """Dependency for open endpoints: the caller's token name, or None without a valid token (never 401)."""
    return _name_of(request, credentials)


Caller = Annotated[str, Depends(require_token)]
"""The name of the token a request came with (FastAPI runs ``require_token`` once per request)."""
