"""/settings/security (password, two-factor set-up, backup codes, passkeys, sessions) and
/auth/two-factor (the second step of a sign-in).

Secrets shown once (the TOTP set-up, backup codes) are rendered in the answer to the post
that made them, never stored for a later page.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tekudasai.accounts import challenges, passkeys, two_factor
from tekudasai.accounts import service as accounts_service
from tekudasai.accounts.dependencies import MaybeUser, Principal, clear_session_cookie
from tekudasai.accounts.models import User
from tekudasai.accounts.security_router import (
    PENDING_COOKIE,
    check_code,
    finish_second_factor,
    second_factor_subject,
    with_password,
)
from tekudasai.core.errors import AppError
from tekudasai.core.state import AppSettings, Cipher
from tekudasai.db.session import DbSession
from tekudasai.web.deps import PageUser, PostedForm, safe_next
from tekudasai.web.flash import flash
from tekudasai.web.rendering import render

router = APIRouter()
PATH = "/settings/security"
RATE_LIMITED = "Too many attempts. Please wait a few minutes and try again."


def _message(exc: AppError) -> str:
    return RATE_LIMITED if exc.code == "RATE_LIMITED" else exc.message


def qr_svg(uri: str) -> str:
    """The otpauth URI as an inline SVG QR code, made here (no outside service sees it)."""
    import segno  # on first use: ~10 MB per web worker for a page opened once per account

    return segno.make(uri, error="m").svg_inline(scale=5, border=4, dark="#000", light="#fff")


def _redirect(request: Request, message: str, kind: str = "success") -> Response:
    response = RedirectResponse(PATH, status_code=303)
    flash(request, response, message, kind)  # type: ignore[arg-type]
    return response


async def _page(
    request: Request,
    db: DbSession,
    me: Principal,
    *,
    status: int = 200,
    **context: Any,
) -> Response:
    user = await db.get(User, me.user.id, populate_existing=True)
    assert user is not None
    sessions = await accounts_service.list_sessions(db, user_id=user.id)
    has_secret = await two_factor.has_secret(db, user_id=user.id)  # set-up started
    return render(
        request,
        "settings/security.html",
        {
            "two_factor_enabled": user.two_factor_enabled,
            "setup_pending": bool(has_secret) and not user.two_factor_enabled,
            "backup_left": await two_factor.remaining_backup_codes(db, user_id=user.id),
            "passkeys": await passkeys.list_passkeys(db, user_id=user.id),
            "sessions": sessions,
            "current_session_id": me.session.id if me.session else None,
            "required": two_factor.requires_setup(request.app.state.settings, me.user),
            "errors": {},
            **context,
        },
        status=status,
    )


@router.get(PATH)
async def security_page(request: Request, me: PageUser, db: DbSession) -> Response:
    # A set-up in progress is not shown again: its key appears only in the answer to the
    # post that made it (which asked for the password).
    return await _page(request, db, me)


@router.post(PATH + "/password")
async def change_password(
    request: Request, me: PageUser, db: DbSession, cipher: Cipher, posted: PostedForm
) -> Response:
    new = str(posted.get("new_password", ""))
    if new != str(posted.get("new_password_confirm", "")):
        return await _page(
            request, db, me, errors={"password": "The new passwords do not match."}, status=400
        )
    try:
        ended = await with_password(
            request,
            cipher,
            me,
            lambda: accounts_service.change_password(
                db,
                user_id=me.user.id,
                current_password=str(posted.get("current_password", "")),
                new_password=new,
                keep_session_id=me.session.id if me.session else None,
            ),
        )
    except AppError as exc:
        return await _page(
            request, db, me, errors={"password": _message(exc)}, status=exc.status_code
        )
    others = f" {ended} other session{'s' if ended != 1 else ''} ended." if ended else ""
    return _redirect(request, f"Your password has been changed.{others}")


@router.post(PATH + "/two-factor/enable")
async def enable_two_factor(
    request: Request, me: PageUser, db: DbSession, cipher: Cipher, posted: PostedForm
) -> Response:
    try:
        uri, codes = await with_password(
            request,
            cipher,
            me,
            lambda: two_factor.enable(
                db, cipher, user_id=me.user.id, password=str(posted.get("password", ""))
            ),
        )
    except AppError as exc:
        return await _page(
            request, db, me, errors={"two_factor": _message(exc)}, status=exc.status_code
        )
    setup = {"uri": uri, "qr": qr_svg(uri), "secret": two_factor.secret_of(uri)}
    return await _page(request, db, me, setup=setup, backup_codes=codes)


@router.post(PATH + "/two-factor/verify")
async def verify_two_factor(
    request: Request,
    me: PageUser,
    db: DbSession,
    cipher: Cipher,
    settings: AppSettings,
    posted: PostedForm,
) -> Response:
    """The first code from the app turns two-factor sign-in on."""
    try:
        await check_code(
            request, db, cipher, user_id=me.user.id, code=str(posted.get("code", "")), backup=False
        )
        await two_factor.activate(db, user_id=me.user.id)
    except AppError as exc:
        return await _page(request, db, me, errors={"code": _message(exc)}, status=exc.status_code)
    return _redirect(request, "Two-factor sign-in is on.")


@router.post(PATH + "/two-factor/backup-codes")
async def new_backup_codes(
    request: Request, me: PageUser, db: DbSession, cipher: Cipher, posted: PostedForm
) -> Response:
    try:
        codes = await with_password(
            request,
            cipher,
            me,
            lambda: two_factor.regenerate_backup_codes(
                db, cipher, user_id=me.user.id, password=str(posted.get("password", ""))
            ),
        )
    except AppError as exc:
        return await _page(
            request, db, me, errors={"backup": _message(exc)}, status=exc.status_code
        )
    return await _page(request, db, me, backup_codes=codes)


@router.post(PATH + "/two-factor/disable")
async def disable_two_factor(
    request: Request, me: PageUser, db: DbSession, cipher: Cipher, posted: PostedForm
) -> Response:
    try:
        await with_password(
            request,
            cipher,
            me,
            lambda: two_factor.disable(
                db, user_id=me.user.id, password=str(posted.get("password", ""))
            ),
        )
    except AppError as exc:
        return await _page(
            request, db, me, errors={"disable": _message(exc)}, status=exc.status_code
        )
    return _redirect(request, "Two-factor sign-in is off.", "info")


@router.post(PATH + "/passkeys/{passkey_id}/delete")
async def delete_passkey(
    request: Request, passkey_id: str, me: PageUser, db: DbSession, posted: PostedForm
) -> Response:
    await passkeys.delete_passkey(db, user_id=me.user.id, passkey_id=passkey_id)
    return _redirect(request, "Passkey deleted.")


@router.post(PATH + "/sessions/{session_id}/revoke")
async def revoke_session(
    request: Request,
    session_id: str,
    me: PageUser,
    db: DbSession,
    settings: AppSettings,
    posted: PostedForm,
) -> Response:
    await accounts_service.revoke_own_session(db, user_id=me.user.id, session_id=session_id)
    if me.session is not None and session_id == me.session.id:
        response = RedirectResponse("/auth/login", status_code=303)
        clear_session_cookie(response, settings)
        return response
    return _redirect(request, "Session ended.")


@router.post(PATH + "/sessions/revoke-all")
async def sign_out_everywhere(
    request: Request, me: PageUser, db: DbSession, settings: AppSettings, posted: PostedForm
) -> Response:
    await accounts_service.revoke_all_sessions(db, user_id=me.user.id)
    response = RedirectResponse("/auth/login", status_code=303)
    clear_session_cookie(response, settings)
    flash(request, response, "You are signed out on every device.", "info")
    return response


# -- The second step of a sign-in --------------------------------------------------------------

TWO_FACTOR_PAGE = "/auth/two-factor"


async def _pending(request: Request, db: DbSession) -> bool:
    found = await challenges.peek(
        db, token=request.cookies.get(PENDING_COOKIE), purpose=challenges.TWO_FACTOR
    )
    return found is not None


@router.get(TWO_FACTOR_PAGE)
async def two_factor_page(request: Request, principal: MaybeUser, db: DbSession) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if principal is not None:
        return RedirectResponse(next_path, status_code=303)
    if not await _pending(request, db):
        response = RedirectResponse("/auth/login", status_code=303)
        flash(request, response, "Please sign in again.", "info")
        return response
    return render(request, "auth/two_factor.html", {"next_path": next_path, "errors": {}})


@router.post(TWO_FACTOR_PAGE)
async def two_factor_submit(
    request: Request,
    db: DbSession,
    cipher: Cipher,
    settings: AppSettings,
    posted: PostedForm,
) -> Response:
    next_path = safe_next(str(posted.get("next", "")))
    code = str(posted.get("code", ""))
    # Six digits are a TOTP code; anything else is tried as a backup code.
    backup = len("".join(code.split())) != two_factor.DIGITS
    trust = posted.get("trust_device") == "on"
    response = RedirectResponse(next_path, status_code=303)
    try:
        user_id, pending = await second_factor_subject(request, None, db)
        await check_code(request, db, cipher, user_id=user_id, code=code, backup=backup)
        await finish_second_factor(
            request,
            response,
            db,
            settings,
            principal=None,
            user_id=user_id,
            pending=pending,
            trust_device=trust,
        )
    except AppError as exc:
        if exc.code == "INVALID_TWO_FACTOR_COOKIE":
            expired = RedirectResponse("/auth/login", status_code=303)
            flash(request, expired, exc.message, "info")
            return expired
        return render(
            request,
            "auth/two_factor.html",
            {"next_path": next_path, "errors": {"code": _message(exc)}},
            status=exc.status_code,
        )
    flash(request, response, "Welcome back!")
    return response
