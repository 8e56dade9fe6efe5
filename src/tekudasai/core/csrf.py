"""CSRF defence: trusted Origin/Referer for cookie-authenticated writes, plus per-session tokens.

Requests carrying a bearer token are exempt (a browser never adds one by itself). HTML forms
embed `csrf_token_for(session)`; a request without Origin and Referer may present it in the
`X-CSRF-Token` header instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Protocol

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tekudasai.core.crypto import hash_token

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
SESSION_COOKIE = "tk.session_token"
CSRF_HEADER = b"x-csrf-token"


class HasTokenHash(Protocol):
    token_hash: bytes


def csrf_token_for(session: HasTokenHash) -> str:
    """A token bound to one session, keyed by its (secret, server-side) token hash."""
    mac = hmac.new(session.token_hash, b"tekudasai/csrf/v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def verify_csrf_token(session: HasTokenHash | None, token: str | None) -> bool:
    if session is None or not token:
        return False
    return hmac.compare_digest(csrf_token_for(session), token)


def csrf_token_for_raw(session_token: str) -> str:
    """The same token, computed from the raw session token (the cookie value)."""

    class _Bound:
        token_hash = hash_token(session_token)

    return csrf_token_for(_Bound())


def origin_of(url: str) -> str | None:
    scheme, sep, rest = url.partition("://")
    if not sep or not rest:
        return None
    return f"{scheme.lower()}://{rest.split('/', 1)[0].lower()}"


def _headers(scope: Scope) -> dict[bytes, str]:
    return {k: v.decode("latin-1") for k, v in scope.get("headers", [])}


def _session_cookie(cookie_header: str) -> str | None:
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE and value:
            return value.split(".", 1)[0]
    return None


class CsrfMiddleware:
    """403 CSRF_FAILED for state-changing requests from an untrusted origin (pure ASGI)."""

    def __init__(self, app: ASGIApp, *, trusted_origins: list[str]) -> None:
        self.app = app
        self.trusted = {o.lower().rstrip("/") for o in trusted_origins}

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
        scheme, _, value = headers.get(b"authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return True
        origin = headers.get(b"origin")
        if origin and origin != "null":
            return origin.lower().rstrip("/") in self.trusted
        referer = headers.get(b"referer")
        if referer:
            return origin_of(referer) in self.trusted
        session_token = _session_cookie(headers.get(b"cookie", ""))
        if session_token is None:
            # No ambient credential: nothing a forged cross-site request could borrow.
            return origin is None
        token = headers.get(CSRF_HEADER)
        return bool(token) and hmac.compare_digest(csrf_token_for_raw(session_token), token or "")


REFUSED = "The request did not come from a trusted origin."


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
