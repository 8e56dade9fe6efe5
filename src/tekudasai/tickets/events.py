"""Ticket events: what notifications, webhooks and live updates react to.

Every change of a ticket records one `ticket_events` row in the change's own transaction, and
with it one `tickets.dispatch_event` job and a NOTIFY on `tk_live` (payload: the event id), all
in one statement: an event exists exactly when its change commits. The job then runs every
handler listed in `tasks.EVENT_HANDLERS` in one transaction that also marks the row
dispatched, so each handler sees each event exactly once, however often the job runs.

Handlers live in the domains above this one (notifications, webhooks …) and only add rows and
jobs in the session they are given; anything slow (SMTP, HTTP) is a job of its own.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from tekudasai.db import wakeups
from tekudasai.db.raw import RawStatement
from tekudasai.jobs.models import Job
from tekudasai.jobs.queue import CHANNEL as JOBS_CHANNEL
from tekudasai.jobs.queue import DEFAULT_MAX_ATTEMPTS
from tekudasai.jobs.worker import JobContext
from tekudasai.tickets import audit
from tekudasai.tickets.models import TicketEventRow

DISPATCH = "tickets.dispatch_event"
LIVE_CHANNEL = "tk_live"
KEEP = timedelta(days=3)


class EventType(StrEnum):
    TICKET_CREATED = "ticket.created"
    # Summary, answers or the reporter's edit window: `data.changes` says which.
    TICKET_UPDATED = "ticket.updated"
    STATUS_CHANGED = "ticket.status_changed"
    # Assigned or unassigned: `data.changes.assigneeId`.
    ASSIGNED = "ticket.assigned"
    # `data.commentId`; `internal` for a note.
    COMMENT_CREATED = "comment.created"
    # From the SLA clock's timer job: `data.target` is firstResponse or resolution.
    SLA_WARNING = "sla.warning"
    SLA_BREACHED = "sla.breached"


@dataclass(frozen=True)
class TicketEvent:
    """A recorded event as handlers get it."""

    id: int
    ticket_id: int
    type: EventType
    actor_id: str | None
    internal: bool
    data: dict[str, Any]
    created_at: datetime


# `async def handler(session, event, ctx)`: react inside the dispatch transaction.
EventHandler = Callable[[AsyncSession, TicketEvent, JobContext], Awaitable[None]]


@dataclass(frozen=True)
class Change:
    """An event as a reactor sees it: in the change's own transaction, before it commits."""

    ticket_id: int
    type: EventType
    actor_id: str | None
    data: dict[str, Any]
    internal: bool = False
    # A new ticket's creation: the values of the creation probes (below), as its INSERT saw them.
    probes: Mapping[str, Any] = field(default_factory=dict)


# `async def reactor(session, change)`: runs in the transaction of the change itself, right
# after the event is recorded (the SLA clock, automations). Unlike handlers, what a reactor
# does commits or rolls back with the change. Installed by the app and the CLI
# (`tasks.REACTORS`): the domains above this one, which this one cannot import.
Reactor = Callable[[AsyncSession, Change], Awaitable[None]]
_reactors: tuple[Reactor, ...] = ()


@dataclass(frozen=True)
class Prefill:
    """Ticket columns a reactor computed for a new ticket from its own cache, before the INSERT
    (the SLA clock's due times): the INSERT writes them itself, and only if the creation probe
    `probe` still reads `expect` in that statement (the cache was current). Otherwise the
    columns stay empty and the reactor does its slower work afterwards. `created_at` is the
    moment they were computed from, and becomes the ticket's; `job` (name, run_after) is a job
    with args {"ticketId": id} inserted by the same statement when the columns are written."""

    probe: str
    expect: Any
    created_at: datetime
    columns: Mapping[str, Any]
    job: tuple[str, datetime] | None = None


# `prefill(priority=, form_id=)` -> Prefill or None (nothing to write, or no cache to trust).
CreationPrefill = Callable[..., Prefill | None]
_creation_prefill: CreationPrefill | None = None


def creation_prefill() -> CreationPrefill | None:
    return _creation_prefill


# Scalar SQL expressions (name -> SQL) a reactor wants evaluated inside a new ticket's one
# INSERT statement and handed to it in `Change.probes`: the SLA clock checks its policy cache
# this way instead of with a round trip of its own on the hottest write.
_creation_probes: tuple[tuple[str, str], ...] = ()


def install_reactors(
    reactors: Sequence[Reactor],
    creation_probes: Mapping[str, str] | None = None,
    prefill: CreationPrefill | None = None,
) -> None:
    global _reactors, _creation_probes, _creation_prefill
    _reactors = tuple(reactors)
    _creation_probes = tuple((creation_probes or {}).items())
    _creation_prefill = prefill


def creation_probes() -> tuple[tuple[str, str], ...]:
    return _creation_probes


def has_reactors() -> bool:
    return bool(_reactors)


def installed() -> tuple[Reactor, ...]:
    return _reactors


