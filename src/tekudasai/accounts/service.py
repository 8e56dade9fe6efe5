"""Accounts: creating users, looking them up by e-mail, roles, and showing personal data."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.models import Account, Role, Session, User
from tekudasai.accounts.passwords import hash_password
from tekudasai.core.crypto import PiiCipher, hash_token, new_token, normalise_email
from tekudasai.core.errors import AppError, NotFound, ValidationFailed
from tekudasai.core.ids import new_id
from tekudasai.core.schemas import iso

CREDENTIAL_PROVIDER = "credential"
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
# Syntax only: internal domains (.local, .internal, a bare company domain) are valid addresses.
EMAIL_PATTERN = re.compile(
    r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$"
)


class UserAlreadyExists(AppError):
    status_code = 422
    code = "USER_ALREADY_EXISTS"
    message = "A user with this e-mail already exists."


def check_email(email: str) -> str:
    email = email.strip()
    if len(email) > 254 or not EMAIL_PATTERN.match(email):
        raise ValidationFailed(
            "Invalid e-mail address.",
            errors=[{"field": "email", "message": "Invalid e-mail address"}],
        )
    return email


def check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"Password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.",
            errors=[
                {
                    "field": "password",
                    "message": "Password too short"
                    if len(password) < MIN_PASSWORD_LENGTH
                    else "Password too long",
                }
            ],
        )


async def create_user(
    db: AsyncSession,
    cipher: PiiCipher,
    *,
    email: str,
    name: str,
    password: str | None,
    role: Role | str = Role.USER,
    email_verified: bool = False,
) -> User:
    """Create a user (and a password account when a password is given); flushes, never commits."""
    email = check_email(email)
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed(
            "Name must be 1 to 200 characters.",
            errors=[{"field": "name", "message": "Invalid name"}],
        )
    if role not in {r.value for r in Role}:
        raise ValidationFailed(f"Unknown role {role!r}.")
    if password is not None:
        check_password(password)
    index = cipher.email_index(email)
    if await db.scalar(select(User.id).where(User.email_index == index)):
        raise UserAlreadyExists()
    user_id = new_id()
    user = User(
        id=user_id,
        name_ciphertext=cipher.encrypt(name, context="user.name"),
        email_ciphertext=cipher.encrypt(normalise_email(email), context="user.email"),
        email_index=index,
        name_index=cipher.name_index(name),
        pii_key_id=cipher.current_key_id,
        role=str(role),
        email_verified=email_verified,
    )
    db.add(user)
    try:
        await db.flush()
    except IntegrityError as exc:  # a concurrent sign-up with the same e-mail won the race
        raise UserAlreadyExists() from exc
    if password is not None:
        db.add(
            Account(
                user_id=user_id,
                provider_id=CREDENTIAL_PROVIDER,
                account_id=user_id,
                password=await hash_password(password),
            )
        )
        await db.flush()
    return user


async def find_by_email(db: AsyncSession, cipher: PiiCipher, email: str) -> User | None:
    return await db.scalar(select(User).where(User.email_index == cipher.email_index(email)))


async def set_role(db: AsyncSession, cipher: PiiCipher, *, email: str, role: str) -> User:
    if role not in {r.value for r in Role}:
        raise ValidationFailed(f"Unknown role {role!r}; use user, agent or admin.")
    user = await find_by_email(db, cipher, email)
    if user is None:
        raise NotFound(f"No user with e-mail {email}.")
    user.role = role
    await db.flush()
    return user


def public_user(user: User, cipher: PiiCipher) -> dict[str, Any]:
    """The user as the API shows it (better-auth's shape), decrypted at the edge."""
    return {
        "id": user.id,
        "name": cipher.decrypt(user.name_ciphertext, context="user.name"),
        "email": cipher.decrypt(user.email_ciphertext, context="user.email"),
        "emailVerified": user.email_verified,
        "image": user.image,
        "role": user.role,
        "banned": user.banned,
        "banReason": user.ban_reason,
        "banExpires": iso(user.ban_expires) if user.ban_expires else None,
        "createdAt": iso(user.created_at),
        "updatedAt": iso(user.updated_at),
    }


SESSION_DAYS = 7
SHORT_SESSION_HOURS = 24


async def create_session(
    db: AsyncSession,
    *,
    user_id: str,
    remember_me: bool = True,
    ip_address: str | None = None,
    user_agent: str | None = None,
) -> tuple[str, Session]:
    """A new session; returns the token (shown once, stored only as a hash) and the row."""
    token = new_token()
    lifetime = timedelta(days=SESSION_DAYS) if remember_me else timedelta(hours=SHORT_SESSION_HOURS)
    session = Session(
        user_id=user_id,
        token_hash=hash_token(token),
        expires_at=datetime.now(UTC) + lifetime,
        remember_me=remember_me,
        ip_address=ip_address,
        user_agent=(user_agent or "")[:500] or None,
    )
    db.add(session)
    await db.flush()
    return token, session
