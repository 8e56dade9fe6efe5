"""The ticket-event handler (in `tasks.EVENT_HANDLERS`): feed rows and one mail job per
recipient whose preferences allow it, all in the dispatch transaction.

The dispatch runs once per event (tickets/events.py), so nobody is told twice; the mails are
jobs of their own, retried while SMTP is down, so none is lost.
"""

from __future__ import annotations

import functools
import logging
import secrets

from sqlalchemy import Integer, Text, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.service import stored_email
from tekudasai.accounts.signed_in import SignedInUser
from tekudasai.config import Settings
from tekudasai.core.crypto import DecryptionError, PiiCipher
from tekudasai.core.mail import mail_domain
from tekudasai.db.raw import RawStatement
from tekudasai.jobs.mail import MAIL_JOBS_SQL, OutgoingMail, mail_job_values
from tekudasai.jobs.worker import JobContext
from tekudasai.notifications import compose, recipients, service
from tekudasai.notifications.unsubscribe import make_token
from tekudasai.tickets.events import TicketEvent
from tekudasai.tickets.models import TicketMailMessage

log = logging.getLogger("tekudasai.notifications")
# How many earlier Message-IDs of the ticket each mail names in References (plus the root).
REFERENCES_KEPT = 10


# What the dispatch writes for an event that tells someone, in one statement straight to the
# driver (db/raw.py): the feed lines, the Message-IDs of its mails (and the thread's root: a
# reply whose client kept only References still finds its ticket) and the mails' jobs, with
# the NOTIFY that wakes the workers when there are any. Three statements had cost two more
# round trips per event; through the ORM each had cost more than the database's whole work.
_TELL = RawStatement(
    text(
        "WITH feeds AS ("
        " INSERT INTO notifications (user_id, ticket_id, event_id, kind, text)"
        " SELECT line.user_id, CAST(:ticket_id AS integer), CAST(:event_id AS bigint),"
        " line.kind, line.text"
        " FROM unnest(CAST(:user_ids AS text[]), CAST(:kinds AS text[]), CAST(:texts AS text[]))"
        " AS line(user_id, kind, text)"
        "), sent AS ("
        " INSERT INTO ticket_mail_messages (message_id, ticket_id, direction)"
        " SELECT sent.id, CAST(:ticket_id AS integer), 'out'"
        " FROM unnest(CAST(:message_ids AS text[])) AS sent(id)"
        " ON CONFLICT (message_id) DO NOTHING"
        f"), mails AS ({MAIL_JOBS_SQL})"
        " SELECT pg_notify(CAST(:mail_channel AS text), '')"
        " WHERE cardinality(CAST(:mail_args AS text[])) > 0"
    )
)
_EARLIER_MESSAGES = RawStatement(
    select(TicketMailMessage.message_id)
    .where(
        TicketMailMessage.ticket_id == bindparam("ticket_id", type_=Integer),
        TicketMailMessage.message_id != bindparam("root", type_=Text),
    )
    .order_by(TicketMailMessage.created_at.desc(), TicketMailMessage.message_id.desc())
    .limit(REFERENCES_KEPT)
)


@functools.lru_cache(maxsize=4)
def _cipher(secret: bytes) -> PiiCipher:
    return PiiCipher(secret)


def thread_root(ticket_id: int, domain: str) -> str:
    """The ticket's stable thread id: every mail about it names it in References."""
    return f"<ticket-{ticket_id}@{domain}>"


async def notify(session: AsyncSession, event: TicketEvent, ctx: JobContext) -> None:
    await notify_event(session, event, ctx.settings)


async def notify_event(session: AsyncSession, event: TicketEvent, settings: Settings) -> None:
    plan = await recipients.plan(session, event)
    if plan is None or not plan.recipients:
        return
    secret = settings.master_secret()
    cipher = _cipher(secret)
    mailed = [r for r in plan.recipients if r.by_mail]
    mails, message_ids = (
        await _mails(session, settings, secret, cipher, plan, mailed) if mailed else ([], [])
    )
    await _TELL.fetchrow(
        session,
        ticket_id=plan.ticket.id,
        event_id=event.id,
        user_ids=[r.user.id for r in plan.recipients],
        kinds=[r.kind.value for r in plan.recipients],
        texts=[compose.feed_text(plan, r.kind) for r in plan.recipients],
        message_ids=message_ids,
        **mail_job_values(cipher, mails),
    )


async def _mails(
    session: AsyncSession,
    settings: Settings,
    secret: bytes,
    cipher: PiiCipher,
    plan: recipients.Plan,
    mailed: list[recipients.Recipient],
) -> tuple[list[OutgoingMail], list[str]]:
    """The mails for those whose switch is on, and the Message-IDs to record: theirs and the
    thread's root."""
    domain = mail_domain(settings)
    root = thread_root(plan.ticket.id, domain)
    earlier = await _earlier_messages(session, plan.ticket.id, root)
    references = [root, *earlier]
    in_reply_to = earlier[-1] if earlier else root
    actor_name = _name(cipher, plan.actor)
    mails: list[OutgoingMail] = []
    message_ids = [root]
    for recipient in mailed:
        try:
            address = stored_email(recipient.user, cipher)
        except DecryptionError:
            # One unreadable address (a key that is gone) must not hold up everyone else's
            # mail, nor the other handlers of this event: skipped, and said so.
            log.error(
                "notification mail skipped: cannot read the address of user %s", recipient.user.id
            )
            continue
        message_id = f"<tk-{plan.ticket.id}-{plan.event.id}-{secrets.token_hex(6)}@{domain}>"
        token = make_token(secret, user_id=recipient.user.id, kind=recipient.kind)
        content = compose.compose(settings, plan, recipient, actor_name=actor_name, token=token)
        mails.append(
            OutgoingMail(
                to=address,
                subject=content.subject,
                body=content.text,
                html=content.html,
                headers=compose.headers(
                    settings,
                    message_id=message_id,
                    in_reply_to=in_reply_to,
                    references=references,
                    unsubscribe=compose.unsubscribe_url(settings, token),
                ),
            )
        )
        message_ids.append(message_id)
    return mails, message_ids


def _name(cipher: PiiCipher, user: SignedInUser | None) -> str:
    if user is None:
        return "Someone"
    try:
        return cipher.decrypt(user.name_ciphertext, context="user.name")
    except DecryptionError:
        return "Someone"


async def _earlier_messages(session: AsyncSession, ticket_id: int, root: str) -> list[str]:
    """The ticket's latest Message-IDs (sent and received), oldest first."""
    rows = await _EARLIER_MESSAGES.fetch(session, ticket_id=ticket_id, root=root)
    return [row["message_id"] for row in reversed(rows)]


PRUNE_EVERY_S = 24 * 3600.0


async def prune_task(ctx: JobContext) -> None:
    """Periodic: old lines leave the feed (service.KEEP_READ_DAYS / KEEP_UNREAD_DAYS)."""
    async with ctx.database.sessionmaker() as session, session.begin():
        removed = await service.prune_feed(session)
    if removed:
        log.info("pruned %d old notification(s)", removed)
