"""What `/admin/system` and `/metrics` show about the database: a snapshot, and SVG charts."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.backup.status import BackupInfo, sizes_newest_first
from tekudasai.config import Settings
from tekudasai.db import migrate
from tekudasai.db.session import Database
from tekudasai.monitoring import alerts, growth, metrics, querystats, traffic
from tekudasai.tickets.models import TicketStatus

DB_METRICS_TTL_S = 15.0


# -- /metrics: facts about the database, the same whichever worker answers ------------------------

_cache: dict[str, tuple[float, bytes]] = {}
_cache_lock = asyncio.Lock()


async def tickets_by_status(db: AsyncSession) -> dict[str, int]:
    rows = (await db.execute(text("SELECT status, count(*) FROM tickets GROUP BY status"))).all()
    counts = {status.value: 0 for status in TicketStatus}
    counts.update({status: int(n) for status, n in rows})
    return counts


async def database_exposition(database: Database, settings: Settings) -> bytes:
    """Database size, table sizes, tickets by status, growth and last backup (cached briefly)."""
    key = database.url
    cached = _cache.get(key)
    if cached and time.monotonic() - cached[0] < DB_METRICS_TTL_S:
        return cached[1]
    async with _cache_lock:
        cached = _cache.get(key)
        if cached and time.monotonic() - cached[0] < DB_METRICS_TTL_S:
            return cached[1]
        registry = CollectorRegistry()
        db_size = Gauge("tk_database_size_bytes", "Database size", registry=registry)
        table_size = Gauge(
            "tk_table_size_bytes", "Table size incl. indexes", ["table"], registry=registry
        )
        tickets = Gauge("tk_tickets", "Tickets by status", ["status"], registry=registry)
        growth_rate = Gauge(
            "tk_database_growth_bytes_per_day", "Database growth per day", registry=registry
        )
        backup_time = Gauge(
            "tk_last_backup_timestamp_seconds",
            "When the last successful backup was taken (0: none)",
            registry=registry,
        )
        async with database.sessionmaker() as db, db.begin():
            sizes = await growth.measure(db)
            counts = await tickets_by_status(db)
            rate = await growth.growth_per_day(db)
        db_size.set(sizes.database_bytes)
        for name, size in sizes.tables.items():
            table_size.labels(name).set(size)
        for status, n in counts.items():
            tickets.labels(status).set(n)
        if rate and rate.bytes_per_day is not None:
            growth_rate.set(rate.bytes_per_day)
        backups = sizes_newest_first(settings.backups_dir)
        backup_time.set(backups[0].created_at.timestamp() if backups else 0)
        body = generate_latest(registry)
        _cache[key] = (time.monotonic(), body)
        return body


def clear_cache() -> None:
    _cache.clear()


# -- The snapshot behind /admin/system -------------------------------------------------------


@dataclass
class Snapshot:
    database_ok: bool
    database_error: str | None
    schema_current: str | None
    schema_head: str
    pool: dict[str, int]
    database_bytes: int | None
    tables: list[tuple[str, int]]
    growth_per_day: float | None
    tickets: dict[str, int]
    statements: list[querystats.Statement]
    statements_note: str | None
    backups: list[BackupInfo]
    alerts: list[Any]
    size_points: list[tuple[datetime, float]] = field(default_factory=list)
    latency_points: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)
    request_points: list[tuple[datetime, float]] = field(default_factory=list)


async def snapshot(database: Database, settings: Settings) -> Snapshot:
    """Everything the system page shows; a database that does not answer is shown, not raised."""
    head = migrate.head_revision()
    pool = metrics.pool_status(database.engine.sync_engine.pool)
    backups = sizes_newest_first(settings.backups_dir)
    try:
        async with asyncio.timeout(5), database.sessionmaker() as db, db.begin():
            current = await db.scalar(text("SELECT version_num FROM alembic_version"))
            sizes = await growth.measure(db)
            rate = await growth.growth_per_day(db)
            tickets = await tickets_by_status(db)
            size_history = await growth.history(db)
            traffic_history = await traffic.history(db)
            alert_states = await alerts.current_states(db)
    except Exception as exc:
        return Snapshot(
            database_ok=False,
            database_error=type(exc).__name__,
            schema_current=None,
            schema_head=head,
            pool=pool,
            database_bytes=None,
            tables=[],
            growth_per_day=None,
            tickets={},
            statements=[],
            statements_note=None,
            backups=backups,
            alerts=[],
        )
    statements: list[querystats.Statement] = []
    note = None
    try:
        statements = await querystats.top_statements(
            database.engine, limit=10, embedded=settings.embedded
        )
    except querystats.StatementStatsUnavailable as exc:
        note = exc.message
    size_points = [(s.sampled_at, float(s.database_bytes)) for s in size_history]
    latency = {
        name: [(s.sampled_at, getattr(s, f"{name}_ms")) for s in traffic_history if s.requests]
        for name in ("p50", "p95", "p99")
    }
    return Snapshot(
        database_ok=True,
        database_error=None,
        schema_current=current,
        schema_head=head,
        pool=pool,
        database_bytes=sizes.database_bytes,
        tables=sorted(sizes.tables.items(), key=lambda item: -item[1])[:15],
        growth_per_day=rate.bytes_per_day if rate else None,
        tickets=tickets,
        statements=statements,
        statements_note=note,
        backups=backups[:10],
        alerts=alert_states,
        size_points=size_points,
        latency_points={
            k: [(t, float(v)) for t, v in pts if v is not None] for k, pts in latency.items()
        },
        request_points=[(s.sampled_at, float(s.requests)) for s in traffic_history],
    )


# -- Charts: server-rendered SVG, no JavaScript ------------------------------------------------


def human_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
