"""Automation test data: people, a form, teams and helpers to store rules and file tickets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tekudasai.config import Settings
from tekudasai.db.session import Database
from tests.conftest import make_settings
from tests.factories import Person, make_form, person_fixture

admin = person_fixture("admin")
agent = person_fixture("agent")
customer = person_fixture("user")

ELEMENTS: list[dict[str, Any]] = [
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
    {"id": "e2", "type": "textarea", "name": "description", "label": "What?", "required": True},
]

Rule = Callable[..., Awaitable[dict[str, Any]]]
File = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # Webhooks on loopback (never sent here: the deliveries are only queued).
    return make_settings(db_url, tmp_path / "data", TK_WEBHOOK_ALLOW_PRIVATE="true")


@pytest.fixture
async def form_id(database: Database, admin: Person) -> str:
    return str((await make_form(database, admin, elements=ELEMENTS))["id"])


@pytest.fixture
def rule(client: httpx.AsyncClient, admin: Person) -> Rule:
    """Store an automation through the API; returns its view."""

    async def make(**values: Any) -> dict[str, Any]:
        body = {"name": "Rule", "event": "ticket.created", **values}
        response = await client.post("/api/automations", json=body, headers=admin.auth)
        assert response.status_code == 200, response.text
        return dict(response.json()["data"])

    return make


@pytest.fixture
def file(client: httpx.AsyncClient, customer: Person, form_id: str) -> File:
    """File a ticket as the customer through the API (it must succeed); returns its view."""

    async def make(
        summary: str = "The printer is on fire",
        *,
        as_person: Person | None = None,
        **answers: Any,
    ) -> dict[str, Any]:
        response_body = {"category": "hardware", "description": "It smokes", **answers}
        body = {"formId": form_id, "summary": summary, "formResponse": response_body}
        who = as_person or customer
        response = await client.post("/api/tickets/my", json=body, headers=who.auth)
        assert response.status_code == 200, response.text
        return dict(response.json()["data"])

    return make


async def make_team(
    client: httpx.AsyncClient, admin: Person, name: str, members: list[Person]
) -> str:
    response = await client.post(
        "/api/teams",
        json={"name": name, "memberIds": [m.user.id for m in members]},
        headers=admin.auth,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["id"])


async def ticket_row(database: Database, ticket_id: int) -> dict[str, Any]:
    async with database.engine.connect() as conn:
        row = (
            (await conn.execute(text("SELECT * FROM tickets WHERE id = :id"), {"id": ticket_id}))
            .mappings()
            .one()
        )
    return dict(row)


async def logs(database: Database, ticket_id: int) -> list[dict[str, Any]]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM ticket_logs WHERE ticket_id = :id ORDER BY id"), {"id": ticket_id}
        )
        return [dict(r) for r in rows.mappings()]


async def query(database: Database, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with database.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(text(sql), params)).mappings()]
