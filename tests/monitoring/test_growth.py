"""Size sampling, growth per day, and traffic sampling from the merged counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from tekudasai.config import Settings
from tekudasai.db.session import Database
from tekudasai.jobs.worker import Periodic, Worker
from tekudasai.monitoring import growth, traffic
from tekudasai.monitoring.models import SizeSample, TrafficSample
from tekudasai.tasks import TASKS

MIB = 1024 * 1024


async def test_sample_sizes_stores_database_and_table_sizes(database: Database) -> None:
    async with database.sessionmaker() as db, db.begin():
        sample = await growth.sample_sizes(db)
    async with database.sessionmaker() as db:
        stored = await db.scalar(select(SizeSample).where(SizeSample.id == sample.id))
    assert stored is not None
    assert stored.database_bytes > MIB
    assert {"tickets", "users", "size_samples"} <= set(stored.tables)
    assert all(size > 0 for size in stored.tables.values())


async def test_growth_per_day_from_history(database: Database) -> None:
    now = datetime.now(UTC)
    async with database.sessionmaker() as db, db.begin():
        assert await growth.growth_per_day(db) is None  # no samples at all
        db.add(SizeSample(sampled_at=now - timedelta(days=3), database_bytes=1 * MIB, tables={}))
        db.add(
            SizeSample(
                sampled_at=now - timedelta(hours=12),
                database_bytes=100 * MIB,
                tables={"tickets": 60 * MIB},
            )
        )
        db.add(
            SizeSample(
                sampled_at=now - timedelta(minutes=30),
                database_bytes=120 * MIB,
                tables={"tickets": 70 * MIB},
            )
        )
        db.add(SizeSample(sampled_at=now, database_bytes=106 * MIB, tables={"tickets": 64 * MIB}))
        await db.flush()
        result = await growth.growth_per_day(db)
    # Latest against the oldest sample within a day but at least an hour older: the 12 h one.
    assert result is not None
    assert result.latest_bytes == 106 * MIB
    assert result.bytes_per_day == 12 * MIB
    assert result.tables_per_day["tickets"] == 8 * MIB


async def test_growth_needs_an_hour_of_history(database: Database) -> None:
    async with database.sessionmaker() as db, db.begin():
        await growth.sample_sizes(db)
        await growth.sample_sizes(db)
        result = await growth.growth_per_day(db)
    assert result is not None and result.bytes_per_day is None


async def test_size_sampler_job_runs_once_per_period(
    database: Database, settings: Settings
) -> None:
    sampler = (Periodic("monitoring.sizes", growth.sample_every),)
    workers = [Worker(database, settings, TASKS, sampler) for _ in range(2)]
    assert [await w.schedule_due() for w in workers] == [1, 0]  # both try; one is queued
    assert sum([await w.run_pending() for w in workers]) == 1
    async with database.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(SizeSample)) == 1


def test_quantile_interpolates_like_prometheus() -> None:
    buckets = {"0.1": 50.0, "0.5": 90.0, "1.0": 100.0, "+Inf": 100.0}
    assert traffic.quantile(0.5, buckets) == 0.1
    assert abs(traffic.quantile(0.7, buckets) - 0.3) < 1e-9  # type: ignore[operator]
    assert traffic.quantile(0.99, buckets) == 0.95
    assert traffic.quantile(0.99, {"0.1": 0.0, "+Inf": 0.0}) is None
    assert traffic.quantile(0.99, {"0.1": 1.0, "+Inf": 10.0}) == 0.1  # beyond the last bucket


async def test_traffic_sample_counts_requests_since_the_previous_one(
    client: httpx.AsyncClient, database: Database
) -> None:
    async with database.sessionmaker() as db, db.begin():
        await traffic.sample_traffic(db)  # baseline: whatever earlier tests did
    for _ in range(5):
        await client.get("/api/health")
    await client.get("/api/nope")
    async with database.sessionmaker() as db, db.begin():
        sample = await traffic.sample_traffic(db)
    assert sample.requests == 6
    assert sample.errors == 0  # a 404 is not a server error
    assert sample.p50_ms is not None and sample.p99_ms is not None
    assert 0 < sample.p50_ms <= sample.p99_ms


async def test_traffic_after_a_restart_counts_from_zero(database: Database) -> None:
    totals = {"count": 10.0, "errors": 1.0, "buckets": {"0.1": 10.0, "+Inf": 10.0}}
    async with database.sessionmaker() as db, db.begin():
        db.add(
            TrafficSample(
                requests=1, errors=0, totals={"count": 500.0, "errors": 0.0, "buckets": {}}
            )
        )
        await db.flush()
        sample = await traffic.sample_traffic(db, totals)
    assert (sample.requests, sample.errors) == (10, 1)
