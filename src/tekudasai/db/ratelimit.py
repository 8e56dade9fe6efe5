"""Rate limits shared by every worker process: sliding-window counters in PostgreSQL.

Each hit upserts the counter of the current fixed window and reads the previous one in the
same statement; the estimate `previous * (1 - elapsed/window) + current` smooths the burst a
plain fixed window allows at its edges. Counters are written in their own short transaction,
so a request that fails afterwards (a wrong password) still counts.

Generic: counters by name and key. Who is counted (accounts, signed-in users) is decided in
the domains (accounts/limits.py).
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from fastapi import Request
from sqlalchemy import text

from tekudasai.config import ConfigError, Settings
from tekudasai.core.errors import RateLimited
from tekudasai.db.session import Database

DEFAULT_LIMITS = {
    "auth_account": "5/minute",
    "auth_ip": "30/minute",
    "tickets": "60/minute",
    "forms": "30/minute",
    "presence": "30/minute",  # POST /api/tickets/{id}/presence: one per 30 s per open page
}
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*$")
# One hit in this many also deletes expired counters (the table is UNLOGGED and small).
CLEANUP_ONE_IN = 200

_HIT_SQL = text(
    """
    WITH hit AS (
        INSERT INTO rate_limit_counters (key, window_start, hits, expires_at)
        VALUES (:key, :window_start, 1, :expires_at)
        ON CONFLICT (key, window_start)
        DO UPDATE SET hits = rate_limit_counters.hits + 1
        RETURNING hits
    )
    SELECT (SELECT hits FROM hit) AS current,
           coalesce((SELECT hits FROM rate_limit_counters
                     WHERE key = :key AND window_start = :previous_start), 0) AS previous
    """
)


_FORGIVE_SQL = text(
    "UPDATE rate_limit_counters SET hits = hits - 1"
    " WHERE key = :key AND window_start = :window_start AND hits > 0"
)


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}s"


def parse_limit(value: str) -> Limit | None:
    """'5/minute', '100/hour', '10/5minutes'; None for 'off'."""
    if value.strip().lower() == "off":
        return None
    match = _LIMIT.match(value.lower())
    if not match:
        raise ConfigError(
            f"TK_RATE_LIMITS: not a rate limit: {value!r} (use e.g. 5/minute, 100/hour or off)"
        )
    count, multiplier, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3)
    if count < 1 or multiplier < 1:
        raise ConfigError(f"TK_RATE_LIMITS: {value!r}: count and period must be positive")
    return Limit(count, multiplier * _UNITS[unit])


@lru_cache(maxsize=32)
def parse_limits(raw: str | None) -> dict[str, Limit | None]:
    """TK_RATE_LIMITS over the defaults: `off` alone disables all; `name=off` one of them."""
    merged: dict[str, str] = dict(DEFAULT_LIMITS)
    if raw and raw.strip():
        if raw.strip().lower() == "off":
            return dict.fromkeys(DEFAULT_LIMITS)
        for part in raw.split(","):
            if not part.strip():
                continue
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or name not in DEFAULT_LIMITS:
                known = ", ".join(DEFAULT_LIMITS)
                raise ConfigError(f"TK_RATE_LIMITS: cannot read {part.strip()!r} (names: {known})")
            merged[name] = value
    return {name: parse_limit(value) for name, value in merged.items()}


def limit_for(settings: Settings, name: str) -> Limit | None:
    return parse_limits(settings.rate_limits).get(name)


async def hit(database: Database, *, name: str, key: str, limit: Limit) -> float | None:
    """Count one hit; return the seconds to wait when over the limit, else None."""
    now = time.time()
    window_start = math.floor(now / limit.seconds) * limit.seconds
    params: dict[str, Any] = {
        "key": f"{name}:{key}",
        "window_start": datetime.fromtimestamp(window_start, UTC),
        "previous_start": datetime.fromtimestamp(window_start - limit.seconds, UTC),
        "expires_at": datetime.fromtimestamp(window_start + 2 * limit.seconds, UTC),
    }
    async with database.engine.begin() as conn:
        row = (await conn.execute(_HIT_SQL, params)).one()
        if random.randrange(CLEANUP_ONE_IN) == 0:  # noqa: S311 - not security relevant
            await conn.execute(text("DELETE FROM rate_limit_counters WHERE expires_at < now()"))
    elapsed = (now - window_start) / limit.seconds
    estimate = row.previous * (1 - elapsed) + row.current
    if estimate <= limit.count:
        return None
    if row.current > limit.count:
        return window_start + limit.seconds - now
    # Over only because of the previous window's weight: wait until enough of it has slid out.
    needed = (estimate - limit.count) / max(row.previous, 1)
    return max(needed * limit.seconds, 1.0)


async def enforce(request: Request, *, name: str, key: str) -> None:
    """Raise 429 RATE_LIMITED (with Retry-After) when `key` is over the named limit."""
    settings: Settings = request.app.state.settings
    limit = limit_for(settings, name)
    if limit is None:
        return
    wait = await hit(request.app.state.database, name=name, key=key, limit=limit)
    if wait is not None:
        raise RateLimited(headers={"Retry-After": str(max(1, math.ceil(wait)))})


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def forgive(request: Request, *, name: str, key: str, limit: Limit | None = None) -> None:
    """Take back one hit of the current window (a sign-in that turned out right); `limit`
    for a fixed limit that TK_RATE_LIMITS does not name."""
    limit = limit or limit_for(request.app.state.settings, name)
    if limit is None:
        return
    database: Database = request.app.state.database
    window_start = math.floor(time.time() / limit.seconds) * limit.seconds
    async with database.engine.begin() as conn:
        await conn.execute(
            _FORGIVE_SQL,
            {"key": f"{name}:{key}", "window_start": datetime.fromtimestamp(window_start, UTC)},
        )


def ip_rate_limit(name: str, bucket: str = "ip") -> Callable[..., Awaitable[None]]:
    """A dependency counting per client IP only, in `bucket` of the named limit."""

    async def dependency(request: Request) -> None:
        await enforce(request, name=name, key=f"{bucket}:{client_ip(request)}")

    dependency.__name__ = f"ip_rate_limit_{name}_{bucket}"
    return dependency
