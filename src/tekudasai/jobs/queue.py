"""Enqueue jobs in the caller's transaction, and the administration of the queue.

`enqueue` only adds a row (and a NOTIFY) to the caller's session: the job exists exactly when
the change that caused it commits, and PostgreSQL delivers the NOTIFY on that commit too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.core.errors import AppError, NotFound
from tekudasai.jobs.models import Job

CHANNEL = "tk_jobs"
DEFAULT_MAX_ATTEMPTS = 5
# A periodic run that keeps failing gives way to the next period's run.
PERIODIC_MAX_ATTEMPTS = 3
KEEP_FINISHED = timedelta(days=7)


class JobNotFound(NotFound):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job with id {job_id}")


class JobNotRetryable(AppError):
    status_code = 409
    code = "CONFLICT"

    def __init__(self, job_id: int, status: str) -> None:
        super().__init__(f"job {job_id} is {status}; only failed jobs can be retried")


async def enqueue(
    session: AsyncSession,
    name: str,
    args: dict[str, Any] | None = None,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    run_after: datetime | None = None,
) -> Job:
    """Add a job to the caller's transaction (flushes, never commits).

    Rolled back with the transaction, the job never existed.
    """
    job = Job(name=name, args=args or {}, max_attempts=max_attempts)
    if run_after is not None:
        job.run_after = run_after
    session.add(job)
    await session.flush()
    # Delivered on COMMIT only, so idle workers wake exactly when the job becomes visible.
    await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
    return job


async def schedule_period(session: AsyncSession, name: str, every_seconds: float) -> bool:
    """Insert the run of `name` for the current period (by the database clock) unless it exists.

    Every worker on every node calls this; the unique (name, period_key) makes one of them win.
    """
    result = await session.execute(
        text(
            "INSERT INTO jobs (name, period_key, max_attempts) "
            "SELECT :name, to_char(to_timestamp(floor(extract(epoch FROM now()) / :every) "
            "* :every) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), :attempts "
            "ON CONFLICT (name, period_key) DO NOTHING RETURNING id"
        ),
        {"name": name, "every": float(every_seconds), "attempts": PERIODIC_MAX_ATTEMPTS},
    )
    return result.first() is not None


async def list_jobs(
    session: AsyncSession, *, status: str | None = None, limit: int = 50
) -> Sequence[Job]:
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Job.status == status)
    return (await session.scalars(query)).all()


async def retry(session: AsyncSession, job_id: int) -> Job:
    """Queue a failed job again with a fresh set of attempts."""
    job = await session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise JobNotFound(job_id)
    if job.status != "failed":
        raise JobNotRetryable(job_id, job.status)
    await _requeue(session, [job_id])
    await session.refresh(job)
    return job


async def retry_all_failed(session: AsyncSession) -> list[int]:
    ids = list(
        await session.scalars(select(Job.id).where(Job.status == "failed").with_for_update())
    )
    await _requeue(session, ids)
    return ids


async def _requeue(session: AsyncSession, ids: list[int]) -> None:
    if not ids:
        return
    await session.execute(
        update(Job)
        .where(Job.id.in_(ids))
        .values(
            status="queued",
            attempts=0,
            run_after=text("now()"),
            locked_by=None,
            locked_until=None,
            finished_at=None,
        )
    )
    await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


async def prune_finished(session: AsyncSession, older_than: timedelta = KEEP_FINISHED) -> int:
    """Delete done jobs past their keep time (failed ones stay until someone looks)."""
    result = await session.execute(
        delete(Job).where(Job.status == "done", Job.finished_at < func.now() - older_than)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
