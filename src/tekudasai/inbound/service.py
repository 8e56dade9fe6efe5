"""Deciding what one inbound message becomes, and storing it in the caller's transaction.

`process` claims the message's Message-ID first (INSERT … ON CONFLICT DO NOTHING in
`ticket_mail_messages`): a second delivery, a second poller or a second node waits on that row
and then finds it taken, so each message is handled at most once. Then: machine mail is
ignored (guards.py); a reply to a ticket (`[TK #N]` in the subject, else In-Reply-To/References
naming a Message-ID we sent or received for it) becomes a comment; anything else opens a ticket.
What a message refuses (attachments of the wrong type, a sender over the hourly cap …) is
logged with its reason; a new ticket's rows are made in a savepoint, so a refusal half-way
leaves nothing of it behind (files it already stored are deleted again).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts import service as accounts_service
from tekudasai.accounts.dependencies import STAFF_ROLES
from tekudasai.accounts.errors import UserAlreadyExists
from tekudasai.accounts.models import Role, User
from tekudasai.config import Settings
from tekudasai.core import mail as core_mail
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.errors import AppError, PayloadTooLarge
from tekudasai.db import ratelimit
from tekudasai.db.session import Database
from tekudasai.forms import engine as forms_engine
from tekudasai.forms.errors import FormNotFound
from tekudasai.forms.models import Form, FormVersion
from tekudasai.inbound import guards
from tekudasai.inbound.message import (
    MAX_MESSAGE_BYTES,
    Attachment,
    ParsedMail,
    Unparseable,
    clean_text,
    new_ticket_text,
    parse,
    reply_text,
)
from tekudasai.tickets import conversation
from tekudasai.tickets import service as tickets_service
from tekudasai.tickets.models import Channel, Ticket, TicketMailMessage
from tekudasai.uploads import service as uploads_service
from tekudasai.uploads.dependencies import storage_for
from tekudasai.uploads.errors import UnsupportedFileType
from tekudasai.uploads.models import TicketUpload, Upload
from tekudasai.uploads.storage import Storage

log = logging.getLogger("tekudasai.inbound")

BUILTIN_FORM_ID = "email"
BUILTIN_FORM_ELEMENTS: list[dict[str, Any]] = [
    {
        "id": "description",
        "type": "textarea",
        "name": "description",
        "label": "Message",
        "required": True,
    }
]
# Stored per message; beyond it attachments are listed as refused (500 would be a flood).
MAX_STORED_ATTACHMENTS = 20
MAX_LISTED = 50
RATE_NAME = "mail_new_tickets"
NO_SUBJECT = "(no subject)"
NO_TEXT = "(no text)"
_TAG = re.compile(r"\[TK\s*#(\d{1,9})\]", re.I)
_SPACE = re.compile(r"\s+")

Action = Literal["comment", "ticket", "ignored"]


@dataclass(frozen=True)
class Outcome:
    action: Action
    ticket_id: int | None = None
    reason: str | None = None
    comment_id: int | None = None

    def view(self) -> dict[str, Any]:
        """The contract's answer: {action, ticketId?, reason?}."""
        out: dict[str, Any] = {"action": self.action}
        if self.ticket_id is not None:
            out["ticketId"] = self.ticket_id
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    def line(self) -> str:
        """What `mail ingest` prints."""
        line: str = self.action
        if self.ticket_id is not None:
            line += f" #{self.ticket_id}"
        return f"{line}: {self.reason}" if self.reason else line


@dataclass
class Inbound:
    """What processing needs besides the session: shared by the three entry points."""

    database: Database
    settings: Settings
    cipher: PiiCipher
    storage: Storage
    own: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.own:
            self.own = guards.own_addresses(
                self.settings.mail_from or core_mail.sender_for(self.settings),
                getattr(self.settings, "support_address", None),
            )


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooLarge(Unparseable):
    """Larger than any message we take (`MAX_MESSAGE_BYTES`)."""


def inbound_for(database: Database, settings: Settings) -> Inbound:
    return Inbound(
        database=database,
        settings=settings,
        cipher=PiiCipher(settings.master_secret()),
        storage=storage_for(settings),
    )


