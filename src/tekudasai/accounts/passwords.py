"""Argon2id password hashing (argon2-cffi), run off the event loop on a bounded thread pool."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP: Argon2id, m=19 MiB, t=2, p=1 is the recommended minimum.
TIME_COST = 2
MEMORY_COST_KIB = 19 * 1024
PARALLELISM = 1


@lru_cache
def hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM)


@lru_cache
def _executor() -> ThreadPoolExecutor:
    # One hash per core at a time: a burst of sign-ins queues here instead of taking every
    # core (and 19 MiB each) from the requests the event loop is serving.
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="argon2")


@lru_cache
def _dummy_hash() -> str:
    return hasher().hash("not-a-real-password-but-costs-the-same")


def hash_password_sync(password: str) -> str:
    return hasher().hash(password)


def verify_password_sync(stored_hash: str | None, password: str) -> bool:
    """Constant-cost check: an unknown account still pays for one verification."""
    try:
        return hasher().verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return hasher().check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(
        _executor(), hash_password_sync, password
    )


async def verify_password(stored_hash: str | None, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(
        _executor(), verify_password_sync, stored_hash, password
    )
