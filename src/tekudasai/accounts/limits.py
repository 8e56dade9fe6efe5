"""Who the rate limits count: accounts, client IPs and signed-in users.

Sign-in attempts and requests that send mail (sign-up, verification, reset) count in separate
buckets of the same limits (`auth_account`, `auth_ip`): anyone can ask for mail to any
address, so those requests must never lock the owner out of signing in. A sign-in with the
right password is taken back from its account's count: only failures add up.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from tekudasai.accounts.dependencies import MaybeUser
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.errors import RateLimited
from tekudasai.db.ratelimit import Limit, client_ip, enforce, forgive, hit, ip_rate_limit

SIGN_IN = "signin"
MAIL = "mail"


def _account_key(bucket: str, cipher: PiiCipher, email: str) -> str:
    # Keyed by the blind index: the counter table never holds an address.
    return f"{bucket}:{cipher.email_index(email).hex()[:40]}"


async def sign_in_attempt(request: Request, cipher: PiiCipher, email: str) -> None:
    """Count a sign-in attempt on the account and the client IP (429 when over)."""
    await enforce(request, name="auth_ip", key=f"{SIGN_IN}:ip:{client_ip(request)}")
    await enforce(request, name="auth_account", key=_account_key(SIGN_IN, cipher, email))


async def sign_in_succeeded(request: Request, cipher: PiiCipher, email: str) -> None:
    """The right password: this attempt does not count against the account."""
    await forgive(request, name="auth_account", key=_account_key(SIGN_IN, cipher, email))


async def mail_request(request: Request, cipher: PiiCipher, email: str | None) -> None:
    """Count a request that sends mail, per client IP and (given an address) per account."""
    await enforce(request, name="auth_ip", key=f"{MAIL}:ip:{client_ip(request)}")
    if email is not None:
        await enforce(request, name="auth_account", key=_account_key(MAIL, cipher, email))


def rate_limit(name: str) -> Callable[..., Awaitable[None]]:
    """A dependency counting per signed-in user, or per client IP when signed out."""

    async def dependency(request: Request, principal: MaybeUser) -> None:
        key = f"user:{principal.user.id}" if principal else f"ip:{client_ip(request)}"
        await enforce(request, name=name, key=key)

    dependency.__name__ = f"rate_limit_{name}"
    return dependency


# Token checks (reset with a token) share the sign-in bucket of the IP limit.
SignInIpLimit = Annotated[None, Depends(ip_rate_limit("auth_ip", f"{SIGN_IN}:ip"))]


async def token_attempt(request: Request) -> None:
    """Count a one-time-token check (reset with a token) in the client IP's sign-in bucket."""
    await enforce(request, name="auth_ip", key=f"{SIGN_IN}:ip:{client_ip(request)}")


# Second factors: 5 wrong codes lock the account's second step for a while. A fixed limit,
# on whatever TK_RATE_LIMITS says: six digits are guessable without it.
SECOND_FACTOR = "two_factor"
SECOND_FACTOR_LIMIT = Limit(5, 900)


async def second_factor_attempt(request: Request, user_id: str) -> None:
    """Count a code (TOTP or backup) for the account and the client IP (429 when over)."""
    await enforce(request, name="auth_ip", key=f"{SIGN_IN}:ip:{client_ip(request)}")
    wait = await hit(
        request.app.state.database, name=SECOND_FACTOR, key=user_id, limit=SECOND_FACTOR_LIMIT
    )
    if wait is not None:
        raise RateLimited(headers={"Retry-After": str(max(1, math.ceil(wait)))})


async def second_factor_succeeded(request: Request, user_id: str) -> None:
    await forgive(request, name=SECOND_FACTOR, key=user_id, limit=SECOND_FACTOR_LIMIT)
