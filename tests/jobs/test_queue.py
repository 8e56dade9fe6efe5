"""The queue itself: enqueue in the caller's transaction, one run per enqueue, retries with
backoff up to a limit, failed jobs visible and retryable (API and CLI)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text

from tekudasai.config import Settings
from tekudasai.db.session import Database
from tekudasai.jobs import queue
from tekudasai.jobs.models import Job
from tekudasai.jobs.worker import Backoff, JobContext, Worker
from tests.jobs.conftest import jobs_named, run_cli, wait_until


class Recorder:
    """Real task functions whose runs the test can count."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.failures = failures

    async def __call__(self, ctx: JobContext, **args: Any) -> None:
        self.calls.append({"job": ctx.job_id, "attempt": ctx.attempt, **args})
        if len(self.calls) <= self.failures:
            raise RuntimeError(f"planned failure {len(self.calls)}")


async def count_jobs(database: Database) -> int:
    async with database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Job)) or 0)


async def test_a_job_rolled_back_with_its_transaction_never_exists(
    database: Database, settings: Settings
) -> None:
    recorder = Recorder()
    async with database.sessionmaker() as session, session.begin():
        await queue.enqueue(session, "record", {"n": 1})
        assert await session.scalar(select(func.count()).select_from(Job)) == 1
        await session.rollback()
    assert await count_jobs(database) == 0
    assert await Worker(database, settings, {"record": recorder}).run_pending() == 0
    assert recorder.calls == []


async def test_a_committed_job_runs_once_across_competing_workers(
    database: Database, settings: Settings, db_url: str
) -> None:
    recorder = Recorder()
    async with database.sessionmaker() as session, session.begin():
        for n in range(20):
            await queue.enqueue(session, "record", {"n": n})
    other = Database.connect(db_url, settings, pool_size=3)
    try:
        workers = [
            Worker(database, settings, {"record": recorder}, concurrency=3),
            Worker(other, settings, {"record": recorder}, concurrency=3),
        ]
        runs = [asyncio.create_task(w.run()) for w in workers]

        async def all_done() -> bool:
            return all(j.status == "done" for j in await jobs_named(database, "record"))

        await wait_until(all_done)
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
    finally:
        await other.dispose()
    assert sorted(call["n"] for call in recorder.calls) == list(range(20))
    assert {j.attempts for j in await jobs_named(database, "record")} == {1}


async def test_failures_back_off_then_fail_visibly_and_retry_runs_again(
    database: Database, settings: Settings
) -> None:
    recorder = Recorder(failures=3)
    worker = Worker(database, settings, {"record": recorder}, backoff=Backoff(base=0.2))
    async with database.sessionmaker() as session, session.begin():
        job = await queue.enqueue(session, "record", {"n": 7}, max_attempts=3)

    assert await worker.run_pending() == 1  # the retry is not due yet
    [first] = await jobs_named(database, "record")
    assert first.status == "queued" and first.attempts == 1
    assert first.last_error == "RuntimeError: planned failure 1"
    delays = [(first.run_after - first.started_at).total_seconds()]  # type: ignore[operator]
    await asyncio.sleep(0.25)
    assert await worker.run_pending() == 1
    [second] = await jobs_named(database, "record")
    delays.append((second.run_after - second.started_at).total_seconds())  # type: ignore[operator]
    assert 0.15 < delays[0] < 0.35 and 0.35 < delays[1] < 0.55  # 0.2 s, then 0.4 s
    await asyncio.sleep(0.45)
    assert await worker.run_pending() == 1
    [failed] = await jobs_named(database, "record")
    assert failed.status == "failed" and failed.attempts == 3 and failed.finished_at
    assert failed.last_error == "RuntimeError: planned failure 3"
    assert await worker.run_pending() == 0  # failed stays failed

    async with database.sessionmaker() as session, session.begin():
        assert [j.id for j in await queue.list_jobs(session, status="failed")] == [job.id]
        await queue.retry(session, job.id)
    assert await worker.run_pending() == 1
    [done] = await jobs_named(database, "record")
    assert done.status == "done" and done.attempts == 1 and done.last_error is None
    assert [c["attempt"] for c in recorder.calls] == [1, 2, 3, 1]


async def test_an_unknown_task_fails_at_once(database: Database, settings: Settings) -> None:
    async with database.sessionmaker() as session, session.begin():
        await queue.enqueue(session, "no.such.task")
    await Worker(database, settings, {}).run_pending()
    [job] = await jobs_named(database, "no.such.task")
    assert job.status == "failed" and job.last_error == "unknown task 'no.such.task'"


