"""Off-site copies against a real S3-compatible server (moto in server mode on loopback)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tekudasai.backup import storage_s3
from tekudasai.backup.archive import DUMP, MANIFEST, UPLOADS_TAR, Backup, load_manifest
from tekudasai.backup.tools import BackupError, tool_dsn
from tests.backup.conftest import Populated, cli_env, tekudasai

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket="tk-backups"
    )
    yield endpoint
    server.stop()


def _objects(endpoint: str) -> dict[str, bytes]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    listing = client.list_objects_v2(Bucket="tk-backups").get("Contents", [])
    return {
        item["Key"]: client.get_object(Bucket="tk-backups", Key=item["Key"])["Body"].read()
        for item in listing
    }


async def test_backup_is_copied_off_site_and_verified(
    populated: Populated, s3_endpoint: str, tmp_path: Path
) -> None:
    url = f"s3://tk-backups/desk/prod?endpoint={s3_endpoint}"
    env = cli_env(populated.url, populated.settings.data_dir, TK_BACKUP_S3_URL=url, **CREDENTIALS)
    done = tekudasai("db", "backup", "--out", str(tmp_path / "b1"), env=env)
    assert done.returncode == 0, done.stderr
    assert "off-site copy verified: 3 objects" in done.stdout

    objects = _objects(s3_endpoint)
    assert set(objects) == {f"desk/prod/b1/{name}" for name in (MANIFEST, DUMP, UPLOADS_TAR)}
    manifest = load_manifest(tmp_path / "b1")
    for name in (DUMP, UPLOADS_TAR):
        remote = objects[f"desk/prod/b1/{name}"]
        assert hashlib.sha256(remote).hexdigest() == manifest["parts"][name]["sha256"]
    assert objects["desk/prod/b1/manifest.json"] == (tmp_path / "b1" / MANIFEST).read_bytes()

    assert storage_s3.remote_backups(url) == ["b1"]
    assert storage_s3.prune_remote(url, keep=set()) == ["b1"]
    assert _objects(s3_endpoint) == {}


async def test_a_copy_that_does_not_match_its_checksum_is_reported(
    populated: Populated, s3_endpoint: str, tmp_path: Path
) -> None:
    url = f"s3://tk-backups/x?endpoint={s3_endpoint}"
    env = cli_env(populated.url, populated.settings.data_dir)
    assert tekudasai("db", "backup", "--out", str(tmp_path / "b1"), env=env).returncode == 0
    backup = Backup(tmp_path / "b1", load_manifest(tmp_path / "b1"))
    (tmp_path / "b1" / UPLOADS_TAR).write_bytes(b"not what the manifest recorded")
    with pytest.raises(BackupError, match="does not match its sha256"):
        storage_s3.upload_backup(url, backup)


def test_s3_url_is_checked() -> None:
    target = storage_s3.parse_s3_url("s3://bucket/a/b?endpoint=https://s3.example.test&region=eu")
    assert (target.bucket, target.prefix, target.endpoint, target.region) == (
        "bucket",
        "a/b",
        "https://s3.example.test",
        "eu",
    )
    with pytest.raises(BackupError, match="s3://bucket/prefix"):
        storage_s3.parse_s3_url("https://bucket/a")


def test_tool_connection_strings_keep_passwords_off_the_command_line() -> None:
    dsn, env = tool_dsn("postgresql+asyncpg://app:p%40ss@db.example.test:5432/tk?sslmode=require")
    assert dsn == "postgresql://app@db.example.test:5432/tk?sslmode=require"
    assert env == {"PGPASSWORD": "p@ss"}
    assert tool_dsn("postgresql://postgres@/tk?host=/run/pg") == (
        "postgresql://postgres@/tk?host=/run/pg",
        {},
    )
