"""Flash messages carried to the next page in a signed, short-lived cookie."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Literal

from fastapi import Request
from fastapi.responses import Response

FLASH_COOKIE = "tk.flash"
FLASH_MAX_AGE_S = 60
Kind = Literal["success", "error", "info"]


def _sign(key: bytes, payload: bytes) -> str:
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(payload).decode() + "." + base64.urlsafe_b64encode(mac).decode()


def _unsign(key: bytes, value: str) -> bytes | None:
    data, _, mac = value.partition(".")
    try:
        payload = base64.urlsafe_b64decode(data)
        given = base64.urlsafe_b64decode(mac)
    except (ValueError, TypeError):
        return None
    expected = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    return payload if hmac.compare_digest(given, expected) else None


def flash(request: Request, response: Response, text: str, kind: Kind = "success") -> None:
    """Queue a message for the next page the browser shows."""
    pending = [*read_flashes(request), {"kind": kind, "text": text}][-5:]
    key: bytes = request.app.state.web_key
    response.set_cookie(
        FLASH_COOKIE,
        _sign(key, json.dumps(pending).encode()),
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
    payload = _unsign(request.app.state.web_key, raw)
    if payload is None:
        return []
    try:
        items = json.loads(payload)
    except ValueError:
        return []
    return [
        {"kind": str(i.get("kind", "info")), "text": str(i.get("text", ""))}
        for i in items
        if isinstance(i, dict)
    ]
