"""What a message becomes, against the real database: tickets, comments, notes, ignored mail,
attachments, duplicates, floods and bad input."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.inbound import service
from tekudasai.inbound.service import Inbound, Outcome
from tekudasai.tickets.workflow import after_customer_reply
from tests.conftest import make_settings
from tests.factories import Person
from tests.inbound.conftest import (
    GMAIL_REPLY,
    OUTLOOK_REPLY,
    PDF,
    PNG,
    build,
    counts,
    new_id,
    rows,
    value,
)
from tests.tickets.conftest import make_form


async def ingest(inbound: Inbound, raw: bytes) -> Outcome:
    return await service.ingest(inbound, raw)


def with_settings(inbound: Inbound, settings: Settings, **overrides: object) -> Inbound:
    """The same database and storage, other settings."""
    url = settings.database_url
    changed = make_settings(url, settings.data_dir, **overrides)
    return dataclasses.replace(inbound, settings=changed, own=frozenset())


async def files_in(inbound: Inbound) -> int:
    storage = inbound.storage
    return len(storage.all_files())  # type: ignore[attr-defined]


# -- new tickets ------------------------------------------------------------------------------


async def test_a_stranger_opens_a_ticket_and_gets_an_account(
    inbound: Inbound, database: Database, cipher: PiiCipher
) -> None:
    raw = build(sender="Carol Newcomer <carol@example.net>", subject="VPN down", body=GMAIL_REPLY)
    outcome = await ingest(inbound, raw)
    assert outcome.action == "ticket" and outcome.ticket_id is not None
    ticket = (await rows(database, "SELECT * FROM tickets WHERE id = :i", i=outcome.ticket_id))[0]
    assert ticket.summary == "VPN down" and ticket.channel == "email"
    assert ticket.form_id == service.BUILTIN_FORM_ID and ticket.status == "open"
    assert ticket.form_response == {"description": "Thanks, restarting it worked."}
    user = (await rows(database, "SELECT * FROM users WHERE id = :i", i=ticket.reporter_id))[0]
    assert user.role == "user" and user.email_verified is False
    assert cipher.decrypt(user.name_ciphertext, context="user.name") == "Carol Newcomer"
    assert cipher.decrypt(user.email_ciphertext, context="user.email") == "carol@example.net"
    form = (await rows(database, "SELECT * FROM forms WHERE id = 'email'"))[0]
    assert form.name == "E-mail" and form.disabled is False
    assert form.elements[0]["type"] == "textarea" and form.elements[0]["name"] == "description"
    event = await rows(database, "SELECT * FROM ticket_events WHERE ticket_id = :i", i=ticket.id)
    assert [(e.type, e.data) for e in event] == [("ticket.created", {"channel": "email"})]
    recorded = await rows(database, "SELECT * FROM ticket_mail_messages")
    assert [(r.ticket_id, r.direction) for r in recorded] == [(ticket.id, "in")]
    # The second stranger's ticket reuses the built-in form.
    again = await ingest(inbound, build(sender="dave@example.net", subject=""))
    assert again.action == "ticket"
    assert await value(database, "SELECT count(*) FROM forms") == 1
    assert await value(
        database, "SELECT summary FROM tickets WHERE id = :i", i=again.ticket_id
    ) == ("(no subject)")


async def test_a_known_user_files_under_their_account(
    inbound: Inbound, database: Database, reporter: Person
) -> None:
    users = await value(database, "SELECT count(*) FROM users")
    outcome = await ingest(inbound, build(sender=reporter.email.upper()))
    assert outcome.action == "ticket"
    reporter_id = await value(
        database, "SELECT reporter_id FROM tickets WHERE id = :i", i=outcome.ticket_id
    )
    assert reporter_id == reporter.user.id
    assert await value(database, "SELECT count(*) FROM users") == users


async def test_a_subject_of_10000_characters(inbound: Inbound, database: Database) -> None:
    outcome = await ingest(inbound, build(sender="e@example.net", subject="word " * 2000))
    summary = await value(
        database, "SELECT summary FROM tickets WHERE id = :i", i=outcome.ticket_id
    )
    assert len(summary) == 500 and summary.endswith("…")


async def test_unknown_senders_are_ignored_when_new_users_are_off(
    inbound: Inbound,
    settings: Settings,
    database: Database,
    reporter: Person,
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed = with_settings(inbound, settings, TK_MAIL_NEW_USERS="off")
    before = await counts(database)
    with caplog.at_level(logging.INFO, logger="tekudasai.inbound"):
        outcome = await ingest(closed, build(sender="stranger@example.net"))
    assert outcome == Outcome("ignored", reason="unknown sender (TK_MAIL_NEW_USERS=off)")
    assert await counts(database) == before
    assert "TK_MAIL_NEW_USERS=off" in caplog.text
    assert (await ingest(closed, build(sender=reporter.email))).action == "ticket"


async def test_one_sender_opens_at_most_the_hourly_cap(
    inbound: Inbound, settings: Settings, database: Database
) -> None:
    capped = with_settings(inbound, settings, TK_MAIL_NEW_TICKETS_PER_HOUR="3")
    outcomes = [await ingest(capped, build(sender="flood@example.net")) for _ in range(5)]
    assert [o.action for o in outcomes] == ["ticket"] * 3 + ["ignored"] * 2
    assert outcomes[-1].reason == "the sender opened 3 tickets within the hour"
    # Others are not held back, and replies of the capped sender still land.
    assert (await ingest(capped, build(sender="calm@example.net"))).action == "ticket"
    tid = outcomes[0].ticket_id
    reply = await ingest(capped, build(sender="flood@example.net", subject=f"Re: [TK #{tid}] x"))
    assert reply.action == "comment"


# -- replies ----------------------------------------------------------------------------------


async def _ticket_of(inbound: Inbound, person: Person) -> int:
    outcome = await ingest(inbound, build(sender=f"{person.name} <{person.email}>"))
    assert outcome.ticket_id is not None
    return outcome.ticket_id


async def test_the_reporters_reply_by_subject_tag_is_public_and_reopens(
    inbound: Inbound, database: Database, reporter: Person
) -> None:
    tid = await _ticket_of(inbound, reporter)
    async with database.engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(text("UPDATE tickets SET status = 'resolved' WHERE id = :i"), {"i": tid})
    raw = build(
        sender=reporter.email, subject=f"Re: [TK #{tid}] Printer on fire", body=OUTLOOK_REPLY
    )
    outcome = await ingest(inbound, raw)
    assert outcome.action == "comment" and outcome.ticket_id == tid and outcome.reason is None
    comment = (await rows(database, "SELECT * FROM ticket_comments WHERE ticket_id = :i", i=tid))[0]
    assert comment.author_id == reporter.user.id and comment.internal is False
    assert comment.channel == "email"
    assert comment.body == "Yes, the error is back since this morning."
    status = await value(database, "SELECT status FROM tickets WHERE id = :i", i=tid)
    assert status == after_customer_reply("resolved") != "resolved"
    events = await rows(
        database, "SELECT type, data FROM ticket_events WHERE ticket_id = :i ORDER BY id", i=tid
    )
    assert [e.type for e in events] == [
        "ticket.created",
        "comment.created",
        "ticket.status_changed",
    ]
    assert events[1].data["channel"] == "email" and events[1].data["byReporter"] is True


@pytest.mark.parametrize("stored", ["<out-1@desk.example>", "out-1@desk.example"])
async def test_a_reply_threads_by_a_message_id_we_sent(
    inbound: Inbound, database: Database, reporter: Person, stored: str
) -> None:
    tid = await _ticket_of(inbound, reporter)
    async with database.engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(
            text("INSERT INTO ticket_mail_messages VALUES (:m, :t, 'out', now())"),
            {"m": stored, "t": tid},
        )
    raw = build(
        sender=reporter.email,
        subject="Re: Printer",  # no tag: the headers decide
        in_reply_to="<unknown@elsewhere>",
        references="<out-1@desk.example> <unknown@elsewhere>",
    )
    outcome = await ingest(inbound, raw)
    assert (outcome.action, outcome.ticket_id) == ("comment", tid)


async def test_a_reply_threads_by_a_message_id_we_received(
    inbound: Inbound, reporter: Person, agent: Person
) -> None:
    first = new_id()
    opened = await ingest(inbound, build(sender=reporter.email, message_id=first))
    raw = build(sender=agent.email, subject="Re: Printer", in_reply_to=first, body=GMAIL_REPLY)
    outcome = await ingest(inbound, raw)
    assert (outcome.action, outcome.ticket_id) == ("comment", opened.ticket_id)


async def test_an_agents_mail_reply_is_a_public_reply(
    inbound: Inbound, database: Database, reporter: Person, agent: Person
) -> None:
    tid = await _ticket_of(inbound, reporter)
    outcome = await ingest(inbound, build(sender=agent.email, subject=f"[TK #{tid}] answer"))
    assert outcome.action == "comment"
    comment = (await rows(database, "SELECT * FROM ticket_comments WHERE ticket_id = :i", i=tid))[0]
    assert comment.author_id == agent.user.id and comment.internal is False


@pytest.mark.parametrize("sender_kind", ["other customer", "stranger", "forged dmarc"])
async def test_a_forged_tag_from_a_non_participant_is_an_internal_note(
    inbound: Inbound, database: Database, reporter: Person, other: Person, sender_kind: str
) -> None:
    tid = await _ticket_of(inbound, reporter)
    users = await value(database, "SELECT count(*) FROM users")
    sender, headers = {
        "other customer": (other.email, {}),
        "stranger": ("mallory@evil.example", {}),
        # Claims to be the reporter, but the receiving server says the From is forged.
        "forged dmarc": (
            reporter.email,
            {"Authentication-Results": "mx.desk.example; dmarc=fail header.from=example.test"},
        ),
    }[sender_kind]
    raw = build(
        sender=sender,
        subject=f"Re: [TK #{tid}] Printer",
        body="Please send the invoice to my account instead.",
        headers=headers,
        attachments=[("invoice.pdf", "application/pdf", PDF)],
    )
    outcome = await ingest(inbound, raw)
    assert outcome.action == "comment" and outcome.ticket_id == tid
    comments = await rows(database, "SELECT * FROM ticket_comments WHERE ticket_id = :i", i=tid)
    assert len(comments) == 1
    note = comments[0]
    assert note.internal is True and note.author_id is None and note.channel == "email"
    assert note.body.startswith("Mail from an unknown sender")
    assert sender in note.body and "invoice.pdf: not stored" in note.body
    assert await value(database, "SELECT count(*) FROM uploads") == 0
    assert await value(database, "SELECT count(*) FROM users") == users
    assert await value(database, "SELECT status FROM tickets WHERE id = :i", i=tid) == "open"


async def test_a_tag_naming_no_ticket_opens_a_new_one(inbound: Inbound, reporter: Person) -> None:
    outcome = await ingest(inbound, build(sender=reporter.email, subject="Re: [TK #999999] old"))
    assert outcome.action == "ticket" and outcome.ticket_id != 999999


async def test_an_empty_reply_is_ignored(
    inbound: Inbound, reporter: Person, database: Database
) -> None:
    tid = await _ticket_of(inbound, reporter)
    raw = build(sender=reporter.email, subject=f"[TK #{tid}]", body="> only a quote\n")
    outcome = await ingest(inbound, raw)
    assert outcome.action == "ignored" and outcome.reason == "empty message"
    assert await value(database, "SELECT count(*) FROM ticket_comments") == 0


async def test_malformed_mime_and_broken_headers_still_file_whole(
    inbound: Inbound, database: Database
) -> None:
    import base64

    raw = (
        b"From: =?utf-8?q?Bro=00ken?= <broken@example.net>\r\n"
        b"Subject: =?utf-8?B?!!notbase64?= \xff\xfe\x00 tail\r\n"
        b"Message-ID: <malformed@example.net>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="XYZ"\r\n\r\n'
        b"--XYZ\r\nContent-Type: text/plain; charset=nonsense\r\n\r\nthe text \x00part\r\n"
        b"--XYZ\r\nContent-Type: image/png; name=shot.png\r\n"
        b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment\r\n\r\n"
        + base64.encodebytes(PNG)
        + b"\r\n--XYZ\r\nContent-Type: text/plain\r\n"  # never closed
    )
    outcome = await ingest(inbound, raw)
    assert outcome.action == "ticket"
    ticket = (await rows(database, "SELECT * FROM tickets WHERE id = :i", i=outcome.ticket_id))[0]
    assert "tail" in ticket.summary and "\x00" not in ticket.summary
    assert ticket.form_response["description"].startswith("the text part")
    assert await value(database, "SELECT original_name FROM uploads") == "shot.png"


# -- attachments ------------------------------------------------------------------------------


async def test_attachments_become_uploads_and_refused_ones_are_listed(
    inbound: Inbound, database: Database, reporter: Person
) -> None:
    tid = await _ticket_of(inbound, reporter)
    raw = build(
        sender=reporter.email,
        subject=f"[TK #{tid}] screenshots",
        body="See attached.",
        attachments=[
            ("screen.png", "image/png", PNG),
            ("manual.pdf", "application/pdf", PDF),
            ("tool.exe", "application/octet-stream", b"MZ\x90\x00" + bytes(300)),
            ("empty.txt", "text/plain", b""),
        ],
    )
    outcome = await ingest(inbound, raw)
    comments = await rows(
        database, "SELECT * FROM ticket_comments WHERE ticket_id = :i ORDER BY id", i=tid
    )
    reply, note = comments
    assert outcome.comment_id == reply.id and not reply.internal
    uploads = await rows(database, "SELECT * FROM uploads ORDER BY original_name")
    assert [(u.original_name, u.mime_type, u.uploader_id) for u in uploads] == [
        ("manual.pdf", "application/pdf", reporter.user.id),
        ("screen.png", "image/png", reporter.user.id),
    ]
    linked = {r.upload_id for r in await rows(database, "SELECT * FROM ticket_uploads")}
    assert linked == {u.id for u in uploads}
    assert reply.body.startswith("See attached.\n\nAttachments:\n")
    for upload in uploads:
        assert f"/api/uploads/{upload.id}" in reply.body
    assert note.internal and note.author_id is None
    assert "tool.exe: file type not accepted" in note.body and "empty.txt: empty" in note.body
    assert await files_in(inbound) == 2


async def test_a_new_tickets_attachments_are_linked_to_it(
    inbound: Inbound, database: Database
) -> None:
    raw = build(sender="f@example.net", attachments=[("shot.png", "image/png", PNG)])
    outcome = await ingest(inbound, raw)
    link = await rows(database, "SELECT * FROM ticket_uploads")
    assert [r.ticket_id for r in link] == [outcome.ticket_id]
    answer = await value(
        database,
        "SELECT form_response->>'description' FROM tickets WHERE id = :i",
        i=outcome.ticket_id,
    )
    assert answer.startswith("The printer on floor 2 is on fire.\n\nAttachments:\n- shot.png")


async def test_500_attachments(inbound: Inbound, database: Database, reporter: Person) -> None:
    files = [(f"note-{i}.txt", "text/plain", b"line %d\n" % i) for i in range(500)]
    outcome = await ingest(inbound, build(sender=reporter.email, attachments=files))
    assert outcome.action == "ticket"
    assert await value(database, "SELECT count(*) FROM uploads") == service.MAX_STORED_ATTACHMENTS
    note = await value(database, "SELECT body FROM ticket_comments WHERE internal")
    assert note.count("more than 20 attachments") == service.MAX_LISTED - 0
    assert note.endswith(f"… and {480 - service.MAX_LISTED} more")


async def test_a_30_mb_message(inbound: Inbound, database: Database, reporter: Person) -> None:
    big = b"%PDF-1.4\n" + bytes(12 * 1024 * 1024)  # over the 10 MiB upload limit
    small = [
        (f"part-{i}.pdf", "application/pdf", b"%PDF-1.4\n" + bytes(4 * 1024 * 1024))
        for i in range(3)
    ]
    raw = build(
        sender=reporter.email,
        body="Logs attached. " * 1000,
        attachments=[("huge.pdf", "application/pdf", big), *small],
    )
    assert len(raw) > 30 * 1024 * 1024
    outcome = await ingest(inbound, raw)
    assert outcome.action == "ticket"
    assert await value(database, "SELECT count(*) FROM uploads") == 3
    note = await value(database, "SELECT body FROM ticket_comments WHERE internal")
    assert "huge.pdf: larger than the 10 MiB limit" in note


async def test_over_the_message_limit_is_unparseable(
    inbound: Inbound, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tekudasai.inbound"):
        with pytest.raises(service.TooLarge):
            await ingest(inbound, b"From: a@example.com\r\n\r\n" + bytes(36 * 1024 * 1024))
        with pytest.raises(service.Unparseable):
            await ingest(inbound, b"no headers here")
    assert "not a message: larger than the 35 MiB limit" in caplog.text
    assert "not a message: no header fields" in caplog.text or "no From" in caplog.text


# -- never twice, never a loop ----------------------------------------------------------------


async def test_a_message_id_is_processed_once(inbound: Inbound, database: Database) -> None:
    raw = build(sender="g@example.net", message_id="<once@example.net>")
    assert (await ingest(inbound, raw)).action == "ticket"
    again = await ingest(inbound, raw)
    assert again == Outcome("ignored", reason="already processed (same Message-ID)")
    assert await value(database, "SELECT count(*) FROM tickets") == 1


async def test_two_deliveries_at_once_make_one_ticket(inbound: Inbound, database: Database) -> None:
    raw = build(sender="h@example.net", message_id="<twice@example.net>")
    outcomes = await asyncio.gather(*(ingest(inbound, raw) for _ in range(4)))
    assert sorted(o.action for o in outcomes) == ["ignored", "ignored", "ignored", "ticket"]
    assert await value(database, "SELECT count(*) FROM tickets") == 1


async def test_first_mails_at_once_share_one_builtin_form(
    inbound: Inbound, database: Database
) -> None:
    raws = [build(sender=f"first{i}@example.net") for i in range(4)]
    outcomes = await asyncio.gather(*(ingest(inbound, raw) for raw in raws))
    assert [o.action for o in outcomes] == ["ticket"] * 4, outcomes
    assert await value(database, "SELECT count(*) FROM forms") == 1


LOOPS = [
    ({"Auto-Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
    ({"Auto-Submitted": "auto-generated; owner-email=x@y"}, "Auto-Submitted: auto-generated"),
    ({"X-Autoreply": "yes"}, "x-autoreply header"),
    ({"X-Autorespond": "Out of office"}, "x-autorespond header"),
    ({"Precedence": "bulk"}, "Precedence: bulk"),
    ({"Precedence": "junk"}, "Precedence: junk"),
    ({"Precedence": "list"}, "Precedence: list"),
    ({"Return-Path": "<>"}, "empty Return-Path (a bounce)"),
    ({"X-Loop": "no-reply@tekudasai.invalid"}, "X-Loop names our own address"),
]


@pytest.mark.parametrize(("headers", "reason"), LOOPS, ids=[r for _, r in LOOPS])
async def test_machine_mail_is_ignored_with_its_reason(
    inbound: Inbound,
    database: Database,
    reporter: Person,
    headers: dict[str, str],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tid = await _ticket_of(inbound, reporter)
    before = await counts(database)
    with caplog.at_level(logging.INFO, logger="tekudasai.inbound"):
        new = await ingest(inbound, build(sender=reporter.email, headers=headers))
        reply = await ingest(
            inbound, build(sender=reporter.email, subject=f"[TK #{tid}]", headers=headers)
        )
    assert new.action == reply.action == "ignored"
    assert new.reason == reply.reason
    assert new.reason is not None and new.reason.startswith(reason)
    assert await counts(database) == before
    assert caplog.text.count(f"inbound mail ignored ({new.reason})") == 2


async def test_auto_submitted_no_and_list_id_are_people(inbound: Inbound) -> None:
    raw = build(
        sender="i@example.net",
        headers={"Auto-Submitted": "no", "List-Id": "<support.groups.example.com>"},
    )
    assert (await ingest(inbound, raw)).action == "ticket"


async def test_bounces_reports_and_our_own_mail_are_ignored(
    inbound: Inbound, settings: Settings, database: Database
) -> None:
    dsn = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n--B--\r\n"
    )
    assert (await ingest(inbound, dsn)).reason == "a delivery or read report"
    read_receipt = (
        dsn.replace(b"delivery-status;", b"disposition-notification;")
        .replace(b"MAILER-DAEMON@mx.example.net", b"alice@example.net")
        .replace(b"<dsn1@mx>", b"<mdn1@mx>")
    )
    assert (await ingest(inbound, read_receipt)).reason == "a delivery or read report"
    daemon = build(sender="MAILER-DAEMON@mx.example.net", subject="Warning: delayed")
    assert (await ingest(inbound, daemon)).reason == "sent by a mail system (bounce)"
    ours = with_settings(inbound, settings, TK_MAIL_FROM="Help Desk <help@desk.example>")
    own = build(sender="help@desk.example", subject="[TK #1] receipt")
    assert (await ingest(ours, own)).reason == "sent from our own address"
    default_own = build(sender="Te Kudasai <no-reply@tekudasai.invalid>")
    assert (await ingest(inbound, default_own)).reason == "sent from our own address"
    assert await value(database, "SELECT count(*) FROM tickets") == 0


# -- nothing half-stored ----------------------------------------------------------------------


async def test_a_refusal_half_way_leaves_nothing_behind(
    inbound: Inbound, settings: Settings, database: Database
) -> None:
    # A form whose rules the mail cannot meet: the account, the uploads and their files made
    # before the ticket was refused all go again.
    await make_form(database, form_id="strict")
    strict = with_settings(inbound, settings, TK_MAIL_FORM_ID="strict")
    before = await counts(database)
    raw = build(
        sender="j@example.net",
        message_id="<half@example.net>",
        attachments=[("screen.png", "image/png", PNG)],
    )
    outcome = await ingest(strict, raw)
    assert outcome.action == "ignored"
    assert outcome.reason is not None and outcome.reason.startswith("not filed: category")
    assert await counts(database) == before
    assert await files_in(inbound) == 0
    # Recorded as processed: the same delivery again is not retried as new.
    assert (await ingest(strict, raw)).reason == "already processed (same Message-ID)"
    missing = with_settings(inbound, settings, TK_MAIL_FORM_ID="no-such-form")
    refused = await ingest(missing, build(sender="k@example.net"))
    assert refused.reason == "TK_MAIL_FORM_ID names no enabled form (no-such-form)"
    assert await counts(database) == before


async def test_a_disabled_builtin_form_is_respected(inbound: Inbound, database: Database) -> None:
    assert (await ingest(inbound, build(sender="l@example.net"))).action == "ticket"
    async with database.engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(text("UPDATE forms SET disabled = true WHERE id = 'email'"))
    outcome = await ingest(inbound, build(sender="m@example.net"))
    assert outcome.reason == "the built-in E-mail form is disabled"
