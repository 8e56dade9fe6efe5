"""Key rotation: everything re-encrypted under the new key id; everyone can still sign in."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from tekudasai.accounts import keys
from tekudasai.accounts.models import PiiKey, User
from tekudasai.accounts.oauth import Identity, link_or_create
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database
from tests.conftest import TEST_SECRET
from tests.factories import make_person

SRC = str(Path(__file__).resolve().parents[2] / "src")


async def add_oauth_user(database: Database, cipher: PiiCipher) -> None:
    async with database.sessionmaker() as db, db.begin():
        await link_or_create(
            db,
            cipher,
            provider="oidc",
            identity=Identity("sub-9", "sso@example.test", True, "Sso User", None),
            token={"access_token": "at-secret", "refresh_token": "rt-secret", "id_token": "x.y.z"},
        )


async def test_rotation_reencrypts_everything_and_sign_in_still_works(
    client: httpx.AsyncClient,
    database: Database,
    cipher: PiiCipher,
    app,  # type: ignore[no-untyped-def]
) -> None:
    people = [await make_person(database, cipher) for _ in range(5)]
    await add_oauth_user(database, cipher)
    assert await keys.count_stale(database, 2) == 7  # 6 users + 1 account with tokens

    result = await keys.rotate(database, PiiCipher(cipher.master), batch_size=2, settle_seconds=0)
    assert result.old_key_ids == [1] and result.new_key_id == 2
    assert result.users == 6 and result.accounts == 1
    assert await keys.count_stale(database, 2) == 0
    async with database.sessionmaker() as db:
        assert set((await db.scalars(select(User.pii_key_id))).all()) == {2}
        assert set((await db.scalars(select(PiiKey.id))).all()) == {1, 2}

    for person in people:
        response = await client.post(
            "/api/auth/signin", json={"email": person.email, "password": person.password}
        )
        assert response.status_code == 200, response.text
        assert response.json()["user"]["name"] == person.name


async def test_running_workers_pick_up_the_new_key_and_lagging_writes_are_caught(
    client: httpx.AsyncClient,
    database: Database,
    cipher: PiiCipher,
    app,  # type: ignore[no-untyped-def]
) -> None:
    first = await client.post(
        "/api/auth/signup",
        json={"name": "Before", "email": "before@x.test", "password": "12345678"},
    )
    assert first.status_code == 200
    worker_cipher: PiiCipher = app.state.cipher
    assert worker_cipher.current_key_id == 1

    rotation = asyncio.create_task(
        keys.rotate(database, PiiCipher(cipher.master), settle_seconds=1.5)
    )
    await asyncio.sleep(0.3)
    # This worker still has key id 1 cached: it writes under the old key, and that is fine.
    lagging = await client.post(
        "/api/auth/signup",
        json={"name": "During", "email": "during@x.test", "password": "12345678"},
    )
    assert lagging.status_code == 200
    result = await rotation
    assert await keys.count_stale(database, result.new_key_id) == 0

    worker_cipher.key_checked_at = time.monotonic() - keys.KEY_REFRESH_SECONDS - 1
    after = await client.post(
        "/api/auth/signup", json={"name": "After", "email": "after@x.test", "password": "12345678"}
    )
    assert after.status_code == 200
    assert worker_cipher.current_key_id == 2
    async with database.sessionmaker() as db:
        assert set((await db.scalars(select(User.pii_key_id))).all()) == {2}


async def test_keys_rotate_command(
    db_url: str, database: Database, cipher: PiiCipher, tmp_path: Path, settings: Settings
) -> None:
    person = await make_person(database, cipher)
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "BETTER_AUTH_SECRET": TEST_SECRET,
        "TK_DATA_DIR": str(tmp_path / "cli"),
        "PYTHONPATH": SRC,
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tekudasai", "keys", "rotate", "--settle-seconds", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "key id 2 is current" in done.stdout and "0 rows left" in done.stdout
    async with database.sessionmaker() as db:
        user = await db.get(User, person.user.id)
        assert user is not None and user.pii_key_id == 2
        assert cipher.decrypt(user.email_ciphertext, context="user.email") == person.email

    bad = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tekudasai", "keys", "rotate", "--batch-size", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "batch-size" in (bad.stderr + bad.stdout)
