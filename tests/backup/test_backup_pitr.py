"""Point-in-time recovery on a separate embedded PostgreSQL (never the shared test server)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from tekudasai.backup import pitr
from tekudasai.backup.archive import Retention
from tekudasai.backup.restore import RestoreRefused
from tekudasai.backup.tools import BackupError
from tekudasai.config import Settings
from tekudasai.db.embedded import EmbeddedPostgres, wal_archive_dir
from tekudasai.db.lifecycle import EMBEDDED_DATABASE
from tests.backup.conftest import cli_env, serve, tekudasai, wait_ready
from tests.conftest import make_settings


@dataclass
class Embedded:
    settings: Settings
    server: EmbeddedPostgres

    @property
    def url(self) -> str:
        return self.server.url(EMBEDDED_DATABASE)


@pytest.fixture
async def embedded() -> AsyncIterator[Embedded]:
    # Not pytest's tmp_path: pytest keeps its root 0700, and PostgreSQL runs as another user.
    root = Path(tempfile.mkdtemp(prefix="tk-pitr-"))
    settings = make_settings(None, root / "data")
    server = EmbeddedPostgres(settings.pgdata_dir)
    await asyncio.to_thread(server.ensure_running)
    conn = await asyncpg.connect(server.url("postgres"))
    try:
        await conn.execute(f"CREATE DATABASE {EMBEDDED_DATABASE}")
    finally:
        await conn.close()
    yield Embedded(settings, server)
    await asyncio.to_thread(server.stop, "immediate")
    shutil.rmtree(root, ignore_errors=True)


async def _execute(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def test_recovery_to_a_moment_between_two_writes_keeps_the_first_only(
    embedded: Embedded,
) -> None:
    await _execute(embedded.url, "CREATE TABLE notes (body text)")
    env = cli_env(None, embedded.settings.data_dir)
    backup = await asyncio.to_thread(tekudasai, "db", "backup", env=env)
    assert backup.returncode == 0, backup.stderr
    assert "base backup for point-in-time recovery" in backup.stdout
    assert len(pitr.list_base_backups(embedded.server.pgdata)) == 1

    await _execute(embedded.url, "INSERT INTO notes VALUES ('first')")
    await asyncio.sleep(0.5)
    target = datetime.now(UTC)
    await asyncio.sleep(0.5)
    await _execute(embedded.url, "INSERT INTO notes VALUES ('second')")

    restore = await asyncio.to_thread(
        tekudasai, "db", "restore", "--to-time", target.isoformat(), "--yes", env=env
    )
    assert restore.returncode == 0, restore.stderr
    assert "database recovered to" in restore.stdout

    assert embedded.server.is_running()
    rows = await _execute(embedded.url, "SELECT body FROM notes ORDER BY body")
    assert [r["body"] for r in rows] == ["first"]
    # promoted: the recovered database takes writes again
    await _execute(embedded.url, "INSERT INTO notes VALUES ('after recovery')")
    assert (await _execute(embedded.url, "SELECT pg_is_in_recovery() AS r"))[0]["r"] is False
    leftovers = [p.name for p in embedded.settings.data_dir.iterdir() if "pitr" in p.name]
    assert leftovers == []
    assert any(
        p.name.endswith(".history") for p in wal_archive_dir(embedded.server.pgdata).iterdir()
    )


async def test_recovery_targets_outside_the_window_are_refused(embedded: Embedded) -> None:
    await _execute(embedded.url, "CREATE TABLE notes (body text)")
    env = cli_env(None, embedded.settings.data_dir)
    before_any = datetime.now(UTC) - timedelta(minutes=5)

    no_base = await asyncio.to_thread(
        tekudasai, "db", "restore", "--to-time", before_any.isoformat(), "--yes", env=env
    )
    assert no_base.returncode == 1
    assert "no base backup yet" in no_base.stderr

    await asyncio.to_thread(pitr.take_base_backup, embedded.server.pgdata)
    await _execute(embedded.url, "INSERT INTO notes VALUES ('kept')")

    too_early = await asyncio.to_thread(
        tekudasai, "db", "restore", "--to-time", before_any.isoformat(), "--yes", env=env
    )
    assert too_early.returncode == 1
    assert "before the oldest base backup" in too_early.stderr

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    in_future = await asyncio.to_thread(
        tekudasai, "db", "restore", "--to-time", future, "--yes", env=env
    )
    assert in_future.returncode == 1
    assert "in the future" in in_future.stderr

    garbage = await asyncio.to_thread(
        tekudasai, "db", "restore", "--to-time", "yesterday-ish", "--yes", env=env
    )
    assert garbage.returncode == 1
    assert "not an ISO 8601 time" in garbage.stderr

    unconfirmed = await asyncio.to_thread(
        tekudasai, "db", "restore", "--to-time", datetime.now(UTC).isoformat(), env=env
    )
    assert unconfirmed.returncode == 2
    assert "confirm" in unconfirmed.stderr

    with pytest.raises(RestoreRefused):
        await asyncio.to_thread(
            pitr.restore_to_time,
            embedded.settings,
            datetime.now(UTC),
            confirm=lambda _question: False,
        )
    # nothing was touched by any refusal
    assert embedded.server.is_running()
    rows = await _execute(embedded.url, "SELECT body FROM notes")
    assert [r["body"] for r in rows] == ["kept"]


async def test_external_database_points_to_its_own_pitr_tooling(tmp_path: Path) -> None:
    settings = make_settings("postgresql://app@db.example.test/tk", tmp_path)
    with pytest.raises(BackupError, match="own PITR tooling"):
        pitr.restore_to_time(settings, datetime.now(UTC), confirm=lambda _q: True)


async def test_pruning_base_backups_drops_old_wal(embedded: Embedded) -> None:
    archive = wal_archive_dir(embedded.server.pgdata)
    await _execute(embedded.url, "CREATE TABLE filler AS SELECT generate_series(1, 1000) AS n")
    await _execute(embedded.url, "SELECT pg_switch_wal()")
    await asyncio.sleep(1.5)
    # no base backup yet: nothing could replay WAL, so none is kept
    assert [p.name for p in archive.iterdir() if not p.name.startswith(".")] == []
    first = await asyncio.to_thread(pitr.take_base_backup, embedded.server.pgdata)
    await _execute(embedded.url, "SELECT pg_switch_wal()")
    await asyncio.sleep(1.1)  # base backup directories are named by the second
    second = await asyncio.to_thread(pitr.take_base_backup, embedded.server.pgdata)
    for _ in range(50):
        if (archive / second.start_wal).exists():
            break
        await asyncio.sleep(0.1)
    assert (archive / first.start_wal).exists()
    removed = await asyncio.to_thread(
        pitr.prune_base_backups, embedded.server.pgdata, Retention(recent=1)
    )
    assert removed == [first.path]
    assert not (archive / first.start_wal).exists()
    assert (archive / second.start_wal).exists()


async def test_failed_recovery_puts_the_previous_database_back(embedded: Embedded) -> None:
    await _execute(embedded.url, "CREATE TABLE notes (body text)")
    base = await asyncio.to_thread(pitr.take_base_backup, embedded.server.pgdata)
    await _execute(embedded.url, "INSERT INTO notes VALUES ('precious')")
    # A damaged base backup: PostgreSQL refuses to start from it.
    control = base.data / "global" / "pg_control"
    control.write_bytes(b"\0" * control.stat().st_size)
    await asyncio.sleep(0.2)

    with pytest.raises(BackupError, match="previous database is back in place"):
        await asyncio.to_thread(
            pitr.restore_to_time,
            embedded.settings,
            datetime.now(UTC),
            confirm=lambda _q: True,
        )
    assert embedded.server.is_running()
    rows = await _execute(embedded.url, "SELECT body FROM notes")
    assert [r["body"] for r in rows] == ["precious"]
    await _execute(embedded.url, "INSERT INTO notes VALUES ('still writable')")
    names = [p.name for p in embedded.settings.data_dir.iterdir()]
    assert any(".failed-pitr-" in name for name in names)
    assert not any(".pre-pitr-" in name for name in names)


async def test_recovery_while_serving_the_embedded_database() -> None:
    root = Path(tempfile.mkdtemp(prefix="tk-pitr-serve-"))
    env = cli_env(None, root / "data", TK_BACKGROUND_JOBS="false")
    serving, base = serve(env)
    server = EmbeddedPostgres(root / "data" / "pgdata")
    try:
        await wait_ready(base, 90)
        url = server.url(EMBEDDED_DATABASE)
        await _execute(url, "CREATE TABLE notes (body text)")
        backup = await asyncio.to_thread(tekudasai, "db", "backup", env=env)
        assert backup.returncode == 0, backup.stderr
        await _execute(url, "INSERT INTO notes VALUES ('first')")
        await asyncio.sleep(0.5)
        target = datetime.now(UTC)
        await asyncio.sleep(0.5)
        await _execute(url, "INSERT INTO notes VALUES ('second')")

        restore = await asyncio.to_thread(
            tekudasai, "db", "restore", "--to-time", target.isoformat(), "--yes", env=env
        )
        assert restore.returncode == 0, restore.stderr
        assert await wait_ready(base, 60) < 60
        assert serving.poll() is None
        rows = await _execute(server.url(EMBEDDED_DATABASE), "SELECT body FROM notes")
        assert [r["body"] for r in rows] == ["first"]
    finally:
        serving.terminate()
        serving.wait(timeout=60)
        await asyncio.to_thread(server.stop, "immediate")
        shutil.rmtree(root, ignore_errors=True)
