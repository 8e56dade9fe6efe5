"""What the backup directory says, for the system page and the alerts: newest first.

Reading and checking manifests is `backup.archive`'s job (the same rules as `tekudasai db backup`
and its retention); this only adds the size on disk for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tekudasai.backup import archive as backup


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    created_at: datetime
    size_bytes: int
    revision: str | None


def _info(found: backup.Backup) -> BackupInfo:
    size = sum(f.stat().st_size for f in found.path.iterdir() if f.is_file())
    return BackupInfo(found.path, found.created_at, size, found.manifest.get("schemaRevision"))


def sizes_newest_first(backups_dir: Path) -> list[BackupInfo]:
    """`archive.list_backups` (the one listing, oldest first) with sizes, newest first."""
    return [_info(found) for found in reversed(backup.list_backups(backups_dir))]


def last_backup_at(backups_dir: Path) -> datetime | None:
    backups = backup.list_backups(backups_dir)
    return backups[-1].created_at if backups else None
