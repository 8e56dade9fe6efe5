"""Accounts: creating users, looking them up by e-mail, roles, and showing personal data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from tekudasai.accounts import addresses
from tekudasai.accounts.errors import (
    BannedUser,
    CannotBanYourself,
    InvalidCredentials,
    InvalidPassword,
    InvalidToken,
    LastAdmin,
    NoPassword,
    UserAlreadyExists,
)
from tekudasai.accounts.keys import refresh_current_key
from tekudasai.accounts.models import (
    Account,
    Role,
    Session,
    TrustedDevice,
    User,
    Verification,
)
from tekudasai.accounts.passwords import hash_password, needs_rehash, verify_password
from tekudasai.accounts.signed_in import AnySession, AnyUser
from tekudasai.core.crypto import PiiCipher, hash_token, new_token
from tekudasai.core.errors import NotFound, ValidationFailed
from tekudasai.core.ids import new_id
from tekudasai.core.schemas import iso

CREDENTIAL_PROVIDER = "credential"
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
EMAIL_PATTERN = addresses.EMAIL_PATTERN
check_email = addresses.check_email  # syntax only: lookups (sign-in, reset) use this


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
    image: str | None = None,
) -> User:
    """Create a user (and a password account when a password is given); flushes, never commits."""
    email = addresses.check_new_email(email)
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
    await refresh_current_key(db, cipher)
    if await db.scalar(select(User.id).where(User.email_index == index)):
        raise UserAlreadyExists()
    user_id = new_id()
    user = User(
        id=user_id,
        name_ciphertext=cipher.encrypt(name, context="user.name"),
        email_ciphertext=cipher.encrypt(addresses.stored_form(email), context="user.email"),
        email_index=index,
        name_index=cipher.name_index(name),
        pii_key_id=cipher.current_key_id,
        role=str(role),
        email_verified=email_verified,
        email_verified_at=func.now() if email_verified else None,
        image=image,
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
    """The account whose address folds (NFKC, casefold) to the same as `email`.

    A match is not the same address (`straße` finds `strasse`): mail goes to `stored_email`.
    """
    return await db.scalar(select(User).where(User.email_index == cipher.email_index(email)))


def stored_email(user: AnyUser, cipher: PiiCipher) -> str:
    """The address on the account: the only one its mail ever goes to."""
    return cipher.decrypt(user.email_ciphertext, context="user.email")


def mark_verified(user: User) -> None:
    """The address is proven now (the first proof's time is kept)."""
    if not user.email_verified or user.email_verified_at is None:
        user.email_verified = True
        user.email_verified_at = func.now()  # type: ignore[assignment]


async def set_role(db: AsyncSession, cipher: PiiCipher, *, email: str, role: str) -> User:
    if role not in {r.value for r in Role}:
        raise ValidationFailed(f"Unknown role {role!r}; use user, agent or admin.")
    user = await find_by_email(db, cipher, email)
    if user is None:
        raise NotFound(f"No user with e-mail {email}.")
    if role != Role.ADMIN.value:
        await _ensure_another_admin(db, losing=user)
    user.role = role
    await db.flush()
    return user


def public_user(user: AnyUser, cipher: PiiCipher) -> dict[str, Any]:
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
        "twoFactorEnabled": user.two_factor_enabled,
    }


SESSION_DAYS = 7
SHORT_SESSION_HOURS = 24


def session_lifetime(remember_me: bool) -> timedelta:
    return timedelta(days=SESSION_DAYS) if remember_me else timedelta(hours=SHORT_SESSION_HOURS)


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
    lifetime = session_lifetime(remember_me)
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


__all__ = ["UserAlreadyExists"]  # re-exported: callers import it from here

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose name
TOKEN_LIFETIMES = {VERIFY_EMAIL: timedelta(hours=24), RESET_PASSWORD: timedelta(hours=1)}


def now_utc() -> datetime:
    return datetime.now(UTC)


