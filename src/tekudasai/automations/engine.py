"""Running automations: the reactor (`tasks.REACTORS`) that fires the enabled rules of an event
inside the transaction of the change that caused it.

Events. Ticket events map to the contract's automation events: ticket.created; ticket.updated
(from ticket.updated, ticket.status_changed and ticket.assigned); comment.created; sla.warning and
sla.breached (emitted by the SLA clock's timer job, so they run in that job's transaction).
ticket.idle is the idle job's (automations/idle.py).

Cost. Ticket creation is the hottest write, so the common case (rules exist, none matches)
costs no query of its own beyond reading the ticket (none when the session already holds it):
- the enabled rules are cached per process, grouped by event, in `position` order;
- they are matched in Python (rules.matches) against the ticket's facts; the reporter's e-mail
  is read and decrypted only when a rule whose other conditions hold asks for it;
- the database is touched again only when an action runs.

Invalidation. The automation service bumps `automation_generation.value` in the transaction of
every change to a rule (so the bump commits exactly when the change does) and drops this
process's cache after its commit. Other processes (workers, nodes) read the generation at most
once every `RECHECK_S` seconds (one primary-key read, in the transaction of the event that
needs the rules) and reload when it moved: another process sees a change within RECHECK_S.
The generation is read before the rules, so a reload racing a change can only end up with
newer rules than its generation says (and reloads once more), never older ones.

Loops. Actions run inside `audit.as_automation`, whose `chain` lists every automation whose
change led here: an automation never fires on a change made inside its own chain, and chains
stop at MAX_CHAIN automations deep (A sets what B reacts to, B what A would: A does not run
again).

Failures. An action whose reference is gone (team, user, canned response, webhook deleted
since), an invalid status transition, or any domain error of the change it tries is skipped:
logged, and recorded as an internal audit row on the ticket naming the automation. The change
that fired the automation always goes through.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, bindparam, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.util import identity_key

from tekudasai.accounts.models import User
from tekudasai.automations import actions, rules
from tekudasai.automations.models import Automation
from tekudasai.core.crypto import DecryptionError
from tekudasai.db.raw import RawStatement
from tekudasai.tickets import audit, events
from tekudasai.tickets.models import Ticket

log = logging.getLogger("tekudasai.automations")

EVENT_MAP: dict[events.EventType, str] = {
    events.EventType.TICKET_CREATED: "ticket.created",
    events.EventType.TICKET_UPDATED: "ticket.updated",
    events.EventType.STATUS_CHANGED: "ticket.updated",
    events.EventType.ASSIGNED: "ticket.updated",
    events.EventType.COMMENT_CREATED: "comment.created",
    events.EventType.SLA_WARNING: "sla.warning",
    events.EventType.SLA_BREACHED: "sla.breached",
}
MAX_CHAIN = 5
RECHECK_S = 1.0
EMAIL = "reporter.email"


@dataclass(frozen=True)
class Rule:
    """An enabled automation as the cache holds it."""

    id: str
    name: str
    event: str
    idle_hours: int | None
    conditions: tuple[dict[str, Any], ...]
    actions: tuple[dict[str, Any], ...]
    # The conditions that need no decryption; and whether any asks for the reporter's e-mail.
    plain: tuple[dict[str, Any], ...]
    needs_email: bool

    @classmethod
    def of(cls, row: Automation) -> Rule:
        conditions = tuple(row.conditions or ())
        plain = tuple(c for c in conditions if c.get("field") != EMAIL)
        return cls(
            id=row.id,
            name=row.name,
            event=row.event,
            idle_hours=row.idle_hours,
            conditions=conditions,
            actions=tuple(row.actions or ()),
            plain=plain,
            needs_email=len(plain) != len(conditions),
        )


class _Cache:
    def __init__(self) -> None:
        self.by_event: dict[str, tuple[Rule, ...]] | None = None
        self.generation: int | None = None
        self.checked_at = 0.0
        # The engine the rules were read through: another database (tests make one each, a
        # restored backup is another) is never served this one's rules.
        self.source: object | None = None


_cache = _Cache()
_GENERATION = text("SELECT value FROM automation_generation WHERE id = 1")


def invalidate() -> None:
    """Forget the cached rules of this process (the service calls it after a change commits)."""
    _cache.by_event = None
    _cache.generation = None
    _cache.checked_at = 0.0
    _cache.source = None


async def rules_for(db: AsyncSession, event: str) -> tuple[Rule, ...]:
    """The enabled rules of `event` in order, from this process's cache."""
    now = time.monotonic()
    source = db.bind
    fresh = _cache.source is source and now - _cache.checked_at < RECHECK_S
    if _cache.by_event is not None and fresh:
        return _cache.by_event.get(event, ())
    generation = int(await db.scalar(_GENERATION) or 0)
    if _cache.by_event is None or generation != _cache.generation or _cache.source is not source:
        rows = await db.scalars(
            select(Automation)
            .where(Automation.enabled.is_(True))
            .order_by(Automation.position, Automation.created_at, Automation.id)
        )
        grouped: dict[str, list[Rule]] = {}
        for row in rows:
            grouped.setdefault(row.event, []).append(Rule.of(row))
        _cache.by_event = {key: tuple(value) for key, value in grouped.items()}
        _cache.generation = generation
        _cache.source = source
    _cache.checked_at = now
    return _cache.by_event.get(event, ())


# -- facts -------------------------------------------------------------------------------------


