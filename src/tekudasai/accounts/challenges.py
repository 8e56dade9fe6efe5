"""Short-lived, single-use server-side state behind a cookie (WebAuthn challenges, sign-ins
waiting for their second factor). The cookie carries a random token; the row, only its hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tekudasai.accounts.models import AuthChallenge
from tekudasai.core.crypto import hash_token, new_token

PASSKEY_REGISTER = "passkey_register"
PASSKEY_AUTHENTICATE = "passkey_authenticate"
TWO_FACTOR = "two_factor"
LIFETIMES = {
    PASSKEY_REGISTER: timedelta(minutes=5),
    PASSKEY_AUTHENTICATE: timedelta(minutes=5),
    TWO_FACTOR: timedelta(minutes=10),
}
MAX_TOKEN_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Challenge:
    user_id: str | None
    challenge: bytes | None
    remember_me: bool


async def issue(
    db: AsyncSession,
    *,
    purpose: str,
    user_id: str | None = None,
    challenge: bytes | None = None,
    remember_me: bool = True,
) -> str:
    """Store a challenge; return the cookie's token (shown once, stored as a hash)."""
    # Expired rows of anyone go on the way (cheap: indexed by expiry).
    await db.execute(delete(AuthChallenge).where(AuthChallenge.expires_at < datetime.now(UTC)))
    token = new_token()
    db.add(
        AuthChallenge(
            token_hash=hash_token(token),
            purpose=purpose,
            user_id=user_id,
            challenge=challenge,
            remember_me=remember_me,
            expires_at=datetime.now(UTC) + LIFETIMES[purpose],
        )
    )
    await db.flush()
    return token


def _valid(token: str | None) -> bool:
    return bool(token) and len(token or "") <= MAX_TOKEN_LENGTH


async def peek(db: AsyncSession, *, token: str | None, purpose: str) -> Challenge | None:
    """The live challenge behind `token`, left in place (a wrong code may be retried)."""
    if not _valid(token):
        return None
    row = await db.scalar(
        select(AuthChallenge).where(
            AuthChallenge.token_hash == hash_token(token or ""),
            AuthChallenge.purpose == purpose,
            AuthChallenge.expires_at > datetime.now(UTC),
        )
    )
    return Challenge(row.user_id, row.challenge, row.remember_me) if row else None


async def consume(
    db: AsyncSession,
    *,
    token: str | None,
    purpose: str,
    own_transaction: async_sessionmaker[AsyncSession] | None = None,
) -> Challenge | None:
    """Use the challenge up (DELETE … RETURNING: two requests cannot both have it). With
    `own_transaction` it is gone for good even if the request fails afterwards."""
    if not _valid(token):
        return None
    if own_transaction is not None:
        async with own_transaction() as own, own.begin():
            return await consume(own, token=token, purpose=purpose)
    row = (
        await db.execute(
            delete(AuthChallenge)
            .where(
                AuthChallenge.token_hash == hash_token(token or ""),
                AuthChallenge.purpose == purpose,
                AuthChallenge.expires_at > datetime.now(UTC),
            )
            .returning(AuthChallenge.user_id, AuthChallenge.challenge, AuthChallenge.remember_me)
        )
    ).first()
    return Challenge(row[0], row[1], row[2]) if row else None
