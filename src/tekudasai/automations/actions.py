"""What an automation's actions do, each through the service that makes the same change for a
person (so it is audited, emits its events and runs the reactors again), inside the caller's
`audit.as_automation`.

An action that cannot run is skipped, never an error of the change that fired it: a reference
deleted since the rule was stored (team, user, canned response, webhook), a user no longer
staff, an invalid status transition, a ticket without a team for a team strategy. A skip is a
log line and an internal audit row on the ticket that names the automation.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.dependencies import STAFF_ROLES
from tekudasai.accounts.models import User
from tekudasai.accounts.service import is_banned, stored_email
from tekudasai.canned import service as canned_service
from tekudasai.canned.models import CannedResponse
from tekudasai.config import Settings, get_settings
from tekudasai.core.crypto import DecryptionError, PiiCipher
from tekudasai.core.errors import AppError
from tekudasai.core.mail import mail_domain
from tekudasai.core.schemas import iso
from tekudasai.jobs.mail import OutgoingMail, enqueue_mails
from tekudasai.jobs.queue import enqueue
from tekudasai.jobs.worker import JobContext
from tekudasai.notifications import compose
from tekudasai.notifications.kinds import LABELS, Kind
from tekudasai.notifications.models import Notification
from tekudasai.notifications.service import load_preferences
from tekudasai.notifications.unsubscribe import make_token
from tekudasai.tickets import audit, conversation
from tekudasai.tickets import service as tickets
from tekudasai.tickets.models import LogAction, Ticket, TicketStatus
from tekudasai.webhooks import service as webhooks
from tekudasai.webhooks.models import Webhook

log = logging.getLogger("tekudasai.automations")

NOTIFY_MAIL = "automations.notify_mail"
# An automation's notice has no kind of its own in the preferences (yet): it is about a ticket
# an admin's rule points the agent to, which the "a ticket is assigned to me" switch is closest
# to, for the feed and for the mail.
NOTIFY_KIND = Kind.ASSIGNED
ACTIVE = (TicketStatus.OPEN.value, TicketStatus.IN_PROGRESS.value, TicketStatus.PENDING.value)


class Skipped(Exception):
    """The action cannot run now; the reason says why (logged and audited)."""


_cipher_in_use: PiiCipher | None = None


def configure(settings: Settings) -> None:
    """The process's settings (tasks.install_reactors): whose secret decrypts names and
    e-mail addresses. A process that never calls it uses the environment's settings."""
    global _cipher_in_use
    _cipher_in_use = PiiCipher(settings.master_secret())


def cipher() -> PiiCipher:
    global _cipher_in_use
    if _cipher_in_use is None:
        _cipher_in_use = PiiCipher(get_settings().master_secret())
    return _cipher_in_use


async def perform(
    db: AsyncSession, action: Mapping[str, Any], *, ticket_id: int, trigger: Mapping[str, Any]
) -> bool:
    """Run one action on the ticket; False when it was skipped."""
    kind = str(action.get("type"))
    handler = _HANDLERS.get(kind)
    try:
        if handler is None:
            raise Skipped(f"unknown action {kind!r}")
        await handler(db, action, ticket_id, trigger)
    except (Skipped, AppError, KeyError, TypeError, ValueError) as exc:
        # Domain refusals (raised before anything is written) and malformed stored actions
        # (rows edited past the API's checks): the transaction is intact, the change goes on.
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, KeyError | TypeError | ValueError):
            reason = f"malformed action: {type(exc).__name__}: {exc}"
        acting = audit.acting_automation()
        log.warning(
            "automation %s skipped %s on ticket %s: %s",
            acting.id if acting else "?",
            kind,
            ticket_id,
            reason,
        )
        audit.record(
            db,
            ticket_id=ticket_id,
            user_id=None,
            action_type=LogAction.UPDATE,
            action=f"Automation action skipped: {kind}",
            details={"skipped": {"type": kind, "reason": reason}},
            internal=True,
        )
        await db.flush()
        return False
    return True


async def _set_priority(
    db: AsyncSession, action: Mapping[str, Any], ticket_id: int, trigger: Mapping[str, Any]
) -> None:
    await tickets.update_ticket(db, ticket_id=ticket_id, actor_id=None, priority=action["priority"])


