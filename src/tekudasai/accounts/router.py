"""Auth (better-auth-compatible paths and shapes) and user administration.

`/api/auth/*` answers in better-auth's own shapes (the original web client reads them as is);
errors use the contract's error envelope. `/api/users` uses the success envelope.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse

from tekudasai.accounts import limits, oauth, security_router, service, signin, tokens
from tekudasai.accounts.dependencies import (
    Admin,
    CurrentUser,
    MaybeUser,
    SessionUser,
    clear_session_cookie,
    scopes,
    set_session_cookie,
)
from tekudasai.accounts.responses import (
    AnyTokenOut,
    CurrentSession,
    Done,
    DoneWithMessage,
    OneUser,
    Provider,
    SignedIn,
    SignedOutEverywhere,
    SignedUp,
    SocialStart,
    Success,
    TokenCreated,
    TokenOut,
    TwoFactorRedirect,
    UserList,
    UserOut,
)
from tekudasai.accounts.schemas import (
    BanUserIn,
    ResetPasswordIn,
    ResetRequestIn,
    SetRoleIn,
    SignInIn,
    SignUpIn,
    SocialSignInIn,
    TokenCreateIn,
    UnbanUserIn,
    VerifyRequestIn,
)
from tekudasai.accounts.signed_in import AnyUser
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.errors import AppError
from tekudasai.core.schemas import ERROR_RESPONSES, PageEnvelope, PageParams, page, page_params
from tekudasai.core.state import AppSettings, Cipher
from tekudasai.db.ratelimit import client_ip
from tekudasai.db.session import DbSession
from tekudasai.jobs.mail import enqueue_mail

router = APIRouter(tags=["auth"], responses=ERROR_RESPONSES, route_class=DirectRoute)


def _set_session(response: Response, settings: Settings, signed_in: signin.SignedIn) -> None:
    set_session_cookie(response, settings, signed_in.token, session=signed_in.session)
    response.headers["Cache-Control"] = "no-store"  # the body carries the token


@router.post("/auth/signup", response_model=SignedUp)
@router.post("/auth/sign-up/email", include_in_schema=False, response_model=SignedUp)
async def sign_up(
    body: SignUpIn,
    request: Request,
    response: Response,
    db: DbSession,
    settings: AppSettings,
    cipher: Cipher,
) -> dict[str, Any]:
    """Create an account with e-mail and password; signs the new user in."""
    await limits.mail_request(request, cipher, body.email)
    callback = oauth.safe_callback_url(settings, body.callback_url) if body.callback_url else None
    signed_in = await signin.sign_up(
        db,
        cipher,
        settings,
        email=body.email,
        name=body.name,
        password=body.password,
        image=body.image,
        callback=callback,
        remember_me=body.remember_me,
        ip_address=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    _set_session(response, settings, signed_in)
    return {"token": signed_in.token, "user": service.public_user(signed_in.user, cipher)}


@router.post("/auth/signin", response_model=SignedIn | TwoFactorRedirect)
@router.post(
    "/auth/sign-in/email", include_in_schema=False, response_model=SignedIn | TwoFactorRedirect
)
async def sign_in(
    body: SignInIn,
    request: Request,
    response: Response,
    db: DbSession,
    settings: AppSettings,
    cipher: Cipher,
) -> dict[str, Any]:
    """Sign in with e-mail and password; with two-factor on, `{twoFactorRedirect:true}` and no
    session until the second factor (`/auth/two-factor/verify-totp`)."""
    await limits.sign_in_attempt(request, cipher, body.email)
    signed_in = await signin.sign_in(
        db,
        cipher,
        email=body.email,
        password=body.password,
        lookup=request.app.state.database.sessionmaker,
        remember_me=body.remember_me,
        ip_address=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        trusted_device=security_router.trusted_device_token(request),
    )
    await limits.sign_in_succeeded(request, cipher, body.email)
    if isinstance(signed_in, signin.SecondFactorNeeded):
        security_router.set_pending_cookie(response, settings, signed_in.token)
        response.headers["Cache-Control"] = "no-store"
        return {"twoFactorRedirect": True}
    _set_session(response, settings, signed_in)
    return {
        "redirect": False,
        "token": signed_in.token,
        "user": service.public_user(signed_in.user, cipher),
    }


@router.get("/auth/session", response_model=CurrentSession | None)
@router.get("/auth/get-session", include_in_schema=False, response_model=CurrentSession | None)
async def get_session(
    principal: MaybeUser, response: Response, cipher: Cipher
) -> dict[str, Any] | None:
    """The current session and user, or null when signed out."""
    response.headers["Cache-Control"] = "no-store"
    if principal is None or principal.session is None:
        return None
    return {
        "session": service.public_session(principal.session, principal.token),
        "user": service.public_user(principal.user, cipher),
    }


@router.post("/auth/signout", response_model=Success)
@router.post("/auth/sign-out", include_in_schema=False, response_model=Success)
async def sign_out(
    principal: MaybeUser, response: Response, db: DbSession, settings: AppSettings
) -> dict[str, bool]:
    """Revoke this session (only this one) and clear the cookie."""
    if principal is not None and principal.session is not None:
        await service.revoke_session(db, session_id=principal.session.id)
    clear_session_cookie(response, settings)
    return {"success": True}


@router.post("/auth/signout-all", response_model=SignedOutEverywhere)
@router.post("/auth/revoke-sessions", include_in_schema=False, response_model=SignedOutEverywhere)
async def sign_out_everywhere(
    principal: CurrentUser, response: Response, db: DbSession, settings: AppSettings
) -> dict[str, Any]:
    """Revoke every session of the current user, on every device."""
    revoked = await service.revoke_all_sessions(db, user_id=principal.user.id)
    clear_session_cookie(response, settings)
    return {"success": True, "status": True, "revoked": revoked}


@router.post("/auth/verify-request", response_model=Done)
@router.post("/auth/send-verification-email", include_in_schema=False, response_model=Done)
async def verify_request(
    body: VerifyRequestIn,
    request: Request,
    principal: MaybeUser,
    db: DbSession,
    settings: AppSettings,
    cipher: Cipher,
) -> dict[str, bool]:
    """Send (again) the e-mail verification link. Always answers the same."""
    callback = oauth.safe_callback_url(settings, body.callback_url) if body.callback_url else None
    user: AnyUser | None
    if principal is not None:
        user = principal.user
        await limits.mail_request(request, cipher, service.stored_email(user, cipher))
    elif body.email:
        service.check_email(body.email)
        await limits.mail_request(request, cipher, body.email)
        user = await service.find_by_email(db, cipher, body.email)
    else:
        service.check_email("")  # raises: an e-mail is needed when signed out
        return {"status": True}
    if user is not None and not user.email_verified:
        token = await service.issue_token(db, user_id=user.id, purpose=service.VERIFY_EMAIL)
        subject, text = signin.verification_mail(settings, token, callback)
        address = service.stored_email(user, cipher)  # never the address as typed
        await enqueue_mail(db, cipher, to=address, subject=subject, body=text)
    return {"status": True}


@router.get(
    "/auth/verify",
    response_model=Done,
    responses={302: {"description": "Redirect to the given callbackURL"}},
)
@router.get("/auth/verify-email", include_in_schema=False, response_model=Done)
async def verify(
    db: DbSession,
    settings: AppSettings,
    token: Annotated[str, Query(min_length=1, max_length=200)],
    callback_url: Annotated[str | None, Query(alias="callbackURL", max_length=2000)] = None,
) -> Any:
    """Confirm an e-mail address with the link's single-use token."""
    callback = oauth.safe_callback_url(settings, callback_url) if callback_url else None
    await service.verify_email(db, token=token)
    if callback:
        return RedirectResponse(callback, status_code=302)
    return {"status": True}


