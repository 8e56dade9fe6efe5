"""What a live stream sends: recorded ticket events read once per process and formatted once,
then offered to every stream allowed to see them.

The recorded types map onto the contract's: `ticket.status_changed`, `ticket.assigned` and
`ticket.updated` all go out as `ticket.updated` with the changed fields' new values;
`comment.created` carries the comment itself (author name, body, time, internal).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.core.crypto import PiiCipher
from tekudasai.core.schemas import iso
from tekudasai.tickets.events import EventType

# Resuming with Last-Event-ID replays this far back; older events are left out.
REPLAY_WINDOW = timedelta(minutes=5)
REPLAY_MAX = 1000
# Event ids are PostgreSQL bigints; anything else in Last-Event-ID is ignored.
MAX_EVENT_ID = 2**63 - 1

PUBLIC_TYPES = {
    EventType.TICKET_CREATED.value: "ticket.created",
    EventType.TICKET_UPDATED.value: "ticket.updated",
    EventType.STATUS_CHANGED.value: "ticket.updated",
    EventType.ASSIGNED.value: "ticket.updated",
    EventType.COMMENT_CREATED.value: "comment.created",
}

_COLUMNS = """
    SELECT e.id, e.ticket_id, e.type, e.internal, e.data, e.created_at, e.actor_id,
           t.reporter_id, t.summary, t.status, t.created_at AS ticket_created_at,
           c.id AS comment_id, c.body, c.internal AS comment_internal,
           c.created_at AS comment_created_at, au.id AS author_id,
           au.name_ciphertext AS author_name, au.role AS author_role,
           asg.name_ciphertext AS assignee_name
    FROM ticket_events e
    JOIN tickets t ON t.id = e.ticket_id
    LEFT JOIN ticket_comments c
      ON e.type = 'comment.created' AND c.id = (e.data->>'commentId')::bigint
    LEFT JOIN users au ON au.id = c.author_id
    LEFT JOIN users asg
      ON e.type = 'ticket.assigned' AND asg.id = e.data->'changes'->'assigneeId'->>'to'
"""
_BY_IDS = text(_COLUMNS + " WHERE e.id = ANY(:ids) ORDER BY e.id")
_SINCE = text(
    _COLUMNS + " WHERE e.id > :after AND e.created_at > now() - make_interval(secs => :window)"
    " ORDER BY e.id LIMIT :limit"
)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One event, formatted once (`chunk` is the whole SSE message) for every stream."""

    id: int | None
    ticket_id: int | None
    # Who may see it: staff see every ticket event; a customer only those of their own
    # tickets, and never an internal one. `user_id` set: only that user (notifications).
    reporter_id: str | None
    internal: bool
    staff_only: bool
    user_id: str | None
    chunk: bytes


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    """One server-sent event; `data` is one line of JSON (JSON escapes every newline)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"{head}event: {event}\ndata: {body}\n\n".encode()


def _new_value(change: Any) -> Any:
    if isinstance(change, dict) and "to" in change:
        return change["to"]
    return change


def _payload(row: Any, cipher: PiiCipher) -> tuple[str, dict[str, Any]] | None:
    public = PUBLIC_TYPES.get(row.type)
    if public is None:
        return None
    data: dict[str, Any] = {"ticketId": row.ticket_id, "at": iso(row.created_at)}
    recorded: dict[str, Any] = dict(row.data or {})
    if public == "comment.created":
        if row.comment_id is None:
            return None  # the comment went with its ticket
        data.update(
            id=row.comment_id,
            authorId=row.author_id,
            authorName=cipher.decrypt(row.author_name, context="user.name")
            if row.author_name is not None
            else "Deleted user",
            authorRole=row.author_role,
            body=row.body,
            createdAt=iso(row.comment_created_at),
            internal=bool(row.comment_internal),
        )
    elif public == "ticket.created":
        data.update(summary=row.summary, status=row.status, createdAt=iso(row.ticket_created_at))
    else:
        for name, change in (recorded.get("changes") or {}).items():
            data[name] = _new_value(change)
        if "assigneeId" in data:
            data["assigneeName"] = (
                cipher.decrypt(row.assignee_name, context="user.name")
                if row.assignee_name is not None
                else None
            )
    return public, data


def _live_event(row: Any, cipher: PiiCipher) -> LiveEvent | None:
    made = _payload(row, cipher)
    if made is None:
        return None
    name, data = made
    return LiveEvent(
        id=row.id,
        ticket_id=row.ticket_id,
        reporter_id=row.reporter_id,
        internal=bool(row.internal),
        staff_only=False,
        user_id=None,
        chunk=sse(name, data, row.id),
    )


async def load(db: AsyncSession, cipher: PiiCipher, ids: list[int]) -> list[LiveEvent]:
    """The events with these ids (one query for the batch), oldest first."""
    rows = (await db.execute(_BY_IDS, {"ids": ids})).all()
    return [e for e in (_live_event(r, cipher) for r in rows) if e is not None]


async def since(db: AsyncSession, cipher: PiiCipher, after: int) -> list[LiveEvent]:
    """Events after `after` of the replay window (Last-Event-ID), oldest first."""
    rows = (
        await db.execute(
            _SINCE,
            {"after": after, "window": REPLAY_WINDOW.total_seconds(), "limit": REPLAY_MAX},
        )
    ).all()
    return [e for e in (_live_event(r, cipher) for r in rows) if e is not None]


def parse_last_event_id(raw: str | None) -> int | None:
    """A usable Last-Event-ID, or None for anything else (garbage is ignored, not an error)."""
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        return None
    value = int(raw)
    return value if 0 <= value <= MAX_EVENT_ID else None