def is_banned(user: AnyUser, *, at: datetime | None = None) -> bool:
    """Banned, and the ban (if it has an expiry) has not run out yet."""
    return user.banned and (user.ban_expires is None or user.ban_expires > (at or now_utc()))


def public_session(session: AnySession, token: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": session.id,
        "userId": session.user_id,
        "expiresAt": iso(session.expires_at),
        "createdAt": iso(session.created_at),
        "updatedAt": iso(session.updated_at),
        "ipAddress": session.ip_address,
        "userAgent": session.user_agent,
        "impersonatedBy": session.impersonated_by,
    }
    if token is not None:
        body["token"] = token
    return body


async def _credentials(
    db: AsyncSession, cipher: PiiCipher, email: str
) -> tuple[User | None, Account | None]:
    row = (
        await db.execute(
            select(User, Account)
            .outerjoin(
                Account,
                and_(Account.user_id == User.id, Account.provider_id == CREDENTIAL_PROVIDER),
            )
            .where(User.email_index == cipher.email_index(email))
        )
    ).first()
    return (row[0], row[1]) if row else (None, None)


async def authenticate(
    db: AsyncSession,
    cipher: PiiCipher,
    *,
    email: str,
    password: str,
    lookup: async_sessionmaker[AsyncSession] | None = None,
) -> User:
    """Check e-mail and password at the same cost whether or not the account exists.

    With `lookup`, the read runs in a session of its own that returns its connection before
    the (slow) hash check, so waiting sign-ins do not hold pool connections.
    """
    if lookup is not None:
        async with lookup() as read:
            user, account = await _credentials(read, cipher, email)
    else:
        user, account = await _credentials(db, cipher, email)
    stored = account.password if account is not None else None
    if not await verify_password(stored, password) or user is None or account is None:
        raise InvalidCredentials()
    if is_banned(user):
        raise BannedUser(
            f"You have been banned from this application. {user.ban_reason or ''}".strip()
        )
    # Rare writes, by id: the loaded objects may belong to the closed lookup session.
    if user.banned:  # the ban has expired: lift it
        await db.execute(
            update(User)
            .where(User.id == user.id)
            .values(banned=False, ban_reason=None, ban_expires=None)
            .execution_options(synchronize_session=False)
        )
        for key in ("banned", "ban_reason", "ban_expires"):
            set_committed_value(user, key, False if key == "banned" else None)
    if stored and needs_rehash(stored):
        await db.execute(
            update(Account)
            .where(Account.id == account.id)
            .values(password=await hash_password(password))
            .execution_options(synchronize_session=False)
        )
    return user


def needs_renewal(session: AnySession, *, at: datetime | None = None) -> bool:
    """More than half of the session's lifetime is used: extend it (sliding expiry)."""
    lifetime = session_lifetime(session.remember_me)
    return session.expires_at - (at or now_utc()) < lifetime / 2


async def renew_session(
    db: AsyncSession, *, session_id: str, remember_me: bool
) -> tuple[datetime, datetime]:
    """Extend a session by its full lifetime; (new expiry, time of the change)."""
    now = now_utc()
    expires_at = now + session_lifetime(remember_me)
    await db.execute(
        update(Session)
        .where(Session.id == session_id)
        .values(expires_at=expires_at, updated_at=now)
    )
    return expires_at, now


async def revoke_session(db: AsyncSession, *, session_id: str) -> None:
    await db.execute(delete(Session).where(Session.id == session_id))


