"""CSRF tokens for HTML form posts: a per-browser secret cookie, and an HMAC of it in each form.

The Origin/Referer check of the API applies to pages as well; the token is the second line.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request
from fastapi.responses import Response

CSRF_COOKIE = "tk.csrf"
CSRF_FIELD = "csrf_token"


def _browser_secret(request: Request) -> str:
    existing = getattr(request.state, "csrf_secret", None) or request.cookies.get(CSRF_COOKIE)
    if existing and 16 <= len(existing) <= 128:
        return existing
    fresh = secrets.token_urlsafe(24)
    request.state.csrf_secret = fresh
    request.state.csrf_new = True
    return fresh


def csrf_token(request: Request) -> str:
    """The token to embed in forms of this page (sets the cookie on first use)."""
    secret = _browser_secret(request)
    return hmac.new(request.app.state.web_key, secret.encode(), hashlib.sha256).hexdigest()


def attach_csrf_cookie(request: Request, response: Response) -> None:
    if getattr(request.state, "csrf_new", False):
        response.set_cookie(
            CSRF_COOKIE,
            request.state.csrf_secret,
            httponly=True,
            samesite="lax",
            secure=request.app.state.settings.secure_cookies,
            path="/",
        )


def csrf_valid(request: Request, submitted: object) -> bool:
    secret = request.cookies.get(CSRF_COOKIE)
    if not secret or not isinstance(submitted, str):
        return False
    expected = hmac.new(request.app.state.web_key, secret.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, submitted)


def origin_trusted(request: Request) -> bool:
    """Same rule as the API: Origin (or Referer) must be a trusted origin when present."""
    trusted = request.app.state.settings.trusted_origins
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer is None:
            return True  # a token check still applies
        scheme, _, rest = referer.partition("://")
        origin = f"{scheme}://{rest.split('/', 1)[0]}"
    return origin.rstrip("/") in trusted
