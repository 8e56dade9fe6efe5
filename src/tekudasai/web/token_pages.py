"""/settings/tokens: the signed-in user's personal access tokens (list, create, revoke)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tekudasai.accounts import tokens
from tekudasai.core.errors import AppError
from tekudasai.db.session import DbSession
from tekudasai.web.deps import PageUser, PostedForm
from tekudasai.web.flash import flash
from tekudasai.web.rendering import render

router = APIRouter()
PATH = "/settings/tokens"


async def _page(
    request: Request,
    db: DbSession,
    user_id: str,
    *,
    created: dict[str, Any] | None = None,
    error: str | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    rows = await tokens.list_tokens(db, user_id=user_id)
    return render(
        request,
        "settings/tokens.html",
        {
            "tokens": rows,
            "scopes": sorted(tokens.SCOPES),
            "created": created,
            "error": error,
            "values": values or {"name": "", "scopes": [], "expires_in_days": "90"},
        },
        status=status,
    )


@router.get(PATH)
async def tokens_page(request: Request, me: PageUser, db: DbSession) -> Response:
    return await _page(request, db, me.user.id)


@router.post(PATH)
async def create_token(
    request: Request, me: PageUser, db: DbSession, posted: PostedForm
) -> Response:
    name = str(posted.get("name", ""))
    scopes = [str(s) for s in posted.getlist("scopes")]
    expires = str(posted.get("expires_in_days", "")).strip()
    values: dict[str, Any] = {"name": name, "scopes": scopes, "expires_in_days": expires}
    try:
        days = int(expires) if expires else None
        if days is not None and not 1 <= days <= 3650:
            raise ValueError
    except ValueError:
        return await _page(
            request,
            db,
            me.user.id,
            error="Expiry: a whole number of days from 1 to 3650, or empty for never.",
            values=values,
            status=400,
        )
    try:
        row, raw = await tokens.create_token(
            db,
            user_id=me.user.id,
            name=values["name"],
            scopes=values["scopes"],
            expires_in_days=days,
        )
    except AppError as exc:
        return await _page(
            request, db, me.user.id, error=exc.message, values=values, status=exc.status_code
        )
    # Rendered, not redirected: the token is shown in this answer only, never stored for later.
    return await _page(request, db, me.user.id, created={"name": row.name, "token": raw})


@router.post(PATH + "/{token_id}/revoke")
async def revoke_token(
    request: Request, token_id: str, me: PageUser, db: DbSession, posted: PostedForm
) -> Response:
    await tokens.revoke_token(db, token_id=token_id, user_id=me.user.id)
    redirect = RedirectResponse(PATH, status_code=303)
    flash(request, redirect, "Token revoked.")
    return redirect
