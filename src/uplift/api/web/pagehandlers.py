"""How the page answers what goes wrong: the sign-in form for a missing session, a plain page for a refused
form or an unexpected error (never a stack trace), the static files, and ``/`` leading to the page."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from uplift.api.handlers import _unexpected
from uplift.api.web.access import CsrfRefused, SignInRequired
from uplift.api.web.render import ROOT, STATIC, page

__all__ = ["install_page_handlers"]

log = logging.getLogger("uplift.api")


def _on_page(request: Request) -> bool:
    path = request.url.path
    return path == ROOT or path.startswith(ROOT + "/")


async def _sign_in(request: Request, exc: SignInRequired) -> Response:
    if request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import urlencode

        return RedirectResponse(f"{ROOT}/sign-in?{urlencode({'next': target})}", status_code=303)
    return page("problem.html", 401, title="Signed out", message="You are not signed in (or your session ended).",
                link=f"{ROOT}/sign-in", link_text="Sign in")


async def _csrf(request: Request, exc: CsrfRefused) -> Response:
    return page("problem.html", 403, title="Form refused",
                message="This form did not come from your page in this session (its security token is missing or "
                        "out of date). Reload the page and try again.", link=f"{ROOT}/", link_text="Overview")


async def _http(request: Request, exc: StarletteHTTPException) -> Response:
    if _on_page(request):
        return page("problem.html", exc.status_code, title="Not available", message=str(exc.detail)[:300],
                    link=f"{ROOT}/", link_text="Overview")
    from fastapi.exception_handlers import http_exception_handler

    return await http_exception_handler(request, exc)


async def _unexpected_page(request: Request, exc: Exception) -> Response:
    if not _on_page(request):
        return await _unexpected(request, exc)
    error_id = uuid.uuid4().hex[:12]
    log.exception("unexpected error %s on %s %s", error_id, request.method, request.url.path)
    return page("problem.html", 500, title="Something went wrong",
                message=f"The page could not be made (error id {error_id}); the service log has the details.",
                link=f"{ROOT}/", link_text="Overview")


def install_page_handlers(app: FastAPI) -> None:
    """The page's error answers (after :func:`uplift.api.handlers.install_handlers`), its static files under
    ``/ui/static`` and a redirect from ``/`` to the page."""
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(CsrfRefused, _csrf)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected_page)
    app.mount(f"{ROOT}/static", StaticFiles(directory=STATIC), name="page-static")

    @app.get("/", include_in_schema=False)
    def _root() -> RedirectResponse:
        return RedirectResponse(f"{ROOT}/", status_code=307)
