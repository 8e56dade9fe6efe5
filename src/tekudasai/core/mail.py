"""Outgoing mail: SMTP when TK_SMTP_URL is set, else `.eml` files in TK_DATA_DIR/outbox.

Callers queue mail (`tekudasai.jobs.mail.enqueue_mail`); the queue's worker calls `send_mail`.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Mapping
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Compat32
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosmtplib
from aiosmtplib.email import extract_recipients, extract_sender

from tekudasai.config import ConfigError, Settings

log = logging.getLogger("tekudasai.mail")

FALLBACK_DOMAIN = "tekudasai.invalid"


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    body: str,
    html: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Message:
    """A text mail, with an HTML alternative when `html` is given. `headers` adds or replaces
    headers (a notification brings its own Message-ID, threading and List-Unsubscribe)."""
    # A line break in a header value would end the header: subjects come from ticket summaries.
    subject = " ".join(subject.split())
    extra = dict(headers or {})
    if html is not None and all(v.isascii() for v in (sender, to, *extra.values())):
        return _build_alternative(sender, to, subject, body, html, extra)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain="tekudasai")
    for name, value in extra.items():
        del message[name]
        message[name] = value
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


class _PlainHeaders(Compat32):
    """compat32, whose folding (the `email.header` machinery) was half of writing a
    notification out: 17 headers at about 30 µs each. A header that is printable ASCII (no
    line break: an injected header still fails there) and fits on its line comes out as
    `Name: value`, which is what that machinery returns for it; anything else is folded by it
    as before.
    tests/notifications/test_mime.py compares both on many headers. Measured on a notification
    with text and HTML parts: `as_bytes` 516 to 726 → 275 µs (two runs)."""

    def _fold(self, name: str, value: Any, sanitize: bool) -> str:
        limit = self.max_line_length
        if (
            type(value) is str
            and value.isascii()
            and value.isprintable()
            and limit is not None
            and len(name) + 2 + len(value) <= limit
        ):
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)  # type: ignore[misc]


_PLAIN_HEADERS = _PlainHeaders()
_SMTP_PLAIN_HEADERS = _PLAIN_HEADERS.clone(linesep="\r\n")


def _build_alternative(
    sender: str, to: str, subject: str, body: str, html: str, headers: dict[str, str]
) -> Message:
    """The same text+HTML mail through the `email.mime` classes: about four times less CPU
    than EmailMessage's header parsing and refolding, which was most of a notification's
    cost at the worker. Only for ASCII addresses and headers (the subject may be anything:
    it is RFC 2047 encoded); anything else takes the EmailMessage path."""
    message = MIMEMultipart("alternative", policy=_PLAIN_HEADERS)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")  # type: ignore[assignment]
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = headers.pop("Message-ID", "") or make_msgid(domain="tekudasai")
    for name, value in headers.items():
        del message[name]
        message[name] = value
    for text, subtype in ((body, "plain"), (html, "html")):
        part = MIMENonMultipart("text", subtype, policy=_PLAIN_HEADERS, charset="utf-8")
        # Quoted-printable (the text stays readable in the source, unlike base64) by
        # binascii's C encoder: `set_payload(text, charset)` encodes in pure Python, 177
        # against 37 µs for a notification's part. Both decode to the same text.
        part["Content-Transfer-Encoding"] = "quoted-printable"
        part.set_payload(binascii.b2a_qp(text.encode(), istext=True).decode("ascii"))
        message.attach(part)
    return message


def mail_domain(settings: Settings) -> str:
    """The public host name, for addresses and Message-IDs (an IP address or localhost cannot
    take mail)."""
    host = (urlsplit(settings.base_url).hostname or "").lower()
    if not host or host == "localhost" or host.replace(".", "").isdigit() or ":" in host:
        host = FALLBACK_DOMAIN
    return host


def sender_for(settings: Settings) -> str:
    """TK_MAIL_FROM, else no-reply@ the public host name."""
    return settings.mail_from or f"Te Kudasai <no-reply@{mail_domain(settings)}>"


async def send_mail(
    settings: Settings,
    *,
    to: str,
    subject: str,
    body: str,
    html: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Send one mail (SMTP, else a file in the outbox); errors propagate."""
    message = build_message(
        sender=sender_for(settings), to=to, subject=subject, body=body, html=html, headers=headers
    )
    if settings.smtp_url:
        await _send_smtp(settings.smtp_url, message)
        log.info("mail sent by SMTP", extra={"subject": subject})
    else:
        path = await asyncio.to_thread(_write_outbox, settings.outbox_dir, message)
        log.info("mail written to the outbox", extra={"path": str(path), "subject": subject})


