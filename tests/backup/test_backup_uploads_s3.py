"""`db backup`, `db restore` and `db verify` with the uploads in an S3-compatible store (moto's
server in its own process): the uploads go into the backup, come back on restore (into the
store, or into a local directory), and the live check looks in the store."""

from __future__ import annotations

import tarfile
from pathlib import Path

import asyncpg

from tekudasai.backup.archive import UPLOADS_TAR, load_manifest
from tekudasai.backup.tools import with_database
from tests.backup.conftest import Populated, cli_env, files_in, snapshot, tekudasai
from tests.objectstore import CREDENTIALS, MotoServer, moto_server, objects, s3_bucket

__all__ = ["moto_server", "s3_bucket"]  # fixtures

PREFIX = "tk/uploads"


def tar_files(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar
            if m.isfile()
        }


def bucket_files(server: MotoServer, bucket: str) -> dict[str, bytes]:
    client = server.client()
    return {
        key.removeprefix(f"{PREFIX}/"): client.get_object(Bucket=bucket, Key=key)["Body"].read()
        for key in objects(server, bucket)
    }


async def test_backup_restore_and_verify_with_uploads_in_s3(
    populated: Populated, moto_server: MotoServer, s3_bucket: str, tmp_path: Path
) -> None:
    # The populated uploads, moved into the bucket as `aws s3 sync` would (same layout).
    client = moto_server.client()
    for relpath, body in populated.files.items():
        client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/{relpath}", Body=body)
        (populated.settings.uploads_dir / relpath).unlink()
    url = f"s3://{s3_bucket}/{PREFIX}?endpoint={moto_server.endpoint}"
    env = cli_env(populated.url, populated.settings.data_dir, TK_UPLOADS_URL=url, **CREDENTIALS)

    live = tekudasai("db", "verify", env=env)
    assert live.returncode == 0, live.stdout + live.stderr
    assert f"3 recorded upload(s) all have their file in s3://{s3_bucket}/{PREFIX}" in live.stdout

    done = tekudasai("db", "backup", "--out", str(tmp_path / "b1"), env=env)
    assert done.returncode == 0, done.stderr
    assert "3 files" in done.stdout
    assert load_manifest(tmp_path / "b1")["uploads"]["files"] == 3
    assert tar_files(tmp_path / "b1" / UPLOADS_TAR) == populated.files
    checked = tekudasai("db", "verify", str(tmp_path / "b1"), env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "3 uploaded file(s) present with their sha256" in checked.stdout

    # Damage: one object lost, one stray added, a row changed.
    before = await snapshot(populated.url)
    lost = sorted(populated.files)[0]
    client.delete_object(Bucket=s3_bucket, Key=f"{PREFIX}/{lost}")
    client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/ee/ee{'1' * 30}", Body=b"stray")
    broken = tekudasai("db", "verify", env=env)
    assert broken.returncode == 1
    assert "1 upload(s) recorded in the database have no file in s3://" in broken.stdout
    assert "1 file(s) in s3://" in broken.stdout and "belong to no upload record" in broken.stdout
    conn = await asyncpg.connect(populated.url)
    try:
        await conn.execute("DELETE FROM ticket_uploads")
    finally:
        await conn.close()

    restored = tekudasai("db", "restore", str(tmp_path / "b1"), "--yes", env=env)
    assert restored.returncode == 0, restored.stderr
    assert "3 file(s)" in restored.stdout
    assert await snapshot(populated.url) == before
    assert bucket_files(moto_server, s3_bucket) == populated.files  # the stray is gone too
    assert tekudasai("db", "verify", env=env).returncode == 0

    # The same backup restores into a local upload directory (another data dir, database).
    other_dir = tmp_path / "other"
    other_url = with_database(populated.url, "tk_from_s3_backup")
    local_env = cli_env(other_url, other_dir)
    elsewhere = tekudasai(
        "db", "restore", str(tmp_path / "b1"), "--yes", "--target-url", other_url, env=local_env
    )
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert files_in(other_dir / "uploads") == populated.files
    assert tekudasai("db", "verify", env=local_env).returncode == 0


def test_a_store_that_cannot_be_reached_fails_the_backup_cleanly(
    populated: Populated, tmp_path: Path
) -> None:
    url = "s3://tk-nowhere/x?endpoint=http://127.0.0.1:9"  # nothing listens on port 9
    env = cli_env(populated.url, populated.settings.data_dir, TK_UPLOADS_URL=url, **CREDENTIALS)
    failed = tekudasai("db", "backup", "--out", str(tmp_path / "b1"), env=env)
    assert failed.returncode != 0
    assert "file store is not available" in failed.stdout + failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr
    assert not (tmp_path / "b1").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
