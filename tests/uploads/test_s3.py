"""Uploads in an S3-compatible store (moto's server in its own process): the API unchanged,
streamed both ways, multipart for large files, and a store that goes away mid-upload."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from tekudasai.config import ConfigError, Settings
from tekudasai.db.session import Database
from tekudasai.uploads.dependencies import storage_for
from tekudasai.uploads.models import Upload
from tekudasai.uploads.s3 import S3Storage
from tests.backup.conftest import SRC, cli_env, tekudasai
from tests.conftest import make_settings
from tests.factories import Person
from tests.objectstore import (
    CREDENTIALS,
    MotoServer,
    Relay,
    moto_server,
    objects,
    s3_bucket,
    s3_relay,
    unfinished_uploads,
)
from tests.uploads.conftest import PNG, TEXT, upload, uploaded
from tests.uploads.test_api import _ticket_with
from tests.uploads.test_clean import run_cli

__all__ = ["moto_server", "s3_bucket", "s3_relay"]  # fixtures

MiB = 1024 * 1024
PREFIX = "desk/files"
BOUNDARY = "tk-s3-boundary"


@pytest.fixture
def settings(db_url: str, tmp_path: Path, s3_bucket: str, s3_relay: Relay) -> Settings:
    """Every app of this module stores its uploads in the bucket, through the relay."""
    url = f"s3://{s3_bucket}/{PREFIX}?endpoint={s3_relay.endpoint}&region=us-east-1"
    return make_settings(db_url, tmp_path / "data", TK_UPLOADS_URL=url)


async def upload_rows(database: Database) -> int:
    async with database.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(Upload)) or 0)


async def storage_key(database: Database, upload_id: str) -> str:
    async with database.sessionmaker() as db:
        row = await db.get(Upload, upload_id)
    assert row is not None
    return row.storage_key


def local_files(settings: Settings) -> list[Path]:
    root = settings.data_dir
    return [p for p in root.rglob("*") if p.is_file() and "uploads" in p.parts]


def multipart_head(filename: str = "big.txt") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()


TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def line_block(n: int) -> bytes:
    """64 KiB of text that differs per block (so a lost or repeated block changes the hash)."""
    line = f"block {n:06d} ".encode()
    return (line * (65536 // len(line) + 1))[:65535] + b"\n"


async def test_upload_and_download_through_the_store(
    client: httpx.AsyncClient,
    uploader: Person,
    stranger: Person,
    admin: Person,
    database: Database,
    settings: Settings,
    moto_server: MotoServer,
    s3_bucket: str,
) -> None:
    data = await uploaded(client, uploader, TEXT, "Grüße notes.txt")
    key = await storage_key(database, data["filename"])
    assert objects(moto_server, s3_bucket) == {f"{PREFIX}/{key[:2]}/{key}": len(TEXT)}
    assert local_files(settings) == []  # nothing on the node's disk

    response = await client.get(data["url"], headers=uploader.auth)
    assert response.status_code == 200 and response.content == TEXT
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == str(len(TEXT))
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert response.headers["cache-control"] == "private, no-store"
    assert "filename*=UTF-8''Gr%C3%BC%C3%9Fe%20notes.txt" in response.headers["content-disposition"]
    # Authorisation is the database's, whatever holds the bytes.
    assert (await client.get(data["url"], headers=stranger.auth)).status_code == 404
    assert (await client.get(data["url"])).status_code == 401
    await _ticket_with(database, admin, stranger, data["filename"])
    allowed = await client.get(f"/api/v1/uploads/{data['filename']}", headers=stranger.auth)
    assert allowed.status_code == 200 and allowed.content == TEXT

    # An object gone from the store (deleted by hand) is a 404, not a 500.
    moto_server.client().delete_object(Bucket=s3_bucket, Key=f"{PREFIX}/{key[:2]}/{key}")
    gone = await client.get(data["url"], headers=uploader.auth)
    assert gone.status_code == 404 and gone.json()["code"] == "NOT_FOUND"


async def asgi_download(app: Any, path: str, headers: dict[str, str]) -> tuple[int, int, str]:
    """GET through the ASGI interface itself, hashing the body as it is sent: httpx's ASGI
    transport would collect the whole body, which is not what a real client does."""
    digest, size, status = hashlib.sha256(), 0, 0
    requested = False
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if requested:  # the response listens for a disconnect that never comes
            await never.wait()
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal size, status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            digest.update(message.get("body", b""))
            size += len(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return status, size, digest.hexdigest()


async def test_ten_mebibytes_stream_through_in_parts_never_whole_in_memory(
    app: Any,
    client: httpx.AsyncClient,
    uploader: Person,
    database: Database,
    moto_server: MotoServer,
    s3_bucket: str,
) -> None:
    blocks = 160  # 160 x 64 KiB = 10 MiB, the default limit
    expected = hashlib.sha256(b"".join(line_block(n) for n in range(blocks))).hexdigest()

    async def body() -> AsyncIterator[bytes]:
        yield multipart_head()
        for n in range(blocks):
            yield line_block(n)
        yield TAIL

    await client.get("/api/health/live")  # warm-up: imports and first allocations
    tracemalloc.start()
    try:
        response = await client.post(
            "/api/uploads", content=body(), headers={**uploader.auth, **MULTIPART}
        )
        _, upload_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["size"] == 10 * MiB
    # Well below the file: the part spool keeps 1 MiB in memory, the rest on disk.
    assert upload_peak < 4 * MiB, upload_peak

    key = await storage_key(database, data["filename"])
    head = moto_server.client().head_object(Bucket=s3_bucket, Key=f"{PREFIX}/{key[:2]}/{key}")
    assert head["ContentLength"] == 10 * MiB
    assert head["ETag"].strip('"').endswith("-2")  # a multipart upload of two parts
    async with database.sessionmaker() as db:
        assert (await db.get(Upload, data["filename"])).sha256 == expected  # type: ignore[union-attr]

    tracemalloc.start()
    try:
        status, size, digest = await asgi_download(
            app, data["url"], {**uploader.auth, "host": "127.0.0.1:8000"}
        )
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (status, size, digest) == (200, 10 * MiB, expected)
    assert download_peak < 4 * MiB, download_peak


async def test_refused_uploads_leave_no_object_and_no_unfinished_upload(
    client: httpx.AsyncClient,
    uploader: Person,
    database: Database,
    moto_server: MotoServer,
    s3_bucket: str,
) -> None:
    too_large = await upload(client, uploader, b"a" * (11 * MiB), "big.txt")  # past one part
    assert too_large.status_code == 413
    wrong_type = await upload(client, uploader, b"MZ\x90\x00" + b"\x00" * 64, "cat.png")
    assert wrong_type.status_code == 415
    assert await upload_rows(database) == 0
    assert objects(moto_server, s3_bucket) == {}
    assert unfinished_uploads(moto_server, s3_bucket) == []


async def test_store_unreachable_answers_503_and_stores_nothing(
    client: httpx.AsyncClient,
    uploader: Person,
    admin: Person,
    database: Database,
    settings: Settings,
    moto_server: MotoServer,
    s3_bucket: str,
    s3_relay: Relay,
    db_url: str,
) -> None:
    stored = await uploaded(client, uploader, PNG, "before.png")
    await _ticket_with(database, admin, uploader, stored["filename"])
    s3_relay.cut()
    refused = await upload(client, uploader, TEXT, "while-down.txt")
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "STORAGE_UNAVAILABLE"
    assert refused.headers["retry-after"] == "5"
    download = await client.get(stored["url"], headers=uploader.auth)
    assert download.status_code == 503 and download.json()["code"] == "STORAGE_UNAVAILABLE"
    assert (await client.get("/api/tickets/my", headers=uploader.auth)).status_code == 200

    # Cut in the middle of a large upload: the first part is already in the store.
    s3_relay.mend()

    async def body() -> AsyncIterator[bytes]:
        yield multipart_head()
        for n in range(144):  # 9 MiB: the first 8 MiB part is sent meanwhile
            yield line_block(n)
        s3_relay.cut()
        for n in range(144, 160):
            yield line_block(n)
        yield TAIL

    midway = await client.post(
        "/api/uploads", content=body(), headers={**uploader.auth, **MULTIPART}
    )
    assert midway.status_code == 503, midway.text
    assert midway.json()["code"] == "STORAGE_UNAVAILABLE"
    assert await upload_rows(database) == 1  # only the upload from before
    s3_relay.mend()
    # The abort could not reach the store either: an unfinished upload stays behind …
    assert len(unfinished_uploads(moto_server, s3_bucket)) == 1
    assert len(objects(moto_server, s3_bucket)) == 1

    # … and `uploads clean` removes it, with objects no row knows, once past the grace period.
    client_s3 = moto_server.client()
    client_s3.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/ab/ab{'0' * 30}", Body=b"stray")
    env = {"TK_UPLOADS_URL": settings.uploads_url or "", **CREDENTIALS}
    code, out, err = await run_cli(
        settings, db_url, "uploads", "clean", "--older-than", "1d", env=env
    )
    assert code == 0, err
    assert "0 stray file(s)" in out  # the stray object is younger than a day: kept
    # moto dates every unfinished upload 2010-11-10, so this one already counts as old.
    assert unfinished_uploads(moto_server, s3_bucket) == []
    await asyncio.sleep(1.1)
    code, out, err = await run_cli(
        settings, db_url, "uploads", "clean", "--older-than", "1s", env=env
    )
    assert code == 0, err
    assert "1 stray file(s)" in out, out
    key = await storage_key(database, stored["filename"])
    assert set(objects(moto_server, s3_bucket)) == {f"{PREFIX}/{key[:2]}/{key}"}
    assert (await client.get(stored["url"], headers=uploader.auth)).content == PNG


async def test_clean_removes_old_unreferenced_uploads_from_the_store(
    client: httpx.AsyncClient,
    uploader: Person,
    admin: Person,
    database: Database,
    settings: Settings,
    db_url: str,
    moto_server: MotoServer,
    s3_bucket: str,
) -> None:
    orphan = await uploaded(client, uploader, TEXT, "orphan.txt")
    used = await uploaded(client, uploader, PNG, "used.png")
    await _ticket_with(database, admin, uploader, used["filename"])
    async with database.sessionmaker() as db, db.begin():
        await db.execute(
            text("UPDATE uploads SET created_at = now() - interval '2 days'"),
        )
    used_key = await storage_key(database, used["filename"])
    env = {"TK_UPLOADS_URL": settings.uploads_url or "", **CREDENTIALS}
    await asyncio.sleep(1.1)  # the objects, too, are older than the grace period now
    code, out, err = await run_cli(
        settings, db_url, "uploads", "clean", "--older-than", "1s", env=env
    )
    assert code == 0, err
    # The orphan's object is removed with it and not counted again as a stray.
    assert "Removed 1 unreferenced upload(s)" in out and "and 0 stray file(s)" in out, out
    assert set(objects(moto_server, s3_bucket)) == {f"{PREFIX}/{used_key[:2]}/{used_key}"}
    assert (await client.get(orphan["url"], headers=uploader.auth)).status_code == 404


def test_uploads_url_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def storage(url: str) -> object:
        return storage_for(make_settings(None, tmp_path, TK_UPLOADS_URL=url))

    local = storage(f"file://{tmp_path}/elsewhere")
    assert getattr(local, "root", None) == tmp_path / "elsewhere"
    remote = storage("s3://tk-bucket/a/b?endpoint=http://127.0.0.1:9&region=eu-west-1")
    assert isinstance(remote, S3Storage)
    assert remote.description == "s3://tk-bucket/a/b"
    assert remote.object_key("ab" + "0" * 30) == f"a/b/ab/ab{'0' * 30}"
    for bad, message in [
        ("ftp://host/x", "must start with file:// or s3://"),
        ("file://relative/path", "absolute path"),
        ("s3://UPPER/x", "s3://bucket/prefix"),
        ("s3://tk-bucket/x?endpoint=ftp://x", "endpoint must be an http"),
        ("s3://tk-bucket/x?colour=red", "unknown parameter"),
    ]:
        with pytest.raises(ConfigError, match=message):
            storage(bad)
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if the s3 extra were not installed
    with pytest.raises(ConfigError, match=r"pip install 'tekudasai\[s3\]'"):
        storage("s3://tk-bucket/x")


def test_serve_refuses_to_start_with_an_unusable_uploads_url(tmp_path: Path) -> None:
    hidden = tmp_path / "no-boto3"
    (hidden / "boto3").mkdir(parents=True)
    (hidden / "boto3" / "__init__.py").write_text("raise ImportError('not installed')\n")
    for uploads_url, pythonpath, message in [
        ("ftp://files.example.test/x", str(SRC), "must start with file:// or s3://"),
        ("s3://tk-bucket/x", f"{hidden}:{SRC}", "pip install 'tekudasai[s3]'"),
    ]:
        env = cli_env(None, tmp_path / "data", TK_UPLOADS_URL=uploads_url, PYTHONPATH=pythonpath)
        started = time.monotonic()
        done = tekudasai("serve", "--port", "1", env=env, timeout=60)
        assert done.returncode != 0
        assert message in done.stdout + done.stderr, done.stdout + done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        assert time.monotonic() - started < 30  # before any database is started
