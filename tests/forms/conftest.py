"""Fixtures of the forms tests: people of each role and a helper to create forms over HTTP."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import Person, person_fixture

admin = person_fixture("admin")
agent = person_fixture("agent")
customer = person_fixture("user")


async def create_form(
    client: httpx.AsyncClient, admin: Person, elements: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    body = {"name": "Form", "description": "", "elements": elements, **extra}
    response = await client.post("/api/forms", json=body, headers=admin.auth)
    assert response.status_code == 200, response.text
    return response.json()["data"]
