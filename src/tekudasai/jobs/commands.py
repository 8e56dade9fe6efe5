"""`tekudasai jobs list|retry`: look at the queue and queue failed jobs again."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tekudasai.db.cli_support import (
    command_database,
    command_session,
    console,
    fail,
    friendly_errors,
    run,
)
from tekudasai.jobs import queue

jobs_app = typer.Typer(help="The background job queue.", no_args_is_help=True)


@jobs_app.command("list")
@friendly_errors
def list_command(
    failed: Annotated[bool, typer.Option("--failed", help="only failed jobs")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
) -> None:
    """The newest jobs (id, task, status, attempts, next run, last error)."""

    async def go() -> None:
        async with command_database() as database, command_session(database) as session:
            jobs = await queue.list_jobs(session, status="failed" if failed else None, limit=limit)
        if not jobs:
            console.print("no failed jobs" if failed else "no jobs")
            return
        table = Table("id", "task", "status", "attempts", "run after", "last error")
        for job in jobs:
            error = (job.last_error or "").splitlines()[-1:] or [""]
            table.add_row(
                str(job.id),
                job.name + (f" [{job.period_key}]" if job.period_key else ""),
                job.status,
                f"{job.attempts}/{job.max_attempts}",
                job.run_after.isoformat(timespec="seconds"),
                error[0][:120],
            )
        console.print(table)

    run(go())


@jobs_app.command("retry")
@friendly_errors
def retry_command(
    job_id: Annotated[int | None, typer.Argument(help="id of a failed job")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="every failed job")] = False,
) -> None:
    """Queue a failed job (or every failed job) again, with a fresh set of attempts."""
    if (job_id is None) == (not all_failed):
        fail("give either a job ID or --all-failed")

    async def go() -> None:
        async with command_database() as database, command_session(database) as session:
            if all_failed:
                ids = await queue.retry_all_failed(session)
                console.print(f"queued again: {len(ids)} job(s)")
            else:
                assert job_id is not None
                job = await queue.retry(session, job_id)
                console.print(f"job {job.id} ({job.name}) queued again")

    run(go())
