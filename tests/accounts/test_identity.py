"""E-mail identity (#12 items 3-5): mail only to the stored address, OAuth links only on a
verified, equal address, a reset drops links made before verification, no look-alike sign-ups."""

from __future__ import annotations

import email
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import func, select

from tekudasai.accounts import service
from tekudasai.accounts.addresses import imitation_reason
from tekudasai.accounts.models import Account, User
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.accounts.conftest import client_for, link_token, outbox
from tests.accounts.oidc_provider import ProviderUser
from tests.accounts.test_oauth import authorize_at_provider, oidc_app, start_url
from tests.accounts.test_reset_verify import SmtpServer, wait_for
from tests.conftest import BASE_URL
from tests.factories import make_person

CYRILLIC_A = "\u0430"


async def links_of(database: Database, user_id: str) -> list[str]:
    async with database.sessionmaker() as db:
        rows = await db.scalars(
            select(Account.account_id).where(
                Account.user_id == user_id, Account.provider_id != "credential"
            )
        )
        return list(rows)


async def user_count(database: Database) -> int:
    async with database.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(User)) or 0)


# --- 1. Mail goes only to the stored address -------------------------------------------------


async def test_reset_for_a_look_alike_address_mails_only_the_stored_address(
    settings_with: Callable[..., Settings], database: Database, cipher: PiiCipher
) -> None:
    victim = await make_person(database, cipher, email="strasse.x@example.test")
    async with SmtpServer() as smtp:
        # The app's own queue worker sends it (as in `serve`), woken by the commit's NOTIFY.
        settings = settings_with(
            TK_SMTP_URL=f"smtp://127.0.0.1:{smtp.port}",
            TK_BACKGROUND_JOBS="true",
            TK_BACKUP_INTERVAL="off",
        )
        async with client_for(database, settings) as client:
            # Folds to the victim's lookup index (NFKC + casefold), but is another mailbox.
            response = await client.post(
                "/api/auth/request-password-reset", json={"email": "Straße.X@example.test"}
            )
            assert response.status_code == 200
            await wait_for(lambda: len(smtp.inbox.messages) == 1)
            envelope = smtp.inbox.messages[0]
            assert envelope.rcpt_tos == [victim.email]
            message = email.message_from_bytes(envelope.original_content or b"")
            assert message["To"] == victim.email
            reset = await client.post(
                "/api/auth/reset-password",
                json={"token": link_token(message), "newPassword": "owner-chose-this"},
            )
            assert reset.status_code == 200


async def test_verification_mail_goes_to_the_stored_address(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher, settings: Settings
) -> None:
    async with database.sessionmaker() as db, db.begin():
        await service.create_user(
            db, cipher, email="strasse.y@example.test", name="Owner", password="owner-password"
        )
    response = await client.post(
        "/api/auth/verify-request", json={"email": "straße.y@example.test"}
    )
    assert response.status_code == 200
    mails = outbox(settings)
    assert [m["To"] for m in mails] == ["strasse.y@example.test"]


