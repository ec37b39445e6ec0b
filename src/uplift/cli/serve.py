"""``uplift serve``: the HTTP API over the registry's champion (FastAPI on uvicorn)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from uplift.cli.app import app, console, fail

__all__ = ["page_address", "serve"]


def page_address(host: str, port: int, *, open_mode: bool) -> str:
    """The line ``uplift serve`` prints: where the planner's page is and how to get in."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    where = f"http://{shown}:{port}/ui/" if port else f"http://{shown}:<the port in the log below>/ui/"
    how = ("no tokens are configured: anyone who reaches it can use it (dev mode)" if open_mode
           else "sign in with one of the service's tokens")
    return f"The planner's page: open {where} in a browser and {how}. The JSON API: {where[:-3]}docs"


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option(help="Settings file (default serve/service.yaml if present).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default from the settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from the settings; 0 = any free port).")] = None,
) -> None:
    """Serve the planner's page (/ui/) and the JSON API (/health, /model, /segments, /plans, /scores); settings
    from UPLIFT_SERVICE_* and the file."""
    import logging

    import uvicorn

    from uplift.api import create_app, load_service_settings
    from uplift.api.modelstore import check_served_model
    from uplift.errors import UpliftError

    if config is not None:
        os.environ["UPLIFT_SERVICE_CONFIG"] = str(config)
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    try:
        settings = load_service_settings(**overrides)
        logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        application = create_app(settings)
        check_served_model(settings)
    except UpliftError as exc:
        fail(f"refusing to start: {exc}")
    console.print(page_address(settings.host, settings.port, open_mode=not settings.named_tokens()), markup=False,
                  highlight=False)
    common = {"host": settings.host, "port": settings.port, "log_level": settings.log_level,
              "timeout_graceful_shutdown": 10}
    if settings.workers == 1:
        uvicorn.run(application, **common)
    else:  # each worker process builds its own app from the same environment and settings file
        os.environ.update({"UPLIFT_SERVICE_HOST": settings.host, "UPLIFT_SERVICE_PORT": str(settings.port)})
        uvicorn.run("uplift.api.app:app_from_environment", factory=True, workers=settings.workers, **common)
