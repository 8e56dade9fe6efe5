"""Periodic jobs: several runners against one database run each period exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select

from tekudasai.config import Settings
from tekudasai.db.session import Database
from tekudasai.jobs.worker import Periodic, Worker
from tekudasai.monitoring.models import SizeSample
from tekudasai.tasks import PERIODIC, TASKS
from tests.jobs.conftest import jobs_named


async def test_two_runners_run_each_period_once(
    database: Database, settings: Settings, db_url: str
) -> None:
    every_second = (Periodic("monitoring.sizes", lambda _settings: 1.0),)
    other = Database.connect(db_url, settings, pool_size=3)
    runners = [
        Worker(db, settings, TASKS, every_second, concurrency=2, poll=0.2)
        for db in (database, other, database)
    ]
    try:
        runs = [asyncio.create_task(runner.run()) for runner in runners]
        await asyncio.sleep(4.2)
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
    finally:
        await other.dispose()
    jobs = [job for job in await jobs_named(database, "monitoring.sizes") if job.status == "done"]
    periods = Counter(job.period_key for job in jobs)
    assert 3 <= len(periods) <= 6 and set(periods.values()) == {1}
    assert {job.attempts for job in jobs} == {1}
    async with database.sessionmaker() as session:
        samples = await session.scalar(select(func.count()).select_from(SizeSample))
    assert samples == len(jobs)  # one run, one sample, per period


async def test_every_periodic_job_has_a_task() -> None:
    assert {p.name for p in PERIODIC} <= set(TASKS)
