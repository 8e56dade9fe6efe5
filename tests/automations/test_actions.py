"""Each action, run by a real ticket event through the app, audited under the rule's name."""

from __future__ import annotations

from typing import Any

import httpx

from tekudasai.config import Settings
from tekudasai.db.session import Database
from tekudasai.jobs.worker import JobContext
from tekudasai.tickets import events
from tests.automations.conftest import File, Rule, logs, make_team, query, ticket_row
from tests.factories import Person

TAGGED = [{"field": "summary", "op": "contains", "value": "printer"}]


async def test_set_priority_status_team_tags_and_the_audit_names_the_rule(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    agent: Person,
    rule: Rule,
    file: File,
) -> None:
    team = await make_team(client, admin, "Hardware", [agent])
    await rule(
        name="Printers",
        conditions=TAGGED,
        actions=[
            {"type": "set_priority", "priority": "urgent"},
            {"type": "set_status", "status": "in_progress"},
            {"type": "set_team", "teamId": team},
            {"type": "add_tags", "tags": ["printer", "fire"]},
            {"type": "remove_tags", "tags": ["fire"]},
            {"type": "assign", "userId": agent.user.id},
        ],
    )
    ticket = await file("The printer is on fire")
    # The answer already shows what the automation did.
    assert ticket["status"] == "in_progress" and ticket["assigneeId"] == agent.user.id
    row = await ticket_row(database, ticket["id"])
    assert (row["priority"], row["status"], row["team_id"]) == ("urgent", "in_progress", team)
    assert row["tags"] == ["printer"] and row["assignee_id"] == agent.user.id
    trail = await logs(database, ticket["id"])
    automated = [entry for entry in trail if entry["details"].get("automation")]
    assert len(automated) >= 5
    for entry in automated:
        assert entry["user_id"] is None
        assert entry["details"]["automation"]["name"] == "Printers"
        assert entry["action"].endswith("(automation: Printers)")
    # The events it caused carry it too, with no actor.
    caused = await query(
        database,
        "SELECT * FROM ticket_events WHERE ticket_id = :id AND data ? 'automation'",
        id=ticket["id"],
    )
    assert caused and all(e["actor_id"] is None for e in caused)


async def test_a_rule_that_does_not_match_does_nothing(
    database: Database, rule: Rule, file: File
) -> None:
    await rule(conditions=TAGGED, actions=[{"type": "set_priority", "priority": "low"}])
    ticket = await file("The screen flickers")
    assert (await ticket_row(database, ticket["id"]))["priority"] == "normal"


async def test_internal_note(database: Database, rule: Rule, file: File) -> None:
    await rule(actions=[{"type": "add_internal_note", "body": "Check the toner"}])
    ticket = await file()
    [note] = await query(
        database, "SELECT * FROM ticket_comments WHERE ticket_id = :id", id=ticket["id"]
    )
    assert (
        note["internal"] is True and note["author_id"] is None and note["body"] == "Check the toner"
    )


async def test_reply_on_comment_created_with_a_canned_response(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    customer: Person,
    rule: Rule,
    file: File,
) -> None:
    canned = await client.post(
        "/api/canned-responses",
        json={
            "title": "Ack",
            "body": "Hi {{reporter.name}}, #{{ticket.id}} noted.",
            "shared": True,
        },
        headers=admin.auth,
    )
    assert canned.status_code == 200, canned.text
    await rule(
        name="Acknowledge",
        event="comment.created",
        conditions=[{"field": "status", "op": "eq", "value": "open"}],
        actions=[{"type": "reply", "cannedResponseId": canned.json()["data"]["id"]}],
    )
    ticket = await file()
    reply = await client.post(
        f"/api/tickets/my/{ticket['id']}/comments",
        json={"body": "Any news?"},
        headers=customer.auth,
    )
    assert reply.status_code == 200, reply.text
    comments = await query(
        database, "SELECT * FROM ticket_comments WHERE ticket_id = :id ORDER BY id", id=ticket["id"]
    )
    # The customer's, then the automation's public reply (and not another: its own comment
    # does not fire it again).
    assert [c["author_id"] for c in comments] == [customer.user.id, None]
    assert comments[1]["internal"] is False
    assert comments[1]["body"] == f"Hi {customer.name}, #{ticket['id']} noted."
    # The reporter sees it.
    seen = await client.get(f"/api/tickets/my/{ticket['id']}/comments", headers=customer.auth)
    assert [c["body"] for c in seen.json()["data"]][-1] == comments[1]["body"]


