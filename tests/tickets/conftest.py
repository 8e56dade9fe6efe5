"""Tickets test data: people of each role, an enabled form, and a helper to file tickets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tekudasai.db.session import Database
from tekudasai.forms.models import Form, FormVersion
from tests.factories import Person, person_fixture

FORM_ELEMENTS: list[dict[str, Any]] = [
    {
        "id": "e1",
        "type": "dropdown",
        "name": "category",
        "label": "Category",
        "required": True,
        "options": [
            {"id": "o1", "label": "Hardware", "value": "hardware"},
            {"id": "o2", "label": "Software", "value": "software"},
        ],
    },
    {
        "id": "e2",
        "type": "textarea",
        "name": "description",
        "label": "What happened?",
        "required": True,
        "placeholder": "",
    },
]
GOOD_RESPONSE = {"category": "hardware", "description": "The screen flickers"}

FileTicket = Callable[..., Awaitable[dict[str, Any]]]


async def make_form(
    database: Database, *, form_id: str, disabled: bool = False, creator: Person | None = None
) -> Form:
    async with database.sessionmaker() as db, db.begin():
        form = Form(
            id=form_id,
            name=f"Form {form_id}",
            description="For tests",
            disabled=disabled,
            elements=FORM_ELEMENTS,
            version=1,
            creator_id=creator.user.id if creator else None,
        )
        db.add(form)
        await db.flush()
        db.add(
            FormVersion(
                form_id=form_id,
                version=1,
                name=form.name,
                description=form.description,
                elements=FORM_ELEMENTS,
            )
        )
    return form


reporter = person_fixture("user")
other = person_fixture("user")
agent = person_fixture("agent")
admin = person_fixture("admin")


@pytest.fixture
async def form(database: Database) -> Form:
    return await make_form(database, form_id="it-support")


@pytest.fixture
def file_ticket(client: httpx.AsyncClient, form: Form) -> FileTicket:
    async def file(person: Person, summary: str = "Printer is on fire", **extra: Any) -> Any:
        body = {"formId": form.id, "summary": summary, "formResponse": GOOD_RESPONSE, **extra}
        response = await client.post("/api/tickets/my", json=body, headers=person.auth)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    return file


async def scalar(database: Database, sql: str, **params: Any) -> Any:
    async with database.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


@pytest.fixture
async def ticket(reporter: Person, file_ticket: FileTicket) -> dict[str, Any]:
    """A ticket the reporter has just filed."""
    return await file_ticket(reporter)