@router.post("/auth/reset-password-request", response_model=DoneWithMessage)
@router.post(
    "/auth/request-password-reset", include_in_schema=False, response_model=DoneWithMessage
)
@router.post("/auth/forget-password", include_in_schema=False, response_model=DoneWithMessage)
async def reset_password_request(
    body: ResetRequestIn,
    request: Request,
    db: DbSession,
    settings: AppSettings,
    cipher: Cipher,
) -> dict[str, Any]:
    """Mail a reset link when the account exists; the answer never says whether it does."""
    email = service.check_email(body.email)
    target = (
        oauth.safe_callback_url(settings, body.redirect_to)
        if body.redirect_to
        else signin.RESET_PAGE
    )
    await limits.mail_request(request, cipher, email)
    await signin.password_reset(db, cipher, settings, email=email, target=target)
    return {"status": True, "message": "If this e-mail is registered, a reset link is on its way."}


@router.post("/auth/reset-password", response_model=Done)
async def reset_password(
    body: ResetPasswordIn, db: DbSession, _: limits.SignInIpLimit
) -> dict[str, bool]:
    """Set a new password with a reset token; every session of the account ends."""
    await service.reset_password(db, token=body.token, new_password=body.new_password)
    return {"status": True}


@router.post("/auth/admin/set-role", openapi_extra=scopes("users:write"), response_model=OneUser)
async def admin_set_role(body: SetRoleIn, admin: Admin, db: DbSession, cipher: Cipher) -> Any:
    """Change a user's role (never leaves zero admins)."""
    user = await service.admin_set_role(db, user_id=body.user_id, role=body.role)
    return {"user": service.public_user(user, cipher)}