def facts_of(ticket: Ticket | Mapping[str, Any]) -> dict[str, Any]:
    """What conditions look at (rules.FIELDS; answers by element name), from the row (an ORM
    ticket or a raw record of _FACTS)."""
    if isinstance(ticket, Ticket):
        status, priority, team_id, form_id = (
            ticket.status,
            ticket.priority,
            ticket.team_id,
            ticket.form_id,
        )
        tags, summary, channel, answers = (
            ticket.tags,
            ticket.summary,
            ticket.channel,
            ticket.form_response,
        )
        reporter_id = ticket.reporter_id
    else:
        status, priority, team_id, form_id = (
            ticket["status"],
            ticket["priority"],
            ticket["team_id"],
            ticket["form_id"],
        )
        tags, summary, channel = ticket["tags"], ticket["summary"], ticket["channel"]
        answers = ticket["form_response"]
        if isinstance(answers, str):
            answers = json.loads(answers)
        reporter_id = ticket["reporter_id"]
    return {
        "status": status,
        "priority": priority,
        "teamId": team_id,
        "formId": form_id,
        "tags": list(tags or ()),
        "summary": summary,
        "channel": channel,
        "answers": answers or {},
        REPORTER: reporter_id,
    }


REPORTER = "_reporterId"  # not a condition field: whose e-mail reporter.email is


@functools.cache
def _facts_statement() -> RawStatement:
    # Straight to the driver (db/raw.py): read on every event that has rules, usually to
    # find that none matches.
    return RawStatement(
        select(
            Ticket.status,
            Ticket.priority,
            Ticket.team_id,
            Ticket.form_id,
            Ticket.tags,
            Ticket.summary,
            Ticket.channel,
            Ticket.form_response,
            Ticket.reporter_id,
        ).where(Ticket.id == bindparam("ticket_id", type_=Integer))
    )


async def load_facts(db: AsyncSession, ticket_id: int) -> dict[str, Any] | None:
    """The ticket's facts: from the session when it holds the row (every change locked it
    there, and its changes are the newest), else one short read; None when it is gone."""
    ticket = db.sync_session.identity_map.get(identity_key(Ticket, ticket_id))
    if isinstance(ticket, Ticket) and not inspect(ticket).expired_attributes & _FACT_ATTRIBUTES:
        return facts_of(ticket)
    row = await _facts_statement().fetchrow(db, ticket_id=ticket_id)
    return facts_of(row) if row is not None else None


_FACT_ATTRIBUTES = frozenset(
    {"status", "priority", "team_id", "form_id", "tags", "summary", "channel", "form_response"}
)


async def _reporter_email(db: AsyncSession, reporter_id: str) -> str | None:
    ciphertext = await db.scalar(select(User.email_ciphertext).where(User.id == reporter_id))
    if ciphertext is None:
        return None
    try:
        return actions.cipher().decrypt(ciphertext, context="user.email")
    except DecryptionError:
        log.error("automations: cannot read the e-mail of user %s", reporter_id)
        return None


async def holds(db: AsyncSession, rule: Rule, facts: dict[str, Any]) -> bool:
    """The rule's conditions hold for the ticket; the e-mail only read when it decides. A
    malformed stored condition (a row edited past the API's checks) never holds."""
    try:
        if not rules.matches(rule.plain, facts):
            return False
        if not rule.needs_email:
            return True
        if EMAIL not in facts:
            facts[EMAIL] = await _reporter_email(db, facts[REPORTER])
        return rules.matches(rule.conditions, facts)
    except (KeyError, TypeError, ValueError, AttributeError):
        log.error("automation %s has a malformed condition: not run", rule.id)
        return False


# -- running -----------------------------------------------------------------------------------


async def run_rule(
    db: AsyncSession, rule: Rule, ticket_id: int, trigger: Mapping[str, Any]
) -> None:
    """Every action of the rule, in order, as the automation; skipped ones are logged."""
    # The change that fired it may not be written yet (sessions do not autoflush) and the
    # actions re-read the ticket locked (populate_existing): write it first, or they would
    # work on, and put back, the row as it was before the change.
    await db.flush()
    with audit.as_automation(rule.id, rule.name):
        for action in rule.actions:
            await actions.perform(db, action, ticket_id=ticket_id, trigger=trigger)


async def fire(
    db: AsyncSession,
    event: str,
    ticket_id: int,
    trigger: Mapping[str, Any],
    candidates: tuple[Rule, ...] | None = None,
) -> int:
    """Run the matching rules of `event` on a ticket (inside any acting chain); how many ran."""
    if candidates is None:
        candidates = await rules_for(db, event)
    if not candidates:
        return 0
    acting = audit.acting_automation()
    chain = acting.chain if acting is not None else ()
    if len(chain) >= MAX_CHAIN:
        log.warning(
            "automations: chain %s is %d deep, not going further on ticket %s",
            " > ".join(chain),
            len(chain),
            ticket_id,
        )
        return 0
    candidates = tuple(rule for rule in candidates if rule.id not in chain)
    if not candidates:
        return 0
    facts = await load_facts(db, ticket_id)
    ran = 0
    for rule in candidates:
        if facts is None:
            break
        if not await holds(db, rule, facts):
            continue
        await run_rule(db, rule, ticket_id, trigger)
        ran += 1
        # The rules after it see the ticket as the actions left it.
        email = facts.get(EMAIL)
        facts = await load_facts(db, ticket_id)
        if facts is not None and email is not None:
            facts[EMAIL] = email
    return ran


async def react(db: AsyncSession, change: events.Change) -> None:
    """The reactor: the change's automation event, its enabled rules, those that match."""
    event = EVENT_MAP.get(change.type)
    if event is None:
        return
    candidates = await rules_for(db, event)
    if not candidates:
        return
    trigger = {"event": event, "type": change.type.value, "data": change.data}
    await fire(db, event, change.ticket_id, trigger, candidates)
