"""Restore while `tekudasai serve` runs: the service reconnects by itself and sees restored data."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from tests.backup.conftest import Populated, cli_env, serve, snapshot, tekudasai, wait_ready

READY_WITHIN_S = 60


async def test_restore_while_serving(populated: Populated, tmp_path: Path) -> None:
    env = cli_env(populated.url, populated.settings.data_dir, TK_BACKGROUND_JOBS="false")
    server, base = serve(env)
    try:
        await wait_ready(base, 60)
        out = tmp_path / "b1"
        assert tekudasai("db", "backup", "--out", str(out), env=env).returncode == 0
        before = await snapshot(populated.url)
        conn = await asyncpg.connect(populated.url)
        try:
            sessions = await conn.fetchval("SELECT count(*) FROM sessions")
            assert sessions >= 1
            await conn.execute("DELETE FROM sessions")
            await conn.execute("DELETE FROM tickets WHERE id IN (SELECT id FROM tickets LIMIT 10)")
        finally:
            await conn.close()

        restore = await asyncio.to_thread(tekudasai, "db", "restore", str(out), "--yes", env=env)
        assert restore.returncode == 0, restore.stderr
        took = await wait_ready(base, READY_WITHIN_S)
        assert took < READY_WITHIN_S
        assert server.poll() is None  # the service never went down
        assert await snapshot(populated.url) == before
        conn = await asyncpg.connect(populated.url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM sessions") == sessions
        finally:
            await conn.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
