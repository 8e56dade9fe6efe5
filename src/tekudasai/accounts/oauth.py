"""Sign-in with OAuth 2.0 / OpenID Connect providers (GitHub, GitLab, any OIDC issuer) via Authlib.

The state, PKCE verifier, nonce and callback URL travel in a short-lived cookie sealed with
AES-GCM (nobody can read or forge it); the callback must present the same state.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts import service
from tekudasai.accounts.errors import (
    AccountNotLinked,
    BannedUser,
    InvalidOAuthState,
    OAuthFailed,
    ProviderEmailNotVerified,
    ProviderNotFound,
    UntrustedCallback,
)
from tekudasai.accounts.keys import refresh_current_key
from tekudasai.accounts.models import Account, User
from tekudasai.config import Settings
from tekudasai.core.crypto import DecryptionError, PiiCipher
from tekudasai.core.csrf import origin_of

if TYPE_CHECKING:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

# httpx, Authlib and joserfc are imported on first use, not at start-up: together with what
# httpx pulls in (its command line: click, rich, pygments) they cost each web worker about
# 20 MB of memory, for a sign-in path most desks never configure.

log = logging.getLogger("tekudasai.oauth")

STATE_COOKIE = "tk.oauth_state"
STATE_PURPOSE = "oauth-state"
STATE_TTL_SECONDS = 600
DEFAULT_ERROR_CALLBACK = "/auth/login"
DISCOVERY_TTL_SECONDS = 3600
HTTP_TIMEOUT = 10.0
GITHUB_WEB = "https://github.com"
GITHUB_API = "https://api.github.com"
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    client_id: str
    client_secret: str | None
    scope: str
    issuer: str | None = None  # OIDC: endpoints by discovery
    authorize_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None


@dataclass(frozen=True)
class Endpoints:
    authorize: str
    token: str
    userinfo: str | None
    jwks_uri: str | None
    issuer: str | None


@dataclass
class Identity:
    account_id: str
    email: str | None
    email_verified: bool
    name: str | None
    image: str | None


def configured_providers(settings: Settings) -> list[Provider]:
    """Providers with a client id; the others stay hidden."""
    providers = []
    if settings.github_client_id:
        providers.append(
            Provider(
                id="github",
                name="GitHub",
                client_id=settings.github_client_id,
                client_secret=settings.github_client_secret,
                scope="read:user user:email",
                authorize_url=f"{GITHUB_WEB}/login/oauth/authorize",
                token_url=f"{GITHUB_WEB}/login/oauth/access_token",
                userinfo_url=f"{GITHUB_API}/user",
            )
        )
    if settings.gitlab_client_id:
        providers.append(
            Provider(
                id="gitlab",
                name="GitLab",
                client_id=settings.gitlab_client_id,
                client_secret=settings.gitlab_client_secret,
                scope="openid profile email",
                issuer=settings.gitlab_issuer.rstrip("/"),
            )
        )
    if settings.oidc_issuer and settings.oidc_client_id:
        providers.append(
            Provider(
                id="oidc",
                name=settings.oidc_name,
                client_id=settings.oidc_client_id,
                client_secret=settings.oidc_client_secret,
                scope="openid profile email",
                issuer=settings.oidc_issuer.rstrip("/"),
            )
        )
    return providers


def get_provider(settings: Settings, provider_id: str) -> Provider:
    for provider in configured_providers(settings):
        if provider.id == provider_id:
            return provider
    raise ProviderNotFound()


def redirect_uri(settings: Settings, provider: Provider) -> str:
    return f"{settings.base_url}/api/auth/callback/{provider.id}"


def safe_callback_url(settings: Settings, url: str | None) -> str:
    """A same-site path, or an absolute URL on a trusted origin; anything else is refused."""
    if not url:
        return "/"
    if any(ord(c) < 0x20 for c in url) or "\\" in url or len(url) > 2000:
        raise UntrustedCallback()
    if url.startswith("/") and not url.startswith("//"):
        return url
    if origin_of(url) in {o.lower() for o in settings.trusted_origins}:
        return url
    raise UntrustedCallback()


_discovery: dict[str, tuple[float, dict[str, Any]]] = {}


async def _discover(issuer: str) -> dict[str, Any]:
    cached = _discovery.get(issuer)
    if cached and time.monotonic() - cached[0] < DISCOVERY_TTL_SECONDS:
        return cached[1]
    import httpx

    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
            response = await http.get(f"{issuer}/.well-known/openid-configuration")
            response.raise_for_status()
            metadata: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("OIDC discovery failed for %s: %s", issuer, exc)
        raise OAuthFailed("The sign-in provider cannot be reached right now.") from exc
    if metadata.get("issuer", "").rstrip("/") != issuer:
        raise OAuthFailed("The provider's discovery document names another issuer.")
    _discovery[issuer] = (time.monotonic(), metadata)
    return metadata


async def endpoints(provider: Provider) -> Endpoints:
    if provider.issuer is None:
        assert provider.authorize_url and provider.token_url
        return Endpoints(
            provider.authorize_url, provider.token_url, provider.userinfo_url, None, None
        )
    meta = await _discover(provider.issuer)
    return Endpoints(
        authorize=meta["authorization_endpoint"],
        token=meta["token_endpoint"],
        userinfo=meta.get("userinfo_endpoint"),
        jwks_uri=meta.get("jwks_uri"),
        issuer=provider.issuer,
    )


def _client(settings: Settings, provider: Provider) -> AsyncOAuth2Client:
    from authlib.deprecate import AuthlibDeprecationWarning

    with warnings.catch_warnings():
        # Authlib warns that its httpx integration will move to "httpx2"; nothing to act on.
        warnings.simplefilter("ignore", AuthlibDeprecationWarning)
        from authlib.integrations.httpx_client import AsyncOAuth2Client

    return AsyncOAuth2Client(
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        scope=provider.scope,
        redirect_uri=redirect_uri(settings, provider),
        code_challenge_method="S256",
        timeout=HTTP_TIMEOUT,
    )


async def start(
    settings: Settings,
    cipher: PiiCipher,
    *,
    provider_id: str,
    callback_url: str | None,
    error_callback_url: str | None = None,
) -> tuple[str, str]:
    """The provider's authorization URL and the sealed state cookie value."""
    provider = get_provider(settings, provider_id)
    callback = safe_callback_url(settings, callback_url)
    error_callback = safe_callback_url(settings, error_callback_url or DEFAULT_ERROR_CALLBACK)
    from authlib.common.security import generate_token

    urls = await endpoints(provider)
    state, verifier, nonce = generate_token(32), generate_token(64), generate_token(24)
    extra = {"nonce": nonce} if provider.issuer else {}
    async with _client(settings, provider) as client:
        url, _ = client.create_authorization_url(
            urls.authorize, state=state, code_verifier=verifier, **extra
        )
    payload = {
        "p": provider.id,
        "s": state,
        "v": verifier,
        "n": nonce,
        "c": callback,
        "x": error_callback,
        "e": int(time.time()) + STATE_TTL_SECONDS,
    }
    sealed = cipher.seal(json.dumps(payload).encode(), purpose=STATE_PURPOSE)
    return url, base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def _open_state(cipher: PiiCipher, cookie: str | None) -> dict[str, Any]:
    if not cookie or len(cookie) > 4000:
        raise InvalidOAuthState()
    try:
        sealed = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
        payload: dict[str, Any] = json.loads(cipher.unseal(sealed, purpose=STATE_PURPOSE))
    except (ValueError, DecryptionError) as exc:
        raise InvalidOAuthState() from exc
    if payload.get("e", 0) < time.time():
        raise InvalidOAuthState()
    return payload