async def revoke_all_sessions(db: AsyncSession, *, user_id: str) -> int:
    """Every session ends, and no browser skips the second factor any more."""
    await db.execute(delete(TrustedDevice).where(TrustedDevice.user_id == user_id))
    result = await db.execute(delete(Session).where(Session.user_id == user_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def issue_token(db: AsyncSession, *, user_id: str, purpose: str) -> str:
    """A single-use token (returned once, stored only as a hash); older unused ones are void."""
    await db.execute(
        delete(Verification).where(
            Verification.user_id == user_id,
            Verification.purpose == purpose,
            Verification.used_at.is_(None),
        )
    )
    token = new_token()
    db.add(
        Verification(
            user_id=user_id,
            purpose=purpose,
            token_hash=hash_token(token),
            expires_at=now_utc() + TOKEN_LIFETIMES[purpose],
        )
    )
    await db.flush()
    return token


async def consume_token(db: AsyncSession, *, token: str, purpose: str) -> str:
    """Mark a token used and return its user id; expired, reused or unknown → InvalidToken."""
    if not token or len(token) > 200:
        raise InvalidToken()
    user_id = await db.scalar(
        update(Verification)
        .where(
            Verification.token_hash == hash_token(token),
            Verification.purpose == purpose,
            Verification.used_at.is_(None),
            Verification.expires_at > func.now(),
        )
        .values(used_at=func.now())
        .returning(Verification.user_id)
    )
    if user_id is None:
        raise InvalidToken()
    return user_id


async def token_is_valid(db: AsyncSession, *, token: str, purpose: str) -> bool:
    """Whether a token would be accepted now (without using it up): for pages that ask first."""
    if not token or len(token) > 200:
        return False
    found = await db.scalar(
        select(Verification.id).where(
            Verification.token_hash == hash_token(token),
            Verification.purpose == purpose,
            Verification.used_at.is_(None),
            Verification.expires_at > func.now(),
        )
    )
    return found is not None


async def verify_email(db: AsyncSession, *, token: str) -> User:
    user_id = await consume_token(db, token=token, purpose=VERIFY_EMAIL)
    user = await db.get(User, user_id)
    if user is None:
        raise InvalidToken()
    mark_verified(user)
    await db.flush()
    return user


async def reset_password(db: AsyncSession, *, token: str, new_password: str) -> User:
    """Set a new password from a reset token; every session of the user is revoked."""
    check_password(new_password)
    user_id = await consume_token(db, token=token, purpose=RESET_PASSWORD)
    user = await db.get(User, user_id)
    if user is None:
        raise InvalidToken()
    account = await db.scalar(
        select(Account).where(
            Account.user_id == user_id, Account.provider_id == CREDENTIAL_PROVIDER
        )
    )
    hashed = await hash_password(new_password)
    if account is None:  # an OAuth-only user may add a password this way
        db.add(
            Account(
                user_id=user_id,
                provider_id=CREDENTIAL_PROVIDER,
                account_id=user_id,
                password=hashed,
            )
        )
    else:
        account.password = hashed
    # Provider links made before the address was proven may be someone else's (pre-hijack):
    # they go; the owner's own comes back at the next sign-in with a verified, equal address.
    proven_at = user.email_verified_at if user.email_verified else None
    await db.execute(
        delete(Account).where(
            Account.user_id == user_id,
            Account.provider_id != CREDENTIAL_PROVIDER,
            true() if proven_at is None else Account.created_at < proven_at,
        )
    )
    # Whoever received the reset mail controls the address.
    mark_verified(user)
    await revoke_all_sessions(db, user_id=user_id)
    await db.flush()
    return user


async def list_users(
    db: AsyncSession,
    cipher: PiiCipher,
    *,
    offset: int,
    limit: int,
    search: str | None = None,
    role: str = "all",
) -> tuple[list[User], int]:
    """Newest first; `search` is an exact e-mail or exact name (through the blind indexes)."""
    conditions = []
    if role != "all":
        conditions.append(User.role == role)
    if search and search.strip():
        conditions.append(
            or_(
                User.email_index == cipher.email_index(search),
                User.name_index == cipher.name_index(search),
            )
        )
    total = await db.scalar(select(func.count()).select_from(User).where(*conditions))
    users = (
        await db.scalars(
            select(User)
            .where(*conditions)
            .order_by(User.created_at.desc(), User.id)
            .offset(offset)
            .limit(limit)
        )
    ).all()
    return list(users), int(total or 0)


async def _get_user(db: AsyncSession, user_id: str) -> User:
    user = await db.get(User, user_id) if user_id else None
    if user is None:
        raise NotFound("No such user.")
    return user


async def _ensure_another_admin(db: AsyncSession, *, losing: User) -> None:
    """Refuse when `losing` is the last active admin (admin rows locked: no race)."""
    if losing.role != Role.ADMIN.value or is_banned(losing):
        return
    admins = (
        await db.scalars(
            select(User).where(User.role == Role.ADMIN.value).order_by(User.id).with_for_update()
        )
    ).all()
    if not any(a.id != losing.id and not is_banned(a) for a in admins):
        raise LastAdmin()


async def admin_set_role(db: AsyncSession, *, user_id: str, role: str) -> User:
    if role not in {r.value for r in Role}:
        raise ValidationFailed(
            f"Unknown role {role!r}; use user, agent or admin.",
            errors=[{"field": "role", "message": "Unknown role"}],
        )
    user = await _get_user(db, user_id)
    if role != Role.ADMIN.value:
        await _ensure_another_admin(db, losing=user)
    user.role = role
    await db.flush()
    return user


async def ban_user(
    db: AsyncSession,
    *,
    actor_id: str,
    user_id: str,
    reason: str | None = None,
    expires_in_seconds: int | None = None,
) -> User:
    """Ban (optionally until a moment); every session of the user ends now."""
    user = await _get_user(db, user_id)
    if user.id == actor_id:
        raise CannotBanYourself()
    await _ensure_another_admin(db, losing=user)
    user.banned = True
    user.ban_reason = reason
    user.ban_expires = (
        now_utc() + timedelta(seconds=expires_in_seconds) if expires_in_seconds else None
    )
    await revoke_all_sessions(db, user_id=user.id)
    await db.flush()
    return user


async def unban_user(db: AsyncSession, *, user_id: str) -> User:
    user = await _get_user(db, user_id)
    user.banned, user.ban_reason, user.ban_expires = False, None, None
    await db.flush()
    return user


async def check_own_password(db: AsyncSession, *, user_id: str, password: str) -> Account:
    """The account's own password, asked again before a security change."""
    account = await db.scalar(
        select(Account).where(
            Account.user_id == user_id, Account.provider_id == CREDENTIAL_PROVIDER
        )
    )
    if account is None or account.password is None:
        raise NoPassword()
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidPassword()
    if not await verify_password(account.password, password):
        raise InvalidPassword()
    return account


async def change_password(
    db: AsyncSession,
    *,
    user_id: str,
    current_password: str,
    new_password: str,
    keep_session_id: str | None,
) -> int:
    """Set a new password; every other session and every trusted device ends. Returns the
    number of other sessions ended."""
    account = await check_own_password(db, user_id=user_id, password=current_password)
    check_password(new_password)
    account.password = await hash_password(new_password)
    await db.execute(delete(TrustedDevice).where(TrustedDevice.user_id == user_id))
    result = await db.execute(
        delete(Session).where(
            Session.user_id == user_id,
            true() if keep_session_id is None else Session.id != keep_session_id,
        )
    )
    await db.flush()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def list_sessions(db: AsyncSession, *, user_id: str) -> list[Session]:
    """The user's live sessions, newest first."""
    rows = await db.scalars(
        select(Session)
        .where(Session.user_id == user_id, Session.expires_at > func.now())
        .order_by(Session.created_at.desc(), Session.id)
    )
    return list(rows.all())


async def revoke_own_session(db: AsyncSession, *, user_id: str, session_id: str) -> None:
    deleted = await db.scalar(
        delete(Session)
        .where(Session.id == session_id, Session.user_id == user_id)
        .returning(Session.id)
    )
    if deleted is None:
        raise NotFound("No such session.")
