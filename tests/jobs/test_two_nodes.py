"""Two `tekudasai serve` nodes on one PostgreSQL (issue 13): every queued mail is sent once, by
one of them, and each periodic job runs once per period across both."""

from __future__ import annotations

import asyncio
import email
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tekudasai.db.embedded import EmbeddedPostgres
from tests.monitoring.test_serve_edge import Served, start_serve, stop_serve

pytestmark = pytest.mark.slow

SIGN_UPS = 12


@pytest.fixture
def shared_postgres() -> Iterator[EmbeddedPostgres]:
    # Outside pytest's 0700 temporary tree: the server runs as its own system user.
    root = Path(tempfile.mkdtemp(prefix="tk-two-nodes-pg-"))
    server = EmbeddedPostgres(root / "pgdata", extra_settings={"fsync": "off"})
    server.ensure_running()
    yield server
    server.stop(mode="immediate")
    shutil.rmtree(root, ignore_errors=True)


def start_node(node_dir: Path, database_url: str) -> Served:
    """A node: its own data directory (outbox), the shared database, the job queue on."""
    node_dir.mkdir()
    return start_serve(
        node_dir, DATABASE_URL=database_url, TK_BACKGROUND_JOBS="true", TK_BACKUP_INTERVAL="off"
    )


def recipients(outbox: Path) -> list[str]:
    return [str(email.message_from_bytes(path.read_bytes())["To"]) for path in outbox.glob("*.eml")]


def fetch(url: str, query: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(query))
        finally:
            await conn.close()

    return asyncio.run(run())


def wait_for_rows(url: str, query: str, predicate, timeout: float = 60) -> list:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    rows: list[asyncpg.Record] = []
    while time.monotonic() < deadline:
        rows = fetch(url, query)
        if predicate(rows):
            return rows
        time.sleep(0.5)
    raise AssertionError(f"timed out; last rows: {rows}")


def test_two_nodes_send_each_mail_once_and_run_each_period_once(
    tmp_path: Path, shared_postgres: EmbeddedPostgres
) -> None:
    url = shared_postgres.url("postgres")
    node_a = start_node(tmp_path / "a", url)  # migrates the shared database
    node_b = start_node(tmp_path / "b", url)
    try:
        for n in range(SIGN_UPS):
            node = (node_a, node_b)[n % 2]
            response = httpx.post(
                f"{node.base}/api/auth/signup",
                json={
                    "name": f"Node user {n}",
                    "email": f"node{n}@example.test",
                    "password": "a-long-password",
                },
                timeout=10,
            )
            assert response.status_code == 200, response.text

        # Every verification mail is sent: the queue is drained by the two nodes together.
        wait_for_rows(
            url,
            "SELECT status FROM jobs WHERE name = 'mail.send'",
            lambda rows: len(rows) == SIGN_UPS and all(r["status"] == "done" for r in rows),
        )
        sent = [
            *recipients(tmp_path / "a" / "data" / "outbox"),
            *recipients(tmp_path / "b" / "data" / "outbox"),
        ]
        assert sorted(sent) == sorted(f"node{n}@example.test" for n in range(SIGN_UPS))

        # Each periodic job: one run per period, whichever node scheduled or claimed it first.
        sizes = wait_for_rows(
            url,
            "SELECT period_key, status, attempts FROM jobs WHERE name = 'monitoring.sizes'",
            lambda rows: bool(rows) and all(r["status"] == "done" for r in rows),
        )
        periods = {row["period_key"] for row in sizes}
        assert len(sizes) == len(periods) and all(row["attempts"] == 1 for row in sizes)
        samples = fetch(url, "SELECT count(*) AS n FROM size_samples")
        assert samples[0]["n"] == len(periods), (samples, sizes)
        periodic = fetch(
            url,
            "SELECT name, period_key, count(*) AS runs, max(attempts) AS attempts FROM jobs "
            "WHERE period_key IS NOT NULL GROUP BY name, period_key",
        )
        assert {row["name"] for row in periodic} >= {"monitoring.sizes", "monitoring.alerts"}
        assert all(row["runs"] == 1 and row["attempts"] <= 1 for row in periodic), periodic
    finally:
        stop_serve(node_b)
        stop_serve(node_a)
