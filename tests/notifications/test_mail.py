"""What each notification mail carries: subject, a recorded unique Message-ID, thread headers,
Reply-To, From, Auto-Submitted, text and HTML parts, links and one-click unsubscribe."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import httpx

from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.jobs.worker import Worker
from tekudasai.tasks import TASKS
from tests.accounts.conftest import client_for
from tests.conftest import make_settings
from tests.factories import Person, make_person
from tests.notifications.conftest import SUPPORT, FileTicket, Mailbox, parts, rows
from tests.tickets.conftest import GOOD_RESPONSE


def h(mail: EmailMessage, name: str) -> str:
    """A header's value with folding undone."""
    return " ".join(str(mail[name]).split())


async def test_a_thread_of_mails_to_the_reporter(
    client: httpx.AsyncClient,
    database: Database,
    worker: Worker,
    mailbox: Mailbox,
    reporter: Person,
    agent: Person,
    file_ticket: FileTicket,
) -> None:
    ticket = await file_ticket(reporter, summary="Printer\r\nBcc: evil@example.com")
    tid = ticket["id"]
    await worker.run_pending()
    reply = {"body": "Hello <b>there</b> & welcome\nSecond line"}
    assert (
        await client.post(f"/api/tickets/{tid}/comments", json=reply, headers=agent.auth)
    ).is_success
    await worker.run_pending()
    status = {"status": "resolved"}
    assert (await client.patch(f"/api/tickets/{tid}", json=status, headers=agent.auth)).is_success
    await worker.run_pending()

    receipt, answer, resolved = mailbox.to(reporter.email)
    root = f"<ticket-{tid}@tekudasai.invalid>"
    for mail in (receipt, answer, resolved):
        assert mail["Subject"] == f"[TK #{tid}] Printer Bcc: evil@example.com"  # one line
        assert mail["Bcc"] is None
        assert mail["From"] == "Te Kudasai <no-reply@tekudasai.invalid>"
        assert mail["Reply-To"] == SUPPORT
        assert mail["Auto-Submitted"] == "auto-generated"
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe = h(mail, "List-Unsubscribe")
        assert unsubscribe.startswith(
            "<http://127.0.0.1:8000/settings/notifications/unsubscribe?token="
        )
        assert mail.get_content_type() == "multipart/alternative"
        plain, html = parts(mail)
        assert f"http://127.0.0.1:8000/tickets/{tid}" in plain and f"/tickets/{tid}" in html
        assert "/agent/tickets" not in plain + html  # the customer's link
        assert "http://127.0.0.1:8000/settings/notifications" in plain
        assert "<img" not in html and "<link" not in html and "style=" in html
    ids = [h(m, "Message-ID") for m in (receipt, answer, resolved)]
    assert len(set(ids)) == 3 and all(i.endswith("@tekudasai.invalid>") for i in ids)
    # Each one answers the one before, all name the ticket's root.
    assert h(receipt, "In-Reply-To") == root and h(receipt, "References") == root
    assert h(answer, "In-Reply-To") == ids[0] and h(answer, "References") == f"{root} {ids[0]}"
    assert h(resolved, "In-Reply-To") == ids[1]
    assert h(resolved, "References") == f"{root} {ids[0]} {ids[1]}"
    recorded = await rows(
        database,
        "SELECT message_id, direction FROM ticket_mail_messages WHERE ticket_id = :t",
        t=tid,
    )
    assert {r["message_id"] for r in recorded} == {root, *ids}
    assert {r["direction"] for r in recorded} == {"out"}

    # The reply as written: escaped in HTML, verbatim in text.
    plain, html = parts(answer)
    assert "Hello <b>there</b> & welcome\nSecond line" in plain
    assert "Hello &lt;b&gt;there&lt;/b&gt; &amp; welcome<br>" in html and "<b>there" not in html
    assert "is now Resolved" in parts(resolved)[0]


