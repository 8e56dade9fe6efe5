"""Mail through the queue: enqueued in the request's transaction, sent by a worker with retries.

The job's arguments are sealed with a key derived from the master secret: they carry an address
and, for resets, a live sign-in link, which must not lie in the table in clear text.
"""

from __future__ import annotations

import base64
import json

from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.core.crypto import PiiCipher
from tekudasai.core.mail import send_mail
from tekudasai.jobs.queue import enqueue
from tekudasai.jobs.worker import JobContext

SEND_MAIL = "mail.send"
_PURPOSE = "job:mail"
# With the default backoff (10 s doubling, at most an hour) twelve attempts span about 8 hours.
MAIL_ATTEMPTS = 12


async def enqueue_mail(
    session: AsyncSession, cipher: PiiCipher, *, to: str, subject: str, body: str
) -> None:
    """Queue one plain-text mail in the caller's transaction (flushes, never commits)."""
    payload = json.dumps({"to": to, "subject": subject, "body": body}).encode()
    sealed = base64.b64encode(cipher.seal(payload, purpose=_PURPOSE)).decode()
    await enqueue(session, SEND_MAIL, {"sealed": sealed}, max_attempts=MAIL_ATTEMPTS)


async def send_mail_task(ctx: JobContext, *, sealed: str) -> None:
    cipher = PiiCipher(ctx.settings.master_secret())
    mail = json.loads(cipher.unseal(base64.b64decode(sealed), purpose=_PURPOSE))
    await send_mail(ctx.settings, to=mail["to"], subject=mail["subject"], body=mail["body"])
