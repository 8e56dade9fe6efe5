"""Two-factor sign-in: TOTP (pyotp), single-use backup codes, trusted devices.

The TOTP secret is stored AES-GCM encrypted like other personal data; backup codes only as a
keyed hash (HMAC under the blind-index key: they are random, so a slow hash buys nothing and
ten of them would cost ten Argon2 runs per attempt). A code is accepted once: the time step it
was made for is stored, and only later steps are accepted after it. Services flush, never
commit; HTTP (cookies, rate limits) is the router's business.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts import service
from tekudasai.accounts.errors import (
    InvalidCode,
    InvalidPassword,
    TwoFactorAlreadyEnabled,
    TwoFactorNotEnabled,
)
from tekudasai.accounts.models import BackupCode, Role, TrustedDevice, TwoFactor, User
from tekudasai.accounts.signed_in import AnyUser
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher, hash_token, new_token
from tekudasai.core.errors import ValidationFailed

ISSUER = "Te Kudasai"
DIGITS = 6
PERIOD = 30
# Codes of the previous and next step count too (clock drift, a code typed at the edge).
WINDOW = 1
BACKUP_CODE_COUNT = 10
BACKUP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes (0/o, 1/l/i)
BACKUP_CODE_LENGTH = 10
TRUST_DAYS = 30
SECRET_CONTEXT = "two_factor.secret"  # noqa: S105 - an encryption context name

_TOTP_CODE = re.compile(r"^[0-9]{6}$")  # not \d: it matches other scripts' digits
_BACKUP_CODE = re.compile(rf"^[{BACKUP_ALPHABET}]{{{BACKUP_CODE_LENGTH}}}$")


def _code_error(message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[{"field": "code", "message": message}])


def normalise_totp_code(code: str) -> str:
    """Six digits; spaces are dropped (apps show "123 456"), anything else is refused."""
    compact = "".join(code.split())
    if not _TOTP_CODE.match(compact):
        raise _code_error(f"The code is {DIGITS} digits from your authenticator app.")
    return compact


def normalise_backup_code(code: str) -> str:
    compact = "".join(code.split()).replace("-", "").lower()
    if not _BACKUP_CODE.match(compact):
        raise _code_error("A backup code is 10 letters and digits, as shown when it was made.")
    return compact


def _backup_hash(cipher: PiiCipher, user_id: str, code: str) -> bytes:
    return cipher.blind_index(f"{user_id}:{code}", kind="two-factor-backup-code")


def _new_backup_code() -> str:
    raw = "".join(secrets.choice(BACKUP_ALPHABET) for _ in range(BACKUP_CODE_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def requires_setup(settings: Settings, user: AnyUser) -> bool:
    """TK_REQUIRE_2FA: must this user set up two-factor sign-in before anything else?"""
    if settings.require_2fa == "off" or user.two_factor_enabled:
        return False
    if settings.require_2fa == "admins":
        return user.role == Role.ADMIN.value
    return user.role in {Role.AGENT.value, Role.ADMIN.value}


async def check_password(db: AsyncSession, *, user_id: str, password: str) -> None:
    await service.check_own_password(db, user_id=user_id, password=password)


def secret_of(uri: str) -> str:
    """The base32 key in an otpauth URI (shown for typing in when the QR code cannot be read)."""
    return parse_qs(urlsplit(uri).query).get("secret", [""])[0]


async def has_secret(db: AsyncSession, *, user_id: str) -> bool:
    return (
        await db.scalar(select(TwoFactor.user_id).where(TwoFactor.user_id == user_id)) is not None
    )


def totp_uri(cipher: PiiCipher, user: AnyUser, secret: str) -> str:
    email = service.stored_email(user, cipher)
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=email, issuer_name=ISSUER
    )


async def _replace_backup_codes(db: AsyncSession, cipher: PiiCipher, user_id: str) -> list[str]:
    await db.execute(delete(BackupCode).where(BackupCode.user_id == user_id))
    codes = [_new_backup_code() for _ in range(BACKUP_CODE_COUNT)]
    db.add_all(
        BackupCode(user_id=user_id, code_hash=_backup_hash(cipher, user_id, c.replace("-", "")))
        for c in codes
    )
    await db.flush()
    return codes


async def enable(
    db: AsyncSession, cipher: PiiCipher, *, user_id: str, password: str
) -> tuple[str, list[str]]:
    """A new secret and backup codes (on after the first verified code): (totpURI, codes)."""
    await check_password(db, user_id=user_id, password=password)
    user = await db.get(User, user_id, with_for_update=True)
    if user is None:
        raise InvalidPassword()
    if user.two_factor_enabled:
        raise TwoFactorAlreadyEnabled()
    secret = pyotp.random_base32()
    sealed = cipher.encrypt(secret, context=SECRET_CONTEXT)
    row = await db.get(TwoFactor, user_id)
    if row is None:
        db.add(TwoFactor(user_id=user_id, secret_ciphertext=sealed))
    else:
        row.secret_ciphertext, row.last_used_step = sealed, None
    codes = await _replace_backup_codes(db, cipher, user_id)
    return totp_uri(cipher, user, secret), codes


async def _secret(db: AsyncSession, cipher: PiiCipher, user_id: str) -> tuple[TwoFactor, str]:
    row = await db.get(TwoFactor, user_id)
    if row is None:
        raise TwoFactorNotEnabled()
    return row, cipher.decrypt(row.secret_ciphertext, context=SECRET_CONTEXT)


async def get_totp_uri(db: AsyncSession, cipher: PiiCipher, *, user_id: str, password: str) -> str:
    await check_password(db, user_id=user_id, password=password)
    user = await db.get(User, user_id)
    _, secret = await _secret(db, cipher, user_id)
    assert user is not None
    return totp_uri(cipher, user, secret)


async def regenerate_backup_codes(
    db: AsyncSession, cipher: PiiCipher, *, user_id: str, password: str
) -> list[str]:
    """Ten new codes; the old ones stop working."""
    await check_password(db, user_id=user_id, password=password)
    user = await db.get(User, user_id)
    if user is None or not user.two_factor_enabled:
        raise TwoFactorNotEnabled()
    return await _replace_backup_codes(db, cipher, user_id)


def _matching_step(secret: str, code: str, now: float) -> int | None:
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    current = int(now // PERIOD)
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        # Every step is compared (no early exit): the time taken says nothing.
        if hmac.compare_digest(totp.at(step * PERIOD), code):
            found = step
    return found


async def verify_totp(
    db: AsyncSession, cipher: PiiCipher, *, user_id: str, code: str, now: float | None = None
) -> None:
    """Accept a code once: its time step must be later than the last one used."""
    code = normalise_totp_code(code)
    _, secret = await _secret(db, cipher, user_id)
    step = _matching_step(secret, code, time.time() if now is None else now)
    if step is None:
        raise InvalidCode()
    # Conditional update: of two requests with the same code, one wins.
    claimed = await db.scalar(
        update(TwoFactor)
        .where(
            TwoFactor.user_id == user_id,
            (TwoFactor.last_used_step.is_(None)) | (TwoFactor.last_used_step < step),
        )
        .values(last_used_step=step, updated_at=func.now())
        .returning(TwoFactor.user_id)
        .execution_options(synchronize_session=False)
    )
    if claimed is None:
        raise InvalidCode()


async def use_backup_code(db: AsyncSession, cipher: PiiCipher, *, user_id: str, code: str) -> None:
    """Each code works once (marked used in the same statement that finds it)."""
    code = normalise_backup_code(code)
    used = await db.scalar(
        update(BackupCode)
        .where(
            BackupCode.user_id == user_id,
            BackupCode.code_hash == _backup_hash(cipher, user_id, code),
            BackupCode.used_at.is_(None),
        )
        .values(used_at=func.now())
        .returning(BackupCode.id)
    )
    if used is None:
        raise InvalidCode()


async def remaining_backup_codes(db: AsyncSession, *, user_id: str) -> int:
    count = await db.scalar(
        select(func.count()).where(BackupCode.user_id == user_id, BackupCode.used_at.is_(None))
    )
    return int(count or 0)


async def activate(db: AsyncSession, *, user_id: str) -> None:
    """The first verified code turns two-factor sign-in on."""
    await db.execute(
        update(User)
        .where(User.id == user_id, User.two_factor_enabled.is_(False))
        .values(two_factor_enabled=True, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )


async def disable(db: AsyncSession, *, user_id: str, password: str) -> None:
    await check_password(db, user_id=user_id, password=password)
    await db.execute(delete(TwoFactor).where(TwoFactor.user_id == user_id))
    await db.execute(delete(BackupCode).where(BackupCode.user_id == user_id))
    await db.execute(delete(TrustedDevice).where(TrustedDevice.user_id == user_id))
    await db.execute(
        update(User)
        .where(User.id == user_id)
        .values(two_factor_enabled=False, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )


async def trust_device(db: AsyncSession, *, user_id: str) -> tuple[str, datetime]:
    """A token for this browser's cookie: the second factor is skipped for TRUST_DAYS."""
    token = new_token()
    expires_at = datetime.now(UTC) + timedelta(days=TRUST_DAYS)
    db.add(TrustedDevice(user_id=user_id, token_hash=hash_token(token), expires_at=expires_at))
    await db.flush()
    return token, expires_at


async def is_trusted(db: AsyncSession, *, user_id: str, token: str | None) -> bool:
    if not token or len(token) > 200:
        return False
    found = await db.scalar(
        select(TrustedDevice.id).where(
            and_(
                TrustedDevice.token_hash == hash_token(token),
                TrustedDevice.user_id == user_id,
                TrustedDevice.expires_at > datetime.now(UTC),
            )
        )
    )
    return found is not None
