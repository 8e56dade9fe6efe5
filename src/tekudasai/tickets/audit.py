"""Audit rows: written by the same session (and so the same transaction) as the change.

Every row is defined here: `record` stages one through the ORM; `created_row` is the creation
row as SQL, for the one statement that files a ticket (tickets/service.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Insert, Table, false, insert, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.tickets.models import LogAction, Ticket, TicketLog
from tekudasai.tickets.schemas import TICKET_FIELDS

CREATED = "Ticket created"
DELETED = "Ticket deleted"
# What a creation or deletion row keeps of the whole ticket: these members of the ticket
# object, and the form version it was filed with.
_SNAPSHOT_KEYS = ("summary", "status", "reporterId", "assigneeId", "formId")
_MEMBERS = {f.key: f.column.key for f in TICKET_FIELDS}
_SNAPSHOT = (*((key, _MEMBERS[key]) for key in _SNAPSHOT_KEYS), ("formVersion", "form_version"))


@dataclass(frozen=True)
class AutomationActor:
    """An automation acting on a ticket; `chain` holds it and every automation whose change
    led to this one (an automation never fires again inside its own chain: no loops)."""

    id: str
    name: str
    chain: tuple[str, ...]


_acting: ContextVar[AutomationActor | None] = ContextVar("tk_acting_automation", default=None)


@contextmanager
def as_automation(automation_id: str, name: str) -> Iterator[AutomationActor]:
    """Changes made inside are the automation's: their audit rows name it (and no user),
    their events carry it in `data.automation`."""
    outer = _acting.get()
    actor = AutomationActor(automation_id, name, (*(outer.chain if outer else ()), automation_id))
    token = _acting.set(actor)
    try:
        yield actor
    finally:
        _acting.reset(token)


def acting_automation() -> AutomationActor | None:
    return _acting.get()


def snapshot(ticket: Ticket) -> dict[str, Any]:
    """The ticket as a creation or deletion row records it (`details.ticket`)."""
    return {key: getattr(ticket, attribute) for key, attribute in _SNAPSHOT}


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
    """Stage one audit row; the caller's flush writes it with the change it describes.
    Inside `as_automation` the row names the automation, not a user."""
    automation = _acting.get()
    if automation is not None:
        user_id = None
        action = f"{action} (automation: {automation.name})"
        details = {**(details or {}), "automation": {"id": automation.id, "name": automation.name}}
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


def created_details(ticket: Ticket) -> dict[str, Any]:
    return {"ticket": snapshot(ticket)}


def deleted(db: AsyncSession, ticket: Ticket, *, user_id: str) -> TicketLog:
    """Stage the deletion row (the trail outlives the ticket)."""
    return record(
        db,
        ticket_id=ticket.id,
        user_id=user_id,
        action_type=LogAction.DELETE,
        action=DELETED,
        details={"ticket": snapshot(ticket)},
    )


def _constant(text: str) -> ColumnElement[str]:
    # Written into the statement, not bound: a constant needs no parameter on every call.
    assert "'" not in text
    return literal_column(f"'{text}'")


def created_row(
    *, ticket_id: ColumnElement[Any], user_id: ColumnElement[Any], details: ColumnElement[Any]
) -> Insert:
    """The creation row as an INSERT … SELECT of SQL values (`details` as
    `created_details` makes it), the same row `record` would stage."""
    row: dict[str, Any] = {
        "ticket_id": ticket_id,
        "user_id": user_id,
        "action_type": _constant(LogAction.CREATE.value),
        "action": _constant(CREATED),
        "details": details,
        "internal": false(),
    }
    return insert(cast(Table, TicketLog.__table__)).from_select(list(row), select(*row.values()))


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