async def _set_status(
    db: AsyncSession, action: Mapping[str, Any], ticket_id: int, trigger: Mapping[str, Any]
) -> None:
    # Through the workflow: an invalid transition raises InvalidTransition, which skips.
    await tickets.update_ticket(db, ticket_id=ticket_id, actor_id=None, status=action["status"])


async def _set_team(
    db: AsyncSession, action: Mapping[str, Any], ticket_id: int, trigger: Mapping[str, Any]
) -> None:
    # A deleted team: check_team raises ValidationFailed ("No such team"), which skips.
    await tickets.update_ticket(db, ticket_id=ticket_id, actor_id=None, team_id=action["teamId"])


async def _assign(
    db: AsyncSession, action: Mapping[str, Any], ticket_id: int, trigger: Mapping[str, Any]
) -> None:
    user_id = action.get("userId")
    if user_id is None:
        user_id = await pick_member(db, ticket_id, str(action.get("strategy")))
    else:
        user = await db.get(User, user_id)
        if user is None or user.role not in STAFF_ROLES or is_banned(user):
            raise Skipped(f"user {user_id} is no longer an agent or admin")
    await tickets.assign(db, ticket_id=ticket_id, actor_id=None, assignee_id=user_id)


# The team's eligible members, locked in one fixed order (by user id: no deadlock between two
# creations), each with its open load. Waiting here serializes assignments within one team, so
# twenty tickets created at once each see the choices made before them.
_MEMBERS = text(
    "SELECT m.user_id, m.last_assigned_at FROM team_members m JOIN users u ON u.id = m.user_id"
    " WHERE m.team_id = :team_id AND u.role = ANY(:roles) AND NOT u.banned"
    " ORDER BY m.user_id FOR UPDATE OF m"
)
_LOAD = text(
    "SELECT assignee_id, count(*) AS n FROM tickets"
    " WHERE assignee_id = ANY(:ids) AND status = ANY(:active) AND id <> :ticket_id"
    " GROUP BY assignee_id"
)
# clock_timestamp, not now(): a transaction that waited for the lock must stamp a later time
# than the one it waited for, whatever time it started.
_STAMP = text(
    "UPDATE team_members SET last_assigned_at = clock_timestamp()"
    " WHERE team_id = :team_id AND user_id = :user_id"
)


async def pick_member(db: AsyncSession, ticket_id: int, strategy: str) -> str:
    """The member of the ticket's team who gets it: round_robin, the one assigned longest ago
    (never first); least_open, the one with fewest open/in_progress/pending tickets (ties: the
    one assigned longest ago). Stamps their last_assigned_at."""
    team_id = await db.scalar(select(Ticket.team_id).where(Ticket.id == ticket_id))
    if team_id is None:
        raise Skipped(f"{strategy}: the ticket has no team")
    members = (await db.execute(_MEMBERS, {"team_id": team_id, "roles": sorted(STAFF_ROLES)})).all()
    if not members:
        raise Skipped(f"{strategy}: the team has no agents")
    never = datetime.min.replace(tzinfo=UTC)

    def since(row: Any) -> tuple[datetime, str]:
        return (row.last_assigned_at or never, row.user_id)

    if strategy == "least_open":
        ids = [row.user_id for row in members]
        loads = {
            row.assignee_id: int(row.n)
            for row in await db.execute(
                _LOAD, {"ids": ids, "active": list(ACTIVE), "ticket_id": ticket_id}
            )
        }
        chosen = min(members, key=lambda row: (loads.get(row.user_id, 0), *since(row)))
    elif strategy == "round_robin":
        chosen = min(members, key=since)
    else:
        raise Skipped(f"unknown strategy {strategy!r}")
    await db.execute(_STAMP, {"team_id": team_id, "user_id": chosen.user_id})
    return str(chosen.user_id)


