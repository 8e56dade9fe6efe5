"""Ticket events: recorded with the change that causes them, dispatched to handlers once."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.config import Settings
from tekudasai.db.embedded import EmbeddedPostgres
from tekudasai.db.session import Database
from tekudasai.jobs.worker import JobContext
from tekudasai.tickets import events
from tests.factories import Person
from tests.tickets.conftest import FileTicket


async def recorded_events(database: Database) -> list[dict[str, Any]]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT e.id, e.ticket_id, e.type, e.actor_id, e.internal, e.data, "
                "(SELECT count(*) FROM jobs j WHERE j.name = 'tickets.dispatch_event' "
                " AND (j.args->>'eventId')::bigint = e.id) AS jobs "
                "FROM ticket_events e ORDER BY e.id"
            )
        )
        return [dict(r._mapping) for r in rows]


async def test_each_change_records_one_event_and_one_job(
    client: httpx.AsyncClient,
    database: Database,
    reporter: Person,
    agent: Person,
    ticket: dict[str, Any],
) -> None:
    tid = ticket["id"]
    path = f"/api/tickets/{tid}"
    assert (await client.patch(path, json={"status": "in_progress"}, headers=agent.auth)).is_success
    assert (await client.post(f"{path}/assign-toggle", headers=agent.auth)).is_success
    note = {"body": "Check the toner", "internal": True}
    assert (await client.post(f"{path}/comments", json=note, headers=agent.auth)).is_success
    assert (await client.patch(path, json={"status": "resolved"}, headers=agent.auth)).is_success
    reply = {"body": "Still broken"}
    mine = f"/api/tickets/my/{tid}/comments"
    assert (await client.post(mine, json=reply, headers=reporter.auth)).is_success

    seen = await recorded_events(database)
    assert [(e["type"], e["actor_id"], e["internal"]) for e in seen] == [
        ("ticket.created", reporter.user.id, False),
        ("ticket.status_changed", agent.user.id, False),
        ("ticket.assigned", agent.user.id, False),
        ("comment.created", agent.user.id, True),
        ("ticket.status_changed", agent.user.id, False),
        ("comment.created", reporter.user.id, False),
        ("ticket.status_changed", reporter.user.id, False),
    ]
    assert all(e["ticket_id"] == tid and e["jobs"] == 1 for e in seen)
    assert seen[1]["data"] == {"changes": {"status": {"from": "open", "to": "in_progress"}}}
    assert seen[2]["data"]["changes"]["assigneeId"] == {"from": None, "to": agent.user.id}
    assert seen[5]["data"]["byReporter"] is True
    assert seen[6]["data"]["changes"]["status"] == {"from": "resolved", "to": "open"}


async def test_a_refused_change_records_nothing(
    client: httpx.AsyncClient, database: Database, reporter: Person, agent: Person, form: Any
) -> None:
    bad = {"formId": form.id, "summary": "x", "formResponse": {"category": "nope"}}
    assert (
        await client.post("/api/tickets/my", json=bad, headers=reporter.auth)
    ).status_code == 400
    assert await recorded_events(database) == []


async def test_the_live_channel_hears_the_event_on_commit(
    client: httpx.AsyncClient,
    pg_server: EmbeddedPostgres,
    db_url: str,
    database: Database,
    reporter: Person,
    form: Any,
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(pg_server.url(make_url(db_url).database or ""))
    try:
        await conn.add_listener(events.LIVE_CHANNEL, lambda *a: heard.put_nowait(a[3]))
        body = {"formId": form.id, "summary": "Live", "formResponse": GOOD}
        assert (await client.post("/api/tickets/my", json=body, headers=reporter.auth)).is_success
        payload = await asyncio.wait_for(heard.get(), 5)
    finally:
        await conn.close()
    assert int(payload) == (await recorded_events(database))[0]["id"]


GOOD = {"category": "hardware", "description": "The screen flickers"}


async def test_dispatch_runs_each_handler_once_per_event(
    database: Database, settings: Settings, file_ticket: FileTicket, reporter: Person
) -> None:
    await file_ticket(reporter)
    (event_id,) = [e["id"] for e in await recorded_events(database)]
    seen: list[tuple[int, str]] = []

    async def handler(session: AsyncSession, event: events.TicketEvent, ctx: JobContext) -> None:
        seen.append((event.id, event.type.value))

    ctx = JobContext(database, settings, job_id=0, attempt=1)
    assert await events.dispatch(ctx, event_id, [handler]) is True
    assert await events.dispatch(ctx, event_id, [handler]) is False  # the job ran again
    assert seen == [(event_id, "ticket.created")]


async def test_a_failing_handler_leaves_the_event_for_the_retry(
    database: Database, settings: Settings, file_ticket: FileTicket, reporter: Person
) -> None:
    await file_ticket(reporter)
    (event_id,) = [e["id"] for e in await recorded_events(database)]
    calls = 0

    async def flaky(session: AsyncSession, event: events.TicketEvent, ctx: JobContext) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("SMTP is down")

    ctx = JobContext(database, settings, job_id=0, attempt=1)
    try:
        await events.dispatch(ctx, event_id, [flaky])
    except RuntimeError:
        pass
    else:
        raise AssertionError("the handler's error must reach the queue, which retries")
    assert await events.dispatch(ctx, event_id, [flaky]) is True
    assert calls == 2
