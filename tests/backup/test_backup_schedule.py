"""Scheduled backups through the job queue, and the retention policy."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tekudasai.backup import jobs as backup_jobs
from tekudasai.backup.archive import (
    DUMP,
    MANIFEST,
    UPLOADS_TAR,
    Retention,
    list_backups,
    parse_retention,
    select_kept,
)
from tekudasai.backup.tools import BackupError
from tekudasai.core.schemas import iso
from tekudasai.db.session import Database
from tekudasai.jobs.worker import JobContext, Periodic, Worker
from tekudasai.tasks import TASKS
from tests.backup.conftest import Populated, cli_env, tekudasai
from tests.conftest import make_settings
from tests.jobs.conftest import jobs_named


def fake_backup(directory: Path, created_at: datetime) -> Path:
    """An old backup as far as listing and retention are concerned."""
    path = directory / created_at.strftime("%Y%m%dT%H%M%SZ")
    path.mkdir(parents=True)
    manifest = {
        "format": 1,
        "createdAt": iso(created_at),
        "tables": {},
        "parts": {DUMP: {"sha256": "0", "bytes": 0}, UPLOADS_TAR: {"sha256": "0", "bytes": 0}},
    }
    (path / MANIFEST).write_text(json.dumps(manifest))
    return path


BACKUP_ONLY = (Periodic("backup.scheduled", backup_jobs.check_every),)


async def test_scheduled_backup_appears_and_retention_prunes_old_ones(
    populated: Populated, tmp_path: Path
) -> None:
    settings = make_settings(
        populated.url, populated.settings.data_dir, TK_BACKUP_INTERVAL="1h", TK_BACKUP_KEEP="2"
    )
    now = datetime.now(UTC)
    old = [fake_backup(settings.backups_dir, now - timedelta(days=d)) for d in (3, 2, 1)]
    database = Database.connect(populated.url, settings, pool_size=2)
    runner = asyncio.create_task(Worker(database, settings, TASKS, BACKUP_ONLY).run())
    try:
        for _ in range(300):
            names = [b.path.name for b in list_backups(settings.backups_dir)]
            if len(names) == 2 and old[0].name not in names:
                break
            await asyncio.sleep(0.1)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await database.dispose()
    backups = list_backups(settings.backups_dir)
    assert backups[0].path == old[2]  # the newest old one survives (keep 2)
    fresh = backups[-1]
    assert fresh.created_at > now - timedelta(seconds=5)
    assert fresh.manifest["tables"]["tickets"]["rows"] == 120
    assert not old[0].exists() and not old[1].exists()


async def test_scheduled_job_skips_when_not_due_and_is_queued_once_per_period(
    populated: Populated,
) -> None:
    settings = make_settings(populated.url, populated.settings.data_dir, TK_BACKUP_INTERVAL="6h")
    fake_backup(settings.backups_dir, datetime.now(UTC) - timedelta(hours=1))
    database = Database.connect(populated.url, settings, pool_size=2)
    try:
        assert not backup_jobs.backup_due(settings)
        await backup_jobs.scheduled_backup(JobContext(database, settings, job_id=0, attempt=1))
        assert len(list_backups(settings.backups_dir)) == 1

        due = make_settings(populated.url, settings.data_dir, TK_BACKUP_INTERVAL="30m")
        assert backup_jobs.backup_due(due)
        # Two processes (or nodes) both schedule this period: one run is queued.
        workers = [Worker(database, due, TASKS, BACKUP_ONLY) for _ in range(2)]
        assert [await w.schedule_due() for w in workers] == [1, 0]
        assert len(await jobs_named(database, "backup.scheduled")) == 1
    finally:
        await database.dispose()
    off = make_settings(populated.url, settings.data_dir, TK_BACKUP_INTERVAL="off")
    assert not backup_jobs.backup_due(off)


async def test_backup_prune_by_hand(populated: Populated) -> None:
    backups_dir = populated.settings.backups_dir
    old = fake_backup(backups_dir, datetime.now(UTC) - timedelta(days=40))
    newer = fake_backup(backups_dir, datetime.now(UTC) - timedelta(days=20))
    env = cli_env(populated.url, populated.settings.data_dir, TK_BACKUP_KEEP="2")
    done = tekudasai("db", "backup", "--prune", env=env)
    assert done.returncode == 0, done.stderr
    assert "removed 1 old backup" in done.stdout
    assert not old.exists() and newer.exists()
    assert len(list_backups(backups_dir)) == 2

    bad = tekudasai("db", "backup", "--prune", env={**env, "TK_BACKUP_KEEP": "7x"})
    assert bad.returncode == 1
    assert "TK_BACKUP_KEEP" in bad.stderr
    assert len(list_backups(backups_dir)) == 2  # refused before writing anything


def test_retention_keeps_newest_daily_and_weekly() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = [start + timedelta(hours=6 * i) for i in range(4 * 60)]  # 60 days, 4 a day
    kept = select_kept(times, parse_retention("7d,4w"))
    newest = max(times)
    assert newest in kept
    days = {t.date() for t in kept}
    last_seven = sorted({t.date() for t in times})[-7:]
    assert set(last_seven) <= days
    for day in last_seven:  # the newest backup of each kept day
        assert max(t for t in times if t.date() == day) in kept
    weeks = {t.isocalendar()[:2] for t in kept}
    assert len(weeks) >= 4
    assert all(t >= newest - timedelta(weeks=5) for t in kept)
    assert len(kept) <= 1 + 7 + 4


def test_retention_parsing() -> None:
    assert parse_retention("7d,4w") == Retention(recent=1, daily=7, weekly=4)
    assert parse_retention("10") == Retention(recent=10)
    assert parse_retention("all").keep_all
    times = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=i) for i in range(5)]
    assert select_kept(times, parse_retention("2")) == set(times[-2:])
    for bad in ("7x", "0d", "d", "-1"):
        with pytest.raises(BackupError, match="TK_BACKUP_KEEP"):
            parse_retention(bad)
