"""Off-site copies on any S3-compatible store: TK_BACKUP_S3_URL=s3://bucket/prefix?endpoint=…
Credentials come from the usual AWS variables. Every upload is read back and its sha256 compared
with the local file, so a copy that is not byte-identical is reported, not trusted."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tekudasai.backup.archive import MANIFEST, Backup
from tekudasai.backup.tools import BackupError, sha256_file


@dataclass(frozen=True)
class S3Target:
    bucket: str
    prefix: str
    endpoint: str | None
    region: str | None

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)


def parse_s3_url(url: str) -> S3Target:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise BackupError(
            f"TK_BACKUP_S3_URL must look like s3://bucket/prefix?endpoint=…, not {url!r}"
        )
    query = parse_qs(parts.query)
    return S3Target(
        bucket=parts.netloc,
        prefix=parts.path.strip("/"),
        endpoint=query.get("endpoint", [None])[0],
        region=query.get("region", [None])[0],
    )


def _client(target: S3Target) -> Any:
    # Imported lazily: boto3 is the optional `s3` extra, only off-site copies need it.
    try:
        import boto3
    except ImportError:
        raise BackupError(
            "TK_BACKUP_S3_URL needs boto3, which is not installed: pip install 'tekudasai[s3]'"
        ) from None

    return boto3.client(
        "s3", endpoint_url=target.endpoint, region_name=target.region or "us-east-1"
    )


def _remote_sha256(client: Any, bucket: str, key: str) -> str:
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    for block in body.iter_chunks(1 << 20):
        digest.update(block)
    return digest.hexdigest()


def upload_backup(url: str, backup: Backup) -> list[str]:
    """Upload every file of the backup, read each back and compare sha256; returns the keys."""
    target = parse_s3_url(url)
    client = _client(target)
    keys = []
    try:
        for name in sorted([*backup.manifest["parts"], MANIFEST]):
            local: Path = backup.path / name
            key = target.key(backup.path.name, name)
            client.upload_file(str(local), target.bucket, key)
            keys.append(key)
        for name in sorted([*backup.manifest["parts"], MANIFEST]):
            key = target.key(backup.path.name, name)
            expected = (
                backup.manifest["parts"][name]["sha256"]
                if name in backup.manifest["parts"]
                else sha256_file(backup.path / name)
            )
            if _remote_sha256(client, target.bucket, key) != expected:
                raise BackupError(
                    f"off-site copy s3://{target.bucket}/{key} does not match its sha256"
                )
    except BackupError:
        raise
    except Exception as exc:  # botocore raises many unrelated types
        raise BackupError(f"off-site copy to s3://{target.bucket} failed: {exc}") from exc
    return keys


def remote_backups(url: str) -> list[str]:
    """Names of the backups stored under the prefix."""
    target = parse_s3_url(url)
    client = _client(target)
    prefix = target.key() + "/" if target.prefix else ""
    names = set()
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=target.bucket, Prefix=prefix
    ):
        for item in page.get("Contents", []):
            rest = item["Key"][len(prefix) :]
            if "/" in rest:
                names.add(rest.split("/", 1)[0])
    return sorted(names)


def prune_remote(url: str, keep: set[str]) -> list[str]:
    """Delete remote backups whose name is not in `keep`; returns the deleted names."""
    target = parse_s3_url(url)
    client = _client(target)
    removed = []
    for name in remote_backups(url):
        if name in keep:
            continue
        listing = client.list_objects_v2(Bucket=target.bucket, Prefix=target.key(name) + "/")
        objects = [{"Key": item["Key"]} for item in listing.get("Contents", [])]
        if objects:
            client.delete_objects(Bucket=target.bucket, Delete={"Objects": objects})
        removed.append(name)
    return removed
