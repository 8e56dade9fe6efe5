"""Who is told: each event of the contract's table, through the API, the real queue and a real
SMTP server; never the actor, never twice."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from tekudasai.db.session import Database
from tekudasai.jobs.worker import Worker
from tests.factories import Person
from tests.notifications.conftest import FileTicket, Mailbox, feed_of, rows


async def told(database: Database) -> list[tuple[str, str]]:
    """(user id, kind) of every feed row, in order."""
    found = await rows(database, "SELECT user_id, kind FROM notifications ORDER BY id")
    return [(r["user_id"], r["kind"]) for r in found]


async def test_a_new_ticket_tells_the_reporter_and_the_agents_who_opted_in(
    client: httpx.AsyncClient,
    database: Database,
    worker: Worker,
    mailbox: Mailbox,
    reporter: Person,
    agent: Person,
    watcher: Person,
    file_ticket: FileTicket,
) -> None:
    ticket = await file_ticket(reporter)
    await worker.run_pending()
    assert await told(database) == [
        (reporter.user.id, "ticketCreated"),
        (watcher.user.id, "newTicketForAgents"),
    ]  # `agent` did not opt in
    assert sorted(mailbox.recipients()) == sorted([reporter.email, watcher.email])
    [receipt] = mailbox.to(reporter.email)
    assert receipt["Subject"] == f"[TK #{ticket['id']}] Printer is on fire"
    [item] = await feed_of(client, reporter)
    assert item["ticketId"] == ticket["id"] and item["event"] == "ticketCreated"
    assert item["readAt"] is None and f"#{ticket['id']}" in item["text"]


async def test_an_agent_who_opted_in_and_files_a_ticket_gets_the_receipt_only_once(
    database: Database,
    worker: Worker,
    mailbox: Mailbox,
    watcher: Person,
    file_ticket: FileTicket,
) -> None:
    """The watcher is both the reporter (named) and an agent who opted in: one row, one mail."""
    await file_ticket(watcher)
    await worker.run_pending()
    assert await told(database) == [(watcher.user.id, "ticketCreated")]
    assert mailbox.recipients() == [watcher.email]


async def test_each_event_reaches_the_people_in_the_table_and_never_the_actor(
    client: httpx.AsyncClient,
    database: Database,
    worker: Worker,
    mailbox: Mailbox,
    reporter: Person,
    agent: Person,
    other_agent: Person,
    file_ticket: FileTicket,
) -> None:
    ticket = await file_ticket(reporter)
    tid = ticket["id"]
    path = f"/api/tickets/{tid}"
    await worker.run_pending()
    start = len(await told(database))

    async def act(method: str, url: str, who: Person, body: dict[str, Any] | None = None) -> None:
        response = await client.request(method, url, json=body, headers=who.auth)
        assert response.is_success, response.text

    # Assigning oneself tells nobody; assigning someone else tells them.
    await act("POST", f"{path}/assign-toggle", agent)
    await act("POST", f"{path}/assign", agent, {"assigneeId": other_agent.user.id})
    await act("POST", f"{path}/assign", other_agent, {"assigneeId": agent.user.id})
    # in_progress is not told; pending is.
    await act("PATCH", path, agent, {"status": "in_progress"})
    await act("PATCH", path, agent, {"status": "pending"})
    # An internal note by the assignee tells nobody; by another agent, the assignee.
    await act("POST", f"{path}/comments", agent, {"body": "note one", "internal": True})
    await act("POST", f"{path}/comments", other_agent, {"body": "note two", "internal": True})
    # A public reply by an agent tells the reporter; the customer's reply tells the assignee.
    await act("POST", f"{path}/comments", other_agent, {"body": "Try turning it off"})
    await act("POST", f"/api/tickets/my/{tid}/comments", reporter, {"body": "Still on fire"})
    # An agent's edit tells nobody.
    await act("PATCH", path, agent, {"summary": "Printer is on fire (3rd floor)"})
    await worker.run_pending()

    assert (await told(database))[start:] == [
        (other_agent.user.id, "assigned"),
        (agent.user.id, "assigned"),
        (reporter.user.id, "statusChanged"),
        (agent.user.id, "internalNote"),
        (reporter.user.id, "agentReply"),
        (agent.user.id, "customerReply"),
    ]
    reporter_mails = mailbox.to(reporter.email)
    assert len(reporter_mails) == 3  # receipt, pending, the reply
    assert len(mailbox.to(agent.email)) == 3 and len(mailbox.to(other_agent.email)) == 1
    # Every dispatch and mail job ran once and is done: a second pass sends nothing more.
    before = len(mailbox.inbox.messages)
    assert await worker.run_pending() == 0 and len(mailbox.inbox.messages) == before


async def test_a_customer_reply_on_an_unassigned_ticket_goes_to_agents_who_opted_in(
    client: httpx.AsyncClient,
    database: Database,
    worker: Worker,
    mailbox: Mailbox,
    reporter: Person,
    agent: Person,
    watcher: Person,
    file_ticket: FileTicket,
) -> None:
    ticket = await file_ticket(reporter)
    await worker.run_pending()
    start = len(await told(database))
    mine = f"/api/tickets/my/{ticket['id']}"
    reply = await client.post(f"{mine}/comments", json={"body": "Hello?"}, headers=reporter.auth)
    assert reply.is_success
    await worker.run_pending()
    assert (await told(database))[start:] == [(watcher.user.id, "customerReply")]


async def test_the_reporter_never_hears_of_an_internal_note_and_a_demoted_assignee_neither(
    client: httpx.AsyncClient,
    database: Database,
    worker: Worker,
    mailbox: Mailbox,
    reporter: Person,
    agent: Person,
    other_agent: Person,
    file_ticket: FileTicket,
) -> None:
    ticket = await file_ticket(reporter)
    path = f"/api/tickets/{ticket['id']}"
    assigned = await client.post(
        f"{path}/assign", json={"assigneeId": other_agent.user.id}, headers=agent.auth
    )
    assert assigned.is_success
    await worker.run_pending()
    async with database.engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET role = 'user' WHERE id = :id"), {"id": other_agent.user.id}
        )
    secret = {"body": "The customer's password is hunter2", "internal": True}
    assert (await client.post(f"{path}/comments", json=secret, headers=agent.auth)).is_success
    await worker.run_pending()
    kinds = [k for _, k in await told(database)]
    assert "internalNote" not in kinds
    assert all("hunter2" not in m.as_string() for m in mailbox.messages)


async def test_an_unreadable_address_skips_that_mail_only(
    client: httpx.AsyncClient,
    database: Database,
    worker: Worker,
    mailbox: Mailbox,
    reporter: Person,
    watcher: Person,
    file_ticket: FileTicket,
) -> None:
    await file_ticket(reporter)
    async with database.engine.begin() as conn:  # as if encrypted under a key that is gone
        await conn.execute(
            text("UPDATE users SET email_ciphertext = :junk WHERE id = :id"),
            {"junk": b"\x00\x01" + b"\x07" * 40, "id": reporter.user.id},
        )
    await worker.run_pending()
    assert mailbox.recipients() == [watcher.email]
    assert [k for _, k in await told(database)] == ["ticketCreated", "newTicketForAgents"]
    [job] = await rows(database, "SELECT status FROM jobs WHERE name = 'tickets.dispatch_event'")
    assert job["status"] == "done"