def read(raw: bytes) -> ParsedMail:
    """Parse one raw message; Unparseable (or TooLarge) when it cannot be one."""
    try:
        if len(raw) > MAX_MESSAGE_BYTES:
            raise TooLarge(f"larger than the {MAX_MESSAGE_BYTES // (1024 * 1024)} MiB limit")
        return parse(raw, keep_attachments=MAX_STORED_ATTACHMENTS)
    except Unparseable as exc:
        log.info(
            "inbound mail refused (not a message: %s)",
            exc.reason,
            extra={"action": "refused", "reason": exc.reason, "bytes": len(raw)},
        )
        raise


async def ingest(inbound: Inbound, raw: bytes) -> Outcome:
    """Parse and process one message in a transaction of its own (CLI and IMAP poller)."""
    mail = read(raw)
    async with inbound.database.sessionmaker() as db, db.begin():
        return await process(db, inbound, mail)


# -- the one entry ----------------------------------------------------------------------------


async def process(db: AsyncSession, inbound: Inbound, mail: ParsedMail) -> Outcome:
    """Handle one parsed message in the caller's transaction; logs what it did and why."""
    if not await _claim(db, mail.message_id):
        outcome = Outcome("ignored", reason="already processed (same Message-ID)")
    elif reason := guards.loop_reason(mail, own_addresses=inbound.own):
        outcome = Outcome("ignored", reason=reason)
    else:
        ticket_id = await _thread(db, mail)
        if ticket_id is not None:
            outcome = await _comment(db, inbound, mail, ticket_id)
        else:
            outcome = await _new_ticket(db, inbound, mail)
        if outcome.ticket_id is not None:
            await db.execute(
                update(TicketMailMessage)
                .where(TicketMailMessage.message_id == mail.message_id)
                .values(ticket_id=outcome.ticket_id)
            )
    log.info(
        "inbound mail %s%s",
        outcome.action,
        f" ({outcome.reason})" if outcome.reason else "",
        extra={
            "message_id": mail.message_id[:200],
            "action": outcome.action,
            "reason": outcome.reason,
            "ticket_id": outcome.ticket_id,
        },
    )
    return outcome


async def _claim(db: AsyncSession, message_id: str) -> bool:
    """Take the Message-ID for this transaction; False when some other one already did."""
    claimed = await db.scalar(
        insert(TicketMailMessage)
        .values(message_id=message_id, ticket_id=None, direction="in")
        .on_conflict_do_nothing(index_elements=["message_id"])
        .returning(TicketMailMessage.message_id)
    )
    return claimed is not None


async def _thread(db: AsyncSession, mail: ParsedMail) -> int | None:
    """The ticket this message answers: `[TK #N]` in the subject, else a known Message-ID."""
    tag = _TAG.search(mail.subject)
    if tag is not None:
        found = await db.scalar(select(Ticket.id).where(Ticket.id == int(tag.group(1))))
        if found is not None:
            return found
    ids = mail.thread_ids
    if not ids:
        return None
    # Stored with or without the angle brackets (whichever the sender side chose).
    bare = [i.strip("<>") for i in ids]
    rows = (
        await db.execute(
            select(TicketMailMessage.message_id, TicketMailMessage.ticket_id).where(
                TicketMailMessage.message_id.in_([*ids, *bare]),
                TicketMailMessage.ticket_id.is_not(None),
            )
        )
    ).all()
    known = {row.message_id.strip("<>"): row.ticket_id for row in rows}
    for message_id in bare:
        if message_id in known:
            return int(known[message_id])
    return None


# -- a reply to a ticket ----------------------------------------------------------------------


