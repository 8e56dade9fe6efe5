"""Database size history: periodic samples of the database and table sizes, growth per day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.config import Settings
from tekudasai.jobs.worker import JobContext
from tekudasai.monitoring.models import SizeSample

SAMPLE_INTERVAL_S = 15 * 60
KEEP_DAYS = 90
MIN_SPAN = timedelta(hours=1)  # below this, growth per day is noise

TABLE_SIZES_SQL = text(
    """
    SELECT c.relname, pg_total_relation_size(c.oid)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
    ORDER BY 2 DESC
    """
)


@dataclass(frozen=True)
class Sizes:
    database_bytes: int
    tables: dict[str, int]


async def measure(db: AsyncSession) -> Sizes:
    """The current database size and the size of each table (indexes and TOAST included)."""
    total = await db.scalar(text("SELECT pg_database_size(current_database())"))
    rows = (await db.execute(TABLE_SIZES_SQL)).all()
    return Sizes(database_bytes=int(total or 0), tables={name: int(size) for name, size in rows})


async def sample_sizes(db: AsyncSession) -> SizeSample:
    """Store one size sample and forget samples older than KEEP_DAYS."""
    sizes = await measure(db)
    sample = SizeSample(database_bytes=sizes.database_bytes, tables=sizes.tables)
    db.add(sample)
    await db.execute(
        delete(SizeSample).where(SizeSample.sampled_at < func.now() - timedelta(days=KEEP_DAYS))
    )
    await db.flush()
    return sample


@dataclass(frozen=True)
class Growth:
    latest_bytes: int
    bytes_per_day: float | None  # None until an hour of history exists
    tables_per_day: dict[str, float]
    since: datetime | None


async def growth_per_day(
    db: AsyncSession, *, window: timedelta = timedelta(days=1)
) -> Growth | None:
    """Growth between the latest sample and the oldest one within `window` before it."""
    latest = await db.scalar(select(SizeSample).order_by(SizeSample.sampled_at.desc()).limit(1))
    if latest is None:
        return None
    earlier = await db.scalar(
        select(SizeSample)
        .where(
            SizeSample.sampled_at >= latest.sampled_at - window,
            SizeSample.sampled_at <= latest.sampled_at - MIN_SPAN,
        )
        .order_by(SizeSample.sampled_at)
        .limit(1)
    )
    if earlier is None:
        return Growth(latest.database_bytes, None, {}, None)
    days = (latest.sampled_at - earlier.sampled_at).total_seconds() / 86400
    tables = {
        name: (size - int(earlier.tables.get(name, 0))) / days
        for name, size in latest.tables.items()
    }
    return Growth(
        latest_bytes=latest.database_bytes,
        bytes_per_day=(latest.database_bytes - earlier.database_bytes) / days,
        tables_per_day=tables,
        since=earlier.sampled_at,
    )


async def history(db: AsyncSession, *, since: timedelta = timedelta(days=30)) -> list[SizeSample]:
    rows = await db.scalars(
        select(SizeSample)
        .where(SizeSample.sampled_at >= func.now() - since)
        .order_by(SizeSample.sampled_at)
    )
    return list(rows)


def sample_every(_settings: Settings) -> float:
    return float(SAMPLE_INTERVAL_S)


async def sample_task(ctx: JobContext) -> None:
    """Periodic: one size sample (the queue runs each period once cluster-wide)."""
    async with ctx.database.sessionmaker() as db, db.begin():
        await sample_sizes(db)
