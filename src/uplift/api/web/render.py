"""Rendering the page's HTML: one Jinja2 environment (autoescaped: every text from declarations or data,
segment names and notes included, is shown as text), the number filters, and the headers every page gets."""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import urlencode

from fastapi.responses import HTMLResponse

from uplift.api.web.numbers import FILTERS, interval
from uplift.api.web.views import event_name, outcome_words

__all__ = ["PAGE_HEADERS", "ROOT", "STATIC", "page", "render"]

ROOT = "/ui"
"""Where the page lives in the service."""
STATIC = Path(__file__).parent / "static"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
"""Headers of every page and fragment: nothing from elsewhere runs or loads, no framing, no caching of
figures in shared caches."""


@functools.cache
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=True, trim_blocks=False, lstrip_blocks=False,
    )
    env.filters.update(FILTERS)
    env.globals.update(root=ROOT, interval_fmt=interval, urlencode=urlencode, outcome_words=outcome_words,
                       event_name=event_name)
    return env


def render(template: str, **context) -> str:
    """The HTML of ``template`` with ``context`` (``session``, ``title`` ... default to none)."""
    context.setdefault("session", None)
    context.setdefault("model_notice", None)
    context.setdefault("active", "")
    context.setdefault("title", "uplift")
    return _environment().get_template(template).render(**context)


def page(template: str, status_code: int = 200, **context) -> HTMLResponse:
    """``template`` rendered as a response with :data:`PAGE_HEADERS`."""
    return HTMLResponse(render(template, **context), status_code=status_code, headers=PAGE_HEADERS)
