"""Sign-up, sign-in, session, sign-out through the HTTP API (real PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from tekudasai.accounts.models import Account, Session, User, Verification
from tekudasai.accounts.passwords import hasher
from tekudasai.core.crypto import PiiCipher, hash_token
from tekudasai.db.session import Database
from tests.factories import make_person

SIGNUP = {"name": "Ada Lovelace", "email": "Ada@Example.Test", "password": "analytical-engine"}


async def count(database: Database, model: type) -> int:
    async with database.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def test_sign_up_returns_token_user_and_cookie(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/sign-up/email", json=SIGNUP)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["email"] == "ada@example.test"
    assert body["user"]["name"] == "Ada Lovelace"
    assert body["user"]["role"] == "user"
    assert body["user"]["emailVerified"] is False
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"tk.session_token={body['token']};")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert response.headers["cache-control"] == "no-store"

    session = await client.get("/api/auth/session")
    assert session.status_code == 200
    assert session.json()["user"]["id"] == body["user"]["id"]
    assert session.json()["session"]["userId"] == body["user"]["id"]


async def test_session_is_null_when_signed_out(client: httpx.AsyncClient) -> None:
    for path in ("/api/auth/session", "/api/v1/auth/get-session"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.text == "null"


async def test_secure_cookie_on_https(settings_with, database: Database) -> None:  # type: ignore[no-untyped-def]
    from tests.accounts.conftest import client_for

    settings = settings_with(BETTER_AUTH_URL="https://desk.example.test")
    async with client_for(database, settings, origin="https://desk.example.test") as client:
        response = await client.post("/api/auth/signup", json=SIGNUP)
    assert response.status_code == 200, response.text
    assert "Secure" in response.headers["set-cookie"]


async def test_sign_in_with_bearer_and_sign_out_revokes(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    response = await client.post(
        "/api/auth/sign-in/email", json={"email": person.email.upper(), "password": person.password}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["redirect"] is False and body["user"]["email"] == person.email
    token = body["token"]
    client.cookies.clear()
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/auth/session", headers=bearer)).json()["user"]["id"] == (
        person.user.id
    )
    # The other session (the factory's) survives signing out of this one.
    out = await client.post("/api/auth/sign-out", headers=bearer)
    assert out.json() == {"success": True}
    assert (await client.get("/api/auth/session", headers=bearer)).text == "null"
    assert (await client.get("/api/auth/session", headers=person.auth)).json() is not None
    async with database.sessionmaker() as db:
        assert (
            await db.scalar(select(Session).where(Session.token_hash == hash_token(token))) is None
        )


async def test_sign_out_everywhere(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    signed_in = await client.post(
        "/api/auth/signin", json={"email": person.email, "password": person.password}
    )
    assert signed_in.status_code == 200
    response = await client.post("/api/auth/signout-all")  # by cookie
    assert response.status_code == 200, response.text
    assert response.json()["revoked"] == 2
    assert (await client.get("/api/auth/session", headers=person.auth)).text == "null"
    assert (await client.get("/api/auth/session")).text == "null"


async def test_wrong_password_and_unknown_email_look_the_same(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    wrong = await client.post(
        "/api/auth/signin", json={"email": person.email, "password": "nope-nope-nope"}
    )
    unknown = await client.post(
        "/api/auth/signin", json={"email": "ghost@example.test", "password": "nope-nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["code"] == "INVALID_EMAIL_OR_PASSWORD"
    assert "set-cookie" not in wrong.headers


async def test_remember_me_off_gives_short_browser_session(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    response = await client.post(
        "/api/auth/signin",
        json={"email": person.email, "password": person.password, "rememberMe": False},
    )
    assert response.status_code == 200
    assert "Max-Age" not in response.headers["set-cookie"]
    expires = datetime.fromisoformat(
        (await client.get("/api/auth/session"))
        .json()["session"]["expiresAt"]
        .replace("Z", "+00:00")
    )
    assert expires - datetime.now(UTC) < timedelta(hours=25)

    remembered = await client.post(
        "/api/auth/signin", json={"email": person.email, "password": person.password}
    )
    assert "Max-Age=604800" in remembered.headers["set-cookie"]


async def test_sliding_renewal_extends_a_half_used_session(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    soon = datetime.now(UTC) + timedelta(days=2)
    async with database.sessionmaker() as db, db.begin():
        await db.execute(
            update(Session)
            .where(Session.token_hash == hash_token(person.token))
            .values(expires_at=soon)
        )
    body = (await client.get("/api/auth/session", headers=person.auth)).json()
    renewed = datetime.fromisoformat(body["session"]["expiresAt"].replace("Z", "+00:00"))
    assert renewed > datetime.now(UTC) + timedelta(days=6)
    # Fresh sessions are not rewritten on every request.
    again = (await client.get("/api/auth/session", headers=person.auth)).json()
    assert again["session"]["updatedAt"] == body["session"]["updatedAt"]


async def test_expired_session_is_refused(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    async with database.sessionmaker() as db, db.begin():
        await db.execute(
            update(Session)
            .where(Session.user_id == person.user.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert (await client.get("/api/auth/session", headers=person.auth)).text == "null"
    assert (await client.post("/api/auth/signout-all", headers=person.auth)).status_code == 401


async def test_rehash_on_sign_in_when_parameters_changed(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    from argon2 import PasswordHasher

    person = await make_person(database, cipher)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(person.password)
    async with database.sessionmaker() as db, db.begin():
        await db.execute(
            update(Account).where(Account.user_id == person.user.id).values(password=weak)
        )
    response = await client.post(
        "/api/auth/signin", json={"email": person.email, "password": person.password}
    )
    assert response.status_code == 200
    async with database.sessionmaker() as db:
        stored = await db.scalar(select(Account.password).where(Account.user_id == person.user.id))
    assert stored != weak and not hasher().check_needs_rehash(stored)
    assert hasher().verify(stored, person.password)


async def test_principal_is_one_query(
    client: httpx.AsyncClient,
    database: Database,
    cipher: PiiCipher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sqlalchemy import event

    from tekudasai.db import raw

    person = await make_person(database, cipher)
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    def record_raw(statement: str, values: object, seconds: float) -> None:  # to the driver
        statements.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    monkeypatch.setattr(raw, "observer", record_raw)
    try:
        response = await client.get("/api/auth/session", headers=person.auth)
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)
    assert response.status_code == 200
    queries = [
        s for s in statements if s.lstrip().upper().startswith(("SELECT", "UPDATE", "INSERT"))
    ]
    assert len(queries) == 1, queries
    assert "JOIN sessions" in queries[0]
    assert await count(database, User) == 1


async def test_purge_expired_sessions_and_tokens(database: Database, cipher: PiiCipher) -> None:
    from tekudasai.accounts import service
    from tekudasai.accounts.jobs import purge_expired

    alive = await make_person(database, cipher)
    gone = await make_person(database, cipher)
    async with database.sessionmaker() as db, db.begin():
        await db.execute(
            update(Session)
            .where(Session.user_id == gone.user.id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        await service.issue_token(db, user_id=alive.user.id, purpose=service.RESET_PASSWORD)
        await service.issue_token(db, user_id=gone.user.id, purpose=service.VERIFY_EMAIL)
        await db.execute(
            update(Verification)
            .where(Verification.user_id == gone.user.id)
            .values(expires_at=datetime.now(UTC) - timedelta(days=2))
        )
    async with database.sessionmaker() as db, db.begin():
        purged = await purge_expired(db)
    assert purged["sessions"] == 1 and purged["tokens"] == 1
    assert await count(database, Session) == 1
    assert await count(database, Verification) == 1


async def test_openapi_lists_the_auth_routes(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/openapi.json")).json()
    for path in ("/api/auth/signup", "/api/auth/signin", "/api/auth/session", "/api/users"):
        assert path in schema["paths"], path


async def _signed_in_near_renewal(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> str:
    """Signs in (the client keeps the remember-me cookie) with a day left of the session."""
    person = await make_person(database, cipher)
    signed_in = await client.post(
        "/api/auth/signin", json={"email": person.email, "password": person.password}
    )
    token = signed_in.json()["token"]
    async with database.sessionmaker() as db, db.begin():
        await db.execute(
            update(Session)
            .where(Session.token_hash == hash_token(token))
            .values(expires_at=datetime.now(UTC) + timedelta(days=1))
        )
    return str(token)


async def test_sliding_renewal_refreshes_the_cookie(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    token = await _signed_in_near_renewal(client, database, cipher)
    renewed = await client.get("/api/auth/session")
    assert renewed.status_code == 200
    assert f"tk.session_token={token};" in renewed.headers["set-cookie"]
    assert "Max-Age=604800" in renewed.headers["set-cookie"]
    quiet = await client.get("/api/auth/session")
    assert "set-cookie" not in quiet.headers


@pytest.mark.parametrize("path", ["/api/tickets/my", "/api/auth/session", "/"])
async def test_sliding_renewal_refreshes_the_cookie_whatever_the_route(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher, path: str
) -> None:
    # Routes that build their own Response (the ticket API, the pages) as well as the ones
    # FastAPI serialises: the renewed session's cookie must reach the browser either way.
    token = await _signed_in_near_renewal(client, database, cipher)
    renewed = await client.get(path)
    assert renewed.status_code == 200
    assert f"tk.session_token={token};" in renewed.headers.get("set-cookie", "")
    assert "Max-Age=604800" in renewed.headers["set-cookie"]


async def test_signing_out_during_a_renewal_still_clears_the_cookie(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    await _signed_in_near_renewal(client, database, cipher)
    signed_out = await client.post("/api/auth/signout")
    assert signed_out.status_code == 200
    # The sign-out's cookie only, not the renewal of the session it ends.
    [cookie] = signed_out.headers.get_list("set-cookie")
    assert 'tk.session_token="";' in cookie and "Max-Age=0" in cookie
    assert "tk.session_token" not in client.cookies
