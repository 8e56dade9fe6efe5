"""Canned responses: an agent's own and the shared ones; placeholders filled when used."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.canned.models import CannedResponse
from tekudasai.core.errors import AppError, NotFound, ValidationFailed
from tekudasai.core.schemas import iso

MAX_PER_OWNER = 500
# The placeholders a body may use; anything else in double braces is left as written.
PLACEHOLDERS = ("ticket.id", "ticket.summary", "reporter.name", "agent.name")
_PLACEHOLDER = re.compile(r"\{\{\s*(" + "|".join(map(re.escape, PLACEHOLDERS)) + r")\s*\}\}")


class CannedNotFound(NotFound):
    message = "Canned response not found."


class SharedNeedsAdmin(AppError):
    status_code = 403
    code = "FORBIDDEN"
    message = "Only admins manage shared canned responses."


def fill(body: str, values: dict[str, str]) -> str:
    """The body with each known placeholder replaced by its value (plain text, no templating:
    a body is data, never code)."""
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), ""), body)


def public(row: CannedResponse) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "body": row.body,
        "shared": row.shared,
        "ownerId": row.owner_id,
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }


def _clean(field: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise ValidationFailed(
            f"{field}: is empty.", errors=[{"field": field, "message": "is empty"}]
        )
    return value


async def list_for(db: AsyncSession, *, user_id: str) -> list[CannedResponse]:
    """The user's own and every shared one, by title."""
    query = (
        select(CannedResponse)
        .where(or_(CannedResponse.owner_id == user_id, CannedResponse.shared.is_(True)))
        .order_by(CannedResponse.title, CannedResponse.id)
    )
    return list((await db.scalars(query)).all())


async def get_visible(db: AsyncSession, canned_id: str, *, user_id: str) -> CannedResponse:
    row = await db.get(CannedResponse, canned_id)
    if row is None or not (row.shared or row.owner_id == user_id):
        raise CannedNotFound()
    return row


async def _get_editable(
    db: AsyncSession, canned_id: str, *, user_id: str, is_admin: bool
) -> CannedResponse:
    """Owners edit their own; shared ones are the admins'."""
    row = await get_visible(db, canned_id, user_id=user_id)
    if row.shared and not is_admin:
        raise SharedNeedsAdmin()
    if not row.shared and row.owner_id != user_id:
        raise CannedNotFound()
    return row


async def create(
    db: AsyncSession, *, owner_id: str, is_admin: bool, title: str, body: str, shared: bool
) -> CannedResponse:
    if shared and not is_admin:
        raise SharedNeedsAdmin()
    owned = await db.scalars(
        select(CannedResponse.id).where(CannedResponse.owner_id == owner_id).limit(MAX_PER_OWNER)
    )
    if len(owned.all()) >= MAX_PER_OWNER:
        raise ValidationFailed(f"At most {MAX_PER_OWNER} canned responses each.")
    row = CannedResponse(
        owner_id=owner_id, title=_clean("title", title), body=_clean("body", body), shared=shared
    )
    db.add(row)
    await db.flush()
    return row


async def update(
    db: AsyncSession, canned_id: str, changes: dict[str, Any], *, user_id: str, is_admin: bool
) -> CannedResponse:
    row = await _get_editable(db, canned_id, user_id=user_id, is_admin=is_admin)
    if changes.get("title") is not None:
        row.title = _clean("title", changes["title"])
    if changes.get("body") is not None:
        row.body = _clean("body", changes["body"])
    if changes.get("shared") is not None and changes["shared"] != row.shared:
        if not is_admin:
            raise SharedNeedsAdmin()
        row.shared = changes["shared"]
    await db.flush()
    return row


async def delete(db: AsyncSession, canned_id: str, *, user_id: str, is_admin: bool) -> None:
    row = await _get_editable(db, canned_id, user_id=user_id, is_admin=is_admin)
    await db.delete(row)
    await db.flush()
