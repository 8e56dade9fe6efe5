"""/api/me/notifications: e-mail preferences and the in-app feed (thin: rules in service.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from tekudasai.accounts.dependencies import CurrentUser, scopes
from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.schemas import ERROR_RESPONSES, ok
from tekudasai.db.session import DbSession, read_only
from tekudasai.notifications import service
from tekudasai.notifications.schemas import (
    FeedPage,
    MarkRead,
    OneMarkedRead,
    OnePreferences,
    PreferencesPatch,
)

router = APIRouter(
    prefix="/me/notifications",
    tags=["notifications"],
    responses=ERROR_RESPONSES,
    route_class=DirectRoute,
)

Cursor = Annotated[
    str | None, Query(max_length=64, description="'' or absent for the first page, then nextCursor")
]
Limit = Annotated[int, Query(ge=1, le=service.MAX_FEED_PAGE)]


@router.get("", openapi_extra=scopes("tickets:read"), response_model=OnePreferences)
@read_only
async def get_preferences(db: DbSession, me: CurrentUser) -> JSONResponse:
    email = await service.get_preferences(db, user_id=me.user.id, is_staff=me.is_staff)
    return JSONResponse(ok({"email": email}))


@router.patch("", openapi_extra=scopes("tickets:write"), response_model=OnePreferences)
async def update_preferences(
    body: PreferencesPatch, db: DbSession, me: CurrentUser
) -> JSONResponse:
    email = await service.update_preferences(
        db, user_id=me.user.id, is_staff=me.is_staff, changes=body.email
    )
    return JSONResponse(ok({"email": email}))


@router.get("/feed", openapi_extra=scopes("tickets:read"), response_model=FeedPage)
@read_only
async def feed(
    db: DbSession, me: CurrentUser, cursor: Cursor = None, limit: Limit = service.FEED_PAGE
) -> JSONResponse:
    page = await service.feed(db, user_id=me.user.id, cursor=cursor or None, limit=limit)
    return JSONResponse(
        {
            "status": "success",
            "data": [service.feed_view(row) for row in page.rows],
            "meta": {"unread": page.unread, "nextCursor": page.next_cursor},
        }
    )


@router.post("/read", openapi_extra=scopes("tickets:write"), response_model=OneMarkedRead)
async def mark_read(body: MarkRead, db: DbSession, me: CurrentUser) -> JSONResponse:
    marked = await service.mark_read(db, user_id=me.user.id, ids=body.ids, all=bool(body.all))
    unread = await service.unread_count(db, user_id=me.user.id)
    return JSONResponse(ok({"marked": marked, "unread": unread}))
