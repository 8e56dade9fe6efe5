"""Backup test fixtures: a populated database with uploaded files; the CLI in a subprocess."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from tekudasai import seed
from tekudasai.backup.tools import table_stats, upload_relpath, user_tables
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.conftest import TEST_SECRET
from tests.factories import make_person

SRC = Path(__file__).resolve().parents[3] / "src"


@dataclass
class Populated:
    url: str
    settings: Settings
    files: dict[str, bytes]


async def snapshot(url: str) -> dict[str, dict[str, object]]:
    """Row counts and content checksums of every table."""
    conn = await asyncpg.connect(url)
    try:
        return await table_stats(conn, await user_tables(conn))
    finally:
        await conn.close()


def files_in(root: Path) -> dict[str, bytes]:
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
async def populated(
    db_url: str, settings: Settings, database: Database, cipher: PiiCipher
) -> Populated:
    await make_person(database, cipher, role="admin")
    await seed.seed_bulk(database, cipher, users=30, tickets=120, forms=2)
    files: dict[str, bytes] = {}
    conn = await asyncpg.connect(db_url)
    try:
        ticket_ids = [r["id"] for r in await conn.fetch("SELECT id FROM tickets LIMIT 3")]
        for index, ticket_id in enumerate(ticket_ids):
            body = f"file {index} ".encode() * (200 + index) + os.urandom(64)
            key = secrets.token_hex(16)  # like the upload storage's keys
            files[upload_relpath(key)] = body
            upload_id = f"up{index}"
            await conn.execute(
                "INSERT INTO uploads (id, original_name, mime_type, size, sha256, storage_key)"
                " VALUES ($1, $2, 'text/plain', $3, $4, $5)",
                upload_id,
                f"note-{index}.txt",
                len(body),
                hashlib.sha256(body).hexdigest(),
                key,
            )
            await conn.execute(
                "INSERT INTO ticket_uploads (ticket_id, upload_id) VALUES ($1, $2)",
                ticket_id,
                upload_id,
            )
    finally:
        await conn.close()
    for relpath, body in files.items():
        path = settings.uploads_dir / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return Populated(url=db_url, settings=settings, files=files)


def cli_env(database_url: str | None, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TK_", "DATABASE_URL", "BETTER_AUTH", "AWS_"))
    }
    env.update(
        PYTHONPATH=str(SRC),
        TK_DATA_DIR=str(data_dir),
        BETTER_AUTH_SECRET=TEST_SECRET,
        TK_ENV="test",
        COLUMNS="200",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


def tekudasai(
    *args: str, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a subprocess without a terminal (stdin is not a tty)."""
    return subprocess.run(
        [sys.executable, "-m", "tekudasai", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(SRC.parent),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """`tekudasai serve` (one worker, a free port) in a subprocess: the process and its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tekudasai", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=str(SRC.parent),
    )
    return process, f"http://127.0.0.1:{port}"


async def wait_ready(base: str, deadline_s: float) -> float:
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        while time.monotonic() - started < deadline_s:
            try:
                if (await http.get("/api/health/ready")).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"not ready within {deadline_s}s")
