"""What the backup directory says: each backup's manifest (written by `tekudasai db backup`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    created_at: datetime
    size_bytes: int
    revision: str | None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def list_backups(backups_dir: Path) -> list[BackupInfo]:
    """Complete backups (a readable manifest with `created_at`), newest first; [] when none."""
    found: list[BackupInfo] = []
    if not backups_dir.is_dir():
        return found
    for manifest_path in backups_dir.glob("*/manifest.json"):
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            continue  # a backup being written, or a damaged one: not a successful backup
        created = _parse_time(manifest.get("created_at") or manifest.get("createdAt"))
        if created is None:
            continue
        size = sum(f.stat().st_size for f in manifest_path.parent.iterdir() if f.is_file())
        revision = manifest.get("schemaRevision") or manifest.get("schema_revision")
        found.append(BackupInfo(manifest_path.parent, created, size, revision))
    return sorted(found, key=lambda b: b.created_at, reverse=True)


def last_backup_at(backups_dir: Path) -> datetime | None:
    backups = list_backups(backups_dir)
    return backups[0].created_at if backups else None
