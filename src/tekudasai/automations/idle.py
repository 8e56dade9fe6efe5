"""`ticket.idle`: a periodic job fires each enabled idle automation once per idle period of a
ticket (open, in_progress or pending, not updated for `idleHours`).

What ran is remembered in `automation_idle_runs` (automation, ticket, the ticket's updated_at):
a change to the ticket moves updated_at and so starts a new period; an idle run whose actions
change the ticket starts one too. Each ticket is handled in a transaction of its own, which
locks the ticket row (SKIP LOCKED: a ticket someone is changing waits for the next run) and
inserts the run row first: with several workers or nodes racing, the row's key lets exactly
one of them run the actions, the others insert nothing and move on.

Rules run in `position` order; one whose actions change the ticket ends that idle period, so
later rules wait for the next one (as they would for a change by a person).
"""

from __future__ import annotations

import logging

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.automations import engine
from tekudasai.automations.models import Automation
from tekudasai.config import Settings
from tekudasai.db.session import Database
from tekudasai.jobs.worker import JobContext
from tekudasai.tickets.models import Ticket

log = logging.getLogger("tekudasai.automations")

TASK = "automations.idle"
EVERY_S = 300.0
# Tickets per automation per run; the rest wait for the next run (oldest first).
BATCH = 500
ACTIVE = ("open", "in_progress", "pending")

_CANDIDATES = text(
    "SELECT t.id, t.updated_at FROM tickets t"
    " WHERE t.status IN ('open', 'in_progress', 'pending')"
    " AND t.updated_at <= now() - make_interval(hours => :hours)"
    " AND NOT EXISTS (SELECT 1 FROM automation_idle_runs r WHERE r.automation_id = :automation_id"
    " AND r.ticket_id = t.id AND r.ticket_updated_at = t.updated_at)"
    " ORDER BY t.updated_at LIMIT :limit"
)
_CLAIM = text(
    "INSERT INTO automation_idle_runs (automation_id, ticket_id, ticket_updated_at)"
    " VALUES (:automation_id, :ticket_id, :updated_at) ON CONFLICT DO NOTHING RETURNING 1"
)
# Runs of periods that are over (the ticket changed since) are of no use any more.
_PRUNE = text(
    "DELETE FROM automation_idle_runs r USING tickets t"
    " WHERE r.ticket_id = t.id AND r.ticket_updated_at < t.updated_at"
)


def every(_settings: Settings) -> float:
    return EVERY_S


async def _idle_rules(database: Database) -> list[engine.Rule]:
    async with database.sessionmaker() as session, session.begin():
        rows = await session.scalars(
            select(Automation)
            .where(Automation.enabled.is_(True), Automation.event == "ticket.idle")
            .order_by(Automation.position, Automation.created_at, Automation.id)
        )
        return [engine.Rule.of(row) for row in rows]


async def _one(
    session: AsyncSession, rule: engine.Rule, ticket_id: int, updated_at: object
) -> bool:
    """Claim and run one (rule, ticket, period) in the caller's transaction; False when another
    worker has it, or the ticket changed since it was listed."""
    ticket = await session.scalar(
        select(Ticket)
        .where(
            Ticket.id == ticket_id,
            Ticket.updated_at == updated_at,
            Ticket.status.in_(ACTIVE),
        )
        .with_for_update(skip_locked=True)
    )
    if ticket is None:
        return False
    params = {"automation_id": rule.id, "ticket_id": ticket_id, "updated_at": updated_at}
    if (await session.execute(_CLAIM, params)).first() is None:
        return False
    facts = engine.facts_of(ticket)
    if not await engine.holds(session, rule, facts):
        return False
    trigger = {
        "event": "ticket.idle",
        "type": "ticket.idle",
        "data": {"idleHours": rule.idle_hours},
    }
    await engine.run_rule(session, rule, ticket.id, trigger)
    return True


async def run_idle(database: Database) -> int:
    """One pass over every idle automation; how many (rule, ticket) runs it made."""
    ran = 0
    for rule in await _idle_rules(database):
        async with database.sessionmaker() as session, session.begin():
            listed = (
                await session.execute(
                    _CANDIDATES,
                    {"hours": rule.idle_hours, "automation_id": rule.id, "limit": BATCH},
                )
            ).all()
        for row in listed:
            try:
                async with database.sessionmaker() as session, session.begin():
                    ran += await _one(session, rule, row.id, row.updated_at)
            except Exception:
                # One ticket's failure (rolled back, so it is tried again next run) must not
                # hold up the others.
                log.exception("idle automation %s failed on ticket %s", rule.id, row.id)
    async with database.sessionmaker() as session, session.begin():
        await session.execute(_PRUNE)
    return ran


async def idle_task(ctx: JobContext) -> None:
    ran = await run_idle(ctx.database)
    if ran:
        log.info("idle automations ran %d time(s)", ran)