async def test_notify_adds_feed_lines_and_mails_as_preferences_allow(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    agent: Person,
    admin: Person,
    customer: Person,
    rule: Rule,
    file: File,
) -> None:
    from tekudasai.automations.actions import notify_mail_task

    # The admin switched off mails about tickets pointed to them; the feed still has the line.
    off = await client.patch(
        "/api/me/notifications", json={"email": {"assigned": False}}, headers=admin.auth
    )
    assert off.status_code == 200, off.text
    await rule(name="Tell", actions=[{"type": "notify", "userIds": [agent.user.id, admin.user.id]}])
    ticket = await file()
    feed = await query(
        database,
        "SELECT * FROM notifications WHERE ticket_id = :id ORDER BY user_id",
        id=ticket["id"],
    )
    told = {row["user_id"] for row in feed if "Tell" in row["text"]}
    assert told == {agent.user.id, admin.user.id}
    [job] = await query(database, "SELECT * FROM jobs WHERE name = 'automations.notify_mail'")
    before = {
        r["id"] for r in await query(database, "SELECT id FROM jobs WHERE name = 'mail.send'")
    }
    await notify_mail_task(
        JobContext(database, settings, job_id=job["id"], attempt=1), **job["args"]
    )
    new = [
        r
        for r in await query(database, "SELECT * FROM jobs WHERE name = 'mail.send'")
        if r["id"] not in before
    ]
    assert len(new) == 1
    # Sealed (the address is personal data): opened with the mail job's own key.
    import base64
    import json

    from tekudasai.core.crypto import PiiCipher

    sealed = base64.b64decode(new[0]["args"]["sealed"])
    mail = json.loads(PiiCipher(settings.master_secret()).unseal(sealed, purpose="job:mail"))
    assert mail["to"] == agent.email and f"#{ticket['id']}" in mail["subject"]
    assert "Tell" in mail["body"] and "List-Unsubscribe" in mail["headers"]


async def test_webhook_queues_a_delivery_of_the_ticket(
    client: httpx.AsyncClient, database: Database, admin: Person, rule: Rule, file: File
) -> None:
    hook = await client.post(
        "/api/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["ticket.assigned"]},
        headers=admin.auth,
    )
    assert hook.status_code == 200, hook.text
    hook_id = hook.json()["data"]["id"]
    await rule(name="Hook", actions=[{"type": "webhook", "webhookId": hook_id}])
    ticket = await file()
    [delivery] = await query(
        database, "SELECT * FROM webhook_deliveries WHERE webhook_id = :id", id=hook_id
    )
    assert delivery["ticket_id"] == ticket["id"] and delivery["event_type"] == "ticket.created"
    import json

    body = json.loads(delivery["body"])
    assert body["data"]["automation"]["name"] == "Hook"
    assert body["data"]["ticket"]["summary"] == ticket["summary"]
    assert await query(
        database,
        "SELECT 1 FROM jobs WHERE name = 'webhooks.deliver' AND (args->>'deliveryId')::bigint = :d",
        d=delivery["id"],
    )


async def test_sla_breached_fires_in_the_clock_jobs_transaction(
    database: Database, app: Any, agent: Person, rule: Rule, file: File
) -> None:
    await rule(
        name="Escalate",
        event="sla.breached",
        actions=[
            {"type": "set_priority", "priority": "urgent"},
            {"type": "add_tags", "tags": ["breached"]},
        ],
    )
    ticket = await file()
    assert (await ticket_row(database, ticket["id"]))["priority"] == "normal"
    # As the SLA clock's timer job does: emit in its own transaction.
    async with database.sessionmaker() as db, db.begin():
        await events.emit(
            db,
            type=events.EventType.SLA_BREACHED,
            ticket_id=ticket["id"],
            actor_id=None,
            data={"target": "resolution"},
        )
    row = await ticket_row(database, ticket["id"])
    assert row["priority"] == "urgent" and row["tags"] == ["breached"]
    # A rolled-back clock run leaves nothing.
    other = await file()
    async with database.sessionmaker() as db, db.begin():
        await events.emit(
            db, type=events.EventType.SLA_BREACHED, ticket_id=other["id"], actor_id=None
        )
        await db.rollback()
    assert (await ticket_row(database, other["id"]))["priority"] == "normal"
