"""Who is asking: the session (cookie or bearer token) and the user, found in one query.

A `tkp_` bearer is a personal access token instead: one indexed raw statement like the
session's, giving the owner and the token's scopes. A route declares the scopes a token needs
with `openapi_extra=scopes(...)` (shown as `x-scopes` in the OpenAPI document); the check is a
set test here, for tokens only, so session principals pay nothing. A route that declares none
refuses tokens (403 INSUFFICIENT_SCOPE): the token API itself and sign-in/session routes are
session only. The `admin` scope stands for every scope. What the owner's role allows is checked
as for a session (Agent/Admin below), so a token never exceeds its owner's current role.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any

from asyncpg import Record
from fastapi import Depends, Request, Response
from sqlalchemy import LargeBinary, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts import service, tokens, two_factor
from tekudasai.accounts.errors import InsufficientScope, TwoFactorRequired
from tekudasai.accounts.joined import CALLER_WIDTH, FOUND, JoinedRead
from tekudasai.accounts.models import ApiToken, Role, Session, User
from tekudasai.accounts.signed_in import (
    SESSION_FIELDS,
    USER_COLUMNS,
    USER_FIELDS,
    AnySession,
    SignedInSession,
    SignedInUser,
    signed_in_user,
)
from tekudasai.config import Settings
from tekudasai.core.crypto import hash_token
from tekudasai.core.csrf import SESSION_COOKIE, session_token
from tekudasai.core.errors import AppError, NotFound, Unauthorized
from tekudasai.core.handlers import VALIDATION_GATE
from tekudasai.core.middleware import add_response_headers
from tekudasai.db.raw import RawStatement
from tekudasai.db.session import DbSession

STAFF_ROLES = frozenset({Role.AGENT.value, Role.ADMIN.value})
MAX_TOKEN_LENGTH = 200


@dataclass(frozen=True)
class Principal:
    user: SignedInUser
    # None for a personal access token (then `scopes` holds its scopes).
    session: SignedInSession | None
    token: str | None = None
    scopes: frozenset[str] | None = None
    token_id: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.user.role in STAFF_ROLES

    @property
    def is_admin(self) -> bool:
        return self.user.role == Role.ADMIN.value


def session_token_from(request: Request) -> str | None:
    return session_token(request.headers.get("authorization"), request.cookies.get(SESSION_COOKIE))


def set_session_cookie(
    response: Response, settings: Settings, token: str, *, session: AnySession
) -> None:
    """HttpOnly, SameSite=Lax, Secure on https; without remember-me it ends with the browser."""
    max_age = (
        int(service.session_lifetime(session.remember_me).total_seconds())
        if session.remember_me
        else None
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=settings.secure_cookies
    )


@functools.cache
def _principal_statement() -> RawStatement:
    return RawStatement(
        select(
            *USER_COLUMNS,
            *(getattr(Session, name) for name in SESSION_FIELDS),
        )
        .join(Session, Session.user_id == User.id)
        .where(
            Session.token_hash == bindparam("token_hash", type_=LargeBinary),
            Session.expires_at > func.now(),
        )
    )


def scopes(*names: str) -> dict[str, Any]:
    """A route's `openapi_extra`: the scopes a personal access token needs to call it."""
    unknown = set(names) - tokens.SCOPES
    if unknown:
        raise ValueError(f"unknown scopes {unknown}")
    return {"x-scopes": list(names)}


def route_scopes(request: Request) -> list[str] | None:
    route = request.scope.get("route")
    extra = getattr(route, "openapi_extra", None) or {}
    declared: list[str] | None = extra.get("x-scopes")
    return declared


@functools.cache
def _token_statement() -> RawStatement:
    return RawStatement(
        select(
            *USER_COLUMNS,
            ApiToken.id,
            ApiToken.scopes,
            ApiToken.expires_at,
            ApiToken.last_used_at,
        )
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == bindparam("token_hash", type_=LargeBinary))
    )


async def _token_principal(request: Request, db: AsyncSession, token: str) -> Principal | None:
    row = await _token_statement().fetchrow(db, token_hash=hash_token(token))
    if row is None:
        return None
    user = signed_in_user(row)
    token_id, granted, expires_at, last_used_at = row[len(USER_FIELDS) :]
    now = datetime.now(UTC)
    if service.is_banned(user) or (expires_at is not None and expires_at <= now):
        return None
    needed = route_scopes(request)
    if needed is None or ("admin" not in granted and not set(needed) <= set(granted)):
        raise InsufficientScope()
    if last_used_at is None or now - last_used_at >= tokens.LAST_USED_GRANULARITY:
        await tokens.touch_token(db, token_id=token_id)
    return Principal(
        user=user, session=None, token=token, scopes=frozenset(granted), token_id=token_id
    )


async def optional_principal(request: Request, db: DbSession) -> Principal | None:
    """The signed-in principal, or None; looked up once per request however many ask.

    The role checks below call this directly instead of through a chain of dependencies (each
    link costs FastAPI a solving pass per request); the request's state remembers the answer.
    """
    state = request.scope.setdefault("state", {})
    if "principal" not in state:
        state["principal"] = await _look_up_principal(request, db)
    principal: Principal | None = state["principal"]
    return principal


