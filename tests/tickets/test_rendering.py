"""Ticket JSON written by PostgreSQL is exactly the JSON the Python views write."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select, update

from tekudasai.db.session import Database
from tekudasai.forms.models import Form, FormVersion
from tekudasai.tickets import audit, listing
from tekudasai.tickets.models import Ticket, TicketLog
from tekudasai.tickets.schemas import ticket_with_form
from tests.factories import Person
from tests.tickets.conftest import GOOD_RESPONSE, make_form

PANEL_ELEMENTS: list[dict[str, Any]] = [
    {
        "id": "p1",
        "type": "text-panel",
        "name": "intro",
        "content": "**Read** this <script>alert(1)</script> — ünïcode",
    },
    {"id": "e1", "type": "text", "name": "title", "label": "Title", "required": False},
]

AWKWARD_VALUES: list[dict[str, Any]] = [
    {
        "summary": 'Quotes " and \\ backslash, tab\t, newline\n, bell\x07, é, 日本, 🙂',
        "form_response": {"title": "x", "nested": {"list": [1, 2.5, None, True, "ü"]}},
        "created_at": datetime(2026, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC),
    },
    {
        "summary": "Plain",
        "form_response": {},
        "created_at": datetime(1999, 12, 31, 23, 59, 59, 0, tzinfo=UTC),
    },
    {
        "summary": "</script><b>html</b>",
        "form_response": {"big": 12345678901234, "neg": -0.001, "empty": "", "e": 1e21},
        "created_at": datetime(2026, 6, 30, 12, 0, 0, 1_500, tzinfo=UTC),
    },
]


async def _seed(database: Database, reporter: Person, agent: Person) -> None:
    async with database.sessionmaker() as db, db.begin():
        db.add(
            Form(id="panel", name="Panel form", description="", elements=PANEL_ELEMENTS, version=2)
        )
        await db.flush()
        for number in (1, 2):
            db.add(
                FormVersion(
                    form_id="panel",
                    version=number,
                    name=f"Panel v{number}",
                    description=f"Version {number}",
                    elements=PANEL_ELEMENTS[:number],
                )
            )
        await db.flush()
        for index, values in enumerate(AWKWARD_VALUES):
            db.add(
                Ticket(
                    reporter_id=reporter.user.id,
                    assignee_id=agent.user.id if index == 0 else None,
                    status="open",
                    form_id="panel",
                    form_version=1 + index % 2,
                    form_open=index == 2,
                    updated_at=values["created_at"],
                    **values,
                )
            )


def _python_json(view: dict[str, Any]) -> Any:
    return json.loads(json.dumps(view))


async def test_rendered_lists_and_ticket_equal_the_python_views(
    client: httpx.AsyncClient, database: Database, reporter: Person, agent: Person
) -> None:
    await _seed(database, reporter, agent)
    spec = listing.TicketFilter(reporter_id=reporter.user.id)
    async with database.sessionmaker() as db:
        rendered = await listing.list_rendered(db, spec=spec, page=1, limit=10)
        reference = await listing.list_tickets(db, spec=spec, page=1, limit=10)
        assert len(rendered.rows) == len(AWKWARD_VALUES)
        assert [json.loads(item) for item in rendered.rows] == [
            _python_json(ticket_with_form(row)) for row in reference.rows
        ]
        for row in reference.rows:
            # Read with the caller's lookup in its statement (accounts/joined.py).
            one = await client.get(f"/api/tickets/my/{row.ticket.id}", headers=reporter.auth)
            assert one.json()["data"] == _python_json(ticket_with_form(row))
    first = json.loads(rendered.rows[-1])
    assert first["createdAt"] == "2026-01-02T03:04:05.999Z"  # truncated, as Python does
    assert "<script>" not in first["form"]["elements"][0]["contentHtml"]


async def test_a_changed_form_is_shown_changed_in_the_ticket_list(
    client: httpx.AsyncClient, database: Database, reporter: Person, agent: Person
) -> None:
    await _seed(database, reporter, agent)
    before = (await client.get("/api/tickets/my", headers=reporter.auth)).json()["data"]
    assert {t["form"]["disabled"] for t in before} == {False}
    async with database.sessionmaker() as db, db.begin():
        await db.execute(update(Form).where(Form.id == "panel").values(disabled=True))
    after = (await client.get("/api/tickets/my", headers=reporter.auth)).json()["data"]
    assert {t["form"]["disabled"] for t in after} == {True}
    assert after[0]["form"]["updatedAt"] > before[0]["form"]["updatedAt"]
    one = await client.get(f"/api/tickets/my/{after[0]['id']}", headers=reporter.auth)
    assert one.json()["data"]["form"]["disabled"] is True


async def test_the_creation_row_written_in_sql_is_the_one_audit_defines(
    client: httpx.AsyncClient, database: Database, reporter: Person
) -> None:
    await make_form(database, form_id="it-support")
    body = {"formId": "it-support", "summary": "Audited", "formResponse": GOOD_RESPONSE}
    response = await client.post("/api/tickets/my", json=body, headers=reporter.auth)
    ticket_id = response.json()["data"]["id"]
    async with database.sessionmaker() as db:
        ticket = await db.get(Ticket, ticket_id)
        row = await db.scalar(select(TicketLog).where(TicketLog.ticket_id == ticket_id))
    assert ticket is not None and row is not None
    assert (row.action_type, row.action, row.internal) == ("create", audit.CREATED, False)
    assert row.user_id == reporter.user.id
    assert row.details == audit.created_details(ticket)
    assert set(row.details["ticket"]) == {
        "summary",
        "status",
        "reporterId",
        "assigneeId",
        "formId",
        "formVersion",
    }
