"""Argon2id password hashing (argon2-cffi), run off the event loop on a bounded thread pool."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tekudasai.core.runtime import release_free_memory, reuse_large_blocks

# OWASP: Argon2id, m=19 MiB, t=2, p=1 is the recommended minimum.
TIME_COST = 2
MEMORY_COST_KIB = 19 * 1024
PARALLELISM = 1
# Each hash takes its 19 MiB from malloc, and glibc keeps what a thread freed for that thread's
# next hash: after the first sign-ins every hashing thread held 19 MiB for good (38 MiB per
# worker). Returning it after every hash costs each hash its page faults again (about 60 % more
# CPU per verification, measured), so it is returned once hashing has paused this long.
RELEASE_AFTER_IDLE_S = 2.0

_T = TypeVar("_T")


@lru_cache
def hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM)


@lru_cache
def _executor() -> ThreadPoolExecutor:
    # One hash per core at a time: a burst of sign-ins queues here instead of taking every
    # core (and 19 MiB each) from the requests the event loop is serving.
    threads = os.cpu_count() or 1
    # Back-to-back hashes reuse their memory (no page faults), until hashing pauses.
    reuse_large_blocks(MEMORY_COST_KIB * 1024, threads)
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")


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


class _Hashing:
    """Hashes running in this process, and the memory release due when they have paused."""

    running = 0
    release: asyncio.TimerHandle | None = None


async def _off_the_loop(function: Callable[..., _T], *args: object) -> _T:
    loop = asyncio.get_running_loop()
    if _Hashing.release is not None:
        _Hashing.release.cancel()
        _Hashing.release = None
    _Hashing.running += 1
    try:
        return await loop.run_in_executor(_executor(), function, *args)
    finally:
        _Hashing.running -= 1
        if _Hashing.running == 0:
            _Hashing.release = loop.call_later(RELEASE_AFTER_IDLE_S, _release_memory, loop)


def _release_memory(loop: asyncio.AbstractEventLoop) -> None:
    _Hashing.release = None
    if _Hashing.running == 0:
        # On the hashing pool: trimming walks every heap, the event loop has requests to serve.
        loop.run_in_executor(_executor(), release_free_memory)


async def hash_password(password: str) -> str:
    return await _off_the_loop(hash_password_sync, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    return await _off_the_loop(verify_password_sync, stored_hash, password)
