"""Inbound mail test data: people, an `Inbound` on the test database, and message builders.

Messages are built as the mail clients named send them (layout of the quoted part, headers,
charsets), as bytes: the code under test parses them like any delivery.
"""

from __future__ import annotations

import itertools
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import pytest
from sqlalchemy import text

from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tekudasai.inbound import service
from tekudasai.uploads.storage import LocalStorage
from tests.factories import person_fixture

_n = itertools.count(1)

reporter = person_fixture("user")
other = person_fixture("user")
agent = person_fixture("agent")

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
PDF = b"%PDF-1.4\n" + b"x" * 200 + b"\n%%EOF\n"


@pytest.fixture
def inbound(database: Database, settings: Settings, cipher: PiiCipher) -> service.Inbound:
    return service.Inbound(
        database=database,
        settings=settings,
        cipher=cipher,
        storage=LocalStorage(settings.uploads_dir),
    )


def new_id(domain: str = "mail.example.com") -> str:
    return f"<m{next(_n)}.{id(object())}@{domain}>"


def build(
    *,
    sender: str,
    subject: str = "Printer on fire",
    body: str = "The printer on floor 2 is on fire.",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
    html: str | None = None,
) -> bytes:
    """A message as a mail client sends it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@desk.example"
    message["Subject"] = subject
    message["Date"] = formatdate()
    message["Message-ID"] = message_id or new_id()
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for filename, mime, data in attachments or []:
        maintype, subtype = mime.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


async def rows(database: Database, sql: str, **params: Any) -> list[Any]:
    async with database.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def value(database: Database, sql: str, **params: Any) -> Any:
    async with database.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def counts(database: Database) -> dict[str, int]:
    """Rows of every table a message may write (to prove nothing was half-stored)."""
    out = {}
    for table in ("tickets", "ticket_comments", "users", "uploads", "ticket_uploads", "forms"):
        out[table] = int(await value(database, f"SELECT count(*) FROM {table}"))
    return out


# -- real reply layouts (the quoted part as each client writes it) ----------------------------

GMAIL_REPLY = """Thanks, restarting it worked.

On Mon, 1 Dec 2026 at 10:02, Te Kudasai Support <support@desk.example>
wrote:

> Hello Alice,
>
> please restart the printer and tell us if it helps.
>
> Bob
"""

OUTLOOK_REPLY = """Yes, the error is back since this morning.

Kind regards
Alice Example
ACME Ltd.

________________________________
From: Te Kudasai Support <support@desk.example>
Sent: Monday, December 1, 2026 10:02 AM
To: Alice Example <alice@example.com>
Subject: [TK #1] Printer on fire

Hello Alice,

please restart the printer and tell us if it helps.
"""

APPLE_MAIL_REPLY = """It still does not print.

Sent from my iPhone

> On 1 Dec 2026, at 10:02, Te Kudasai Support <support@desk.example> wrote:
>
> Hello Alice,
> please restart the printer.
"""

THUNDERBIRD_REPLY = """Here is what the display says: E-42.

On 01.12.26 10:02, Te Kudasai Support wrote:
> Hello Alice,
> please restart the printer.

-- \nAlice Example
ACME Ltd. | +64 4 000 0000
"""

OUTLOOK_ORIGINAL_MESSAGE = """Please see below, the same again.

-----Original Message-----
From: Te Kudasai Support [mailto:support@desk.example]
Sent: Monday, December 1, 2026 10:02 AM
Subject: [TK #1] Printer on fire

please restart the printer
"""

GMAIL_HTML_ONLY = (
    '<div dir="ltr">The <b>scanner</b> jams too.<div><br></div><div>Alice</div></div><br>'
    '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, 1 Dec 2026 at 10:02, '
    'Support &lt;<a href="mailto:support@desk.example">support@desk.example</a>&gt; wrote:<br>'
    '</div><blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex">Please restart the '
    "printer.</blockquote></div>"
)
