"""CSRF tokens for HTML form posts (the Origin/Referer check of core/csrf.py runs as well).

Signed in: the session-bound token of core/csrf.py. Signed out (sign-in and sign-up forms):
a per-browser secret cookie and an HMAC of it in the form.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request
from fastapi.responses import Response

from tekudasai.core.csrf import csrf_token_for, verify_csrf_token

CSRF_COOKIE = "tk.csrf"
CSRF_FIELD = "csrf_token"


def _principal_session(request: Request) -> object | None:
    principal = getattr(request.state, "principal", None)
    return principal.session if principal is not None else None


def _browser_secret(request: Request) -> str:
    existing = getattr(request.state, "csrf_secret", None) or request.cookies.get(CSRF_COOKIE)
    if existing and 16 <= len(existing) <= 128:
        return existing  # type: ignore[no-any-return]
    fresh = secrets.token_urlsafe(24)
    request.state.csrf_secret = fresh
    request.state.csrf_new = True
    return fresh


def _browser_token(request: Request, secret: str) -> str:
    return hmac.new(request.app.state.web_key, secret.encode(), hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> str:
    """The token to embed in the forms of this page."""
    session = _principal_session(request)
    if session is not None:
        try:
            return csrf_token_for(session)  # type: ignore[arg-type]
        except Exception:  # noqa: S110 - an expired row on an error page: fall back
            pass
    return _browser_token(request, _browser_secret(request))


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
    if not isinstance(submitted, str) or not submitted:
        return False
    session = _principal_session(request)
    if session is not None:
        return verify_csrf_token(session, submitted)  # type: ignore[arg-type]
    secret = request.cookies.get(CSRF_COOKIE)
    if not secret:
        return False
    return hmac.compare_digest(_browser_token(request, secret), submitted)


def origin_trusted(request: Request) -> bool:
    """Same rule as the API: Origin (or Referer) must be a trusted origin when present."""
    trusted = request.app.state.settings.trusted_origins
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer is None:
            return True  # the token check still applies
        scheme, _, rest = referer.partition("://")
        origin = f"{scheme}://{rest.split('/', 1)[0]}"
    return origin.rstrip("/") in trusted
