"""Rate limits in PostgreSQL (429 + Retry-After, per account and per IP), CSRF and CORS."""

from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import func, select

from tekudasai.accounts.limits import rate_limit
from tekudasai.accounts.models import RateLimitCounter
from tekudasai.config import ConfigError
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.csrf import csrf_token_for, verify_csrf_token
from tekudasai.db.ratelimit import Limit, hit, parse_limits
from tekudasai.db.session import Database
from tests.accounts.conftest import client_for
from tests.conftest import BASE_URL
from tests.factories import make_person


def test_parse_limits() -> None:
    assert parse_limits(None)["auth_account"] == Limit(5, 60)
    assert parse_limits("auth_ip=100/minute,tickets=off")["auth_ip"] == Limit(100, 60)
    assert parse_limits("auth_ip=100/minute,tickets=off")["tickets"] is None
    assert parse_limits("forms=10/5minutes")["forms"] == Limit(10, 300)
    assert set(parse_limits("off").values()) == {None}
    for bad in ("auth_ip=many", "nobody=5/minute", "auth_ip", "auth_ip=0/minute"):
        with pytest.raises(ConfigError):
            parse_limits(bad)


async def test_locked_out_account_gets_429_even_with_the_right_password(
    settings_with,
    database: Database,
    cipher: PiiCipher,  # type: ignore[no-untyped-def]
) -> None:
    person = await make_person(database, cipher)
    settings = settings_with(TK_RATE_LIMITS="auth_account=3/minute,auth_ip=100/minute")
    async with client_for(database, settings) as client:
        for _ in range(3):
            wrong = await client.post(
                "/api/auth/signin", json={"email": person.email, "password": "guess-guess"}
            )
            assert wrong.status_code == 401
        locked = await client.post(
            "/api/auth/signin", json={"email": person.email, "password": person.password}
        )
        assert locked.status_code == 429
        assert locked.json()["code"] == "RATE_LIMITED"
        assert 1 <= int(locked.headers["retry-after"]) <= 60
        # Another account from the same IP is not locked.
        other = await make_person(database, cipher)
        fine = await client.post(
            "/api/auth/signin", json={"email": other.email, "password": other.password}
        )
        assert fine.status_code == 200
    async with database.sessionmaker() as db:
        keys = (await db.scalars(select(RateLimitCounter.key))).all()
    assert not any(person.email in key for key in keys)  # counted by blind index


async def test_ip_limit_on_sign_up(settings_with, database: Database) -> None:  # type: ignore[no-untyped-def]
    settings = settings_with(TK_RATE_LIMITS="auth_ip=2/minute")
    async with client_for(database, settings) as client:
        codes = []
        for n in range(3):
            response = await client.post(
                "/api/auth/signup",
                json={"name": f"N{n}", "email": f"n{n}@x.test", "password": "long-enough-pw"},
            )
            codes.append(response.status_code)
        assert codes == [200, 200, 429]
        assert "retry-after" in response.headers


async def test_rate_limit_dependency_counts_per_user(
    settings_with,
    database: Database,
    cipher: PiiCipher,  # type: ignore[no-untyped-def]
) -> None:
    from tekudasai.app import create_app

    settings = settings_with(TK_RATE_LIMITS="tickets=2/minute")
    application: FastAPI = create_app(settings, database)

    @application.post("/api/limited", dependencies=[Depends(rate_limit("tickets"))])
    async def limited() -> dict[str, bool]:
        return {"ok": True}

    import httpx

    a = await make_person(database, cipher)
    b = await make_person(database, cipher)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        statuses_a = [
            (await client.post("/api/limited", headers=a.auth)).status_code for _ in range(3)
        ]
        statuses_b = [
            (await client.post("/api/limited", headers=b.auth)).status_code for _ in range(2)
        ]
    assert statuses_a == [200, 200, 429]
    assert statuses_b == [200, 200]


async def test_sliding_window_counts_the_previous_window(database: Database) -> None:
    limit = Limit(count=3, seconds=3600)
    results = [await hit(database, name="t", key="k", limit=limit) for _ in range(4)]
    assert results[:3] == [None, None, None] and results[3] is not None and results[3] > 0
    async with database.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(RateLimitCounter)) == 1


async def test_limits_off_by_default_in_tests(
    client, database: Database, cipher: PiiCipher
) -> None:  # type: ignore[no-untyped-def]
    person = await make_person(database, cipher)
    for _ in range(8):
        response = await client.post(
            "/api/auth/signin", json={"email": person.email, "password": "guess-guess"}
        )
        assert response.status_code == 401


