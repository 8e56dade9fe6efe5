"""/api/me/notifications: preferences (defaults, PATCH any subset, field errors) and the feed
(newest first, cursor pages, unread count, marking read)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text

from tekudasai.db.session import Database
from tekudasai.jobs.worker import JobContext, Worker
from tekudasai.notifications.handler import prune_task
from tests.factories import Person
from tests.notifications.conftest import FileTicket, Mailbox, feed_of

AGENT_DEFAULTS = {
    "ticketCreated": True,
    "agentReply": True,
    "statusChanged": True,
    "customerReply": True,
    "assigned": True,
    "internalNote": True,
    "newTicketForAgents": False,
}
CUSTOMER_DEFAULTS = {"ticketCreated": True, "agentReply": True, "statusChanged": True}


async def test_defaults_customers_see_only_theirs(
    client: httpx.AsyncClient, reporter: Person, agent: Person
) -> None:
    mine = await client.get("/api/me/notifications", headers=reporter.auth)
    assert mine.json() == {"status": "success", "data": {"email": CUSTOMER_DEFAULTS}}
    theirs = await client.get("/api/me/notifications", headers=agent.auth)
    assert theirs.json()["data"]["email"] == AGENT_DEFAULTS
    assert (await client.get("/api/me/notifications")).status_code == 401


async def test_patch_changes_the_given_switches_only(
    client: httpx.AsyncClient, agent: Person
) -> None:
    first = await client.patch(
        "/api/me/notifications",
        json={"email": {"newTicketForAgents": True, "assigned": False}, "id": "ignored"},
        headers=agent.auth,
    )
    assert first.status_code == 200
    second = await client.patch(
        "/api/me/notifications", json={"email": {"assigned": True}}, headers=agent.auth
    )
    expected = {**AGENT_DEFAULTS, "newTicketForAgents": True}
    assert second.json()["data"]["email"] == expected
    again = await client.get("/api/me/notifications", headers=agent.auth)
    assert again.json()["data"]["email"] == expected


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"email": {"agentReply": "no"}}, "email.agentReply", "Must be true or false"),
        ({"email": {"agentReply": 0}}, "email.agentReply", "Must be true or false"),
        ({"email": {"smsEverything": True}}, "email.smsEverything", "Unknown setting"),
        ({"email": {"assigned": False}}, "email.assigned", "Not a setting for customers"),
    ],
)
async def test_bad_preferences_are_field_errors_and_change_nothing(
    client: httpx.AsyncClient, reporter: Person, body: dict[str, object], field: str, message: str
) -> None:
    both = {"email": {"statusChanged": False, **body["email"]}}  # type: ignore[dict-item]
    response = await client.patch("/api/me/notifications", json=both, headers=reporter.auth)
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "VALIDATION_ERROR"
    assert error["errors"] == [{"field": field, "message": message}]
    now = await client.get("/api/me/notifications", headers=reporter.auth)
    assert now.json()["data"]["email"] == CUSTOMER_DEFAULTS  # statusChanged untouched


async def test_not_an_object_is_a_400(client: httpx.AsyncClient, reporter: Person) -> None:
    for body in ({"email": ["agentReply"]}, {"email": "off"}, [1, 2]):
        response = await client.patch("/api/me/notifications", json=body, headers=reporter.auth)
        assert response.status_code == 400, body


async def test_a_switched_off_kind_still_reaches_the_feed_but_not_the_mailbox(
    client: httpx.AsyncClient,
    worker: Worker,
    mailbox: Mailbox,
    reporter: Person,
    file_ticket: FileTicket,
) -> None:
    off = {"email": {"ticketCreated": False}}
    assert (await client.patch("/api/me/notifications", json=off, headers=reporter.auth)).is_success
    await file_ticket(reporter)
    await worker.run_pending()
    assert mailbox.messages == []
    assert [n["event"] for n in await feed_of(client, reporter)] == ["ticketCreated"]


async def test_feed_pages_unread_and_marking_read(
    client: httpx.AsyncClient,
    database: Database,
    worker: Worker,
    mailbox: Mailbox,
    reporter: Person,
    agent: Person,
    file_ticket: FileTicket,
) -> None:
    tickets = [await file_ticket(reporter, summary=f"Ticket {n}") for n in range(5)]
    await worker.run_pending()
    url = "/api/me/notifications/feed"
    first = (await client.get(f"{url}?limit=2&cursor=", headers=reporter.auth)).json()
    assert [n["ticketId"] for n in first["data"]] == [tickets[4]["id"], tickets[3]["id"]]
    assert first["meta"]["unread"] == 5 and first["meta"]["nextCursor"]
    seen = [n["ticketId"] for n in first["data"]]
    cursor = first["meta"]["nextCursor"]
    while cursor:
        page = (await client.get(f"{url}?limit=2&cursor={cursor}", headers=reporter.auth)).json()
        seen += [n["ticketId"] for n in page["data"]]
        cursor = page["meta"]["nextCursor"]
    assert seen == [t["id"] for t in reversed(tickets)]

    bad = await client.get(f"{url}?cursor=not-a-cursor", headers=reporter.auth)
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "cursor"
    assert (await client.get(f"{url}?limit=0", headers=reporter.auth)).status_code == 400

    ids = [n["id"] for n in first["data"]]
    # Someone else's ids change nothing of theirs.
    nothing = await client.post("/api/me/notifications/read", json={"ids": ids}, headers=agent.auth)
    assert nothing.json()["data"] == {"marked": 0, "unread": 0}
    marked = await client.post(
        "/api/me/notifications/read", json={"ids": ids}, headers=reporter.auth
    )
    assert marked.json()["data"] == {"marked": 2, "unread": 3}
    feed = await feed_of(client, reporter)
    assert [n["readAt"] is not None for n in feed] == [True, True, False, False, False]
    rest = await client.post(
        "/api/me/notifications/read", json={"all": True}, headers=reporter.auth
    )
    assert rest.json()["data"] == {"marked": 3, "unread": 0}

    for body in ({}, {"ids": [1], "all": True}, {"all": False}, {"ids": ["x"]}, {"ids": [2**70]}):
        wrong = await client.post("/api/me/notifications/read", json=body, headers=reporter.auth)
        assert wrong.status_code == 400, body


async def test_old_lines_leave_the_feed(
    client: httpx.AsyncClient,
    database: Database,
    worker: Worker,
    mailbox: Mailbox,
    reporter: Person,
    file_ticket: FileTicket,
) -> None:
    for n in range(3):
        await file_ticket(reporter, summary=f"Old {n}")
    await worker.run_pending()
    ids = [n["id"] for n in await feed_of(client, reporter)]
    async with database.engine.begin() as conn:
        # read 100 days ago; unread from 400 days ago; unread from 100 days ago (kept)
        await conn.execute(
            text("UPDATE notifications SET read_at = now() - interval '100 days' WHERE id = :a"),
            {"a": ids[0]},
        )
        await conn.execute(
            text("UPDATE notifications SET created_at = now() - interval '400 days' WHERE id = :b"),
            {"b": ids[1]},
        )
        await conn.execute(
            text("UPDATE notifications SET created_at = now() - interval '100 days' WHERE id = :c"),
            {"c": ids[2]},
        )
    await prune_task(JobContext(database, worker.settings, job_id=0, attempt=1))
    assert [n["id"] for n in await feed_of(client, reporter)] == [ids[2]]
