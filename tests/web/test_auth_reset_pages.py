"""The password-reset and e-mail verification pages (#12 item 11) over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy import update

from tekudasai.accounts.models import Verification
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher, hash_token
from tekudasai.db.session import Database
from tests.accounts.conftest import client_for, link_token, outbox
from tests.conftest import make_settings
from tests.factories import make_person

HTML = {"Accept": "text/html"}


def csrf_of(page: httpx.Response) -> str:
    return page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def mail_link(settings: Settings) -> str:
    body = outbox(settings)[-1].get_payload(decode=True).decode()  # type: ignore[union-attr]
    link = next(word for word in body.split() if "token=" in word)
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


async def forgot(client: httpx.AsyncClient, email: str) -> httpx.Response:
    page = await client.get("/auth/forgot-password", headers=HTML)
    assert page.status_code == 200
    return await client.post(
        "/auth/forgot-password", data={"email": email, "csrf_token": csrf_of(page)}, headers=HTML
    )


async def test_login_page_links_to_forgot_password(client: httpx.AsyncClient) -> None:
    page = await client.get("/auth/login", headers=HTML)
    assert 'href="/auth/forgot-password"' in page.text and "Forgot password?" in page.text


async def test_forgot_reset_sign_in(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher, settings: Settings
) -> None:
    client.cookies.clear()
    person = await make_person(database, cipher)
    sent = await forgot(client, person.email.upper())
    assert sent.status_code == 303 and sent.headers["location"] == "/auth/login"
    login = await client.get("/auth/login", headers=HTML)
    assert "a reset link is on its way" in login.text
    mails = outbox(settings)
    assert len(mails) == 1 and mails[0]["To"] == person.email
    link = mail_link(settings)
    assert link.startswith("/auth/reset-password?token=")

    form = await client.get(link, headers=HTML)
    assert form.status_code == 200 and "Set a new password" in form.text
    token = link_token(mails[0])
    assert f'name="token" value="{token}"' in form.text

    async def submit(password: str, confirm: str) -> httpx.Response:
        return await client.post(
            "/auth/reset-password",
            data={
                "token": token,
                "password": password,
                "password_confirm": confirm,
                "csrf_token": csrf_of(form),
            },
            headers=HTML,
        )

    short = await submit("short", "short")
    assert short.status_code == 400 and "Password too short" in short.text
    mismatch = await submit("a-new-password-1", "a-new-password-2")
    assert mismatch.status_code == 400 and "do not match" in mismatch.text
    done = await submit("a-new-password-1", "a-new-password-1")
    assert done.status_code == 303 and done.headers["location"] == "/auth/login"
    after = await client.get("/auth/login", headers=HTML)
    assert "Your password has been changed" in after.text

    old = await client.post(
        "/api/auth/signin", json={"email": person.email, "password": person.password}
    )
    assert old.status_code == 401
    new = await client.post(
        "/api/auth/signin", json={"email": person.email, "password": "a-new-password-1"}
    )
    assert new.status_code == 200
    client.cookies.clear()
    used = await client.get(link, headers=HTML)
    assert used.status_code == 400 and "already used" in used.text
    assert 'href="/auth/forgot-password"' in used.text


async def test_forgot_password_never_reveals_accounts(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher, settings: Settings
) -> None:
    client.cookies.clear()
    person = await make_person(database, cipher)
    known = await forgot(client, person.email)
    unknown = await forgot(client, "nobody@example.test")
    assert known.status_code == unknown.status_code == 303
    assert known.headers["location"] == unknown.headers["location"]
    assert len(outbox(settings)) == 1
    bad = await forgot(client, "not an address")
    assert bad.status_code == 400 and 'id="f-email-error"' in bad.text


async def test_reset_page_refuses_expired_unknown_and_missing_tokens(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher, settings: Settings
) -> None:
    client.cookies.clear()
    person = await make_person(database, cipher)
    await forgot(client, person.email)
    token = link_token(outbox(settings)[-1])
    async with database.sessionmaker() as db, db.begin():
        await db.execute(
            update(Verification)
            .where(Verification.token_hash == hash_token(token))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    for query in (f"?token={token}", "?token=made-up", ""):
        page = await client.get(f"/auth/reset-password{query}", headers=HTML)
        assert page.status_code == 400 and "has expired" in page.text
        assert 'name="password"' not in page.text  # no form for a dead link
    form = await client.get("/auth/forgot-password", headers=HTML)
    posted = await client.post(
        "/auth/reset-password",
        data={
            "token": token,
            "password": "long-enough-1",
            "password_confirm": "long-enough-1",
            "csrf_token": csrf_of(form),
        },
        headers=HTML,
    )
    assert posted.status_code == 400 and "has expired" in posted.text


async def test_reset_form_needs_the_csrf_token(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher, settings: Settings
) -> None:
    client.cookies.clear()
    person = await make_person(database, cipher)
    await forgot(client, person.email)
    token = link_token(outbox(settings)[-1])
    forged = await client.post(
        "/auth/reset-password",
        data={"token": token, "password": "attacker-pw-1", "password_confirm": "attacker-pw-1"},
        headers=HTML,
    )
    assert forged.status_code == 303 and forged.headers["location"] != "/auth/login"
    still = await client.post(
        "/api/auth/signin", json={"email": person.email, "password": person.password}
    )
    assert still.status_code == 200


async def test_verification_link_opens_a_page(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    signed_up = await client.post(
        "/api/auth/signup",
        json={"name": "Vera", "email": "vera.page@example.test", "password": "verify-me-please"},
    )
    assert signed_up.status_code == 200
    link = mail_link(settings)
    assert link.startswith("/auth/verify?token=")
    page = await client.get(link, headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "E-mail address confirmed" in page.text
    assert (await client.get("/api/auth/session")).json()["user"]["emailVerified"] is True
    again = await client.get(link, headers=HTML)
    assert again.status_code == 400 and again.headers["content-type"].startswith("text/html")
    assert "invalid, has expired or was already used" in again.text
    # The API keeps its JSON for API clients.
    api = await client.get("/api/auth/verify", params={"token": "made-up"})
    assert api.status_code == 400 and api.json()["code"] == "INVALID_TOKEN"


async def test_verification_page_follows_a_safe_callback(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await client.post(
        "/api/auth/signup",
        json={
            "name": "Cal",
            "email": "cal@example.test",
            "password": "verify-me-please",
            "callbackURL": "/welcome",
        },
    )
    link = mail_link(settings)
    assert "callbackURL=%2Fwelcome" in link
    done = await client.get(link, headers=HTML)
    assert done.status_code == 303 and done.headers["location"] == "/welcome"


async def test_forgot_password_requests_do_not_lock_the_login_page(
    db_url: str, tmp_path: Path, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    settings = make_settings(
        db_url, tmp_path / "data", TK_RATE_LIMITS="auth_account=3/minute,auth_ip=100/minute"
    )
    async with client_for(database, settings) as client:
        statuses = [(await forgot(client, person.email)).status_code for _ in range(4)]
        assert statuses == [303, 303, 303, 429]
        page = await client.get("/auth/login", headers=HTML)
        signed_in = await client.post(
            "/auth/login",
            data={
                "email": person.email,
                "password": person.password,
                "csrf_token": csrf_of(page),
            },
            headers=HTML,
        )
        assert signed_in.status_code == 303, signed_in.text
