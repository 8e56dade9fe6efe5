"""FastAPI application factory: routers, middleware, error handlers — nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from tekudasai import __version__
from tekudasai.accounts.router import router as accounts_router
from tekudasai.automations.router import router as automations_router
from tekudasai.canned.router import router as canned_router
from tekudasai.config import Settings, get_settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.csrf import CsrfMiddleware
from tekudasai.core.handlers import install_error_handlers
from tekudasai.core.logging import configure_logging
from tekudasai.core.middleware import BodyLimitMiddleware, RequestContextMiddleware
from tekudasai.core.routing import install_prefix_dispatch
from tekudasai.db.lifecycle import resolve_database_url
from tekudasai.db.ratelimit import parse_limits
from tekudasai.db.replica import ReplicaFenceMiddleware
from tekudasai.db.session import Database
from tekudasai.forms.router import router as forms_router
from tekudasai.inbound import router as inbound
from tekudasai.live.hub import Hub
from tekudasai.live.router import router as live_router
from tekudasai.monitoring.health import router as health_router
from tekudasai.monitoring.metrics import (
    RequestMetrics,
    instrument_engine,
    instrument_replica,
    start_pool_sampler,
)
from tekudasai.monitoring.router import router as metrics_router
from tekudasai.notifications.router import router as notifications_router
from tekudasai.reports.router import router as reports_router
from tekudasai.sla.router import policies_router
from tekudasai.sla.router import router as calendars_router
from tekudasai.tasks import install_reactors, make_worker
from tekudasai.teams.router import router as teams_router
from tekudasai.tickets.router import router as tickets_router
from tekudasai.uploads.dependencies import storage_for
from tekudasai.uploads.router import router as uploads_router
from tekudasai.web import install_web, notification_pages
from tekudasai.web.router import router as web_router
from tekudasai.web.system_pages import router as system_page_router
from tekudasai.web.webhook_pages import router as webhook_page_router
from tekudasai.webhooks.router import router as webhooks_router

log = logging.getLogger(__name__)


API_ROUTERS = (
    health_router,
    accounts_router,
    forms_router,
    tickets_router,
    uploads_router,
    teams_router,
    calendars_router,
    policies_router,
    canned_router,
    automations_router,
    inbound.router,
    notifications_router,
    live_router,
    webhooks_router,
    reports_router,
)
API_PREFIXES = ("/api", "/api/v1")
# Where /api/docs loads swagger-ui's script, style and icon from.
DOCS_ASSETS_URL = "/api/docs-assets"


def api_router() -> APIRouter:
    api = APIRouter()
    for router in API_ROUTERS:
        api.include_router(router)
    return api


def create_app(
    settings: Settings | None = None, database: Database | None = None, *, metrics: bool = True
) -> FastAPI:
    """Build the app. Tests pass their own `database`; otherwise the lifespan connects.

    `metrics=False` leaves out request counting, statement timing and the pool gauges (the
    metrics benchmark compares against that); `/metrics` then reports nothing new.
    """
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    install_reactors(settings)
    parse_limits(settings.rate_limits)  # a typo in TK_RATE_LIMITS stops start-up, not requests

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        app.state.database = database or Database.connect(
            await resolve_database_url(settings), settings
        )
        tasks = []
        if metrics:
            instrument_engine(app.state.database.engine, slow_query_ms=settings.slow_query_ms)
            tasks.append(start_pool_sampler(app.state.database.engine))
        # Live updates: this process's one LISTEN connection and its streams (live/hub.py).
        app.state.live_hub = Hub(app.state.database, app.state.cipher, settings)
        tasks.append(asyncio.create_task(app.state.live_hub.run(), name="tk-live"))
        replica = app.state.database.replica
        if replica is not None:
            # Lag sampling for the read replica (db/replica.py), as a metric when metrics are on.
            if metrics:
                instrument_replica(replica)
            tasks.append(replica.start())
        if settings.background_jobs:
            # Every worker process runs the queue; claims with SKIP LOCKED keep each job to
            # exactly one run, and a busy process leaves the next job to an idle one.
            worker = make_worker(app.state.database, settings)
            tasks.append(asyncio.create_task(worker.run(), name="tk-jobs"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if owned:
                await app.state.database.dispose()

    # FastAPIOffline: a FastAPI whose /api/docs page loads swagger-ui from files the
    # fastapi-offline package ships, served by this app (works offline; no CDN to trust).
    app = FastAPIOffline(
        title="Te Kudasai",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        static_url=DOCS_ASSETS_URL,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.cipher = PiiCipher(settings.master_secret())
    app.state.upload_storage = storage_for(settings)  # a bad TK_UPLOADS_URL stops start-up
    if database is not None:
        app.state.database = database

    api = api_router()
    app.include_router(api, prefix="/api")
    app.include_router(api, prefix="/api/v1", include_in_schema=False)
    app.include_router(web_router)
    app.include_router(metrics_router)
    app.include_router(system_page_router)
    app.include_router(notification_pages.router)
    app.include_router(webhook_page_router)

    install_error_handlers(app)
    install_web(app)
    install_prefix_dispatch(app, prefixes=API_PREFIXES, routers=API_ROUTERS)
    app.add_middleware(CsrfMiddleware, trusted_origins=settings.trusted_origins)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.trusted_origins,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["Retry-After", "X-Request-ID"],
    )
    app.add_middleware(
        BodyLimitMiddleware,
        upload_limit=settings.max_upload_mb * 1024 * 1024,
        # Inbound mail is a raw message with its attachments: its own cap.
        path_limits={prefix + inbound.PATH: inbound.BODY_LIMIT for prefix in API_PREFIXES},
    )
    if settings.database_replica_url:
        app.add_middleware(ReplicaFenceMiddleware)  # read-your-writes cookie (db/replica.py)
    app.add_middleware(RequestContextMiddleware, observer=RequestMetrics() if metrics else None)
    return app
