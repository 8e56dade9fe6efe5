"""Personal access tokens: shown once, stored hashed, scoped, capped by the owner's role."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import select, update

from tekudasai.accounts.dependencies import (
    caller,
    optional_principal,
    require_admin,
    require_principal,
    require_session,
    require_staff,
)
from tekudasai.accounts.models import ApiToken, User
from tekudasai.app import API_ROUTERS
from tekudasai.core.crypto import PiiCipher, hash_token
from tekudasai.db.session import Database
from tests.factories import Person, make_person


async def create(
    client: httpx.AsyncClient, person: Person, scopes: list[str], **extra: Any
) -> httpx.Response:
    body = {"name": "ci", "scopes": scopes, **extra}
    return await client.post("/api/me/tokens", json=body, headers=person.auth)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_token_is_shown_once_and_stored_hashed(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    made = await create(client, person, ["tickets:read"], expiresInDays=30)
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["token"].startswith("tkp_") and body["scopes"] == ["tickets:read"]
    assert body["expiresAt"] is not None and body["lastUsedAt"] is None
    listed = (await client.get("/api/me/tokens", headers=person.auth)).json()
    assert [t["id"] for t in listed] == [body["id"]] and "token" not in listed[0]
    async with database.sessionmaker() as db:
        row = await db.get(ApiToken, body["id"])
    assert row is not None and row.token_hash == hash_token(body["token"])
    assert body["token"].encode() not in row.token_hash


async def test_bearer_use_scope_refusal_and_last_used(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    token = (await create(client, person, ["tickets:read"])).json()["token"]
    mine = await client.get("/api/tickets/my", headers=bearer(token))
    assert mine.status_code == 200, mine.text
    forms = await client.get("/api/forms/enabled", headers=bearer(token))
    assert forms.status_code == 403 and forms.json()["code"] == "INSUFFICIENT_SCOPE"
    # A token cannot reach session-only routes (minting more tokens, say).
    minted = await client.post(
        "/api/me/tokens", json={"name": "x", "scopes": ["admin"]}, headers=bearer(token)
    )
    assert minted.status_code == 403 and minted.json()["code"] == "INSUFFICIENT_SCOPE"
    listed = (await client.get("/api/me/tokens", headers=person.auth)).json()
    assert listed[0]["lastUsedAt"] is not None


async def test_role_caps_the_token(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    customer = await make_person(database, cipher)
    token = (await create(client, customer, ["users:read"])).json()["token"]
    assert (await client.get("/api/users", headers=bearer(token))).status_code == 404

    admin = await make_person(database, cipher, role="admin")
    await make_person(database, cipher, role="admin")  # never zero admins after the demotion
    admin_token = (await create(client, admin, ["admin"])).json()["token"]
    assert (await client.get("/api/users", headers=bearer(admin_token))).status_code == 200
    async with database.sessionmaker() as db, db.begin():
        await db.execute(update(User).where(User.id == admin.user.id).values(role="user"))
    assert (await client.get("/api/users", headers=bearer(admin_token))).status_code == 404


async def test_banned_owner_and_expired_token_get_401(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    token = (await create(client, person, ["tickets:read"])).json()
    assert (await client.get("/api/tickets/my", headers=bearer(token["token"]))).status_code == 200
    async with database.sessionmaker() as db, db.begin():
        await db.execute(
            update(ApiToken)
            .where(ApiToken.id == token["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    expired = await client.get("/api/tickets/my", headers=bearer(token["token"]))
    assert expired.status_code == 401

    other = await make_person(database, cipher)
    live = (await create(client, other, ["tickets:read"])).json()["token"]
    async with database.sessionmaker() as db, db.begin():
        await db.execute(update(User).where(User.id == other.user.id).values(banned=True))
    assert (await client.get("/api/tickets/my", headers=bearer(live))).status_code == 401


async def test_revoke_by_owner_and_admin(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    owner = await make_person(database, cipher)
    stranger = await make_person(database, cipher)
    admin = await make_person(database, cipher, role="admin")
    first = (await create(client, owner, ["tickets:read"])).json()
    second = (await create(client, owner, ["tickets:read"])).json()

    theirs = await client.delete(f"/api/me/tokens/{first['id']}", headers=stranger.auth)
    assert theirs.status_code == 404
    assert (await client.get("/api/tokens", headers=owner.auth)).status_code == 404

    gone = await client.delete(f"/api/me/tokens/{first['id']}", headers=owner.auth)
    assert gone.status_code == 200
    assert (await client.get("/api/tickets/my", headers=bearer(first["token"]))).status_code == 401

    everyone = (await client.get("/api/tokens", headers=admin.auth)).json()
    assert {t["id"]: t["userId"] for t in everyone} == {second["id"]: owner.user.id}
    assert (
        await client.delete(f"/api/tokens/{second['id']}", headers=admin.auth)
    ).status_code == 200
    async with database.sessionmaker() as db:
        assert (await db.scalars(select(ApiToken.id))).all() == []


async def test_bad_input_is_a_validation_error(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    for body in (
        {"name": "x", "scopes": ["tickets:delete"]},
        {"name": "  ", "scopes": ["tickets:read"]},
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["tickets:read"], "expiresInDays": 0},
        {"name": "x", "scopes": ["tickets:read"], "expiresInDays": 3651},
        {"name": "x", "scopes": "tickets:read"},
    ):
        response = await client.post("/api/me/tokens", json=body, headers=person.auth)
        assert response.status_code == 400, body
        assert response.json()["code"] == "VALIDATION_ERROR", body


async def test_bearer_token_is_exempt_from_csrf(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    admin = await make_person(database, cipher, role="admin")
    target = await make_person(database, cipher)
    token = (await create(client, admin, ["users:write"])).json()["token"]
    evil = {"Origin": "https://evil.example"}
    by_token = await client.post(
        "/api/auth/admin/set-role",
        json={"userId": target.user.id, "role": "agent"},
        headers=bearer(token) | evil,
    )
    assert by_token.status_code == 200, by_token.text
    client.cookies.set("tk.session_token", admin.token)
    by_cookie = await client.post(
        "/api/auth/admin/set-role", json={"userId": target.user.id, "role": "user"}, headers=evil
    )
    assert by_cookie.status_code == 403


LOOKS_UP_PRINCIPAL = {
    caller,  # the lookup that goes with the route's read (accounts/joined.py)
    optional_principal,
    require_principal,
    require_staff,
    require_admin,
    require_session,
}


def _uses_principal(dependant: Dependant) -> bool:
    return any(
        sub.call in LOOKS_UP_PRINCIPAL or _uses_principal(sub) for sub in dependant.dependencies
    )


async def test_every_authenticated_api_route_declares_scopes(client: httpx.AsyncClient) -> None:
    """Every API route that looks up who is asking says in the OpenAPI document (`x-scopes`)
    which scopes a token needs, unless it is session only by design (sign-in state and the
    token API itself: those refuse tokens)."""
    session_only = {
        "/api/auth/signout-all",
        "/api/auth/verify-request",
        "/api/auth/session",
        "/api/auth/signout",
        # better-auth's names for the same four
        "/api/auth/revoke-sessions",
        "/api/auth/send-verification-email",
        "/api/auth/get-session",
        "/api/auth/sign-out",
        "/api/me/tokens",
        "/api/me/tokens/{token_id}",
        "/api/tokens",
        "/api/tokens/{token_id}",
        # two-factor and passkeys: sign-in state, session only by design
        *(
            f"/api/auth/two-factor/{name}"
            for name in (
                "enable",
                "get-totp-uri",
                "generate-backup-codes",
                "disable",
                "verify-totp",
                "verify-backup-code",
            )
        ),
        *(
            f"/api/auth/passkey/{name}"
            for name in (
                "generate-register-options",
                "verify-registration",
                "list-user-passkeys",
                "delete-passkey",
                "update-passkey",
            )
        ),
    }
    document = (await client.get("/api/openapi.json")).json()
    authenticated = [
        route
        for router in API_ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and _uses_principal(route.dependant)
    ]
    assert len(authenticated) > 30  # the walk finds the routes
    missing = []
    for route in authenticated:
        path = "/api" + route.path
        declared = (route.openapi_extra or {}).get("x-scopes")
        if path in session_only:
            assert declared is None, path
            continue
        for method in route.methods:
            shown = document["paths"][path][method.lower()] if route.include_in_schema else None
            if not declared or (shown is not None and shown.get("x-scopes") != declared):
                missing.append(f"{method} {path}")
    assert missing == []
    listed = document["paths"]["/api/tickets/my"]
    assert listed["get"]["x-scopes"] == ["tickets:read"]
    assert listed["post"]["x-scopes"] == ["tickets:write"]
