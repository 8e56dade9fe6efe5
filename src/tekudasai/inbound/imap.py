"""The IMAP poller: a periodic job of the one queue (`tasks.PERIODIC`), every TK_IMAP_POLL
seconds, cluster-wide once per period.

Each run logs in, handles every UNSEEN message of the mailbox in TK_IMAP_URL's path (flagged
`\\Seen` and moved to TK_IMAP_DONE_FOLDER when set), then, where the server has IDLE, stays
in IDLE for most of the period and handles new mail as the server announces it. Two runs at
once (a slow one overlapping the next period, two nodes) cannot file a message twice: the
Message-ID claim in `service.process` decides. A message that fails for a reason of its own
is logged and flagged seen (the poller keeps going); when the database is unreachable the run
stops with the message still unseen, and the job's retry or the next period takes it again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from aioimaplib import aioimaplib
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from tekudasai.config import ConfigError, Settings
from tekudasai.inbound import service
from tekudasai.inbound.message import Unparseable
from tekudasai.jobs.worker import JobContext

log = logging.getLogger("tekudasai.inbound.imap")

TASK = "mail.imap_poll"
# Per run: a huge backlog is worked off over several periods, never in one endless job.
MAX_PER_RUN = 500
IDLE_SHARE = 0.8  # of the period, so a run ends before the next period's starts
COMMAND_TIMEOUT = 60.0
_UID = re.compile(rb"UID (\d+)")

# The database (or its network) failing: leave the message for the next run.
TEMPORARY = (OSError, TimeoutError, OperationalError, InterfaceError, DBAPIError)


class ImapError(Exception):
    """The server refused something the poller needs (login, the mailbox)."""


@dataclass(frozen=True)
class ImapTarget:
    host: str
    port: int
    tls: bool
    user: str
    password: str
    mailbox: str
    done_folder: str | None = None


def parse_imap_url(url: str, done_folder: str | None = None) -> ImapTarget:
    """`imaps://user:pass@host:993/INBOX` (or `imap://`, plain: loopback and tests)."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or parts.username is None:
        raise ConfigError("TK_IMAP_URL must look like imaps://user:pass@host:993/INBOX")
    tls = parts.scheme == "imaps"
    try:
        port = parts.port or (993 if tls else 143)
    except ValueError:
        raise ConfigError("TK_IMAP_URL: the port is not a number") from None
    return ImapTarget(
        host=parts.hostname,
        port=port,
        tls=tls,
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        mailbox=unquote(parts.path.lstrip("/")) or "INBOX",
        done_folder=done_folder or None,
    )


def poll_every(settings: Settings) -> float | None:
    return settings.imap_poll if settings.imap_url else None


def _quoted(mailbox: str) -> str:
    escaped = mailbox.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _ok(response: aioimaplib.Response, what: str) -> aioimaplib.Response:
    if response.result != "OK":
        raise ImapError(f"IMAP {what} refused: {response.result}")
    return response


class Poller:
    """One connection's work: drain the unseen messages, then IDLE for new ones."""

    def __init__(self, inbound: service.Inbound, target: ImapTarget) -> None:
        self.inbound = inbound
        self.target = target
        self.client: aioimaplib.IMAP4 | None = None
        self.handled = 0

    async def connect(self) -> aioimaplib.IMAP4:
        target = self.target
        client: aioimaplib.IMAP4
        if target.tls:
            client = aioimaplib.IMAP4_SSL(
                target.host,
                target.port,
                timeout=COMMAND_TIMEOUT,
                ssl_context=ssl.create_default_context(),
            )
        else:
            client = aioimaplib.IMAP4(target.host, target.port, timeout=COMMAND_TIMEOUT)
        self.client = client  # from here on `run` closes it, whatever fails next
        await client.wait_hello_from_server()
        _ok(await client.login(target.user, target.password), "login")
        _ok(await client.select(_quoted(target.mailbox)), f"SELECT {target.mailbox}")
        return client

    async def run(self, *, idle_seconds: float = 0.0) -> int:
        """Handle what is waiting, then (with IDLE) what arrives for `idle_seconds`."""
        try:
            client = await self.connect()
            await self.drain()
            deadline = time.monotonic() + idle_seconds
            while client.has_capability("IDLE") and (left := deadline - time.monotonic()) > 0.5:
                if await self._idle(left):
                    await self.drain()
        finally:
            await self.close()
        return self.handled

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            await asyncio.wait_for(client.logout(), 5)
        except Exception:  # the connection may be gone already; nothing left to tell it
            log.debug("IMAP logout failed", exc_info=True)
        transport = getattr(client.protocol, "transport", None)
        if transport is not None:
            transport.close()

    async def _idle(self, seconds: float) -> bool:
        """Wait in IDLE up to `seconds`; True when the server announced something."""
        assert self.client is not None
        idle = await self.client.idle_start(timeout=seconds)
        try:
            push = await self.client.wait_server_push(timeout=seconds + 1)
        except TimeoutError:
            push = None
        self.client.idle_done()
        await asyncio.wait_for(idle, COMMAND_TIMEOUT)
        return isinstance(push, list) and any(
            isinstance(line, bytes | bytearray) and (b"EXISTS" in line or b"RECENT" in line)
            for line in push
        )

    async def drain(self) -> None:
        assert self.client is not None
        found = _ok(await self.client.uid_search("UNSEEN", charset=None), "SEARCH")
        uids = [u for line in found.lines[:-1] for u in bytes(line).split() if u.isdigit()]
        for uid in uids[:MAX_PER_RUN]:
            await self._one(uid.decode())

    async def _one(self, uid: str) -> None:
        assert self.client is not None
        fetched = _ok(await self.client.uid("fetch", uid, "(BODY.PEEK[])"), "FETCH")
        raw = next((bytes(x) for x in fetched.lines if isinstance(x, bytearray)), None)
        done = True
        if raw is None:
            log.warning("IMAP message %s has no body; left as seen", uid)
            done = False
        else:
            try:
                outcome = await service.ingest(self.inbound, raw)
                self.handled += 1
            except Unparseable as exc:
                log.info("inbound mail ignored (unparseable: %s)", exc.reason)
            except TEMPORARY:
                # Unseen it stays: the job's retry or the next period takes it again.
                log.warning("database unavailable: IMAP message %s left for later", uid)
                raise
            except Exception:
                log.exception("inbound mail failed; left seen in the mailbox for a person")
                done = False
            else:
                log.debug("IMAP message %s: %s", uid, outcome.line())
        _ok(await self.client.uid("store", uid, "+FLAGS", "(\\Seen)"), "STORE")
        if done and self.target.done_folder:
            await self._move(uid, self.target.done_folder)

    async def _move(self, uid: str, folder: str) -> None:
        assert self.client is not None
        if self.client.has_capability("MOVE"):
            _ok(await self.client.uid("move", uid, _quoted(folder)), "MOVE")
            return
        _ok(await self.client.uid("copy", uid, _quoted(folder)), "COPY")
        _ok(await self.client.uid("store", uid, "+FLAGS", "(\\Deleted)"), "STORE")
        _ok(await self.client.expunge(), "EXPUNGE")


async def poll_task(ctx: JobContext) -> None:
    """The periodic job: one run of the poller (nothing while TK_IMAP_URL is unset)."""
    settings = ctx.settings
    if not settings.imap_url:
        return
    target = parse_imap_url(settings.imap_url, settings.imap_done_folder)
    poller = Poller(service.inbound_for(ctx.database, settings), target)
    handled = await poller.run(idle_seconds=settings.imap_poll * IDLE_SHARE)
    if handled:
        log.info("IMAP poll handled %d message(s)", handled)