async def _comment(db: AsyncSession, inbound: Inbound, mail: ParsedMail, ticket_id: int) -> Outcome:
    user = await accounts_service.find_by_email(db, inbound.cipher, mail.sender)
    if user is not None and accounts_service.is_banned(user):
        return Outcome("ignored", reason="the sender is banned")
    reporter_id = await db.scalar(select(Ticket.reporter_id).where(Ticket.id == ticket_id))
    trusted = user is not None and not guards.sender_unverified(mail)
    text = reply_text(mail.text)
    if trusted and user is not None and (user.id == reporter_id or user.role in STAFF_ROLES):
        return await _public_reply(
            db, inbound, mail, ticket_id, user, text, as_reporter=user.id == reporter_id
        )
    # Anyone else (a forged [TK #N] too): a note agents see, never a reply in someone's name.
    refused = [
        (a.filename, "not stored: the sender is not part of this ticket") for a in mail.attachments
    ]
    who = f"{mail.sender_name} <{mail.sender}>" if mail.sender_name else mail.sender
    body = (
        f"Mail from an unknown sender, {clean_text(who)} (not part of this ticket; "
        "not shown to the customer):\n\n" + (text or NO_TEXT)
    )
    row = await conversation.add_comment(
        db,
        ticket_id=ticket_id,
        author=None,
        body=_clip(body + _refused_text(refused), conversation.MAX_BODY),
        internal=True,
        channel=Channel.EMAIL,
    )
    return Outcome(
        "comment",
        ticket_id=ticket_id,
        comment_id=row.comment.id,
        reason="unknown sender: internal note",
    )


async def _public_reply(
    db: AsyncSession,
    inbound: Inbound,
    mail: ParsedMail,
    ticket_id: int,
    user: User,
    text: str,
    *,
    as_reporter: bool,
) -> Outcome:
    saved: list[str] = []
    try:
        stored, refused = await _store_attachments(db, inbound, mail.attachments, user.id, saved)
        if not text and not stored:
            await _forget(inbound, saved)
            return Outcome("ignored", ticket_id=ticket_id, reason="empty message")
        body = _clip(text or NO_TEXT, conversation.MAX_BODY - _listing_room(stored))
        row = await conversation.add_comment(
            db,
            ticket_id=ticket_id,
            author=user,
            body=body + _stored_text(stored),
            as_reporter=as_reporter,
            channel=Channel.EMAIL,
        )
        await _link(db, ticket_id, [v["filename"] for v in stored])
        if refused:
            await _refusal_note(db, ticket_id, refused)
    except BaseException:
        await _forget(inbound, saved)
        raise
    return Outcome("comment", ticket_id=ticket_id, comment_id=row.comment.id)


# -- a new ticket -----------------------------------------------------------------------------


async def _new_ticket(db: AsyncSession, inbound: Inbound, mail: ParsedMail) -> Outcome:
    settings = inbound.settings
    if guards.sender_unverified(mail):
        return Outcome("ignored", reason="the From address failed DMARC at the receiving server")
    user = await accounts_service.find_by_email(db, inbound.cipher, mail.sender)
    if user is not None and accounts_service.is_banned(user):
        return Outcome("ignored", reason="the sender is banned")
    if user is None and not settings.mail_new_users:
        return Outcome("ignored", reason="unknown sender (TK_MAIL_NEW_USERS=off)")
    cap = settings.mail_new_tickets_per_hour
    wait = await ratelimit.hit(
        inbound.database,
        name=RATE_NAME,
        key=inbound.cipher.email_index(mail.sender).hex(),
        limit=ratelimit.Limit(cap, 3600),
    )
    if wait is not None:
        return Outcome("ignored", reason=f"the sender opened {cap} tickets within the hour")
    saved: list[str] = []
    try:
        async with db.begin_nested():
            ticket = await _file(db, inbound, mail, user, saved)
    except _Refused as refused:
        await _forget(inbound, saved)
        return Outcome("ignored", reason=refused.reason)
    except AppError as exc:
        await _forget(inbound, saved)
        return Outcome("ignored", reason=f"not filed: {exc.message}")
    except BaseException:
        await _forget(inbound, saved)
        raise
    return Outcome("ticket", ticket_id=ticket.id)