async def test_csrf_untrusted_origin_with_cookie_is_refused(
    settings_with,
    database: Database,
    cipher: PiiCipher,  # type: ignore[no-untyped-def]
) -> None:
    person = await make_person(database, cipher)
    settings = settings_with()
    cookie = {"Cookie": f"tk.session_token={person.token}"}
    async with client_for(database, settings, origin=None) as client:
        evil = await client.post(
            "/api/auth/signout-all", headers={**cookie, "Origin": "https://evil.test"}
        )
        assert evil.status_code == 403 and evil.json()["code"] == "CSRF_FAILED"
        evil_referer = await client.post(
            "/api/auth/signout-all", headers={**cookie, "Referer": "https://evil.test/x"}
        )
        assert evil_referer.status_code == 403
        no_headers = await client.post("/api/auth/signout-all", headers=cookie)
        assert no_headers.status_code == 403
        # Login CSRF: an untrusted page may not sign a browser in either.
        login = await client.post(
            "/api/auth/signin",
            json={"email": person.email, "password": person.password},
            headers={"Origin": "https://evil.test"},
        )
        assert login.status_code == 403
        # Still signed in: nothing above reached the handler.
        assert (await client.get("/api/auth/session", headers=cookie)).json() is not None

        # A bearer token is exempt; a trusted Referer passes; so does a valid CSRF token.
        bearer = await client.post(
            "/api/auth/signout", headers={**person.auth, "Origin": "https://evil.test"}
        )
        assert bearer.status_code == 200

        other = await make_person(database, cipher)
        other_session = await _session(database, other.token)
        with_token = await client.post(
            "/api/auth/signout",
            headers={
                "Cookie": f"tk.session_token={other.token}",
                "X-CSRF-Token": csrf_token_for(other_session),
            },
        )
        assert with_token.status_code == 200
        assert verify_csrf_token(other_session, csrf_token_for(other_session))
        assert not verify_csrf_token(other_session, "forged")

        third = await make_person(database, cipher)
        referer = await client.post(
            "/api/auth/signout",
            headers={"Cookie": f"tk.session_token={third.token}", "Referer": f"{BASE_URL}/t/1"},
        )
        assert referer.status_code == 200
        # Without any credential and without Origin (an API script): allowed.
        script = await client.post(
            "/api/auth/signin", json={"email": third.email, "password": third.password}
        )
        assert script.status_code == 200


async def _session(database: Database, token: str):  # type: ignore[no-untyped-def]
    from tekudasai.accounts.models import Session
    from tekudasai.core.crypto import hash_token

    async with database.sessionmaker() as db:
        return await db.scalar(select(Session).where(Session.token_hash == hash_token(token)))


async def test_cors_only_for_trusted_origins(settings_with, database: Database) -> None:  # type: ignore[no-untyped-def]
    settings = settings_with(TRUSTED_ORIGINS="https://app.example.test,http://127.0.0.1:8000")
    async with client_for(database, settings, origin=None) as client:
        preflight = {"Access-Control-Request-Method": "POST"}
        good = await client.options(
            "/api/auth/signin", headers={"Origin": "https://app.example.test", **preflight}
        )
        assert good.status_code == 200
        assert good.headers["access-control-allow-origin"] == "https://app.example.test"
        assert good.headers["access-control-allow-credentials"] == "true"
        bad = await client.options(
            "/api/auth/signin", headers={"Origin": "https://evil.test", **preflight}
        )
        assert "access-control-allow-origin" not in bad.headers


async def test_two_workers_share_the_counters(settings_with, db_url: str) -> None:  # type: ignore[no-untyped-def]
    settings = settings_with(TK_RATE_LIMITS="auth_ip=3/minute")
    # Two app instances with their own pools stand for two worker processes.
    first, second = Database.connect(db_url, settings), Database.connect(db_url, settings)
    try:
        async with client_for(first, settings) as a, client_for(second, settings) as b:
            codes = []
            for client in (a, b, a, b):
                response = await client.post(
                    "/api/auth/signin", json={"email": "x@y.test", "password": "whatever-pw"}
                )
                codes.append(response.status_code)
        assert codes == [401, 401, 401, 429]
    finally:
        await first.dispose()
        await second.dispose()


async def test_mail_requests_cannot_lock_an_account_out_of_signing_in(
    settings_with,  # type: ignore[no-untyped-def]
    database: Database,
    cipher: PiiCipher,
) -> None:
    person = await make_person(database, cipher)
    settings = settings_with(TK_RATE_LIMITS="auth_account=5/minute,auth_ip=100/minute")
    async with client_for(database, settings) as client:
        # Anyone may ask for mail to any address: five resets, then verification requests.
        asked = [
            (
                await client.post("/api/auth/request-password-reset", json={"email": person.email})
            ).status_code
            for _ in range(6)
        ]
        assert asked == [200] * 5 + [429]  # the mail bucket has its own limit
        more = await client.post("/api/auth/verify-request", json={"email": person.email})
        assert more.status_code == 429
        signed_in = await client.post(
            "/api/auth/signin", json={"email": person.email, "password": person.password}
        )
        assert signed_in.status_code == 200, signed_in.text


async def test_only_failed_sign_ins_count_against_the_account(
    settings_with,  # type: ignore[no-untyped-def]
    database: Database,
    cipher: PiiCipher,
) -> None:
    person = await make_person(database, cipher)
    settings = settings_with(TK_RATE_LIMITS="auth_account=3/minute,auth_ip=100/minute")
    right = {"email": person.email, "password": person.password}
    wrong = {"email": person.email, "password": "guess-guess"}
    async with client_for(database, settings) as client:
        ok = [(await client.post("/api/auth/signin", json=right)).status_code for _ in range(5)]
        assert ok == [200] * 5
        failed = [(await client.post("/api/auth/signin", json=wrong)).status_code for _ in range(3)]
        assert failed == [401] * 3
        assert (await client.post("/api/auth/signin", json=right)).status_code == 429


def test_core_rate_limiter_imports_no_domain() -> None:
    import ast
    from pathlib import Path

    import tekudasai.db.ratelimit as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {
        node.module or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    domains = ("accounts", "forms", "tickets", "uploads", "ops", "web")
    assert not [m for m in imported if m.split(".")[1:2] and m.split(".")[1] in domains]
