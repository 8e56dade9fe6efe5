"""Ticket pages with answers stored as blanks (contract: "Stored answers"): an unanswered
element is not shown as an answer, least of all as a download link to nothing."""

from __future__ import annotations

from typing import Any

import httpx

from tekudasai.tickets import service as tickets_service
from tests.factories import make_form, make_person

HTML = {"Accept": "text/html"}


async def test_unanswered_elements_are_not_listed_on_the_ticket_pages(
    client: httpx.AsyncClient, database: Any, cipher: Any
) -> None:
    admin = await make_person(database, cipher, role="admin")
    customer = await make_person(database, cipher)
    form = await make_form(
        database,
        admin,
        elements=[
            {"type": "textarea", "name": "details", "label": "Details"},
            {"type": "file-upload", "name": "shot", "label": "Screenshot"},
            {"type": "checkbox", "name": "urgent", "label": "Urgent"},
        ],
    )
    async with database.sessionmaker() as db, db.begin():
        ticket = await tickets_service.create_ticket(
            db,
            reporter_id=customer.user.id,
            form_id=form["id"],
            summary="Blank answers",
            form_response={"details": "It broke"},
        )
    assert ticket.form_response == {"details": "It broke", "shot": "", "urgent": ""}
    for person, path in (
        (customer, f"/tickets/{ticket.id}"),
        (admin, f"/agent/tickets/{ticket.id}"),
    ):
        client.cookies.clear()
        client.cookies.set("tk.session_token", person.token)
        page = await client.get(path, headers=HTML)
        assert page.status_code == 200, page.text
        assert "It broke" in page.text
        assert 'href="/api/uploads/"' not in page.text
        assert "Download attachment" not in page.text
        assert "<dt>Screenshot</dt>" not in page.text and "<dt>Urgent</dt>" not in page.text