async def _file(
    db: AsyncSession, inbound: Inbound, mail: ParsedMail, user: User | None, saved: list[str]
) -> Ticket:
    form_id, element, limit = await _mail_form(db, inbound.settings)
    if user is None:
        user = await _new_customer(db, inbound, mail)
    stored, refused = await _store_attachments(db, inbound, mail.attachments, user.id, saved)
    text = new_ticket_text(mail.text) or clean_text(mail.text).strip() or NO_TEXT
    answer = _clip(text, limit - _listing_room(stored)) + _stored_text(stored)
    ticket = await tickets_service.create_ticket(
        db,
        reporter_id=user.id,
        form_id=form_id,
        summary=summary_of(mail.subject),
        form_response={element: answer},
        channel=Channel.EMAIL,
        extra_upload_ids=[v["filename"] for v in stored],
    )
    if refused:
        await _refusal_note(db, ticket.id, refused)
    return ticket


async def _new_customer(db: AsyncSession, inbound: Inbound, mail: ParsedMail) -> User:
    name = (
        _SPACE.sub(" ", clean_text(mail.sender_name)).strip()[:200]
        or mail.sender.split("@")[0][:200]
    )
    try:
        async with db.begin_nested():
            return await accounts_service.create_user(
                db, inbound.cipher, email=mail.sender, name=name, password=None, role=Role.USER
            )
    except UserAlreadyExists:
        # Another message from the same new sender won the race: theirs is the account.
        user = await accounts_service.find_by_email(db, inbound.cipher, mail.sender)
        if user is None:
            raise _Refused("the sender's account could not be created") from None
        return user


def summary_of(subject: str) -> str:
    summary = _SPACE.sub(" ", clean_text(subject)).strip()
    if not summary:
        return NO_SUBJECT
    if len(summary) > tickets_service.MAX_SUMMARY:
        summary = summary[: tickets_service.MAX_SUMMARY - 1].rstrip() + "…"
    return summary


async def _mail_form(db: AsyncSession, settings: Settings) -> tuple[str, str, int]:
    """The form mail tickets are filed with, the element the text goes to and its limit."""
    form_id = settings.mail_form_id or BUILTIN_FORM_ID
    try:
        _, _, plan = await tickets_service.enabled_form_plan(db, form_id=form_id)
    except FormNotFound:
        if settings.mail_form_id:
            raise _Refused(f"TK_MAIL_FORM_ID names no enabled form ({form_id})") from None
        await _create_builtin_form(db)
        try:  # made now, or just now by a concurrent first mail (then committed and visible)
            _, _, plan = await tickets_service.enabled_form_plan(db, form_id=form_id)
        except FormNotFound:
            raise _Refused("the built-in E-mail form is disabled") from None
    texts = [
        e for e in plan.elements if isinstance(e, forms_engine.Textarea | forms_engine.TextField)
    ]
    if not texts:
        raise _Refused(f"the mail form {form_id} has no text field for the message")
    chosen = next((e for e in texts if e.name == "description"), None) or next(
        (e for e in texts if isinstance(e, forms_engine.Textarea)), texts[0]
    )
    return form_id, chosen.name, chosen.max_length or chosen.CAP


