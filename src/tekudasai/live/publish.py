"""Sending live messages that are not ticket events, on the same channel, on commit.

`notification` is the hook for the notifications feed: call it in the transaction that stores
the notification; the user's open streams get a `notification` event when that commits (a
rolled-back transaction sends nothing). PostgreSQL limits a NOTIFY payload to 8000 bytes:
send a short summary (id, title, ticketId, link), not whole bodies.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.live.hub import NOTIFICATION_PREFIX, PRESENCE_PREFIX
from tekudasai.tickets.events import LIVE_CHANNEL

MAX_PAYLOAD = 7900
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class PayloadTooLarge(ValueError):
    pass


def _payload(prefix: str, data: dict[str, Any]) -> str:
    payload = prefix + json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    if len(payload.encode()) > MAX_PAYLOAD:
        raise PayloadTooLarge(f"live payload of {len(payload)} characters (at most {MAX_PAYLOAD})")
    return payload


async def notification(db: AsyncSession, *, user_id: str, data: dict[str, Any]) -> None:
    """Publish a `notification` event (`data` as its JSON) to `user_id`'s streams on commit."""
    payload = _payload(NOTIFICATION_PREFIX, {**data, "userId": user_id})
    await db.execute(_NOTIFY, {"channel": LIVE_CHANNEL, "payload": payload})


async def presence(db: AsyncSession, data: dict[str, Any]) -> None:
    await db.execute(_NOTIFY, {"channel": LIVE_CHANNEL, "payload": _payload(PRESENCE_PREFIX, data)})
