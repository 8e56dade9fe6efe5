"""Wake-ups (NOTIFY) sent after commit, batched per process: sent only for what committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import make_url

from tekudasai.db import wakeups
from tekudasai.db.embedded import EmbeddedPostgres
from tekudasai.db.session import Database
from tekudasai.live.hub import Hub
from tekudasai.tickets import events
from tekudasai.tickets.service import create_statement

CHANNEL = "tk_test_wakeups"


@pytest.fixture
async def heard(pg_server: EmbeddedPostgres, db_url: str) -> AsyncIterator[asyncio.Queue[str]]:
    """Payloads NOTIFYd on CHANNEL and on the live channel, as a listener elsewhere hears them."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(pg_server.url(make_url(db_url).database or ""))
    for channel in (CHANNEL, events.LIVE_CHANNEL):
        await conn.add_listener(channel, lambda *a: queue.put_nowait(a[3]))
    try:
        yield queue
    finally:
        await conn.close()


async def quiet(queue: asyncio.Queue[str], seconds: float = 0.3) -> list[str]:
    """What arrives within `seconds`."""
    got: list[str] = []
    try:
        while True:
            got.append(await asyncio.wait_for(queue.get(), seconds))
    except TimeoutError:
        return got


async def test_sent_once_the_transaction_commits_and_not_before(
    database: Database, heard: asyncio.Queue[str]
) -> None:
    async with database.sessionmaker() as db, db.begin():
        wakeups.after_commit(db, [(CHANNEL, "7")])
        await asyncio.sleep(0.2)  # a sender given the chance would have sent by now
        assert heard.empty()
    assert await asyncio.wait_for(heard.get(), 5) == "7"


async def test_a_rolled_back_transaction_sends_nothing(
    database: Database, heard: asyncio.Queue[str]
) -> None:
    async with database.sessionmaker() as db:
        async with db.begin():
            wakeups.after_commit(db, [(CHANNEL, "8")])
            await db.rollback()
        async with db.begin():  # the next transaction of the same session starts clean
            wakeups.after_commit(db, [(CHANNEL, "9")])
    assert await quiet(heard) == ["9"]


async def test_a_savepoint_waits_for_the_outer_transaction(
    database: Database, heard: asyncio.Queue[str]
) -> None:
    async with database.sessionmaker() as db:
        async with db.begin():
            async with db.begin_nested():
                wakeups.after_commit(db, [(CHANNEL, "10")])
            await asyncio.sleep(0.2)
            assert heard.empty()  # released, but nothing has committed yet
            await db.rollback()
        async with db.begin(), db.begin_nested():
            wakeups.after_commit(db, [(CHANNEL, "11")])
    assert await quiet(heard) == ["11"]


async def test_outside_a_transaction_it_is_sent_at_once(
    database: Database, heard: asyncio.Queue[str]
) -> None:
    async with database.autocommit() as db:
        wakeups.after_commit(db, [(CHANNEL, "12")])
    assert await asyncio.wait_for(heard.get(), 5) == "12"


async def test_many_commits_are_heard_whole_and_in_fewer_notifications(
    database: Database, heard: asyncio.Queue[str]
) -> None:
    async def one(n: int) -> None:
        async with database.sessionmaker() as db, db.begin():
            wakeups.after_commit(db, [(CHANNEL, str(n)), (CHANNEL, "")])

    await asyncio.gather(*(one(n) for n in range(1, 41)))
    payloads = await quiet(heard, 1.0)
    ids = sorted(int(i) for p in payloads if p for i in p.split(","))
    assert ids == list(range(1, 41))
    assert payloads.count("") >= 1  # the empty wake-up: once per batch, not once per commit
    assert len(payloads) < 80


def test_batches_join_ids_and_send_each_plain_wakeup_once() -> None:
    batch = wakeups.batches(
        [("jobs", ""), ("live", "1"), ("jobs", ""), ("live", "2"), ("live", "2"), ("x", "p")]
    )
    assert sorted(batch) == [("jobs", ""), ("live", "1,2"), ("x", "p")]
    many = wakeups.batches([("live", str(10**9 + n)) for n in range(2000)])
    assert all(len(payload) <= wakeups.MAX_PAYLOAD for _, payload in many)
    assert sorted(int(i) for _, p in many for i in p.split(",")) == [10**9 + n for n in range(2000)]


def test_a_ticket_is_filed_without_a_notify_in_its_transaction() -> None:
    # The lock PostgreSQL takes for a NOTIFY at commit would serialise the creations' flushes.
    assert "pg_notify" not in create_statement().sql
    assert "pg_notify" not in create_statement(guarded=True).sql


def test_the_live_hub_reads_a_list_of_event_ids() -> None:
    hub = Hub.__new__(Hub)
    hub._pending = []
    hub._wake = asyncio.Event()
    hub._on_notify(None, 0, events.LIVE_CHANNEL, "3,14,15")
    assert hub._pending == [3, 14, 15] and hub._wake.is_set()
