"""The FastAPI application: ``create_app(settings)`` wires routers, auth, limits, handlers and the lifespan."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from uplift.api.auth import require_token
from uplift.api.handlers import install_handlers
from uplift.api.limits import BodySizeLimit
from uplift.api.settings import ServiceSettings
from uplift.errors import SpecError
from uplift.quiet import install as install_quiet_output

__all__ = ["app_from_environment", "create_app", "with_compute_pool"]

log = logging.getLogger("uplift.api")

DESCRIPTION = """Uplift targeting for re-skilling outreach, over the MLflow model behind the registry alias.

Every endpoint but `/health` needs `Authorization: Bearer <token>`. Effects are incremental conversions
per contact (probability points) against the holdout; no segment smaller than the service's minimum
segment size is ever returned, and no count of people or converters below the disclosure threshold, nor a
rate or observed difference resting on one (`withheld` says which and why).
"""


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    import mlflow

    from uplift.api.modelstore import ModelStore, registry_loader, registry_resolver
    from uplift.api.planning import PlanService
    from uplift.api.planstore import PlanStore
    from uplift.api.registryclient import lazy_mlflow_client
    from uplift.api.valuetables import FunnelTables
    from uplift.api.web import charts
    from uplift.api.web.sessions import SessionStore
    from uplift.specs import load_spec
    from uplift.specs.planning import CostCatalogue, PlanningPolicy

    settings: ServiceSettings = app.state.settings
    planner = PlanService(
        costs=load_spec(settings.costs_path(), CostCatalogue),
        policy=load_spec(settings.policy_path(), PlanningPolicy),
        min_segment_size=settings.min_segment_size,
        cache_size=settings.plan_cache_size,
        flyers_by_neighbourhood=settings.flyers_by_neighbourhood,
        prepared_bytes=settings.prepared_plans_mb * 2**20,
    )
    uri = settings.resolved_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = lazy_mlflow_client(uri)  # an unreadable registry is reported by /health, not fatal
    planner.funnel_tables = FunnelTables(client, alias=settings.alias)  # plans on value along the funnel
    name, alias = settings.registered_model, settings.alias
    load = registry_loader(client, name, alias, min_segment_size=settings.min_segment_size,
                           disclosure=app.state.disclosure)
    processes = settings.resolved_compute_processes()
    store = ModelStore(
        resolve=registry_resolver(client, name, alias),
        load=(lambda version: with_compute_pool(load(version), planner, processes)) if processes else load,
        poll_seconds=settings.poll_seconds,
        retire=_close_pool,
    )
    plans = PlanStore(settings.resolved_plans_url(), retention=settings.plan_retention)
    app.state.planner = planner
    app.state.plan_store = plans
    app.state.web_sessions = SessionStore(plans.engine)
    threading.Thread(target=charts.warm_up, name="uplift-charts-warm-up", daemon=True).start()
    app.state.model_store = store
    store.start()
    status = store.status
    if store.bundle is None:
        log.error("no model in service (%s); model endpoints answer 503 until %s@%s can be loaded",
                  status.reason, name, alias)
    else:
        log.info("serving %s v%s from %s", name, store.bundle.version, uri)
    try:
        yield
    finally:
        store.stop()
        if store.bundle is not None:
            _close_pool(store.bundle, wait=True)
        plans.close()


def with_compute_pool(bundle, planner, processes: int):
    """``bundle`` with a started :class:`~uplift.api.compute.ComputePool` of ``processes`` workers,
    or as it is (requests compute in their own thread) if the workers cannot start."""
    import dataclasses

    from uplift.api.compute import ComputePool

    pool = ComputePool(bundle, planner, processes)
    try:
        pids = pool.start()
    except Exception:
        log.exception("compute workers for %s v%s did not start; computing in request threads", bundle.name,
                      bundle.version)
        pool.close(wait=False)
        return bundle
    log.info("%s v%s: %d compute processes (%s)", bundle.name, bundle.version, len(pids), ", ".join(map(str, pids)))
    return dataclasses.replace(bundle, compute=pool)


def _close_pool(bundle, *, wait: bool = False) -> None:
    """Close a retired bundle's pool: its queued requests finish, later ones compute in their thread."""
    if bundle.compute is not None:
        bundle.compute.close(wait=wait)


def create_app(settings: ServiceSettings) -> FastAPI:
    """The application for ``settings`` (nothing is loaded until the lifespan starts).

    Raises
    ------
    SpecError
        ``production`` mode without tokens (the settings also refuse weak ones there), or with a lowered
        disclosure threshold; a minimum segment size below the disclosure threshold
        (:meth:`ServiceSettings.disclosure_policy`).
    """
    install_quiet_output()  # each uvicorn worker process builds its app here
    tokens = settings.named_tokens()
    if settings.mode == "production" and not tokens:
        raise SpecError("service settings: mode 'production' needs at least one token (UPLIFT_SERVICE_TOKENS)")
    if not tokens:
        log.warning("!" * 72)
        log.warning("NO ACCESS TOKENS CONFIGURED: the API is OPEN to anyone who can reach %s:%s (dev mode)",
                    settings.host, settings.port)
        log.warning("!" * 72)
    for name, why in settings.weak_tokens().items():  # production refuses these (settings validation)
        log.warning("token %r is too weak for production (%s); make one with `uplift token`", name, "; ".join(why))
    disclosure = settings.disclosure_policy()
    if disclosure.lowered:
        log.warning("!" * 72)
        log.warning("DISCLOSURE THRESHOLD LOWERED to %d people (dev mode): figures about smaller groups than a "
                    "statistical office would publish leave this service", disclosure.threshold)
        log.warning("!" * 72)
    from uplift.api.routes import handoff, health, model, pages, plans, scores, segments
    from uplift.api.web.pagehandlers import install_page_handlers

    app = FastAPI(
        title="uplift",
        summary="Multi-treatment uplift targeting for re-skilling outreach campaigns",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.tokens = tokens
    app.state.disclosure = disclosure
    protected = [Depends(require_token)]
    app.include_router(health.router)
    for module in (model, segments, plans, handoff, scores):
        app.include_router(module.router, dependencies=protected,
                           responses={401: {"description": "missing or invalid bearer token"}})
    app.include_router(pages.router)
    install_handlers(app)
    install_page_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app


def app_from_environment() -> FastAPI:
    """``create_app`` over the settings read from the environment and file (uvicorn's factory for workers)."""
    from uplift.api.settings import load_service_settings

    return create_app(load_service_settings())
