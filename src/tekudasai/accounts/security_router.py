"""Two-factor sign-in and passkeys on better-auth's plugin paths and shapes
(`/api/auth/two-factor/*`, `/api/auth/passkey/*`). Session only: tokens are refused.

Cookies: `tk.two_factor` holds a sign-in waiting for its second factor (10 minutes),
`tk.trust_device` lets a browser skip the second factor (30 days, ends with sign-out
everywhere, a password change or reset), `tk.webauthn` the pending WebAuthn challenge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response

from tekudasai.accounts import challenges, limits, passkeys, service, signin, two_factor
from tekudasai.accounts.dependencies import (
    MaybeUser,
    Principal,
    SessionUser,
    set_session_cookie,
)
from tekudasai.accounts.errors import NoPendingSignIn, TwoFactorNotEnabled
from tekudasai.accounts.models import User
from tekudasai.accounts.responses import (
    BackupCodes,
    Done,
    PasskeyOut,
    SecondFactorPassed,
    SignedIn,
    TotpSetUp,
    TotpUri,
)
from tekudasai.accounts.schemas import (
    EnableTwoFactorIn,
    PasskeyAuthenticationIn,
    PasskeyIdIn,
    PasskeyRegistrationIn,
    PasskeyRenameIn,
    PasswordIn,
    VerifyCodeIn,
)
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.schemas import ERROR_RESPONSES
from tekudasai.core.state import AppSettings, Cipher
from tekudasai.db.ratelimit import client_ip
from tekudasai.db.session import DbSession

router = APIRouter(tags=["auth"], responses=ERROR_RESPONSES, route_class=DirectRoute)
T = TypeVar("T")

PENDING_COOKIE = "tk.two_factor"
TRUST_COOKIE = "tk.trust_device"
WEBAUTHN_COOKIE = "tk.webauthn"


def _cookie(
    response: Response, settings: Settings, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


def set_pending_cookie(response: Response, settings: Settings, token: str) -> None:
    ttl = challenges.LIFETIMES[challenges.TWO_FACTOR]
    _cookie(response, settings, PENDING_COOKIE, token, int(ttl.total_seconds()))


def clear_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, samesite="lax", secure=settings.secure_cookies
    )


def set_trust_cookie(response: Response, settings: Settings, token: str) -> None:
    _cookie(response, settings, TRUST_COOKIE, token, two_factor.TRUST_DAYS * 86400)


def trusted_device_token(request: Request) -> str | None:
    return request.cookies.get(TRUST_COOKIE)


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


# -- Checks shared with the web pages ----------------------------------------------------------


async def with_password(
    request: Request,
    cipher: PiiCipher,
    principal: Principal,
    check: Callable[[], Awaitable[T]],
) -> T:
    """Run `check` (which asks for the password) counted as a sign-in attempt: wrong
    passwords here lock out like wrong passwords at sign-in."""
    email = service.stored_email(principal.user, cipher)
    await limits.sign_in_attempt(request, cipher, email)
    result = await check()
    await limits.sign_in_succeeded(request, cipher, email)
    return result


async def second_factor_subject(
    request: Request, principal: Principal | None, db: DbSession
) -> tuple[str, bool]:
    """Whose code this is: the signed-in user's (set-up), else the pending sign-in's."""
    if principal is not None and principal.session is not None:
        return principal.user.id, False
    pending = await challenges.peek(
        db, token=request.cookies.get(PENDING_COOKIE), purpose=challenges.TWO_FACTOR
    )
    if pending is None or pending.user_id is None:
        raise NoPendingSignIn()
    return pending.user_id, True


async def check_code(
    request: Request,
    db: DbSession,
    cipher: PiiCipher,
    *,
    user_id: str,
    code: str,
    backup: bool,
) -> None:
    """A TOTP or backup code, counted: the sixth wrong one in the window is refused (429)."""
    # Malformed codes are refused first (400) and do not count: they cannot be guesses.
    if backup:
        two_factor.normalise_backup_code(code)
    else:
        two_factor.normalise_totp_code(code)
    await limits.second_factor_attempt(request, user_id)
    if backup:
        await two_factor.use_backup_code(db, cipher, user_id=user_id, code=code)
    else:
        await two_factor.verify_totp(db, cipher, user_id=user_id, code=code)
    await limits.second_factor_succeeded(request, user_id)


async def finish_second_factor(
    request: Request,
    response: Response,
    db: DbSession,
    settings: Settings,
    *,
    principal: Principal | None,
    user_id: str,
    pending: bool,
    trust_device: bool,
) -> tuple[str, User]:
    """After a right code: open the waiting session, or turn two-factor on (set-up)."""
    if pending:
        waiting = await challenges.consume(
            db, token=request.cookies.get(PENDING_COOKIE), purpose=challenges.TWO_FACTOR
        )
        user = await db.get(User, user_id, populate_existing=True)
        if waiting is None or user is None or service.is_banned(user):
            raise NoPendingSignIn()
        signed_in = await signin.open_session(
            db,
            user,
            remember_me=waiting.remember_me,
            ip_address=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
        set_session_cookie(response, settings, signed_in.token, session=signed_in.session)
        clear_cookie(response, settings, PENDING_COOKIE)
        token = signed_in.token
    else:
        assert principal is not None and principal.token is not None
        await two_factor.activate(db, user_id=user_id)
        token = principal.token
    if trust_device:
        trusted, _ = await two_factor.trust_device(db, user_id=user_id)
        set_trust_cookie(response, settings, trusted)
    user = await db.get(User, user_id, populate_existing=True)
    assert user is not None
    _no_store(response)
    return token, user


# -- Two-factor -------------------------------------------------------------------------------


@router.post("/auth/two-factor/enable", response_model=TotpSetUp)
async def enable_two_factor(
    body: EnableTwoFactorIn,
    request: Request,
    response: Response,
    principal: SessionUser,
    db: DbSession,
    cipher: Cipher,
) -> dict[str, Any]:
    """A new TOTP secret and 10 backup codes; two-factor is on after the first verified code."""
    uri, codes = await with_password(
        request,
        cipher,
        principal,
        lambda: two_factor.enable(db, cipher, user_id=principal.user.id, password=body.password),
    )
    _no_store(response)
    return {"totpURI": uri, "backupCodes": codes}


@router.post("/auth/two-factor/get-totp-uri", response_model=TotpUri)
async def get_totp_uri(
    body: PasswordIn,
    request: Request,
    response: Response,
    principal: SessionUser,
    db: DbSession,
    cipher: Cipher,
) -> dict[str, Any]:
    uri = await with_password(
        request,
        cipher,
        principal,
        lambda: two_factor.get_totp_uri(
            db, cipher, user_id=principal.user.id, password=body.password
        ),
    )
    _no_store(response)
    return {"totpURI": uri}


@router.post("/auth/two-factor/generate-backup-codes", response_model=BackupCodes)
async def generate_backup_codes(
    body: PasswordIn,
    request: Request,
    response: Response,
    principal: SessionUser,
    db: DbSession,
    cipher: Cipher,
) -> dict[str, Any]:
    """Ten new backup codes (shown in this answer only); the old ones stop working."""
    codes = await with_password(
        request,
        cipher,
        principal,
        lambda: two_factor.regenerate_backup_codes(
            db, cipher, user_id=principal.user.id, password=body.password
        ),
    )
    _no_store(response)
    return {"status": True, "backupCodes": codes}


@router.post("/auth/two-factor/disable", response_model=Done)
async def disable_two_factor(
    body: PasswordIn,
    request: Request,
    principal: SessionUser,
    db: DbSession,
    cipher: Cipher,
) -> dict[str, Any]:
    await with_password(
        request,
        cipher,
        principal,
        lambda: two_factor.disable(db, user_id=principal.user.id, password=body.password),
    )
    return {"status": True}


@router.post("/auth/two-factor/verify-totp", response_model=SecondFactorPassed)
async def verify_totp(
    body: VerifyCodeIn,
    request: Request,
    response: Response,
    principal: MaybeUser,
    db: DbSession,
    settings: AppSettings,
    cipher: Cipher,
) -> dict[str, Any]:
    """The second step of a sign-in (pending cookie), or the code that turns two-factor on."""
    user_id, pending = await second_factor_subject(request, principal, db)
    await check_code(request, db, cipher, user_id=user_id, code=body.code, backup=False)
    token, user = await finish_second_factor(
        request,
        response,
        db,
        settings,
        principal=principal,
        user_id=user_id,
        pending=pending,
        trust_device=body.trust_device,
    )
    return {"token": token, "user": service.public_user(user, cipher)}


@router.post("/auth/two-factor/verify-backup-code", response_model=SecondFactorPassed)
async def verify_backup_code(
    body: VerifyCodeIn,
    request: Request,
    response: Response,
    principal: MaybeUser,
    db: DbSession,
    settings: AppSettings,
    cipher: Cipher,
) -> dict[str, Any]:
    """A backup code instead of a TOTP code; each works once."""
    user_id, pending = await second_factor_subject(request, principal, db)
    if not pending and not principal.user.two_factor_enabled:  # type: ignore[union-attr]
        raise TwoFactorNotEnabled()
    await check_code(request, db, cipher, user_id=user_id, code=body.code, backup=True)
    token, user = await finish_second_factor(
        request,
        response,
        db,
        settings,
        principal=principal,
        user_id=user_id,
        pending=pending,
        trust_device=body.trust_device,
    )
    return {"token": token, "user": service.public_user(user, cipher)}


# -- Passkeys ---------------------------------------------------------------------------------


def _set_webauthn_cookie(response: Response, settings: Settings, token: str) -> None:
    ttl = challenges.LIFETIMES[challenges.PASSKEY_AUTHENTICATE]
    _cookie(response, settings, WEBAUTHN_COOKIE, token, int(ttl.total_seconds()))


@router.get(
    "/auth/passkey/generate-register-options",
    response_model=dict[str, Any],
    summary="Options for navigator.credentials.create()",
)
@router.post(
    "/auth/passkey/generate-register-options",
    include_in_schema=False,
    response_model=dict[str, Any],
)
async def passkey_register_options(
    response: Response,
    principal: SessionUser,
    db: DbSession,
    settings: AppSettings,
    cipher: Cipher,
) -> dict[str, Any]:
    options, token = await passkeys.registration_options(db, settings, cipher, user=principal.user)
    _set_webauthn_cookie(response, settings, token)
    _no_store(response)
    return options


@router.post("/auth/passkey/verify-registration", response_model=PasskeyOut)
async def passkey_verify_registration(
    body: PasskeyRegistrationIn,
    request: Request,
    response: Response,
    principal: SessionUser,
    db: DbSession,
    settings: AppSettings,
) -> dict[str, Any]:
    row = await passkeys.verify_registration(
        db,
        settings,
        user_id=principal.user.id,
        token=request.cookies.get(WEBAUTHN_COOKIE),
        response=body.response,
        name=body.name,
        own_transaction=request.app.state.database.sessionmaker,
    )
    clear_cookie(response, settings, WEBAUTHN_COOKIE)
    return passkeys.public_passkey(row)


@router.get(
    "/auth/passkey/generate-authenticate-options",
    response_model=dict[str, Any],
    summary="Options for navigator.credentials.get()",
)
@router.post(
    "/auth/passkey/generate-authenticate-options",
    include_in_schema=False,
    response_model=dict[str, Any],
)
async def passkey_authenticate_options(
    request: Request, response: Response, db: DbSession, settings: AppSettings
) -> dict[str, Any]:
    await limits.token_attempt(request)
    options, token = await passkeys.authentication_options(db, settings)
    _set_webauthn_cookie(response, settings, token)
    _no_store(response)
    return options


@router.post("/auth/passkey/verify-authentication", response_model=SignedIn)
async def passkey_verify_authentication(
    body: PasskeyAuthenticationIn,
    request: Request,
    response: Response,
    db: DbSession,
    settings: AppSettings,
    cipher: Cipher,
) -> dict[str, Any]:
    """Sign in with a passkey: it counts as both factors, so the session opens at once."""
    await limits.token_attempt(request)
    user = await passkeys.verify_authentication(
        db,
        settings,
        token=request.cookies.get(WEBAUTHN_COOKIE),
        response=body.response,
        own_transaction=request.app.state.database.sessionmaker,
    )
    signed_in = await signin.open_session(
        db,
        user,
        remember_me=True,
        ip_address=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    set_session_cookie(response, settings, signed_in.token, session=signed_in.session)
    clear_cookie(response, settings, WEBAUTHN_COOKIE)
    clear_cookie(response, settings, PENDING_COOKIE)
    _no_store(response)
    return {"redirect": False, "token": signed_in.token, "user": service.public_user(user, cipher)}


@router.get("/auth/passkey/list-user-passkeys", response_model=list[PasskeyOut])
async def list_user_passkeys(principal: SessionUser, db: DbSession) -> list[dict[str, Any]]:
    rows = await passkeys.list_passkeys(db, user_id=principal.user.id)
    return [passkeys.public_passkey(row) for row in rows]


@router.post("/auth/passkey/delete-passkey", response_model=Done)
async def delete_passkey(body: PasskeyIdIn, principal: SessionUser, db: DbSession) -> Any:
    await passkeys.delete_passkey(db, user_id=principal.user.id, passkey_id=body.id)
    return {"status": True}


@router.post("/auth/passkey/update-passkey", response_model=dict[str, PasskeyOut])
async def update_passkey(body: PasskeyRenameIn, principal: SessionUser, db: DbSession) -> Any:
    row = await passkeys.rename_passkey(
        db, user_id=principal.user.id, passkey_id=body.id, name=body.name
    )
    return {"passkey": passkeys.public_passkey(row)}
