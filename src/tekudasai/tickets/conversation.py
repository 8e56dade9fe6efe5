"""The conversation on a ticket: public replies and internal notes, each audited."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.dependencies import STAFF_ROLES
from tekudasai.accounts.models import User
from tekudasai.accounts.signed_in import AnyUser
from tekudasai.core.errors import ValidationFailed
from tekudasai.tickets import audit, events, workflow
from tekudasai.tickets.models import Channel, LogAction, TicketComment
from tekudasai.tickets.service import lock_ticket, mark_resolution

MAX_BODY = 20_000


@dataclass(frozen=True)
class CommentRow:
    comment: TicketComment
    author: AnyUser | None


def clean_body(body: str) -> str:
    if not body.strip():
        raise ValidationFailed(
            "body: A comment needs some text.",
            errors=[{"field": "body", "message": "Comment is empty"}],
        )
    if len(body) > MAX_BODY:
        raise ValidationFailed(
            f"body: At most {MAX_BODY} characters.",
            errors=[{"field": "body", "message": f"At most {MAX_BODY} characters"}],
        )
    return body.strip()


async def list_comments(
    db: AsyncSession, *, ticket_id: int, include_internal: bool
) -> list[CommentRow]:
    """Oldest first, with each author; the reporter's view has no internal notes."""
    query = (
        select(TicketComment, User)
        .outerjoin(User, User.id == TicketComment.author_id)
        .where(TicketComment.ticket_id == ticket_id)
        .order_by(TicketComment.id)
    )
    if not include_internal:
        query = query.where(TicketComment.internal.is_(False))
    return [CommentRow(comment=c, author=u) for c, u in (await db.execute(query)).all()]


async def add_comment(
    db: AsyncSession,
    *,
    ticket_id: int,
    author: AnyUser | None,
    body: str,
    internal: bool = False,
    as_reporter: bool = False,
    channel: Channel = Channel.WEB,
) -> CommentRow:
    """Add a reply (or, for agents, an internal note); a reporter's reply reopens a resolved
    ticket. The ticket is locked so the status it reads is the one it changes.

    `author` None: an internal note nobody signed in wrote (mail from an unknown sender), or
    anything an automation writes (inside `audit.as_automation`, which the row names)."""
    body = clean_body(body)
    automated = audit.acting_automation() is not None
    if author is None and (as_reporter or not (internal or automated)):
        raise ValueError("a comment without an author must be an internal note")
    author_id = author.id if author is not None else None
    ticket = await lock_ticket(
        db, ticket_id=ticket_id, reporter_id=author_id if as_reporter else None
    )
    comment = TicketComment(
        ticket_id=ticket.id,
        author_id=author_id,
        body=body,
        internal=internal,
        channel=Channel(channel).value,
    )
    db.add(comment)
    await db.flush()
    if (
        not internal
        and not as_reporter
        and author is not None
        and author.role in STAFF_ROLES
        and author_id != ticket.reporter_id
        and ticket.first_responded_at is None
    ):
        # The first public reply by support, at the reply's own time (the database's now(),
        # back from the INSERT); written by this function's closing flush.
        ticket.first_responded_at = comment.created_at
    audit.record(
        db,
        ticket_id=ticket.id,
        user_id=author_id,
        action_type=LogAction.COMMENT,
        action="Internal note added" if internal else "Comment added",
        details={"commentId": comment.id},
        internal=internal,
    )
    await events.emit(
        db,
        type=events.EventType.COMMENT_CREATED,
        ticket_id=ticket.id,
        actor_id=author_id,
        data={"commentId": comment.id, "byReporter": as_reporter, "channel": comment.channel},
        internal=internal,
    )
    if as_reporter:
        assert author_id is not None
        reopened = workflow.after_customer_reply(ticket.status)
        if reopened:
            old = ticket.status
            ticket.status = reopened
            await mark_resolution(db, ticket, old, reopened)
            audit.record(
                db,
                ticket_id=ticket.id,
                user_id=author_id,
                action_type=LogAction.UPDATE,
                action=workflow.status_change_text(old, reopened),
                details={"status": {"from": old, "to": reopened}, "reason": "customer reply"},
            )
            await events.emit(
                db,
                type=events.EventType.STATUS_CHANGED,
                ticket_id=ticket.id,
                actor_id=author_id,
                data={"changes": {"status": {"from": old, "to": reopened}}},
            )
    await db.flush()
    return CommentRow(comment=comment, author=author)