@router.post("/auth/admin/ban-user", openapi_extra=scopes("users:write"), response_model=OneUser)
async def admin_ban_user(body: BanUserIn, admin: Admin, db: DbSession, cipher: Cipher) -> Any:
    """Ban a user (optionally for `banExpiresIn` seconds); their sessions end now."""
    user = await service.ban_user(
        db,
        actor_id=admin.user.id,
        user_id=body.user_id,
        reason=body.ban_reason,
        expires_in_seconds=body.ban_expires_in,
    )
    return {"user": service.public_user(user, cipher)}


@router.post("/auth/admin/unban-user", openapi_extra=scopes("users:write"), response_model=OneUser)
async def admin_unban_user(body: UnbanUserIn, admin: Admin, db: DbSession, cipher: Cipher) -> Any:
    user = await service.unban_user(db, user_id=body.user_id)
    return {"user": service.public_user(user, cipher)}


@router.get(
    "/users",
    tags=["users"],
    openapi_extra=scopes("users:read"),
    response_model=PageEnvelope[UserOut],
)
async def list_users(
    admin: Admin,
    db: DbSession,
    cipher: Cipher,
    params: Annotated[PageParams, Depends(page_params)],
    search: Annotated[str | None, Query(max_length=320)] = None,
    role: Literal["all", "user", "agent", "admin"] = "all",
) -> dict[str, Any]:
    """Users with decrypted name and e-mail; `search` is an exact e-mail or name."""
    users, total = await service.list_users(
        db, cipher, offset=params.offset, limit=params.limit, search=search, role=role
    )
    return page(
        [service.public_user(u, cipher) for u in users],
        page=params.page,
        limit=params.limit,
        total=total,
    )


