"""Hourly clean-up of what expires: sessions, used or stale one-time tokens, rate-limit windows."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, or_
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.models import RateLimitCounter, Session, Verification
from tekudasai.config import Settings
from tekudasai.jobs.worker import JobContext

CLEANUP_INTERVAL_SECONDS = 3600.0
KEEP_USED_TOKENS = timedelta(days=1)


async def purge_expired(db: AsyncSession) -> dict[str, int]:
    """Delete expired rows; returns how many of each kind went."""
    sessions = await db.execute(delete(Session).where(Session.expires_at < func.now()))
    tokens = await db.execute(
        delete(Verification).where(
            or_(
                Verification.expires_at < func.now() - KEEP_USED_TOKENS,
                Verification.used_at < func.now() - KEEP_USED_TOKENS,
            )
        )
    )
    counters = await db.execute(
        delete(RateLimitCounter).where(RateLimitCounter.expires_at < func.now())
    )
    return {
        "sessions": int(sessions.rowcount or 0),  # type: ignore[attr-defined]
        "tokens": int(tokens.rowcount or 0),  # type: ignore[attr-defined]
        "rate_limit_counters": int(counters.rowcount or 0),  # type: ignore[attr-defined]
    }


def cleanup_every(_settings: Settings) -> float:
    return CLEANUP_INTERVAL_SECONDS


async def cleanup_task(ctx: JobContext) -> None:
    """Periodic: purge what expired (the queue runs each period once cluster-wide)."""
    async with ctx.database.sessionmaker() as db, db.begin():
        await purge_expired(db)
