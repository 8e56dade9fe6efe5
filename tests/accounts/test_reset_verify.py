"""E-mail verification and password reset: single-use, expiring tokens; mail by file or SMTP."""

from __future__ import annotations

import asyncio
import email
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope
from sqlalchemy import func, select, update

from tekudasai.accounts.models import Session, User, Verification
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher, hash_token
from tekudasai.core.mail import send_mail
from tekudasai.db.session import Database
from tests.accounts.conftest import client_for, link_token, outbox
from tests.factories import make_person


async def sessions_of(database: Database, user_id: str) -> int:
    async with database.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).where(Session.user_id == user_id)) or 0)


async def test_reset_request_is_always_200_and_mails_only_real_accounts(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher, settings: Settings
) -> None:
    person = await make_person(database, cipher)
    unknown = await client.post("/api/auth/request-password-reset", json={"email": "nobody@x.test"})
    known = await client.post("/api/auth/reset-password-request", json={"email": person.email})
    assert unknown.status_code == known.status_code == 200
    assert unknown.json() == known.json()
    mails = outbox(settings)
    assert len(mails) == 1 and mails[0]["To"] == person.email
    assert "/auth/reset-password?token=" in mails[0].get_payload(decode=True).decode()  # type: ignore[union-attr]


async def test_reset_sets_password_revokes_every_session_and_is_single_use(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher, settings: Settings
) -> None:
    person = await make_person(database, cipher)
    await client.post("/api/auth/signin", json={"email": person.email, "password": person.password})
    assert await sessions_of(database, person.user.id) == 2
    await client.post("/api/auth/reset-password-request", json={"email": person.email})
    token = link_token(outbox(settings)[-1])

    short = await client.post("/api/auth/reset-password", json={"token": token, "newPassword": "x"})
    assert short.status_code == 400  # and the token is still good afterwards
    done = await client.post(
        "/api/auth/reset-password", json={"token": token, "newPassword": "brand-new-secret"}
    )
    assert done.status_code == 200, done.text
    assert await sessions_of(database, person.user.id) == 0
    assert (await client.get("/api/auth/session", headers=person.auth)).text == "null"

    reused = await client.post(
        "/api/auth/reset-password", json={"token": token, "newPassword": "another-secret"}
    )
    assert reused.status_code == 400 and reused.json()["code"] == "INVALID_TOKEN"
    old = await client.post(
        "/api/auth/signin", json={"email": person.email, "password": person.password}
    )
    assert old.status_code == 401
    new = await client.post(
        "/api/auth/signin", json={"email": person.email, "password": "brand-new-secret"}
    )
    assert new.status_code == 200


