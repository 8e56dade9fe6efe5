"""The engine: which rules run (events, conditions on real tickets, enabled, order), references
gone since (skipped, never a failed change), no loops, and the per-process cache."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tekudasai.automations import engine
from tekudasai.db.session import Database
from tekudasai.tickets import audit
from tests.automations.conftest import File, Rule, logs, make_team, query, ticket_row
from tests.factories import Person, make_person

URGENT = [{"type": "set_priority", "priority": "urgent"}]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "summary", "op": "contains", "value": "PRINTER (2)"}, True),
        ({"field": "summary", "op": "contains", "value": "print.r"}, False),  # never a pattern
        ({"field": "status", "op": "eq", "value": "open"}, True),
        ({"field": "status", "op": "neq", "value": "open"}, False),
        ({"field": "priority", "op": "in", "value": ["normal", "high"]}, True),
        ({"field": "priority", "op": "notIn", "value": ["normal"]}, False),
        ({"field": "teamId", "op": "filled", "value": False}, True),
        ({"field": "tags", "op": "filled", "value": True}, False),
        ({"field": "channel", "op": "eq", "value": "web"}, True),
        ({"field": "channel", "op": "in", "value": ["email", "api"]}, False),
        ({"field": "answer.category", "op": "eq", "value": "hardware"}, True),
        ({"field": "answer.description", "op": "contains", "value": "smoke"}, True),
        ({"field": "answer.description", "op": "filled", "value": False}, False),
        ({"field": "reporter.email", "op": "contains", "value": "@EXAMPLE.test"}, True),
        ({"field": "reporter.email", "op": "eq", "value": "someone@else.test"}, False),
    ],
)
async def test_conditions_on_a_real_ticket(
    database: Database, rule: Rule, file: File, condition: dict[str, Any], expected: bool
) -> None:
    await rule(conditions=[condition], actions=URGENT)
    ticket = await file("Printer (2) is on fire")
    priority = (await ticket_row(database, ticket["id"]))["priority"]
    assert (priority == "urgent") is expected


async def test_form_id_condition(database: Database, rule: Rule, file: File, form_id: str) -> None:
    await rule(conditions=[{"field": "formId", "op": "eq", "value": form_id}], actions=URGENT)
    await rule(
        conditions=[{"field": "formId", "op": "neq", "value": form_id}],
        actions=[{"type": "add_tags", "tags": ["other-form"]}],
    )
    row = await ticket_row(database, (await file())["id"])
    assert row["priority"] == "urgent" and row["tags"] == []


async def test_ticket_updated_covers_status_assignment_and_edits(
    client: httpx.AsyncClient, database: Database, agent: Person, rule: Rule, file: File
) -> None:
    await rule(
        event="ticket.updated",
        conditions=[{"field": "status", "op": "eq", "value": "pending"}],
        actions=[{"type": "add_tags", "tags": ["waiting"]}],
    )
    await rule(
        event="ticket.updated",
        conditions=[{"field": "priority", "op": "eq", "value": "high"}],
        actions=[{"type": "add_tags", "tags": ["hot"]}],
    )
    ticket = await file()
    assert (await ticket_row(database, ticket["id"]))["tags"] == []  # created is not updated
    patched = await client.patch(
        f"/api/tickets/{ticket['id']}", json={"status": "pending"}, headers=agent.auth
    )
    assert patched.status_code == 200, patched.text
    assert (await ticket_row(database, ticket["id"]))["tags"] == ["waiting"]
    await client.patch(
        f"/api/tickets/{ticket['id']}", json={"priority": "high"}, headers=agent.auth
    )
    assert (await ticket_row(database, ticket["id"]))["tags"] == ["waiting", "hot"]


async def test_disabled_rules_never_run_and_changes_take_effect_at_once(
    client: httpx.AsyncClient, database: Database, admin: Person, rule: Rule, file: File
) -> None:
    await rule(enabled=False, actions=[{"type": "add_tags", "tags": ["never"]}])
    live = await rule(actions=URGENT)
    first = await ticket_row(database, (await file())["id"])
    assert first["priority"] == "urgent" and first["tags"] == []
    # Disabling (in this process: the cache goes with the commit) stops it for the next ticket.
    off = await client.patch(
        f"/api/automations/{live['id']}", json={"enabled": False}, headers=admin.auth
    )
    assert off.status_code == 200, off.text
    assert (await ticket_row(database, (await file())["id"]))["priority"] == "normal"
    await client.delete(f"/api/automations/{live['id']}", headers=admin.auth)
    assert (await ticket_row(database, (await file())["id"]))["priority"] == "normal"


async def test_another_process_change_is_seen_through_the_generation(
    database: Database, rule: Rule, file: File, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rule(actions=URGENT)
    await file()  # the cache now holds the rule
    # Another node disables it: the row and the generation change, this process is not told.
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE automations SET enabled = false"))
    monkeypatch.setattr(engine, "RECHECK_S", 3600.0)
    stale = await ticket_row(database, (await file())["id"])
    assert stale["priority"] == "urgent"  # within the recheck period, the cache stands
    monkeypatch.setattr(engine, "RECHECK_S", 0.0)
    unbumped = await ticket_row(database, (await file())["id"])
    assert unbumped["priority"] == "urgent"  # the generation did not move: nothing reloaded
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE automation_generation SET value = value + 1"))
    fresh = await ticket_row(database, (await file())["id"])
    assert fresh["priority"] == "normal"


async def test_rules_run_in_position_order_and_see_earlier_changes(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    agent: Person,
    rule: Rule,
    file: File,
) -> None:
    team = await make_team(client, admin, "Desk", [agent])
    # Stored first but positioned second: it needs the team the other sets.
    await rule(
        position=2,
        conditions=[{"field": "teamId", "op": "eq", "value": team}],
        actions=[{"type": "assign", "strategy": "round_robin"}],
    )
    await rule(position=1, actions=[{"type": "set_team", "teamId": team}])
    row = await ticket_row(database, (await file())["id"])
    assert row["team_id"] == team and row["assignee_id"] == agent.user.id


async def test_references_gone_since_are_skipped_and_the_ticket_is_filed(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    agent: Person,
    rule: Rule,
    file: File,
    cipher: Any,
) -> None:
    team = await make_team(client, admin, "Gone", [agent])
    helper = await make_person(database, cipher, role="agent")
    canned = await client.post(
        "/api/canned-responses",
        json={"title": "T", "body": "B", "shared": True},
        headers=admin.auth,
    )
    hook = await client.post(
        "/api/webhooks",
        json={"url": "http://127.0.0.1:9/h", "events": ["ticket.created"]},
        headers=admin.auth,
    )
    await rule(
        name="Stale",
        actions=[
            {"type": "set_team", "teamId": team},
            {"type": "assign", "userId": helper.user.id},
            {"type": "reply", "cannedResponseId": canned.json()["data"]["id"]},
            {"type": "webhook", "webhookId": hook.json()["data"]["id"]},
            {"type": "notify", "userIds": [helper.user.id]},
            {"type": "set_priority", "priority": "high"},  # still runs after the skips
        ],
    )
    assert (await client.delete(f"/api/teams/{team}", headers=admin.auth)).status_code == 200
    await client.delete(f"/api/canned-responses/{canned.json()['data']['id']}", headers=admin.auth)
    await client.delete(f"/api/webhooks/{hook.json()['data']['id']}", headers=admin.auth)
    # The helper is no longer staff.
    async with database.engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET role = 'user' WHERE id = :id"), {"id": helper.user.id}
        )
    ticket = await file()
    row = await ticket_row(database, ticket["id"])
    assert row["team_id"] is None and row["assignee_id"] is None and row["priority"] == "high"
    skipped = [e for e in await logs(database, ticket["id"]) if "skipped" in e["details"]]
    assert [e["details"]["skipped"]["type"] for e in skipped] == [
        "set_team",
        "assign",
        "reply",
        "webhook",
        "notify",
    ]
    assert all(e["internal"] and e["details"]["automation"]["name"] == "Stale" for e in skipped)
    assert (
        await query(
            database, "SELECT 1 FROM ticket_comments WHERE ticket_id = :id", id=ticket["id"]
        )
        == []
    )


async def test_invalid_transition_is_skipped_not_an_error(
    client: httpx.AsyncClient, database: Database, agent: Person, rule: Rule, file: File
) -> None:
    await rule(
        event="ticket.updated",
        conditions=[{"field": "status", "op": "eq", "value": "closed"}],
        actions=[{"type": "set_status", "status": "pending"}],  # closed may only reopen
    )
    ticket = await file()
    closed = await client.patch(
        f"/api/tickets/{ticket['id']}", json={"status": "closed"}, headers=agent.auth
    )
    assert closed.status_code == 200, closed.text
    assert (await ticket_row(database, ticket["id"]))["status"] == "closed"
    [skip] = [e for e in await logs(database, ticket["id"]) if "skipped" in e["details"]]
    assert skip["details"]["skipped"]["type"] == "set_status"


async def test_no_loops_a_b_a(
    client: httpx.AsyncClient, database: Database, agent: Person, rule: Rule, file: File
) -> None:
    a = await rule(
        name="A",
        event="ticket.updated",
        conditions=[{"field": "priority", "op": "eq", "value": "high"}],
        actions=[{"type": "set_priority", "priority": "urgent"}],
    )
    b = await rule(
        name="B",
        event="ticket.updated",
        conditions=[{"field": "priority", "op": "eq", "value": "urgent"}],
        actions=[{"type": "set_priority", "priority": "high"}],
    )
    ticket = await file()
    patched = await client.patch(
        f"/api/tickets/{ticket['id']}", json={"priority": "high"}, headers=agent.auth
    )
    assert patched.status_code == 200, patched.text
    # A made it urgent, B (in A's chain) high again, and A did not fire inside its own chain.
    assert (await ticket_row(database, ticket["id"]))["priority"] == "high"
    by = [
        e["details"]["automation"]["id"]
        for e in await logs(database, ticket["id"])
        if e["details"].get("automation")
    ]
    assert by == [a["id"], b["id"]]


async def test_an_automation_does_not_fire_on_its_own_change(
    database: Database, rule: Rule, file: File
) -> None:
    # On ticket.updated, adding a tag is itself an update: it must not feed itself.
    await rule(event="ticket.updated", actions=[{"type": "add_internal_note", "body": "again"}])
    await rule(actions=[{"type": "add_tags", "tags": ["x"]}])
    ticket = await file()
    notes = await query(
        database, "SELECT 1 FROM ticket_comments WHERE ticket_id = :id", id=ticket["id"]
    )
    assert len(notes) == 1


async def test_chains_stop_at_the_depth_cap(database: Database, rule: Rule, file: File) -> None:
    ticket = await file()
    await rule(event="ticket.updated", actions=URGENT)
    async with database.sessionmaker() as db, db.begin():
        with (
            audit.as_automation("x1", "1"),
            audit.as_automation("x2", "2"),
            audit.as_automation("x3", "3"),
            audit.as_automation("x4", "4"),
        ):
            assert await engine.fire(db, "ticket.updated", ticket["id"], {}) == 1
            await db.rollback()
    async with database.sessionmaker() as db, db.begin():
        with (
            audit.as_automation("x1", "1"),
            audit.as_automation("x2", "2"),
            audit.as_automation("x3", "3"),
            audit.as_automation("x4", "4"),
            audit.as_automation("x5", "5"),
        ):
            assert await engine.fire(db, "ticket.updated", ticket["id"], {}) == 0


async def test_another_database_is_never_served_this_ones_rules(
    database: Database,
    settings: Any,
    pg_server: Any,
    template_db: str,
    cipher: Any,
    rule: Rule,
    file: File,
) -> None:
    from tekudasai.tickets import service as tickets_service
    from tests.automations.conftest import ELEMENTS
    from tests.conftest import create_database_from_template, drop_database
    from tests.factories import make_form

    await rule(actions=URGENT)
    assert (await ticket_row(database, (await file())["id"]))["priority"] == "urgent"
    name = await create_database_from_template(pg_server, template_db)
    other = Database.connect(pg_server.url(name), settings, pool_size=1)
    try:
        admin = await make_person(other, cipher, role="admin")
        form = await make_form(other, admin, elements=ELEMENTS)
        async with other.sessionmaker() as db, db.begin():
            ticket = await tickets_service.create_ticket(
                db,
                reporter_id=admin.user.id,
                form_id=form["id"],
                summary="Elsewhere",
                form_response={"category": "hardware", "description": "x"},
            )
            assert ticket.priority == "normal"
    finally:
        await other.dispose()
        await drop_database(pg_server, name)


async def test_a_malformed_stored_rule_never_fails_a_ticket(
    database: Database, rule: Rule, file: File
) -> None:
    bad_action = await rule(actions=URGENT)
    bad_condition = await rule(actions=[{"type": "add_tags", "tags": ["x"]}])
    # Rows edited past the API's checks (by hand, or an older version's shapes).
    async with database.engine.begin() as conn:
        await conn.execute(
            text("UPDATE automations SET actions = CAST(:a AS jsonb) WHERE id = :id"),
            {
                "a": '[{"type": "set_priority"}, {"type": "add_tags", "tags": ["ok"]}]',
                "id": bad_action["id"],
            },
        )
        await conn.execute(
            text("UPDATE automations SET conditions = CAST(:c AS jsonb) WHERE id = :id"),
            {"c": '[{"field": "summary"}]', "id": bad_condition["id"]},
        )
        await conn.execute(text("UPDATE automation_generation SET value = value + 1"))
    engine.invalidate()
    ticket = await file()
    row = await ticket_row(database, ticket["id"])
    assert row["tags"] == ["ok"] and row["priority"] == "normal"
    [skip] = [e for e in await logs(database, ticket["id"]) if "skipped" in e["details"]]
    assert skip["details"]["skipped"]["reason"].startswith("malformed action")
