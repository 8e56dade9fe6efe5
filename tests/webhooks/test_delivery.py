"""Deliveries end to end: ticket changes → events → queued deliveries → a real HTTP receiver on
loopback, signed, retried, in order per ticket, logged; the address re-checked at delivery."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook as Verifier

from tekudasai.db.session import Database
from tekudasai.jobs.worker import Backoff, JobContext, Worker
from tekudasai.tasks import EVENT_HANDLERS, TASKS
from tekudasai.tickets import events
from tekudasai.webhooks import delivery
from tests.conftest import make_settings
from tests.factories import Person
from tests.tickets.conftest import FileTicket
from tests.webhooks.conftest import Received, Receiver, deliveries, make_webhook, wait_until

TICKET_EVENTS = ["ticket.created", "ticket.status_changed", "ticket.assigned", "comment.created"]


async def delivered(database: Database, n: int) -> bool:
    rows = await deliveries(database)
    return len(rows) >= n and all(r["status"] != "pending" for r in rows)


def types(requests: list[Received]) -> list[str]:
    return [r.json["type"] for r in requests]


async def test_ticket_changes_arrive_signed_with_their_data(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    agent: Person,
    reporter: Person,
    file_ticket: FileTicket,
    receiver: Receiver,
    worker: Worker,
) -> None:
    hook = await make_webhook(client, admin.auth, receiver.url, TICKET_EVENTS)
    ticket = await file_ticket(reporter, summary="Printer on fire")
    path = f"/api/tickets/{ticket['id']}"
    assert (await client.patch(path, json={"status": "in_progress"}, headers=agent.auth)).is_success
    assert (await client.post(f"{path}/assign-toggle", headers=agent.auth)).is_success
    note = {"body": "Internal: check the toner", "internal": True}
    assert (await client.post(f"{path}/comments", json=note, headers=agent.auth)).is_success
    reply = {"body": "On my way"}
    assert (await client.post(f"{path}/comments", json=reply, headers=agent.auth)).is_success

    await wait_until(lambda: delivered(database, 4))
    assert types(receiver.requests) == [
        "ticket.created",
        "ticket.status_changed",
        "ticket.assigned",
        "comment.created",  # the public reply; the internal note is left out
    ]
    verifier = Verifier(hook["secret"])
    for request in receiver.requests:
        assert request.path == "/hook"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-id"].startswith("msg_")
        assert verifier.verify(request.body, request.headers) == request.json
        assert set(request.json) == {"type", "timestamp", "data"}
        assert request.json["data"]["ticketId"] == ticket["id"]
    created, status, assigned, comment = (r.json["data"] for r in receiver.requests)
    assert created["ticket"]["summary"] == "Printer on fire"
    assert created["ticket"]["status"] == "open" and created["actorId"] == reporter.user.id
    assert status["changes"] == {"status": {"from": "open", "to": "in_progress"}}
    assert assigned["changes"]["assigneeId"] == {"from": None, "to": agent.user.id}
    assert comment["comment"]["body"] == "On my way" and comment["comment"]["internal"] is False
    # Each message has its own id; the log says what happened.
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 4
    log = (await client.get(f"/api/webhooks/{hook['id']}/deliveries", headers=admin.auth)).json()
    newest = log["data"][0]
    assert newest["eventType"] == "comment.created" and newest["status"] == "delivered"
    assert newest["tries"] == 1 and newest["responseStatus"] == 200
    assert newest["responseBody"] == "ok" and isinstance(newest["durationMs"], int)
    assert newest["deliveredAt"] is not None and newest["ticketId"] == ticket["id"]


async def test_internal_notes_only_with_include_internal_and_nothing_when_disabled(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    agent: Person,
    reporter: Person,
    file_ticket: FileTicket,
    receiver: Receiver,
    worker: Worker,
) -> None:
    await make_webhook(client, admin.auth, receiver.url, ["comment.created"], includeInternal=True)
    off = await make_webhook(client, admin.auth, receiver.url, TICKET_EVENTS, enabled=False)
    ticket = await file_ticket(reporter)
    note = {"body": "Internal note", "internal": True}
    path = f"/api/tickets/{ticket['id']}/comments"
    assert (await client.post(path, json=note, headers=agent.auth)).is_success
    await wait_until(lambda: delivered(database, 1))
    [request] = receiver.requests
    assert request.json["data"]["comment"] == {
        **request.json["data"]["comment"],
        "body": "Internal note",
        "internal": True,
    }
    assert all(r["webhook_id"] != off["id"] for r in await deliveries(database))


async def test_a_receiver_failing_the_first_event_gets_every_event_in_order(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    agent: Person,
    reporter: Person,
    file_ticket: FileTicket,
    receiver: Receiver,
) -> None:
    receiver.behaviour = lambda n, _r: (503, b"busy", 0.0) if n == 1 else (200, b"ok", 0.0)
    await make_webhook(client, admin.auth, receiver.url, TICKET_EVENTS)
    ticket = await file_ticket(reporter)
    path = f"/api/tickets/{ticket['id']}"
    # Every event and delivery exists before the queue runs: later ones are due at once while
    # the first is waiting for its retry.
    assert (await client.patch(path, json={"status": "in_progress"}, headers=agent.auth)).is_success
    assert (await client.post(f"{path}/assign-toggle", headers=agent.auth)).is_success
    assert (
        await client.post(f"{path}/comments", json={"body": "Hello"}, headers=agent.auth)
    ).is_success
    settings = client._transport.app.state.settings  # type: ignore[attr-defined]
    worker = Worker(
        database, settings, TASKS, concurrency=3, poll=0.2, backoff=Backoff(base=0.5, cap=1.0)
    )
    running = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: delivered(database, 4))
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert types(receiver.requests) == [
        "ticket.created",  # 503
        "ticket.created",
        "ticket.status_changed",
        "ticket.assigned",
        "comment.created",
    ]
    # Dispatched concurrently, so ids may be in any order; events are in the ticket's order.
    rows = sorted(await deliveries(database), key=lambda r: r["event_id"])
    assert [(r["event_type"], r["status"], r["attempts"]) for r in rows] == [
        ("ticket.created", "delivered", 2),
        ("ticket.status_changed", "delivered", 1),
        ("ticket.assigned", "delivered", 1),
        ("comment.created", "delivered", 1),
    ]


async def test_given_up_after_max_tries_then_the_lane_moves_on_and_retry_resends(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    agent: Person,
    reporter: Person,
    file_ticket: FileTicket,
    receiver: Receiver,
    worker: Worker,
) -> None:
    failing = {"on": True}

    def behaviour(_n: int, request: Received) -> tuple[int, bytes, float]:
        if failing["on"] and request.json["type"] == "ticket.created":
            return 500, b"x" * 10_000, 0.0
        return 200, b"ok", 0.0

    receiver.behaviour = behaviour
    hook = await make_webhook(client, admin.auth, receiver.url, TICKET_EVENTS)
    ticket = await file_ticket(reporter)
    path = f"/api/tickets/{ticket['id']}"
    assert (await client.patch(path, json={"status": "pending"}, headers=agent.auth)).is_success
    await wait_until(lambda: delivered(database, 2), seconds=60)
    first, second = sorted(await deliveries(database), key=lambda r: r["event_id"])
    assert (first["status"], first["attempts"]) == ("failed", delivery.MAX_TRIES)
    assert first["response_status"] == 500 and first["error"] == "HTTP 500"
    assert len(first["response_body"]) == delivery.LOG_BODY_CHARS  # truncated in the log
    assert (second["status"], second["attempts"]) == ("delivered", 1)
    assert types(receiver.requests) == ["ticket.created"] * delivery.MAX_TRIES + [
        "ticket.status_changed"
    ]

    base = f"/api/webhooks/{hook['id']}/deliveries"
    failing["on"] = False
    retried = await client.post(f"{base}/{first['id']}/retry", headers=admin.auth)
    assert retried.status_code == 200 and retried.json()["data"]["status"] == "pending"
    again = await client.post(f"{base}/{first['id']}/retry", headers=admin.auth)
    assert again.status_code == 409  # still pending: it retries by itself
    await wait_until(lambda: delivered(database, 2))
    log = (await client.get(base, headers=admin.auth)).json()["data"]
    # Each event's dispatch job makes its delivery row; two jobs may run in either order, so
    # the rows' order (newest row first) is not the events' order.
    assert sorted((d["eventType"], d["status"], d["tries"]) for d in log) == [
        ("ticket.created", "delivered", 1),
        ("ticket.status_changed", "delivered", 1),
    ]
    # The same webhook-id on every try of one message: receivers can drop duplicates.
    created_ids = {
        r.headers["webhook-id"] for r in receiver.requests if "created" in r.json["type"]
    }
    assert created_ids == {first["msg_id"]}
    other_hook = await make_webhook(client, admin.auth, receiver.url, ["sla.warning"])
    wrong = await client.post(
        f"/api/webhooks/{other_hook['id']}/deliveries/{first['id']}/retry", headers=admin.auth
    )
    assert wrong.status_code == 404


@pytest.fixture
def slow_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timeouts of a second or less, so a silent receiver costs the test little."""
    monkeypatch.setattr(
        delivery, "TIMEOUT", {"connect": 1.0, "read": 0.5, "write": 1.0, "pool": 1.0}
    )


