"""POST /api/inbound/email through the real app (ASGI), and the channel of API requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tekudasai.app import create_app
from tekudasai.config import Settings
from tekudasai.db.session import Database
from tests.conftest import BASE_URL, make_settings
from tests.factories import Person
from tests.inbound.conftest import PNG, build, rows, value
from tests.test_openapi import check, document
from tests.tickets.conftest import GOOD_RESPONSE, make_form

TOKEN = "inbound-secret-0123456789"
RFC822 = {"Content-Type": "message/rfc822"}
AUTH = {**RFC822, "Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "data", TK_INBOUND_MAIL_TOKEN=TOKEN)


async def test_a_message_becomes_a_ticket_then_a_comment(
    client: httpx.AsyncClient, database: Database, reporter: Person
) -> None:
    doc = await document(client)
    created = await client.post(
        "/api/inbound/email", content=build(sender=reporter.email), headers=AUTH
    )
    assert created.status_code == 200, created.text
    check(doc, "/api/inbound/email", "post", created)
    data = created.json()["data"]
    assert data["action"] == "ticket" and set(data) == {"action", "ticketId"}
    tid = data["ticketId"]
    reply = build(sender=reporter.email, subject=f"Re: [TK #{tid}]", body="Still broken.")
    commented = await client.post("/api/v1/inbound/email", content=reply, headers=AUTH)
    assert commented.json() == {"status": "success", "data": {"action": "comment", "ticketId": tid}}
    ignored = await client.post("/api/inbound/email", content=reply, headers=AUTH)
    check(doc, "/api/inbound/email", "post", ignored)
    assert ignored.json()["data"] == {
        "action": "ignored",
        "reason": "already processed (same Message-ID)",
    }
    # The agent's view of the ticket shows where it came from.
    ticket = (await rows(database, "SELECT channel FROM tickets WHERE id = :i", i=tid))[0]
    assert ticket.channel == "email"


async def test_a_bad_or_missing_token_is_401(client: httpx.AsyncClient, database: Database) -> None:
    raw = build(sender="a@example.net")
    for headers in (
        RFC822,
        {**RFC822, "Authorization": "Bearer wrong"},
        {**RFC822, "Authorization": TOKEN},
    ):
        response = await client.post("/api/inbound/email", content=raw, headers=headers)
        assert response.status_code == 401 and response.json()["code"] == "UNAUTHORIZED"
    assert await value(database, "SELECT count(*) FROM tickets") == 0


async def test_not_a_message_is_400(client: httpx.AsyncClient) -> None:
    doc = await document(client)
    for body in (b"", b"just some words, no headers", b"\x00\xff" * 100):
        response = await client.post("/api/inbound/email", content=body, headers=AUTH)
        assert response.status_code == 400, body
        assert response.json()["code"] == "INVALID_MESSAGE"
        check(doc, "/api/inbound/email", "post", response)


async def test_over_35_mb_is_413_with_a_clear_message(client: httpx.AsyncClient) -> None:
    raw = build(
        sender="a@example.net",
        attachments=[("big.pdf", "application/pdf", bytes(27 * 1024 * 1024))],
    )
    assert len(raw) > 35 * 1024 * 1024
    response = await client.post("/api/inbound/email", content=raw, headers=AUTH)
    assert response.status_code == 413
    assert response.json()["message"] == "The message is larger than the 35 MiB limit."

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for start in range(0, len(raw), 1024 * 1024):
            yield raw[start : start + 1024 * 1024]

    streamed = await client.post("/api/inbound/email", content=chunks(), headers=AUTH)
    assert streamed.status_code == 413


async def test_a_large_message_below_the_limit_is_taken(
    client: httpx.AsyncClient, database: Database
) -> None:
    raw = build(
        sender="a@example.net",
        attachments=[("shot.png", "image/png", PNG + bytes(3 * 1024 * 1024))],
    )
    assert len(raw) > 4 * 1024 * 1024  # far over the JSON bodies' 1 MiB
    response = await client.post("/api/inbound/email", content=raw, headers=AUTH)
    assert response.status_code == 200 and response.json()["data"]["action"] == "ticket"
    assert await value(database, "SELECT count(*) FROM uploads") == 1


async def test_the_route_is_absent_without_a_token(
    database: Database, tmp_path: Path, db_url: str
) -> None:
    app = create_app(make_settings(db_url, tmp_path / "d2"), database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client,
    ):
        response = await client.post(
            "/api/inbound/email", content=build(sender="a@x.example"), headers=AUTH
        )
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"


async def test_channel_of_tickets_and_comments_by_how_the_request_signed_in(
    client: httpx.AsyncClient, database: Database, reporter: Person, agent: Person
) -> None:
    form = await make_form(database, form_id="it")
    made = await client.post(
        "/api/me/tokens",
        json={"name": "ci", "scopes": ["tickets:write", "tickets:read"]},
        headers=reporter.auth,
    )
    pat = {"Authorization": f"Bearer {made.json()['token']}"}
    body = {"formId": form.id, "summary": "By token", "formResponse": GOOD_RESPONSE}
    by_token = (await client.post("/api/tickets/my", json=body, headers=pat)).json()["data"]
    assert by_token["channel"] == "api"
    by_session = (await client.post("/api/tickets/my", json=body, headers=reporter.auth)).json()[
        "data"
    ]
    assert by_session["channel"] == "web"
    comment = await client.post(
        f"/api/tickets/my/{by_session['id']}/comments", json={"body": "hi"}, headers=pat
    )
    assert comment.json()["data"]["channel"] == "api"
    listed = (await client.get(f"/api/tickets/my/{by_token['id']}", headers=pat)).json()["data"]
    assert listed["channel"] == "api"
    page = (await client.get("/api/tickets", headers=agent.auth)).json()["data"]
    assert {t["id"]: t["channel"] for t in page} == {by_token["id"]: "api", by_session["id"]: "web"}
    events = await rows(
        database, "SELECT data FROM ticket_events WHERE type = 'ticket.created' ORDER BY id"
    )
    assert [e.data["channel"] for e in events] == ["api", "web"]


async def test_the_agent_page_shows_the_channel(
    client: httpx.AsyncClient, reporter: Person, agent: Person
) -> None:
    raw = build(sender=reporter.email, subject="Mailed in")
    tid = (await client.post("/api/inbound/email", content=raw, headers=AUTH)).json()["data"][
        "ticketId"
    ]
    reply = build(sender=reporter.email, subject=f"[TK #{tid}]", body="More details.")
    await client.post("/api/inbound/email", content=reply, headers=AUTH)
    page = await client.get(f"/agent/tickets/{tid}", headers=agent.auth)
    assert page.status_code == 200
    assert 'data-channel="email">Filed by e-mail</span>' in page.text
    assert 'data-channel="email">by e-mail</span>' in page.text
    stranger = build(sender="mallory@evil.example", subject=f"[TK #{tid}]", body="Pay me.")
    await client.post("/api/inbound/email", content=stranger, headers=AUTH)
    page = await client.get(f"/agent/tickets/{tid}", headers=agent.auth)
    assert "<strong>Unknown sender</strong>" in page.text and "Pay me." in page.text
    mine = await client.get(f"/tickets/{tid}", headers=reporter.auth)
    assert mine.status_code == 200 and "Pay me." not in mine.text
