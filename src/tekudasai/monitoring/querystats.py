"""The heaviest statements, from `pg_stat_statements`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tekudasai.core.errors import AppError

log = logging.getLogger(__name__)

EXTENSION = "pg_stat_statements"

ENABLE_EMBEDDED = (
    "pg_stat_statements is not loaded by this PostgreSQL server. The embedded server preloads it "
    "from its next start on: restart `tekudasai serve` (or stop and start the database)."
)
ENABLE_EXTERNAL = (
    "pg_stat_statements is not loaded by this PostgreSQL server. Add "
    "shared_preload_libraries = 'pg_stat_statements' to postgresql.conf (managed services: the "
    "parameter group / server flags), restart PostgreSQL, then run `tekudasai db top` again "
    "(it creates the extension; or run CREATE EXTENSION pg_stat_statements as a superuser)."
)


class StatementStatsUnavailable(AppError):
    status_code = 503
    code = "STATEMENT_STATS_UNAVAILABLE"
    message = ENABLE_EXTERNAL


@dataclass(frozen=True)
class Statement:
    query: str
    calls: int
    total_ms: float
    mean_ms: float
    max_ms: float
    rows: int
    share: float  # of the total execution time of every statement in this database


TOP_SQL = text(
    """
    SELECT query, calls, total_exec_time, mean_exec_time, max_exec_time, rows,
           total_exec_time / nullif(sum(total_exec_time) OVER (), 0) AS share
    FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND query NOT ILIKE '%pg_stat_statements%'
    ORDER BY total_exec_time DESC
    LIMIT :limit
    """
)


async def preloaded(conn: AsyncConnection) -> bool:
    libraries = await conn.scalar(text("SELECT current_setting('shared_preload_libraries')"))
    return EXTENSION in (libraries or "")


async def ensure_extension(engine: AsyncEngine) -> bool:
    """Create the extension where the library is preloaded; False when it cannot be used."""
    async with engine.connect() as conn:
        if not await preloaded(conn):
            return False
        installed = await conn.scalar(
            text("SELECT 1 FROM pg_extension WHERE extname = :name"), {"name": EXTENSION}
        )
        if installed:
            return True
        try:
            await conn.execute(text(f"CREATE EXTENSION IF NOT EXISTS {EXTENSION}"))
            await conn.commit()
        except DBAPIError as exc:
            # Two workers racing, or a role without the right to create extensions.
            log.warning("could not create %s: %s", EXTENSION, str(exc).splitlines()[0])
            await conn.rollback()
            return bool(
                await conn.scalar(
                    text("SELECT 1 FROM pg_extension WHERE extname = :name"), {"name": EXTENSION}
                )
            )
    return True


async def top_statements(
    engine: AsyncEngine, *, limit: int = 10, embedded: bool = False
) -> list[Statement]:
    """The statements with the largest total execution time in this database."""
    if not await ensure_extension(engine):
        raise StatementStatsUnavailable(ENABLE_EMBEDDED if embedded else ENABLE_EXTERNAL)
    async with engine.connect() as conn:
        rows = (await conn.execute(TOP_SQL, {"limit": limit})).all()
    return [
        Statement(
            query=" ".join(row.query.split()),
            calls=int(row.calls),
            total_ms=float(row.total_exec_time),
            mean_ms=float(row.mean_exec_time),
            max_ms=float(row.max_exec_time),
            rows=int(row.rows),
            share=float(row.share or 0.0),
        )
        for row in rows
    ]