def open_state(
    settings: Settings,
    cipher: PiiCipher,
    *,
    provider_id: str,
    state: str | None,
    state_cookie: str | None,
) -> tuple[Provider, dict[str, Any]]:
    """The sign-in attempt this callback belongs to; anything that does not match is refused."""
    provider = get_provider(settings, provider_id)
    payload = _open_state(cipher, state_cookie)
    if (
        not state
        or payload.get("p") != provider.id
        or not hmac.compare_digest(str(payload.get("s", "")), state)
    ):
        raise InvalidOAuthState()
    return provider, payload


async def complete(
    db: AsyncSession,
    settings: Settings,
    cipher: PiiCipher,
    *,
    provider: Provider,
    payload: dict[str, Any],
    code: str | None,
    error: str | None,
) -> User:
    """Exchange the code (with the PKCE verifier), verify the identity, find or create the user."""
    if error:
        raise OAuthFailed(f"The provider refused the sign-in ({error[:100]}).")
    if not code:
        raise OAuthFailed("The provider sent no authorization code.")
    import httpx

    urls = await endpoints(provider)
    try:
        async with _client(settings, provider) as client:
            token = await client.fetch_token(
                urls.token, code=code, code_verifier=payload["v"], grant_type="authorization_code"
            )
            if provider.issuer:
                identity = await _oidc_identity(provider, urls, client, token, payload["n"])
            else:
                identity = await _github_identity(client)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        log.warning("OAuth exchange with %s failed: %s", provider.id, exc)
        raise OAuthFailed() from exc
    except Exception as exc:  # Authlib's OAuthError and friends
        if type(exc).__module__.startswith("authlib"):
            log.warning("OAuth exchange with %s failed: %s", provider.id, exc)
            raise OAuthFailed() from exc
        raise
    return await link_or_create(
        db, cipher, provider=provider.id, identity=identity, token=dict(token)
    )


