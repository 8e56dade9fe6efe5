"""Periodic jobs that run inside `serve` (backups, size sampling, alerts).

Every worker process starts the same jobs; a PostgreSQL advisory lock makes sure exactly one
process does each run, so several workers never back up or sample twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy import text

from tekudasai.db.session import Database

log = logging.getLogger(__name__)

JobFn = Callable[[FastAPI], Awaitable[None]]


@dataclass(frozen=True)
class Job:
    name: str
    interval: Callable[[FastAPI], float | None]  # seconds between runs; None: job disabled
    run: JobFn
    first_delay: float = 5.0


JOBS: list[Job] = []


def register(job: Job) -> None:
    """Domains register their periodic jobs at import time."""
    if all(existing.name != job.name for existing in JOBS):
        JOBS.append(job)


def lock_key(name: str) -> int:
    return zlib.crc32(f"tekudasai:{name}".encode())


async def run_exclusively(database: Database, name: str, fn: Callable[[], Awaitable[None]]) -> bool:
    """Run fn only if no other process holds the job's advisory lock; False when skipped."""
    async with database.engine.connect() as conn:
        got = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(name)})
        await conn.commit()
        if not got:
            return False
        try:
            await fn()
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(name)})
            await conn.commit()
    return True


async def _loop(app: FastAPI, job: Job) -> None:
    await asyncio.sleep(job.first_delay)
    while True:
        interval = job.interval(app)
        if interval is None:
            return
        try:
            await run_exclusively(app.state.database, job.name, lambda: job.run(app))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background job %s failed", job.name)
        await asyncio.sleep(interval)


def start(app: FastAPI) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(_loop(app, job), name=f"tk-job-{job.name}") for job in JOBS]


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
