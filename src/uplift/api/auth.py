"""Bearer-token access: every endpoint but ``/health`` needs one of the configured tokens."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

__all__ = ["require_token", "token_matches"]

_bearer = HTTPBearer(auto_error=False, description="One of the service's configured tokens.")


def token_matches(candidate: str, tokens: tuple[bytes, ...]) -> bool:
    """True if ``candidate`` equals one of ``tokens``; compares against all of them in constant time each."""
    given = candidate.encode()
    found = False
    for token in tokens:
        found |= hmac.compare_digest(given, token)
    return found


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Dependency: 401 unless the request carries a valid bearer token (open when no tokens are configured)."""
    tokens: tuple[bytes, ...] = request.app.state.tokens
    if not tokens:
        return
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    if not token_matches(credentials.credentials, tokens):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
