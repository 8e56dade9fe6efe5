"""Audit rows: written by the same session (and so the same transaction) as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.tickets.models import LogAction, TicketLog


def record(
    db: AsyncSession,
    *,
    ticket_id: int,
    user_id: str | None,
    action_type: LogAction,
    action: str,
    details: dict[str, Any] | None = None,
    internal: bool = False,
) -> TicketLog:
    """Stage one audit row; the caller's flush writes it with the change it describes."""
    row = TicketLog(
        ticket_id=ticket_id,
        user_id=user_id,
        action_type=action_type.value,
        action=action,
        details=details or {},
        internal=internal,
    )
    db.add(row)
    return row


async def list_logs(db: AsyncSession, *, ticket_id: int, include_internal: bool) -> list[TicketLog]:
    """The trail of one ticket, oldest first; the reporter's view leaves internal rows out."""
    query = select(TicketLog).where(TicketLog.ticket_id == ticket_id)
    if not include_internal:
        query = query.where(TicketLog.internal.is_(False))
    return list((await db.scalars(query.order_by(TicketLog.id))).all())


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Field-level description of what differs: {field: {"from": old, "to": new}}."""
    return {
        key: {"from": before.get(key), "to": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }
