"""Bad input gets a clear error and leaves nothing behind; nothing personal is stored in clear."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from tekudasai.accounts.models import Account, Session, User, Verification
from tekudasai.db.session import Database

GOOD = {"name": "Grace Hopper", "email": "grace@navy.test", "password": "cobol-compiler-1959"}


async def rows(database: Database) -> int:
    async with database.sessionmaker() as db:
        total = 0
        for model in (User, Account, Session, Verification):
            total += int(await db.scalar(select(func.count()).select_from(model)) or 0)
        return total


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GOOD, "email": "not-an-email"}, "email"),
        ({**GOOD, "email": "two@@at.test"}, "email"),
        ({**GOOD, "password": "short"}, "password"),
        ({"name": "x", "email": "x@y.test"}, "password"),
        ({"email": "x@y.test", "password": "long-enough-pw"}, "name"),
        ({**GOOD, "name": 42}, "name"),
        ({**GOOD, "password": ["a"]}, "password"),
        ({**GOOD, "rememberMe": {"x": 1}}, "rememberMe"),
        ({**GOOD, "name": "n" * 1_000_000}, "name"),
        ({**GOOD, "password": "p" * 900_000}, "password"),
        ({**GOOD, "email": "e" * 500_000 + "@x.test"}, "email"),
        ({**GOOD, "name": "   "}, "name"),
    ],
)
async def test_bad_sign_up_is_refused_and_stores_nothing(
    client: httpx.AsyncClient, database: Database, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/auth/signup", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["status"] == "error" and error["code"] == "VALIDATION_ERROR"
    assert field in {e["field"] for e in error.get("errors", [])} or field in error["message"]
    assert await rows(database) == 0


async def test_body_over_one_mebibyte_is_413(client: httpx.AsyncClient, database: Database) -> None:
    response = await client.post(
        "/api/auth/signup", json={**GOOD, "name": "n" * (1024 * 1024 + 10)}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert await rows(database) == 0


async def test_not_json_is_a_validation_error(
    client: httpx.AsyncClient, database: Database
) -> None:
    response = await client.post(
        "/api/auth/signin", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"


async def test_duplicate_sign_up_is_422_and_keeps_the_first(
    client: httpx.AsyncClient, database: Database
) -> None:
    assert (await client.post("/api/auth/signup", json=GOOD)).status_code == 200
    before = await rows(database)
    again = await client.post(
        "/api/auth/signup", json={**GOOD, "email": "GRACE@navy.test", "name": "Impostor"}
    )
    assert again.status_code == 422
    assert again.json()["code"] == "USER_ALREADY_EXISTS"
    assert await rows(database) == before


async def test_internal_domains_are_valid_addresses(client: httpx.AsyncClient) -> None:
    for address in ("a@intranet.local", "b@corp.internal", "c@company", "d@host.lan"):
        response = await client.post("/api/auth/signup", json={**GOOD, "email": address})
        assert response.status_code == 200, (address, response.text)


async def test_no_plaintext_personal_data_or_secrets_anywhere(
    client: httpx.AsyncClient, database: Database
) -> None:
    response = await client.post("/api/auth/signup", json=GOOD)
    assert response.status_code == 200
    token = response.json()["token"]
    # Also a reset token and a verification token exist now.
    await client.post("/api/auth/reset-password-request", json={"email": GOOD["email"]})
    needles = [
        GOOD["email"],
        GOOD["email"].split("@")[0],
        GOOD["name"],
        "Grace",
        "Hopper",
        GOOD["password"],
        token,
    ]
    async with database.engine.connect() as conn:
        columns = (
            await conn.execute(
                text(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND data_type IN "
                    "('text', 'bytea', 'jsonb', 'json', 'character varying', 'ARRAY')"
                )
            )
        ).all()
        assert len(columns) > 20
        scanned = 0
        for table, column, data_type in columns:
            as_text = (
                f"encode(\"{column}\", 'escape')" if data_type == "bytea" else f'"{column}"::text'
            )
            values = (await conn.execute(text(f'SELECT {as_text} FROM "{table}"'))).scalars().all()
            for value in values:
                if value is None:
                    continue
                scanned += 1
                lowered = value.lower()
                for needle in needles:
                    assert needle.lower() not in lowered, f"{needle!r} in {table}.{column}"
        assert scanned > 10