async def test_an_expired_lease_is_claimed_again(database: Database, settings: Settings) -> None:
    recorder = Recorder()
    async with database.sessionmaker() as session, session.begin():
        await queue.enqueue(session, "record")
    gone = Worker(database, settings, {"record": recorder}, lease=1.0)
    assert await gone.claim() is not None  # ... and never finishes: its process "died"
    alive = Worker(database, settings, {"record": recorder})
    assert await alive.claim() is None  # the lease still holds
    await asyncio.sleep(1.1)
    assert await alive.run_pending() == 1
    [job] = await jobs_named(database, "record")
    assert job.status == "done" and job.attempts == 2 and len(recorder.calls) == 1


async def test_the_claim_after_a_job_records_it_done_even_when_claiming_fails(
    database: Database, settings: Settings
) -> None:
    """A claim loop records a job's success in its next claim's statement; when that statement
    fails, the success is still recorded on its own, or the job would run again."""
    recorder = Recorder()
    async with database.sessionmaker() as session, session.begin():
        await queue.enqueue(session, "record")
        await queue.enqueue(session, "record")
    worker = Worker(database, settings, {"record": recorder})
    first = await worker.claim()
    assert first is not None and await worker._run(first)
    second = await worker._claim_next(first)  # recorded done with the next claim
    assert second is not None and await worker._run(second)
    assert [j.status for j in await jobs_named(database, "record")] == ["done", "running"]

    worker.lease = 1e300  # the server refuses the next lease: "interval out of range"
    assert await worker._claim_next(second) is None
    jobs = await jobs_named(database, "record")
    assert [j.status for j in jobs] == ["done", "done"] and {j.attempts for j in jobs} == {1}
    assert len(recorder.calls) == 2


async def test_jobs_cli_lists_and_retries(database: Database, settings: Settings) -> None:
    async with database.sessionmaker() as session, session.begin():
        failing = await queue.enqueue(session, "no.such.task")
        later = datetime.now(UTC) + timedelta(hours=1)
        waiting = await queue.enqueue(session, "mail.send", {"sealed": "x"}, run_after=later)
    await Worker(database, settings, {}).run_pending()

    code, out, err = await run_cli(settings, "jobs", "list", "--failed")
    assert code == 0, err
    assert "no.such.task" in out and "failed" in out and "unknown task" in out

    code, out, err = await run_cli(settings, "jobs", "retry", "999999")
    assert code == 1 and "no job with id 999999" in err and "Traceback" not in err
    code, out, err = await run_cli(settings, "jobs", "retry")
    assert code == 1 and "either a job ID or --all-failed" in err

    code, out, err = await run_cli(settings, "jobs", "retry", str(failing.id))
    assert code == 0, err
    assert f"job {failing.id} (no.such.task) queued again" in out
    code, out, err = await run_cli(settings, "jobs", "retry", str(failing.id))
    assert code == 1 and "only failed jobs can be retried" in err

    await Worker(database, settings, {}).run_pending()
    code, out, err = await run_cli(settings, "jobs", "retry", "--all-failed")
    assert code == 0 and "queued again: 1 job(s)" in out, (out, err)
    code, out, _ = await run_cli(settings, "jobs", "list")
    assert code == 0 and str(waiting.id) in out and "queued" in out


async def test_a_worker_leaves_skipped_tasks_to_others(
    database: Database, settings: Settings
) -> None:
    """`tekudasai worker` leaves traffic sampling to the web processes (it has no counters)."""
    recorder = Recorder()
    async with database.sessionmaker() as session, session.begin():
        await queue.enqueue(session, "monitoring.traffic")
        await queue.enqueue(session, "record")
    tasks = {"record": recorder, "monitoring.traffic": recorder}
    standalone = Worker(database, settings, tasks, skip=frozenset({"monitoring.traffic"}))
    assert await standalone.run_pending() == 1
    assert [j.status for j in await jobs_named(database, "monitoring.traffic")] == ["queued"]
    assert await Worker(database, settings, tasks).run_pending() == 1


async def test_a_commit_wakes_an_idle_worker_even_after_its_listener_was_cut(
    database: Database, settings: Settings
) -> None:
    recorder = Recorder()
    worker = Worker(database, settings, {"record": recorder}, poll=60.0)  # no polling help
    running = asyncio.create_task(worker.run())

    async def listening() -> bool:
        async with database.sessionmaker() as session:
            return bool(
                await session.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
                )
            )

    try:
        await wait_until(listening, seconds=10)
        await asyncio.sleep(0.3)  # the claim loops are idle now, waiting
        async with database.sessionmaker() as session, session.begin():
            await queue.enqueue(session, "record", {"n": 1})
        await wait_until(lambda: len(recorder.calls) == 1, seconds=3)

        async with database.sessionmaker() as session, session.begin():
            await session.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN%'"
                )
            )
        await asyncio.sleep(0.2)
        await wait_until(listening, seconds=10)  # listening again on a new connection
        async with database.sessionmaker() as session, session.begin():
            await queue.enqueue(session, "record", {"n": 2})
        await wait_until(lambda: len(recorder.calls) == 2, seconds=3)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