async def test_a_customer_mail_never_contains_an_internal_note(
    client: httpx.AsyncClient,
    database: Database,
    worker: Worker,
    mailbox: Mailbox,
    reporter: Person,
    agent: Person,
    cipher: PiiCipher,
    file_ticket: FileTicket,
) -> None:
    colleague = await make_person(database, cipher, role="agent")
    ticket = await file_ticket(reporter)
    path = f"/api/tickets/{ticket['id']}"
    assert (await client.post(f"{path}/assign-toggle", headers=agent.auth)).is_success
    note = {"body": "SECRET-NOTE-7731 do not tell", "internal": True}
    assert (await client.post(f"{path}/comments", json=note, headers=colleague.auth)).is_success
    public = {"body": "We are on it"}
    assert (await client.post(f"{path}/comments", json=public, headers=colleague.auth)).is_success
    for status in ("pending", "resolved", "closed"):
        change = await client.patch(path, json={"status": status}, headers=colleague.auth)
        assert change.is_success
    await worker.run_pending()

    to_reporter = mailbox.to(reporter.email)
    assert len(to_reporter) == 5  # receipt, reply, three status changes
    for mail in to_reporter:
        assert "SECRET-NOTE-7731" not in mail.as_string()
    feed = await rows(
        database, "SELECT text FROM notifications WHERE user_id = :u", u=reporter.user.id
    )
    assert all("SECRET" not in r["text"] for r in feed)
    # The assignee got the note, marked internal, with the agent's link.
    [note_mail] = [m for m in mailbox.to(agent.email) if "SECRET-NOTE-7731" in parts(m)[0]]
    plain, html = parts(note_mail)
    assert "Internal note (not shown to the customer)" in plain
    assert f"/agent/tickets/{ticket['id']}" in plain and "SECRET-NOTE-7731" in html


async def test_from_and_message_ids_follow_the_configuration(
    database: Database,
    db_url: str,
    tmp_path: Path,
    cipher: PiiCipher,
    mailbox: Mailbox,
    smtp_port: int,
) -> None:
    settings = make_settings(
        db_url,
        tmp_path / "data",
        TK_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
        TK_BASE_URL="https://desk.example.com",
        TRUSTED_ORIGINS="http://127.0.0.1:8000",
        TK_MAIL_FROM="Acme Support <support@acme.example>",
    )
    reporter = await make_person(database, cipher)
    from tests.tickets.conftest import make_form

    form = await make_form(database, form_id="mail-form")
    async with client_for(database, settings, origin="http://127.0.0.1:8000") as client:
        body = {"formId": form.id, "summary": "Hi", "formResponse": GOOD_RESPONSE}
        assert (await client.post("/api/tickets/my", json=body, headers=reporter.auth)).is_success
    await Worker(database, settings, TASKS).run_pending()
    [mail] = mailbox.to(reporter.email)
    assert mail["From"] == "Acme Support <support@acme.example>"
    assert mail["Reply-To"] is None  # no TK_SUPPORT_ADDRESS
    assert mail["Message-ID"].endswith("@desk.example.com>")
    assert mail["References"].startswith("<ticket-")
    assert "https://desk.example.com/tickets/" in parts(mail)[0]
    assert "Reply to this e-mail" not in parts(mail)[0]
    assert h(mail, "List-Unsubscribe").startswith(
        "<https://desk.example.com/settings/notifications/unsubscribe?token="
    )


async def test_one_click_unsubscribe_turns_that_kind_off(
    client: httpx.AsyncClient,
    worker: Worker,
    mailbox: Mailbox,
    reporter: Person,
    agent: Person,
    file_ticket: FileTicket,
    settings: Settings,
) -> None:
    ticket = await file_ticket(reporter)
    tid = ticket["id"]
    reply = {"body": "First answer"}
    assert (
        await client.post(f"/api/tickets/{tid}/comments", json=reply, headers=agent.auth)
    ).is_success
    await worker.run_pending()
    [_, answer] = mailbox.to(reporter.email)
    target = h(answer, "List-Unsubscribe").strip("<>")
    path = target.removeprefix(settings.base_url)

    # A link scanner's GET changes nothing.
    page = await client.get(path, headers={"Accept": "text/html"})
    assert page.status_code == 200 and "Replies from agents" in page.text
    prefs = (await client.get("/api/me/notifications", headers=reporter.auth)).json()["data"]
    assert prefs["email"]["agentReply"] is True

    # The provider's POST (RFC 8058): no session, no Origin, the form body.
    async with httpx.AsyncClient(transport=client._transport, base_url=settings.base_url) as bare:
        done = await bare.post(path, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200, done.text
        forged = await bare.post(path[:-3] + "AAA", data={"List-Unsubscribe": "One-Click"})
        assert forged.status_code == 400
    prefs = (await client.get("/api/me/notifications", headers=reporter.auth)).json()["data"]
    assert prefs["email"] == {"ticketCreated": True, "agentReply": False, "statusChanged": True}

    again = {"body": "Second answer"}
    assert (
        await client.post(f"/api/tickets/{tid}/comments", json=again, headers=agent.auth)
    ).is_success
    await worker.run_pending()
    assert len(mailbox.to(reporter.email)) == 2  # no mail for the second answer
    feed = (await client.get("/api/me/notifications/feed", headers=reporter.auth)).json()
    assert [n["event"] for n in feed["data"]][:2] == [
        "agentReply",
        "agentReply",
    ]  # still in the feed
