"""Templates, the shared page context, security headers and HTML error pages."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import SQLAlchemyError

from tekudasai.core.csrf import attach_csrf_cookie
from tekudasai.core.csrf import form_token as csrf_token
from tekudasai.core.schemas import iso
from tekudasai.web.flash import FLASH_COOKIE, read_flashes

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

STATUS_LABELS = {
    "open": "Open",
    "in_progress": "In progress",
    "pending": "Pending",
    "resolved": "Resolved",
    "closed": "Closed",
}
ROLE_LABELS = {"user": "Customer", "agent": "Agent", "admin": "Admin"}

# (label, path, minimum role). /admin/system belongs to the monitoring pages.
NAV_ITEMS = [
    ("My tickets", "/", "user"),
    ("New ticket", "/new-ticket", "user"),
    ("All tickets", "/agent", "agent"),
    ("Replies", "/agent/canned", "agent"),
    ("Reports", "/agent/reports", "agent"),
    ("Forms", "/agent/forms", "admin"),
    ("Service levels", "/admin/service-levels", "admin"),
    ("Users", "/admin/users", "admin"),
    ("System", "/admin/system", "admin"),
]
_RANK = {"user": 0, "agent": 1, "admin": 2}


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _iso(value: datetime | str | None) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    return iso(value)


templates.env.filters["when"] = _when
templates.env.filters["iso"] = _iso
templates.env.globals["STATUS_LABELS"] = STATUS_LABELS
templates.env.globals["ROLE_LABELS"] = ROLE_LABELS


def current_user(request: Request) -> dict[str, Any] | None:
    """The signed-in user (decrypted) for the page chrome, if the route looked them up."""
    cached = getattr(request.state, "page_user", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return None
    cipher = request.app.state.cipher
    user = principal.user
    try:
        info = {
            "id": user.id,
            "name": cipher.decrypt(user.name_ciphertext, context="user.name"),
            "email": cipher.decrypt(user.email_ciphertext, context="user.email"),
            "role": user.role,
        }
    except SQLAlchemyError:  # expired by a rolled-back transaction (error pages)
        return None
    request.state.page_user = info
    return info


def nav_for(user: dict[str, Any] | None, path: str) -> list[dict[str, Any]]:
    if user is None:
        return []
    rank = _RANK.get(user["role"], 0)
    items = []
    for label, href, minimum in NAV_ITEMS:
        if rank < _RANK[minimum]:
            continue
        if href == "/":
            active = path == "/" or path.startswith("/tickets/")
        else:
            active = path == href or path.startswith(href + "/")
        if href == "/admin/service-levels" and path.startswith("/admin/automations"):
            active = True  # automations are reached from the service-levels page
        items.append({"label": label, "href": href, "active": active})
    # "All tickets" must not light up on the other pages nested under /agent.
    if any(
        i["active"] and i["href"] in ("/agent/forms", "/agent/canned", "/agent/reports")
        for i in items
    ):
        for i in items:
            if i["href"] == "/agent":
                i["active"] = False
    return items


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
) -> HTMLResponse:
    user = current_user(request)
    flashes = read_flashes(request)
    full = {
        "user": user,
        "nav": nav_for(user, request.url.path),
        "csrf": csrf_token(request),
        "flashes": flashes,
        "path": request.url.path,
        **(context or {}),
    }
    response = templates.TemplateResponse(request, template, full, status_code=status)
    secure_page(response)
    attach_csrf_cookie(request, response)
    if flashes:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def secure_page(response: Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


ERROR_TITLES = {
    400: "That did not work",
    401: "Please sign in",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed",
    413: "Too large",
    429: "Slow down",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}


def render_error_page(request: Request, status: int, message: str) -> Response:
    """HTML error page for browsers (core/handlers.py calls this for non-API requests)."""
    if status >= 500:
        message = "An unexpected error occurred. Please try again in a moment."
    elif status == 404 and message == "Not found.":
        message = "This page does not exist, or you may not see it."
    try:
        return render(
            request,
            "error.html",
            {"status": status, "title": ERROR_TITLES.get(status, "Error"), "message": message},
            status=status,
        )
    except Exception:  # the error page itself must never fail
        log.exception("cannot render the %s error page", status)
        response = HTMLResponse(
            f"<!doctype html><title>{status}</title><h1>{status}</h1>", status_code=status
        )
        secure_page(response)
        return response
