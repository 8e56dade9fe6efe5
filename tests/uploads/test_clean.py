"""`tekudasai uploads clean` run as a real command against the test database."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import select, text

from tekudasai.config import Settings
from tekudasai.db.session import Database
from tekudasai.uploads.models import Upload
from tests.conftest import TEST_SECRET
from tests.factories import Person
from tests.uploads.conftest import PNG, TEXT, uploaded
from tests.uploads.test_api import _ticket_with

SRC = Path(__file__).resolve().parents[2] / "src"


async def run_cli(
    settings: Settings, db_url: str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    command_env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "TK_DATA_DIR": str(settings.data_dir),
        "BETTER_AUTH_SECRET": TEST_SECRET,
        "TK_ENV": "test",
        "PYTHONPATH": str(SRC),
        "COLUMNS": "200",
        **(env or {}),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tekudasai",
        *args,
        env=command_env,
        cwd=settings.data_dir.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()


def make_stray(root: Path, name: str, *, age_s: float) -> Path:
    path = root / name[:2] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"left over")
    old = time.time() - age_s
    os.utime(path, (old, old))
    return path


async def test_clean_removes_only_old_unreferenced_uploads(
    client: httpx.AsyncClient,
    uploader: Person,
    admin: Person,
    database: Database,
    settings: Settings,
    db_url: str,
) -> None:
    orphan = await uploaded(client, uploader, TEXT, "orphan.txt")
    used = await uploaded(client, uploader, PNG, "used.png")
    fresh = await uploaded(client, uploader, TEXT, "fresh.txt")
    await _ticket_with(database, admin, uploader, used["filename"])
    async with database.sessionmaker() as db, db.begin():
        await db.execute(
            text("UPDATE uploads SET created_at = now() - interval '2 days' WHERE id = ANY(:ids)"),
            {"ids": [orphan["filename"], used["filename"]]},
        )
        keys = {row[0]: row[1] for row in await db.execute(select(Upload.id, Upload.storage_key))}
    stray_old = make_stray(settings.uploads_dir, "ab" + "0" * 30, age_s=3 * 86400)
    stray_new = make_stray(settings.uploads_dir, "cd" + "0" * 30, age_s=60)

    code, out, err = await run_cli(settings, db_url, "uploads", "clean", "--older-than", "1d")
    assert code == 0, err
    assert "Removed 1 unreferenced upload(s)" in out and "1 stray file(s)" in out

    async with database.sessionmaker() as db:
        left = set(await db.scalars(select(Upload.id)))
    assert left == {used["filename"], fresh["filename"]}
    root = settings.uploads_dir
    assert not (root / keys[orphan["filename"]][:2] / keys[orphan["filename"]]).exists()
    for kept in (used, fresh):
        assert (root / keys[kept["filename"]][:2] / keys[kept["filename"]]).exists()
    assert not stray_old.exists() and stray_new.exists()
    assert (await client.get(orphan["url"], headers=uploader.auth)).status_code == 404
    assert (await client.get(used["url"], headers=uploader.auth)).status_code == 200


async def test_clean_rejects_a_bad_duration(settings: Settings, db_url: str) -> None:
    code, out, err = await run_cli(settings, db_url, "uploads", "clean", "--older-than", "soon")
    assert code != 0
    assert "error:" in out + err and "duration" in out + err
    assert "Traceback" not in out + err
