"""Page dependencies: who is signed in (redirecting to the login page when nobody is)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from starlette.datastructures import FormData

from tekudasai.accounts import two_factor
from tekudasai.accounts.dependencies import MaybeUser, Principal
from tekudasai.core.csrf import CSRF_FIELD, form_token_valid, request_origin_trusted
from tekudasai.core.errors import NotFound, ValidationFailed
from tekudasai.core.handlers import UNSTORABLE_MESSAGE
from tekudasai.core.middleware import MAX_JSON_DEPTH, nested_too_deep
from tekudasai.db.session import DbSession
from tekudasai.notifications import service as notifications
from tekudasai.web.rendering import current_user

# Pages a user held back by TK_REQUIRE_2FA may still open.
TWO_FACTOR_SET_UP_PAGES = ("/settings/security", "/auth/")


class PageRedirect(Exception):
    """Send the browser elsewhere (303), optionally with a flash message."""

    def __init__(self, url: str, message: str | None = None, kind: str = "info") -> None:
        super().__init__(url)
        self.url = url
        self.message = message
        self.kind = kind


def safe_next(value: str | None, default: str = "/") -> str:
    """Only same-site relative paths: never an open redirect."""
    if not value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value:
        return default
    return value


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/auth/login?next=" + quote(target, safe="")


async def page_user(request: Request, principal: MaybeUser, db: DbSession) -> Principal:
    if principal is None:
        raise PageRedirect(login_url(request))
    if two_factor.requires_setup(
        request.app.state.settings, principal.user
    ) and not request.url.path.startswith(TWO_FACTOR_SET_UP_PAGES):
        raise PageRedirect("/settings/security", "Please set up two-factor sign-in first.", "info")
    current_user(request)  # decrypt now: an error page after a rollback still knows the user
    if request.method in ("GET", "HEAD"):
        # The header's unread badge: one capped count on a partial index, on pages only.
        request.state.unread_notifications = await notifications.unread_count(
            db, user_id=principal.user.id, cap=notifications.UNREAD_CAP
        )
    return principal


async def page_agent(principal: Annotated[Principal, Depends(page_user)]) -> Principal:
    if not principal.is_staff:
        raise NotFound()
    return principal


async def page_admin(principal: Annotated[Principal, Depends(page_user)]) -> Principal:
    if not principal.is_admin:
        raise NotFound()
    return principal


async def checked_form(request: Request, principal: MaybeUser) -> FormData:
    """The posted form, after the CSRF token (bound to the session, if any) and origin checks."""
    # `principal` is resolved first so that request.state knows the session the token binds to.
    form = await request.form()
    if not request_origin_trusted(request) or not form_token_valid(request, form.get(CSRF_FIELD)):
        back = safe_next(request.headers.get("referer", "").split(request.url.netloc, 1)[-1])
        raise PageRedirect(
            back, "Your form expired or came from another site. Please try again.", "error"
        )
    for name, value in form.multi_items():
        if not isinstance(value, str):
            continue
        if "\x00" in value or _has_surrogate(value):
            raise ValidationFailed(
                f"{name}: {UNSTORABLE_MESSAGE}",
                errors=[{"field": name, "message": UNSTORABLE_MESSAGE}],
            )
        if nested_too_deep(value):
            # The form builder posts its elements as JSON in a field; deep nesting would
            # end in a RecursionError wherever it is walked.
            message = f"JSON may be nested at most {MAX_JSON_DEPTH} levels deep."
            raise ValidationFailed(
                f"{name}: {message}", errors=[{"field": name, "message": message}]
            )
    return form


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


PageUser = Annotated[Principal, Depends(page_user)]
PageAgent = Annotated[Principal, Depends(page_agent)]
PageAdmin = Annotated[Principal, Depends(page_admin)]
PostedForm = Annotated[FormData, Depends(checked_form)]
