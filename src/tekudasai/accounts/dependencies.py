"""Who is asking: the session (cookie or bearer token) and the user, found in one query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import func, select

from tekudasai.accounts.models import Role, Session, User
from tekudasai.core.crypto import hash_token
from tekudasai.core.errors import NotFound, Unauthorized
from tekudasai.db.session import DbSession

SESSION_COOKIE = "tk.session_token"
STAFF_ROLES = frozenset({Role.AGENT.value, Role.ADMIN.value})


@dataclass(frozen=True)
class Principal:
    user: User
    session: Session

    @property
    def is_staff(self) -> bool:
        return self.user.role in STAFF_ROLES

    @property
    def is_admin(self) -> bool:
        return self.user.role == Role.ADMIN.value


def session_token_from(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        # better-auth signs the cookie as "<token>.<signature>"; the token is the part we hash.
        return cookie.split(".", 1)[0] if "." in cookie else cookie
    return None


async def optional_principal(request: Request, db: DbSession) -> Principal | None:
    token = session_token_from(request)
    if not token:
        return None
    row = (
        await db.execute(
            select(User, Session)
            .join(Session, Session.user_id == User.id)
            .where(Session.token_hash == hash_token(token), Session.expires_at > func.now())
        )
    ).first()
    if row is None or row[0].banned:
        return None
    principal = Principal(user=row[0], session=row[1])
    request.state.principal = principal
    return principal


async def require_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise Unauthorized()
    return principal


async def require_staff(principal: Annotated[Principal, Depends(require_principal)]) -> Principal:
    if not principal.is_staff:
        raise NotFound()  # do not reveal that the endpoint exists
    return principal


async def require_admin(principal: Annotated[Principal, Depends(require_principal)]) -> Principal:
    if not principal.is_admin:
        raise NotFound()
    return principal


MaybeUser = Annotated[Principal | None, Depends(optional_principal)]
CurrentUser = Annotated[Principal, Depends(require_principal)]
Agent = Annotated[Principal, Depends(require_staff)]
Admin = Annotated[Principal, Depends(require_admin)]