async def test_timeouts_redirects_and_big_answers(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    slow_timeouts: None,
    worker: Worker,
) -> None:
    silent, redirecting, chatty = Receiver(), Receiver(), Receiver()
    silent.behaviour = lambda _n, _r: (200, b"late", 3.0)
    redirecting.behaviour = lambda _n, _r: (302, b"", 0.0)
    chatty.behaviour = lambda _n, _r: (200, "é".encode() * 50_000, 0.0)
    for r in (silent, redirecting, chatty):
        r.start()
    try:
        hooks = [
            await make_webhook(client, admin.auth, r.url, ["ticket.created"])
            for r in (silent, redirecting, chatty)
        ]
        for hook in hooks:
            made = await client.post(f"/api/webhooks/{hook['id']}/test", headers=admin.auth)
            assert made.status_code == 200 and made.json()["data"]["eventType"] == "webhook.test"

        async def tried_each() -> bool:
            rows = await deliveries(database)
            return len(rows) == 3 and all(r["attempts"] >= 1 for r in rows)

        await wait_until(tried_each)
    finally:
        for r in (silent, redirecting, chatty):
            r.stop()
    by_hook = {r["webhook_id"]: r for r in await deliveries(database)}
    slow, moved, big = (by_hook[h["id"]] for h in hooks)
    assert slow["status"] == "pending" and "timed out" in slow["error"]
    assert moved["status"] == "pending" and moved["response_status"] == 302
    assert "redirect" in moved["error"] and "not followed" in moved["error"]
    assert all(r.path == "/hook" for r in redirecting.requests)  # never went to Location
    assert big["status"] == "delivered" and big["response_body"] == "é" * delivery.LOG_BODY_CHARS