async def _look_up_principal(request: Request, db: AsyncSession) -> Principal | None:
    token = session_token_from(request)
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    if token.startswith(tokens.TOKEN_PREFIX) and request.headers.get("authorization"):
        return await _token_principal(request, db, token)
    row = await _principal_statement().fetchrow(db, token_hash=hash_token(token))
    return await _session_principal(request, db, token, row)


async def _session_principal(
    request: Request, db: AsyncSession, token: str, row: Sequence[Any] | None
) -> Principal | None:
    """The principal of a session token from its row (USER_COLUMNS, then the session's), or
    None; renews the session when it is due."""
    if row is None:
        return None
    user = signed_in_user(row)
    if service.is_banned(user):
        return None
    session = SignedInSession(*row[len(USER_FIELDS) : CALLER_WIDTH])
    if service.needs_renewal(session):
        # Rare write (once per half lifetime): the common path stays one read.
        expires_at, updated_at = await service.renew_session(
            db, session_id=session.id, remember_me=session.remember_me
        )
        session = replace(session, expires_at=expires_at, updated_at=updated_at)
        if not request.headers.get("authorization") and session.remember_me:
            renewed = Response()
            set_session_cookie(renewed, request.app.state.settings, token, session=session)
            cookie = [(k, v) for k, v in renewed.raw_headers if k == b"set-cookie"]
            add_response_headers(request.scope, cookie)
    return Principal(user=user, session=session, token=token)


# Where a user that TK_REQUIRE_2FA holds back may still go: sign-in state and the set-up
# (not better-auth's admin routes, which live under /auth/ too).
_SET_UP_PATHS = re.compile(r"^/api(?:/v1)?/auth/(?!admin/)")


async def require_principal(request: Request, db: DbSession) -> Principal:
    return _admitted(request, await optional_principal(request, db))


def _admitted(request: Request, principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthorized()
    if two_factor.requires_setup(
        request.app.state.settings, principal.user
    ) and not _SET_UP_PATHS.match(request.url.path):
        raise TwoFactorRequired()
    return principal


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks, not looked up yet: the route sends the lookup with its first read
    (`fetch`, accounts/joined.py), one round trip fewer. It admits exactly whom
    `require_principal` admits, with the same answers (401, 2FA set-up) for the others.

    A personal access token, a read routed to the replica (the session is checked on the
    primary) and a principal another dependency already looked up take the usual way: the
    lookup, then the read alone."""

    request: Request
    primary: AsyncSession

    async def principal(self) -> Principal:
        return await require_principal(self.request, self.primary)

    async def fetch(
        self, db: AsyncSession, read: JoinedRead, **values: Any
    ) -> tuple[Principal, list[Record]]:
        """(the caller, the read's rows); raises as `require_principal` would."""
        token = session_token_from(self.request)
        state = self.request.scope.setdefault("state", {})
        if (
            db is not self.primary
            or "principal" in state
            or not token
            or len(token) > MAX_TOKEN_LENGTH
            or token.startswith(tokens.TOKEN_PREFIX)
        ):
            principal = await self.principal()
            user_id = principal.user.id
            bound = {**values, **dict.fromkeys(read.user_params, user_id)}
            return principal, await read.alone.fetch(db, **bound)
        rows = await read.joined.fetch(db, token_hash=hash_token(token), **values)
        # The session's row comes first; without one the read found nothing either.
        session = rows[0] if rows and rows[0][FOUND] is None else None
        found = await _session_principal(self.request, db, token, session)
        state["principal"] = found
        return _admitted(self.request, found), rows[1:]


async def caller(request: Request, db: DbSession) -> Caller:
    # A request that fails validation before the route's read is answered 401 first, as a
    # route with `CurrentUser` answers it (core/handlers.py).
    request.scope.setdefault("state", {})[VALIDATION_GATE] = _validation_gate
    return Caller(request, db)


async def _validation_gate(request: Request) -> AppError | None:
    """The answer for a caller whose request failed validation before being looked up: what
    `require_principal` would have answered first, or None to answer the validation error."""
    state = request.scope.setdefault("state", {})
    try:
        if "principal" not in state:
            database = request.app.state.database
            async with database.sessionmaker() as db, db.begin():
                # A token without the route's scope is refused here (403), as before.
                state["principal"] = await _look_up_principal(request, db)
        _admitted(request, state["principal"])
    except AppError as refusal:
        return refusal
    return None


async def require_staff(request: Request, db: DbSession) -> Principal:
    principal = await require_principal(request, db)
    if not principal.is_staff:
        raise NotFound()  # do not reveal that the endpoint exists
    return principal


async def require_admin(request: Request, db: DbSession) -> Principal:
    principal = await require_principal(request, db)
    if not principal.is_admin:
        raise NotFound()
    return principal


async def require_session(request: Request, db: DbSession) -> Principal:
    """Session only (the token API): a token cannot mint or list tokens."""
    principal = await require_principal(request, db)
    if principal.session is None:
        raise InsufficientScope()
    return principal


MaybeUser = Annotated[Principal | None, Depends(optional_principal)]
CurrentUser = Annotated[Principal, Depends(require_principal)]
# For a route that reads with `Caller.fetch`: declare it first, before the read's session.
CheckedWithRead = Annotated[Caller, Depends(caller)]
Agent = Annotated[Principal, Depends(require_staff)]
Admin = Annotated[Principal, Depends(require_admin)]
SessionUser = Annotated[Principal, Depends(require_session)]
