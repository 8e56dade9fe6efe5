"""/settings/security and /auth/two-factor over real HTTP: password change, two-factor set-up,
backup codes, sessions with revoke and sign-out everywhere; every post CSRF-protected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pyotp
from sqlalchemy import func, select

from tekudasai.accounts import service as accounts_service
from tekudasai.accounts.models import Session, TrustedDevice
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.accounts.soft_authenticator import SoftAuthenticator
from tests.factories import Person, make_person
from tests.web.test_auth_reset_pages import HTML, csrf_of

PATH = "/settings/security"


async def open_page(client: httpx.AsyncClient, person: Person) -> httpx.Response:
    client.cookies.clear()
    client.cookies.set("tk.session_token", person.token)
    page = await client.get(PATH, headers=HTML)
    assert page.status_code == 200, page.text
    return page


async def post(
    client: httpx.AsyncClient, page: httpx.Response, path: str, **data: str
) -> httpx.Response:
    return await client.post(
        path, data={**data, "csrf_token": csrf_of(page)}, headers=HTML, follow_redirects=False
    )


async def sessions_of(database: Database, user_id: str) -> int:
    async with database.sessionmaker() as db:
        count = await db.scalar(select(func.count()).where(Session.user_id == user_id))
    return int(count or 0)


async def test_change_password_ends_the_other_sessions(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    async with database.sessionmaker() as db, db.begin():
        await accounts_service.create_session(db, user_id=person.user.id)  # another device
        db.add(
            TrustedDevice(
                user_id=person.user.id,
                token_hash=b"x" * 32,
                expires_at=datetime.now(UTC) + timedelta(days=1),
            )
        )
    page = await open_page(client, person)
    assert page.text.count("data-session-row") == 2 and "This device" in page.text

    no_csrf = await client.post(
        f"{PATH}/password",
        data={"current_password": person.password, "new_password": "x" * 10},
        headers=HTML,
        follow_redirects=False,
    )
    assert no_csrf.status_code == 303 and await sessions_of(database, person.user.id) == 2
    wrong = await post(
        client,
        page,
        f"{PATH}/password",
        current_password="not-my-password",
        new_password="new-password-1",
        new_password_confirm="new-password-1",
    )
    assert wrong.status_code == 400 and "The password is not right." in wrong.text
    mismatch = await post(
        client,
        page,
        f"{PATH}/password",
        current_password=person.password,
        new_password="new-password-1",
        new_password_confirm="new-password-2",
    )
    assert mismatch.status_code == 400 and "do not match" in mismatch.text
    short = await post(
        client,
        page,
        f"{PATH}/password",
        current_password=person.password,
        new_password="short",
        new_password_confirm="short",
    )
    assert short.status_code == 400
    changed = await post(
        client,
        page,
        f"{PATH}/password",
        current_password=person.password,
        new_password="new-password-1",
        new_password_confirm="new-password-1",
    )
    assert changed.status_code == 303 and changed.headers["location"] == PATH
    assert await sessions_of(database, person.user.id) == 1  # only this one is left
    async with database.sessionmaker() as db:
        trusted = await db.scalar(
            select(func.count()).where(TrustedDevice.user_id == person.user.id)
        )
    assert trusted == 0
    client.cookies.clear()
    signed_in = await client.post(
        "/api/auth/signin", json={"email": person.email, "password": "new-password-1"}
    )
    assert signed_in.status_code == 200


async def test_sessions_revoke_one_and_everywhere(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    async with database.sessionmaker() as db, db.begin():
        _, other = await accounts_service.create_session(db, user_id=person.user.id)
    stranger = await make_person(database, cipher)
    page = await open_page(client, person)
    theirs = (await open_page(client, stranger)).text
    assert other.id not in theirs
    page = await open_page(client, person)
    # A stranger's session id is not found among mine.
    async with database.sessionmaker() as db:
        stranger_session = await db.scalar(
            select(Session.id).where(Session.user_id == stranger.user.id)
        )
    not_mine = await post(client, page, f"{PATH}/sessions/{stranger_session}/revoke")
    assert not_mine.status_code == 404
    ended = await post(client, page, f"{PATH}/sessions/{other.id}/revoke")
    assert ended.status_code == 303 and await sessions_of(database, person.user.id) == 1
    everywhere = await post(client, page, f"{PATH}/sessions/revoke-all")
    assert everywhere.status_code == 303 and everywhere.headers["location"] == "/auth/login"
    assert await sessions_of(database, person.user.id) == 0
    assert await sessions_of(database, stranger.user.id) == 1


async def test_two_factor_from_the_page_and_the_second_step_page(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    page = await open_page(client, person)
    wrong = await post(client, page, f"{PATH}/two-factor/enable", password="nope-nope")
    assert wrong.status_code == 400 and "The password is not right." in wrong.text
    setup = await post(client, page, f"{PATH}/two-factor/enable", password=person.password)
    assert setup.status_code == 200 and "<svg" in setup.text and "data-backup-codes" in setup.text
    uri = setup.text.split("<code data-totp-uri>", 1)[1].split("<", 1)[0].replace("&amp;", "&")
    totp = pyotp.parse_uri(uri)
    backup = setup.text.split('class="backup-codes"><li><code>', 1)[1].split("<", 1)[0]
    # The key is not shown again by a plain visit (it would need the password again).
    later = await client.get(PATH, headers=HTML)
    assert totp.secret not in later.text and "Set-up not finished" in later.text
    bad_code = await post(client, page, f"{PATH}/two-factor/verify", code="000000x")
    assert bad_code.status_code == 400
    on = await post(client, page, f"{PATH}/two-factor/verify", code=totp.now())
    assert on.status_code == 303
    shown = await client.get(PATH, headers=HTML)
    assert "10 backup codes left" in shown.text

    # Signing in on the page now takes two steps; a backup code works there once.
    client.cookies.clear()
    login = await client.get("/auth/login", headers=HTML)
    first = await client.post(
        "/auth/login",
        data={"email": person.email, "password": person.password, "csrf_token": csrf_of(login)},
        headers=HTML,
        follow_redirects=False,
    )
    assert first.status_code == 303 and first.headers["location"] == "/auth/two-factor?next=%2F"
    assert "tk.session_token" not in first.headers.get("set-cookie", "")
    step = await client.get("/auth/two-factor", headers=HTML)
    assert step.status_code == 200 and "One more step" in step.text
    wrong_code = await client.post(
        "/auth/two-factor",
        data={"code": "000000", "next": "/", "csrf_token": csrf_of(step)},
        headers=HTML,
    )
    assert wrong_code.status_code == 401 and "not right" in wrong_code.text
    done = await client.post(
        "/auth/two-factor",
        data={"code": backup, "next": "/", "trust_device": "on", "csrf_token": csrf_of(step)},
        headers=HTML,
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert "tk.session_token=" in done.headers["set-cookie"]
    assert "tk.trust_device=" in done.headers["set-cookie"]
    assert (await client.get("/api/auth/session")).json()["user"]["id"] == person.user.id

    page = await client.get(PATH, headers=HTML)
    assert "9 backup codes left" in page.text
    codes = await post(client, page, f"{PATH}/two-factor/backup-codes", password=person.password)
    assert codes.status_code == 200 and codes.text.count("<li><code>") == 10
    off_wrong = await post(client, page, f"{PATH}/two-factor/disable", password="nope-nope")
    assert off_wrong.status_code == 400
    off = await post(client, page, f"{PATH}/two-factor/disable", password=person.password)
    assert off.status_code == 303
    assert "Set up two-factor sign-in" in (await client.get(PATH, headers=HTML)).text
    # Without a pending sign-in the second-step page sends back to the login page.
    client.cookies.clear()
    alone = await client.get("/auth/two-factor", headers=HTML, follow_redirects=False)
    assert alone.status_code == 303 and alone.headers["location"] == "/auth/login"


async def test_passkeys_listed_and_deleted_on_the_page(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    key = SoftAuthenticator("http://localhost:8000", "localhost")
    client.cookies.set("tk.session_token", person.token)
    options = (await client.get("/api/auth/passkey/generate-register-options")).json()
    made = await client.post(
        "/api/auth/passkey/verify-registration",
        json={"response": key.register(options), "name": "Desk <key>"},
    )
    assert made.status_code == 200, made.text
    page = await open_page(client, person)
    assert page.text.count("data-passkey-row") == 1
    assert "Desk &lt;key&gt;" in page.text and "Desk <key>" not in page.text
    stranger = await make_person(database, cipher)
    theirs = await open_page(client, stranger)
    assert "data-passkey-row" not in theirs.text
    refused = await post(client, theirs, f"{PATH}/passkeys/{made.json()['id']}/delete")
    assert refused.status_code == 404
    page = await open_page(client, person)
    deleted = await post(client, page, f"{PATH}/passkeys/{made.json()['id']}/delete")
    assert deleted.status_code == 303
    assert "data-passkey-row" not in (await client.get(PATH, headers=HTML)).text
