"""Sending deliveries: the `webhooks.deliver` job, one HTTP POST per try.

Order per ticket. Deliveries of one webhook for one ticket form a lane ordered by event id,
and only the lane's head (its oldest pending delivery) is ever sent. A job first waits for
earlier events of the ticket still being dispatched (their row locks; one not yet started
means "try again shortly"), so every earlier delivery exists, then leases the head
(`leased_by` = its job id, kept until its next retry): normally the head's own job does, and
a later delivery's job takes over a head that nobody holds. A job that finds the head held by
another ends at once; whoever finishes the head (delivered or given up) enqueues a job for
the next pending delivery. So one delivery is never sent by two jobs at once, and a later one
never overtakes an earlier one. Retries are the queue's (backoff 10 s, doubling,
capped at an hour): MAX_TRIES tries span about 85 minutes, then the delivery is given up.

The connection goes to the address the guard has just checked (not a second DNS lookup), with
the host name in `Host` and in TLS SNI/verification; no redirects; connect/read timeouts and a
cap on the whole try; at most READ_LIMIT bytes of the answer are read. Keep-alive connections
are reused only for the same host name at the same checked address.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import certifi
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.core.crypto import PiiCipher
from tekudasai.jobs.queue import enqueue
from tekudasai.jobs.worker import Backoff, JobContext
from tekudasai.webhooks import signing
from tekudasai.webhooks.urlguard import UrlRefused, check_syntax, checked_address

if TYPE_CHECKING:
    # Imported on the first delivery: httpx brings its command line (click, rich, pygments)
    # along, some 15 MB in every web worker of a desk that may have no webhooks.
    import httpx

log = logging.getLogger("tekudasai.webhooks")

DELIVER = "webhooks.deliver"
MAX_TRIES = 10
TIMEOUT = {"connect": 5.0, "read": 10.0, "write": 10.0, "pool": 5.0}  # seconds (httpx.Timeout)
TRY_DEADLINE_S = 20.0
READ_LIMIT = 64 * 1024
LOG_BODY_CHARS = 2048
LEASE_S = 120.0
USER_AGENT = "TeKudasai-Webhooks/1"
SECRET_CONTEXT = "webhook.secret"  # noqa: S105 - an encryption context, not a secret


class DeliveryFailed(Exception):
    """A try failed; the queue retries the job with backoff."""


class LaneBusy(Exception):
    """An earlier event of the ticket is not dispatched yet: try again shortly."""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None
    body: str | None
    error: str | None
    duration_ms: int


@functools.cache
def _tls() -> ssl.SSLContext:
    # Built once: a fresh context per try would load the CA bundle every time.
    return ssl.create_default_context(cafile=certifi.where())


@functools.cache
def _cipher(master: bytes) -> PiiCipher:
    # Decrypts under any key id; keys are derived once per process, not per delivery.
    return PiiCipher(master)


# Clients per event loop, per (scheme, host name, checked address, port): keep-alive
# connections are reused only for the same name at the same address just checked.
MAX_CLIENTS = 32
_ClientKey = tuple[str, str, str, int]
_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, OrderedDict[_ClientKey, httpx.AsyncClient]
] = weakref.WeakKeyDictionary()


async def _client(key: _ClientKey) -> httpx.AsyncClient:
    per_loop = _clients.setdefault(asyncio.get_running_loop(), OrderedDict())
    client = per_loop.get(key)
    if client is not None and not client.is_closed:
        per_loop.move_to_end(key)
        return client
    import httpx

    client = httpx.AsyncClient(
        verify=_tls(),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=10, max_keepalive_connections=4, keepalive_expiry=30),
    )
    per_loop[key] = client
    while len(per_loop) > MAX_CLIENTS:
        _, oldest = per_loop.popitem(last=False)
        await oldest.aclose()
    return client


def _clean(raw: bytes) -> str:
    # PostgreSQL text holds no NUL; the log shows the beginning only.
    return raw[: LOG_BODY_CHARS * 4].decode("utf-8", "replace").replace("\x00", "")[:LOG_BODY_CHARS]


async def send(url: str, secret: str, msg_id: str, body: str, *, allow_private: bool) -> Outcome:
    """One signed POST of `body`; never raises for what the receiver or network does."""
    import httpx

    started = time.monotonic()

    def done(ok: bool, status: int | None, text: str | None, error: str | None) -> Outcome:
        return Outcome(ok, status, text, error, int((time.monotonic() - started) * 1000))

    try:
        checked = check_syntax(url)
        address = await checked_address(checked, allow_private=allow_private)
    except UrlRefused as exc:
        return done(False, None, None, str(exc.errors[0]["message"]) if exc.errors else exc.message)
    parts = urlsplit(checked.url)
    ip_host = f"[{address.compressed}]" if address.version == 6 else address.compressed
    target = urlunsplit((parts.scheme, f"{ip_host}:{checked.port}", parts.path, parts.query, ""))
    host_header = parts.netloc
    payload = body.encode()
    headers = {
        **signing.headers(secret, msg_id, int(time.time()), payload),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": host_header,
        # Raw bytes are read (and capped): no compressed answer to inflate.
        "accept-encoding": "identity",
    }
    extensions: dict[str, Any] = {}
    if checked.scheme == "https":
        extensions["sni_hostname"] = checked.host
    try:
        client = await _client((checked.scheme, checked.host, address.compressed, checked.port))
        async with (
            asyncio.timeout(TRY_DEADLINE_S),
            client.stream(
                "POST",
                target,
                content=payload,
                headers=headers,
                extensions=extensions,
                timeout=httpx.Timeout(**TIMEOUT),
            ) as response,
        ):
            received = bytearray()
            async for chunk in response.aiter_raw():
                received += chunk
                if len(received) >= READ_LIMIT:
                    break
            status = response.status_code
            answer = _clean(bytes(received))
    except TimeoutError:
        return done(False, None, None, f"no complete answer within {TRY_DEADLINE_S:.0f} s")
    except httpx.TimeoutException as exc:
        return done(False, None, None, f"timed out ({type(exc).__name__})")
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        return done(False, None, None, f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= status < 300:
        return done(True, status, answer, None)
    if 300 <= status < 400:
        where = response.headers.get("location", "")[:200]
        return done(False, status, answer, f"redirect to {where!r} not followed")
    return done(False, status, answer, f"HTTP {status}")


@dataclass(frozen=True)
class Claimed:
    id: int
    webhook_id: str
    ticket_id: int | None
    event_id: int | None
    attempts: int
    msg_id: str
    body: str
    url: str
    enabled: bool
    secret_ciphertext: bytes


_EARLIER_EVENTS = text(
    "SELECT id FROM ticket_events WHERE ticket_id = :ticket AND id < :event "
    "AND dispatched_at IS NULL FOR UPDATE"
)
_HEAD = text(
    "SELECT id FROM webhook_deliveries WHERE webhook_id = :webhook AND ticket_id = :ticket "
    "AND status = 'pending' ORDER BY event_id LIMIT 1 FOR UPDATE"
)
_LEASE = text(
    "UPDATE webhook_deliveries d SET leased_by = :job, "
    "lease_until = now() + make_interval(secs => :lease) FROM webhooks w "
    "WHERE d.id = :id AND w.id = d.webhook_id AND d.status = 'pending' "
    "AND (d.lease_until IS NULL OR d.lease_until < now() OR d.leased_by = :job) "
    "RETURNING d.id, d.webhook_id, d.ticket_id, d.event_id, d.attempts, d.msg_id, d.body, "
    "w.url, w.enabled, w.secret_ciphertext"
)


async def _claim(session: AsyncSession, delivery_id: int, job_id: int) -> Claimed | None:
    row = (
        await session.execute(
            text(
                "SELECT webhook_id, ticket_id, event_id FROM webhook_deliveries "
                "WHERE id = :id AND status = 'pending'"
            ),
            {"id": delivery_id},
        )
    ).first()
    if row is None:
        return None
    if row.ticket_id is not None and row.event_id is not None:
        lane = {"ticket": row.ticket_id, "event": row.event_id}
        # Waits for a dispatch in progress (it holds the event row); one not started yet
        # means the earlier delivery may not exist: come back later.
        if (await session.execute(_EARLIER_EVENTS, lane)).first() is not None:
            raise LaneBusy(f"earlier events of ticket {row.ticket_id} are not dispatched yet")
        # The lane's head is sent first, by whichever job gets its lease: normally its own
        # job; another delivery's job takes over a head nobody holds (its job is late, or
        # died), so a lane never stalls. Locking it waits for a finisher in progress.
        head = await session.scalar(_HEAD, {"ticket": row.ticket_id, "webhook": row.webhook_id})
        if head is not None:
            delivery_id = int(head)
    claimed = (
        await session.execute(_LEASE, {"id": delivery_id, "job": job_id, "lease": LEASE_S})
    ).first()
    return Claimed(*claimed) if claimed is not None else None


_RECORD = text(
    "UPDATE webhook_deliveries SET attempts = attempts + :tried, status = :status, "
    "response_status = :code, response_body = :answer, error = :error, duration_ms = :ms, "
    "last_attempt_at = CASE WHEN :tried = 1 THEN now() ELSE last_attempt_at END, "
    "delivered_at = CASE WHEN :status = 'delivered' THEN now() END, "
    "leased_by = CASE WHEN :status = 'pending' THEN leased_by END, "
    "lease_until = CASE WHEN :status = 'pending' "
    "THEN now() + make_interval(secs => :hold) END "
    "WHERE id = :id AND leased_by = :job"
)
_NEXT = text(
    "SELECT id FROM webhook_deliveries WHERE webhook_id = :webhook AND ticket_id = :ticket "
    "AND status = 'pending' AND event_id > :event ORDER BY event_id LIMIT 1"
)


async def _finish(
    session: AsyncSession,
    claimed: Claimed,
    job_id: int,
    outcome: Outcome | None,
    *,
    status: str,
    error: str | None,
    hold_s: float,
) -> None:
    await session.execute(
        _RECORD,
        {
            "id": claimed.id,
            "job": job_id,
            "tried": 0 if outcome is None else 1,
            "status": status,
            "code": outcome.status if outcome else None,
            "answer": outcome.body if outcome else None,
            "error": error,
            "ms": outcome.duration_ms if outcome else None,
            "hold": hold_s,
        },
    )
    if status != "pending" and claimed.ticket_id is not None and claimed.event_id is not None:
        following = await session.scalar(
            _NEXT,
            {"webhook": claimed.webhook_id, "ticket": claimed.ticket_id, "event": claimed.event_id},
        )
        if following is not None:
            await enqueue_delivery(session, following)


async def enqueue_delivery(session: AsyncSession, delivery_id: int) -> None:
    await enqueue(session, DELIVER, {"deliveryId": delivery_id}, max_attempts=MAX_TRIES)


async def deliver_task(ctx: JobContext, *, deliveryId: int) -> None:
    database = ctx.database
    async with database.sessionmaker() as session, session.begin():
        claimed = await _claim(session, deliveryId, ctx.job_id)
    if claimed is None:
        return
    if not claimed.enabled:
        async with database.sessionmaker() as session, session.begin():
            await _finish(
                session,
                claimed,
                ctx.job_id,
                None,
                status="failed",
                error="not sent: the webhook is disabled",
                hold_s=0,
            )
        return
    secret = _cipher(ctx.settings.master_secret()).decrypt(
        claimed.secret_ciphertext, context=SECRET_CONTEXT
    )
    outcome = await send(
        claimed.url,
        secret,
        claimed.msg_id,
        claimed.body,
        allow_private=ctx.settings.webhook_allow_private,
    )
    tries = claimed.attempts + 1
    give_up = not outcome.ok and (tries >= MAX_TRIES or ctx.attempt >= MAX_TRIES)
    status = "delivered" if outcome.ok else ("failed" if give_up else "pending")
    # Keep the lease until this job's retry (and a margin): no other job sends it meanwhile.
    hold = Backoff().delay(ctx.attempt) + LEASE_S
    async with database.sessionmaker() as session, session.begin():
        await _finish(
            session, claimed, ctx.job_id, outcome, status=status, error=outcome.error, hold_s=hold
        )
    if status == "pending":
        raise DeliveryFailed(f"delivery {claimed.id}, try {tries}: {outcome.error}")