async def test_the_address_is_checked_again_at_delivery(
    client: httpx.AsyncClient,
    database: Database,
    db_url: str,
    tmp_path: Path,
    admin: Person,
    receiver: Receiver,
) -> None:
    """Allowed when created; by the time it is sent the rule says no (as when DNS now answers
    with an internal address): the try fails without a connection."""
    hook = await make_webhook(client, admin.auth, receiver.url, ["ticket.created"])
    await client.post(f"/api/webhooks/{hook['id']}/test", headers=admin.auth)
    strict = make_settings(db_url, tmp_path / "strict")
    worker = Worker(database, strict, TASKS, poll=0.2, backoff=Backoff(base=5.0))
    running = asyncio.create_task(worker.run())
    try:

        async def tried() -> bool:
            return any(r["attempts"] >= 1 for r in await deliveries(database))

        await wait_until(tried)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    [row] = await deliveries(database)
    assert row["status"] == "pending" and "loopback" in row["error"]
    assert row["response_status"] is None and receiver.requests == []


async def test_host_names_are_resolved_once_and_the_checked_address_is_contacted(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    receiver: Receiver,
    worker: Worker,
) -> None:
    hook = await make_webhook(
        client, admin.auth, f"http://localhost:{receiver.port}/hook?x=1", ["ticket.created"]
    )
    assert hook["host"] == "localhost" and hook["url"].endswith("/hook?x=1")
    await client.post(f"/api/webhooks/{hook['id']}/test", headers=admin.auth)
    await wait_until(lambda: delivered(database, 1))
    [request] = receiver.requests
    assert request.path == "/hook?x=1"
    # Sent to 127.0.0.1 (the receiver listens there only), named as the URL names it.
    assert request.headers["host"] == f"localhost:{receiver.port}"
    assert request.headers["accept-encoding"] == "identity"  # the capped read is the answer
    assert request.json["type"] == "webhook.test"
    assert (
        Verifier(hook["secret"]).verify(request.body, request.headers)["data"]["webhookId"]
        == (hook["id"])
    )


