"""CSRF defence, in one place: trusted Origin/Referer for cookie-authenticated writes (API and
pages alike), and the tokens HTML forms carry.

Requests carrying a bearer token are exempt (a browser never adds one by itself). Signed in, a
form's token is bound to the session (an HMAC keyed by the session's server-side token hash);
signed out (sign-in and sign-up forms), to a per-browser secret cookie. A request without
Origin and Referer may present the session's token in the `X-CSRF-Token` header instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tekudasai.core.crypto import hash_token

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
SESSION_COOKIE = "tk.session_token"
CSRF_HEADER = b"x-csrf-token"
CSRF_COOKIE = "tk.csrf"
CSRF_FIELD = "csrf_token"
REFUSED = "The request did not come from a trusted origin."


# -- The session token, from a bearer header or the cookie -------------------------------------


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    scheme, _, value = (authorization or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def session_token(authorization: str | None, cookie: str | None) -> str | None:
    """The raw session token of a request: the bearer token, else the session cookie's."""
    bearer = bearer_token(authorization)
    if bearer is not None:
        return bearer
    if cookie:
        # better-auth signs the cookie as "<token>.<signature>"; the token is the part we hash.
        return cookie.split(".", 1)[0]
    return None


def _cookie(cookie_header: str, name: str) -> str | None:
    for part in cookie_header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


# -- Origins ---------------------------------------------------------------------------------


def origin_of(url: str) -> str | None:
    scheme, sep, rest = url.partition("://")
    if not sep or not rest:
        return None
    return f"{scheme.lower()}://{rest.split('/', 1)[0].lower()}"


def normalise_origins(origins: list[str]) -> frozenset[str]:
    return frozenset(o.strip().lower().rstrip("/") for o in origins if o.strip())


def origin_verdict(origin: str | None, referer: str | None, trusted: frozenset[str]) -> bool | None:
    """True/False when Origin (or, without it, Referer) says where the request came from;
    None when neither does (then a token decides)."""
    if origin and origin != "null":
        return origin.lower().rstrip("/") in trusted
    if referer:
        return origin_of(referer) in trusted
    return None


# -- Tokens ----------------------------------------------------------------------------------


class HasTokenHash(Protocol):
    token_hash: bytes


def csrf_token_for(session: HasTokenHash) -> str:
    """A token bound to one session, keyed by its (secret, server-side) token hash."""
    return _token_for_hash(session.token_hash)


def _token_for_hash(token_hash: bytes) -> str:
    mac = hmac.new(token_hash, b"tekudasai/csrf/v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def verify_csrf_token(session: HasTokenHash | None, token: str | None) -> bool:
    if session is None or not token:
        return False
    return hmac.compare_digest(csrf_token_for(session), token)


def csrf_token_for_raw(raw_session_token: str) -> str:
    """The same token, computed from the raw session token (the cookie value)."""
    return _token_for_hash(hash_token(raw_session_token))


def _principal_session(request: Request) -> HasTokenHash | None:
    principal = getattr(request.state, "principal", None)
    return principal.session if principal is not None else None


def _browser_secret(request: Request) -> str:
    existing = getattr(request.state, "csrf_secret", None) or request.cookies.get(CSRF_COOKIE)
    if existing and 16 <= len(existing) <= 128:
        return str(existing)
    fresh = secrets.token_urlsafe(24)
    request.state.csrf_secret = fresh
    request.state.csrf_new = True
    return fresh


def _browser_token(request: Request, secret: str) -> str:
    return hmac.new(request.app.state.web_key, secret.encode(), hashlib.sha256).hexdigest()


def form_token(request: Request) -> str:
    """The token to embed in the forms of this page."""
    session = _principal_session(request)
    if session is not None:
        try:
            return csrf_token_for(session)
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


def form_token_valid(request: Request, submitted: object) -> bool:
    if not isinstance(submitted, str) or not submitted:
        return False
    session = _principal_session(request)
    if session is not None:
        return verify_csrf_token(session, submitted)
    secret = request.cookies.get(CSRF_COOKIE)
    if not secret:
        return False
    return hmac.compare_digest(_browser_token(request, secret), submitted)


def request_origin_trusted(request: Request) -> bool:
    """The middleware's origin rule for a page's form post (the token check applies as well)."""
    trusted = normalise_origins(request.app.state.settings.trusted_origins)
    verdict = origin_verdict(request.headers.get("origin"), request.headers.get("referer"), trusted)
    return verdict is not False


# -- Middleware ------------------------------------------------------------------------------


class CsrfMiddleware:
    """403 CSRF_FAILED for state-changing requests from an untrusted origin (pure ASGI)."""

    def __init__(self, app: ASGIApp, *, trusted_origins: list[str]) -> None:
        self.app = app
        self.trusted = normalise_origins(trusted_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if not self._allowed(headers):
            await _refuse(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, headers: dict[bytes, str]) -> bool:
        if bearer_token(headers.get(b"authorization")) is not None:
            return True
        origin = headers.get(b"origin")
        verdict = origin_verdict(origin, headers.get(b"referer"), self.trusted)
        if verdict is not None:
            return verdict
        token = session_token(None, _cookie(headers.get(b"cookie", ""), SESSION_COOKIE))
        if token is None:
            # No ambient credential: nothing a forged cross-site request could borrow.
            return origin is None
        sent = headers.get(CSRF_HEADER)
        return bool(sent) and hmac.compare_digest(csrf_token_for_raw(token), sent or "")


def _headers(scope: Scope) -> dict[bytes, str]:
    return {k: v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    from tekudasai.core.middleware import send_error

    path: str = scope["path"]
    app = scope.get("app")
    renderer = getattr(getattr(app, "state", None), "render_error_page", None)
    accept = _headers(scope).get(b"accept", "")
    if renderer is not None and not path.startswith("/api") and "text/html" in accept:
        # A browser's form post: a page saying what happened, not raw JSON.
        scope["tk.error_code"] = "CSRF_FAILED"
        message = (
            "This form was sent from an address this service does not trust "
            "(see TRUSTED_ORIGINS). Go back, reload the page and try again."
        )
        response = renderer(Request(scope, receive), 403, message)
        await response(scope, receive, send)
        return
    body: dict[str, Any] = {"status": "error", "message": REFUSED, "code": "CSRF_FAILED"}
    await send_error(scope, send, 403, body)
