"""Personal access tokens: create, list, revoke. The lookup on each request is in
dependencies.py (one raw statement, like the session's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.models import ApiToken
from tekudasai.core.crypto import hash_token, new_token
from tekudasai.core.errors import NotFound, ValidationFailed
from tekudasai.core.schemas import iso

TOKEN_PREFIX = "tkp_"  # noqa: S105 - a prefix, not a secret
SCOPES = frozenset(
    {
        "tickets:read",
        "tickets:write",
        "forms:read",
        "forms:write",
        "users:read",
        "users:write",
        "reports:read",
        "admin",
    }
)
MAX_TOKENS_PER_USER = 50
MAX_NAME_LENGTH = 100
# lastUsedAt is written at most this often per token: a busy token does not write per request.
LAST_USED_GRANULARITY = timedelta(minutes=1)


def public_token(token: ApiToken, raw: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": token.id,
        "name": token.name,
        "scopes": sorted(token.scopes),
        "createdAt": iso(token.created_at),
        "expiresAt": iso(token.expires_at) if token.expires_at else None,
        "lastUsedAt": iso(token.last_used_at) if token.last_used_at else None,
    }
    if raw is not None:
        out["token"] = raw  # only in the answer to its creation
    return out


async def create_token(
    db: AsyncSession, *, user_id: str, name: str, scopes: list[str], expires_in_days: int | None
) -> tuple[ApiToken, str]:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed(f"The token needs a name of 1 to {MAX_NAME_LENGTH} characters.")
    unknown = sorted(set(scopes) - SCOPES)
    if unknown or not scopes:
        raise ValidationFailed(
            f"Unknown scopes: {', '.join(unknown)}." if unknown else "Give at least one scope."
        )
    count = await db.scalar(select(func.count()).where(ApiToken.user_id == user_id))
    if (count or 0) >= MAX_TOKENS_PER_USER:
        raise ValidationFailed(f"At most {MAX_TOKENS_PER_USER} tokens per user.")
    raw = TOKEN_PREFIX + new_token()
    token = ApiToken(
        user_id=user_id,
        name=name,
        scopes=sorted(set(scopes)),
        token_hash=hash_token(raw),
        expires_at=(
            datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
        ),
    )
    db.add(token)
    await db.flush()
    return token, raw


async def list_tokens(db: AsyncSession, *, user_id: str | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list((await db.scalars(query)).all())


async def revoke_token(db: AsyncSession, *, token_id: str, user_id: str | None = None) -> None:
    """Deletes the token; with user_id, only if it is that user's (else 404: not revealed)."""
    query = delete(ApiToken).where(ApiToken.id == token_id)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    deleted = await db.scalar(query.returning(ApiToken.id))
    if deleted is None:
        raise NotFound("Token not found.")


async def touch_token(db: AsyncSession, *, token_id: str) -> None:
    await db.execute(
        update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=func.now())
    )
