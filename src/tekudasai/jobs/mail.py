"""Mail through the queue: enqueued in the request's transaction, sent by a worker with retries.

The job's arguments are sealed with a key derived from the master secret: they carry an address
and, for resets, a live sign-in link, which must not lie in the table in clear text.
A mail may bring an HTML part and headers of its own (notifications: Message-ID, threading,
Reply-To, List-Unsubscribe); each mail is one job, so one failing address delays only itself.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.core.crypto import PiiCipher
from tekudasai.core.mail import send_mail
from tekudasai.db.raw import RawStatement
from tekudasai.jobs.queue import CHANNEL
from tekudasai.jobs.worker import JobContext

SEND_MAIL = "mail.send"
_PURPOSE = "job:mail"
# With the default backoff (10 s doubling, at most an hour) twelve attempts span about 8 hours.
MAIL_ATTEMPTS = 12


@dataclass(frozen=True)
class OutgoingMail:
    to: str
    subject: str
    body: str
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def _sealed_args(cipher: PiiCipher, mail: OutgoingMail) -> dict[str, Any]:
    payload: dict[str, Any] = {"to": mail.to, "subject": mail.subject, "body": mail.body}
    if mail.html is not None:
        payload["html"] = mail.html
    if mail.headers:
        payload["headers"] = dict(mail.headers)
    sealed = cipher.seal(json.dumps(payload).encode(), purpose=_PURPOSE)
    return {"sealed": base64.b64encode(sealed).decode()}


async def enqueue_mail(
    session: AsyncSession,
    cipher: PiiCipher,
    *,
    to: str,
    subject: str,
    body: str,
    html: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Queue one mail in the caller's transaction (flushes, never commits)."""
    await enqueue_mails(
        session, cipher, [OutgoingMail(to, subject, body, html, dict(headers or {}))]
    )


# One job per mail, for a statement's WITH clause (`mail_job_values` gives its values): the
# notifications put it in the dispatch's one write statement.
MAIL_JOBS_SQL = (
    "INSERT INTO jobs (name, args, max_attempts)"
    " SELECT CAST(:mail_task AS varchar), CAST(mail.args AS jsonb),"
    " CAST(:mail_attempts AS integer)"
    " FROM unnest(CAST(:mail_args AS text[])) AS mail(args)"
)
# The jobs and the NOTIFY that wakes the workers (delivered on COMMIT only, as
# `jobs.queue.enqueue` does), in one statement.
_ENQUEUE_MAILS = RawStatement(
    text(f"WITH added AS ({MAIL_JOBS_SQL}) SELECT pg_notify(CAST(:mail_channel AS text), '')")
)


def mail_job_values(cipher: PiiCipher, mails: Sequence[OutgoingMail]) -> dict[str, Any]:
    """The values MAIL_JOBS_SQL names, and `mail_channel` for the NOTIFY."""
    return {
        "mail_task": SEND_MAIL,
        "mail_args": [json.dumps(_sealed_args(cipher, mail)) for mail in mails],
        "mail_attempts": MAIL_ATTEMPTS,
        "mail_channel": CHANNEL,
    }


async def enqueue_mails(
    session: AsyncSession, cipher: PiiCipher, mails: Sequence[OutgoingMail]
) -> None:
    """Queue one job per mail in the caller's transaction: one statement however many there
    are (a new ticket may tell every agent who opted in)."""
    if not mails:
        return
    await _ENQUEUE_MAILS.fetchrow(session, **mail_job_values(cipher, mails))


async def send_mail_task(ctx: JobContext, *, sealed: str) -> None:
    cipher = PiiCipher(ctx.settings.master_secret())
    mail = json.loads(cipher.unseal(base64.b64decode(sealed), purpose=_PURPOSE))
    await send_mail(
        ctx.settings,
        to=mail["to"],
        subject=mail["subject"],
        body=mail["body"],
        html=mail.get("html"),
        headers=mail.get("headers"),
    )
