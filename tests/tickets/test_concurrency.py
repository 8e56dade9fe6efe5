"""Concurrent changes to one ticket, each on its own pooled connection, lose nothing."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import httpx
from sqlalchemy import text

from tekudasai.db.session import Database
from tests.factories import Person
from tests.tickets.conftest import FileTicket

WRITERS = 16


async def _logs(database: Database, ticket_id: int) -> list[dict]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT action, details FROM ticket_logs WHERE ticket_id = :id ORDER BY id"),
            {"id": ticket_id},
        )
        return [{"action": r[0], **r[1]} for r in rows]


async def test_concurrent_patches_never_lose_a_write(
    client: httpx.AsyncClient,
    reporter: Person,
    agent: Person,
    admin: Person,
    file_ticket: FileTicket,
    database: Database,
) -> None:
    ticket = await file_ticket(reporter, "v-start")
    path = f"/api/tickets/{ticket['id']}"
    rng = random.Random(7)
    targets = [rng.choice(["open", "in_progress", "pending"]) for _ in range(WRITERS)]

    async def patch(i: int) -> httpx.Response:
        who = agent if i % 2 else admin
        return await client.patch(
            path, json={"summary": f"v-{i}", "status": targets[i]}, headers=who.auth
        )

    responses = await asyncio.gather(*(patch(i) for i in range(WRITERS)))
    assert [r.status_code for r in responses] == [200] * WRITERS
    # The pool really served the writers from several connections at once.
    assert database.engine.pool.checkedin() > 1

    logs = await _logs(database, ticket["id"])
    summary_logs = [log["summary"] for log in logs if "summary" in log]
    status_logs = [log["status"] for log in logs if "status" in log]
    # Every PATCH changed the summary: each one is recorded, and each record starts where the
    # previous one ended. A lost update would show two records starting from the same value.
    assert len(summary_logs) == WRITERS
    assert summary_logs[0]["from"] == "v-start"
    for before, after in itertools.pairwise(summary_logs):
        assert after["from"] == before["to"]
    assert {s["to"] for s in summary_logs} == {f"v-{i}" for i in range(WRITERS)}
    assert status_logs, "no status changed"
    assert status_logs[0]["from"] == "open"
    for before, after in itertools.pairwise(status_logs):
        assert after["from"] == before["to"]
        assert after["from"] != after["to"]

    final = (await client.get(path, headers=agent.auth)).json()["data"]
    assert final["summary"] == summary_logs[-1]["to"]
    assert final["status"] == status_logs[-1]["to"]
    # The last response to commit saw exactly the final state.
    assert final["summary"] in {r.json()["data"]["summary"] for r in responses}


async def test_concurrent_replies_reopen_a_resolved_ticket_once(
    client: httpx.AsyncClient,
    reporter: Person,
    agent: Person,
    ticket: dict[str, Any],
    database: Database,
) -> None:
    tid = ticket["id"]
    await client.patch(f"/api/tickets/{tid}", json={"status": "resolved"}, headers=agent.auth)
    replies = await asyncio.gather(
        *(
            client.post(
                f"/api/tickets/my/{tid}/comments", json={"body": f"r{i}"}, headers=reporter.auth
            )
            for i in range(8)
        )
    )
    assert all(r.status_code == 200 for r in replies)
    logs = await _logs(database, tid)
    reopen = [log for log in logs if log["action"] == "Ticket status updated from resolved to open"]
    assert len(reopen) == 1
    assert sum(log["action"] == "Comment added" for log in logs) == 8