async def _create_builtin_form(db: AsyncSession) -> bool:
    """The built-in "E-mail" form, made when first needed; False when it exists (disabled)."""
    made = await db.scalar(
        insert(Form)
        .values(
            id=BUILTIN_FORM_ID,
            name="E-mail",
            description="Requests that arrived by e-mail.",
            disabled=False,
            elements=BUILTIN_FORM_ELEMENTS,
            version=1,
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(Form.id)
    )
    if made is None:
        return False
    await db.execute(
        insert(FormVersion).values(
            form_id=BUILTIN_FORM_ID,
            version=1,
            name="E-mail",
            description="Requests that arrived by e-mail.",
            elements=BUILTIN_FORM_ELEMENTS,
        )
    )
    return True


# -- attachments ------------------------------------------------------------------------------


def _multipart(name: str, data: bytes) -> tuple[str, AsyncIterator[bytes]]:
    """The attachment as the multipart body the uploads service reads (its one entry)."""
    boundary = "tk-mail-" + secrets.token_hex(16)
    safe = uploads_service.clean_filename(name).replace('"', "_")
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield head
        for start in range(0, len(data), 256 * 1024):
            yield data[start : start + 256 * 1024]
        yield tail

    return f"multipart/form-data; boundary={boundary}", chunks()


async def _store_attachments(
    db: AsyncSession,
    inbound: Inbound,
    attachments: list[Attachment],
    uploader_id: str,
    saved: list[str],
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Upload what the usual rules accept; (upload views, [(name, why refused)])."""
    max_bytes = inbound.settings.max_upload_mb * 1024 * 1024
    stored: list[dict[str, Any]] = []
    refused: list[tuple[str, str]] = []
    for index, attachment in enumerate(attachments):
        if index >= MAX_STORED_ATTACHMENTS:
            refused.append((attachment.filename, f"more than {MAX_STORED_ATTACHMENTS} attachments"))
            continue
        if attachment.data is None or attachment.size == 0:
            refused.append((attachment.filename, "empty"))
            continue
        if attachment.size > max_bytes:
            refused.append(
                (attachment.filename, f"larger than the {inbound.settings.max_upload_mb} MiB limit")
            )
            continue
        content_type, chunks = _multipart(attachment.filename, attachment.data)
        try:
            view = await uploads_service.save_upload(
                db,
                storage=inbound.storage,
                chunks=chunks,
                content_type=content_type,
                uploader_id=uploader_id,
                max_bytes=max_bytes,
            )
        except UnsupportedFileType:
            refused.append((attachment.filename, "file type not accepted"))
            continue
        except PayloadTooLarge as exc:
            refused.append((attachment.filename, exc.message))
            continue
        except AppError as exc:
            refused.append((attachment.filename, exc.message))
            continue
        upload = await db.get(Upload, view["filename"])
        if upload is not None:
            saved.append(upload.storage_key)
        stored.append(view)
    return stored, refused


async def _link(db: AsyncSession, ticket_id: int, upload_ids: list[str]) -> None:
    """Attachments of a reply belong to the ticket: who may see it may download them."""
    if upload_ids:
        table: Table = TicketUpload.__table__  # type: ignore[assignment]
        await db.execute(
            insert(table)
            .values([{"ticket_id": ticket_id, "upload_id": u} for u in upload_ids])
            .on_conflict_do_nothing()
        )


async def _forget(inbound: Inbound, keys: list[str]) -> None:
    """Delete files stored for a message that was then not kept (their rows roll back)."""
    with anyio.CancelScope(shield=True):
        for key in keys:
            try:
                await inbound.storage.delete(key)
            except Exception:  # left for `uploads clean`, which removes files without a row
                log.warning("could not delete an unused mail attachment", exc_info=True)
    keys.clear()


def _size(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB" if size >= 1024 * 1024 else f"{max(1, size // 1024)} KB"


def _stored_text(stored: list[dict[str, Any]]) -> str:
    if not stored:
        return ""
    lines = [f"- {v['originalName']} ({_size(v['size'])}): {v['url']}" for v in stored]
    return "\n\nAttachments:\n" + "\n".join(lines)


def _listing_room(stored: list[dict[str, Any]]) -> int:
    return len(_stored_text(stored))


def _refused_text(refused: list[tuple[str, str]]) -> str:
    if not refused:
        return ""
    lines = [f"- {clean_text(name)[:200]}: {why}" for name, why in refused[:MAX_LISTED]]
    if len(refused) > MAX_LISTED:
        lines.append(f"- … and {len(refused) - MAX_LISTED} more")
    return "\n\nAttachments not stored:\n" + "\n".join(lines)


async def _refusal_note(db: AsyncSession, ticket_id: int, refused: list[tuple[str, str]]) -> None:
    await conversation.add_comment(
        db,
        ticket_id=ticket_id,
        author=None,
        body=_clip(
            "Some attachments of a mail were not stored." + _refused_text(refused),
            conversation.MAX_BODY,
        ),
        internal=True,
        channel=Channel.EMAIL,
    )


def _clip(text: str, limit: int) -> str:
    marker = "\n[… cut: the message was longer]"
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(marker))].rstrip() + marker
