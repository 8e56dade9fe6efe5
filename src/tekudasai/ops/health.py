"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from tekudasai.core.handlers import error_body
from tekudasai.db import migrate
from tekudasai.db.session import Database

router = APIRouter(tags=["health"])

READY_TIMEOUT_S = 3.0


@router.get("/health")
async def liveness() -> dict[str, str]:
    return {"status": "success"}


@router.get("/health/ready")
async def readiness(request: Request) -> JSONResponse:
    database: Database = request.app.state.database
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), database.engine.connect() as conn:
            current = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    except Exception:
        return JSONResponse(
            error_body("The database does not answer.", "NOT_READY"), status_code=503
        )
    head = migrate.head_revision()
    if current != head:
        return JSONResponse(
            error_body(
                f"Schema at {current}, expected {head}: run `tekudasai db migrate`.", "NOT_READY"
            ),
            status_code=503,
        )
    return JSONResponse({"status": "success", "data": {"database": "ok", "schema": current}})
