"""The whole OAuth/OIDC flow against a real provider on loopback: redirect → authorize → callback
(state + PKCE) → session cookie → redirect to the callback URL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select, text

from tekudasai.accounts.models import Account, User
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.accounts.conftest import client_for
from tests.accounts.oidc_provider import OidcProvider, ProviderUser
from tests.conftest import BASE_URL
from tests.factories import make_person


@asynccontextmanager
async def oidc_app(
    settings_with: Callable[..., Settings], database: Database, **extra: str
) -> AsyncIterator[tuple[OidcProvider, httpx.AsyncClient]]:
    async with OidcProvider() as provider:
        settings = settings_with(
            OIDC_ISSUER=provider.issuer,
            OIDC_CLIENT_ID=provider.client_id,
            OIDC_CLIENT_SECRET=provider.client_secret,
            OIDC_NAME="Test IdP",
            **extra,
        )
        async with client_for(database, settings) as client:
            yield provider, client


async def authorize_at_provider(url: str) -> str:
    """What the browser does at the provider: follow the authorization URL; get our callback."""
    async with httpx.AsyncClient() as browser:
        response = await browser.get(url)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(f"{BASE_URL}/api/auth/callback/")
    return location.removeprefix(BASE_URL)


async def users(database: Database) -> int:
    async with database.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(User)) or 0)


async def test_providers_list_only_configured(
    client: httpx.AsyncClient, settings_with, database: Database
) -> None:  # type: ignore[no-untyped-def]
    assert (await client.get("/api/auth/providers")).json() == []
    async with oidc_app(settings_with, database, GITHUB_CLIENT_ID="gh") as (_, app_client):
        listed = (await app_client.get("/api/auth/providers")).json()
    assert listed == [{"id": "github", "name": "GitHub"}, {"id": "oidc", "name": "Test IdP"}]
    unknown = await client.post("/api/auth/sign-in/social", json={"provider": "oidc"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "PROVIDER_NOT_FOUND"


async def test_full_flow_creates_user_and_session(settings_with, database: Database) -> None:  # type: ignore[no-untyped-def]
    async with oidc_app(settings_with, database) as (provider, client):
        start = await client.post(
            "/api/auth/sign-in/social", json={"provider": "oidc", "callbackURL": "/tickets?x=1"}
        )
        assert start.status_code == 200, start.text
        assert start.json()["redirect"] is True
        url = start.json()["url"]
        query = parse_qs(urlsplit(url).query)
        assert query["code_challenge_method"] == ["S256"] and query["state"] and query["nonce"]
        assert "tk.oauth_state" in start.headers["set-cookie"]

        callback = await authorize_at_provider(url)
        done = await client.get(callback)
        assert done.status_code == 302, done.text
        assert done.headers["location"] == f"{BASE_URL}/tickets?x=1"
        assert "tk.session_token=" in done.headers.get("set-cookie", "")
        assert provider.pkce_checked == 1

        session = (await client.get("/api/auth/session")).json()
        assert session["user"]["email"] == "oidc.person@example.test"
        assert session["user"]["name"] == "Oidc Person"
        assert session["user"]["emailVerified"] is True

        # Replaying the callback fails: the state cookie is gone and the code was single-use.
        replay = await client.get(callback)
        assert replay.status_code == 400 and replay.json()["code"] == "INVALID_OAUTH_STATE"

        # The second sign-in finds the same user through the linked account.
        again = await client.get(
            await authorize_at_provider(
                (await client.post("/api/auth/sign-in/social", json={"provider": "oidc"})).json()[
                    "url"
                ]
            )
        )
        assert again.status_code == 302 and again.headers["location"] == f"{BASE_URL}/"
    assert await users(database) == 1
    async with database.sessionmaker() as db:
        account = await db.scalar(select(Account).where(Account.provider_id == "oidc"))
        assert account is not None and account.account_id == "sub-1"
        assert account.access_token_ciphertext is not None and account.id_token_ciphertext
        plain = (
            await db.execute(text("SELECT encode(access_token_ciphertext, 'escape') FROM accounts"))
        ).scalar()
        assert plain is not None and "at-" not in plain  # stored encrypted


async def test_links_an_existing_user_by_verified_email(
    settings_with,
    database: Database,
    cipher: PiiCipher,  # type: ignore[no-untyped-def]
) -> None:
    person = await make_person(database, cipher, email="oidc.person@example.test")
    async with oidc_app(settings_with, database) as (_, client):
        redirect = await client.get("/api/auth/oidc", params={"callbackURL": "/"})
        assert redirect.status_code == 302
        done = await client.get(await authorize_at_provider(redirect.headers["location"]))
        assert done.status_code == 302
        me = (await client.get("/api/auth/session")).json()
    assert me["user"]["id"] == person.user.id
    assert await users(database) == 1
    # The password still works too.
    async with client_for(database, settings_with()) as plain:
        response = await plain.post(
            "/api/auth/signin", json={"email": person.email, "password": person.password}
        )
        assert response.status_code == 200


async def test_unverified_email_is_not_linked(
    settings_with,
    database: Database,
    cipher: PiiCipher,  # type: ignore[no-untyped-def]
) -> None:
    await make_person(database, cipher, email="victim@example.test")
    async with oidc_app(settings_with, database) as (provider, client):
        provider.user = ProviderUser("attacker", "victim@example.test", email_verified=False)
        url = (await client.post("/api/auth/sign-in/social", json={"provider": "oidc"})).json()[
            "url"
        ]
        refused = await client.get(await authorize_at_provider(url))
        assert refused.status_code == 302
        assert refused.headers["location"] == f"{BASE_URL}/auth/login?error=ACCOUNT_NOT_LINKED"
        assert "tk.session_token" not in refused.headers.get("set-cookie", "")
        assert (await client.get("/api/auth/session")).text == "null"
    async with database.sessionmaker() as db:
        assert (
            await db.scalar(
                select(func.count()).select_from(Account).where(Account.provider_id == "oidc")
            )
            == 0
        )


async def test_wrong_or_missing_state_is_a_clear_error(settings_with, database: Database) -> None:  # type: ignore[no-untyped-def]
    async with oidc_app(settings_with, database) as (provider, client):
        url = (await client.post("/api/auth/sign-in/social", json={"provider": "oidc"})).json()[
            "url"
        ]
        callback = await authorize_at_provider(url)
        code = parse_qs(urlsplit(callback).query)["code"][0]
        wrong = await client.get(
            "/api/auth/callback/oidc", params={"code": code, "state": "forged"}
        )
        assert wrong.status_code == 400
        assert wrong.json()["code"] == "INVALID_OAUTH_STATE"
        assert "try again" in wrong.json()["message"]
        # The other alias, without the state cookie at all.
        client.cookies.clear()
        alias = callback.replace("/api/auth/callback/oidc", "/api/auth/oidc/callback")
        missing = await client.get(alias)
        assert missing.status_code == 400 and missing.json()["code"] == "INVALID_OAUTH_STATE"
        # A forged state cookie is refused too.
        client.cookies.set("tk.oauth_state", "AAAA" * 20, path="/api")
        forged = await client.get(callback)
        assert forged.status_code == 400 and forged.json()["code"] == "INVALID_OAUTH_STATE"
        assert provider.pkce_checked == 0
    assert await users(database) == 0


async def start_url(client: httpx.AsyncClient, **extra: str) -> str:
    response = await client.post("/api/auth/sign-in/social", json={"provider": "oidc", **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["url"])


async def test_provider_error_and_ban_redirect_with_the_reason(
    settings_with,  # type: ignore[no-untyped-def]
    database: Database,
    cipher: PiiCipher,
) -> None:
    async with oidc_app(settings_with, database) as (provider, client):
        url = await start_url(client, errorCallbackURL="/oops?from=sso")
        state = parse_qs(urlsplit(url).query)["state"][0]
        denied = await client.get(
            "/api/auth/callback/oidc", params={"error": "access_denied", "state": state}
        )
        assert denied.status_code == 302
        assert denied.headers["location"] == f"{BASE_URL}/oops?from=sso&error=OAUTH_FAILED"

        # A banned user coming back through the provider is refused, and nothing is linked.
        banned = await make_person(database, cipher, email="banned.sso@example.test")
        async with database.sessionmaker() as db, db.begin():
            row = await db.get(User, banned.user.id)
            assert row is not None
            row.banned = True
        provider.user = ProviderUser("sub-banned", "banned.sso@example.test")
        refused = await client.get(await authorize_at_provider(await start_url(client)))
        assert refused.headers["location"] == f"{BASE_URL}/auth/login?error=BANNED_USER"
    async with database.sessionmaker() as db:
        linked = await db.scalar(
            select(func.count()).select_from(Account).where(Account.account_id == "sub-banned")
        )
    assert linked == 0


@pytest.mark.parametrize(
    "callback", ["https://evil.test/", "//evil.test/x", "/\\evil.test", "javascript:alert(1)"]
)
async def test_no_open_redirect(settings_with, database: Database, callback: str) -> None:  # type: ignore[no-untyped-def]
    async with oidc_app(settings_with, database) as (_, client):
        response = await client.post(
            "/api/auth/sign-in/social", json={"provider": "oidc", "callbackURL": callback}
        )
        assert response.status_code == 400
        assert response.json()["code"] == "INVALID_CALLBACK_URL"


async def test_trusted_absolute_callback_and_gitlab_issuer(
    settings_with, database: Database
) -> None:  # type: ignore[no-untyped-def]
    async with OidcProvider() as provider:
        settings = settings_with(
            GITLAB_CLIENT_ID=provider.client_id,
            GITLAB_CLIENT_SECRET=provider.client_secret,
            GITLAB_ISSUER=provider.issuer,
            TRUSTED_ORIGINS=f"{BASE_URL},https://app.example.test",
        )
        async with client_for(database, settings) as client:
            assert (await client.get("/api/auth/providers")).json() == [
                {"id": "gitlab", "name": "GitLab"}
            ]
            start = await client.post(
                "/api/auth/sign-in/social",
                json={"provider": "gitlab", "callbackURL": "https://app.example.test/done"},
            )
            assert start.status_code == 200
            done = await client.get(await authorize_at_provider(start.json()["url"]))
            assert done.status_code == 302
            assert done.headers["location"] == "https://app.example.test/done"
            assert (await client.get("/api/auth/session")).json()["user"][
                "email"
            ] == provider.user.email


async def test_linking_to_an_unverified_account_drops_the_squatters_password(
    settings_with,  # type: ignore[no-untyped-def]
    database: Database,
    cipher: PiiCipher,
) -> None:
    async with oidc_app(settings_with, database) as (_, client):
        squatter = await client.post(
            "/api/auth/signup",
            json={
                "name": "Squatter",
                "email": "oidc.person@example.test",
                "password": "i-do-not-own-this",
            },
        )
        assert squatter.status_code == 200
        squatter_token = squatter.json()["token"]
        client.cookies.clear()
        done = await client.get(await authorize_at_provider(await start_url(client)))
        assert done.status_code == 302 and done.headers["location"] == f"{BASE_URL}/"
        me = (await client.get("/api/auth/session")).json()
        assert me["user"]["emailVerified"] is True
        dead = await client.get(
            "/api/auth/session", headers={"Authorization": f"Bearer {squatter_token}"}
        )
        assert dead.text == "null"
        refused = await client.post(
            "/api/auth/signin",
            json={"email": "oidc.person@example.test", "password": "i-do-not-own-this"},
            headers={"Authorization": "Bearer none"},
        )
        assert refused.status_code == 401


async def test_github_flow_uses_the_verified_primary_email(
    settings_with,  # type: ignore[no-untyped-def]
    database: Database,
    cipher: PiiCipher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tekudasai.accounts import oauth

    person = await make_person(database, cipher, email="octo@example.test")
    async with OidcProvider() as provider:
        # The same loopback server plays github.com and api.github.com.
        monkeypatch.setattr(oauth, "GITHUB_WEB", provider.issuer)
        monkeypatch.setattr(oauth, "GITHUB_API", provider.issuer)
        provider.user = ProviderUser("ignored", "octo@example.test", name="Octo Cat")
        settings = settings_with(
            GITHUB_CLIENT_ID=provider.client_id, GITHUB_CLIENT_SECRET=provider.client_secret
        )
        async with client_for(database, settings) as client:
            redirect = await client.get("/api/auth/github", params={"callbackURL": "/"})
            assert redirect.status_code == 302
            assert redirect.headers["location"].startswith(f"{provider.issuer}/login/oauth/")
            done = await client.get(await authorize_at_provider(redirect.headers["location"]))
            assert done.status_code == 302 and done.headers["location"] == f"{BASE_URL}/"
            me = (await client.get("/api/auth/session")).json()
        assert provider.pkce_checked == 1
    assert me["user"]["id"] == person.user.id
    async with database.sessionmaker() as db:
        account = await db.scalar(select(Account).where(Account.provider_id == "github"))
        assert account is not None and account.account_id == "4242"
