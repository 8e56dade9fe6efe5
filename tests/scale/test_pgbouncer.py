"""The service through PgBouncer in transaction mode (issue 17), Debian's `pgbouncer` (1.18).

A real pgbouncer on loopback in front of the test PostgreSQL, a real `tekudasai serve` whose
DATABASE_URL points at it with TK_DB_PGBOUNCER=true: sign-up, sign-in, tickets, comments and
the job queue work; a pgbouncer restart under load loses nothing that was answered 200, fails
only requests caught in the outage (503, never 500), and the next requests succeed.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from tekudasai.db.embedded import SYSTEM_USER, EmbeddedPostgres
from tekudasai.db.engine import DatabaseUrlError, create_engine
from tekudasai.db.session import Database
from tests.conftest import make_settings
from tests.monitoring.test_serve import free_port
from tests.monitoring.test_serve_edge import Served, start_serve, stop_serve
from tests.tickets.conftest import GOOD_RESPONSE, make_form

pytestmark = pytest.mark.slow

PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
)
needs_pgbouncer = pytest.mark.skipif(
    PGBOUNCER is None,
    reason="pgbouncer is not installed and could not be (scripts/test.sh runs "
    "`apt-get install pgbouncer`; without apt or network these tests cannot run)",
)


class PgBouncer:
    """pgbouncer in the foreground (as the unprivileged postgres user when we are root)."""

    def __init__(self, server: EmbeddedPostgres) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tk-test-pgbouncer-"))
        self.port = free_port()
        self.config = self.dir / "pgbouncer.ini"
        self.config.write_text(
            "[databases]\n"
            f"* = host={server.socket_dir} port=5432 user=postgres\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = any\n"
            "pool_mode = transaction\n"
            "max_client_conn = 500\n"
            # Few server connections: one left in a bad state would be met at once.
            "default_pool_size = 2\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\n"
            f"pidfile = {self.dir / 'pgbouncer.pid'}\n"
        )
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SYSTEM_USER)
            for path in (self.dir, self.config):
                shutil.chown(path, entry.pw_uid, entry.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        assert PGBOUNCER is not None
        command = [PGBOUNCER, str(self.config)]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/"
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    time.sleep(0.1)
                    # Ours, not another process that took the port meanwhile.
                    assert self.process.poll() is None, self.log()
                    return
            except OSError:
                assert self.process.poll() is None, self.log()
                time.sleep(0.05)
        raise AssertionError(f"pgbouncer did not listen: {self.log()}")

    def stop(self) -> None:
        """SIGTERM: immediate shutdown, every client and server connection dropped."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        self.process = None

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Setup:
    bouncer: PgBouncer
    db_url: str
    name: str
    form_id: str


@pytest.fixture
async def setup(pg_server: EmbeddedPostgres, db_url: str, tmp_path: Path) -> AsyncIterator[Setup]:
    bouncer = PgBouncer(pg_server)
    bouncer.start()
    name = make_url(db_url).database
    assert name
    database = Database.connect(db_url, make_settings(db_url, tmp_path / "setup"), pool_size=1)
    form = await make_form(database, form_id="bouncer-form")
    await database.dispose()
    yield Setup(bouncer, db_url, name, form.id)
    bouncer.remove()


@pytest.fixture
def serve_through(setup: Setup, tmp_path: Path) -> Iterator[Any]:
    started: list[Served] = []

    def start(**env: str) -> Served:
        directory = tmp_path / f"node{len(started)}"
        directory.mkdir()
        served = start_serve(
            directory,
            DATABASE_URL=setup.bouncer.url(setup.name),
            TK_DB_PGBOUNCER="true",
            TK_BACKGROUND_JOBS="true",
            TK_LOG_FORMAT="text",
            **env,
        )
        started.append(served)
        return served

    yield start
    for served in started:
        stop_serve(served)


async def jobs_left(db_url: str) -> int:
    database = Database.connect(db_url, make_settings(db_url, Path(tempfile.gettempdir())))
    try:
        async with database.engine.connect() as conn:
            return int(
                await conn.scalar(text("SELECT count(*) FROM jobs WHERE status <> 'done'")) or 0
            )
    finally:
        await database.dispose()


async def wait_jobs_done(db_url: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    left = await jobs_left(db_url)
    for _ in range(int(within / 0.3) + 1):
        if not left or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
        left = await jobs_left(db_url)
    assert left == 0, f"{left} jobs not done: {await jobs_by_state(db_url)}"


async def jobs_by_state(db_url: str) -> list[tuple[str, str, int, str | None]]:
    """What is left, for the failure message: name, status, count, one last error."""
    database = Database.connect(db_url, make_settings(db_url, Path(tempfile.gettempdir())))
    try:
        async with database.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT name, status, count(*), max(left(last_error, 300)) FROM jobs"
                    " WHERE status <> 'done' GROUP BY name, status ORDER BY name, status"
                )
            )
            return [(r[0], r[1], int(r[2]), r[3]) for r in rows]
    finally:
        await database.dispose()


