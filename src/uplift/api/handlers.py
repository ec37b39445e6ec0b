"""How errors become HTTP answers: project errors are 4xx with a clear message, anything else a logged 500."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from uplift.errors import DataError, InfeasiblePlanError, ModelNotFoundError, SchemaError, SpecError, UpliftError

__all__ = ["RequestFieldError", "install_handlers", "status_for", "validation_details"]

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
    if isinstance(exc, InfeasiblePlanError):
        return 409
    if isinstance(exc, ModelNotFoundError):
        return 404
    if isinstance(exc, (SchemaError, SpecError, DataError)):
        return 422
    return 400


async def _uplift_error(request: Request, exc: UpliftError) -> JSONResponse:
    code = status_for(exc)
    if isinstance(exc, RequestFieldError):
        body: dict = {"detail": [{"loc": list(exc.loc), "msg": str(exc), "type": exc.kind}]}
    else:
        body = {"detail": str(exc)}
    if isinstance(exc, InfeasiblePlanError):
        body["conflicts"] = list(exc.conflicts)
    return JSONResponse(body, status_code=code)


_UNION_MEMBERS = {"str", "float", "int", "bool"}


def validation_details(errors: list[dict]) -> list[dict]:
    """FastAPI's validation errors as ``{loc, msg, type}`` without the offending input (never echoed back).

    The errors of one value against every member of a union (``rows.0.age.str``, ``...float``, ...)
    collapse into one entry at the value's path.
    """
    out: list[dict] = []
    seen_unions: set[tuple] = set()
    for e in errors:
        loc = tuple(e.get("loc", ()))
        if len(loc) > 1 and loc[-1] in _UNION_MEMBERS and loc[0] == "body":
            if loc[:-1] in seen_unions:
                continue
            seen_unions.add(loc[:-1])
            out.append({"loc": list(loc[:-1]), "msg": "expected text, a finite number, true/false or null",
                        "type": "union_type"})
            continue
        out.append({"loc": list(loc), "msg": str(e.get("msg", "invalid")), "type": str(e.get("type", "value_error"))})
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
