"""The e-mail channel end to end (#14 "Done when"), every part real: a customer files a ticket
through the web form, the queue sends the receipt to an SMTP server (aiosmtpd on loopback), the
customer answers it from their mail client (a Gmail-style reply APPENDed to a pymap IMAP server
that the periodic poller job reads through TK_IMAP_URL, or the same reply posted raw to
POST /api/inbound/email), the agent sees the answer and replies on the agent page, and the reply
reaches the customer in the same thread without the internal note written before it. In the
same flow: the customer's auto-responder answering that reply is ignored, and one Message-ID
delivered through both paths is handled once.
"""

from __future__ import annotations

import logging
import re
import textwrap
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import formatdate, parsedate_to_datetime
from html import escape
from pathlib import Path
from typing import Any

import httpx
import pytest

from tekudasai.config import Settings
from tekudasai.db.session import Database
from tekudasai.inbound import imap
from tekudasai.jobs.worker import Backoff, Worker
from tekudasai.tasks import PERIODIC, TASKS
from tests.conftest import BASE_URL, make_settings
from tests.factories import Person
from tests.inbound.test_imap import Mailbox as ImapMailbox
from tests.inbound.test_imap import imap_port  # noqa: F401 - the pymap server fixture
from tests.jobs.conftest import wait_until
from tests.notifications.conftest import (  # noqa: F401 - fixtures
    SUPPORT,
    Mailbox,
    agent,
    form,
    mailbox,
    parts,
    reporter,
    rows,
    smtp_port,
)
from tests.web.test_pages import HTML, csrf, submit

TOKEN = "inbound-e2e-token-0123456789"
SUMMARY = "Printer on floor 2 is on fire"
DESCRIPTION = "Smoke comes out of the paper tray."
REPLY = (
    "Restarting the printer did not help: the display still shows \u201cE-42\u201d.\n"
    "It happens every morning at nine."
)
SIGNATURE = "Alice Example\nACME Ltd. | +64 4 000 0000"
NOTE = "INTERNAL-7731: the toner supplier owes us a refund"
AGENT_REPLY = "Thanks Alice. A technician replaces the fuser today at 14:00."
OUT_OF_OFFICE = "I am out of the office until Monday and will read your mail then."


@pytest.fixture
def imap_box(imap_port: int) -> ImapMailbox:  # noqa: F811 - the fixture imported above
    """The support mailbox (and its done folder) on the pymap server, fresh for each test."""
    return ImapMailbox(imap_port)


@pytest.fixture
def settings(
    db_url: str,
    tmp_path: Path,
    smtp_port: int,  # noqa: F811
    imap_box: ImapMailbox,
) -> Settings:
    return make_settings(
        db_url,
        tmp_path / "data",
        TK_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
        TK_SUPPORT_ADDRESS=SUPPORT,
        TK_IMAP_URL=imap_box.url(),
        TK_IMAP_DONE_FOLDER=imap_box.done,
        TK_IMAP_POLL="1",  # the shortest period: each run idles a moment, then ends
        TK_INBOUND_MAIL_TOKEN=TOKEN,
    )


@pytest.fixture
def worker(database: Database, settings: Settings) -> Worker:
    """The queue worker with the one periodic job this flow needs: the IMAP poller."""
    poller = tuple(p for p in PERIODIC if p.name == imap.TASK)
    assert poller, "the IMAP poller is not a periodic job"
    return Worker(database, settings, TASKS, poller, backoff=Backoff(base=0.2, cap=0.5))


async def browser(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a cookie jar of its own on the app (one per person)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE_URL, headers={"Origin": BASE_URL}
    ) as http:
        yield http


