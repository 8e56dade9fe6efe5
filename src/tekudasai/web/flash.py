"""Flash messages carried to the next page in a signed, short-lived cookie (itsdangerous)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Request
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

FLASH_COOKIE = "tk.flash"
FLASH_MAX_AGE_S = 60
FLASH_SALT = "tekudasai/flash/v1"
Kind = Literal["success", "error", "info"]


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.web_key, salt=FLASH_SALT)


def flash(request: Request, response: Response, text: str, kind: Kind = "success") -> None:
    """Queue a message for the next page the browser shows."""
    pending = [*read_flashes(request), {"kind": kind, "text": text}][-5:]
    response.set_cookie(
        FLASH_COOKIE,
        _serializer(request).dumps(pending),
        max_age=FLASH_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.secure_cookies,
        path="/",
    )


def read_flashes(request: Request) -> list[dict[str, str]]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return []
    try:
        items: Any = _serializer(request).loads(raw, max_age=FLASH_MAX_AGE_S)
    except BadSignature:  # tampered, expired (SignatureExpired is a BadSignature) or garbled
        return []
    if not isinstance(items, list):
        return []
    return [
        {"kind": str(i.get("kind", "info")), "text": str(i.get("text", ""))}
        for i in items
        if isinstance(i, dict)
    ]