async def test_a_lane_whose_head_lost_its_job_is_resumed_by_the_next_event(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    agent: Person,
    reporter: Person,
    file_ticket: FileTicket,
    receiver: Receiver,
) -> None:
    await make_webhook(client, admin.auth, receiver.url, TICKET_EVENTS)
    ticket = await file_ticket(reporter)
    settings = client._transport.app.state.settings  # type: ignore[attr-defined]
    ctx = JobContext(database, settings, job_id=0, attempt=1)
    async with database.engine.begin() as conn:
        (event_id,) = (await conn.execute(text("SELECT id FROM ticket_events"))).one()
    assert await events.dispatch(ctx, event_id, EVENT_HANDLERS)
    async with database.engine.begin() as conn:  # the head's job is lost
        lost = await conn.execute(text("DELETE FROM jobs WHERE name = 'webhooks.deliver'"))
        assert lost.rowcount == 1
    path = f"/api/tickets/{ticket['id']}"
    assert (await client.patch(path, json={"status": "pending"}, headers=agent.auth)).is_success
    worker = Worker(database, settings, TASKS, poll=0.2, backoff=Backoff(base=0.2, cap=1.0))
    running = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: delivered(database, 2))
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert types(receiver.requests) == ["ticket.created", "ticket.status_changed"]


async def test_sla_events_are_queued_for_the_webhooks_that_want_them(
    client: httpx.AsyncClient,
    database: Database,
    admin: Person,
    reporter: Person,
    file_ticket: FileTicket,
    receiver: Receiver,
    worker: Worker,
) -> None:
    """The SLA domain calls `service.emit` when a deadline nears or passes."""
    from tekudasai.webhooks import service

    hook = await make_webhook(client, admin.auth, receiver.url, ["sla.breached"])
    await make_webhook(client, admin.auth, receiver.url, ["sla.warning"])
    ticket = await file_ticket(reporter)
    async with database.sessionmaker() as db, db.begin():
        queued = await service.emit(
            db, event_type="sla.breached", ticket_id=ticket["id"], data={"target": "resolution"}
        )
    assert queued == 1
    await wait_until(lambda: delivered(database, 1))
    [request] = receiver.requests
    assert request.json["type"] == "sla.breached"
    assert request.json["data"] == {"ticketId": ticket["id"], "target": "resolution"}
    assert Verifier(hook["secret"]).verify(request.body, request.headers)
    with pytest.raises(ValueError, match="unknown"):
        async with database.sessionmaker() as db, db.begin():
            await service.emit(db, event_type="sla.exploded", ticket_id=None, data={})
