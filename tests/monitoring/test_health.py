"""Readiness follows the database: stopped → 503, started again → 200; schema behind head or an
exhausted pool → 503. Uses its own PostgreSQL (not the shared test server) to stop it."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tekudasai.app import create_app
from tekudasai.db import migrate
from tekudasai.db.embedded import EmbeddedPostgres
from tekudasai.db.lifecycle import ensure_database
from tekudasai.db.session import Database
from tekudasai.monitoring import health, system
from tests.conftest import BASE_URL, TEST_SECRET, make_settings


@pytest.fixture(scope="module")
async def lone_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedPostgres]:
    """A server of our own, without pg_stat_statements preloaded."""
    # Not under pytest's tmp dirs: concurrent pytest runs prune those.
    server = EmbeddedPostgres(
        Path(tempfile.mkdtemp(prefix="tk-mon-lone-")) / "pgdata",
        extra_settings={"fsync": "off", "shared_preload_libraries": "''"},
    )
    server.ensure_running()
    url = server.url("tk")
    await ensure_database(url)
    settings = make_settings(url, tmp_path_factory.mktemp("lone-data"))
    database = Database.connect(url, settings, pool_size=1)
    await migrate.upgrade(database.engine)
    await database.dispose()
    yield server
    server.stop(mode="immediate")
    shutil.rmtree(server.pgdata.parent, ignore_errors=True)


async def test_liveness_needs_no_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == b'{"status":"success"}'


async def test_ready_when_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/health/ready")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["database"] == "ok"
    assert data["schema"] == migrate.head_revision()


async def test_readiness_turns_503_when_the_database_stops_and_200_when_back(
    lone_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = lone_server.url("tk")
    settings = make_settings(url, tmp_path)
    database = Database.connect(url, settings, pool_size=2)
    app = create_app(settings, database)
    system.clear_cache()
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http,
        ):
            assert (await http.get("/api/health/ready")).status_code == 200
            lone_server.stop()
            response = await http.get("/api/health/ready")
            assert response.status_code == 503
            assert response.json() == {
                "status": "error",
                "message": "The database does not answer.",
                "code": "NOT_READY",
            }
            assert (await http.get("/api/health")).status_code == 200  # liveness unaffected
            scraped = await http.get("/metrics")  # still answers, with what the process knows
            assert scraped.status_code == 200
            assert 'route="/api/health/ready",status="503"' in scraped.text
            lone_server.ensure_running()
            assert (await http.get("/api/health/ready")).status_code == 200
    finally:
        await database.dispose()
        lone_server.ensure_running()


async def test_not_ready_when_schema_is_behind_head(client, database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    response = await client.get("/api/health/ready")
    assert response.status_code == 503
    assert "run `tekudasai db migrate`" in response.json()["message"]


async def test_not_ready_when_the_pool_is_exhausted(
    client, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "READY_TIMEOUT_S", 0.5)
    capacity = 5 + client._transport.app.state.settings.db_max_overflow  # type: ignore[attr-defined]
    async with AsyncExitStack() as stack:
        for _ in range(capacity - 1):
            await stack.enter_async_context(database.engine.connect())
        # Busy but not exhausted: the check waits its turn for the last connection.
        assert (await client.get("/api/health/ready")).status_code == 200
        await stack.enter_async_context(database.engine.connect())
        waiter = asyncio.create_task(stack.enter_async_context(database.engine.connect()))
        await asyncio.sleep(0.05)
        response = await client.get("/api/health/ready")
        assert response.status_code == 503
        assert "pool is exhausted" in response.json()["message"]
        waiter.cancel()
    assert (await client.get("/api/health/ready")).status_code == 200


def test_db_top_explains_how_to_enable_pg_stat_statements(
    lone_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": lone_server.url("tk"),
        "TK_DATA_DIR": str(tmp_path),
        "BETTER_AUTH_SECRET": TEST_SECRET,
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "tekudasai", "db", "top"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "shared_preload_libraries" in result.stderr
    assert "Traceback" not in result.stderr
