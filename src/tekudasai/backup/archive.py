"""Logical backups: one directory with manifest.json, a pg_dump custom-format dump and an uploads
tar. Written to a hidden temporary directory and renamed at the end, so a backup either exists
complete or not at all."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tekudasai import __version__
from tekudasai.backup.tools import (
    PARTIAL_UPLOADS_DIR,
    BackupError,
    connect,
    database_name,
    run_tool,
    schema_revision,
    sha256_file,
    table_stats,
    tool,
    tool_dsn,
    upload_relpath,
    user_tables,
)
from tekudasai.core.schemas import iso
from tekudasai.uploads.storage import LocalStorage, Storage

Progress = Callable[[str, float, float], None]

MANIFEST = "manifest.json"
DUMP = "database.dump"
UPLOADS_TAR = "uploads.tar"
FORMAT_VERSION = 1
TMP_PREFIX = ".tmp-"
_DUMP_TABLE = re.compile(r'dumping contents of table "?([^"]+)"?')


@dataclass(frozen=True)
class Backup:
    path: Path
    manifest: dict[str, Any]

    @property
    def created_at(self) -> datetime:
        return parse_time(self.manifest["createdAt"])


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def backup_name(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def no_progress(_stage: str, _done: float, _total: float) -> None:
    """The progress callback when the caller wants none."""
    return None


async def create_backup(
    *,
    url: str,
    out: Path,
    uploads_dir: Path | None = None,
    uploads: Storage | None = None,
    progress: Progress | None = None,
) -> Backup:
    """Dump the database and archive the uploads (the directory `uploads_dir`, or any upload
    store) into `out` (which must not exist yet)."""
    report = progress or no_progress
    if uploads is None:
        if uploads_dir is None:
            raise ValueError("create_backup needs uploads_dir or uploads")
        uploads = LocalStorage(uploads_dir)
    out, tmp = _prepare_target(out)
    try:
        manifest = await _write_parts(url=url, uploads=uploads, tmp=tmp, report=report)
        _write_json(tmp / MANIFEST, manifest)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
        _fsync_dir(out.parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise BackupError(f"backup failed, nothing was kept: {exc}") from exc
        raise
    return Backup(out, manifest)


def _prepare_target(out: Path) -> tuple[Path, Path]:
    out = Path(os.path.abspath(out.expanduser()))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BackupError(f"{out} already exists; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f"{TMP_PREFIX}{out.name}-{secrets.token_hex(4)}"
    tmp.mkdir(mode=0o700)  # dumps hold password hashes and encrypted personal data
    return out, tmp


async def _write_parts(
    *, url: str, uploads: Storage, tmp: Path, report: Progress
) -> dict[str, Any]:
    conn = await connect(url)
    try:
        # One exported snapshot: the dump and the checksums see exactly the same data.
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
        created_at = datetime.now(UTC)
        tables = await user_tables(conn)
        revision = await schema_revision(conn)
        server_version = await conn.fetchval("SHOW server_version")
        dumped: list[str] = []
        checked: list[str] = []
        total = max(len(tables), 1)

        def on_dump_line(line: str) -> None:
            if _DUMP_TABLE.search(line):
                dumped.append(line)
                report("dump", len(dumped), total)

        def on_checked(table: str) -> None:
            checked.append(table)
            report("checksums", len(checked), total)

        report("dump", 0, total)
        report("checksums", 0, total)
        dsn, password_env = tool_dsn(url)
        dump = run_tool(
            [
                tool("pg_dump"),
                "--format=custom",
                # gzip level 1: a quarter of the CPU of the default level 6 for ~25 % more bytes;
                # compression is most of pg_dump's time, and backups should be quick.
                "--compress=gzip:1",
                "--verbose",
                f"--snapshot={snapshot}",
                f"--file={tmp / DUMP}",
                f"--dbname={dsn}",
            ],
            on_line=on_dump_line,
            env=password_env,
        )
        dump_task = asyncio.ensure_future(dump)
        try:
            stats = await table_stats(conn, tables, on_checked)
            await dump_task
        finally:
            if not dump_task.done():
                dump_task.cancel()
                with contextlib.suppress(BaseException):
                    await dump_task
        await conn.execute("COMMIT")
    finally:
        await conn.close()
    report("dump", total, total)

    if isinstance(uploads, LocalStorage):
        files, size = await asyncio.to_thread(
            _archive_uploads, uploads.root, tmp / UPLOADS_TAR, report
        )
    else:
        files, size = await asyncio.to_thread(_archive_objects, uploads, tmp / UPLOADS_TAR, report)
    parts: dict[str, dict[str, Any]] = {}
    for name in (DUMP, UPLOADS_TAR):
        path = tmp / name
        parts[name] = {
            "sha256": await asyncio.to_thread(sha256_file, path),
            "bytes": path.stat().st_size,
        }
    report("sha256", 1, 1)
    return {
        "format": FORMAT_VERSION,
        "createdAt": iso(created_at),
        "appVersion": __version__,
        "schemaRevision": revision,
        "postgresVersion": server_version,
        "database": database_name(url),
        "tables": stats,
        "uploads": {"files": files, "bytes": size},
        "parts": parts,
    }


def _archive_uploads(uploads_dir: Path, target: Path, report: Progress) -> tuple[int, int]:
    files = sorted(
        p
        for p in (uploads_dir.rglob("*") if uploads_dir.is_dir() else [])
        if p.is_file() and p.relative_to(uploads_dir).parts[0] != PARTIAL_UPLOADS_DIR
    )
    total = sum(p.stat().st_size for p in files) or 1
    done = 0
    report("uploads", 0, total)
    with (
        open(target, "wb") as raw,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in files:
            tar.add(path, arcname=path.relative_to(uploads_dir).as_posix(), recursive=False)
            done += path.stat().st_size
            report("uploads", done, total)
        tar.close()
        raw.flush()
        os.fsync(raw.fileno())
    report("uploads", total, total)
    return len(files), done


def _archive_objects(store: Storage, target: Path, report: Progress) -> tuple[int, int]:
    """The uploads of an object store, streamed object by object into the same tar layout as
    a local directory's (`<2 hex>/<key>`), so either kind of store restores into the other."""
    found = list(store.list_objects())
    total = sum(obj.size for obj in found) or 1
    files = done = 0
    report("uploads", 0, total)
    with (
        open(target, "wb") as raw,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for obj in found:
            try:
                reader = store.reader(obj.key)
            except FileNotFoundError:
                continue  # removed by `uploads clean` since the listing
            with reader:
                info = tarfile.TarInfo(upload_relpath(obj.key))
                info.size, info.mtime, info.mode = obj.size, int(obj.modified), 0o600
                tar.addfile(info, reader)
            files += 1
            done += obj.size
            report("uploads", done, total)
        tar.close()
        raw.flush()
        os.fsync(raw.fileno())
    report("uploads", total, total)
    return files, done


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- reading and checking ------------------------------------------------------------------


def load_manifest(path: Path) -> dict[str, Any]:
    path = path.expanduser()
    if not path.is_dir():
        raise BackupError(f"{path} is not a backup directory")
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BackupError(f"{path} has no {MANIFEST}: not a Te Kudasai backup (or incomplete)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise BackupError(f"{manifest_path} is not a backup manifest this version understands")
    for key in ("createdAt", "parts", "tables"):
        if key not in manifest:
            raise BackupError(f"{manifest_path} lacks {key!r}")
    if set(manifest["parts"]) != {DUMP, UPLOADS_TAR}:
        raise BackupError(f"{manifest_path} lists unexpected parts {sorted(manifest['parts'])}")
    return manifest


def check_backup(path: Path, progress: Progress | None = None) -> Backup:
    """Manifest present and every part's size and sha256 as recorded; raises otherwise."""
    report = progress or no_progress
    manifest = load_manifest(path)
    parts = manifest["parts"]
    for index, (name, expected) in enumerate(sorted(parts.items())):
        part = path / name
        if not part.is_file():
            raise BackupError(f"{part} is missing: the backup is incomplete")
        size = part.stat().st_size
        if size != expected.get("bytes"):
            raise BackupError(
                f"{part} is {size} bytes, the manifest says {expected.get('bytes')}:"
                " truncated or altered"
            )
        if sha256_file(part) != expected.get("sha256"):
            raise BackupError(f"{part} does not match its sha256 in the manifest: altered")
        report("checking", index + 1, len(parts))
    return Backup(path.expanduser().resolve(), manifest)


def list_backups(directory: Path) -> list[Backup]:
    """Complete backups in `directory`, oldest first (unreadable ones are skipped)."""
    if not directory.is_dir():
        return []
    found = []
    for child in directory.iterdir():
        if child.name.startswith(TMP_PREFIX) or not child.is_dir():
            continue
        try:
            found.append(Backup(child, load_manifest(child)))
        except (BackupError, OSError):
            continue
    return sorted(found, key=lambda b: b.created_at)


# -- retention -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Retention:
    recent: int = 1
    daily: int = 0
    weekly: int = 0
    keep_all: bool = False


_KEEP_TOKEN = re.compile(r"^(\d+)([dw]?)$")


def parse_retention(value: str) -> Retention:
    """'7d,4w' (7 daily + 4 weekly), optionally 'N' (N most recent); 'all' never prunes."""
    text = value.strip().lower()
    if text in {"all", "off", "forever"}:
        return Retention(keep_all=True)
    recent, daily, weekly = 1, 0, 0
    for token in filter(None, (t.strip() for t in text.split(","))):
        match = _KEEP_TOKEN.match(token)
        if not match or int(match.group(1)) < 1:
            raise BackupError(
                f"TK_BACKUP_KEEP: cannot read {token!r} (use e.g. 7d,4w or 10 or all)"
            )
        count, unit = int(match.group(1)), match.group(2)
        if unit == "d":
            daily = count
        elif unit == "w":
            weekly = count
        else:
            recent = count
    return Retention(recent=recent, daily=daily, weekly=weekly)


def select_kept(times: list[datetime], policy: Retention) -> set[datetime]:
    """Newest always; the N most recent; the newest of each of the last D days and W weeks."""
    if policy.keep_all:
        return set(times)
    ordered = sorted(times, reverse=True)
    kept = set(ordered[: max(policy.recent, 1)])
    for count, bucket in (
        (policy.daily, lambda t: t.date()),
        (policy.weekly, lambda t: t.isocalendar()[:2]),
    ):
        seen: list[object] = []
        for moment in ordered:
            key = bucket(moment)
            if key in seen:
                continue
            if len(seen) == count:
                break
            seen.append(key)
            kept.add(moment)
    return kept


def remove_unkept(dated: list[tuple[datetime, Path]], policy: Retention) -> list[Path]:
    """Delete the directories the policy does not keep; returns the deleted ones.

    The one pruning rule for logical and base backups alike.
    """
    kept = select_kept([moment for moment, _ in dated], policy)
    removed = []
    for moment, path in dated:
        if moment not in kept:
            shutil.rmtree(path)
            removed.append(path)
    return removed


def prune_backups(directory: Path, policy: Retention) -> list[Path]:
    """Delete backups the policy does not keep (and stale temporary ones); returns the deleted."""
    removed = remove_unkept([(b.created_at, b.path) for b in list_backups(directory)], policy)
    if directory.is_dir():
        stale_before = time.time() - timedelta(days=1).total_seconds()
        for child in directory.iterdir():
            if child.name.startswith(TMP_PREFIX) and child.stat().st_mtime < stale_before:
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child)
    return removed
