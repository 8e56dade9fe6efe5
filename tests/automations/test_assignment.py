"""Team strategies: round robin and least open, safe when tickets arrive at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import text

from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.tickets import service as tickets_service
from tests.automations.conftest import File, Rule, make_team, query, ticket_row
from tests.factories import Person, make_person


async def test_round_robin_spreads_twenty_concurrent_tickets_evenly(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    cipher: PiiCipher,
    admin: Person,
    customer: Person,
    rule: Rule,
    form_id: str,
) -> None:
    members = [await make_person(database, cipher, role="agent") for _ in range(4)]
    team = await make_team(client, admin, "Round", members)
    await rule(
        actions=[
            {"type": "set_team", "teamId": team},
            {"type": "assign", "strategy": "round_robin"},
        ]
    )
    # Twenty creations at once, each in its own transaction on its own connection.
    many = Database.connect(database.url, settings, pool_size=20)
    try:
        start = asyncio.Event()

        async def create(n: int) -> int:
            async with many.sessionmaker() as db, db.begin():
                await start.wait()
                ticket = await tickets_service.create_ticket(
                    db,
                    reporter_id=customer.user.id,
                    form_id=form_id,
                    summary=f"Ticket {n}",
                    form_response={"category": "hardware", "description": "x"},
                )
                return ticket.id

        async def opened(n: int) -> Any:
            # Hold a connection each before anyone starts.
            return asyncio.create_task(create(n))

        tasks = [await opened(n) for n in range(20)]
        await asyncio.sleep(0.2)
        start.set()
        ids = await asyncio.gather(*tasks)
    finally:
        await many.dispose()
    rows = await query(
        database, "SELECT assignee_id FROM tickets WHERE id = ANY(:ids)", ids=list(ids)
    )
    counts = Counter(row["assignee_id"] for row in rows)
    assert counts == {m.user.id: 5 for m in members}
    stamps = await query(
        database, "SELECT last_assigned_at FROM team_members WHERE team_id = :t", t=team
    )
    assert all(s["last_assigned_at"] is not None for s in stamps)


async def test_round_robin_never_assigned_first_then_oldest(
    client: httpx.AsyncClient,
    database: Database,
    cipher: PiiCipher,
    admin: Person,
    rule: Rule,
    file: File,
) -> None:
    a, b = [await make_person(database, cipher, role="agent") for _ in range(2)]
    team = await make_team(client, admin, "Pair", [a, b])
    async with database.engine.begin() as conn:
        await conn.execute(
            text("UPDATE team_members SET last_assigned_at = now() WHERE user_id = :a"),
            {"a": a.user.id},
        )
    await rule(
        actions=[
            {"type": "set_team", "teamId": team},
            {"type": "assign", "strategy": "round_robin"},
        ]
    )
    got = [(await ticket_row(database, (await file())["id"]))["assignee_id"] for _ in range(3)]
    assert got == [b.user.id, a.user.id, b.user.id]


async def test_least_open_picks_the_least_loaded(
    client: httpx.AsyncClient,
    database: Database,
    cipher: PiiCipher,
    admin: Person,
    rule: Rule,
    file: File,
) -> None:
    busy, free, medium = [await make_person(database, cipher, role="agent") for _ in range(3)]
    team = await make_team(client, admin, "Load", [busy, free, medium])
    # Load: busy 2 open, medium 1 open; free has only resolved and closed ones (not counted).
    for assignee, status in [
        (busy, "open"),
        (busy, "in_progress"),
        (medium, "pending"),
        (free, "resolved"),
        (free, "closed"),
        (free, "closed"),
    ]:
        ticket = await file()
        async with database.engine.begin() as conn:
            await conn.execute(
                text("UPDATE tickets SET assignee_id = :u, status = :s WHERE id = :id"),
                {"u": assignee.user.id, "s": status, "id": ticket["id"]},
            )
    # Assigned long ago, but the least loaded wins over the oldest stamp.
    async with database.engine.begin() as conn:
        await conn.execute(
            text("UPDATE team_members SET last_assigned_at = now() WHERE user_id = :u"),
            {"u": free.user.id},
        )
    await rule(
        actions=[{"type": "set_team", "teamId": team}, {"type": "assign", "strategy": "least_open"}]
    )
    first = await ticket_row(database, (await file())["id"])
    assert first["assignee_id"] == free.user.id
    # free 1 and medium 1 now tie: the one assigned longest ago (medium, never) gets the next.
    second = await ticket_row(database, (await file())["id"])
    assert second["assignee_id"] == medium.user.id
    third = await ticket_row(database, (await file())["id"])
    assert third["assignee_id"] == free.user.id  # free 1 (stamped earlier), medium 2, busy 2


async def test_strategy_without_a_team_or_members_is_skipped(
    client: httpx.AsyncClient, database: Database, admin: Person, rule: Rule, file: File
) -> None:
    empty = await make_team(client, admin, "Empty", [])
    await rule(actions=[{"type": "assign", "strategy": "round_robin"}])
    await rule(
        actions=[
            {"type": "set_team", "teamId": empty},
            {"type": "assign", "strategy": "least_open"},
        ]
    )
    ticket = await file()
    row = await ticket_row(database, ticket["id"])
    assert row["assignee_id"] is None and row["team_id"] == empty
    reasons = [
        e["details"]["skipped"]["reason"]
        for e in await query(
            database,
            "SELECT details FROM ticket_logs WHERE ticket_id = :i ORDER BY id",
            i=ticket["id"],
        )
        if "skipped" in e["details"]
    ]
    assert reasons == ["round_robin: the ticket has no team", "least_open: the team has no agents"]