async def test_expired_and_unknown_reset_tokens_are_refused(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher, settings: Settings
) -> None:
    person = await make_person(database, cipher)
    await client.post("/api/auth/reset-password-request", json={"email": person.email})
    token = link_token(outbox(settings)[-1])
    async with database.sessionmaker() as db, db.begin():
        await db.execute(
            update(Verification)
            .where(Verification.token_hash == hash_token(token))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    for attempt in (token, "made-up-token", "x" * 300):
        response = await client.post(
            "/api/auth/reset-password", json={"token": attempt, "newPassword": "brand-new-secret"}
        )
        assert response.status_code == 400
        assert response.json()["code"] in {"INVALID_TOKEN", "VALIDATION_ERROR"}
    assert await sessions_of(database, person.user.id) == 1  # nothing happened


async def test_email_verification_link(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    signed_up = await client.post(
        "/api/auth/signup",
        json={"name": "Vera", "email": "vera@example.test", "password": "verify-me-please"},
    )
    assert signed_up.status_code == 200
    mails = outbox(settings)
    assert len(mails) == 1 and mails[0]["Subject"] == "Confirm your e-mail address"
    first = link_token(mails[0])
    # Asking again voids the first link.
    again = await client.post("/api/auth/verify-request", json={})
    assert again.status_code == 200
    second = link_token(outbox(settings)[-1])
    assert (await client.get("/api/auth/verify", params={"token": first})).status_code == 400
    ok = await client.get("/api/auth/verify", params={"token": second, "callbackURL": "/welcome"})
    assert ok.status_code == 302 and ok.headers["location"] == "/welcome"
    assert (await client.get("/api/auth/session")).json()["user"]["emailVerified"] is True
    reused = await client.get("/api/auth/verify", params={"token": second})
    assert reused.status_code == 400 and reused.json()["code"] == "INVALID_TOKEN"
    evil = await client.get(
        "/api/auth/verify", params={"token": second, "callbackURL": "https://evil.test/"}
    )
    assert evil.status_code == 400 and evil.json()["code"] == "INVALID_CALLBACK_URL"


async def test_signup_page_mails_the_same_verification_link(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    client.cookies.clear()
    page = await client.get("/auth/signup", headers={"Accept": "text/html"})
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    signed_up = await client.post(
        "/auth/signup",
        data={
            "name": "Wren",
            "email": "wren@example.test",
            "password": "verify-me-please",
            "password_confirm": "verify-me-please",
            "csrf_token": token,
        },
        headers={"Accept": "text/html"},
    )
    assert signed_up.status_code == 303, signed_up.text
    mails = outbox(settings)
    assert len(mails) == 1 and mails[0]["To"] == "wren@example.test"
    assert mails[0]["Subject"] == "Confirm your e-mail address"
    ok = await client.get("/api/auth/verify", params={"token": link_token(mails[0])})
    assert ok.status_code == 200
    assert (await client.get("/api/auth/session")).json()["user"]["emailVerified"] is True


async def test_verify_request_signed_out_never_reveals_accounts(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    a = await client.post("/api/auth/verify-request", json={"email": "nobody@x.test"})
    b = await client.post("/api/auth/verify-request", json={"email": "bad address"})
    assert a.status_code == 200 and a.json() == {"status": True}
    assert b.status_code == 400


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


class SmtpServer:
    """aiosmtpd on a loopback ephemeral port, in the test's own event loop."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.inbox = Inbox()
        self.server: asyncio.Server | None = None
        self.credentials = credentials
        self.logins: list[str] = []

    def _authenticate(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    async def __aenter__(self) -> SmtpServer:
        loop = asyncio.get_running_loop()

        def protocol() -> SMTP:
            if self.credentials is None:
                return SMTP(self.inbox)
            return SMTP(
                self.inbox,
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=False,  # loopback test server without a certificate
            )

        self.server = await loop.create_server(protocol, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_reset_mail_goes_through_a_real_smtp_server(
    settings_with,
    database: Database,
    cipher: PiiCipher,  # type: ignore[no-untyped-def]
) -> None:
    async with SmtpServer() as smtp:
        inbox = smtp.inbox
        # The app's own queue worker sends it (as in `serve`), woken by the commit's NOTIFY.
        settings = settings_with(
            TK_SMTP_URL=f"smtp://127.0.0.1:{smtp.port}",
            TK_BACKGROUND_JOBS="true",
            TK_BACKUP_INTERVAL="off",
        )
        person = await make_person(database, cipher)
        async with client_for(database, settings) as client:
            response = await client.post(
                "/api/auth/reset-password-request", json={"email": person.email}
            )
            assert response.status_code == 200
            await wait_for(lambda: len(inbox.messages) == 1)
            envelope = inbox.messages[0]
            assert envelope.rcpt_tos == [person.email]
            message = email.message_from_bytes(envelope.original_content or b"")
            assert message["Subject"] == "Reset your password"
            token = link_token(message)
            reset = await client.post(
                "/api/auth/reset-password", json={"token": token, "newPassword": "via-smtp-123"}
            )
            assert reset.status_code == 200, reset.text
        assert not settings.outbox_dir.exists()


async def test_send_mail_by_smtp(settings_with) -> None:  # type: ignore[no-untyped-def]
    async with SmtpServer() as smtp:
        settings = settings_with(TK_SMTP_URL=f"smtp://127.0.0.1:{smtp.port}")
        await send_mail(settings, to="x@y.test", subject="Hello", body="plain text body")
        assert len(smtp.inbox.messages) == 1
        assert b"plain text body" in smtp.inbox.messages[0].original_content  # type: ignore[operator]


async def test_users_table_untouched_by_a_failed_verification(database: Database) -> None:
    async with database.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(User)) == 0


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_send_mail_with_smtp_login(settings_with) -> None:  # type: ignore[no-untyped-def]
    async with SmtpServer(credentials=("mailer", "p@ss word")) as smtp:
        settings = settings_with(TK_SMTP_URL=f"smtp://mailer:p%40ss%20word@127.0.0.1:{smtp.port}")
        await send_mail(settings, to="x@y.test", subject="Hello", body="with login")
        assert smtp.logins == ["mailer"] and len(smtp.inbox.messages) == 1