@pytest.fixture
async def customer_web(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async for http in browser(app):
        yield http


@pytest.fixture
async def agent_web(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async for http in browser(app):
        yield http


async def poll_imap(worker: Worker) -> None:
    """One run of the poller as the worker runs it: its next period's job is scheduled (one
    per TK_IMAP_POLL period, so this waits for the period to turn), then every due job runs:
    the poll, the ticket events it caused, the mails those send."""
    await wait_until(worker.schedule_due, seconds=10)
    await worker.run_pending()


def h(mail: EmailMessage, name: str) -> str:
    """A header's value with folding undone ('' when absent)."""
    value = mail[name]
    return " ".join(str(value).split()) if value is not None else ""


def ids_in(value: str) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value)


def all_text(mail: EmailMessage) -> str:
    """Every header and every decoded text part (a base64 body hides nothing from this)."""
    out = [f"{k}: {v}" for k, v in mail.items()]
    for part in mail.walk():
        if part.get_content_maintype() == "text":
            out.append(part.get_content())  # type: ignore[attr-defined]
    return "\n".join(out)


def gmail_reply(
    receipt: EmailMessage,
    *,
    sender: str,
    subject: str,
    message_id: str,
    in_reply_to: bool = True,
) -> bytes:
    """The customer's answer to `receipt` as Gmail sends it: text and HTML parts, the signature
    under `-- `, then "On <date> <sender> wrote:" and the receipt quoted with `>`."""
    plain, html = parts(receipt)
    sent = parsedate_to_datetime(str(receipt["Date"]))
    on = f"On {sent:%a, %b} {sent.day}, {sent:%Y} at {sent:%I:%M %p} {receipt['From']} wrote:"
    quoted = "\n".join(f"> {line}".rstrip() for line in plain.strip().splitlines())
    text = (
        f"{REPLY}\n\n-- \n{SIGNATURE}\n\n"
        + textwrap.fill(on, width=78)  # Gmail hard-wraps its plain part
        + f"\n\n{quoted}\n"
    )
    markup = (
        f'<div dir="ltr">{escape(REPLY).replace(chr(10), "<br>")}<br clear="all"><div><br></div>'
        '<span class="gmail_signature_prefix">-- </span><br>'
        f'<div dir="ltr" class="gmail_signature">{escape(SIGNATURE).replace(chr(10), "<br>")}'
        '</div></div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
        f"{escape(on)}<br></div>"
        '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;'
        'border-left:1px solid rgb(204,204,204);padding-left:1ex">'
        f"{html}</blockquote></div>"
    )
    message = EmailMessage()
    message["MIME-Version"] = "1.0"
    message["Date"] = formatdate(localtime=True)
    message["References"] = f"{h(receipt, 'References')} {h(receipt, 'Message-ID')}"
    if in_reply_to:
        message["In-Reply-To"] = h(receipt, "Message-ID")
    message["Message-ID"] = message_id
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = SUPPORT  # the receipt's Reply-To
    message.set_content(text)
    message.add_alternative(markup, subtype="html")
    return message.as_bytes()


def out_of_office(answered: EmailMessage, *, sender: str) -> bytes:
    """An auto-responder's answer (RFC 3834 `Auto-Submitted: auto-replied`), threaded and
    tagged like a person's reply: only that header tells it apart."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = SUPPORT
    message["Subject"] = f"Automatic reply: {answered['Subject']}"
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = "<ooo-1.20261206@mail.example.test>"
    message["In-Reply-To"] = h(answered, "Message-ID")
    message["References"] = f"{h(answered, 'References')} {h(answered, 'Message-ID')}"
    message["Auto-Submitted"] = "auto-replied"
    message.set_content(OUT_OF_OFFICE)
    return message.as_bytes()


async def comments(client: httpx.AsyncClient, staff: Person, tid: int) -> list[dict[str, Any]]:
    response = await client.get(f"/api/tickets/{tid}/comments", headers=staff.auth)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def post_inbound(client: httpx.AsyncClient, raw: bytes) -> dict[str, Any]:
    response = await client.post(
        "/api/inbound/email",
        content=raw,
        headers={"Content-Type": "message/rfc822", "Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"
    return response.json()["data"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("via", ["imap", "http"])
async def test_file_on_the_web_answer_by_mail_reply_in_the_thread(
    via: str,
    client: httpx.AsyncClient,
    customer_web: httpx.AsyncClient,
    agent_web: httpx.AsyncClient,
    database: Database,
    worker: Worker,
    mailbox: Mailbox,  # noqa: F811
    imap_box: ImapMailbox,
    reporter: Person,  # noqa: F811
    agent: Person,  # noqa: F811
    form: Any,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tekudasai.inbound")

    # 1. The customer signs in and files a ticket through the web form.
    token = await csrf(customer_web, "/auth/login")
    signed_in = await submit(
        customer_web, "/auth/login", token, email=reporter.email, password=reporter.password
    )
    assert signed_in.status_code == 303 and customer_web.cookies.get("tk.session_token")
    page = f"/new-ticket-form?formId={form.id}"
    filed = await submit(
        customer_web,
        page,
        await csrf(customer_web, page),
        summary=SUMMARY,
        **{"answer.category": "hardware", "answer.description": DESCRIPTION},
    )
    assert filed.status_code == 303, filed.text
    found = re.fullmatch(r"/tickets/(\d+)", filed.headers["location"])
    assert found, filed.headers["location"]
    tid = int(found.group(1))
    ticket = (await client.get(f"/api/tickets/{tid}", headers=agent.auth)).json()["data"]
    assert ticket["channel"] == "web" and ticket["summary"] == SUMMARY
    # The agent takes it (their own action: no mail to them for it).
    assert (await client.post(f"/api/tickets/{tid}/assign-toggle", headers=agent.auth)).is_success

    # 2. The queue delivers the receipt to the SMTP server.
    await worker.run_pending()
    assert mailbox.recipients() == [reporter.email]
    (receipt,) = mailbox.to(reporter.email)
    assert receipt["Subject"] == f"[TK #{tid}] {SUMMARY}"
    receipt_id = h(receipt, "Message-ID")
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", receipt_id), receipt_id
    root = h(receipt, "In-Reply-To")
    assert ids_in(root) == [root] and f"ticket-{tid}@" in root
    assert h(receipt, "References") == root
    assert receipt["Reply-To"] == SUPPORT
    assert receipt["Auto-Submitted"] == "auto-generated"
    assert receipt.get_content_type() == "multipart/alternative"
    plain, html = parts(receipt)
    assert f"{BASE_URL}/tickets/{tid}" in plain and f"/tickets/{tid}" in html
    unsubscribe = h(receipt, "List-Unsubscribe")
    assert unsubscribe.startswith(f"<{BASE_URL}/settings/notifications/unsubscribe?token=")
    assert receipt["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # 3. The customer answers it from their mail client.
    reply_id = f"<CAJ{tid}x{via}+e2e=Qm9vb@mail.gmail.com>"
    if via == "imap":
        raw = gmail_reply(
            receipt,
            sender=f"{reporter.name} <{reporter.email}>",
            subject=f"Re: [TK #{tid}] {SUMMARY}",
            message_id=reply_id,
        )
        imap_box.append(raw)
        await poll_imap(worker)
        assert imap_box.count(imap_box.name) == 0 and imap_box.count(imap_box.done) == 1
    else:
        # No [TK #N] in the subject and no In-Reply-To: References alone must thread it.
        raw = gmail_reply(
            receipt,
            sender=f"{reporter.name} <{reporter.email}>",
            subject=f"Re: {SUMMARY}",
            message_id=reply_id,
            in_reply_to=False,
        )
        assert await post_inbound(client, raw) == {"action": "comment", "ticketId": tid}
        await worker.run_pending()

    # 4. The agent sees the answer on the ticket: the new text only, public, by e-mail.
    (answer,) = await comments(client, agent, tid)
    assert answer["body"] == REPLY
    assert answer["internal"] is False and answer["channel"] == "email"
    assert answer["authorId"] == reporter.user.id
    agent_web.cookies.set("tk.session_token", agent.token)
    workbench = await agent_web.get(f"/agent/tickets/{tid}", headers=HTML)
    assert workbench.status_code == 200
    shown = workbench.text.split(f'id="comment-{answer["id"]}"', 1)[1].split("</li>", 1)[0]
    assert escape(REPLY, quote=False) in shown and 'data-channel="email"' in shown
    for quoted in ("wrote:", "ACME", "&gt; ", DESCRIPTION):
        assert quoted not in shown
    assert "comment-internal" not in workbench.text
    # The assignee is told of the answer, with the same cut text.
    (told,) = mailbox.to(agent.email)
    assert REPLY in parts(told)[0] and "wrote:" not in parts(told)[0]
    mails_so_far = len(mailbox.inbox.messages)
    assert mails_so_far == 2

    # 8b. The same message delivered again through the other path is handled once.
    if via == "imap":
        assert await post_inbound(client, raw) == {
            "action": "ignored",
            "reason": "already processed (same Message-ID)",
        }
    else:
        imap_box.append(raw)
        await poll_imap(worker)
        assert imap_box.count(imap_box.name) == 0 and imap_box.count(imap_box.done) == 1
    await worker.run_pending()
    assert len(await comments(client, agent, tid)) == 1
    assert len(mailbox.inbox.messages) == mails_so_far

    # 5. The agent writes an internal note (API), then replies on the agent page.
    note = {"body": NOTE, "internal": True}
    assert (
        await client.post(f"/api/tickets/{tid}/comments", json=note, headers=agent.auth)
    ).is_success
    sent = await submit(
        agent_web,
        f"/agent/tickets/{tid}/comment",
        await csrf(agent_web, f"/agent/tickets/{tid}"),
        body=AGENT_REPLY,
        internal="false",
    )
    assert sent.status_code == 303 and sent.headers["location"] == f"/agent/tickets/{tid}"
    await worker.run_pending()

    # 6. The customer receives the reply in the same thread, and never the note.
    to_customer = mailbox.to(reporter.email)
    assert len(to_customer) == 2 and len(mailbox.inbox.messages) == mails_so_far + 1
    answered = to_customer[1]
    assert answered["Subject"] == f"[TK #{tid}] {SUMMARY}"
    answered_id = h(answered, "Message-ID")
    assert answered_id not in (receipt_id, reply_id, root)
    references = ids_in(h(answered, "References"))
    assert references[0] == root
    assert {root, receipt_id, reply_id} <= set(references)
    recorded = await rows(
        database, "SELECT message_id FROM ticket_mail_messages WHERE ticket_id = :t", t=tid
    )
    # It answers the thread's newest message, as its References end (RFC 5322 3.6.4).
    assert h(answered, "In-Reply-To") == references[-1]
    assert references[-1] in {r["message_id"] for r in recorded}
    plain, html = parts(answered)
    assert AGENT_REPLY in plain and escape(AGENT_REPLY) in html
    for mail in to_customer:
        assert "INTERNAL-7731" not in all_text(mail)
    kinds = [(c["internal"], c["channel"]) for c in await comments(client, agent, tid)]
    assert kinds == [(False, "email"), (True, "web"), (False, "web")]  # a session: the web

    # 8a. The customer's auto-responder answers the reply: ignored, no comment, no mail.
    imap_box.append(out_of_office(answered, sender=reporter.email))
    await poll_imap(worker)
    assert imap_box.count(imap_box.name) == 0
    assert imap_box.count(imap_box.done) == 2  # the reply (once, either way) and this
    await worker.run_pending()
    assert len(await comments(client, agent, tid)) == 3
    assert len(mailbox.inbox.messages) == mails_so_far + 1
    ignored = [r.getMessage() for r in caplog.records if r.name == "tekudasai.inbound"]
    assert "inbound mail ignored (Auto-Submitted: auto-replied)" in ignored
    assert "inbound mail ignored (already processed (same Message-ID))" in ignored
    assert ignored.count("inbound mail comment") == 1