async def _send_smtp(url: str, message: Message) -> None:
    """Send over a connection of this process's pool: a burst of notifications (a new ticket
    told to many agents, a queue catching up after an outage) reuses one SMTP session (and
    TLS handshake) per concurrent sender instead of opening one per mail."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError("TK_SMTP_URL must look like smtp://user:pass@host:port (or smtps://)")
    key = (id(asyncio.get_running_loop()), url)
    reused = _take_idle(key)
    if reused is not None:
        try:
            await _deliver(reused, message)
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
            # The server closed the idle session before our first command: nothing was sent.
            _close_quietly(reused)
        except BaseException:
            _close_quietly(reused)
            raise
        else:
            _give_back(key, reused)
            return
    tls = parts.scheme == "smtps"
    client = aiosmtplib.SMTP(
        hostname=parts.hostname,
        port=parts.port or (465 if tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=tls,
        # Plain smtp:// upgrades with STARTTLS when the server offers it.
        start_tls=None if not tls else False,
        timeout=15,
    )
    await client.connect()
    try:
        await _deliver(client, message)
    except BaseException:
        _close_quietly(client)
        raise
    _give_back(key, client)


async def _deliver(client: aiosmtplib.SMTP, message: Message) -> None:
    """`send_message`, which flattens with compat32's slow folding whatever the message's
    policy: a mail built here (ASCII addresses, 7-bit parts) is flattened with its own policy
    and handed to `sendmail` with the same envelope `send_message` would take from it."""
    if not isinstance(message.policy, _PlainHeaders):
        await client.send_message(message)
        return
    sender = extract_sender(message)
    assert sender is not None  # build_message always writes From
    data = message.as_bytes(policy=_SMTP_PLAIN_HEADERS)
    await client.sendmail(sender, extract_recipients(message), data)


# Idle SMTP sessions per (event loop, TK_SMTP_URL): kept a few seconds only, so a server's own
# idle timeout (Postfix: 300 s) never meets one, and a quiet process holds none.
IDLE_SMTP_S = 5.0
MAX_IDLE_SMTP = 8
_idle_smtp: dict[tuple[int, str], list[tuple[float, aiosmtplib.SMTP]]] = {}


def _take_idle(key: tuple[int, str]) -> aiosmtplib.SMTP | None:
    idle = _idle_smtp.get(key, [])
    now = time.monotonic()
    while idle:
        since, client = idle.pop()
        if now - since <= IDLE_SMTP_S and client.is_connected:
            return client
        _close_quietly(client)
    return None


def _give_back(key: tuple[int, str], client: aiosmtplib.SMTP) -> None:
    idle = _idle_smtp.setdefault(key, [])
    if len(idle) < MAX_IDLE_SMTP and client.is_connected:
        idle.append((time.monotonic(), client))
        # Say goodbye once it has been idle too long, if nothing took it meanwhile.
        asyncio.get_running_loop().call_later(IDLE_SMTP_S + 0.1, _retire_expired, key)
    else:
        _close_quietly(client)


def _retire_expired(key: tuple[int, str]) -> None:
    idle = _idle_smtp.get(key, [])
    now = time.monotonic()
    for entry in [e for e in idle if now - e[0] > IDLE_SMTP_S]:
        idle.remove(entry)
        task = asyncio.get_running_loop().create_task(_quit(entry[1]))
        _retiring.add(task)
        task.add_done_callback(_retiring.discard)


_retiring: set[asyncio.Task[None]] = set()


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await asyncio.wait_for(client.quit(), 5)
    except Exception:
        _close_quietly(client)


def _close_quietly(client: aiosmtplib.SMTP) -> None:
    """Drop the connection without a QUIT round trip (the server sees the socket close)."""
    with contextlib.suppress(Exception):
        client.close()


def _write_outbox(outbox: Path, message: Message) -> Path:
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}.eml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(message.as_bytes())
    return path
