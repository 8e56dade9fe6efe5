"""`tekudasai users …` against a real database, as an operator runs them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tekudasai.db.session import Database
from tests.conftest import TEST_SECRET

SRC = str(Path(__file__).resolve().parents[2] / "src")


async def tekudasai(db_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "BETTER_AUTH_SECRET": TEST_SECRET,
        "TK_DATA_DIR": str(data_dir),
        "PYTHONPATH": SRC,
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tekudasai", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


async def test_users_create_and_set_role(
    db_url: str, database: Database, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    created = await tekudasai(
        db_url, tmp_path, "users", "create", "--email", "Boss@Example.test", "--name", "Boss",
        "--role", "admin", "--password", "boss-password-1",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "created admin" in created.stdout
    signed_in = await client.post(
        "/api/auth/signin", json={"email": "boss@example.test", "password": "boss-password-1"}
    )
    assert signed_in.status_code == 200
    assert signed_in.json()["user"]["role"] == "admin"
    assert signed_in.json()["user"]["emailVerified"] is True

    last = await tekudasai(db_url, tmp_path, "users", "set-role", "boss@example.test", "user")
    assert last.returncode == 1
    assert "no administrator" in last.stderr and "Traceback" not in last.stderr

    duplicate = await tekudasai(
        db_url, tmp_path, "users", "create", "--email", "boss@example.test", "--name", "B",
        "--password", "boss-password-1",
    )  # fmt: skip
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr

    for bad_args, message in (
        (["--email", "nope", "--name", "N", "--password", "long-enough"], "e-mail"),
        (["--email", "a@b.test", "--name", "N", "--password", "short"], "Password"),
        (["--email", "a@b.test", "--name", "N"], "no --password"),
    ):
        bad = await tekudasai(db_url, tmp_path, "users", "create", *bad_args)
        assert bad.returncode != 0 and message in bad.stderr, bad.stderr
