"""Fixtures of the forms tests: people of each role and a helper to create forms over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.factories import Person, make_person


@pytest.fixture
async def admin(database: Database, cipher: PiiCipher) -> Person:
    return await make_person(database, cipher, role="admin")


@pytest.fixture
async def agent(database: Database, cipher: PiiCipher) -> Person:
    return await make_person(database, cipher, role="agent")


@pytest.fixture
async def customer(database: Database, cipher: PiiCipher) -> Person:
    return await make_person(database, cipher, role="user")


async def create_form(
    client: httpx.AsyncClient, admin: Person, elements: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    body = {"name": "Form", "description": "", "elements": elements, **extra}
    response = await client.post("/api/forms", json=body, headers=admin.auth)
    assert response.status_code == 200, response.text
    return response.json()["data"]
