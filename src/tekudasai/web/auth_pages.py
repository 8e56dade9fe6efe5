"""Sign-in, sign-up, sign-out, password reset and e-mail verification pages.

Plain forms that post and redirect; every post carries the CSRF token (web/deps.PostedForm).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tekudasai.accounts import limits, oauth, security_router, signin
from tekudasai.accounts import service as accounts_service
from tekudasai.accounts.dependencies import MaybeUser, clear_session_cookie, set_session_cookie
from tekudasai.config import Settings
from tekudasai.core.errors import AppError
from tekudasai.core.state import AppSettings, Cipher
from tekudasai.db.ratelimit import client_ip
from tekudasai.db.session import DbSession
from tekudasai.web.deps import PageUser, PostedForm, safe_next
from tekudasai.web.flash import flash
from tekudasai.web.rendering import render

router = APIRouter(prefix="/auth")
TWO_FACTOR_PAGE = "/auth/two-factor"


def oauth_providers(settings: Settings, next_path: str) -> list[dict[str, str]]:
    """Buttons for the configured providers; each link starts the API's OAuth redirect."""
    return [
        {"id": p.id, "name": p.name, "href": f"/api/auth/{p.id}?callbackURL={quote(next_path)}"}
        for p in oauth.configured_providers(settings)
    ]


def _auth_page(
    request: Request,
    template: str,
    settings: Settings,
    *,
    status: int = 200,
    next_path: str | None = None,
    **context: Any,
) -> Response:
    next_path = safe_next(next_path or request.query_params.get("next"))
    return render(
        request,
        template,
        {
            "next_path": next_path,
            "providers": oauth_providers(settings, next_path),
            "values": {},
            "errors": {},
            **context,
        },
        status=status,
    )


@router.get("/login")
async def login_page(request: Request, principal: MaybeUser, settings: AppSettings) -> Response:
    if principal is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return _auth_page(request, "auth/login.html", settings)


@router.post("/login")
async def login_submit(
    request: Request, form: PostedForm, db: DbSession, cipher: Cipher, settings: AppSettings
) -> Response:
    email = str(form.get("email", "")).strip()
    password = str(form.get("password", ""))
    remember = form.get("remember") == "on"
    next_path = safe_next(str(form.get("next", "")))
    try:
        await limits.sign_in_attempt(request, cipher, email)
        signed_in = await signin.sign_in(
            db,
            cipher,
            email=email,
            password=password,
            remember_me=remember,
            ip_address=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            trusted_device=security_router.trusted_device_token(request),
        )
        await limits.sign_in_succeeded(request, cipher, email)
    except AppError as exc:
        message = exc.message
        if exc.code == "INVALID_EMAIL_OR_PASSWORD":
            message = "Wrong e-mail or password."
        elif exc.code == "RATE_LIMITED":
            message = "Too many attempts. Please wait a minute and try again."
        return _login_error(request, settings, email, next_path, message)
    if isinstance(signed_in, signin.SecondFactorNeeded):
        # No session yet: the second factor is asked on its own page.
        response = RedirectResponse(
            f"{TWO_FACTOR_PAGE}?next={quote(next_path, safe='')}", status_code=303
        )
        security_router.set_pending_cookie(response, settings, signed_in.token)
        return response
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(response, settings, signed_in.token, session=signed_in.session)
    flash(request, response, "Welcome back!")
    return response


def _login_error(
    request: Request, settings: Settings, email: str, next_path: str, message: str
) -> Response:
    return _auth_page(
        request,
        "auth/login.html",
        settings,
        next_path=next_path,
        values={"email": email},
        form_error=message,
        status=400,
    )


@router.get("/signup")
async def signup_page(request: Request, principal: MaybeUser, settings: AppSettings) -> Response:
    if principal is not None:
        return RedirectResponse("/", status_code=303)
    return _auth_page(request, "auth/signup.html", settings)


@router.post("/signup")
async def signup_submit(
    request: Request,
    form: PostedForm,
    db: DbSession,
    cipher: Cipher,
    settings: AppSettings,
) -> Response:
    values = {k: str(form.get(k, "")) for k in ("name", "email")}
    password = str(form.get("password", ""))
    next_path = safe_next(str(form.get("next", "")))
    errors: dict[str, str] = {}
    if not values["name"].strip():
        errors["name"] = "Please enter your name."
    if password != str(form.get("password_confirm", password)):
        errors["password_confirm"] = "The passwords do not match."  # noqa: S105
    if not errors:
        try:
            await limits.mail_request(request, cipher, values["email"])
            signed_in = await signin.sign_up(
                db,
                cipher,
                settings,
                email=values["email"],
                name=values["name"],
                password=password,
                remember_me=True,
                ip_address=client_ip(request),
                user_agent=request.headers.get("user-agent"),
            )
        except AppError as exc:
            for item in exc.errors or [{"field": "email", "message": exc.message}]:
                errors[str(item["field"])] = str(item["message"])
        else:
            response = RedirectResponse(next_path, status_code=303)
            set_session_cookie(response, settings, signed_in.token, session=signed_in.session)
            flash(request, response, "Your account is ready.")
            return response
    return _auth_page(
        request,
        "auth/signup.html",
        settings,
        next_path=next_path,
        values=values,
        errors=errors,
        form_error="Please correct the marked fields.",
        status=400,
    )


