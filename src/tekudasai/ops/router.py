"""`/metrics` (Prometheus) and the `/admin/system` page."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from prometheus_client import CONTENT_TYPE_LATEST

from tekudasai.accounts.dependencies import Principal, optional_principal
from tekudasai.config import Settings
from tekudasai.core.errors import NotFound, Unauthorized
from tekudasai.core.middleware import is_loopback_client
from tekudasai.db.session import Database
from tekudasai.ops import metrics, system
from tekudasai.web.deps import PageAdmin
from tekudasai.web.rendering import render, templates

router = APIRouter(include_in_schema=False)

DB_METRICS_TIMEOUT_S = 5.0

templates.env.filters["bytes"] = system.human_bytes


def is_loopback(request: Request) -> bool:
    return is_loopback_client(request.scope)


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def current_principal(request: Request) -> Principal | None:
    """The signed-in user, looked up only when a route needs it (no transaction otherwise)."""
    database: Database = request.app.state.database
    async with database.sessionmaker() as db, db.begin():
        # A renewed session cookie is not worth sending on a scrape: a throw-away response.
        return await optional_principal(request, Response(), db)


@router.get("/metrics")
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text format. TK_METRICS_TOKEN set: Bearer token (or an admin's session);
    unset: loopback clients (or an admin's session)."""
    settings: Settings = request.app.state.settings
    token = _bearer(request)
    if settings.metrics_token:
        allowed = token is not None and hmac.compare_digest(
            token.encode(), settings.metrics_token.encode()
        )
    else:
        allowed = is_loopback(request)
    if not allowed:
        principal = await current_principal(request)
        if principal is None or not principal.is_admin:
            if settings.metrics_token:
                raise Unauthorized("Send Authorization: Bearer <TK_METRICS_TOKEN>.")
            raise NotFound()
    metrics.update_pool_gauges(request.app.state.database.engine.sync_engine.pool)
    body = metrics.exposition()
    try:
        async with asyncio.timeout(DB_METRICS_TIMEOUT_S):
            body += await system.database_exposition(request.app.state.database, settings)
    except Exception:
        # The process metrics still go out: they are what shows the database trouble.
        metrics.ERRORS.labels("METRICS_DATABASE_UNAVAILABLE").inc()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/admin/system", response_class=HTMLResponse)
async def system_page(request: Request, principal: PageAdmin) -> Response:
    """Health, pool, heaviest statements, backups and charts (admins; others get 404)."""
    settings: Settings = request.app.state.settings
    snap = await system.snapshot(request.app.state.database, settings)
    charts = {
        # Markup: the SVG is built by our own code, every label in it escaped.
        "size": Markup(  # noqa: S704
            system.line_chart(
                {"database": snap.size_points}, title="Database size", fmt=system.human_bytes
            )
        ),
        "latency": Markup(  # noqa: S704
            system.line_chart(snap.latency_points, title="Request latency (ms)", unit=" ms")
        ),
        "requests": Markup(  # noqa: S704
            system.line_chart({"requests": snap.request_points}, title="Requests per minute")
        ),
    }
    return render(request, "admin/system.html", {"snap": snap, "charts": charts})
