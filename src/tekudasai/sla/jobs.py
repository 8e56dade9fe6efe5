"""The SLA clock's timer: warning and breach events, each fired once per target.

`sla.check` (enqueued by the clock for the next warning or breach moment whenever the targets
change) locks the ticket row, works out from the current columns which moments have passed
and not fired, records them in `sla_fired`, updates the state, schedules the next moment and
emits the events — all in one transaction. A job for targets that have moved since finds
nothing due and does nothing (the job of the new targets exists: it was enqueued with them).
Two jobs for one moment (two workers, or the sweep) serialise on the row lock; the second
finds the entry in `sla_fired` and fires nothing.

`sla.sweep` (periodic, every minute) runs the same check for tickets whose nearest target is
overdue without its breach recorded (found through the (sla_due_at, id) index), and for
tickets whose check job failed for good: the moments a lost job would have fired.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.jobs.worker import JobContext
from tekudasai.sla import clock as sla_clock
from tekudasai.tickets import events
from tekudasai.tickets.events import EventType
from tekudasai.tickets.models import Ticket

log = logging.getLogger("tekudasai.sla")

CHECK = sla_clock.CHECK
SWEEP = "sla.sweep"
SWEEP_EVERY_S = 60.0
SWEEP_BATCH = 500
EVENT_TYPES = {"warning": EventType.SLA_WARNING, "breached": EventType.SLA_BREACHED}


async def check(db: AsyncSession, ticket_id: int) -> list[tuple[str, str]]:
    """Fire what is due on one ticket, in the caller's transaction; returns what fired as
    (target, "warning"|"breached") pairs."""
    row = (
        await db.execute(
            select(Ticket, func.now())
            .where(Ticket.id == ticket_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        return []
    ticket, now = row
    if ticket.sla_policy_id is None:
        return []
    for _attempt in range(3):
        cached = await sla_clock.policies(db)
        policy = cached.get(ticket.sla_policy_id)
        if policy is None:
            if await sla_clock.fingerprint_holds(db, cached):
                return []  # deleted meanwhile (the column follows on commit)
            sla_clock.forget_policies()
            continue
        clock = sla_clock.Clock.of(ticket)
        due = [(when, target, kind) for when, target, kind in clock.moments(policy) if when <= now]
        if not due:
            return []
        fired = []
        dues: dict[str, datetime | None] = {}
        for _when, target, kind in due:
            clock.fired.append(f"{target}.{kind}")
            fired.append((target, kind))
            dues[target] = clock.due(target)
        if not await sla_clock._save(db, ticket_id, clock, cached, policy):
            sla_clock.forget_policies()
            continue
        # Recorded first, then told: what reacts to the events (automations) sees the clock
        # as it now is, and whatever it changes goes through the clock again.
        for target, kind in fired:
            due_at = dues[target]
            await events.emit(
                db,
                type=EVENT_TYPES[kind],
                ticket_id=ticket_id,
                actor_id=None,
                data={"target": target, "dueAt": sla_clock.iso(due_at) if due_at else None},
            )
        return fired
    return []


async def check_task(ctx: JobContext, *, ticketId: int) -> None:
    async with ctx.database.sessionmaker() as session, session.begin():
        await check(session, ticketId)


_OVERDUE = text(
    """
    SELECT id FROM tickets
    WHERE sla_due_at IS NOT NULL AND sla_due_at <= now()
      AND NOT ((CASE WHEN sla_due_at = sla_first_response_due_at
                     THEN 'firstResponse.breached' ELSE 'resolution.breached' END)
               = ANY(sla_fired))
    ORDER BY sla_due_at, id
    LIMIT :limit
    """
)
_FAILED = text(
    """
    SELECT DISTINCT (args->>'ticketId')::int AS id FROM jobs
    WHERE name = :name AND status = 'failed' AND finished_at > now() - interval '1 hour'
    LIMIT :limit
    """
)


async def sweep_task(ctx: JobContext) -> None:
    """Periodic: check the tickets a lost timer job would have seen to."""
    async with ctx.database.sessionmaker() as session:
        overdue = list(await session.scalars(_OVERDUE, {"limit": SWEEP_BATCH}))
        failed = list(await session.scalars(_FAILED, {"name": CHECK, "limit": SWEEP_BATCH}))
    for ticket_id in dict.fromkeys([*overdue, *failed]):
        # One transaction per ticket: one ticket's trouble does not hold up the others.
        try:
            async with ctx.database.sessionmaker() as session, session.begin():
                fired = await check(session, ticket_id)
            if fired:
                log.warning(
                    "SLA sweep fired %s for ticket %d (its timer was lost)", fired, ticket_id
                )
        except Exception:
            log.exception("SLA sweep: checking ticket %d failed", ticket_id)
