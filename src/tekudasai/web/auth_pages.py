"""Sign-in, sign-up and sign-out pages: plain forms that post and redirect."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import delete, select

from tekudasai.accounts import service as accounts_service
from tekudasai.accounts.dependencies import SESSION_COOKIE, MaybeUser
from tekudasai.accounts.models import Account, Session
from tekudasai.accounts.passwords import verify_password
from tekudasai.config import Settings
from tekudasai.core.errors import AppError
from tekudasai.core.state import AppSettings, Cipher
from tekudasai.db.session import DbSession
from tekudasai.web.deps import PageUser, PostedForm, safe_next
from tekudasai.web.flash import flash
from tekudasai.web.rendering import render

router = APIRouter(prefix="/auth")


def oauth_providers(settings: Settings, next_path: str) -> list[dict[str, str]]:
    """Buttons for the configured providers; each link starts the API's OAuth redirect."""
    found = []
    if settings.github_client_id and settings.github_client_secret:
        found.append(("github", "GitHub"))
    if settings.gitlab_client_id and settings.gitlab_client_secret:
        found.append(("gitlab", "GitLab"))
    if settings.oidc_issuer and settings.oidc_client_id:
        found.append(("oidc", settings.oidc_name))
    return [
        {"id": pid, "name": name, "href": f"/api/auth/{pid}?callbackURL={quote(next_path)}"}
        for pid, name in found
    ]


def _set_session_cookie(response: Response, settings: Settings, token: str, remember: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=accounts_service.SESSION_DAYS * 86400 if remember else None,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        path="/",
    )


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
    user = await accounts_service.find_by_email(db, cipher, email) if email else None
    stored = None
    if user is not None:
        stored = await db.scalar(
            select(Account.password).where(
                Account.user_id == user.id,
                Account.provider_id == accounts_service.CREDENTIAL_PROVIDER,
            )
        )
    valid = await verify_password(stored, password)
    if not valid or user is None:
        return _login_error(request, settings, email, next_path, "Wrong e-mail or password.")
    if user.banned:
        return _login_error(
            request, settings, email, next_path, "This account is banned. Contact your admin."
        )
    token, _ = await accounts_service.create_session(
        db,
        user_id=user.id,
        remember_me=remember,
        ip_address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )
    response = RedirectResponse(next_path, status_code=303)
    _set_session_cookie(response, settings, token, remember)
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
    request: Request, form: PostedForm, db: DbSession, cipher: Cipher, settings: AppSettings
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
            user = await accounts_service.create_user(
                db, cipher, email=values["email"], name=values["name"], password=password
            )
        except AppError as exc:
            for item in exc.errors or [{"field": "email", "message": exc.message}]:
                errors[str(item["field"])] = str(item["message"])
        else:
            token, _ = await accounts_service.create_session(
                db,
                user_id=user.id,
                ip_address=request.client.host if request.client else None,
                user_agent=request.headers.get("user-agent"),
            )
            response = RedirectResponse(next_path, status_code=303)
            _set_session_cookie(response, settings, token, True)
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
    await db.execute(delete(Session).where(Session.id == principal.session.id))
    response = RedirectResponse("/auth/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    flash(request, response, "You are signed out.", "info")
    return response
