"""Two-factor sign-in on better-auth's paths: TOTP set-up, sign-in in two steps, backup codes,
lock-out, trusted devices, TK_REQUIRE_2FA, and no bypass by password reset or OAuth."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
from sqlalchemy import select

from tekudasai.accounts import keys
from tekudasai.accounts.models import BackupCode, TwoFactor, User
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.accounts.conftest import client_for, link_token, outbox
from tests.accounts.test_oauth import authorize_at_provider, oidc_app
from tests.factories import Person, make_person

PERIOD = 30


def code_at(uri: str, offset_steps: int = 0) -> str:
    """The code an authenticator app shows, `offset_steps` periods from now."""
    return pyotp.parse_uri(uri).at(time.time() + offset_steps * PERIOD)  # type: ignore[no-any-return]


async def enable(client: httpx.AsyncClient, person: Person) -> dict[str, Any]:
    answer = await client.post(
        "/api/auth/two-factor/enable", json={"password": person.password}, headers=person.auth
    )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def turn_on(client: httpx.AsyncClient, person: Person) -> dict[str, Any]:
    """Enable and verify the first code (step -1: later steps stay free for the test)."""
    setup = await enable(client, person)
    verified = await client.post(
        "/api/auth/two-factor/verify-totp",
        json={"code": code_at(setup["totpURI"], -1)},
        headers=person.auth,
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["user"]["twoFactorEnabled"] is True
    return setup


async def sign_in(client: httpx.AsyncClient, person: Person) -> httpx.Response:
    client.cookies.clear()
    return await client.post(
        "/api/auth/sign-in/email", json={"email": person.email, "password": person.password}
    )


async def test_enable_then_verify_turns_it_on_and_the_secret_is_encrypted(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    wrong = await client.post(
        "/api/auth/two-factor/enable", json={"password": "not-my-password"}, headers=person.auth
    )
    assert wrong.status_code == 400 and wrong.json()["code"] == "INVALID_PASSWORD"
    setup = await enable(client, person)
    assert setup["totpURI"].startswith("otpauth://totp/Te%20Kudasai:")
    assert len(setup["backupCodes"]) == 10 and len(set(setup["backupCodes"])) == 10
    secret = parse_qs(urlsplit(setup["totpURI"]).query)["secret"][0]
    # Not on before the first verified code: sign-in still opens a session at once.
    session = (await client.get("/api/auth/session", headers=person.auth)).json()
    assert session["user"]["twoFactorEnabled"] is False
    assert "token" in (await sign_in(client, person)).json()

    async with database.sessionmaker() as db:
        row = await db.get(TwoFactor, person.user.id)
        mine = select(BackupCode.code_hash).where(BackupCode.user_id == person.user.id)
        codes = (await db.scalars(mine)).all()
    assert row is not None and secret.encode() not in row.secret_ciphertext
    assert cipher.decrypt(row.secret_ciphertext, context="two_factor.secret") == secret
    assert len(codes) == 10
    for code in setup["backupCodes"]:
        assert all(code.replace("-", "").encode() not in h for h in codes)

    verified = await client.post(
        "/api/auth/two-factor/verify-totp",
        json={"code": code_at(setup["totpURI"])},
        headers=person.auth,
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["user"]["twoFactorEnabled"] is True
    assert verified.json()["token"] == person.token  # the same session goes on
    me = (await client.get("/api/auth/session", headers=person.auth)).json()
    assert me["user"]["twoFactorEnabled"] is True
    again = await client.post(
        "/api/auth/two-factor/enable", json={"password": person.password}, headers=person.auth
    )
    assert again.status_code == 400 and again.json()["code"] == "TWO_FACTOR_ALREADY_ENABLED"
    uri = await client.post(
        "/api/auth/two-factor/get-totp-uri",
        json={"password": person.password},
        headers=person.auth,
    )
    assert uri.status_code == 200 and uri.json()["totpURI"] == setup["totpURI"]
    bad_uri = await client.post(
        "/api/auth/two-factor/get-totp-uri", json={"password": "nope-nope"}, headers=person.auth
    )
    assert bad_uri.status_code == 400 and bad_uri.json()["code"] == "INVALID_PASSWORD"


async def test_sign_in_waits_for_the_second_factor_and_a_code_works_once(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    setup = await turn_on(client, person)
    first = await sign_in(client, person)
    assert first.status_code == 200, first.text
    assert first.json() == {"twoFactorRedirect": True}
    assert "tk.session_token" not in first.headers.get("set-cookie", "")
    assert "tk.two_factor=" in first.headers["set-cookie"]
    assert (await client.get("/api/auth/session")).json() is None
    # Nothing that needs a session works with only the pending cookie.
    assert (await client.get("/api/tickets/my")).status_code == 401

    code = code_at(setup["totpURI"])
    done = await client.post("/api/auth/two-factor/verify-totp", json={"code": code})
    assert done.status_code == 200, done.text
    assert done.json()["user"]["email"] == person.email and done.json()["token"]
    session = (await client.get("/api/auth/session")).json()
    assert session["user"]["id"] == person.user.id
    # The pending sign-in is used up.
    client.cookies.delete("tk.session_token")
    used = await client.post("/api/auth/two-factor/verify-totp", json={"code": code})
    assert used.status_code == 401 and used.json()["code"] == "INVALID_TWO_FACTOR_COOKIE"

    # The same code, replayed in a new sign-in within its window, is refused.
    assert (await sign_in(client, person)).json() == {"twoFactorRedirect": True}
    replay = await client.post("/api/auth/two-factor/verify-totp", json={"code": code})
    assert replay.status_code == 401 and replay.json()["code"] == "INVALID_CODE"
    # An older code (step -1 was used at set-up) too; the next one works, spaced as apps show it.
    older = await client.post(
        "/api/auth/two-factor/verify-totp", json={"code": code_at(setup["totpURI"], -1)}
    )
    assert older.status_code == 401
    following = code_at(setup["totpURI"], 1)
    spaced = await client.post(
        "/api/auth/two-factor/verify-totp", json={"code": f" {following[:3]} {following[3:]} "}
    )
    assert spaced.status_code == 200, spaced.text


async def test_malformed_codes_are_refused_with_a_clear_error(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    await turn_on(client, person)
    await sign_in(client, person)
    for code in (
        "12345",
        "1234567",
        "12a456",
        "12-345",
        "",
        "\uff11\uff12\uff13\uff14\uff15\uff16",  # full-width digits
        "123\x00456",
    ):
        answer = await client.post("/api/auth/two-factor/verify-totp", json={"code": code})
        assert answer.status_code == 400, (code, answer.text)
        assert answer.json()["code"] == "VALIDATION_ERROR"
    for code in ("abc", "abcde-fghij-k", "0000000000"):
        answer = await client.post("/api/auth/two-factor/verify-backup-code", json={"code": code})
        assert answer.status_code == 400, (code, answer.text)
    missing = await client.post("/api/auth/two-factor/verify-totp", json={})
    assert missing.status_code == 400


async def test_five_wrong_codes_lock_the_second_step(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    setup = await turn_on(client, person)
    await sign_in(client, person)
    right = code_at(setup["totpURI"])
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(5):
        answer = await client.post("/api/auth/two-factor/verify-totp", json={"code": wrong})
        assert answer.status_code == 401 and answer.json()["code"] == "INVALID_CODE"
    locked = await client.post("/api/auth/two-factor/verify-totp", json={"code": right})
    assert locked.status_code == 429 and locked.json()["code"] == "RATE_LIMITED"
    assert int(locked.headers["Retry-After"]) >= 1
    # Backup codes share the lock (the same account's second step).
    backup = await client.post(
        "/api/auth/two-factor/verify-backup-code", json={"code": setup["backupCodes"][0]}
    )
    assert backup.status_code == 429
    assert (await client.get("/api/auth/session")).json() is None


async def test_backup_codes_work_once_and_can_be_replaced(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    setup = await turn_on(client, person)
    code = setup["backupCodes"][0]
    await sign_in(client, person)
    used = await client.post("/api/auth/two-factor/verify-backup-code", json={"code": code})
    assert used.status_code == 200, used.text
    assert used.json()["user"]["id"] == person.user.id
    await sign_in(client, person)
    twice = await client.post("/api/auth/two-factor/verify-backup-code", json={"code": code})
    assert twice.status_code == 401 and twice.json()["code"] == "INVALID_CODE"
    # Typed without the dash and in capitals, another one still works.
    other = setup["backupCodes"][1].replace("-", "").upper()
    assert (
        await client.post("/api/auth/two-factor/verify-backup-code", json={"code": other})
    ).status_code == 200

    wrong_password = await client.post(
        "/api/auth/two-factor/generate-backup-codes",
        json={"password": "wrong-password"},
        headers=person.auth,
    )
    assert wrong_password.status_code == 400
    fresh = await client.post(
        "/api/auth/two-factor/generate-backup-codes",
        json={"password": person.password},
        headers=person.auth,
    )
    assert fresh.status_code == 200 and fresh.json()["status"] is True
    assert len(fresh.json()["backupCodes"]) == 10
    await sign_in(client, person)
    old = await client.post(
        "/api/auth/two-factor/verify-backup-code", json={"code": setup["backupCodes"][2]}
    )
    assert old.status_code == 401
    new = await client.post(
        "/api/auth/two-factor/verify-backup-code", json={"code": fresh.json()["backupCodes"][0]}
    )
    assert new.status_code == 200


async def test_disable_needs_the_password(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    await turn_on(client, person)
    wrong = await client.post(
        "/api/auth/two-factor/disable", json={"password": "wrong-password"}, headers=person.auth
    )
    assert wrong.status_code == 400 and wrong.json()["code"] == "INVALID_PASSWORD"
    off = await client.post(
        "/api/auth/two-factor/disable", json={"password": person.password}, headers=person.auth
    )
    assert off.status_code == 200 and off.json() == {"status": True}
    signed_in = await sign_in(client, person)
    assert signed_in.json()["user"]["twoFactorEnabled"] is False and signed_in.json()["token"]
    async with database.sessionmaker() as db:
        assert await db.get(TwoFactor, person.user.id) is None
    no_codes = await client.post(
        "/api/auth/two-factor/generate-backup-codes",
        json={"password": person.password},
        headers=person.auth,
    )
    assert no_codes.status_code == 400 and no_codes.json()["code"] == "TWO_FACTOR_NOT_ENABLED"


async def test_trusted_device_skips_the_code_until_sign_out_everywhere(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    setup = await turn_on(client, person)
    await sign_in(client, person)
    done = await client.post(
        "/api/auth/two-factor/verify-totp",
        json={"code": code_at(setup["totpURI"]), "trustDevice": True},
    )
    assert done.status_code == 200
    cookie = done.headers["set-cookie"]
    assert "tk.trust_device=" in cookie and "Max-Age=2592000" in cookie
    trusted = client.cookies["tk.trust_device"]

    async def sign_in_trusted() -> httpx.Response:
        client.cookies.clear()
        client.cookies.set("tk.trust_device", trusted)
        return await client.post(
            "/api/auth/signin", json={"email": person.email, "password": person.password}
        )

    assert "token" in (await sign_in_trusted()).json()
    # Another person cannot use this browser's trust.
    other = await make_person(database, cipher)
    await turn_on(client, other)
    client.cookies.clear()
    client.cookies.set("tk.trust_device", trusted)
    theirs = await client.post(
        "/api/auth/signin", json={"email": other.email, "password": other.password}
    )
    assert theirs.json() == {"twoFactorRedirect": True}

    everywhere = await client.post("/api/auth/signout-all", headers=person.auth)
    assert everywhere.status_code == 200
    assert (await sign_in_trusted()).json() == {"twoFactorRedirect": True}


async def test_password_reset_does_not_bypass_the_second_factor(
    settings_with: Callable[..., Settings], database: Database, cipher: PiiCipher
) -> None:
    settings = settings_with()
    person = await make_person(database, cipher)
    async with client_for(database, settings) as client:
        setup = await turn_on(client, person)
        await sign_in(client, person)
        trusted = await client.post(
            "/api/auth/two-factor/verify-totp",
            json={"code": code_at(setup["totpURI"]), "trustDevice": True},
        )
        assert trusted.status_code == 200
        trust_cookie = client.cookies["tk.trust_device"]
        await client.post("/api/auth/reset-password-request", json={"email": person.email})
        token = link_token(outbox(settings)[-1])
        reset = await client.post(
            "/api/auth/reset-password", json={"token": token, "newPassword": "a-brand-new-one"}
        )
        assert reset.status_code == 200, reset.text
        client.cookies.clear()
        client.cookies.set("tk.trust_device", trust_cookie)  # the reset ended that trust too
        signed_in = await client.post(
            "/api/auth/signin", json={"email": person.email, "password": "a-brand-new-one"}
        )
        assert signed_in.json() == {"twoFactorRedirect": True}
        assert (await client.get("/api/auth/session")).json() is None


async def test_a_new_oauth_sign_in_does_not_bypass_the_second_factor(
    settings_with: Callable[..., Settings], database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher, email="oidc.person@example.test")
    async with oidc_app(settings_with, database) as (_, client):
        setup = await turn_on(client, person)
        client.cookies.clear()
        start = await client.post(
            "/api/auth/sign-in/social", json={"provider": "oidc", "callbackURL": "/agent"}
        )
        callback = await authorize_at_provider(start.json()["url"])
        done = await client.get(callback)
        assert done.status_code == 302, done.text
        location = urlsplit(done.headers["location"])
        assert location.path == "/auth/two-factor"
        assert parse_qs(location.query)["next"] == ["/agent"]
        assert "tk.session_token" not in done.headers.get("set-cookie", "")
        assert (await client.get("/api/auth/session")).json() is None
        finished = await client.post(
            "/api/auth/two-factor/verify-totp", json={"code": code_at(setup["totpURI"])}
        )
        assert finished.status_code == 200, finished.text
        session = (await client.get("/api/auth/session")).json()
        assert session["user"]["id"] == person.user.id


async def test_tokens_cannot_reach_the_two_factor_routes(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    token = (
        await client.post(
            "/api/me/tokens", json={"name": "ci", "scopes": ["admin"]}, headers=person.auth
        )
    ).json()["token"]
    answer = await client.post(
        "/api/auth/two-factor/enable",
        json={"password": person.password},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 403 and answer.json()["code"] == "INSUFFICIENT_SCOPE"


async def test_require_2fa_holds_agents_back_until_set_up(
    settings_with: Callable[..., Settings], database: Database, cipher: PiiCipher
) -> None:
    agent = await make_person(database, cipher, role="agent")
    admin = await make_person(database, cipher, role="admin")
    customer = await make_person(database, cipher)
    async with client_for(database, settings_with(TK_REQUIRE_2FA="agents")) as client:
        held = await client.get("/api/tickets", headers=agent.auth)
        assert held.status_code == 403 and held.json()["code"] == "TWO_FACTOR_REQUIRED"
        assert (await client.get("/api/v1/tickets", headers=admin.auth)).status_code == 403
        # better-auth's admin routes live under /auth/ but are not part of the set-up.
        admin_list = await client.get("/api/auth/admin/list-users", headers=admin.auth)
        assert admin_list.status_code == 403 and admin_list.json()["code"] == "TWO_FACTOR_REQUIRED"
        assert (await client.get("/api/tickets/my", headers=customer.auth)).status_code == 200
        # Also where the lookup goes with the read, and before a bad query's 400.
        for path in ("/api/tickets/my", "/api/tickets/my/1", "/api/tickets/my?page=0"):
            mine = await client.get(path, headers=agent.auth)
            assert mine.status_code == 403 and mine.json()["code"] == "TWO_FACTOR_REQUIRED"
        # Sign-in state and the set-up itself stay open.
        assert (await client.get("/api/auth/session", headers=agent.auth)).json()["user"]
        page = await client.get("/agent", headers=agent.auth)
        assert page.status_code == 303 and page.headers["location"] == "/settings/security"
        assert (await client.get("/settings/security", headers=agent.auth)).status_code == 200
        await turn_on(client, agent)
        assert (await client.get("/api/tickets", headers=agent.auth)).status_code == 200
        assert (await client.get("/agent", headers=agent.auth)).status_code == 200
    async with client_for(database, settings_with(TK_REQUIRE_2FA="admins")) as client:
        assert (await client.get("/api/tickets", headers=admin.auth)).status_code == 403
        other_agent = await make_person(database, cipher, role="agent")
        assert (await client.get("/api/tickets", headers=other_agent.auth)).status_code == 200
    async with database.sessionmaker() as db:
        row = await db.get(User, agent.user.id)
    assert row is not None and row.two_factor_enabled


async def test_key_rotation_re_encrypts_totp_secrets(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    setup = await turn_on(client, person)
    assert await keys.count_stale(database, 2) >= 2  # the user and the TOTP secret
    result = await keys.rotate(database, PiiCipher(cipher.master), settle_seconds=0)
    assert result.new_key_id == 2 and result.two_factors == 1
    assert await keys.count_stale(database, 2) == 0
    async with database.sessionmaker() as db:
        row = await db.get(TwoFactor, person.user.id)
    assert row is not None and PiiCipher.key_id_of(row.secret_ciphertext) == 2
    # The code still works after the rotation.
    await sign_in(client, person)
    done = await client.post(
        "/api/auth/two-factor/verify-totp", json={"code": code_at(setup["totpURI"])}
    )
    assert done.status_code == 200, done.text
