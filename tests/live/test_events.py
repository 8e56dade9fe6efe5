"""GET /api/events over real HTTP: who sees what, resuming, heartbeats and ending."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from tekudasai.db.session import Database
from tests.factories import Person
from tests.live.conftest import (
    LiveServer,
    api,
    file_ticket,
    file_ticket_seen,
    open_stream,
    until,
)
from tests.tickets.conftest import GOOD_RESPONSE


async def comment(
    base: str, person: Person, ticket_id: int, body: str, *, internal: bool = False
) -> dict[str, Any]:
    if person.user.role == "user":
        path, payload = f"/api/tickets/my/{ticket_id}/comments", {"body": body}
    else:
        path, payload = f"/api/tickets/{ticket_id}/comments", {"body": body, "internal": internal}
    response = await api(base, "POST", path, person, payload)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


async def test_customer_sees_own_public_comments_only_agent_sees_everything(
    live: LiveServer, form_id: str, reporter: Person, other: Person, agent: Person
) -> None:
    mine = await file_ticket_seen(live, reporter, form_id, "Mine")
    async with (
        open_stream(live.url, reporter) as customer,
        open_stream(live.url, other) as stranger,
        open_stream(live.url, agent) as staff,
    ):
        theirs = await file_ticket(live.url, other, form_id, "Theirs")
        await comment(live.url, agent, mine, "Secret triage note", internal=True)
        await comment(live.url, agent, theirs, "Hello other")
        await comment(live.url, agent, mine, "We are on it\nline two")
        response = await api(
            live.url, "PATCH", f"/api/tickets/{mine}", agent, {"id": mine, "status": "in_progress"}
        )
        assert response.status_code == 200, response.text

        await staff.wait_for(lambda s: len(s.of("ticket.updated")) == 1)
        await customer.wait_for(lambda s: len(s.of("ticket.updated")) == 1)
        await stranger.wait_for(lambda s: len(s.of("comment.created")) == 1)

        # The agent saw every event, the internal note included, in order.
        assert [e["event"] for e in staff.events] == [
            "ticket.created",
            "comment.created",
            "comment.created",
            "comment.created",
            "ticket.updated",
        ]
        note = staff.of("comment.created")[0]["data"]
        assert note["internal"] is True and note["body"] == "Secret triage note"
        assert note["authorName"] == agent.name and note["ticketId"] == mine

        # The customer: only their ticket's public reply and its status change.
        assert [e["event"] for e in customer.events] == ["comment.created", "ticket.updated"]
        reply = customer.events[0]
        assert reply["data"]["body"] == "We are on it\nline two"
        assert reply["data"]["internal"] is False and reply["data"]["ticketId"] == mine
        assert reply["data"]["authorName"] == agent.name and reply["data"]["createdAt"]
        assert int(reply["id"]) > 0
        assert customer.events[1]["data"] == {
            "ticketId": mine,
            "status": "in_progress",
            "at": customer.events[1]["data"]["at"],
        }
        assert "Secret" not in str(customer.events)

        # The other customer: their own ticket only (created, then the reply on it).
        assert [e["event"] for e in stranger.events] == ["ticket.created", "comment.created"]
        assert all(e["data"]["ticketId"] == theirs for e in stranger.events)


async def test_assignment_is_a_ticket_update_with_the_assignee_name(
    live: LiveServer, form_id: str, reporter: Person, agent: Person
) -> None:
    ticket = await file_ticket(live.url, reporter, form_id)
    async with open_stream(live.url, reporter) as customer:
        response = await api(live.url, "POST", f"/api/tickets/{ticket}/assign-toggle", agent)
        assert response.status_code == 200, response.text
        await customer.wait_for(lambda s: bool(s.of("ticket.updated")))
    data = customer.of("ticket.updated")[0]["data"]
    assert data["assigneeId"] == agent.user.id and data["assigneeName"] == agent.name


async def test_last_event_id_replays_what_was_missed_and_garbage_is_ignored(
    live: LiveServer, form_id: str, reporter: Person, agent: Person
) -> None:
    ticket = await file_ticket_seen(live, reporter, form_id)
    async with open_stream(live.url, reporter) as first:
        await comment(live.url, agent, ticket, "one")
        await first.wait_for(lambda s: len(s.events) == 1)
    last_id = first.events[-1]["id"]
    # Missed while disconnected: a reply, an internal note, a status change.
    await comment(live.url, agent, ticket, "two")
    await comment(live.url, agent, ticket, "internal two", internal=True)
    await api(
        live.url, "PATCH", f"/api/tickets/{ticket}", agent, {"id": ticket, "status": "pending"}
    )

    async with open_stream(live.url, reporter, {"Last-Event-ID": last_id}) as resumed:
        await resumed.wait_for(lambda s: len(s.events) == 2)
        await comment(live.url, agent, ticket, "three")  # live again after the replay
        await resumed.wait_for(lambda s: len(s.events) == 3)
    assert [e["event"] for e in resumed.events] == [
        "comment.created",
        "ticket.updated",
        "comment.created",
    ]
    assert [e["data"].get("body") for e in resumed.of("comment.created")] == ["two", "three"]
    ids = [int(e["id"]) for e in resumed.events]
    assert ids == sorted(ids) and ids[0] > int(last_id)

    for garbage in ("abc", "-5", "1e9", "99999999999999999999999", "0x10", "1 2", "\u0661\u0662"):
        async with open_stream(live.url, reporter, {"Last-Event-ID": garbage.encode()}) as stream:
            await asyncio.sleep(0.2)
            assert stream.events == []  # no replay, no error


async def test_events_older_than_the_replay_window_are_not_replayed(
    live: LiveServer, form_id: str, reporter: Person, agent: Person, database: Database
) -> None:
    ticket = await file_ticket(live.url, reporter, form_id)
    await comment(live.url, agent, ticket, "old news")
    await comment(live.url, agent, ticket, "recent")
    async with database.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE ticket_events SET created_at = now() - interval '6 minutes' "
                "WHERE data->>'commentId' = (SELECT min(id)::text FROM ticket_comments)"
            )
        )
    async with open_stream(live.url, reporter, {"Last-Event-ID": "0"}) as stream:
        await stream.wait_for(lambda s: len(s.events) >= 2)
        await asyncio.sleep(0.3)
    assert [e["event"] for e in stream.events] == ["ticket.created", "comment.created"]
    assert stream.of("comment.created")[0]["data"]["body"] == "recent"


async def test_heartbeat_comments_keep_an_idle_stream_alive(
    live: LiveServer, reporter: Person
) -> None:
    async with open_stream(live.url, reporter) as stream:
        await stream.wait_for(lambda s: s.comments.count("heartbeat") >= 2, within=5)


async def test_unauthenticated_gets_401_and_a_non_sse_client_406_not_a_stream(
    live: LiveServer, reporter: Person
) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        response = await http.get("/api/events", headers={"Accept": "text/event-stream"})
        assert response.status_code == 401
        assert response.json()["code"] == "UNAUTHORIZED"
        for accept in (None, "application/json", "*/*"):
            headers = {**reporter.auth, **({"Accept": accept} if accept else {})}
            response = await http.get("/api/events", headers=headers)
            assert response.status_code == 406, accept
            assert response.json()["code"] == "NOT_ACCEPTABLE"


@pytest.mark.parametrize("how", ["sign-out", "ban"])
async def test_a_revoked_session_or_a_banned_user_ends_the_stream(
    live: LiveServer, database: Database, reporter: Person, how: str
) -> None:
    async with open_stream(live.url, reporter) as stream:
        if how == "sign-out":
            response = await api(live.url, "POST", "/api/auth/sign-out", reporter)
            assert response.status_code == 200, response.text
        else:
            async with database.engine.begin() as conn:
                await conn.execute(
                    text("UPDATE users SET banned = true WHERE id = :id"), {"id": reporter.user.id}
                )
        async with asyncio.timeout(5):
            await stream.ended.wait()
    # Reconnecting is refused.
    response = await api(live.url, "GET", "/api/tickets/my", reporter)
    assert response.status_code == 401


async def test_two_app_instances_each_see_changes_made_through_the_other(
    live_factory: Any, form_id: str, reporter: Person, agent: Person
) -> None:
    node_a, node_b = live_factory(), live_factory()
    ticket = await file_ticket(node_a.url, reporter, form_id)
    async with open_stream(node_a.url, reporter) as on_a, open_stream(node_b.url, agent) as on_b:
        await comment(node_b.url, agent, ticket, "from node b")
        await comment(node_a.url, reporter, ticket, "from node a")
        await on_a.wait_for(lambda s: len(s.of("comment.created")) == 2)
        await on_b.wait_for(lambda s: len(s.of("comment.created")) == 2)
    assert [e["data"]["body"] for e in on_a.of("comment.created")] == ["from node b", "from node a"]
    assert [e["data"]["body"] for e in on_b.of("comment.created")] == ["from node b", "from node a"]


async def test_events_committed_out_of_id_order_all_arrive(
    live: LiveServer, form_id: str, reporter: Person, agent: Person, database: Database
) -> None:
    from tekudasai.tickets import conversation

    first = await file_ticket(live.url, reporter, form_id, "First")
    second = await file_ticket(live.url, reporter, form_id, "Second")
    async with open_stream(live.url, agent) as stream:
        async with database.sessionmaker() as slow, slow.begin():
            # The lower event id, committed last.
            await conversation.add_comment(
                slow, ticket_id=first, author=agent.user, body="early id"
            )
            async with database.sessionmaker() as fast, fast.begin():
                await conversation.add_comment(
                    fast, ticket_id=second, author=agent.user, body="late id"
                )
            await stream.wait_for(lambda s: len(s.of("comment.created")) == 1)
        await stream.wait_for(lambda s: len(s.of("comment.created")) == 2)
    events = stream.of("comment.created")
    assert [e["data"]["body"] for e in events] == ["late id", "early id"]
    assert int(events[0]["id"]) > int(events[1]["id"])


async def test_a_revoked_token_ends_its_stream_and_a_token_needs_tickets_read(
    live: LiveServer, reporter: Person
) -> None:
    from dataclasses import replace

    made = await api(
        live.url, "POST", "/api/me/tokens", reporter, {"name": "feed", "scopes": ["tickets:read"]}
    )
    assert made.status_code == 200, made.text
    token = made.json()
    as_token = replace(reporter, token=token["token"])
    async with open_stream(live.url, as_token) as stream:
        revoked = await api(live.url, "DELETE", f"/api/me/tokens/{token['id']}", reporter)
        assert revoked.status_code == 200, revoked.text
        async with asyncio.timeout(5):
            await stream.ended.wait()

    forms_only = await api(
        live.url, "POST", "/api/me/tokens", reporter, {"name": "forms", "scopes": ["forms:read"]}
    )
    narrow = replace(reporter, token=forms_only.json()["token"])
    refused = await api(live.url, "GET", "/api/events", narrow)
    assert refused.status_code == 403 and refused.json()["code"] == "INSUFFICIENT_SCOPE"


def _stream_timings() -> float:
    """Observations of /api/events in the request-duration histogram of this process."""
    import re

    from tekudasai.monitoring import metrics

    text = metrics.exposition().decode()
    found = re.search(
        r'^tk_http_request_duration_seconds_count\{route="/api/events"\} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


async def test_a_stream_stays_out_of_the_request_latency_metrics(
    live: LiveServer, reporter: Person
) -> None:
    before = _stream_timings()
    async with open_stream(live.url, reporter) as stream:
        await stream.wait_for(lambda s: "heartbeat" in s.comments)
    refused = await api(live.url, "GET", "/api/events", reporter)  # no Accept: 406
    assert refused.status_code == 406
    await asyncio.sleep(0.3)
    # The refusal is timed like any request; the stream's minutes on a page are not.
    assert _stream_timings() == before + 1


async def test_a_role_changed_while_streaming_changes_what_the_stream_sees(
    live: LiveServer,
    database: Database,
    form_id: str,
    reporter: Person,
    other: Person,
    agent: Person,
    agent2: Person,
) -> None:
    """The hub finds an event's streams by audience (staff, or one customer): the session
    re-check moves a promoted customer into the staff's audience and a demoted agent out."""
    theirs = await file_ticket_seen(live, other, form_id, "Theirs")
    hub = live.app.state.live_hub
    async with open_stream(live.url, reporter) as promoted, open_stream(live.url, agent) as demoted:
        async with database.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE users SET role = CASE WHEN id = :r THEN 'agent' ELSE 'user' END"
                    " WHERE id IN (:r, :a)"
                ),
                {"r": reporter.user.id, "a": agent.user.id},
            )
        roles = {reporter.user.id: "agent", agent.user.id: "user"}
        await until(
            lambda: (
                sorted(s.role for s in hub.subscribers if roles.get(s.user_id) == s.role)
                == ["agent", "user"]
            )
        )
        await comment(live.url, agent2, theirs, "Note for staff", internal=True)
        # The demoted agent's own new ticket: its event follows the note on every stream.
        mine = await api(
            live.url,
            "POST",
            "/api/tickets/my",
            agent,
            {"formId": form_id, "summary": "Now a customer", "formResponse": GOOD_RESPONSE},
        )
        assert mine.status_code == 200, mine.text
        await promoted.wait_for(lambda s: len(s.of("ticket.created")) == 1)
        await demoted.wait_for(lambda s: len(s.of("ticket.created")) == 1)
    ticket_events = ("comment.created", "ticket.created", "ticket.updated")
    seen = [e for e in promoted.events if e["event"] in ticket_events]
    assert [e["event"] for e in seen] == ["comment.created", "ticket.created"]
    assert seen[0]["data"]["body"] == "Note for staff"
    assert [e["event"] for e in demoted.events if e["event"] in ticket_events] == ["ticket.created"]