@needs_pgbouncer
async def test_the_service_works_through_pgbouncer(setup: Setup, serve_through: Any) -> None:
    # No TK_DB_DIRECT_URL: the job queue cannot LISTEN through the pooler and polls instead,
    # and backups cannot run (next test).
    # Pools larger than the server's max_connections (300): behind the pooler that is fine.
    served = serve_through(
        TK_BACKUP_INTERVAL="off", TK_DB_POOL_SIZE="150", TK_DB_MAX_OVERFLOW="150"
    )
    async with httpx.AsyncClient(
        base_url=served.base, timeout=20, headers={"Origin": served.base}
    ) as http:
        person = {"name": "Bouncer User", "email": "bouncer@example.test"}
        signed_up = await http.post(
            "/api/auth/signup", json={**person, "password": "correct-horse-battery"}
        )
        assert signed_up.status_code == 200, signed_up.text
        signed_in = await http.post(
            "/api/auth/signin",
            json={"email": person["email"], "password": "correct-horse-battery"},
        )
        assert signed_in.status_code == 200, signed_in.text
        auth = {"Authorization": f"Bearer {signed_in.json()['token']}"}
        # Several rounds: consecutive statements land on different server connections.
        created = []
        for n in range(6):
            body = {"formId": setup.form_id, "summary": f"Via the pooler {n}"}
            response = await http.post(
                "/api/tickets/my", json={**body, "formResponse": GOOD_RESPONSE}, headers=auth
            )
            assert response.status_code == 200, response.text
            created.append(response.json()["data"]["id"])
        listed = await http.get("/api/tickets/my", headers=auth)
        assert listed.status_code == 200, listed.text
        assert {t["id"] for t in listed.json()["data"]} == set(created)
        one = await http.get(f"/api/tickets/my/{created[0]}", headers=auth)
        assert one.status_code == 200, one.text
        comment = await http.post(
            f"/api/tickets/my/{created[0]}/comments", json={"body": "Hello"}, headers=auth
        )
        assert comment.status_code == 200, comment.text
        comments = await http.get(f"/api/tickets/my/{created[0]}/comments", headers=auth)
        assert [c["body"] for c in comments.json()["data"]] == ["Hello"]
        # Many at once: the driver must not trip over another client's statements.
        results = await asyncio.gather(
            *(http.get("/api/tickets/my", headers=auth) for _ in range(40))
        )
        assert {r.status_code for r in results} == {200}
    await wait_jobs_done(setup.db_url)
    assert "polls every" in served.stderr()
    assert "live updates are off" in served.stderr()  # no LISTEN through the pooler
    assert "prepared statement" not in served.stderr()
    assert "login attempt" in setup.bouncer.log()  # the traffic went through pgbouncer


