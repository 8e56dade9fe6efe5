"""NOTIFY wake-ups sent after commit, many commits' worth in one statement.

A transaction that NOTIFYs takes PostgreSQL's one notification lock when it commits and holds
it through its WAL flush (PreCommit_Notify in async.c), so concurrent notifying commits flush
one after another instead of together. Every ticket's creation, comment and change notified
the job workers and the live streams that way. On the peer bench (bench/peer.py's data, POST
/api/tickets/my, wrk -c32 for 15 s, 2 workers, one server at a time, trees alternating, 4
pairs): 241 req/s with the NOTIFYs in the creation's transaction, 284 with them dropped (a
scratch copy), and 208 → 234 with this module (every pair faster, p99 lower).

So a transaction asks for its wake-ups (`after_commit`), and when it commits they go to this
process's sender, which sends whatever was queued meanwhile in one statement of its own:
under load one notification lock per batch instead of per request. A transaction rolled back
sends nothing, as with NOTIFY. A wake-up is a hint, never the work: the job and the event are
rows committed with the change. One lost with a crash between the commit and the send leaves
the job to the workers' poll, and the event to the live streams' replay (Last-Event-ID).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# session.info: the (channel, payload) pairs its open transaction will send on commit.
_PENDING = "tk_wakeups"
# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more; ids are joined below that.
MAX_PAYLOAD = 7900

_SEND = (
    "SELECT count(pg_notify(w.channel, w.payload)) "
    "FROM unnest($1::text[], $2::text[]) AS w(channel, payload)"
)


def after_commit(db: AsyncSession, wakeups: Iterable[tuple[str, str]]) -> None:
    """Send these (channel, payload) NOTIFYs once the session's transaction commits; at once
    (after the statement) when the session has none (autocommit: it committed already)."""
    sync = db.sync_session
    if not sync.in_transaction():
        _sender_for(sync).add(wakeups)
        return
    sync.info.setdefault(_PENDING, []).extend(wakeups)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the outer transaction decides
    pending = session.info.pop(_PENDING, None)
    if pending:
        _sender_for(session).add(pending)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    # A savepoint's rollback keeps them: a wake-up for a change undone finds nothing to do.
    if not session.in_nested_transaction():
        session.info.pop(_PENDING, None)


def batches(wakeups: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """One NOTIFY per channel and payload kind: empty payloads once, id payloads joined by
    commas up to MAX_PAYLOAD (the live hub reads such lists)."""
    plain: dict[tuple[str, str], None] = {}
    ids: dict[str, dict[str, None]] = {}
    for channel, payload in wakeups:
        if payload.isdigit():
            ids.setdefault(channel, {})[payload] = None
        else:
            plain[(channel, payload)] = None
    out = list(plain)
    for channel, values in ids.items():
        chunk: list[str] = []
        size = 0
        for value in values:
            if chunk and size + 1 + len(value) > MAX_PAYLOAD:
                out.append((channel, ",".join(chunk)))
                chunk, size = [], 0
            chunk.append(value)
            size += len(value) + 1
        if chunk:
            out.append((channel, ",".join(chunk)))
    return out


class _Sender:
    """Sends one process's queued wake-ups for one engine, a batch per round trip. It holds
    its engine weakly: a disposed engine's sender goes with it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = weakref.ref(engine)
        self.queued: list[tuple[str, str]] = []
        self.task: asyncio.Task[None] | None = None

    def add(self, wakeups: Iterable[tuple[str, str]]) -> None:
        self.queued.extend(wakeups)
        if self.task is None or self.task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.queued.clear()  # no event loop (a synchronous tool): nobody to wake
                return
            self.task = loop.create_task(self._run())

    async def _run(self) -> None:
        while self.queued:
            batch, self.queued = batches(self.queued), []
            engine = self.engine()
            if engine is None:
                return
            try:
                async with AsyncEngine(engine).connect() as conn:
                    # Straight to the driver, outside a transaction: one round trip, no
                    # BEGIN or COMMIT (the statement commits on its own).
                    driver: Any = (await conn.get_raw_connection()).driver_connection
                    await driver.fetchval(
                        _SEND,
                        [channel for channel, _ in batch],
                        [payload for _, payload in batch],
                    )
            except Exception as error:  # a hint only: the workers poll, the streams replay
                log.warning("sending %d wake-up(s) failed: %s", len(batch), error)

    async def drain(self) -> None:
        while self.task is not None and not self.task.done():
            await asyncio.shield(self.task)


_senders: weakref.WeakKeyDictionary[Engine, _Sender] = weakref.WeakKeyDictionary()


def _sender_for(session: Session) -> _Sender:
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    assert isinstance(engine, Engine)
    sender = _senders.get(engine)
    if sender is None:
        sender = _senders[engine] = _Sender(engine)
    return sender


async def drain(engine: AsyncEngine) -> None:
    """Wait for this engine's queued wake-ups to be sent (before it is disposed)."""
    sender = _senders.get(engine.sync_engine)
    if sender is not None:
        await sender.drain()
