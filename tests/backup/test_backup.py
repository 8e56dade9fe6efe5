"""Logical backup and restore through the real CLI on real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tekudasai.backup.archive import DUMP, MANIFEST, UPLOADS_TAR, check_backup, create_backup
from tekudasai.backup.tools import BackupError
from tekudasai.db import migrate
from tekudasai.db.embedded import EmbeddedPostgres
from tekudasai.db.session import Database
from tests.backup.conftest import SRC, Populated, cli_env, files_in, snapshot, tekudasai
from tests.conftest import drop_database


def _backup(populated: Populated, out: Path) -> Path:
    env = cli_env(populated.url, populated.settings.data_dir)
    done = tekudasai("db", "backup", "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    assert "backup written to" in done.stdout
    return out


async def _databases(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        return {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()


async def test_backup_drop_everything_restore_gives_identical_data_and_files(
    populated: Populated, tmp_path: Path
) -> None:
    before = await snapshot(populated.url)
    partial = populated.settings.uploads_dir / ".partial" / "unfinished-upload"
    partial.parent.mkdir()
    partial.write_bytes(b"half an upload")  # an upload still being written: not backed up
    out = _backup(populated, tmp_path / "b1")
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["schemaRevision"] == migrate.head_revision()
    assert manifest["tables"]["tickets"]["rows"] == 120
    assert manifest["uploads"]["files"] == 3
    assert {k: v["rows"] for k, v in manifest["tables"].items()} == {
        k: v["rows"] for k, v in before.items()
    }
    assert set(manifest["parts"]) == {DUMP, UPLOADS_TAR}
    assert manifest["postgresVersion"].startswith("18")

    conn = await asyncpg.connect(populated.url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    shutil.rmtree(populated.settings.uploads_dir)
    assert await snapshot(populated.url) == {}

    env = cli_env(populated.url, populated.settings.data_dir)
    done = tekudasai("db", "restore", str(out), env=env)  # empty target: no confirmation needed
    assert done.returncode == 0, done.stderr
    assert await snapshot(populated.url) == before
    assert files_in(populated.settings.uploads_dir) == populated.files


async def test_restore_over_live_data_needs_yes_without_a_terminal(
    populated: Populated, tmp_path: Path
) -> None:
    out = _backup(populated, tmp_path / "b1")
    conn = await asyncpg.connect(populated.url)
    try:
        await conn.execute("DELETE FROM ticket_logs")
        await conn.execute("UPDATE tickets SET summary = 'changed after the backup'")
    finally:
        await conn.close()
    changed = await snapshot(populated.url)
    env = cli_env(populated.url, populated.settings.data_dir)

    refused = tekudasai("db", "restore", str(out), env=env)
    assert refused.returncode == 2
    assert "not empty" in refused.stderr and "--yes" in refused.stderr
    assert await snapshot(populated.url) == changed
    assert not any("_restore_" in name for name in await _databases(populated.url))

    done = tekudasai("db", "restore", str(out), "--yes", env=env)
    assert done.returncode == 0, done.stderr
    restored = await snapshot(populated.url)
    assert restored != changed
    manifest = json.loads((out / MANIFEST).read_text())
    assert {k: {"rows": v["rows"], "checksum": v["checksum"]} for k, v in restored.items()} == (
        manifest["tables"]
    )


@pytest.mark.parametrize("damage", ["flip", "truncate"])
async def test_tampered_or_truncated_archive_is_refused_before_anything_is_touched(
    populated: Populated, tmp_path: Path, damage: str
) -> None:
    out = _backup(populated, tmp_path / "b1")
    dump = out / DUMP
    data = bytearray(dump.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[len(data) // 3 :]
    dump.write_bytes(bytes(data))
    conn = await asyncpg.connect(populated.url)
    try:
        await conn.execute("UPDATE tickets SET summary = 'live change'")
    finally:
        await conn.close()
    live = await snapshot(populated.url)
    env = cli_env(populated.url, populated.settings.data_dir)

    done = tekudasai("db", "restore", str(out), "--yes", env=env)
    assert done.returncode == 1
    assert ("sha256" in done.stderr) if damage == "flip" else ("truncated" in done.stderr)
    assert "Traceback" not in done.stderr
    assert await snapshot(populated.url) == live
    assert files_in(populated.settings.uploads_dir) == populated.files

    verify = tekudasai("db", "verify", str(out), env=env)
    assert verify.returncode == 1
    assert "problem" in verify.stdout


async def test_tampered_uploads_archive_is_refused(populated: Populated, tmp_path: Path) -> None:
    out = _backup(populated, tmp_path / "b1")
    tar = out / UPLOADS_TAR
    data = bytearray(tar.read_bytes())
    data[700] ^= 0x01
    tar.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="sha256"):
        check_backup(out)


async def test_missing_manifest_is_refused(populated: Populated, tmp_path: Path) -> None:
    out = _backup(populated, tmp_path / "b1")
    (out / MANIFEST).unlink()
    env = cli_env(populated.url, populated.settings.data_dir)
    done = tekudasai("db", "restore", str(out), "--yes", env=env)
    assert done.returncode == 1
    assert "no manifest.json" in done.stderr
    missing = tekudasai("db", "restore", str(tmp_path / "nowhere"), "--yes", env=env)
    assert missing.returncode == 1
    assert "not a backup directory" in missing.stderr


async def test_backup_from_a_newer_schema_is_refused(populated: Populated, tmp_path: Path) -> None:
    out = _backup(populated, tmp_path / "b1")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["schemaRevision"] = "9999_from_the_future"
    (out / MANIFEST).write_text(json.dumps(manifest))
    before = await snapshot(populated.url)
    env = cli_env(populated.url, populated.settings.data_dir)
    done = tekudasai("db", "restore", str(out), "--yes", env=env)
    assert done.returncode == 1
    assert "newer" in done.stderr and "upgrade Te Kudasai" in done.stderr
    assert await snapshot(populated.url) == before


async def test_older_backup_is_migrated_forward_into_a_new_target(
    pg_server: EmbeddedPostgres, populated: Populated, tmp_path: Path
) -> None:
    # A backup taken before any migration ran (revision: none) comes back at head.
    database = Database.connect(populated.url, populated.settings, pool_size=1)
    try:
        await migrate.downgrade(database.engine, "base")
    finally:
        await database.dispose()
    out = _backup(populated, tmp_path / "old")
    assert json.loads((out / MANIFEST).read_text())["schemaRevision"] is None
    target = pg_server.url("restore_target_migrated")
    try:
        env = cli_env(populated.url, tmp_path / "other-data")
        done = tekudasai("db", "restore", str(out), "--target-url", target, env=env)
        assert done.returncode == 0, done.stderr
        conn = await asyncpg.connect(target)
        try:
            assert await conn.fetchval("SELECT version_num FROM alembic_version") == (
                migrate.head_revision()
            )
            assert await conn.fetchval("SELECT count(*) FROM tickets") == 0
        finally:
            await conn.close()
    finally:
        await drop_database(pg_server, "restore_target_migrated")


async def test_verify_backup_and_live_database(populated: Populated, tmp_path: Path) -> None:
    out = _backup(populated, tmp_path / "b1")
    env = cli_env(populated.url, populated.settings.data_dir)
    backup_check = tekudasai("db", "verify", str(out), env=env)
    assert backup_check.returncode == 0, backup_check.stdout + backup_check.stderr
    assert "match their row counts and checksums" in backup_check.stdout
    assert "3 uploaded file(s) present" in backup_check.stdout
    assert not any(name.startswith("tk_verify_") for name in await _databases(populated.url))

    live = tekudasai("db", "verify", env=env)
    assert live.returncode == 0, live.stdout + live.stderr
    assert "pg_amcheck" in live.stdout

    (populated.settings.uploads_dir / next(iter(populated.files))).unlink()
    broken = tekudasai("db", "verify", env=env)
    assert broken.returncode == 1
    assert "have no file" in broken.stdout


async def test_migration_rollback_on_a_copy(
    pg_server: EmbeddedPostgres, populated: Populated, tmp_path: Path
) -> None:
    """The documented rollback drill: restore the latest backup into a copy, downgrade it."""
    out = _backup(populated, tmp_path / "b1")
    copy_url = pg_server.url("rollback_drill")
    try:
        env = cli_env(populated.url, tmp_path / "drill-data")
        assert (
            tekudasai("db", "restore", str(out), "--target-url", copy_url, env=env).returncode == 0
        )
        copy_env = cli_env(copy_url, tmp_path / "drill-data")
        down = tekudasai("db", "downgrade", "--", "-1", env=copy_env)
        assert down.returncode == 0, down.stderr
        status = tekudasai("db", "status", env=copy_env)
        assert "pending migrations" in status.stdout
        up = tekudasai("db", "migrate", env=copy_env)
        assert up.returncode == 0, up.stderr
        assert f"schema at {migrate.head_revision()}" in up.stdout
        # the live database never moved
        conn = await asyncpg.connect(populated.url)
        try:
            assert await conn.fetchval("SELECT version_num FROM alembic_version") == (
                migrate.head_revision()
            )
        finally:
            await conn.close()
    finally:
        await drop_database(pg_server, "rollback_drill")


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


async def test_disk_full_during_backup_removes_the_partial_backup_and_keeps_old_ones(
    populated: Populated, tmp_path: Path
) -> None:
    small = tmp_path / "small-disk"
    if not _tmpfs(small, "256k"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        # An old backup that fits, then a big upload that makes the next one overflow.
        old = await create_backup(
            url=populated.url, uploads_dir=tmp_path / "no-uploads", out=small / "old"
        )
        assert (old.path / MANIFEST).exists()
        (populated.settings.uploads_dir / "big.bin").write_bytes(b"\0" * 400_000)
        env = cli_env(populated.url, populated.settings.data_dir)
        done = tekudasai("db", "backup", "--out", str(small / "new"), env=env)
        assert done.returncode == 1
        assert "No space left on device" in done.stderr or "nothing was kept" in done.stderr
        assert "Traceback" not in done.stderr
        assert sorted(p.name for p in small.iterdir()) == ["old"]
        check_backup(small / "old")
    finally:
        subprocess.run(["umount", str(small)], check=False)  # noqa: ASYNC221


async def test_backup_refuses_an_existing_non_empty_out(
    populated: Populated, tmp_path: Path
) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "something").write_text("keep me")
    env = cli_env(populated.url, populated.settings.data_dir)
    done = tekudasai("db", "backup", "--out", str(out), env=env)
    assert done.returncode == 1
    assert "already exists" in done.stderr
    assert (out / "something").read_text() == "keep me"


async def test_restore_needs_a_path_or_a_time(tmp_path: Path) -> None:
    env = cli_env(None, tmp_path)
    done = tekudasai("db", "restore", env=env)
    assert done.returncode == 2
    assert "either a backup directory or --to-time" in done.stderr


async def test_restore_into_another_database_still_asks_before_replacing_files(
    pg_server: EmbeddedPostgres, populated: Populated, tmp_path: Path
) -> None:
    out = _backup(populated, tmp_path / "b1")
    (populated.settings.uploads_dir / "newer-upload.bin").write_bytes(b"after the backup")
    env = cli_env(populated.url, populated.settings.data_dir)
    target = pg_server.url("restore_target_files")
    done = tekudasai("db", "restore", str(out), "--target-url", target, env=env)
    assert done.returncode == 2
    assert "the files in" in done.stderr
    assert (populated.settings.uploads_dir / "newer-upload.bin").exists()
    assert "restore_target_files" not in await _databases(populated.url)


def _in_terminal(args: list[str], env: dict[str, str], answer: bytes) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin and type `answer`."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tekudasai", *args],
            env=env,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=str(SRC.parent),
        )
        os.write(master, answer)
        out, _ = proc.communicate(timeout=180)
    finally:
        os.close(master)
        os.close(slave)
    return proc.returncode, out.decode(errors="replace")


async def test_interactive_restore_asks_and_respects_the_answer(
    populated: Populated, tmp_path: Path
) -> None:
    out = _backup(populated, tmp_path / "b1")
    conn = await asyncpg.connect(populated.url)
    try:
        await conn.execute("UPDATE tickets SET summary = 'edited later'")
    finally:
        await conn.close()
    edited = await snapshot(populated.url)
    env = cli_env(populated.url, populated.settings.data_dir)

    code, text = await asyncio.to_thread(_in_terminal, ["db", "restore", str(out)], env, b"n\n")
    assert code == 2
    assert "Continue?" in text
    assert await snapshot(populated.url) == edited

    code, text = await asyncio.to_thread(_in_terminal, ["db", "restore", str(out)], env, b"y\n")
    assert code == 0, text
    assert "restored database" in text
    assert await snapshot(populated.url) != edited