@needs_pgbouncer
async def test_a_pgbouncer_restart_under_load_loses_nothing(
    setup: Setup, serve_through: Any, pg_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    # LISTEN and the scheduled backup (due at once: there is none yet) through
    # TK_DB_DIRECT_URL, around the pooler. A pg_dump through the pooler would leave its empty
    # search_path on a pooled server connection: later requests there failed with 500
    # "relation users does not exist" (seen here before backups used the direct URL).
    served = serve_through(TK_DB_DIRECT_URL=pg_server.url(setup.name), TK_BACKUP_INTERVAL="1h")
    deadline = time.monotonic() + 90
    while "scheduled backup written" not in served.stderr():
        assert time.monotonic() < deadline, served.stderr()[-3000:]
        await asyncio.sleep(0.2)
    async with httpx.AsyncClient(
        base_url=served.base, timeout=20, headers={"Origin": served.base}
    ) as http:
        response = await http.post(
            "/api/auth/signup",
            json={"name": "Load", "email": "load@example.test", "password": "correct-horse-b"},
        )
        assert response.status_code == 200, response.text
        auth = {"Authorization": f"Bearer {response.json()['token']}"}
        results: list[tuple[float, int, int | None]] = []
        stop = asyncio.Event()

        async def client(n: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                body = {"formId": setup.form_id, "summary": f"Load {n}-{i}"}
                started = time.monotonic()
                try:
                    answer = await http.post(
                        "/api/tickets/my",
                        json={**body, "formResponse": GOOD_RESPONSE},
                        headers=auth,
                    )
                except httpx.HTTPError:
                    results.append((started, -1, None))
                    continue
                ticket = answer.json()["data"]["id"] if answer.status_code == 200 else None
                results.append((started, answer.status_code, ticket))

        load = [asyncio.create_task(client(n)) for n in range(6)]
        await asyncio.sleep(1.5)
        down_at = time.monotonic()
        setup.bouncer.stop()
        await asyncio.sleep(0.5)
        setup.bouncer.start()
        up_at = time.monotonic()
        await asyncio.sleep(2.5)
        stop.set()
        await asyncio.gather(*load)

    ok = [r for r in results if r[1] == 200]
    failed = [r for r in results if r[1] != 200]
    assert len([r for r in ok if r[0] < down_at]) > 5  # load before the restart
    # Failures are clean 503s, only around the outage.
    assert {status for _, status, _ in failed} <= {503}, served.stderr()[-4000:]
    assert all(down_at - 5 <= started <= up_at + 1.0 for started, _, _ in failed), failed
    # Later requests succeed.
    later = [r for r in results if r[0] > up_at + 1.0]
    assert later and all(r[1] == 200 for r in later)
    # Nothing answered 200 is lost; whatever else exists came from a request that failed.
    database = Database.connect(setup.db_url, make_settings(setup.db_url, tmp_path))
    try:
        async with database.engine.connect() as conn:
            stored = set((await conn.execute(text("SELECT id FROM tickets"))).scalars())
    finally:
        await database.dispose()
    answered = {ticket for _, _, ticket in ok}
    assert answered <= stored
    assert len(stored - answered) <= len(failed)
    await wait_jobs_done(setup.db_url, within=60)
    assert "polls every" not in served.stderr()
    # The live hub LISTENs around the pooler too (through it, notifications arrived on idle
    # pooled server connections: "got packet 'A' from server when not linked").
    database = Database.connect(setup.db_url, make_settings(setup.db_url, tmp_path))
    try:
        async with database.engine.connect() as conn:
            live = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = 'tekudasai-live' AND query LIKE 'LISTEN%'"
                )
            )
    finally:
        await database.dispose()
    assert live == 1


async def test_session_tools_need_the_direct_url_behind_pgbouncer(tmp_path: Path) -> None:
    pooled = "postgresql://postgres@127.0.0.1:6432/desk"
    direct = "postgresql://postgres@db.internal:5432/desk"
    plain = Database.connect(pooled, make_settings(pooled, tmp_path))
    behind = Database.connect(pooled, make_settings(pooled, tmp_path, TK_DB_PGBOUNCER="true"))
    routed = Database.connect(
        pooled, make_settings(pooled, tmp_path, TK_DB_PGBOUNCER="true", TK_DB_DIRECT_URL=direct)
    )
    try:
        assert plain.session_url == pooled
        with pytest.raises(DatabaseUrlError, match="TK_DB_DIRECT_URL"):
            _ = behind.session_url
        assert routed.session_url == direct
        assert plain.listen_engine() is plain.engine
        assert behind.listen_engine() is None  # polling only
        listen = routed.listen_engine()
        assert listen is not None and listen.url.host == "db.internal"
    finally:
        for database in (plain, behind, routed):
            await database.dispose()


async def connect_arguments(settings: Any) -> dict[str, Any]:
    """What asyncpg.connect() would receive from an engine built for `settings`."""
    engine = create_engine("postgresql://u@127.0.0.1:9/d", settings)
    seen: dict[str, Any] = {}

    @event.listens_for(engine.sync_engine, "do_connect")
    def capture(_dialect: Any, _record: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        seen.update(kwargs)
        raise ConnectionAbortedError("captured")

    with pytest.raises(Exception, match="captured"):
        async with engine.connect():
            pass
    await engine.dispose()
    return seen


async def test_pgbouncer_mode_turns_named_prepared_statements_off(tmp_path: Path) -> None:
    url = "postgresql://u@127.0.0.1:9/d"
    plain = await connect_arguments(make_settings(url, tmp_path))
    assert "statement_cache_size" not in plain
    assert plain["server_settings"]["statement_timeout"] == "30000"
    pooled = await connect_arguments(make_settings(url, tmp_path, TK_DB_PGBOUNCER="true"))
    assert pooled["statement_cache_size"] == 0  # asyncpg: unnamed, re-parsed statements
    assert pooled["prepared_statement_cache_size"] == 0  # SQLAlchemy's cache too
    # PgBouncer 1.18 refuses unknown start-up parameters such as statement_timeout.
    assert "statement_timeout" not in pooled["server_settings"]
