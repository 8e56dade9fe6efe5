"""The worker: claims due jobs with FOR UPDATE SKIP LOCKED, runs them, records the outcome.

Exactly one run per enqueue: a claim is an UPDATE of one row that other workers skip while it is
locked, and afterwards see as `running` under a lease. The lease is renewed while the job runs;
a worker that dies stops renewing it and the job is claimed again once it expires. A failure is
retried with exponential backoff until `max_attempts`, then the job stays `failed` (visible in
`tekudasai jobs list --failed`, queued again by `tekudasai jobs retry`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from tekudasai.config import Settings
from tekudasai.db.raw import RawStatement
from tekudasai.db.session import Database
from tekudasai.jobs.queue import CHANNEL, prune_finished, schedule_period

log = logging.getLogger("tekudasai.jobs")


@dataclass(frozen=True)
class JobContext:
    """What a task gets besides its arguments."""

    database: Database
    settings: Settings
    job_id: int
    attempt: int


# `async def task(ctx: JobContext, **args) -> None`; the arguments are the job's JSON `args`.
Task = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class Periodic:
    """A task run once per period cluster-wide; `every` returns seconds, or None when off."""

    name: str
    every: Callable[[Settings], float | None]


@dataclass(frozen=True)
class Backoff:
    """Delay before attempt n+1 after n failures: base * 2**(n-1), at most `cap` seconds."""

    base: float = 10.0
    cap: float = 3600.0

    def delay(self, failures: int) -> float:
        return min(self.cap, self.base * 2 ** max(0, failures - 1))


@dataclass(frozen=True)
class Claimed:
    id: int
    name: str
    args: dict[str, Any]
    attempts: int
    max_attempts: int


# One statement, one round trip outside any transaction: the job this claim loop just ran
# (if any) is recorded done, and the next due job is claimed. The finished row is still
# `running` under this worker's lease in the statement's snapshot, so the claim cannot pick it.
_FINISH_AND_CLAIM = RawStatement(
    text(
        """
        WITH finished AS (
            UPDATE jobs SET status = 'done', finished_at = now(), locked_by = NULL,
                   locked_until = NULL, last_error = NULL
            WHERE id = :finished AND locked_by = :me AND status = 'running'
        )
        UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = :me,
               locked_until = now() + make_interval(secs => :lease), started_at = now()
        WHERE id = (
            SELECT id FROM jobs
            WHERE ((status = 'queued' AND run_after <= now())
                   OR (status = 'running' AND locked_until < now()))
              AND NOT (name = ANY(:skip))
            ORDER BY run_after, id
            LIMIT 1
            FOR UPDATE SKIP LOCKED
        )
        RETURNING id, name, args::text AS args, attempts, max_attempts
        """
    )
)
_RENEW = text(
    "UPDATE jobs SET locked_until = now() + make_interval(secs => :lease) "
    "WHERE id = :id AND locked_by = :me AND status = 'running'"
)
_DONE = text(
    "UPDATE jobs SET status = 'done', finished_at = now(), locked_by = NULL, "
    "locked_until = NULL, last_error = NULL "
    "WHERE id = :id AND locked_by = :me AND status = 'running'"
)
_RETRY = text(
    "UPDATE jobs SET status = 'queued', run_after = now() + make_interval(secs => :delay), "
    "locked_by = NULL, locked_until = NULL, last_error = :error "
    "WHERE id = :id AND locked_by = :me AND status = 'running'"
)
_FAIL = text(
    "UPDATE jobs SET status = 'failed', finished_at = now(), locked_by = NULL, "
    "locked_until = NULL, last_error = :error "
    "WHERE id = :id AND locked_by = :me AND status = 'running'"
)
# Stopping mid-job (shutdown): hand the job back at once, not after the lease, and do not
# count the interrupted attempt.
_RELEASE = text(
    "UPDATE jobs SET status = 'queued', attempts = greatest(attempts - 1, 0), "
    "locked_by = NULL, locked_until = NULL "
    "WHERE id = :id AND locked_by = :me AND status = 'running'"
)
MAX_ERROR_CHARS = 4000
RELISTEN_AFTER_S = 1.0
POLL_WITHOUT_LISTEN_S = 1.0
FINISH_RETRY_S = 0.5


@dataclass
class Worker:
    """Runs the queue in this process: `concurrency` claim loops plus the periodic scheduler."""

    database: Database
    settings: Settings
    tasks: Mapping[str, Task]
    periodic: Sequence[Periodic] = ()
    concurrency: int = 2
    lease: float = 60.0
    poll: float = 5.0  # fallback wake-up: delayed retries and expired leases send no NOTIFY
    backoff: Backoff = field(default_factory=Backoff)
    # Task names this worker neither schedules nor claims (another process runs them).
    skip: frozenset[str] = frozenset()
    me: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )

    def __post_init__(self) -> None:
        self._wake = asyncio.Event()

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled. A database outage only delays jobs: every loop retries."""
        log.info("job worker %s started (%d at a time)", self.me, self.concurrency)
        loops = [asyncio.create_task(self._claim_loop()) for _ in range(self.concurrency)]
        loops.append(asyncio.create_task(self._listen_loop()))
        if self.periodic:
            loops.append(asyncio.create_task(self._schedule_loop()))
        try:
            await asyncio.gather(*loops)
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def run_pending(self) -> int:
        """Run every job that is due now, one after another; returns how many ran."""
        ran = 0
        finished: Claimed | None = None
        while (job := await self.claim(finished=finished)) is not None:
            finished = job if await self._run(job) else None
            ran += 1
        return ran

    async def _claim_loop(self) -> None:
        # A job this loop ran successfully: the next claim's statement records it done.
        finished: Claimed | None = None
        while True:
            job = await self._claim_next(finished)
            finished = None
            if job is not None:
                try:
                    if await self._run(job):
                        finished = job
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # One job's trouble must not end this loop (the queue would stop for
                    # good in this process): the job's lease expires and it runs again.
                    log.exception("running job %s #%d failed", job.name, job.id)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)

    async def _claim_next(self, finished: Claimed | None) -> Claimed | None:
        """The next due job, or None (none is due, or claiming failed); `finished` is
        recorded done in any case, or else it would run again once its lease ran out."""
        try:
            return await self.claim(finished=finished)
        except asyncio.CancelledError:
            if finished is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._finish(_DONE, finished, retry=False))
            raise
        except Exception:
            log.exception("claiming a job failed")
        if finished is not None:
            try:
                await self._finish(_DONE, finished)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recording job %s #%d as done failed", finished.name, finished.id)
        return None

    async def _schedule_loop(self) -> None:
        while True:
            try:
                await self.schedule_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduling periodic jobs failed")
            await asyncio.sleep(self._schedule_every())

    def _schedule_every(self) -> float:
        periods = [p for p in (job.every(self.settings) for job in self.periodic) if p]
        return max(0.2, min([self.poll, *(p / 4 for p in periods)]))

    async def schedule_due(self) -> int:
        """Insert this period's run of every periodic job that has none yet."""
        added = 0
        async with self.database.sessionmaker() as session, session.begin():
            for job in self.periodic:
                if job.name in self.skip:
                    continue
                every = job.every(self.settings)
                if every is not None and await schedule_period(session, job.name, every):
                    added += 1
            if added:
                await session.execute(text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})
        return added

    async def _listen_loop(self) -> None:
        """LISTEN on a pooled connection of our own, so a commit's NOTIFY wakes a claim loop;
        while it is down (database restart) the claim loops still poll."""

        def wake(*_: object) -> None:
            self._wake.set()

        engine = self.database.listen_engine()
        if engine is None:
            # PgBouncer in transaction mode and no TK_DB_DIRECT_URL: LISTEN cannot work
            # there, so new jobs are found by polling, more often than the fallback.
            log.info(
                "job worker %s polls every %.1fs (no LISTEN behind PgBouncer)",
                self.me,
                POLL_WITHOUT_LISTEN_S,
            )
            self.poll = min(self.poll, POLL_WITHOUT_LISTEN_S)
            return
        while True:
            try:
                async with engine.connect() as conn:
                    raw = (await conn.get_raw_connection()).driver_connection
                    assert raw is not None  # a checked-out connection has its driver's
                    lost = asyncio.Event()
                    closed = functools.partial(_set_event, lost)
                    raw.add_termination_listener(closed)
                    await raw.add_listener(CHANNEL, wake)
                    try:
                        await lost.wait()
                    finally:
                        raw.remove_termination_listener(closed)
                        with contextlib.suppress(Exception):
                            await raw.remove_listener(CHANNEL, wake)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listening for new jobs failed (polling meanwhile): %s", exc)
            await asyncio.sleep(RELISTEN_AFTER_S)

    # -- one job -----------------------------------------------------------------------------

    async def claim(self, *, finished: Claimed | None = None) -> Claimed | None:
        """Claim the next due job, if any; `finished`, a job this worker has just run
        successfully, is recorded done by the same statement."""
        async with self.database.autocommit() as session:
            row = await _FINISH_AND_CLAIM.fetchrow(
                session,
                me=self.me,
                lease=float(self.lease),
                skip=sorted(self.skip),
                finished=finished.id if finished is not None else None,
            )
        if row is None:
            return None
        return Claimed(
            id=row["id"],
            name=row["name"],
            args=dict(json.loads(row["args"]) or {}),
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
        )

    async def _run(self, job: Claimed) -> bool:
        """Run one claimed job and record a failure; True when it succeeded (its success is
        for the caller to record)."""
        task = self.tasks.get(job.name)
        if task is None:
            await self._finish(_FAIL, job, error=f"unknown task {job.name!r}")
            return False
        if job.attempts > job.max_attempts:  # its workers died while running it, every time
            await self._finish(_FAIL, job, error="no attempts left (the lease expired)")
            return False
        ctx = JobContext(self.database, self.settings, job.id, job.attempts)
        renewer = asyncio.create_task(self._renew(job))
        try:
            await task(ctx, **job.args)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._finish(_RELEASE, job, retry=False))
            raise
        except Exception as exc:
            error = "".join(traceback.format_exception_only(exc)).strip()[:MAX_ERROR_CHARS]
            if job.attempts < job.max_attempts:
                delay = self.backoff.delay(job.attempts)
                log.warning(
                    "job %s #%d failed (attempt %d of %d), again in %.0fs: %s",
                    job.name, job.id, job.attempts, job.max_attempts, delay, error,
                )  # fmt: skip
                await self._finish(_RETRY, job, error=error, delay=delay)
            else:
                log.error("job %s #%d failed for good: %s", job.name, job.id, error)
                await self._finish(_FAIL, job, error=error)
            return False
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        return True

    async def _renew(self, job: Claimed) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                async with self.database.engine.begin() as conn:
                    await conn.execute(_RENEW, {"id": job.id, "me": self.me, "lease": self.lease})
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("renewing the lease of job #%d failed", job.id)

    async def _finish(
        self, statement: Any, job: Claimed, *, retry: bool = True, **params: Any
    ) -> None:
        """Record the outcome, retrying through a short database or pooler outage: a job
        that ran during one must not stay 'running' until its lease expires (and run again).
        No retrying when shutting down (`retry=False`): the lease covers that."""
        deadline = time.monotonic() + (self.lease / 2 if retry else 0)
        while True:
            try:
                async with self.database.engine.begin() as conn:
                    await conn.execute(statement, {"id": job.id, "me": self.me, **params})
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("recording job %s #%d failed (retrying): %s", job.name, job.id, exc)
                await asyncio.sleep(FINISH_RETRY_S)


def _set_event(event: asyncio.Event, *_: object) -> None:
    event.set()


async def prune_task(ctx: JobContext) -> None:
    """Periodic: forget done jobs after a week."""
    async with ctx.database.sessionmaker() as session, session.begin():
        removed = await prune_finished(session)
    if removed:
        log.info("pruned %d finished job(s)", removed)
