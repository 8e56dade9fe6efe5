"""One backup run (used by `db backup` and the scheduled job), and the periodic job itself."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tekudasai.backup import pitr, storage_s3
from tekudasai.backup.archive import (
    Backup,
    Progress,
    backup_name,
    create_backup,
    list_backups,
    parse_retention,
    prune_backups,
)
from tekudasai.config import Settings, parse_duration
from tekudasai.jobs.worker import JobContext
from tekudasai.uploads.dependencies import storage_for

log = logging.getLogger(__name__)

# How often the job runs to see whether a backup is due (it never runs more often than that).
CHECK_EVERY_S = 900.0


@dataclass
class BackupOutcome:
    backup: Backup
    notes: list[str] = field(default_factory=list)


async def perform_backup(
    settings: Settings,
    *,
    url: str,
    out: Path | None = None,
    prune: bool = False,
    progress: Progress | None = None,
) -> BackupOutcome:
    """Logical backup; base backup when embedded; off-site copy when configured; retention."""
    policy = parse_retention(settings.backup_keep) if prune else None
    target = out or settings.backups_dir / backup_name()
    backup = await create_backup(
        url=url, uploads=storage_for(settings), out=target, progress=progress
    )
    outcome = BackupOutcome(backup)
    pgdata = pitr.embedded_pgdata(settings)
    if pgdata is not None:
        base = await asyncio.to_thread(pitr.take_base_backup, pgdata, progress)
        outcome.notes.append(f"base backup for point-in-time recovery: {base.path}")
    if settings.backup_s3_url:
        keys = await asyncio.to_thread(storage_s3.upload_backup, settings.backup_s3_url, backup)
        outcome.notes.append(f"off-site copy verified: {len(keys)} objects")
    if policy is not None:
        removed = await asyncio.to_thread(prune_backups, settings.backups_dir, policy)
        if pgdata is not None:
            removed += await asyncio.to_thread(pitr.prune_base_backups, pgdata, policy)
        if settings.backup_s3_url:
            kept = {b.path.name for b in list_backups(settings.backups_dir)}
            gone = await asyncio.to_thread(storage_s3.prune_remote, settings.backup_s3_url, kept)
            removed += [Path(name) for name in gone]
        outcome.notes.append(
            f"retention {settings.backup_keep}: removed {len(removed)} old backup(s)"
        )
    return outcome


def backup_due(settings: Settings, now: datetime | None = None) -> bool:
    interval = parse_duration(settings.backup_interval)
    if interval is None:
        return False
    backups = list_backups(settings.backups_dir)
    if not backups:
        return True
    age = ((now or datetime.now(UTC)) - backups[-1].created_at).total_seconds()
    # A little slack so a 24h schedule checked every 15 minutes does not slip by a whole check.
    return age >= interval - min(CHECK_EVERY_S, interval / 10)


def check_every(settings: Settings) -> float | None:
    """Period of the scheduled-backup job; None when TK_BACKUP_INTERVAL is off."""
    interval = parse_duration(settings.backup_interval)
    return None if interval is None else min(float(interval), CHECK_EVERY_S)


async def scheduled_backup(ctx: JobContext) -> None:
    """The periodic job: back up (and prune) when the newest backup is older than the interval."""
    if not backup_due(ctx.settings):
        return
    outcome = await perform_backup(ctx.settings, url=ctx.database.session_url, prune=True)
    log.info("scheduled backup written to %s; %s", outcome.backup.path, "; ".join(outcome.notes))
