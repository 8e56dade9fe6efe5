"""Mail goes through the queue: it survives SMTP being down and a worker dying mid-send."""

from __future__ import annotations

import asyncio
import email
import os
import signal
import sys
from pathlib import Path

from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.jobs.mail import SEND_MAIL
from tekudasai.jobs.worker import Backoff, Worker
from tekudasai.tasks import TASKS
from tests.accounts.conftest import client_for, link_token
from tests.conftest import make_settings
from tests.factories import make_person
from tests.jobs.conftest import (
    Inbox,
    cli_env,
    free_port,
    jobs_named,
    start_silent_server,
    start_smtp,
    wait_until,
)


async def request_reset(database: Database, settings: Settings, address: str) -> None:
    async with client_for(database, settings) as client:
        response = await client.post("/api/auth/reset-password-request", json={"email": address})
        assert response.status_code == 200, response.text


async def test_a_reset_requested_while_smtp_is_down_arrives_once_it_is_back(
    database: Database, db_url: str, tmp_path: Path, cipher: PiiCipher
) -> None:
    port = free_port()
    settings = make_settings(db_url, tmp_path / "data", TK_SMTP_URL=f"smtp://127.0.0.1:{port}")
    person = await make_person(database, cipher)
    await request_reset(database, settings, person.email)
    [queued] = await jobs_named(database, SEND_MAIL)
    assert person.email not in str(queued.args)  # sealed: no address or link in clear text

    worker = Worker(database, settings, TASKS, backoff=Backoff(base=0.3, cap=1.0))
    running = asyncio.create_task(worker.run())
    inbox = Inbox()
    server = None
    try:

        async def failed_twice() -> bool:
            [job] = await jobs_named(database, SEND_MAIL)
            return job.attempts >= 2 and job.status == "queued"

        await wait_until(failed_twice)
        [job] = await jobs_named(database, SEND_MAIL)
        assert "Errno 111" in (job.last_error or "") or "refused" in (job.last_error or "")
        assert inbox.messages == []

        server = await start_smtp(port, inbox)  # SMTP is back, on the same port
        await wait_until(lambda: len(inbox.messages) == 1)

        async def marked_done() -> bool:  # the mark-done follows the send
            [job] = await jobs_named(database, SEND_MAIL)
            return job.status == "done"

        await wait_until(marked_done, seconds=5)
        await asyncio.sleep(1.5)  # longer than the backoff cap: nothing is sent twice
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        if server is not None:
            server.close()
            await server.wait_closed()
    assert len(inbox.messages) == 1
    assert inbox.messages[0].rcpt_tos == [person.email]
    message = email.message_from_bytes(inbox.messages[0].original_content or b"")
    assert message["Subject"] == "Reset your password" and link_token(message)
    [done] = await jobs_named(database, SEND_MAIL)
    assert done.status == "done" and done.attempts >= 3


async def test_a_worker_killed_mid_send_is_replaced_and_the_mail_goes_once(
    database: Database, db_url: str, tmp_path: Path, cipher: PiiCipher
) -> None:
    port = free_port()
    smtp_url = f"smtp://127.0.0.1:{port}"
    settings = make_settings(db_url, tmp_path / "data", TK_SMTP_URL=smtp_url)
    person = await make_person(database, cipher)
    await request_reset(database, settings, person.email)

    # The first worker connects to an SMTP server that never answers: the job blocks mid-send.
    silent = await start_silent_server(port)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tekudasai",
        "worker",
        "--concurrency",
        "1",
        "--lease",
        "2",
        env=cli_env(settings, TK_SMTP_URL=smtp_url),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def running_elsewhere() -> bool:
            [job] = await jobs_named(database, SEND_MAIL)
            return job.status == "running" and f":{process.pid}:" in (job.locked_by or "")

        await wait_until(running_elsewhere, seconds=60)
        await asyncio.sleep(0.5)  # well inside the send: the greeting never comes
    finally:
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
        silent.close()
        await silent.wait_closed()
    assert process.returncode == -signal.SIGKILL

    inbox = Inbox()
    server = await start_smtp(port, inbox)
    worker = Worker(database, settings, TASKS)
    try:

        async def delivered() -> bool:
            await worker.run_pending()  # claims it once the dead worker's lease has run out
            [job] = await jobs_named(database, SEND_MAIL)
            return job.status == "done"

        await wait_until(delivered, seconds=20, step=0.25)
    finally:
        server.close()
        await server.wait_closed()
    [job] = await jobs_named(database, SEND_MAIL)
    assert job.attempts == 2 and job.locked_by is None
    assert len(inbox.messages) == 1 and inbox.messages[0].rcpt_tos == [person.email]
