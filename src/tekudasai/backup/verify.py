"""`db verify`: prove a backup restores to what its manifest says, or check the live database."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from tekudasai.backup.archive import UPLOADS_TAR, Progress, check_backup, no_progress
from tekudasai.backup.restore import load_and_check
from tekudasai.backup.tools import (
    PARTIAL_UPLOADS_DIR,
    BackupError,
    connect,
    connect_maintenance,
    quote_ident,
    run_tool,
    tool,
    tool_dsn,
    upload_relpath,
    with_database,
)
from tekudasai.uploads.storage import LocalStorage, Storage


@dataclass
class Report:
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_backup(*, path: Path, server_url: str, progress: Progress | None = None) -> Report:
    """Checksums of the parts, then a restore into a scratch database compared with the manifest."""
    report = progress or no_progress
    result = Report()
    try:
        backup = await asyncio.to_thread(check_backup, path, report)
    except BackupError as exc:
        result.problems.append(exc.message)
        return result
    result.checks.append("manifest present, every part matches its size and sha256")
    manifest = backup.manifest

    scratch = f"tk_verify_{secrets.token_hex(6)}"
    maintenance = await connect_maintenance(server_url)
    try:
        await maintenance.execute(f"CREATE DATABASE {quote_ident(scratch)}")
        scratch_url = with_database(server_url, scratch)
        try:
            await load_and_check(backup, scratch_url, report)
            result.checks.append(
                f"restored into a scratch database: {len(manifest['tables'])} tables match"
                " their row counts and checksums"
            )
            upload_rows = await _upload_hashes(scratch_url)
        except BackupError as exc:
            result.problems.append(exc.message)
            upload_rows = None
        finally:
            with contextlib.suppress(asyncpg.PostgresError):
                await maintenance.execute(
                    f"DROP DATABASE IF EXISTS {quote_ident(scratch)} WITH (FORCE)"
                )
    finally:
        await maintenance.close()

    files = await asyncio.to_thread(_tar_hashes, backup.path / UPLOADS_TAR)
    expected_files = manifest.get("uploads", {}).get("files")
    if expected_files is not None and expected_files != len(files):
        result.problems.append(
            f"uploads archive holds {len(files)} files, manifest says {expected_files}"
        )
    if upload_rows is not None:
        missing = sorted(key for key in upload_rows if key not in files)
        altered = sorted(
            key for key, digest in upload_rows.items() if key in files and files[key] != digest
        )
        if missing:
            result.problems.append(
                f"{len(missing)} uploaded file(s) are referenced but not in the archive,"
                f" e.g. {missing[0]}"
            )
        if altered:
            result.problems.append(
                f"{len(altered)} uploaded file(s) differ from their recorded sha256,"
                f" e.g. {altered[0]}"
            )
        if not missing and not altered:
            result.checks.append(f"{len(upload_rows)} uploaded file(s) present with their sha256")
    return result


async def _upload_hashes(url: str) -> dict[str, str]:
    conn = await connect(url)
    try:
        if not await conn.fetchval("SELECT to_regclass('public.uploads') IS NOT NULL"):
            return {}
        rows = await conn.fetch("SELECT storage_key, sha256 FROM public.uploads")
    finally:
        await conn.close()
    return {upload_relpath(row["storage_key"]): row["sha256"] for row in rows}


def _tar_hashes(archive: Path) -> dict[str, str]:
    hashes: dict[str, str] = {}
    with tarfile.open(archive, mode="r") as tar:
        for member in tar:
            if not member.isfile():
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            digest = hashlib.sha256()
            while block := handle.read(1 << 20):
                digest.update(block)
            hashes[member.name] = digest.hexdigest()
    return hashes


async def verify_live(
    *,
    url: str,
    uploads_dir: Path | None = None,
    uploads: Storage | None = None,
    progress: Progress | None = None,
) -> Report:
    """pg_amcheck (heap + every index), constraint validity and upload files in their store."""
    report = progress or no_progress
    if uploads is None:
        if uploads_dir is None:
            raise ValueError("verify_live needs uploads_dir or uploads")
        uploads = LocalStorage(uploads_dir)
    result = Report()
    report("amcheck", 0, 1)
    dsn, password_env = tool_dsn(url)
    try:
        await run_tool(
            [
                tool("pg_amcheck"),
                "--install-missing",
                "--heapallindexed",
                # pg_amcheck takes a connection string only as its positional argument.
                dsn,
            ],
            env=password_env,
        )
        result.checks.append("pg_amcheck: every table and index is intact")
    except BackupError as exc:
        result.problems.append(f"pg_amcheck found corruption or could not run: {exc.message}")
    report("amcheck", 1, 1)

    conn = await connect(url)
    try:
        invalid = await conn.fetch(
            "SELECT conrelid::regclass::text AS rel, conname FROM pg_constraint"
            " WHERE NOT convalidated AND connamespace = 'public'::regnamespace"
        )
        for row in invalid:
            result.problems.append(f"constraint {row['conname']} on {row['rel']} is not validated")
        if not invalid:
            result.checks.append("every constraint is validated")
        has_uploads = await conn.fetchval("SELECT to_regclass('public.uploads') IS NOT NULL")
        keys = (
            [
                upload_relpath(r["storage_key"])
                for r in await conn.fetch("SELECT storage_key FROM public.uploads")
            ]
            if has_uploads
            else []
        )
    finally:
        await conn.close()
    report("files", 0, 1)
    if isinstance(uploads, LocalStorage):
        stored = await asyncio.to_thread(_relative_files, uploads.root)
        where, kind = uploads.root, "on disk"
    else:
        store = uploads
        stored = await asyncio.to_thread(
            lambda: {upload_relpath(obj.key) for obj in store.list_objects()}
        )
        where, kind = store.description, f"in {store.description}"  # type: ignore[assignment]
    missing = sorted(set(keys) - stored)
    if missing:
        result.problems.append(
            f"{len(missing)} upload(s) recorded in the database have no file in {where},"
            f" e.g. {missing[0]}"
        )
    else:
        result.checks.append(f"{len(keys)} recorded upload(s) all have their file {kind}")
    stray = stored - set(keys)
    if stray:
        result.warnings.append(
            f"{len(stray)} file(s) in {where} belong to no upload record"
            " (`tekudasai uploads clean` removes them)"
        )
    report("files", 1, 1)
    return result


def _relative_files(root: Path) -> set[str]:
    if not root.is_dir():
        return set()
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] != PARTIAL_UPLOADS_DIR
    }
