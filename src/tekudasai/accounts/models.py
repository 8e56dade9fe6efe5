"""Users, their sign-in accounts, sessions and one-time verification tokens.

Names and e-mails are stored only as AES-GCM ciphertext; lookups go through keyed HMAC blind
indexes. Tokens (session, verification) are stored only as SHA-256 hashes.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    SmallInteger,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from tekudasai.core.ids import new_id
from tekudasai.db.base import Base, Timestamped


class Role(StrEnum):
    USER = "user"
    AGENT = "agent"
    ADMIN = "admin"


class User(Timestamped, Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('user', 'agent', 'admin')", name="role"),)
    # updated_at comes back with RETURNING: showing a user after a change needs no reload.
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    name_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    email_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    # Keyed HMAC of the normalised e-mail / name: sign-in and exact-match search without plaintext.
    email_index: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    name_index: Mapped[bytes] = mapped_column(LargeBinary, index=True)
    pii_key_id: Mapped[int] = mapped_column(SmallInteger, index=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # When the address was first proven (mail link, reset, provider): OAuth links older than
    # this were made by whoever claimed the address first, and a password reset drops them.
    email_verified_at: Mapped[datetime | None]
    image: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(
        Text, default=Role.USER.value, server_default="user", index=True
    )
    banned: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    ban_reason: Mapped[str | None] = mapped_column(Text)
    ban_expires: Mapped[datetime | None]
    # On once the first TOTP code is verified (better-auth's `twoFactorEnabled`).
    two_factor_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")


class Account(Timestamped, Base):
    """A way to sign in: 'credential' holds the password hash; OAuth providers, their tokens."""

    __tablename__ = "accounts"
    __table_args__ = (
        Index("uq_accounts_provider_account", "provider_id", "account_id", unique=True),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider_id: Mapped[str] = mapped_column(Text)
    account_id: Mapped[str] = mapped_column(Text)
    password: Mapped[str | None] = mapped_column(Text)  # Argon2id hash, never plaintext
    access_token_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_token_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_token_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_token_expires_at: Mapped[datetime | None]
    refresh_token_expires_at: Mapped[datetime | None]
    scope: Mapped[str | None] = mapped_column(Text)


class Session(Timestamped, Base):
    __tablename__ = "sessions"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    remember_me: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    ip_address: Mapped[str | None] = mapped_column(Text)
    user_agent: Mapped[str | None] = mapped_column(Text)
    impersonated_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )


class Verification(Timestamped, Base):
    """Single-use, expiring tokens: e-mail verification and password reset."""

    __tablename__ = "verifications"
    __table_args__ = (
        CheckConstraint("purpose IN ('verify_email', 'reset_password')", name="purpose"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(Text)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class RateLimitCounter(Base):
    """Rate-limit windows shared by every worker (UNLOGGED: losing them on a crash is fine)."""

    __tablename__ = "rate_limit_counters"
    __table_args__ = ({"prefixes": ["UNLOGGED"]},)

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    hits: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class PiiKey(Base):
    """Key ids for personal data; the highest one is current. Keys derive from the master secret."""

    __tablename__ = "pii_keys"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ApiToken(Timestamped, Base):
    """A personal access token (`tkp_…`): stored only as its SHA-256 hash, like a session's.
    Its scopes narrow what it may call; the owner's role still decides what the owner may do."""

    __tablename__ = "api_tokens"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True, index=True)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class TwoFactor(Timestamped, Base):
    """A user's TOTP secret (AES-GCM, like other personal data) and the last time step used:
    a code is accepted once, never again within its window."""

    __tablename__ = "two_factors"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    last_used_step: Mapped[int | None] = mapped_column(BigInteger)


class BackupCode(Base):
    """One single-use backup code, stored only as a keyed hash."""

    __tablename__ = "two_factor_backup_codes"

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary)
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class TrustedDevice(Base):
    """A browser that skips the second factor for a while (its cookie holds the raw token)."""

    __tablename__ = "trusted_devices"

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Passkey(Timestamped, Base):
    """A WebAuthn credential (better-auth's passkey shape)."""

    __tablename__ = "passkeys"
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(Text)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    counter: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    aaguid: Mapped[str | None] = mapped_column(Text)
    device_type: Mapped[str] = mapped_column(Text)
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    last_used_at: Mapped[datetime | None]


class AuthChallenge(Base):
    """Short-lived, single-use server-side state behind a cookie: a WebAuthn challenge, or a
    sign-in waiting for its second factor. The cookie holds the raw token; this, its hash."""

    __tablename__ = "auth_challenges"
    __table_args__ = (
        CheckConstraint(
            "purpose IN ('passkey_register', 'passkey_authenticate', 'two_factor')",
            name="purpose",
        ),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    purpose: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    challenge: Mapped[bytes | None] = mapped_column(LargeBinary)
    remember_me: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
