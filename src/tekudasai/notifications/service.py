"""Preferences and the in-app feed: what the API and the pages call. Services flush only."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.core.schemas import iso
from tekudasai.db.raw import RawStatement
from tekudasai.notifications.errors import InvalidCursor, InvalidPreferences, InvalidReadRequest
from tekudasai.notifications.kinds import DEFAULTS, Kind, column, kinds_for
from tekudasai.notifications.models import Notification, NotificationPreference

FEED_PAGE = 20
MAX_FEED_PAGE = 100
MAX_READ_IDS = 500
# The badge says "99+" beyond this: counting further would only cost time.
UNREAD_CAP = 100
_CURSOR_PREFIX = "n:"

Preferences = dict[Kind, bool]


# -- preferences -----------------------------------------------------------------------------


def _row_preferences(row: Mapping[str, Any] | None) -> Preferences:
    if row is None:
        return dict(DEFAULTS)
    return {kind: bool(row[column(kind)]) for kind in Kind}


# For a statement that outer-joins the preferences table to its users: its columns, and the
# marker that tells a stored row from none (`joined_preferences` reads them back).
PREFERENCE_COLUMNS = (
    NotificationPreference.user_id.label("preferences_of"),
    *(getattr(NotificationPreference, column(kind)) for kind in Kind),
)


def joined_preferences(row: Mapping[str, Any]) -> Preferences:
    """The switches from a row that selected PREFERENCE_COLUMNS (the defaults if none stored)."""
    return _row_preferences(row if row["preferences_of"] is not None else None)


# The stored switches of some users (automations' mails, the preferences API; the dispatch
# reads them with its people instead): straight to the driver (db/raw.py).
_PREFERENCES_OF = RawStatement(
    select(*PREFERENCE_COLUMNS).where(text("user_id = ANY(CAST(:user_ids AS text[]))"))
)


async def load_preferences(db: AsyncSession, user_ids: Iterable[str]) -> dict[str, Preferences]:
    """Everyone's switches (the defaults for users without a row), in one query."""
    ids = sorted(set(user_ids))
    found = {row["preferences_of"]: row for row in await _PREFERENCES_OF.fetch(db, user_ids=ids)}
    return {user_id: _row_preferences(found.get(user_id)) for user_id in ids}


def visible(preferences: Preferences, *, is_staff: bool) -> dict[str, bool]:
    """What a user sees and may switch: customers only the kinds they are ever sent."""
    return {kind.value: preferences[kind] for kind in kinds_for(is_staff)}


async def get_preferences(db: AsyncSession, *, user_id: str, is_staff: bool) -> dict[str, bool]:
    return visible((await load_preferences(db, [user_id]))[user_id], is_staff=is_staff)


def check_changes(changes: Mapping[str, Any], *, is_staff: bool) -> dict[Kind, bool]:
    """The switches a PATCH asks for; unknown names and non-booleans are field errors."""
    allowed = {kind.value: kind for kind in kinds_for(is_staff)}
    errors = []
    checked: dict[Kind, bool] = {}
    for name, value in changes.items():
        if name not in allowed:
            known = name in Kind._value2member_map_
            message = "Not a setting for customers" if known else "Unknown setting"
            errors.append({"field": f"email.{name}", "message": message})
        elif not isinstance(value, bool):
            errors.append({"field": f"email.{name}", "message": "Must be true or false"})
        else:
            checked[allowed[name]] = value
    if errors:
        first = errors[0]
        raise InvalidPreferences(f"{first['field']}: {first['message']}", errors=errors)
    return checked


async def set_preferences(db: AsyncSession, *, user_id: str, changes: Mapping[Kind, bool]) -> None:
    """Store the given switches; the others keep their value (or default)."""
    if not changes:
        return
    values = {column(kind): value for kind, value in changes.items()}
    statement = insert(NotificationPreference).values(user_id=user_id, **values)
    await db.execute(
        statement.on_conflict_do_update(
            index_elements=[NotificationPreference.user_id],
            set_={**{name: statement.excluded[name] for name in values}, "updated_at": func.now()},
        )
    )


async def update_preferences(
    db: AsyncSession, *, user_id: str, is_staff: bool, changes: Mapping[str, Any]
) -> dict[str, bool]:
    await set_preferences(db, user_id=user_id, changes=check_changes(changes, is_staff=is_staff))
    return await get_preferences(db, user_id=user_id, is_staff=is_staff)


# -- the feed --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedPage:
    rows: list[Notification]
    next_cursor: str | None
    unread: int


def encode_cursor(notification_id: int) -> str:
    raw = f"{_CURSOR_PREFIX}{notification_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    error = InvalidCursor(errors=[{"field": "cursor", "message": "Invalid cursor"}])
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise error from exc
    number = raw.removeprefix(_CURSOR_PREFIX)
    if not raw.startswith(_CURSOR_PREFIX) or not (number.isascii() and number.isdigit()):
        raise error
    if int(number) > 2**62:
        raise error
    return int(number)


async def unread_count(db: AsyncSession, *, user_id: str, cap: int | None = None) -> int:
    """Unread rows (the partial index holds only those), counted up to `cap` when given."""
    unread = select(Notification.id).where(
        Notification.user_id == user_id, Notification.read_at.is_(None)
    )
    if cap is not None:
        unread = unread.limit(cap)
    return int(await db.scalar(select(func.count()).select_from(unread.subquery())) or 0)


async def feed(
    db: AsyncSession, *, user_id: str, cursor: str | None = None, limit: int = FEED_PAGE
) -> FeedPage:
    """Newest first; `cursor` (from the previous page's `next_cursor`) continues after it."""
    query = (
        select(Notification)
        .where(Notification.user_id == user_id)
        .order_by(Notification.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        query = query.where(Notification.id < decode_cursor(cursor))
    rows = list(await db.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].id) if more and rows else None
    return FeedPage(rows, next_cursor, await unread_count(db, user_id=user_id))


async def mark_read(
    db: AsyncSession, *, user_id: str, ids: Sequence[int] | None = None, all: bool = False
) -> int:
    """Mark some (or all) of this user's notifications read; returns how many changed.
    Ids of other users' notifications change nothing."""
    if all == (ids is not None):
        raise InvalidReadRequest(errors=[{"field": "ids", "message": "Give ids or all: true"}])
    if ids is not None and len(ids) > MAX_READ_IDS:
        raise InvalidReadRequest(
            f"ids: at most {MAX_READ_IDS} at once.",
            errors=[{"field": "ids", "message": f"At most {MAX_READ_IDS}"}],
        )
    statement = (
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=func.now())
    )
    if ids is not None:
        if not ids:
            return 0
        statement = statement.where(Notification.id.in_(list(ids)))
    result = await db.execute(statement)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def feed_view(row: Notification) -> dict[str, Any]:
    return {
        "id": row.id,
        "ticketId": row.ticket_id,
        "event": row.kind,
        "text": row.text,
        "createdAt": iso(row.created_at),
        "readAt": iso(row.read_at) if row.read_at else None,
    }


# Read lines leave the feed after three months, unread ones after a year.
KEEP_READ_DAYS = 90
KEEP_UNREAD_DAYS = 365


async def prune_feed(db: AsyncSession) -> int:
    result = await db.execute(
        delete(Notification).where(
            or_(
                Notification.read_at < func.now() - timedelta(days=KEEP_READ_DAYS),
                Notification.created_at < func.now() - timedelta(days=KEEP_UNREAD_DAYS),
            )
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
