"""Standard Webhooks signatures (https://www.standardwebhooks.com), via the spec's own library.

`webhook-signature` is `v1,` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")), where the
key is the secret's base64 part after `whsec_`.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook as Signer

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_BYTES = 24  # the spec asks for 24 to 64 random bytes


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_msg_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def signature(secret: str, msg_id: str, timestamp: int, body: str | bytes) -> str:
    return Signer(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body)


def headers(secret: str, msg_id: str, timestamp: int, body: str | bytes) -> dict[str, str]:
    """The three headers of one try (the timestamp is the try's, the id the message's)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }
