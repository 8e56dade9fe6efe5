"""Who is signed in, as read with the session on every request: plain values, not ORM rows.

Building ORM objects for the user and the session was a good part of each request's cost; a
request that changes the user loads `User` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from tekudasai.accounts.models import Session, User


@dataclass(frozen=True, slots=True)
class SignedInUser:
    id: str
    name_ciphertext: bytes
    email_ciphertext: bytes
    email_verified: bool
    image: str | None
    role: str
    banned: bool
    ban_reason: str | None
    ban_expires: datetime | None
    created_at: datetime
    updated_at: datetime
    two_factor_enabled: bool


@dataclass(frozen=True, slots=True)
class SignedInSession:
    id: str
    user_id: str
    token_hash: bytes
    expires_at: datetime
    remember_me: bool
    ip_address: str | None
    user_agent: str | None
    impersonated_by: str | None
    created_at: datetime
    updated_at: datetime


USER_FIELDS = tuple(f.name for f in fields(SignedInUser))
SESSION_FIELDS = tuple(f.name for f in fields(SignedInSession))
# The columns a statement selects first to build a SignedInUser from its rows (`signed_in_user`).
USER_COLUMNS = tuple(getattr(User, name) for name in USER_FIELDS)


def signed_in_user(row: Sequence[Any]) -> SignedInUser:
    """The user from a row that starts with USER_COLUMNS."""
    return SignedInUser(*row[: len(USER_FIELDS)])


# What the read-only helpers accept: the ORM row or the signed-in snapshot.
AnyUser = User | SignedInUser
AnySession = Session | SignedInSession
