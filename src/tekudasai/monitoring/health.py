"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import text

from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.handlers import error_body
from tekudasai.core.schemas import ERROR_RESPONSES, CamelModel, Envelope
from tekudasai.db import migrate
from tekudasai.db.session import Database
from tekudasai.monitoring.metrics import ERROR_CODE_KEY, pool_status

router = APIRouter(tags=["health"], responses=ERROR_RESPONSES, route_class=DirectRoute)


class Alive(BaseModel):
    status: Literal["success"]


class PoolUse(CamelModel):
    in_use: int
    capacity: int


class ReplicaDetail(CamelModel):
    """Reported, not required: without the replica the primary serves every read."""

    status: Literal["starting", "ok", "lagging", "down", "promoted"]
    lag_s: float | None
    max_lag_s: float
    message: str | None = None


class Ready(CamelModel):
    database: Literal["ok"]
    schema_: str = Field(alias="schema")
    pool: PoolUse
    replica: ReplicaDetail | None = None


READY_TIMEOUT_S = 3.0


@lru_cache(maxsize=1)
def _head() -> str:
    # Parsing the migration scripts costs milliseconds; they do not change while we run.
    return migrate.head_revision()


def _not_ready(request: Request, message: str) -> JSONResponse:
    request.scope[ERROR_CODE_KEY] = "NOT_READY"
    return JSONResponse(error_body(message, "NOT_READY"), status_code=503)


# Liveness is polled by every load balancer and orchestrator: one constant answer, sent as
# it is (no serialisation, and a DirectRoute plan instead of FastAPI's dependency walk).
_ALIVE = b'{"status":"success"}'


@router.get("/health", response_model=Alive)
async def liveness() -> Response:
    return Response(_ALIVE, media_type="application/json")


@router.get("/health/ready", response_model=Envelope[Ready])
async def readiness(request: Request) -> JSONResponse:
    """200 when a pooled connection answers within the timeout and the schema is at head."""
    database: Database = request.app.state.database
    # Waiting for a pooled connection is part of the check: a pool that is busy for a moment
    # is fine, one that cannot hand out a connection within the timeout is exhausted.
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), database.engine.connect() as conn:
            current = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    except Exception:
        pool = pool_status(database.engine.sync_engine.pool)
        if pool["capacity"] and pool["checked_out"] >= pool["capacity"]:
            return _not_ready(
                request,
                f"The connection pool is exhausted ({pool['checked_out']} in use, "
                f"{pool['waiters']} waiting).",
            )
        return _not_ready(request, "The database does not answer.")
    head = _head()
    if current != head:
        return _not_ready(
            request, f"Schema at {current}, expected {head}: run `tekudasai db migrate`."
        )
    pool = pool_status(database.engine.sync_engine.pool)
    data: dict[str, object] = {
        "database": "ok",
        "schema": current,
        "pool": {"inUse": pool["checked_out"], "capacity": pool["capacity"]},
    }
    if database.replica is not None:
        status = database.replica.status
        data["replica"] = {
            "status": status.state,
            "lagS": None if status.lag_s is None else round(status.lag_s, 3),
            "maxLagS": database.replica.max_lag_s,
            "message": status.message,
        }
    return JSONResponse({"status": "success", "data": data})
