"""A temporary SMTP failure delays notification mail and loses none: SMTP down, then refusing
with 451, then accepting; every mail arrives exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from aiosmtpd.smtp import Envelope

from tekudasai.config import Settings
from tekudasai.db.session import Database
from tekudasai.jobs.mail import SEND_MAIL
from tekudasai.jobs.worker import Backoff, Worker
from tekudasai.tasks import TASKS
from tests.factories import Person
from tests.jobs.conftest import Inbox, jobs_named, start_smtp, wait_until
from tests.notifications.conftest import FileTicket


class RefusingInbox(Inbox):
    """Answers 451 (try again later) to the first `refuse` messages, then accepts."""

    def __init__(self, refuse: int) -> None:
        super().__init__()
        self.refuse = refuse
        self.refused = 0

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        if self.refused < self.refuse:
            self.refused += 1
            return "451 4.3.0 Temporary failure, try again later"
        return await super().handle_DATA(server, session, envelope)


async def test_mail_survives_smtp_down_then_refusing_and_arrives_once(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    smtp_port: int,
    reporter: Person,
    agent: Person,
    watcher: Person,
    file_ticket: FileTicket,
) -> None:
    tickets = [await file_ticket(reporter, summary=f"Broken {n}") for n in range(3)]
    for ticket in tickets:
        reply = {"body": f"Looking at #{ticket['id']}"}
        answer = await client.post(
            f"/api/tickets/{ticket['id']}/comments", json=reply, headers=agent.auth
        )
        assert answer.is_success
    expected = 3 * 3  # per ticket: the receipt, the watcher's new-ticket mail, the reply

    worker = Worker(database, settings, TASKS, concurrency=2, backoff=Backoff(base=0.2, cap=0.6))
    running = asyncio.create_task(worker.run())
    server = None
    inbox = RefusingInbox(refuse=4)
    try:

        async def all_failed_once() -> bool:
            jobs = await jobs_named(database, SEND_MAIL)
            return len(jobs) == expected and all(j.attempts >= 1 and j.last_error for j in jobs)

        await wait_until(all_failed_once, seconds=60)  # SMTP is down: connection refused
        assert inbox.messages == []
        server = await start_smtp(smtp_port, inbox)  # back, but refusing the first four

        async def all_done() -> bool:
            jobs = await jobs_named(database, SEND_MAIL)
            return all(j.status == "done" for j in jobs)

        await wait_until(all_done, seconds=60)
        await asyncio.sleep(1.5)  # longer than the backoff cap: nothing is sent again
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        if server is not None:
            server.close()
            await server.wait_closed()

    assert inbox.refused == 4
    delivered = Counter((tuple(e.rcpt_tos), e.original_content) for e in inbox.messages)
    assert len(inbox.messages) == expected and max(delivered.values()) == 1
    per_person = Counter(r for e in inbox.messages for r in e.rcpt_tos)
    assert per_person == {reporter.email: 6, watcher.email: 3}
    jobs = await jobs_named(database, SEND_MAIL)
    assert all(j.status == "done" for j in jobs) and max(j.attempts for j in jobs) >= 2


async def test_two_workers_racing_send_each_mail_once(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    smtp_port: int,
    reporter: Person,
    agent: Person,
    watcher: Person,
    file_ticket: FileTicket,
) -> None:
    for n in range(6):
        await file_ticket(reporter, summary=f"Race {n}")
    inbox = Inbox()
    server = await start_smtp(smtp_port, inbox)
    workers = [Worker(database, settings, TASKS, concurrency=3) for _ in range(2)]
    running = [asyncio.create_task(w.run()) for w in workers]
    try:
        await wait_until(lambda: len(inbox.messages) >= 12, seconds=60)
        await asyncio.sleep(1.0)  # anything sent twice would arrive by now
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        server.close()
        await server.wait_closed()
    assert len(inbox.messages) == 12
    assert Counter(r for e in inbox.messages for r in e.rcpt_tos) == {
        reporter.email: 6,
        watcher.email: 6,
    }
    claimed_by = {j.locked_by for j in await jobs_named(database, SEND_MAIL)}
    assert claimed_by == {None}  # all finished
