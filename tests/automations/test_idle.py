"""ticket.idle: once per idle period per ticket, also with two workers racing."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from tekudasai.automations import idle
from tekudasai.config import Settings
from tekudasai.db.session import Database
from tekudasai.jobs.worker import JobContext
from tekudasai.tasks import PERIODIC, TASKS
from tests.automations.conftest import File, Rule, logs, query, ticket_row


async def age(database: Database, ticket_id: int, hours: float) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE tickets SET updated_at = now() - make_interval(secs => :s) WHERE id = :id"
            ),
            {"s": hours * 3600, "id": ticket_id},
        )


async def test_idle_fires_once_per_period(database: Database, rule: Rule, file: File) -> None:
    stale = await rule(
        name="Nudge",
        event="ticket.idle",
        idleHours=2,
        position=2,
        actions=[{"type": "add_tags", "tags": ["stale"]}],
    )
    note = await rule(
        name="Note",
        event="ticket.idle",
        idleHours=2,
        position=1,
        conditions=[{"field": "status", "op": "eq", "value": "pending"}],
        actions=[{"type": "add_internal_note", "body": "Still waiting?"}],
    )
    fresh, old, waiting, done = [await file() for _ in range(4)]
    await age(database, old["id"], 3)
    async with database.engine.begin() as conn:
        await conn.execute(
            text("UPDATE tickets SET status = 'pending' WHERE id = :id"), {"id": waiting["id"]}
        )
        await conn.execute(
            text("UPDATE tickets SET status = 'resolved' WHERE id = :id"), {"id": done["id"]}
        )
    await age(database, waiting["id"], 5)
    await age(database, done["id"], 5)

    # old: Nudge; waiting: Note, then Nudge (in position order: a note leaves the ticket row
    # as it was, so the same period is still on; a rule changing the ticket would end it).
    assert await idle.run_idle(database) == 3
    assert (await ticket_row(database, old["id"]))["tags"] == ["stale"]
    assert (await ticket_row(database, fresh["id"]))["tags"] == []
    assert (await ticket_row(database, done["id"]))["tags"] == []  # resolved is not idle
    trail = await logs(database, old["id"])
    assert any(e["details"].get("automation", {}).get("id") == stale["id"] for e in trail)
    # The action changed the ticket: a new period started, not idle yet.
    assert await idle.run_idle(database) == 0
    # Idle again: fires again, once.
    await age(database, old["id"], 3)
    assert await idle.run_idle(database) == 1
    assert await idle.run_idle(database) == 0
    notes = await query(database, "SELECT ticket_id FROM ticket_comments")
    assert notes == [{"ticket_id": waiting["id"]}]  # Note: only the pending one, once
    assert note["event"] == "ticket.idle"


async def test_an_idle_run_that_does_not_change_the_ticket_fires_once(
    database: Database, rule: Rule, file: File, settings: Settings
) -> None:
    await rule(
        event="ticket.idle",
        idleHours=1,
        actions=[{"type": "add_internal_note", "body": "Nudge"}],
    )
    ticket = await file()
    await age(database, ticket["id"], 2)
    # The periodic job as the worker runs it.
    await TASKS[idle.TASK](JobContext(database, settings, job_id=0, attempt=1))
    for _ in range(2):
        await idle.run_idle(database)
    notes = await query(
        database, "SELECT body FROM ticket_comments WHERE ticket_id = :id", id=ticket["id"]
    )
    assert notes == [{"body": "Nudge"}]
    assert idle.TASK in {p.name for p in PERIODIC}


async def test_two_workers_racing_fire_once(
    database: Database, settings: Settings, rule: Rule, file: File
) -> None:
    await rule(
        event="ticket.idle",
        idleHours=1,
        actions=[{"type": "add_internal_note", "body": "Once"}],
    )
    tickets = [await file(f"Ticket {n}") for n in range(6)]
    for ticket in tickets:
        await age(database, ticket["id"], 2)
    one = Database.connect(database.url, settings, pool_size=2)
    two = Database.connect(database.url, settings, pool_size=2)
    try:
        ran = await asyncio.gather(idle.run_idle(one), idle.run_idle(two))
    finally:
        await one.dispose()
        await two.dispose()
    assert sum(ran) == 6
    notes = await query(
        database,
        "SELECT ticket_id, count(*) AS n FROM ticket_comments GROUP BY ticket_id ORDER BY 1",
    )
    assert [n["n"] for n in notes] == [1] * 6


async def test_disabled_idle_rules_never_run(database: Database, rule: Rule, file: File) -> None:
    await rule(
        event="ticket.idle",
        idleHours=1,
        enabled=False,
        actions=[{"type": "add_tags", "tags": ["never"]}],
    )
    ticket = await file()
    await age(database, ticket["id"], 2)
    assert await idle.run_idle(database) == 0
    assert (await ticket_row(database, ticket["id"]))["tags"] == []
