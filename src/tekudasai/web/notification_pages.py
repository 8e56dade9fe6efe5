"""Pages: /settings/notifications (e-mail switches), /notifications (the in-app feed) and the
one-click unsubscribe target that notification mails name in List-Unsubscribe."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from tekudasai.accounts.models import User
from tekudasai.accounts.service import is_banned
from tekudasai.core.errors import ValidationFailed
from tekudasai.db.session import DbSession
from tekudasai.notifications import service
from tekudasai.notifications.compose import SETTINGS_PATH, UNSUBSCRIBE_PATH
from tekudasai.notifications.kinds import LABELS, Kind, kinds_for
from tekudasai.notifications.unsubscribe import MAX_TOKEN_LENGTH, read_token
from tekudasai.web.deps import PageUser, PostedForm
from tekudasai.web.flash import flash
from tekudasai.web.rendering import render, secure_page

router = APIRouter(include_in_schema=False)
FEED_PATH = "/notifications"
Token = Annotated[str, Query(max_length=MAX_TOKEN_LENGTH)]
Cursor = Annotated[str | None, Query(max_length=64)]


# -- preferences -----------------------------------------------------------------------------


@router.get(SETTINGS_PATH)
async def settings_page(request: Request, me: PageUser, db: DbSession) -> Response:
    current = await service.get_preferences(db, user_id=me.user.id, is_staff=me.is_staff)
    choices = [
        {"name": kind.value, "label": LABELS[kind], "on": current[kind.value]}
        for kind in kinds_for(me.is_staff)
    ]
    return render(request, "settings/notifications.html", {"choices": choices})


@router.post(SETTINGS_PATH)
async def save_settings(
    request: Request, me: PageUser, db: DbSession, posted: PostedForm
) -> Response:
    # A checkbox that is not ticked is not sent: every switch the user sees is in the form.
    ticked = {str(v) for v in posted.getlist("email")}
    unknown = ticked - {k.value for k in kinds_for(me.is_staff)}
    if unknown:
        name = sorted(unknown)[0]
        raise ValidationFailed(
            f"Unknown setting: {name}", errors=[{"field": "email", "message": "Unknown setting"}]
        )
    changes = {kind.value: kind.value in ticked for kind in kinds_for(me.is_staff)}
    await service.update_preferences(db, user_id=me.user.id, is_staff=me.is_staff, changes=changes)
    redirect = RedirectResponse(SETTINGS_PATH, status_code=303)
    flash(request, redirect, "Notification settings saved.")
    return redirect


# -- the feed --------------------------------------------------------------------------------


@router.get(FEED_PATH)
async def feed_page(
    request: Request, me: PageUser, db: DbSession, cursor: Cursor = None
) -> Response:
    page = await service.feed(db, user_id=me.user.id, cursor=cursor or None)
    items = [
        {
            **service.feed_view(row),
            "created_at": row.created_at,
            "href": _ticket_href(row.kind, row.ticket_id, is_staff=me.is_staff),
        }
        for row in page.rows
    ]
    return render(
        request,
        "notifications/feed.html",
        {"items": items, "unread": page.unread, "next_cursor": page.next_cursor},
    )


def _ticket_href(kind: str, ticket_id: int, *, is_staff: bool) -> str:
    customer_kinds = {Kind.TICKET_CREATED.value, Kind.AGENT_REPLY.value, Kind.STATUS_CHANGED.value}
    if kind in customer_kinds or not is_staff:
        return f"/tickets/{ticket_id}"
    return f"/agent/tickets/{ticket_id}"


@router.post(FEED_PATH + "/read")
async def mark_read(request: Request, me: PageUser, db: DbSession, posted: PostedForm) -> Response:
    raw_ids = [str(v) for v in posted.getlist("id")]
    if raw_ids:
        ids = [int(v) for v in raw_ids if v.isascii() and v.isdigit() and len(v) < 19]
        marked = await service.mark_read(db, user_id=me.user.id, ids=ids)
    else:
        marked = await service.mark_read(db, user_id=me.user.id, all=True)
    redirect = RedirectResponse(FEED_PATH, status_code=303)
    flash(request, redirect, "Marked as read." if marked else "Nothing new to mark.")
    return redirect


# -- one-click unsubscribe (RFC 8058) --------------------------------------------------------


async def _token_user(db: DbSession, request: Request, token: str) -> tuple[User, Kind] | None:
    found = read_token(request.app.state.settings.master_secret(), token)
    if found is None:
        return None
    user = await db.get(User, found[0])
    if user is None or is_banned(user):
        return None
    return user, found[1]


@router.get(UNSUBSCRIBE_PATH)
async def unsubscribe_page(request: Request, db: DbSession, token: Token = "") -> Response:
    """Shows what the link turns off, with a button: a GET changes nothing (mail scanners
    follow links)."""
    found = await _token_user(db, request, token)
    if found is None:
        return render(request, "notifications/unsubscribe.html", {"valid": False}, status=400)
    context = {"valid": True, "done": False, "label": LABELS[found[1]], "token": token}
    return render(request, "notifications/unsubscribe.html", context)


@router.post(UNSUBSCRIBE_PATH)
async def unsubscribe(request: Request, db: DbSession, token: Token = "") -> Response:
    """The one-click POST (a mail provider's, body `List-Unsubscribe=One-Click`, no session) or
    the page's button. The signed token is the authority: it turns one kind off for one user."""
    found = await _token_user(db, request, token)
    browser = "text/html" in request.headers.get("accept", "")
    if found is None:
        if browser:
            return render(request, "notifications/unsubscribe.html", {"valid": False}, status=400)
        response: Response = PlainTextResponse("This unsubscribe link is not valid.", 400)
        secure_page(response)
        return response
    user, kind = found
    await service.set_preferences(db, user_id=user.id, changes={kind: False})
    if browser:
        context = {"valid": True, "done": True, "label": LABELS[kind], "token": token}
        return render(request, "notifications/unsubscribe.html", context)
    response = PlainTextResponse("Unsubscribed.")
    secure_page(response)
    return response
