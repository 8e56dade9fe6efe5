"""Signed one-click unsubscribe tokens (RFC 8058): `<user id>:<kind>` and an HMAC of it.

A token is the capability itself (a mail provider's POST carries no session): it only ever
turns one kind of e-mail off for one user, and it keeps working, as unsubscribe links should.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac

from tekudasai.core.crypto import derive_key
from tekudasai.notifications.kinds import Kind

MAX_TOKEN_LENGTH = 300
_MAC_BYTES = 16


@functools.lru_cache(maxsize=8)
def _key(secret: bytes) -> bytes:
    return derive_key(secret, "tekudasai/notifications/unsubscribe/v1")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: bytes, *, user_id: str, kind: Kind) -> str:
    payload = f"{user_id}:{kind.value}".encode()
    mac = hmac.new(_key(secret), payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{_b64(payload)}.{_b64(mac)}"


def read_token(secret: bytes, token: str) -> tuple[str, Kind] | None:
    """(user id, kind) of a genuine token; None for anything else."""
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        return None
    encoded, mac = token.split(".")
    try:
        payload, given = _unb64(encoded), _unb64(mac)
    except (binascii.Error, ValueError):
        return None
    expected = hmac.new(_key(secret), payload, hashlib.sha256).digest()[:_MAC_BYTES]
    if not hmac.compare_digest(expected, given):
        return None
    user_id, _, kind = payload.decode(errors="replace").rpartition(":")
    if not user_id or kind not in Kind._value2member_map_:
        return None
    return user_id, Kind(kind)
