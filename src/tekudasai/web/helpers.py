"""Small helpers shared by the page modules: names for ids, query strings, paging, answers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from tekudasai.accounts import service as accounts_service
from tekudasai.accounts.models import Role, User
from tekudasai.core.crypto import PiiCipher

PAGE_SIZE = 20


async def names_of(
    db: AsyncSession, cipher: PiiCipher, ids: Iterable[str | None]
) -> dict[str, str]:
    """Decrypted display names for user ids (one query)."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = await db.execute(select(User.id, User.name_ciphertext).where(User.id.in_(wanted)))
    return {uid: cipher.decrypt(blob, context="user.name") for uid, blob in rows.all()}


async def staff_members(db: AsyncSession, cipher: PiiCipher) -> list[dict[str, str]]:
    """Agents and admins who can be assigned, by name."""
    people: list[User] = []
    for role in (Role.AGENT.value, Role.ADMIN.value):
        users, _ = await accounts_service.list_users(db, cipher, offset=0, limit=100, role=role)
        people.extend(u for u in users if not accounts_service.is_banned(u))
    staff = [
        {"id": u.id, "name": cipher.decrypt(u.name_ciphertext, context="user.name")} for u in people
    ]
    return sorted(staff, key=lambda s: s["name"].casefold())


def page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return max(1, min(int(raw), 100_000)) if raw.isdigit() else 1


def paging(page: int, total: int, limit: int = PAGE_SIZE) -> dict[str, int]:
    return {"page": page, "total": total, "total_pages": math.ceil(total / limit) if total else 0}


def query_builder(request: Request) -> Callable[..., str]:
    """`query(page=2)`: the current query string with some parameters replaced."""
    base = dict(request.query_params)

    def query(**changes: Any) -> str:
        merged = {**base, **{k: str(v) for k, v in changes.items()}}
        return urlencode({k: v for k, v in merged.items() if v not in ("", None)})

    return query


def here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def field_errors(errors: list[dict[str, Any]] | None) -> dict[str, str]:
    """Per-field messages (the first one per field) from an AppError's `errors`."""
    found: dict[str, str] = {}
    for item in errors or []:
        found.setdefault(str(item.get("field", "")), str(item.get("message", "")))
    return found


def answers_from(form: FormData, elements: list[dict[str, Any]]) -> dict[str, Any]:
    """The posted answers, shaped as the API's formResponse (the engine judges them)."""
    response: dict[str, Any] = {}
    for el in elements:
        name = el.get("name")
        kind = el.get("type")
        if not name or kind == "text-panel":
            continue
        key = f"answer.{name}"
        if kind == "multi-select":
            chosen = [str(v) for v in form.getlist(key)]
            if chosen:
                response[name] = chosen
        elif kind == "checkbox":
            response[name] = "true" if form.get(key) == "true" else "false"
        else:
            value = form.get(key)
            if isinstance(value, str) and value != "":
                response[name] = value
    return response


def timestamp(value: datetime | str) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