async def test_sign_up_keeps_the_address_as_typed_lower_cased(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # Not the folded lookup form ("strasse"): that would be someone else's mailbox.
    signed_up = await client.post(
        "/api/auth/signup",
        json={"name": "Grete", "email": "Grete.Straße@Example.test", "password": "long-enough-pw"},
    )
    assert signed_up.status_code == 200, signed_up.text
    assert signed_up.json()["user"]["email"] == "grete.straße@example.test"
    again = await client.post(
        "/api/auth/signup",
        json={"name": "Other", "email": "grete.strasse@example.test", "password": "long-enough"},
    )
    assert again.status_code == 422  # the same account for lookups


# --- 1. OAuth links only on a verified, equal address -----------------------------------------


async def test_oauth_does_not_link_a_verified_look_alike(
    settings_with: Callable[..., Settings], database: Database, cipher: PiiCipher
) -> None:
    victim = await make_person(database, cipher, email="strasse.z@example.test")
    async with oidc_app(settings_with, database) as (provider, client):
        provider.user = ProviderUser("attacker", "straße.z@example.test", email_verified=True)
        refused = await client.get(await authorize_at_provider(await start_url(client)))
        assert refused.status_code == 302
        assert refused.headers["location"] == f"{BASE_URL}/auth/login?error=ACCOUNT_NOT_LINKED"
        assert "tk.session_token" not in refused.headers.get("set-cookie", "")
        assert (await client.get("/api/auth/session")).text == "null"
    assert await links_of(database, victim.user.id) == []
    assert await user_count(database) == 1


async def test_oauth_links_the_same_address_in_another_case(
    settings_with: Callable[..., Settings], database: Database, cipher: PiiCipher
) -> None:
    owner = await make_person(database, cipher, email="casey@example.test")
    async with oidc_app(settings_with, database) as (provider, client):
        provider.user = ProviderUser("casey-sub", "Casey@Example.TEST", email_verified=True)
        done = await client.get(await authorize_at_provider(await start_url(client)))
        assert done.headers["location"] == f"{BASE_URL}/"
        assert (await client.get("/api/auth/session")).json()["user"]["id"] == owner.user.id
    assert await links_of(database, owner.user.id) == ["casey-sub"]


# --- 2. Pre-hijack: unverified provider addresses, links made before verification -------------


async def test_an_unverified_provider_address_creates_no_account(
    settings_with: Callable[..., Settings], database: Database
) -> None:
    async with oidc_app(settings_with, database) as (provider, client):
        provider.user = ProviderUser("squatter", "future.user@example.test", email_verified=False)
        refused = await client.get(await authorize_at_provider(await start_url(client)))
        assert refused.status_code == 302
        assert refused.headers["location"] == f"{BASE_URL}/auth/login?error=EMAIL_NOT_VERIFIED"
        assert (await client.get("/api/auth/session")).text == "null"
    assert await user_count(database) == 0


async def _squatted_account(database: Database, cipher: PiiCipher, address: str) -> str:
    """What the old code let an attacker make: an account from an unverified provider address."""
    async with database.sessionmaker() as db, db.begin():
        user = await service.create_user(
            db, cipher, email=address, name="Squatter", password=None, email_verified=False
        )
        db.add(Account(user_id=user.id, provider_id="oidc", account_id="squatter"))
        return user.id


async def _reset(client: httpx.AsyncClient, settings: Settings, address: str) -> None:
    asked = await client.post("/api/auth/request-password-reset", json={"email": address})
    assert asked.status_code == 200
    token = link_token(outbox(settings)[-1])
    reset = await client.post(
        "/api/auth/reset-password", json={"token": token, "newPassword": "the-real-owner"}
    )
    assert reset.status_code == 200, reset.text


async def test_a_reset_drops_links_made_before_the_address_was_verified(
    settings_with: Callable[..., Settings], database: Database, cipher: PiiCipher
) -> None:
    user_id = await _squatted_account(database, cipher, "owner.a@example.test")
    async with oidc_app(settings_with, database) as (provider, client):
        await _reset(client, settings_with(), "owner.a@example.test")  # same outbox
        assert await links_of(database, user_id) == []
        # The squatter comes back through the provider: no way in any more.
        provider.user = ProviderUser("squatter", "owner.a@example.test", email_verified=False)
        client.cookies.clear()
        refused = await client.get(await authorize_at_provider(await start_url(client)))
        assert refused.headers["location"] == f"{BASE_URL}/auth/login?error=ACCOUNT_NOT_LINKED"
        assert (await client.get("/api/auth/session")).text == "null"
    signed_in = await _sign_in(database, settings_with, "owner.a@example.test", "the-real-owner")
    assert signed_in.status_code == 200


async def _sign_in(
    database: Database, settings_with: Callable[..., Settings], address: str, password: str
) -> httpx.Response:
    async with client_for(database, settings_with()) as plain:
        return await plain.post("/api/auth/signin", json={"email": address, "password": password})


async def test_a_link_made_before_the_mail_link_was_clicked_goes_at_the_reset(
    client: httpx.AsyncClient, database: Database, cipher: PiiCipher, settings: Settings
) -> None:
    user_id = await _squatted_account(database, cipher, "owner.b@example.test")
    # The owner confirms the address (the squatter's link is older than that) ...
    asked = await client.post("/api/auth/verify-request", json={"email": "owner.b@example.test"})
    assert asked.status_code == 200
    verified = await client.get(
        "/api/auth/verify", params={"token": link_token(outbox(settings)[-1])}
    )
    assert verified.status_code == 200
    assert await links_of(database, user_id) == ["squatter"]
    # ... and the reset then drops the link.
    await _reset(client, settings, "owner.b@example.test")
    assert await links_of(database, user_id) == []


async def test_a_reset_keeps_links_made_with_a_verified_address(
    settings_with: Callable[..., Settings], database: Database, cipher: PiiCipher
) -> None:
    async with oidc_app(settings_with, database) as (provider, client):
        provider.user = ProviderUser("honest", "honest@example.test", email_verified=True)
        done = await client.get(await authorize_at_provider(await start_url(client)))
        assert done.headers["location"] == f"{BASE_URL}/"
        user_id = (await client.get("/api/auth/session")).json()["user"]["id"]
        await _reset(client, settings_with(), "honest@example.test")  # same outbox
        assert await links_of(database, user_id) == ["honest"]
        client.cookies.clear()
        again = await client.get(await authorize_at_provider(await start_url(client)))
        assert again.headers["location"] == f"{BASE_URL}/"
        assert (await client.get("/api/auth/session")).json()["user"]["id"] == user_id


# --- 3. Look-alike addresses are refused at sign-up -------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        f"{CYRILLIC_A}dmin@example.test",  # Cyrillic a among Latin letters
        "\u0430\u0440\u0435@example.test",  # all Cyrillic, but reads "ape" beside a Latin domain
        "\u03b1\u03b1\u03b1@example.test",  # Greek alphas reading "aaa"
        "\uff41dmin@example.test",  # full-width a
        "ad\u200bmin@example.test",  # zero-width space
        "admin@xn--pple-43d.test",  # punycode of a Cyrillic a in "apple"
        "admin@XN--PPLE-43D.test",  # the same, upper-case
    ],
)
async def test_sign_up_refuses_look_alike_addresses(
    client: httpx.AsyncClient, database: Database, address: str
) -> None:
    response = await client.post(
        "/api/auth/signup", json={"name": "Mallory", "email": address, "password": "long-enough"}
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert [e["field"] for e in body["errors"]] == ["email"]
    assert await user_count(database) == 0


@pytest.mark.parametrize(
    "address",
    [
        "\u0430\u0434\u043c\u0438\u043d@example.test",  # "админ": Cyrillic, not all look-alikes
        "\u03b4\u03bf\u03ba\u03b9\u03bc\u03ae@example.test",  # Greek
        "\u7528\u6237@example.test",  # Chinese
        "tanaka\u7530\u4e2d@example.test",  # Japanese mixes Latin and Han
        "jos\u00e9.m\u00fcller@example.test",  # Latin with accents
        "plain.ascii+tag@intranet",
    ],
)
async def test_sign_up_accepts_addresses_in_one_script(
    client: httpx.AsyncClient, address: str
) -> None:
    response = await client.post(
        "/api/auth/signup", json={"name": "Someone", "email": address, "password": "long-enough"}
    )
    assert response.status_code == 200, response.text
    assert imitation_reason(address) is None


async def test_signup_page_shows_the_look_alike_error_at_the_field(
    client: httpx.AsyncClient, database: Database
) -> None:
    client.cookies.clear()
    page = await client.get("/auth/signup")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    refused = await client.post(
        "/auth/signup",
        data={
            "name": "Mallory",
            "email": f"{CYRILLIC_A}dmin@example.test",
            "password": "long-enough",
            "password_confirm": "long-enough",
            "csrf_token": token,
        },
    )
    assert refused.status_code == 400
    assert 'id="f-email-error"' in refused.text and "mixes alphabets" in refused.text
    assert await user_count(database) == 0


async def test_oauth_refuses_to_create_a_look_alike_account(
    settings_with: Callable[..., Settings], database: Database
) -> None:
    async with oidc_app(settings_with, database) as (provider, client):
        provider.user = ProviderUser("mallory", f"{CYRILLIC_A}dmin@example.test")
        refused = await client.get(await authorize_at_provider(await start_url(client)))
        assert refused.headers["location"] == f"{BASE_URL}/auth/login?error=VALIDATION_ERROR"
    assert await user_count(database) == 0
