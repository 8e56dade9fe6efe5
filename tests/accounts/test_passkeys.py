"""Passkeys on better-auth's paths, verified by py_webauthn against a software authenticator
(real keys and signatures): register, list, delete, sign in; replayed and cloned assertions,
another relying party, missing user verification and malformed credentials are refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tekudasai.accounts import passkeys
from tekudasai.accounts.models import Passkey
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.accounts.soft_authenticator import UP, SoftAuthenticator
from tests.accounts.test_two_factor import code_at, sign_in, turn_on
from tests.conftest import make_settings
from tests.factories import Person, make_person

# The suite's base URL is http://127.0.0.1:8000: browsers refuse an IP as RP id, so the
# relying party is `localhost` and the page's origin http://localhost:8000.
RP_ID = "localhost"
ORIGIN = "http://localhost:8000"


@pytest.mark.parametrize(
    ("base", "rp", "origin"),
    [
        ("http://127.0.0.1:8000", "localhost", "http://localhost:8000"),
        ("http://[::1]:9000", "localhost", "http://localhost:9000"),
        ("https://desk.example.com", "desk.example.com", "https://desk.example.com"),
        ("https://Desk.Example.com:8443/", "desk.example.com", "https://desk.example.com:8443"),
    ],
)
def test_relying_party_follows_the_base_url(tmp_path: Any, base: str, rp: str, origin: str) -> None:
    settings = make_settings(None, tmp_path, BETTER_AUTH_URL=base)
    assert passkeys.rp_id(settings) == rp
    assert passkeys.expected_origins(settings)[0] == origin


async def register(
    client: httpx.AsyncClient, person: Person, authenticator: SoftAuthenticator, **lie: Any
) -> httpx.Response:
    options = await client.get("/api/auth/passkey/generate-register-options", headers=person.auth)
    assert options.status_code == 200, options.text
    body = options.json()
    assert body["rp"] == {"id": RP_ID, "name": "Te Kudasai"}
    assert body["authenticatorSelection"]["userVerification"] == "required"
    return await client.post(
        "/api/auth/passkey/verify-registration",
        json={"response": authenticator.register(body, **lie), "name": "Laptop"},
        headers=person.auth,
    )


async def authenticate_options(client: httpx.AsyncClient) -> dict[str, Any]:
    options = await client.post("/api/auth/passkey/generate-authenticate-options")
    assert options.status_code == 200, options.text
    assert options.json()["rpId"] == RP_ID
    return options.json()  # type: ignore[no-any-return]


async def test_register_list_sign_in_and_delete(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    key = SoftAuthenticator(ORIGIN, RP_ID)
    made = await register(client, person, key)
    assert made.status_code == 200, made.text
    passkey = made.json()
    assert passkey["name"] == "Laptop" and passkey["userId"] == person.user.id
    assert passkey["counter"] == 0 and passkey["transports"] == "internal"
    listed = await client.get("/api/auth/passkey/list-user-passkeys", headers=person.auth)
    assert [p["id"] for p in listed.json()] == [passkey["id"]]

    client.cookies.clear()
    options = await authenticate_options(client)
    assert options["userVerification"] == "required"
    signed_in = await client.post(
        "/api/auth/passkey/verify-authentication", json={"response": key.assertion(options)}
    )
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["user"]["id"] == person.user.id
    assert "tk.session_token=" in signed_in.headers["set-cookie"]
    session = (await client.get("/api/auth/session")).json()
    assert session["user"]["id"] == person.user.id
    async with database.sessionmaker() as db:
        row = await db.scalar(select(Passkey).where(Passkey.id == passkey["id"]))
    assert row is not None and row.counter == 1 and row.last_used_at is not None

    # Someone else cannot delete it; its owner can, and then it signs nobody in.
    other = await make_person(database, cipher)
    theirs = await client.post(
        "/api/auth/passkey/delete-passkey", json={"id": passkey["id"]}, headers=other.auth
    )
    assert theirs.status_code == 404
    gone = await client.post(
        "/api/auth/passkey/delete-passkey", json={"id": passkey["id"]}, headers=person.auth
    )
    assert gone.status_code == 200 and gone.json() == {"status": True}
    client.cookies.clear()
    options = await authenticate_options(client)
    refused = await client.post(
        "/api/auth/passkey/verify-authentication", json={"response": key.assertion(options)}
    )
    assert refused.status_code == 400 and refused.json()["code"] == "PASSKEY_VERIFICATION_FAILED"


async def test_a_passkey_counts_as_both_factors(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    setup = await turn_on(client, person)
    key = SoftAuthenticator(ORIGIN, RP_ID)
    assert (await register(client, person, key)).status_code == 200
    assert (await sign_in(client, person)).json() == {"twoFactorRedirect": True}
    options = await authenticate_options(client)
    done = await client.post(
        "/api/auth/passkey/verify-authentication", json={"response": key.assertion(options)}
    )
    assert done.status_code == 200, done.text
    assert (await client.get("/api/auth/session")).json()["user"]["id"] == person.user.id
    # The half-finished password sign-in is dropped with the pending cookie.
    assert "tk.two_factor=" in done.headers["set-cookie"]
    assert code_at(setup["totpURI"])  # (its code was never needed)


async def test_replayed_and_cloned_assertions_are_refused(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    key = SoftAuthenticator(ORIGIN, RP_ID)
    assert (await register(client, person, key)).status_code == 200
    client.cookies.clear()
    options = await authenticate_options(client)
    assertion = key.assertion(options)
    first = await client.post(
        "/api/auth/passkey/verify-authentication", json={"response": assertion}
    )
    assert first.status_code == 200
    # The very same assertion again: its challenge is used up.
    replay = await client.post(
        "/api/auth/passkey/verify-authentication", json={"response": assertion}
    )
    assert replay.status_code == 400 and replay.json()["code"] == "CHALLENGE_NOT_FOUND"
    # A fresh challenge signed with a counter that did not move on (a cloned key): refused.
    client.cookies.clear()
    options = await authenticate_options(client)
    cloned = await client.post(
        "/api/auth/passkey/verify-authentication",
        json={"response": key.assertion(options, counter=key.counter)},
    )
    assert cloned.status_code == 400 and cloned.json()["code"] == "PASSKEY_VERIFICATION_FAILED"
    assert "sign count" in cloned.json()["message"]
    assert (await client.get("/api/auth/session")).json() is None
    options = await authenticate_options(client)
    assert (
        await client.post(
            "/api/auth/passkey/verify-authentication", json={"response": key.assertion(options)}
        )
    ).status_code == 200


async def test_another_relying_party_and_missing_verification_are_refused(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    evil = SoftAuthenticator("https://evil.example", "evil.example")
    for lie in ({}, {"origin": ORIGIN}, {"rp_id": "evil.example", "origin": ORIGIN}):
        refused = await register(client, person, evil, **lie)
        assert refused.status_code == 400, (lie, refused.text)
        assert refused.json()["code"] == "PASSKEY_VERIFICATION_FAILED"
    no_uv = await register(client, person, SoftAuthenticator(ORIGIN, RP_ID), flags=UP | 0x40)
    assert no_uv.status_code == 400
    assert (
        await client.get("/api/auth/passkey/list-user-passkeys", headers=person.auth)
    ).json() == []

    # Registered here, but the assertion was made for another relying party or page.
    key = SoftAuthenticator(ORIGIN, RP_ID)
    assert (await register(client, person, key)).status_code == 200
    client.cookies.clear()
    for lie, reason in (
        ({"rp_id": "evil.example"}, "RP ID hash"),
        ({"origin": "https://evil.example"}, "origin"),
        ({"flags": UP}, "User verification"),
    ):
        options = await authenticate_options(client)
        refused = await client.post(
            "/api/auth/passkey/verify-authentication",
            json={"response": key.assertion(options, **lie)},
        )
        assert refused.status_code == 400, (lie, refused.text)
        assert reason.lower() in refused.json()["message"].lower(), refused.text
    assert (await client.get("/api/auth/session")).json() is None


async def test_challenges_are_single_use_and_bad_credentials_answer_400(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher
) -> None:
    person = await make_person(database, cipher)
    key = SoftAuthenticator(ORIGIN, RP_ID)
    options = (
        await client.get("/api/auth/passkey/generate-register-options", headers=person.auth)
    ).json()
    response = key.register(options)
    ok = await client.post(
        "/api/auth/passkey/verify-registration", json={"response": response}, headers=person.auth
    )
    assert ok.status_code == 200, ok.text
    again = await client.post(
        "/api/auth/passkey/verify-registration", json={"response": response}, headers=person.auth
    )
    assert again.status_code == 400 and again.json()["code"] == "CHALLENGE_NOT_FOUND"
    # A registration challenge cannot finish someone else's registration.
    options = (
        await client.get("/api/auth/passkey/generate-register-options", headers=person.auth)
    ).json()
    other = await make_person(database, cipher)
    stolen = await client.post(
        "/api/auth/passkey/verify-registration",
        json={"response": SoftAuthenticator(ORIGIN, RP_ID).register(options)},
        headers=other.auth,
    )
    assert stolen.status_code == 400 and stolen.json()["code"] == "CHALLENGE_NOT_FOUND"

    client.cookies.clear()
    for bad in (
        {},
        {"id": "x"},
        {"id": "!!", "rawId": "!!", "type": "public-key", "response": {}},
        {"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {"clientDataJSON": 5}},
    ):
        await authenticate_options(client)
        answer = await client.post(
            "/api/auth/passkey/verify-authentication", json={"response": bad}
        )
        assert answer.status_code == 400, (bad, answer.text)
    # A failed attempt uses the challenge up as well: no second try against it.
    key_options = await authenticate_options(client)
    wrong = await client.post(
        "/api/auth/passkey/verify-authentication",
        json={"response": key.assertion(key_options, rp_id="evil.example")},
    )
    assert wrong.status_code == 400
    retry = await client.post(
        "/api/auth/passkey/verify-authentication", json={"response": key.assertion(key_options)}
    )
    assert retry.status_code == 400 and retry.json()["code"] == "CHALLENGE_NOT_FOUND"
    no_body = await client.post("/api/auth/passkey/verify-authentication", json={})
    assert no_body.status_code == 400
    # Without a session nothing can be registered or listed.
    assert (await client.get("/api/auth/passkey/generate-register-options")).status_code == 401
    assert (await client.get("/api/auth/passkey/list-user-passkeys")).status_code == 401
