"""Backups with the real upload storage and sign-in sessions (these domains live on other
branches: the module is skipped until they are merged)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tekudasai.backup.archive import create_backup
from tekudasai.backup.verify import verify_backup, verify_live
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.backup.conftest import cli_env, tekudasai
from tests.factories import make_person

pytest.importorskip("tekudasai.uploads.storage")


async def test_uploaded_file_is_backed_up_and_verified(
    client: httpx.AsyncClient,
    database: Database,
    cipher: PiiCipher,
    settings: Settings,
    db_url: str,
    tmp_path: Path,
) -> None:
    person = await make_person(database, cipher)
    response = await client.post(
        "/api/uploads",
        files={"file": ("a.txt", b"hello there, plain text\n", "text/plain")},
        headers=person.auth,
    )
    assert response.status_code == 200, response.text
    live = await verify_live(url=db_url, uploads_dir=settings.uploads_dir)
    assert live.ok, live.problems
    assert any("1 recorded upload(s)" in line for line in live.checks)
    backup = await create_backup(url=db_url, uploads_dir=settings.uploads_dir, out=tmp_path / "b")
    assert backup.manifest["uploads"]["files"] == 1
    report = await verify_backup(path=backup.path, server_url=db_url)
    assert report.ok, report.problems
    assert any("1 uploaded file(s) present" in line for line in report.checks)


async def test_a_session_revoked_after_the_backup_is_valid_again_after_restore(
    client: httpx.AsyncClient,
    database: Database,
    cipher: PiiCipher,
    settings: Settings,
    db_url: str,
    tmp_path: Path,
) -> None:
    person = await make_person(database, cipher)
    env = cli_env(db_url, settings.data_dir)
    done = await asyncio.to_thread(tekudasai, "db", "backup", "--out", str(tmp_path / "b"), env=env)
    assert done.returncode == 0, done.stderr
    assert (await client.post("/api/auth/signout", headers=person.auth)).status_code == 200
    assert (await client.get("/api/auth/session", headers=person.auth)).json() is None

    done = await asyncio.to_thread(
        tekudasai, "db", "restore", str(tmp_path / "b"), "--yes", env=env
    )
    assert done.returncode == 0, done.stderr
    for _ in range(50):  # the app's pool notices the restored database on its own
        response = await client.get("/api/auth/session", headers=person.auth)
        if response.status_code == 200:
            break
        await asyncio.sleep(0.2)
    assert response.json()["user"]["email"] == person.email
