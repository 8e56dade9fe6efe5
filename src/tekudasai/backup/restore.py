"""Restore a logical backup: check it, load it into a staging database beside the live one,
migrate it forward, then swap names in one short step (the live service only sees a brief
reconnect). Uploaded files are swapped the same way. Nothing live is touched before the
staging copy is complete and verified."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from tekudasai.backup.archive import DUMP, UPLOADS_TAR, Backup, Progress, check_backup, no_progress
from tekudasai.backup.tools import (
    BackupError,
    connect,
    connect_maintenance,
    database_name,
    quote_ident,
    run_tool,
    safe_identifier,
    table_stats,
    tool,
    tool_dsn,
    user_tables,
    with_database,
)
from tekudasai.config import Settings
from tekudasai.db import migrate
from tekudasai.db.session import Database
from tekudasai.uploads.storage import LocalStorage, Storage

Confirm = Callable[[str], bool]
TERMINATE_TIMEOUT_S = 20.0
_DATA_LOADED = re.compile(r"finished item \d+ TABLE DATA (\S+)")
_ARCHIVED_UPLOAD = re.compile(r"^[0-9a-f]{2}/([0-9a-f]{32})$")


class RestoreRefused(BackupError):
    """The restore would replace live data and nobody confirmed it."""

    code = "RESTORE_NOT_CONFIRMED"


@dataclass
class RestoreResult:
    database: str
    revision_from: str | None
    revision_to: str | None
    files: int
    replaced: bool
    notes: list[str] = field(default_factory=list)


def check_revision(revision: str | None) -> None:
    """Refuse a backup written by a newer schema than this code knows."""
    if revision is None:
        return
    if not migrate.known_revision(revision):
        raise BackupError(
            f"the backup's schema revision {revision!r} is newer than this version of"
            f" Te Kudasai knows (head {migrate.head_revision()}): upgrade Te Kudasai first"
        )


async def restore_backup(
    *,
    path: Path,
    target_url: str,
    settings: Settings,
    uploads_dir: Path,
    confirm: Confirm,
    progress: Progress | None = None,
    uploads: Storage | None = None,
) -> RestoreResult:
    """Restore `path` into the database at `target_url` and the files into `uploads_dir` (or
    into the object store `uploads`)."""
    report = progress or no_progress
    if isinstance(uploads, LocalStorage):
        uploads_dir, uploads = uploads.root, None
    backup = await asyncio.to_thread(check_backup, path, report)
    manifest = backup.manifest
    check_revision(manifest.get("schemaRevision"))
    target = safe_identifier(database_name(target_url))
    live = await _database_state(target_url)
    if uploads is None:
        files_present = await asyncio.to_thread(_has_files, uploads_dir)
        files_where = str(uploads_dir)
    else:
        files_present = await asyncio.to_thread(_has_objects, uploads)
        files_where = uploads.description
    if live.non_empty or files_present:
        what = " and ".join(
            ([f"database {target!r} ({live.tables} tables)"] if live.non_empty else [])
            + ([f"the files in {files_where}"] if files_present else [])
        )
        if not confirm(f"This replaces {what} with the backup from {manifest['createdAt']}."):
            raise RestoreRefused(
                f"{what} is not empty: confirm the restore (run it in a terminal or pass --yes)"
            )

    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    staging = f"{target[:40]}_restore_{stamp}"
    staging_url = with_database(target_url, staging)
    files_tmp = uploads_dir.parent / f".{uploads_dir.name}.restore-{secrets.token_hex(4)}"
    maintenance = await connect_maintenance(target_url)
    try:
        await maintenance.execute(f"CREATE DATABASE {quote_ident(staging)}")
    except asyncpg.PostgresError as exc:
        await maintenance.close()
        raise BackupError(f"cannot create a staging database on the target server: {exc}") from exc
    swapped = False
    staged: StagedObjects | None = None
    try:
        await load_and_check(backup, staging_url, report)
        revision_to = await _migrate_forward(staging_url, settings)
        report("files", 0, 1)
        if uploads is None:
            files = await asyncio.to_thread(_extract_uploads, backup.path / UPLOADS_TAR, files_tmp)
        else:
            # Keys are random and never reused: the backup's objects can go in beside the
            # live ones before the swap; the ones the backup lacks go after it.
            staged = StagedObjects(uploads)
            files = await asyncio.to_thread(staged.put_all, backup.path / UPLOADS_TAR)
        report("files", 1, 1)
        report("swap", 0, 1)
        await _swap_databases(maintenance, target, staging, exists=live.exists)
        swapped = True
        if staged is None:
            await asyncio.to_thread(_swap_directories, files_tmp, uploads_dir)
        else:
            await asyncio.to_thread(staged.remove_others)
        report("swap", 1, 1)
    finally:
        if not swapped:
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                await maintenance.execute(
                    f"DROP DATABASE IF EXISTS {quote_ident(staging)} WITH (FORCE)"
                )
            if staged is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(staged.undo)
        shutil.rmtree(files_tmp, ignore_errors=True)
        await maintenance.close()
    return RestoreResult(
        database=target,
        revision_from=manifest.get("schemaRevision"),
        revision_to=revision_to,
        files=files,
        replaced=live.exists,
    )


@dataclass(frozen=True)
class TargetState:
    exists: bool
    tables: int

    @property
    def non_empty(self) -> bool:
        return self.tables > 0


async def _database_state(url: str) -> TargetState:
    maintenance = await connect_maintenance(url)
    try:
        exists = await maintenance.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", database_name(url)
        )
    finally:
        await maintenance.close()
    if not exists:
        return TargetState(exists=False, tables=0)
    conn = await connect(url)
    try:
        return TargetState(exists=True, tables=len(await user_tables(conn)))
    finally:
        await conn.close()


async def load_and_check(backup: Backup, url: str, report: Progress) -> None:
    """pg_restore the dump into the empty database at `url` and prove it equals the manifest.

    Each table is checksummed as soon as pg_restore reports its data loaded, while pg_restore
    goes on building indexes, so the verification costs little extra time."""
    total = max(len(backup.manifest["tables"]), 1)
    loaded: asyncio.Queue[str | None] = asyncio.Queue()
    stats: dict[str, dict[str, object]] = {}

    def on_line(line: str) -> None:
        match = _DATA_LOADED.search(line)
        if match:
            loaded.put_nowait(match.group(1))

    async def check_loaded() -> None:
        conn = await connect(url)
        try:
            while (table := await loaded.get()) is not None:
                stats.update(await table_stats(conn, [table]))
                report("restore", min(len(stats), total), total)
            rest = [t for t in await user_tables(conn) if t not in stats]
            stats.update(await table_stats(conn, rest))
        finally:
            await conn.close()

    report("restore", 0, total)
    dsn, password_env = tool_dsn(url)
    checker = asyncio.ensure_future(check_loaded())
    try:
        await run_tool(
            [
                tool("pg_restore"),
                "--verbose",
                "--exit-on-error",
                "--no-owner",
                "--no-acl",
                "--jobs=2",
                f"--dbname={dsn}",
                str(backup.path / DUMP),
            ],
            on_line=on_line,
            env=password_env,
        )
    except BaseException:
        checker.cancel()
        with contextlib.suppress(BaseException):
            await checker
        raise
    loaded.put_nowait(None)
    await checker
    report("restore", total, total)
    compare_stats(stats, backup.manifest)


def compare_stats(stats: dict[str, dict[str, object]], manifest: dict[str, Any]) -> None:
    expected = manifest["tables"]
    problems = [f"table {name} is missing" for name in sorted(set(expected) - set(stats))]
    problems += [
        f"table {name} is not in the manifest" for name in sorted(set(stats) - set(expected))
    ]
    for name in sorted(set(expected) & set(stats)):
        want, got = expected[name], stats[name]
        if want["rows"] != got["rows"]:
            problems.append(f"table {name}: {got['rows']} rows, manifest says {want['rows']}")
        elif want["checksum"] != got["checksum"]:
            problems.append(f"table {name}: content checksum differs from the manifest")
    if problems:
        raise BackupError("restored data does not match the manifest: " + "; ".join(problems))


async def _migrate_forward(url: str, settings: Settings) -> str | None:
    database = Database.connect(url, settings, pool_size=1)
    try:
        before = await migrate.current_revision(database.engine)
        if before != migrate.head_revision():
            await migrate.upgrade(database.engine)
        return await migrate.current_revision(database.engine)
    finally:
        await database.dispose()


async def _swap_databases(
    conn: asyncpg.Connection, target: str, staging: str, *, exists: bool
) -> None:
    """Put staging in place of target; the old database is dropped once the swap is done."""
    if not exists:
        await conn.execute(f"ALTER DATABASE {quote_ident(staging)} RENAME TO {quote_ident(target)}")
        return
    aside = f"{target[:40]}_old_{secrets.token_hex(3)}"
    await conn.execute(f"ALTER DATABASE {quote_ident(target)} WITH ALLOW_CONNECTIONS false")
    try:
        await _terminate(conn, target)
        await conn.execute(f"ALTER DATABASE {quote_ident(target)} RENAME TO {quote_ident(aside)}")
    except BaseException:
        await conn.execute(f"ALTER DATABASE {quote_ident(target)} WITH ALLOW_CONNECTIONS true")
        raise
    try:
        await conn.execute(f"ALTER DATABASE {quote_ident(staging)} RENAME TO {quote_ident(target)}")
    except BaseException:
        await conn.execute(f"ALTER DATABASE {quote_ident(aside)} RENAME TO {quote_ident(target)}")
        await conn.execute(f"ALTER DATABASE {quote_ident(target)} WITH ALLOW_CONNECTIONS true")
        raise
    await conn.execute(f"DROP DATABASE {quote_ident(aside)} WITH (FORCE)")


async def _terminate(conn: asyncpg.Connection, name: str) -> None:
    deadline = asyncio.get_running_loop().time() + TERMINATE_TIMEOUT_S
    while True:
        left = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        if not left:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise BackupError(f"could not disconnect the sessions using {name!r}")
        await asyncio.sleep(0.2)


def _has_files(root: Path) -> bool:
    return root.is_dir() and any(p.is_file() for p in root.rglob("*"))


def _extract_uploads(archive: Path, target: Path) -> int:
    target.mkdir(parents=True)
    count = 0
    with tarfile.open(archive, mode="r") as tar:
        for member in tar:
            if not member.isfile():
                continue
            # The data filter refuses absolute paths, '..' and links out of the target.
            tar.extract(member, target, filter="data")
            count += 1
    return count


def _has_objects(store: Storage) -> bool:
    return next(iter(store.list_objects()), None) is not None


class StagedObjects:
    """A backup's uploads put into an object store beside the live ones."""

    def __init__(self, store: Storage) -> None:
        self.store = store
        self.before: set[str] = set()
        self.put: set[str] = set()

    def put_all(self, archive: Path) -> int:
        self.before = {obj.key for obj in self.store.list_objects()}
        with tarfile.open(archive, mode="r") as tar:
            for member in tar:
                match = _ARCHIVED_UPLOAD.match(member.name)
                if not member.isfile() or not match:
                    continue  # only what the upload stores write: `<2 hex>/<key>`
                source = tar.extractfile(member)
                assert source is not None
                with source:
                    self.store.put(match.group(1), source, member.size)  # type: ignore[arg-type]
                self.put.add(match.group(1))
        return len(self.put)

    def remove_others(self) -> None:
        """After the swap: the live objects the backup does not have go, as a directory would."""
        self.store.delete_many(sorted(self.before - self.put))

    def undo(self) -> None:
        """The restore failed before the swap: take back what was not there before."""
        self.store.delete_many(sorted(self.put - self.before))


def _swap_directories(new: Path, live: Path) -> None:
    aside = live.parent / f".{live.name}.old-{secrets.token_hex(4)}"
    if live.exists():
        live.rename(aside)
    new.rename(live)
    shutil.rmtree(aside, ignore_errors=True)