async def _add_tags(
    db: AsyncSession, action: Mapping[str, Any], ticket_id: int, trigger: Mapping[str, Any]
) -> None:
    ticket = await tickets.lock_ticket(db, ticket_id=ticket_id)
    tags = list(dict.fromkeys([*ticket.tags, *action["tags"]]))
    if tags != list(ticket.tags):
        await tickets.update_ticket(db, ticket_id=ticket_id, actor_id=None, tags=tags)


async def _remove_tags(
    db: AsyncSession, action: Mapping[str, Any], ticket_id: int, trigger: Mapping[str, Any]
) -> None:
    ticket = await tickets.lock_ticket(db, ticket_id=ticket_id)
    gone = {tickets.normal_tag(t) for t in action["tags"]}
    tags = [t for t in ticket.tags if t not in gone]
    if tags != list(ticket.tags):
        await tickets.update_ticket(db, ticket_id=ticket_id, actor_id=None, tags=tags)


async def _add_internal_note(
    db: AsyncSession, action: Mapping[str, Any], ticket_id: int, trigger: Mapping[str, Any]
) -> None:
    await conversation.add_comment(
        db, ticket_id=ticket_id, author=None, body=str(action["body"]), internal=True
    )


def _name(ciphertext: bytes | None) -> str:
    if ciphertext is None:
        return ""
    try:
        return cipher().decrypt(ciphertext, context="user.name")
    except DecryptionError:
        return ""


async def _reply(
    db: AsyncSession, action: Mapping[str, Any], ticket_id: int, trigger: Mapping[str, Any]
) -> None:
    canned = await db.get(CannedResponse, action["cannedResponseId"])
    if canned is None or not canned.shared:
        raise Skipped(f"canned response {action['cannedResponseId']} is gone (or not shared)")
    ticket = await tickets.lock_ticket(db, ticket_id=ticket_id)
    people = [i for i in (ticket.reporter_id, ticket.assignee_id) if i]
    rows = await db.execute(select(User.id, User.name_ciphertext).where(User.id.in_(people)))
    names = {row.id: row.name_ciphertext for row in rows}
    body = canned_service.fill(
        canned.body,
        {
            "ticket.id": str(ticket.id),
            "ticket.summary": ticket.summary,
            "reporter.name": _name(names.get(ticket.reporter_id)),
            "agent.name": _name(names.get(ticket.assignee_id)) if ticket.assignee_id else "",
        },
    )
    # A public reply without an author: the automation (conversation.add_comment allows it
    # inside audit.as_automation).
    await conversation.add_comment(db, ticket_id=ticket_id, author=None, body=body)


async def _notify(
    db: AsyncSession, action: Mapping[str, Any], ticket_id: int, trigger: Mapping[str, Any]
) -> None:
    wanted = list(action["userIds"])
    users = list(await db.scalars(select(User).where(User.id.in_(wanted))))
    told = sorted(u.id for u in users if u.role in STAFF_ROLES and not is_banned(u))
    if not told:
        raise Skipped("none of the users to notify is an agent or admin any more")
    summary = await db.scalar(select(Ticket.summary).where(Ticket.id == ticket_id))
    acting = audit.acting_automation()
    name = acting.name if acting else "automation"
    short = " ".join(str(summary).split())[:200]
    line = f"Automation “{name}” points you to #{ticket_id}: {short}"
    await db.execute(
        insert(cast(Table, Notification.__table__)),
        [
            {
                "user_id": user_id,
                "ticket_id": ticket_id,
                "event_id": None,
                "kind": NOTIFY_KIND.value,
                "text": line,
            }
            for user_id in told
        ],
    )
    # The mails need the settings (links, unsubscribe tokens) and may be many: a job, which
    # exists exactly when this change commits.
    await enqueue(
        db,
        NOTIFY_MAIL,
        {"ticketId": ticket_id, "userIds": told, "automation": name},
    )
    if len(told) < len(wanted):
        log.warning(
            "automation %s: notify skipped users no longer staff: %s",
            acting.id if acting else "?",
            sorted(set(wanted) - set(told)),
        )