@router.post("/logout")
async def logout(
    request: Request, form: PostedForm, principal: PageUser, db: DbSession, settings: AppSettings
) -> Response:
    if principal.session is not None:  # pages are session only; a token never gets here
        await accounts_service.revoke_session(db, session_id=principal.session.id)
    response = RedirectResponse("/auth/login", status_code=303)
    clear_session_cookie(response, settings)
    flash(request, response, "You are signed out.", "info")
    return response


RATE_LIMITED_MESSAGE = "Too many requests. Please wait a minute and try again."
RESET_SENT = "If this e-mail is registered, a reset link is on its way. Check your inbox."
BAD_LINK = "This link is invalid, has expired or was already used."


@router.get("/forgot-password")
async def forgot_password_page(
    request: Request, principal: MaybeUser, settings: AppSettings
) -> Response:
    return _auth_page(request, "auth/forgot_password.html", settings)


@router.post("/forgot-password")
async def forgot_password_submit(
    request: Request,
    form: PostedForm,
    db: DbSession,
    cipher: Cipher,
    settings: AppSettings,
) -> Response:
    """Mail a reset link; the answer is the same whether or not the account exists."""
    email = str(form.get("email", "")).strip()
    try:
        email = accounts_service.check_email(email)
        await limits.mail_request(request, cipher, email)
        await signin.password_reset(db, cipher, settings, email=email)
    except AppError as exc:
        message = RATE_LIMITED_MESSAGE if exc.code == "RATE_LIMITED" else exc.message
        return _auth_page(
            request,
            "auth/forgot_password.html",
            settings,
            values={"email": email},
            errors={"email": message} if exc.code != "RATE_LIMITED" else {},
            form_error=message,
            status=429 if exc.code == "RATE_LIMITED" else 400,
        )
    response = RedirectResponse("/auth/login", status_code=303)
    flash(request, response, RESET_SENT, "info")
    return response


@router.get("/reset-password")
async def reset_password_page(
    request: Request, principal: MaybeUser, db: DbSession, settings: AppSettings
) -> Response:
    token = request.query_params.get("token", "")
    if not await accounts_service.token_is_valid(
        db, token=token, purpose=accounts_service.RESET_PASSWORD
    ):
        return _auth_page(request, "auth/reset_password.html", settings, invalid=True, status=400)
    return _auth_page(request, "auth/reset_password.html", settings, token=token)


@router.post("/reset-password")
async def reset_password_submit(
    request: Request, form: PostedForm, db: DbSession, settings: AppSettings
) -> Response:
    """Set the new password; every session ends, then the person signs in with it."""
    token = str(form.get("token", ""))
    password = str(form.get("password", ""))
    errors: dict[str, str] = {}
    if password != str(form.get("password_confirm", password)):
        errors["password_confirm"] = "The passwords do not match."  # noqa: S105
    else:
        try:
            await limits.token_attempt(request)
            await accounts_service.reset_password(db, token=token, new_password=password)
        except AppError as exc:
            if exc.code == "INVALID_TOKEN":
                return _auth_page(
                    request, "auth/reset_password.html", settings, invalid=True, status=400
                )
            if exc.code == "RATE_LIMITED":
                errors["password"] = RATE_LIMITED_MESSAGE
            for item in exc.errors or []:
                errors[str(item["field"])] = str(item["message"])
            errors = errors or {"password": exc.message}
        else:
            response = RedirectResponse("/auth/login", status_code=303)
            clear_session_cookie(response, settings)  # every session was revoked
            flash(request, response, "Your password has been changed. Please sign in.")
            return response
    return _auth_page(
        request,
        "auth/reset_password.html",
        settings,
        token=token,
        errors=errors,
        form_error="Please correct the marked fields.",
        status=400,
    )


@router.get("/verify")
async def verify_page(
    request: Request, principal: MaybeUser, db: DbSession, settings: AppSettings
) -> Response:
    """The verification mail's link: confirm the address and say so on a page."""
    token = request.query_params.get("token", "")
    callback_url = request.query_params.get("callbackURL")
    try:
        callback = oauth.safe_callback_url(settings, callback_url) if callback_url else None
        async with db.begin_nested():  # a refused token leaves nothing behind
            await accounts_service.verify_email(db, token=token)
    except AppError:
        return _auth_page(request, "auth/verify.html", settings, verified=False, status=400)
    if callback:
        return RedirectResponse(callback, status_code=303)
    return _auth_page(request, "auth/verify.html", settings, verified=True)
