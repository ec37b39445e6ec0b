"""How errors become HTTP answers: project errors are 4xx with a clear message, anything else a logged 500.

Every error answer is short: at most :data:`MAX_ERRORS` entries, each message capped and escaped
(:func:`uplift.api.redact.safe_message`), each path element of a field cut to a short prefix; the
offending value itself is never echoed beyond :func:`uplift.api.redact.echo`'s short prefix.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from uplift.api.redact import ECHO_CHARS, safe_message
from uplift.errors import (
    DataError,
    InfeasiblePlanError,
    ModelNotFoundError,
    PlanLockedError,
    SchemaError,
    SpecError,
    UpliftError,
)

__all__ = ["MAX_ERRORS", "RequestFieldError", "install_handlers", "safe_loc", "status_for", "validation_details"]

MAX_ERRORS = 20
"""Entries of a 422's ``detail`` at most; past that one more entry says how many were left out."""

log = logging.getLogger("uplift.api")


class RequestFieldError(SchemaError):
    """A request field holds a value the service cannot use; ``loc`` is its path (as in FastAPI's 422)."""

    def __init__(self, message: str, loc: tuple[str | int, ...], kind: str = "value_error") -> None:
        super().__init__(message)
        self.loc = tuple(loc)
        self.kind = kind

    def __reduce__(self):  # pickled back from a compute worker (uplift.api.compute)
        return type(self), (str(self), self.loc, self.kind)


def status_for(exc: UpliftError) -> int:
    """HTTP status of a project error."""
    if isinstance(exc, (InfeasiblePlanError, PlanLockedError)):
        return 409
    if isinstance(exc, ModelNotFoundError):
        return 404
    if isinstance(exc, (SchemaError, SpecError, DataError)):
        return 422
    return 400


def safe_loc(loc) -> list:
    """A field's path as sent back: indices as they are, names cut to a short escaped prefix."""
    return [p if isinstance(p, int) else safe_message(str(p), ECHO_CHARS) for p in loc]


async def _uplift_error(request: Request, exc: UpliftError) -> JSONResponse:
    code = status_for(exc)
    if isinstance(exc, RequestFieldError):
        body: dict = {"detail": [{"loc": safe_loc(exc.loc), "msg": safe_message(str(exc)), "type": exc.kind}]}
    else:
        body = {"detail": safe_message(str(exc))}
    if isinstance(exc, InfeasiblePlanError):
        body["conflicts"] = [safe_message(c) for c in exc.conflicts[:MAX_ERRORS]]
    return JSONResponse(body, status_code=code)


_UNION_MEMBERS = {"str", "float", "int", "bool"}


def validation_details(errors: list[dict]) -> list[dict]:
    """FastAPI's validation errors as ``{loc, msg, type}`` without the offending input (never echoed back),
    at most :data:`MAX_ERRORS` of them (then one entry saying how many more there were).

    The errors of one value against every member of a union (``rows.0.age.str``, ``...float``, ...)
    collapse into one entry at the value's path.
    """
    out: list[dict] = []
    seen_unions: set[tuple] = set()
    left = 0
    for e in errors:
        loc = tuple(e.get("loc", ()))
        union = len(loc) > 1 and loc[-1] in _UNION_MEMBERS and loc[0] == "body"
        if union:
            if loc[:-1] in seen_unions:
                continue
            seen_unions.add(loc[:-1])
        if len(out) >= MAX_ERRORS:  # counted, not rendered: a body of a million bad rows costs no more
            left += 1
            continue
        if union:
            out.append({"loc": safe_loc(loc[:-1]), "msg": "expected text, a finite number, true/false or null",
                        "type": "union_type"})
            continue
        out.append({"loc": safe_loc(loc), "msg": safe_message(str(e.get("msg", "invalid"))),
                    "type": safe_message(str(e.get("type", "value_error")), ECHO_CHARS)})
    if left:
        out.append({"loc": [], "msg": f"{left} more error(s) left out", "type": "too_many_errors"})
    return out


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": validation_details(list(exc.errors()))}, status_code=422)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    error_id = uuid.uuid4().hex[:12]
    log.exception("unexpected error %s on %s %s", error_id, request.method, request.url.path)
    return JSONResponse({"detail": f"internal error (id {error_id}); the service log has the details"}, status_code=500)


def install_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(UpliftError, _uplift_error)
    app.add_exception_handler(Exception, _unexpected)