async def _webhook(
    db: AsyncSession, action: Mapping[str, Any], ticket_id: int, trigger: Mapping[str, Any]
) -> None:
    hook = await db.get(Webhook, action["webhookId"])
    if hook is None:
        raise Skipped(f"webhook {action['webhookId']} is gone")
    if not hook.enabled:
        raise Skipped(f"webhook {hook.id} is disabled")
    ticket = (
        await db.execute(
            select(
                Ticket.id,
                Ticket.summary,
                Ticket.status,
                Ticket.priority,
                Ticket.team_id,
                Ticket.tags,
                Ticket.form_id,
                Ticket.reporter_id,
                Ticket.assignee_id,
                Ticket.created_at,
                Ticket.updated_at,
            ).where(Ticket.id == ticket_id)
        )
    ).one()
    acting = audit.acting_automation()
    event_type = str(trigger.get("type") or trigger.get("event") or "ticket.updated")
    data = {
        "ticketId": ticket_id,
        "automation": {"id": acting.id, "name": acting.name} if acting else None,
        "trigger": trigger.get("event"),
        "ticket": {
            "id": ticket.id,
            "summary": ticket.summary,
            "status": ticket.status,
            "priority": ticket.priority,
            "teamId": ticket.team_id,
            "tags": list(ticket.tags),
            "formId": ticket.form_id,
            "reporterId": ticket.reporter_id,
            "assigneeId": ticket.assignee_id,
            "createdAt": iso(ticket.created_at),
            "updatedAt": iso(ticket.updated_at),
        },
    }
    await webhooks._add_deliveries(  # the webhook domain's one way to queue a delivery
        db,
        [hook.id],
        event_type=event_type,
        body=webhooks._body(event_type, datetime.now(UTC), data),
        ticket_id=ticket_id,
    )


_HANDLERS = {
    "set_priority": _set_priority,
    "set_status": _set_status,
    "set_team": _set_team,
    "assign": _assign,
    "add_tags": _add_tags,
    "remove_tags": _remove_tags,
    "add_internal_note": _add_internal_note,
    "reply": _reply,
    "notify": _notify,
    "webhook": _webhook,
}


async def notify_mail_task(
    ctx: JobContext, *, ticketId: int, userIds: list[str], automation: str
) -> None:
    """The mails of a `notify` action: to each user whose preferences allow NOTIFY_KIND, built
    with the notifications domain's subject, links, headers and unsubscribe tokens."""
    settings = ctx.settings
    async with ctx.database.sessionmaker() as session, session.begin():
        summary = await session.scalar(select(Ticket.summary).where(Ticket.id == ticketId))
        if summary is None:
            return  # the ticket is gone
        users = list(await session.scalars(select(User).where(User.id.in_(userIds))))
        users = [u for u in users if u.role in STAFF_ROLES and not is_banned(u)]
        preferences = await load_preferences(session, (u.id for u in users))
        secret = settings.master_secret()
        mail_cipher = PiiCipher(secret)
        domain = mail_domain(settings)
        root = f"<ticket-{ticketId}@{domain}>"
        mails: list[OutgoingMail] = []
        for user in users:
            if not preferences[user.id][NOTIFY_KIND]:
                continue
            try:
                address = stored_email(user, mail_cipher)
            except DecryptionError:
                log.error("automation mail skipped: cannot read the address of user %s", user.id)
                continue
            token = make_token(secret, user_id=user.id, kind=NOTIFY_KIND)
            link = compose.ticket_url(settings, ticketId, as_reporter=False)
            body = (
                f"The automation “{automation}” points you to ticket #{ticketId}:\n"
                f"{' '.join(summary.split())}\n\n{link}\n\n"
                "You get this because an admin's automation names you; switch off "
                f"“{LABELS[NOTIFY_KIND]}” to stop these mails: "
                f"{compose.unsubscribe_url(settings, token)}\n"
            )
            mails.append(
                OutgoingMail(
                    to=address,
                    subject=compose.subject_for(ticketId, summary),
                    body=body,
                    headers=compose.headers(
                        settings,
                        message_id=f"<tk-{ticketId}-auto-{secrets.token_hex(6)}@{domain}>",
                        in_reply_to=root,
                        references=[root],
                        unsubscribe=compose.unsubscribe_url(settings, token),
                    ),
                )
            )
        await enqueue_mails(session, mail_cipher, mails)