@router.get(
    "/auth/admin/list-users",
    include_in_schema=False,
    openapi_extra=scopes("users:read"),
    response_model=UserList,
)
async def admin_list_users(
    admin: Admin,
    db: DbSession,
    cipher: Cipher,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    search_value: Annotated[str | None, Query(alias="searchValue", max_length=320)] = None,
    filter_field: Annotated[Literal["role"] | None, Query(alias="filterField")] = None,
    filter_value: Annotated[
        Literal["user", "agent", "admin"] | None, Query(alias="filterValue")
    ] = None,
) -> dict[str, Any]:
    """better-auth's admin list (searches are exact matches here: the data is encrypted)."""
    role = filter_value if filter_field == "role" and filter_value else "all"
    users, total = await service.list_users(
        db, cipher, offset=offset, limit=limit, search=search_value, role=role
    )
    return {
        "users": [service.public_user(u, cipher) for u in users],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/auth/providers", response_model=list[Provider])
async def providers(settings: AppSettings) -> list[dict[str, str]]:
    """Configured OAuth providers only."""
    return [{"id": p.id, "name": p.name} for p in oauth.configured_providers(settings)]


def _set_state_cookie(response: Response, settings: Settings, value: str) -> None:
    response.set_cookie(
        oauth.STATE_COOKIE,
        value,
        max_age=oauth.STATE_TTL_SECONDS,
        path="/api",
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back to us
        secure=settings.secure_cookies,
    )


@router.post("/auth/sign-in/social", response_model=SocialStart)
async def sign_in_social(
    body: SocialSignInIn, response: Response, settings: AppSettings, cipher: Cipher
) -> dict[str, Any]:
    """Start an OAuth sign-in: the URL to send the browser to."""
    url, state = await oauth.start(
        settings,
        cipher,
        provider_id=body.provider,
        callback_url=body.callback_url,
        error_callback_url=body.error_callback_url,
    )
    _set_state_cookie(response, settings, state)
    return {"url": url, "redirect": not body.disable_redirect}


TWO_FACTOR_PAGE = "/auth/two-factor"


def _absolute(settings: Settings, url: str) -> str:
    return url if url.startswith("http") else f"{settings.base_url}{url}"


async def _callback(
    provider_id: str, request: Request, db: DbSession, settings: Settings, cipher: PiiCipher
) -> Response:
    provider, payload = oauth.open_state(
        settings,
        cipher,
        provider_id=provider_id,
        state=request.query_params.get("state"),
        state_cookie=request.cookies.get(oauth.STATE_COOKIE),
    )
    try:
        # A savepoint: a failure half-way (say, a banned user) leaves nothing behind.
        async with db.begin_nested():
            user = await oauth.complete(
                db,
                settings,
                cipher,
                provider=provider,
                payload=payload,
                code=request.query_params.get("code"),
                error=request.query_params.get("error"),
            )
    except AppError as exc:
        # The attempt is genuine (state matched): send the browser back with the reason.
        target = _absolute(settings, payload.get("x") or oauth.DEFAULT_ERROR_CALLBACK)
        separator = "&" if "?" in target else "?"
        response = RedirectResponse(
            f"{target}{separator}{urlencode({'error': exc.code})}", status_code=302
        )
    else:
        # A new OAuth sign-in is one factor: with two-factor on, the code is asked first.
        target = _absolute(settings, payload["c"])
        result = await signin.after_first_factor(
            db,
            user,
            remember_me=True,
            ip_address=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            trusted_device=security_router.trusted_device_token(request),
        )
        if isinstance(result, signin.SecondFactorNeeded):
            # The page takes same-site paths only: the target without the base URL.
            local = target.removeprefix(settings.base_url) or "/"
            response = RedirectResponse(
                f"{settings.base_url}{TWO_FACTOR_PAGE}?{urlencode({'next': local})}",
                status_code=302,
            )
            security_router.set_pending_cookie(response, settings, result.token)
        else:
            response = RedirectResponse(target, status_code=302)
            _set_session(response, settings, result)
    response.delete_cookie(oauth.STATE_COOKIE, path="/api", secure=settings.secure_cookies)
    return response


@router.get(
    "/auth/callback/{provider}",
    response_class=RedirectResponse,
    status_code=302,
    responses={302: {"description": "Redirect to callbackURL (or errorCallbackURL)"}},
)
async def oauth_callback(
    provider: str, request: Request, db: DbSession, settings: AppSettings, cipher: Cipher
) -> Response:
    """The provider sends the browser back here: state and PKCE checked, user signed in."""
    return await _callback(provider, request, db, settings, cipher)


@router.get("/auth/{provider}/callback", include_in_schema=False)
async def oauth_callback_alias(
    provider: str, request: Request, db: DbSession, settings: AppSettings, cipher: Cipher
) -> Response:
    return await _callback(provider, request, db, settings, cipher)


# Last: its path parameter would shadow the fixed /auth/... GET routes above.
@router.get(
    "/auth/{provider}",
    response_class=RedirectResponse,
    status_code=302,
    responses={302: {"description": "Redirect to the provider"}},
)
async def oauth_redirect(
    provider: str,
    settings: AppSettings,
    cipher: Cipher,
    callback_url: Annotated[str | None, Query(alias="callbackURL", max_length=2000)] = None,
    error_callback_url: Annotated[
        str | None, Query(alias="errorCallbackURL", max_length=2000)
    ] = None,
) -> Response:
    """Start an OAuth sign-in by redirecting to the provider."""
    url, state = await oauth.start(
        settings,
        cipher,
        provider_id=provider,
        callback_url=callback_url,
        error_callback_url=error_callback_url,
    )
    response = RedirectResponse(url, status_code=302)
    _set_state_cookie(response, settings, state)
    return response


# -- Personal access tokens (session only: a token cannot mint, list or revoke tokens) ----------


@router.get("/me/tokens", tags=["tokens"], response_model=list[TokenOut])
async def list_my_tokens(principal: SessionUser, db: DbSession) -> list[dict[str, Any]]:
    rows = await tokens.list_tokens(db, user_id=principal.user.id)
    return [tokens.public_token(row) for row in rows]


@router.post("/me/tokens", tags=["tokens"], response_model=TokenCreated)
async def create_my_token(
    body: TokenCreateIn, principal: SessionUser, db: DbSession
) -> dict[str, Any]:
    """The `token` value is in this answer only; it is stored as a hash."""
    row, raw = await tokens.create_token(
        db,
        user_id=principal.user.id,
        name=body.name,
        scopes=body.scopes,
        expires_in_days=body.expires_in_days,
    )
    return tokens.public_token(row, raw)


@router.delete("/me/tokens/{token_id}", tags=["tokens"], response_model=Success)
async def revoke_my_token(token_id: str, principal: SessionUser, db: DbSession) -> Any:
    await tokens.revoke_token(db, token_id=token_id, user_id=principal.user.id)
    return {"success": True}


@router.get("/tokens", tags=["tokens"], response_model=list[AnyTokenOut])
async def list_all_tokens(admin: Admin, _: SessionUser, db: DbSession) -> list[dict[str, Any]]:
    rows = await tokens.list_tokens(db)
    return [tokens.public_token(row) | {"userId": row.user_id} for row in rows]


@router.delete("/tokens/{token_id}", tags=["tokens"], response_model=Success)
async def revoke_any_token(token_id: str, admin: Admin, _: SessionUser, db: DbSession) -> Any:
    await tokens.revoke_token(db, token_id=token_id)
    return {"success": True}


# Two-factor and passkeys (better-auth's plugin paths): /auth/two-factor/*, /auth/passkey/*.
router.include_router(security_router.router)
