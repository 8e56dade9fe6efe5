"""The process's one LISTEN connection, fanned out to its streams' bounded queues.

Payloads on `tk_live`: a bare number is a `ticket_events` id (sent by every ticket change on
commit); `p:{json}` a presence, `n:{json}` a notification for one user (live/publish.py). The
hub reads each event once (one query per batch of ids, not per client), formats it once, and
offers the same bytes to every stream allowed to see it: the staff's streams and the streams
of the one customer concerned, found by index rather than by testing every open stream. A
stream whose queue is full is dropped, not buffered: its client reconnects and resumes with
Last-Event-ID.

Every few seconds one query re-checks the sessions and tokens of all streams of the process:
a signed-out session, a revoked token or a banned user ends its streams, a changed role
changes what they see.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import signal
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tekudasai.accounts.dependencies import STAFF_ROLES
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.handlers import database_unavailable
from tekudasai.db.engine import create_engine, make_sessionmaker
from tekudasai.db.session import Database
from tekudasai.live import feed
from tekudasai.tickets.events import LIVE_CHANNEL

log = logging.getLogger(__name__)

RELISTEN_AFTER_S = 1.0
# A failed read of notified events is tried again (as a catch-up) after this.
RETRY_S = 1.0
# Per process, outside the request pool: LISTEN, and one for reads (plus one overflow).
HUB_CONNECTIONS = 2
# A change's fan-out offers its event to this many streams, then lets the loop run what else
# is ready (above all the request that caused the change, whose answer must not wait for
# 500 writes) before the next slice.
FAN_OUT_SLICE = 32
# The hub reads notified events this long after the first NOTIFY, not at once. The NOTIFY
# arrives at the commit, while the request that made the change is still finishing (closing
# its session, writing its answer); reading and formatting the event then took turns with it
# on the event loop. Measured with 500 streams open (two servers, requests alternating
# between them): the causing request 6.9 % faster (95 % interval 3.6 to 9.8 %). Events that
# arrive meanwhile share the one read.
LOAD_DELAY_S = 0.005
# An SSE comment line: keeps idle connections (and proxies) open, finds closed ones.
HEARTBEAT = b": heartbeat\n\n"
PRESENCE_PREFIX = "p:"
NOTIFICATION_PREFIX = "n:"

_RECHECK = text(
    """
    SELECT s.id AS key, u.role FROM sessions s JOIN users u ON u.id = s.user_id
    WHERE s.id = ANY(:sessions) AND s.expires_at > now()
      AND NOT (u.banned AND (u.ban_expires IS NULL OR u.ban_expires > now()))
    UNION ALL
    SELECT t.id, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id
    WHERE t.id = ANY(:tokens) AND (t.expires_at IS NULL OR t.expires_at > now())
      AND NOT (u.banned AND (u.ban_expires IS NULL OR u.ban_expires > now()))
    """
)


@dataclass(eq=False)
class Subscriber:
    """One open stream: who it is for and its bounded queue of (event id, SSE bytes)."""

    user_id: str
    role: str
    session_id: str | None
    token_id: str | None
    queue: asyncio.Queue[tuple[int | None, bytes] | None]
    closed: str | None = None  # why it ended: "slow", "signed out", "gone"
    # The stream's writer, and since when (loop time) its current write has been waiting:
    # the hub's sweep cuts a write blocked longer than TK_LIVE_SEND_TIMEOUT_S.
    writer: asyncio.Task[Any] | None = None
    writing_since: float | None = None
    cut: bool = False

    @property
    def staff(self) -> bool:
        return self.role in STAFF_ROLES

    def may_see(self, event: feed.LiveEvent) -> bool:
        if event.user_id is not None:
            return event.user_id == self.user_id
        if self.staff:
            return True
        return not event.staff_only and not event.internal and event.reporter_id == self.user_id

    def offer(self, item: tuple[int | None, bytes]) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.close("slow")

    def close(self, reason: str) -> None:
        """End the stream: its reader wakes on the sentinel (or finds `closed` set)."""
        if self.closed:
            return
        self.closed = reason
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


class Hub:
    def __init__(self, database: Database, cipher: PiiCipher, settings: Settings) -> None:
        self.database = database
        self.cipher = cipher
        self.settings = settings
        self.subscribers: set[Subscriber] = set()
        # The audiences an event can have: every staff stream, or one user's streams. With 500
        # customers connected, a change on one ticket touches that customer's streams only.
        self._staff: set[Subscriber] = set()
        self._by_user: dict[str, set[Subscriber]] = {}
        self.listening = asyncio.Event()
        self.dropped = 0  # slow streams dropped since start (bench and tests read it)
        self._pending: list[int] = []
        self._wake = asyncio.Event()
        self._last_id = 0
        self._catch_up = False
        self._engine: AsyncEngine | None = None
        self._sessionmaker: Any = None

    @property
    def last_event_id(self) -> int:
        """The newest event this process has handed to its streams (0: none yet)."""
        return self._last_id

    # -- subscribers ---------------------------------------------------------------------------

    def subscribe(
        self, *, user_id: str, role: str, session_id: str | None, token_id: str | None
    ) -> Subscriber:
        sub = Subscriber(
            user_id=user_id,
            role=role,
            session_id=session_id,
            token_id=token_id,
            queue=asyncio.Queue(self.settings.live_queue_size),
        )
        self.subscribers.add(sub)
        self._by_user.setdefault(user_id, set()).add(sub)
        if sub.staff:
            self._staff.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        self._staff.discard(sub)
        own = self._by_user.get(sub.user_id)
        if own is not None:
            own.discard(sub)
            if not own:
                del self._by_user[sub.user_id]
        if sub.closed == "slow":
            self.dropped += 1

    def _set_role(self, sub: Subscriber, role: str) -> None:
        sub.role = role
        if sub.staff:
            self._staff.add(sub)
        else:
            self._staff.discard(sub)

    def audience(self, event: feed.LiveEvent) -> list[Subscriber]:
        """The streams that may see `event`, each once."""
        if event.user_id is not None:
            return list(self._by_user.get(event.user_id, ()))
        subs = list(self._staff)
        if event.reporter_id is not None and not (event.staff_only or event.internal):
            subs += [s for s in self._by_user.get(event.reporter_id, ()) if not s.staff]
        return subs

    def publish(self, event: feed.LiveEvent) -> None:
        item = (event.id, event.chunk)
        for sub in self.audience(event):
            if sub.may_see(event):
                sub.offer(item)

    async def fan_out(self, event: feed.LiveEvent) -> None:
        """`publish`, a slice of streams at a time: each offer wakes a stream's writer, and
        waking all 500 at once queued the causing request's last steps behind 500 writes."""
        item = (event.id, event.chunk)
        subs = self.audience(event)
        for start in range(0, len(subs), FAN_OUT_SLICE):
            if start:
                await asyncio.sleep(0)
            for sub in subs[start : start + FAN_OUT_SLICE]:
                if sub.may_see(event):
                    sub.offer(item)

    def sweep(self) -> None:
        """Cut every write blocked longer than the send timeout (its client stopped reading):
        one timer for all streams instead of a timer armed and disarmed around each write."""
        now = asyncio.get_running_loop().time()
        limit = self.settings.live_send_timeout_s
        for sub in list(self.subscribers):
            since = sub.writing_since
            if since is not None and now - since >= limit and not sub.cut:
                sub.cut = True
                sub.close("slow")
                if sub.writer is not None:
                    sub.writer.cancel()

    def heartbeat(self) -> None:
        """One timer for every stream instead of one per stream and per event: a stream with
        nothing queued gets a comment line."""
        for sub in list(self.subscribers):
            if sub.queue.empty():
                sub.offer((None, HEARTBEAT))

    # -- running -------------------------------------------------------------------------------

    def close_all(self, reason: str) -> None:
        for sub in list(self.subscribers):
            sub.close(reason)

    def _end_streams_on_exit_signals(self) -> dict[int, Any]:
        """A server shutting down waits for open responses, and a stream never ends by itself:
        on SIGTERM/SIGINT end every stream (clients reconnect elsewhere), then let the
        server's own handler run. Only the main thread can handle signals. Returns the
        handlers it replaced, for `run` to put back when the hub stops."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        loop = asyncio.get_running_loop()
        replaced: dict[int, Any] = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue

            def handler(signum: int, frame: Any, previous: Any = previous) -> None:
                with contextlib.suppress(RuntimeError):  # the loop is already closed
                    loop.call_soon_threadsafe(self.close_all, "shutdown")
                previous(signum, frame)

            signal.signal(sig, handler)
            replaced[sig] = (previous, handler)
        return replaced

    async def run(self) -> None:
        replaced = self._end_streams_on_exit_signals()
        # The hub's own small engine: the LISTEN connection (held for the process's life) and
        # one for reading events and re-checking sessions. They take no place in the request
        # pool, its gauges and alerts, and never mix with a request's statements.
        self._engine = create_engine(
            self.database.url,
            self.settings.model_copy(update={"db_max_overflow": 1}),
            pool_size=HUB_CONNECTIONS,
        )
        self._sessionmaker = make_sessionmaker(self._engine)
        loops = [
            asyncio.create_task(self._listen_loop(), name="tk-live-listen"),
            asyncio.create_task(self._load_loop(), name="tk-live-load"),
            asyncio.create_task(self._recheck_loop(), name="tk-live-recheck"),
            asyncio.create_task(self._heartbeat_loop(), name="tk-live-heartbeat"),
            asyncio.create_task(self._sweep_loop(), name="tk-live-sweep"),
        ]
        try:
            await asyncio.gather(*loops)
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            self.close_all("shutdown")
            await self._engine.dispose()
            for sig, (previous, ours) in replaced.items():
                if signal.getsignal(sig) is ours:  # nobody wrapped it since
                    signal.signal(sig, previous)

    async def _listen_loop(self) -> None:
        assert self._engine is not None
        settings = self.settings
        if not settings.db_pgbouncer:
            await self._listen(self._engine)
            return
        # LISTEN through PgBouncer in transaction mode lands on whichever server connection
        # runs it: notifications then reach strangers or nobody ("got packet 'A' from server
        # when not linked"). Around the pooler, as the job queue does (db/session.py).
        if not settings.db_direct_url:
            log.warning("live updates are off: LISTEN needs TK_DB_DIRECT_URL behind PgBouncer")
            return
        engine = create_engine(
            settings.db_direct_url,
            settings,
            pool_size=1,
            application_name="tekudasai-live",
            pgbouncer=False,
        )
        try:
            await self._listen(engine)
        finally:
            await engine.dispose()

    async def _listen(self, engine: Any) -> None:
        while True:
            try:
                async with engine.connect() as conn:
                    raw = (await conn.get_raw_connection()).driver_connection
                    assert raw is not None
                    lost = asyncio.Event()
                    raw.add_termination_listener(functools.partial(_set, lost))
                    await raw.add_listener(LIVE_CHANNEL, self._on_notify)
                    self.listening.set()
                    if self._last_id:
                        self._catch_up = True
                        self._wake.set()
                    try:
                        await lost.wait()
                    finally:
                        self.listening.clear()
                        with contextlib.suppress(Exception):
                            await raw.remove_listener(LIVE_CHANNEL, self._on_notify)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listening for live updates failed (retrying): %s", exc)
            await asyncio.sleep(RELISTEN_AFTER_S)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload[:1].isdigit():
            # Event ids, one or several joined by commas (db/wakeups.py batches them).
            ids = [int(part) for part in payload.split(",") if part.isdigit()]
            self._pending.extend(ids)
            self._wake.set()
        elif payload.startswith(PRESENCE_PREFIX):
            self._presence(payload[len(PRESENCE_PREFIX) :])
        elif payload.startswith(NOTIFICATION_PREFIX):
            self._notification(payload[len(NOTIFICATION_PREFIX) :])

    def _presence(self, raw: str) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            data = json.loads(raw)
            self.publish(
                feed.LiveEvent(
                    id=None,
                    ticket_id=int(data["ticketId"]),
                    reporter_id=None,
                    internal=False,
                    staff_only=True,
                    user_id=None,
                    chunk=feed.sse("presence", data),
                )
            )

    def _notification(self, raw: str) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            data = json.loads(raw)
            user_id = str(data.pop("userId"))
            self.publish(
                feed.LiveEvent(
                    id=None,
                    ticket_id=data.get("ticketId"),
                    reporter_id=None,
                    internal=False,
                    staff_only=False,
                    user_id=user_id,
                    chunk=feed.sse("notification", data),
                )
            )

    async def _load_loop(self) -> None:
        """Read the notified events in batches: one query however many arrived meanwhile."""
        while True:
            await self._wake.wait()
            if self.subscribers:
                await asyncio.sleep(LOAD_DELAY_S)
            self._wake.clear()
            ids, self._pending = self._pending, []
            if not self.subscribers and not self._catch_up:
                # Nobody to hand them to (a worker without open streams): every worker of
                # every node hears every change, and reading each event here cost a query
                # per change and per worker. A stream opened later replays from the database.
                if ids:
                    self._last_id = max(self._last_id, *ids)
                continue
            try:
                async with self._sessionmaker() as db:
                    if self._catch_up:
                        # NOTIFYs sent while the LISTEN connection was down are lost: read
                        # what committed since the last event this process saw.
                        self._catch_up = False
                        events = await feed.since(db, self.cipher, self._last_id)
                    else:
                        events = await feed.load(db, self.cipher, sorted(set(ids)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Read again what committed since the last event seen, once the database
                # answers: nothing notified meanwhile is lost.
                self._catch_up = True
                if database_unavailable(exc):
                    log.warning("reading live events failed (database unavailable): %s", exc)
                else:
                    log.exception("reading live events failed")
                await asyncio.sleep(RETRY_S)
                self._wake.set()
                continue
            for event in events:
                if event.id is not None:
                    self._last_id = max(self._last_id, event.id)
                await self.fan_out(event)

    async def _sweep_loop(self) -> None:
        # A blocked write is cut between one and 1.25 send timeouts after it began.
        period = self.settings.live_send_timeout_s / 4
        while True:
            await asyncio.sleep(period)
            self.sweep()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.live_heartbeat_s)
            self.heartbeat()

    async def _recheck_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.live_recheck_s)
            try:
                await self.recheck()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if database_unavailable(exc):
                    log.warning("re-checking live streams failed (database unavailable): %s", exc)
                else:
                    log.exception("re-checking live streams' sessions failed")

    async def recheck(self) -> None:
        subs = [s for s in self.subscribers if not s.closed]
        if not subs:
            return
        sessions = sorted({s.session_id for s in subs if s.session_id})
        tokens = sorted({s.token_id for s in subs if s.token_id})
        assert self._engine is not None
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_RECHECK, {"sessions": sessions, "tokens": tokens})).all()
        valid = {row.key: row.role for row in rows}
        for sub in subs:
            key = sub.session_id or sub.token_id
            role = valid.get(key or "")
            if role is None:
                sub.close("signed out")
            else:
                self._set_role(sub, role)


def _set(event: asyncio.Event, *_: object) -> None:
    event.set()