async def react(db: AsyncSession, change: Change) -> None:
    """Run the installed reactors for a change (emit does; so does a ticket's creation)."""
    for reactor in _reactors:
        await reactor(db, change)


def recorded(
    *,
    ticket_id: ColumnElement[Any],
    actor_id: ColumnElement[Any],
    type: ColumnElement[Any],
    internal: ColumnElement[Any],
    data: ColumnElement[Any],
) -> tuple[Any, Any]:
    """The event row and its dispatch job as two CTEs for a caller's statement, which must
    select the event's id and hand it to `wake_after_commit`. The ticket's creation puts them
    in its one INSERT statement this way."""
    row = {
        "ticket_id": ticket_id,
        "type": type,
        "actor_id": actor_id,
        "internal": internal,
        "data": data,
    }
    event = (
        insert(cast(Table, TicketEventRow.__table__))
        .from_select(list(row), select(*row.values()))
        .returning(TicketEventRow.id)
        .cte("event")
    )
    job = (
        insert(cast(Table, Job.__table__))
        .from_select(
            ["name", "args", "max_attempts"],
            select(
                literal_column(f"'{DISPATCH}'"),
                func.jsonb_build_object(literal_column("'eventId'"), event.c.id),
                literal(DEFAULT_MAX_ATTEMPTS, Integer),
            ),
        )
        .cte("event_job")
    )
    return event, job


def wake_after_commit(db: AsyncSession, event_id: int) -> None:
    """Once the transaction commits, wake the workers (the event's dispatch job) and the live
    streams (the event id): after the commit, not in it (db/wakeups.py)."""
    wakeups.after_commit(db, ((JOBS_CHANNEL, ""), (LIVE_CHANNEL, str(event_id))))


@functools.cache
def _emit_statement() -> RawStatement:
    event, job = recorded(
        ticket_id=bindparam("ticket_id", type_=Integer),
        actor_id=bindparam("actor_id", type_=Text),
        type=bindparam("event_type", type_=Text),
        # As text: a Boolean parameter needs SQLAlchemy's conversion, which raw statements skip.
        internal=sql_cast(bindparam("event_internal", type_=Text), Boolean),
        data=sql_cast(bindparam("data", type_=Text), JSONB),
    )
    query: Select[Any] = select(event.c.id).add_cte(job)
    return RawStatement(query)


async def emit(
    db: AsyncSession,
    *,
    type: EventType,
    ticket_id: int,
    actor_id: str | None,
    data: dict[str, Any] | None = None,
    internal: bool = False,
) -> int:
    """Record an event in the caller's transaction (one round trip), then let the reactors
    react to it; returns its id."""
    data = data or {}
    automation = audit.acting_automation()
    if automation is not None:
        actor_id = None
        data = {**data, "automation": {"id": automation.id, "name": automation.name}}
    row = await _emit_statement().fetchrow(
        db,
        ticket_id=ticket_id,
        actor_id=actor_id,
        data=json.dumps(data),
        event_type=type.value,
        event_internal="true" if internal else "false",
    )
    assert row is not None
    event_id = int(row["id"])
    wake_after_commit(db, event_id)
    if _reactors:
        await react(db, Change(ticket_id, type, actor_id, data, internal))
    return event_id


_CLAIM = RawStatement(
    text(
        "UPDATE ticket_events SET dispatched_at = now() "
        "WHERE id = CAST(:id AS bigint) AND dispatched_at IS NULL "
        "RETURNING id, ticket_id, type, actor_id, internal, data::text AS data, created_at"
    )
)


async def dispatch(ctx: JobContext, event_id: int, handlers: Sequence[EventHandler]) -> bool:
    """Run every handler for one event in one transaction; False when it was done before
    (or its ticket is gone with it)."""
    async with ctx.database.sessionmaker() as session, session.begin():
        row = await _CLAIM.fetchrow(session, id=event_id)
        if row is None:
            return False
        event = TicketEvent(
            id=row["id"],
            ticket_id=row["ticket_id"],
            type=EventType(row["type"]),
            actor_id=row["actor_id"],
            internal=row["internal"],
            data=dict(json.loads(row["data"]) or {}),
            created_at=row["created_at"],
        )
        for handler in handlers:
            await handler(session, event, ctx)
    return True


def dispatch_task(handlers: Sequence[EventHandler]) -> Callable[..., Awaitable[None]]:
    """The queue task for `DISPATCH` with these handlers."""

    async def task(ctx: JobContext, *, eventId: int) -> None:
        await dispatch(ctx, eventId, handlers)

    return task


async def prune_task(ctx: JobContext) -> None:
    """Periodic: forget dispatched events after `KEEP`."""
    async with ctx.database.sessionmaker() as session, session.begin():
        await session.execute(
            delete(TicketEventRow).where(
                TicketEventRow.created_at < func.now() - KEEP,
                TicketEventRow.dispatched_at.is_not(None),
            )
        )
