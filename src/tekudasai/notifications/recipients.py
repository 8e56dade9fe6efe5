"""Who is told about a ticket event (the contract's table), worked out in the dispatch
transaction.

Never the person who acted (the reporter's receipt for the ticket they filed is the one
exception: a receipt is its point). Kinds meant for agents go to staff only, so a customer never
hears of an internal note, even as a demoted assignee. Banned users hear nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, and_, bindparam, literal_column, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.models import Role, User
from tekudasai.accounts.service import is_banned
from tekudasai.accounts.signed_in import USER_COLUMNS, SignedInUser, signed_in_user
from tekudasai.db.raw import RawStatement
from tekudasai.notifications.kinds import Kind
from tekudasai.notifications.models import NotificationPreference
from tekudasai.notifications.service import PREFERENCE_COLUMNS, Preferences, joined_preferences
from tekudasai.tickets.events import EventType, TicketEvent
from tekudasai.tickets.models import Ticket, TicketComment, TicketStatus

STAFF = frozenset({Role.AGENT.value, Role.ADMIN.value})
# Status changes the reporter is told about.
TOLD_STATUSES = frozenset(
    {TicketStatus.PENDING.value, TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value}
)
AGENT_KINDS = frozenset(
    {Kind.CUSTOMER_REPLY, Kind.ASSIGNED, Kind.INTERNAL_NOTE, Kind.NEW_TICKET_FOR_AGENTS}
)

# Targets of a rule: the ticket's reporter, its assignee, the agents who opted in to new
# tickets, or the assignee when there is one and else those agents.
REPORTER, ASSIGNEE, OPTED_IN, ASSIGNEE_ELSE_OPTED_IN = "reporter", "assignee", "opted", "either"


@dataclass(frozen=True)
class Recipient:
    user: SignedInUser
    kind: Kind
    # Told as the ticket's reporter: the customer's view (link, and never internal text).
    as_reporter: bool
    # Their switch for this kind: whether it also comes by mail (the feed line always does).
    by_mail: bool = True

    @property
    def is_staff(self) -> bool:
        return self.user.role in STAFF


@dataclass(frozen=True)
class Plan:
    event: TicketEvent
    ticket: TicketBrief
    actor: SignedInUser | None
    # The comment of a comment event (None otherwise, or when it is gone).
    comment: CommentBrief | None
    recipients: list[Recipient]


def rules(event: TicketEvent, ticket: TicketBrief) -> list[tuple[str, Kind]]:
    """(target, kind) pairs for one event, before anyone is looked up."""
    data: dict[str, Any] = event.data
    changes: dict[str, Any] = data.get("changes") or {}
    if event.type is EventType.TICKET_CREATED:
        return [(REPORTER, Kind.TICKET_CREATED), (OPTED_IN, Kind.NEW_TICKET_FOR_AGENTS)]
    if event.type is EventType.COMMENT_CREATED:
        if event.internal:
            return [(ASSIGNEE, Kind.INTERNAL_NOTE)]
        if data.get("byReporter"):
            return [(ASSIGNEE_ELSE_OPTED_IN, Kind.CUSTOMER_REPLY)]
        return [(REPORTER, Kind.AGENT_REPLY)]
    if event.type is EventType.TICKET_UPDATED:
        # Only the customer's edit of the answers: an agent's edit tells nobody.
        return [(ASSIGNEE_ELSE_OPTED_IN, Kind.CUSTOMER_REPLY)] if data.get("byReporter") else []
    if event.type is EventType.STATUS_CHANGED:
        status = (changes.get("status") or {}).get("to")
        return [(REPORTER, Kind.STATUS_CHANGED)] if status in TOLD_STATUSES else []
    if event.type is EventType.ASSIGNED:
        new = (changes.get("assigneeId") or {}).get("to")
        return [(f"user:{new}", Kind.ASSIGNED)] if new else []
    return []


@dataclass(frozen=True, slots=True)
class TicketBrief:
    """What a notification needs of its ticket."""

    id: int
    reporter_id: str
    assignee_id: str | None
    summary: str


@dataclass(frozen=True, slots=True)
class CommentBrief:
    """What a notification needs of the comment it tells of."""

    body: str
    internal: bool


# The ticket and the comment an event names (looked for on that ticket only), in one
# statement straight to the driver (db/raw.py), as plain values: the dispatch asks for them
# for every event, and through the ORM that cost more than the rest of the plan.
_TICKET_AND_COMMENT = RawStatement(
    select(
        Ticket.id,
        Ticket.reporter_id,
        Ticket.assignee_id,
        Ticket.summary,
        TicketComment.id.label("comment_id"),
        TicketComment.body,
        TicketComment.internal,
    )
    .outerjoin(
        TicketComment,
        and_(
            TicketComment.id == bindparam("comment_id", type_=Integer),
            TicketComment.ticket_id == Ticket.id,
        ),
    )
    .where(Ticket.id == bindparam("ticket_id", type_=Integer))
)
# The people an event names, and with `opted_in` the staff who asked to hear of new tickets,
# in one statement straight to the driver (db/raw.py): as plain values (SignedInUser), since
# building ORM rows for them was a good part of every event's dispatch. `opted` tells the rows
# apart (one person may come as both). Two branches, not one OR: each keeps its own index path,
# and the second is cut off by its parameter unless the event needs it. Everyone's switches
# come along: a statement of their own had cost the dispatch a round trip per event.
_STAFF_SQL = ", ".join(f"'{role}'" for role in sorted(STAFF))
_PEOPLE = RawStatement(
    union_all(
        select(*USER_COLUMNS, literal_column("false").label("opted"), *PREFERENCE_COLUMNS)
        .outerjoin(NotificationPreference, NotificationPreference.user_id == User.id)
        .where(text("users.id = ANY(CAST(:ids AS text[]))")),
        select(*USER_COLUMNS, literal_column("true"), *PREFERENCE_COLUMNS)
        .join(NotificationPreference, NotificationPreference.user_id == User.id)
        .where(
            text(
                "CAST(:opted_in AS boolean) AND notification_preferences.new_ticket_for_agents"
                f" AND users.role IN ({_STAFF_SQL})"
            )
        ),
    ).order_by(literal_column("id"))
)


async def plan(db: AsyncSession, event: TicketEvent) -> Plan | None:
    """The recipients of `event`, or None when its ticket is gone."""
    comment_id = event.data.get("commentId")
    if event.type is not EventType.COMMENT_CREATED or not isinstance(comment_id, int):
        comment_id = None
    found = await _TICKET_AND_COMMENT.fetchrow(db, ticket_id=event.ticket_id, comment_id=comment_id)
    if found is None:
        return None
    ticket = TicketBrief(found["id"], found["reporter_id"], found["assignee_id"], found["summary"])
    comment = None
    if found["comment_id"] is not None:
        comment = CommentBrief(found["body"], found["internal"])
    wanted = rules(event, ticket)
    ids: set[str] = {ticket.reporter_id}
    if ticket.assignee_id:
        ids.add(ticket.assignee_id)
    if event.actor_id:
        ids.add(event.actor_id)
    ids.update(target[5:] for target, _ in wanted if target.startswith("user:"))
    needs_opted_in = any(
        t == OPTED_IN or (t == ASSIGNEE_ELSE_OPTED_IN and not ticket.assignee_id) for t, _ in wanted
    )
    users: dict[str, SignedInUser] = {}
    opted_in: list[SignedInUser] = []
    preferences: dict[str, Preferences] = {}
    for row in await _PEOPLE.fetch(db, ids=sorted(ids), opted_in=needs_opted_in):
        user = signed_in_user(row)
        if user.id in ids:
            users[user.id] = user
        if row["opted"]:
            opted_in.append(user)
        preferences[user.id] = joined_preferences(row)

    recipients: dict[str, Recipient] = {}
    for target, kind in wanted:
        for user in _targets(target, ticket, users, opted_in):
            receipt = kind is Kind.TICKET_CREATED and user.id == ticket.reporter_id
            if user.id == event.actor_id and not receipt:
                continue
            if kind in AGENT_KINDS and user.role not in STAFF:
                continue
            if is_banned(user) or user.id in recipients:
                continue
            recipients[user.id] = Recipient(
                user,
                kind,
                as_reporter=user.id == ticket.reporter_id,
                by_mail=preferences[user.id][kind],
            )
    actor = users.get(event.actor_id) if event.actor_id else None
    return Plan(event, ticket, actor, comment, list(recipients.values()))


def _targets(
    target: str, ticket: TicketBrief, users: dict[str, SignedInUser], opted: list[SignedInUser]
) -> list[SignedInUser]:
    def one(user_id: str | None) -> list[SignedInUser]:
        user = users.get(user_id) if user_id else None
        return [user] if user is not None else []

    if target == REPORTER:
        return one(ticket.reporter_id)
    if target == ASSIGNEE:
        return one(ticket.assignee_id)
    if target == OPTED_IN:
        return opted
    if target == ASSIGNEE_ELSE_OPTED_IN:
        return one(ticket.assignee_id) if ticket.assignee_id else opted
    if target.startswith("user:"):
        return one(target[5:])
    return []