async def _oidc_identity(
    provider: Provider,
    urls: Endpoints,
    client: AsyncOAuth2Client,
    token: dict[str, Any],
    nonce: str,
) -> Identity:
    claims: dict[str, Any] = {}
    id_token = token.get("id_token")
    if id_token:
        claims = await _verify_id_token(provider, urls, id_token, nonce)
    if urls.userinfo:
        response = await client.get(urls.userinfo)
        response.raise_for_status()
        info = response.json()
        if claims and info.get("sub") != claims.get("sub"):
            raise OAuthFailed("The provider's user info does not match its ID token.")
        claims = {**claims, **info}
    if not claims.get("sub"):
        raise OAuthFailed("The provider did not identify the user.")
    return Identity(
        account_id=str(claims["sub"]),
        email=claims.get("email"),
        email_verified=claims.get("email_verified") is True,
        name=claims.get("name") or claims.get("preferred_username") or claims.get("nickname"),
        image=claims.get("picture"),
    )


async def _verify_id_token(
    provider: Provider, urls: Endpoints, id_token: str, nonce: str
) -> dict[str, Any]:
    if not urls.jwks_uri:
        raise OAuthFailed("The provider publishes no signing keys.")
    import httpx
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
        response = await http.get(urls.jwks_uri)
        response.raise_for_status()
        keys = KeySet.import_key_set(response.json())
    try:
        decoded = jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
        jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": urls.issuer or ""},
            aud={"essential": True, "value": provider.client_id},
            exp={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": nonce},
        ).validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise OAuthFailed(f"The provider's ID token is not valid ({exc}).") from exc
    return dict(decoded.claims)


async def _github_identity(client: AsyncOAuth2Client) -> Identity:
    response = await client.get(f"{GITHUB_API}/user")
    response.raise_for_status()
    info = response.json()
    email, verified = None, False
    emails = await client.get(f"{GITHUB_API}/user/emails")
    if emails.status_code == 200:
        for entry in emails.json():
            if entry.get("primary"):
                email, verified = entry.get("email"), entry.get("verified") is True
    return Identity(
        account_id=str(info["id"]),
        email=email or info.get("email"),
        email_verified=verified,
        name=info.get("name") or info.get("login"),
        image=info.get("avatar_url"),
    )


def _token_values(cipher: PiiCipher, token: dict[str, Any]) -> dict[str, Any]:
    expires_at = token.get("expires_at")
    return {
        "access_token_ciphertext": cipher.encrypt_optional(
            token.get("access_token"), context="account.access_token"
        ),
        "refresh_token_ciphertext": cipher.encrypt_optional(
            token.get("refresh_token"), context="account.refresh_token"
        ),
        "id_token_ciphertext": cipher.encrypt_optional(
            token.get("id_token"), context="account.id_token"
        ),
        "access_token_expires_at": datetime.fromtimestamp(int(expires_at), UTC)
        if expires_at
        else None,
        "scope": token.get("scope"),
    }


async def _user_for_new_link(db: AsyncSession, cipher: PiiCipher, identity: Identity) -> User:
    """The user a new provider identity may join: a new one, or the owner of the same address.

    Only an address the provider vouches for counts, and only when it is the stored address
    itself: the lookup index folds look-alikes (`straße` finds `strasse`), which is no proof.
    """
    if not identity.email:
        raise OAuthFailed("The provider did not share an e-mail address.")
    if not identity.email_verified:
        # Whoever holds this identity has not shown that the address is theirs (pre-hijack).
        user = await service.find_by_email(db, cipher, identity.email)
        raise AccountNotLinked() if user is not None else ProviderEmailNotVerified()
    user = await service.find_by_email(db, cipher, identity.email)
    if user is None:
        name = (identity.name or identity.email.split("@", 1)[0]).strip()[:200]
        return await service.create_user(
            db,
            cipher,
            email=identity.email,
            name=name or "User",
            password=None,
            email_verified=True,
            image=identity.image,
        )
    if identity.email.strip().lower() != service.stored_email(user, cipher).lower():
        raise AccountNotLinked()
    if not user.email_verified:
        # Whoever registered this address never proved owning it (pre-hijack): their
        # password and sessions go; the provider has just proved the real owner.
        await db.execute(
            delete(Account).where(
                Account.user_id == user.id, Account.provider_id == service.CREDENTIAL_PROVIDER
            )
        )
        await service.revoke_all_sessions(db, user_id=user.id)
        service.mark_verified(user)
    return user


async def link_or_create(
    db: AsyncSession,
    cipher: PiiCipher,
    *,
    provider: str,
    identity: Identity,
    token: dict[str, Any],
) -> User:
    """The user of a provider identity: linked already, linked now by verified e-mail, or new."""
    await refresh_current_key(db, cipher)
    tokens = _token_values(cipher, token)
    account = await db.scalar(
        select(Account).where(
            Account.provider_id == provider, Account.account_id == identity.account_id
        )
    )
    if account is not None:
        user = await db.get(User, account.user_id)
        assert user is not None
        for key, value in tokens.items():
            setattr(account, key, value)
    else:
        user = await _user_for_new_link(db, cipher, identity)
        db.add(
            Account(user_id=user.id, provider_id=provider, account_id=identity.account_id, **tokens)
        )
    if service.is_banned(user):
        raise BannedUser()
    await db.flush()
    return user
