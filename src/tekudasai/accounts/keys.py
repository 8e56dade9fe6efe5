"""Key ids for personal data and their rotation.

The highest id in `pii_keys` is current. Workers read it at most every KEY_REFRESH_SECONDS
before encrypting, so a rotation reaches every process without a restart; every older id
still decrypts (keys derive from the master secret and the id), so nothing stops meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.models import Account, PiiKey, TwoFactor, User
from tekudasai.core.crypto import PiiCipher
from tekudasai.db.session import Database

KEY_REFRESH_SECONDS = 30.0
TOKEN_COLUMNS = ("access_token", "refresh_token", "id_token")


async def refresh_current_key(
    db: AsyncSession, cipher: PiiCipher, *, max_age: float = KEY_REFRESH_SECONDS
) -> int:
    """The current key id, re-read from the database when the cached one is older than max_age."""
    now = time.monotonic()
    if cipher.key_checked_at and now - cipher.key_checked_at < max_age:
        return cipher.current_key_id
    current = await db.scalar(select(func.max(PiiKey.id)))
    cipher.current_key_id = current or 1
    cipher.key_checked_at = now
    return cipher.current_key_id


@dataclass
class RotationResult:
    old_key_ids: list[int]
    new_key_id: int
    users: int
    accounts: int
    two_factors: int = 0


def _token_key_id_sql(column: str) -> str:
    return f"(get_byte({column}_ciphertext, 0) * 256 + get_byte({column}_ciphertext, 1))"


async def _in_batches(
    database: Database,
    progress: Callable[[int], None],
    fetch: Callable[[AsyncSession, str], Awaitable[Sequence[Any]]],
    rewrite: Callable[[AsyncSession, Any], Awaitable[None]],
) -> int:
    """Rewrite rows by id order, one short transaction per batch `fetch` returns after an id."""
    done = 0
    last_id = ""
    while True:
        async with database.sessionmaker() as db, db.begin():
            rows = await fetch(db, last_id)
            if not rows:
                return done
            for row in rows:
                await rewrite(db, row)
            last_id = rows[-1].id
        done += len(rows)
        progress(len(rows))


async def _reencrypt_users(
    database: Database,
    cipher: PiiCipher,
    key_id: int,
    batch_size: int,
    progress: Callable[[int], None],
) -> int:
    async def fetch(db: AsyncSession, last_id: str) -> Sequence[Any]:
        return (
            await db.execute(
                select(User.id, User.name_ciphertext, User.email_ciphertext)
                .where(User.pii_key_id != key_id, User.id > last_id)
                .order_by(User.id)
                .limit(batch_size)
                .with_for_update()
            )
        ).all()

    async def rewrite(db: AsyncSession, row: Any) -> None:
        name = cipher.decrypt(row.name_ciphertext, context="user.name")
        email = cipher.decrypt(row.email_ciphertext, context="user.email")
        await db.execute(
            update(User)
            .where(User.id == row.id)
            .values(
                name_ciphertext=cipher.encrypt(name, context="user.name", key_id=key_id),
                email_ciphertext=cipher.encrypt(email, context="user.email", key_id=key_id),
                pii_key_id=key_id,
                updated_at=User.updated_at,  # re-encryption is not a change to the person
            )
            .execution_options(synchronize_session=False)
        )

    return await _in_batches(database, progress, fetch, rewrite)


async def _reencrypt_accounts(
    database: Database,
    cipher: PiiCipher,
    key_id: int,
    batch_size: int,
    progress: Callable[[int], None],
) -> int:
    stale = " OR ".join(
        f"({c}_ciphertext IS NOT NULL AND {_token_key_id_sql(c)} <> :key_id)" for c in TOKEN_COLUMNS
    )

    async def fetch(db: AsyncSession, last_id: str) -> Sequence[Any]:
        return (
            await db.execute(
                text(
                    "SELECT id, access_token_ciphertext, refresh_token_ciphertext, "
                    "id_token_ciphertext FROM accounts "
                    f"WHERE id > :last_id AND ({stale}) ORDER BY id LIMIT :n FOR UPDATE"
                ),
                {"last_id": last_id, "key_id": key_id, "n": batch_size},
            )
        ).all()

    async def rewrite(db: AsyncSession, row: Any) -> None:
        values: dict[str, bytes | None] = {}
        for column in TOKEN_COLUMNS:
            blob = getattr(row, f"{column}_ciphertext")
            context = f"account.{column}"
            if blob is not None:
                plain = cipher.decrypt(blob, context=context)
                values[f"{column}_ciphertext"] = cipher.encrypt(
                    plain, context=context, key_id=key_id
                )
        await db.execute(
            update(Account)
            .where(Account.id == row.id)
            .values(**values, updated_at=Account.updated_at)
            .execution_options(synchronize_session=False)
        )

    return await _in_batches(database, progress, fetch, rewrite)


async def _reencrypt_two_factors(
    database: Database,
    cipher: PiiCipher,
    key_id: int,
    batch_size: int,
    progress: Callable[[int], None],
) -> int:
    """TOTP secrets are personal data too (two_factor.SECRET_CONTEXT)."""

    async def fetch(db: AsyncSession, last_id: str) -> Sequence[Any]:
        return (
            await db.execute(
                text(
                    "SELECT user_id AS id, secret_ciphertext FROM two_factors "
                    f"WHERE user_id > :last_id AND {_token_key_id_sql('secret')} <> :key_id "
                    "ORDER BY user_id LIMIT :n FOR UPDATE"
                ),
                {"last_id": last_id, "key_id": key_id, "n": batch_size},
            )
        ).all()

    async def rewrite(db: AsyncSession, row: Any) -> None:
        plain = cipher.decrypt(row.secret_ciphertext, context="two_factor.secret")
        await db.execute(
            update(TwoFactor)
            .where(TwoFactor.user_id == row.id)
            .values(
                secret_ciphertext=cipher.encrypt(plain, context="two_factor.secret", key_id=key_id),
                updated_at=TwoFactor.updated_at,
            )
            .execution_options(synchronize_session=False)
        )

    return await _in_batches(database, progress, fetch, rewrite)


async def rotate(
    database: Database,
    cipher: PiiCipher,
    *,
    batch_size: int = 500,
    settle_seconds: float = KEY_REFRESH_SECONDS + 5,
    progress: Callable[[int], None] = lambda _n: None,
) -> RotationResult:
    """Add a key id, then re-encrypt every user and OAuth token under it in small transactions."""
    async with database.sessionmaker() as db, db.begin():
        await db.execute(text("LOCK TABLE pii_keys IN EXCLUSIVE MODE"))
        old = list((await db.scalars(select(PiiKey.id).order_by(PiiKey.id))).all())
        new_key_id = (max(old) if old else 0) + 1
        db.add(PiiKey(id=new_key_id))
    cipher.current_key_id = new_key_id
    cipher.key_checked_at = time.monotonic()
    started = time.monotonic()
    users = await _reencrypt_users(database, cipher, new_key_id, batch_size, progress)
    accounts = await _reencrypt_accounts(database, cipher, new_key_id, batch_size, progress)
    secrets = await _reencrypt_two_factors(database, cipher, new_key_id, batch_size, progress)
    # Workers that had not yet re-read the key id may still have written rows under an old
    # one; once every cache has expired, one more pass catches those.
    wait = settle_seconds - (time.monotonic() - started)
    if wait > 0:
        await asyncio.sleep(wait)
    users += await _reencrypt_users(database, cipher, new_key_id, batch_size, progress)
    accounts += await _reencrypt_accounts(database, cipher, new_key_id, batch_size, progress)
    secrets += await _reencrypt_two_factors(database, cipher, new_key_id, batch_size, progress)
    return RotationResult(
        old_key_ids=old,
        new_key_id=new_key_id,
        users=users,
        accounts=accounts,
        two_factors=secrets,
    )


async def count_stale(database: Database, key_id: int) -> int:
    """Rows (users, OAuth accounts, TOTP secrets) still holding data under another key id."""
    stale = " OR ".join(
        f"({c}_ciphertext IS NOT NULL AND {_token_key_id_sql(c)} <> :key_id)" for c in TOKEN_COLUMNS
    )
    async with database.sessionmaker() as db:
        users = await db.scalar(select(func.count()).where(User.pii_key_id != key_id))
        accounts = await db.scalar(
            text(f"SELECT count(*) FROM accounts WHERE {stale}"), {"key_id": key_id}
        )
        secrets = await db.scalar(
            text(
                f"SELECT count(*) FROM two_factors WHERE {_token_key_id_sql('secret')} <> :key_id"
            ),
            {"key_id": key_id},
        )
    return int(users or 0) + int(accounts or 0) + int(secrets or 0)
