"""The reply form's collision check (web form only): a public reply after someone else's is
answered 409 with their reply and the draft kept, unless confirmed; the API is unchanged."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import select

from tekudasai.live import publish
from tekudasai.tickets import conversation
from tekudasai.tickets.models import TicketComment
from tests.factories import Person, make_person
from tests.live.conftest import LiveServer, open_stream
from tests.web.test_pages import HTML, a_ticket, as_browser, csrf, submit

SEEN = re.compile(r'name="seen" value="(\d+)"')


async def comments(database: Any) -> list[str]:
    async with database.sessionmaker() as db:
        rows = await db.scalars(select(TicketComment.body).order_by(TicketComment.id))
        return list(rows)


async def add(database: Any, ticket_id: int, author: Person, body: str, **kw: Any) -> None:
    async with database.sessionmaker() as db, db.begin():
        await conversation.add_comment(db, ticket_id=ticket_id, author=author.user, body=body, **kw)


async def test_a_colliding_reply_asks_first_and_keeps_the_draft(
    client: httpx.AsyncClient, database: Any, cipher: Any
) -> None:
    customer = await make_person(database, cipher, name="Carla Customer")
    me = await make_person(database, cipher, role="agent")
    colleague = await make_person(database, cipher, role="agent", name="Aiko Tanaka")
    ticket_id = await a_ticket(database, cipher, customer)
    await add(database, ticket_id, customer, "First question")
    as_browser(client, me)
    page = await client.get(f"/agent/tickets/{ticket_id}", headers=HTML)
    seen = SEEN.search(page.text)
    assert seen is not None
    token = await csrf(client, f"/agent/tickets/{ticket_id}")
    path = f"/agent/tickets/{ticket_id}/comment"

    # My own later note and a colleague's internal note do not collide; a public reply does.
    await add(database, ticket_id, me, "my own earlier reply")
    await add(database, ticket_id, colleague, "internal thoughts", internal=True)
    await add(database, ticket_id, colleague, "Aiko's answer <b>to</b> the customer")
    draft = "My answer\nwith two lines"
    asked = await submit(client, path, token, body=draft, internal="false", seen=seen.group(1))
    assert asked.status_code == 409
    assert "Someone else replied while you were writing." in asked.text
    assert "Aiko&#39;s answer &lt;b&gt;to&lt;/b&gt; the customer" in asked.text  # escaped
    assert "internal thoughts" not in asked.text.split("data-collision")[1].split("</ol>")[0]
    assert f">{draft}</textarea>" in asked.text
    assert 'name="confirm" value="1"' in asked.text
    assert draft not in await comments(database)

    # An internal note never asks; a confirmed reply is sent.
    note = await submit(client, path, token, body="note", internal="true", seen=seen.group(1))
    assert note.status_code == 303
    sent = await submit(
        client, path, token, body=draft, internal="false", seen=seen.group(1), confirm="1"
    )
    assert sent.status_code == 303
    assert (await comments(database))[-1] == "My answer\nwith two lines"

    # The page rendered now has seen everything: no prompt. Garbage or no `seen`: no check.
    fresh = SEEN.search((await client.get(f"/agent/tickets/{ticket_id}", headers=HTML)).text)
    assert fresh is not None
    for seen_value in (fresh.group(1), "garbage", None):
        fields = {"body": f"again {seen_value}", "internal": "false"}
        if seen_value is not None:
            fields["seen"] = seen_value
        assert (await submit(client, path, token, **fields)).status_code == 303


async def test_the_api_reply_has_no_collision_check(
    client: httpx.AsyncClient, database: Any, cipher: Any
) -> None:
    customer = await make_person(database, cipher)
    agent = await make_person(database, cipher, role="agent")
    ticket_id = await a_ticket(database, cipher, customer)
    await add(database, ticket_id, customer, "question")
    response = await client.post(
        f"/api/tickets/{ticket_id}/comments",
        json={"body": "answer", "internal": False},
        headers=agent.auth,
    )
    assert response.status_code == 200


async def test_a_notification_reaches_only_its_user_and_only_on_commit(
    live: LiveServer, database: Any, reporter: Person, other: Person
) -> None:
    async with open_stream(live.url, reporter) as mine, open_stream(live.url, other) as theirs:
        async with database.sessionmaker() as db:
            async with db.begin():
                await publish.notification(
                    db, user_id=reporter.user.id, data={"id": 1, "title": "rolled back"}
                )
                await db.rollback()
            async with db.begin():
                await publish.notification(
                    db, user_id=reporter.user.id, data={"id": 2, "title": "Your ticket moved"}
                )
        await mine.wait_for(lambda s: bool(s.of("notification")))
        await theirs.wait_for(lambda s: "heartbeat" in s.comments)
    assert [e["data"] for e in mine.of("notification")] == [{"id": 2, "title": "Your ticket moved"}]
    assert theirs.of("notification") == []
