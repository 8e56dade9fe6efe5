"""`/metrics`: Prometheus text for scrapers (token, loopback or an admin's session)."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from tekudasai.accounts.dependencies import Principal, optional_principal, scopes
from tekudasai.config import Settings
from tekudasai.core.csrf import bearer_token
from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.errors import NotFound, Unauthorized
from tekudasai.core.middleware import is_loopback_client
from tekudasai.db.session import Database
from tekudasai.monitoring import metrics, system

router = APIRouter(include_in_schema=False, route_class=DirectRoute)

DB_METRICS_TIMEOUT_S = 5.0


def is_loopback(request: Request) -> bool:
    return is_loopback_client(request.scope)


async def current_principal(request: Request) -> Principal | None:
    """The signed-in user, looked up only when a route needs it (no transaction otherwise)."""
    database: Database = request.app.state.database
    async with database.sessionmaker() as db, db.begin():
        # A renewed session cookie is not worth sending on a scrape: a throw-away response.
        return await optional_principal(request, db)


@router.get("/metrics", openapi_extra=scopes("reports:read"))
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text format. TK_METRICS_TOKEN set: Bearer token (or an admin's session);
    unset: loopback clients (or an admin's session)."""
    settings: Settings = request.app.state.settings
    token = bearer_token(request.headers.get("authorization"))
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
    body = metrics.exposition() + metrics.node_exposition(settings.node_name)
    try:
        async with asyncio.timeout(DB_METRICS_TIMEOUT_S):
            body += await system.database_exposition(request.app.state.database, settings)
    except Exception:
        # The process metrics still go out: they are what shows the database trouble.
        metrics.ERRORS.labels("METRICS_DATABASE_UNAVAILABLE").inc()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
