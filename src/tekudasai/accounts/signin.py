"""Signing in and signing up with e-mail and password: one path for the API and the web pages."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tekudasai.accounts import challenges, service, two_factor
from tekudasai.accounts.models import Session, User
from tekudasai.config import Settings
from tekudasai.core.crypto import PiiCipher
from tekudasai.jobs.mail import enqueue_mail


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The user and the new session (`token` goes to the client, once)."""

    user: User
    token: str
    session: Session


@dataclass(frozen=True, slots=True)
class SecondFactorNeeded:
    """The password was right; the session waits for a second factor (`token` goes to the
    pending cookie)."""

    user: User
    token: str


def verification_mail(settings: Settings, token: str, callback: str | None) -> tuple[str, str]:
    """Subject and body of the e-mail verification message (the link opens a web page)."""
    query = {"token": token, **({"callbackURL": callback} if callback else {})}
    link = f"{settings.base_url}/auth/verify?{urlencode(query)}"
    return (
        "Confirm your e-mail address",
        f"Please confirm your e-mail address for Te Kudasai by opening this link:\n\n{link}\n\n"
        "The link works once and expires in 24 hours. If you did not sign up, ignore this mail.",
    )


async def open_session(
    db: AsyncSession,
    user: User,
    *,
    remember_me: bool,
    ip_address: str | None,
    user_agent: str | None,
) -> SignedIn:
    token, session = await service.create_session(
        db,
        user_id=user.id,
        remember_me=remember_me,
        ip_address=ip_address,
        user_agent=user_agent,
    )
    return SignedIn(user=user, token=token, session=session)


async def sign_in(
    db: AsyncSession,
    cipher: PiiCipher,
    *,
    email: str,
    password: str,
    remember_me: bool,
    ip_address: str | None,
    user_agent: str | None,
    lookup: async_sessionmaker[AsyncSession] | None = None,
    trusted_device: str | None = None,
) -> SignedIn | SecondFactorNeeded:
    """Check the credentials and open a session, or, with two-factor sign-in on (and this
    browser not trusted), a pending sign-in that waits for the second factor."""
    user = await service.authenticate(db, cipher, email=email, password=password, lookup=lookup)
    return await after_first_factor(
        db,
        user,
        remember_me=remember_me,
        ip_address=ip_address,
        user_agent=user_agent,
        trusted_device=trusted_device,
    )


async def after_first_factor(
    db: AsyncSession,
    user: User,
    *,
    remember_me: bool,
    ip_address: str | None,
    user_agent: str | None,
    trusted_device: str | None,
) -> SignedIn | SecondFactorNeeded:
    """Every sign-in with one factor (password, OAuth) goes through here: none of them opens
    a session past two-factor sign-in."""
    if user.two_factor_enabled and not await two_factor.is_trusted(
        db, user_id=user.id, token=trusted_device
    ):
        token = await challenges.issue(
            db, purpose=challenges.TWO_FACTOR, user_id=user.id, remember_me=remember_me
        )
        return SecondFactorNeeded(user=user, token=token)
    return await open_session(
        db, user, remember_me=remember_me, ip_address=ip_address, user_agent=user_agent
    )


async def sign_up(
    db: AsyncSession,
    cipher: PiiCipher,
    settings: Settings,
    *,
    email: str,
    name: str,
    password: str,
    remember_me: bool,
    ip_address: str | None,
    user_agent: str | None,
    image: str | None = None,
    callback: str | None = None,
) -> SignedIn:
    """Create the account, open a session and queue the verification mail (same transaction)."""
    user = await service.create_user(
        db, cipher, email=email, name=name, password=password, image=image
    )
    signed_in = await open_session(
        db, user, remember_me=remember_me, ip_address=ip_address, user_agent=user_agent
    )
    verify_token = await service.issue_token(db, user_id=user.id, purpose=service.VERIFY_EMAIL)
    subject, body = verification_mail(settings, verify_token, callback)
    await enqueue_mail(
        db, cipher, to=service.stored_email(user, cipher), subject=subject, body=body
    )
    return signed_in


RESET_PAGE = "/auth/reset-password"


async def password_reset(
    db: AsyncSession,
    cipher: PiiCipher,
    settings: Settings,
    *,
    email: str,
    target: str = RESET_PAGE,
) -> None:
    """Queue the reset mail for the account `email` finds (nothing without one).

    It goes to the address stored on the account, never to `email` as typed: the lookup folds
    look-alikes together (`straße` finds `strasse`).
    """
    user = await service.find_by_email(db, cipher, email)
    if user is None:
        return
    token = await service.issue_token(db, user_id=user.id, purpose=service.RESET_PASSWORD)
    base = target if target.startswith("http") else f"{settings.base_url}{target}"
    link = f"{base}{'&' if '?' in base else '?'}{urlencode({'token': token})}"
    await enqueue_mail(
        db,
        cipher,
        to=service.stored_email(user, cipher),
        subject="Reset your password",
        body=(
            f"Someone asked to reset the password of your Te Kudasai account.\n\n{link}\n\n"
            "The link works once and expires in one hour. If it was not you, ignore this mail."
        ),
    )
