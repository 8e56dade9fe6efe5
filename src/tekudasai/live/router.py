"""HTTP routes for live updates: the event stream and presence on a ticket."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from tekudasai.accounts.dependencies import Agent, CurrentUser, scopes
from tekudasai.accounts.limits import rate_limit
from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.errors import AppError
from tekudasai.core.schemas import ERROR_RESPONSES, Envelope, ok
from tekudasai.core.state import Cipher
from tekudasai.db.session import DbSession, read_only
from tekudasai.live import feed, presence
from tekudasai.live.hub import Hub
from tekudasai.live.stream import EventStream
from tekudasai.tickets.dependencies import TicketId

router = APIRouter(tags=["live"], responses=ERROR_RESPONSES, route_class=DirectRoute)

PresenceRateLimit = Annotated[None, Depends(rate_limit("presence"))]


class LiveUnavailable(AppError):
    status_code = 503
    code = "LIVE_UNAVAILABLE"
    message = "Live updates are not running in this process."


class NotAnEventStreamClient(AppError):
    status_code = 406
    code = "NOT_ACCEPTABLE"
    message = "This is a server-sent event stream: send Accept: text/event-stream."


class Presence(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: presence.PresenceState


class PresentOut(BaseModel):
    ticketId: int
    userId: str
    name: str
    state: str
    expiresAt: str


class PresenceOut(BaseModel):
    me: PresentOut
    others: list[PresentOut]


EVENT_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-sent events: `ticket.created`, `ticket.updated`, "
        "`comment.created`, `notification`, `presence`; each `data:` is one JSON object.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def hub_of(request: Request) -> Hub:
    hub: Hub | None = getattr(request.app.state, "live_hub", None)
    if hub is None:
        raise LiveUnavailable()
    return hub


@router.get(
    "/events",
    openapi_extra=scopes("tickets:read"),
    response_class=Response,
    responses=EVENT_STREAM_DOC,
)
@read_only
async def events(
    request: Request,
    response: Response,
    db: DbSession,
    me: CurrentUser,
    cipher: Cipher,
    last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> EventStream:
    """What this user may see, live; resume with `Last-Event-ID` (5 minutes are replayed).
    Needs `Accept: text/event-stream` (EventSource sends it): a client that did not ask for a
    never-ending answer gets 406 instead of one."""
    if "text/event-stream" not in request.headers.get("accept", ""):
        raise NotAnEventStreamClient()
    hub = hub_of(request)
    settings = request.app.state.settings
    # Subscribed before the replay is read, so nothing falls between the two; the stream
    # skips live events the replay already sent.
    sub = hub.subscribe(
        user_id=me.user.id,
        role=me.user.role,
        session_id=me.session.id if me.session else None,
        token_id=me.token_id,
    )
    replay: list[tuple[int | None, bytes]] = []
    try:
        after = feed.parse_last_event_id(last_event_id)
        if after is not None:
            replay = [
                (e.id, e.chunk) for e in await feed.since(db, cipher, after) if sub.may_see(e)
            ]
    except BaseException:
        hub.unsubscribe(sub)
        raise
    return EventStream(
        hub,
        sub,
        replay,
        send_timeout_s=settings.live_send_timeout_s,
        # A renewed session's cookie, set by the sign-in check on the temporal response.
        extra_headers=[(k, v) for k, v in response.headers.raw if k == b"set-cookie"],
    )


@router.post(
    "/tickets/{id}/presence",
    openapi_extra=scopes("tickets:read"),
    response_model=Envelope[PresenceOut],
)
async def announce_presence(
    id: TicketId,
    body: Presence,
    request: Request,
    db: DbSession,
    agent: Agent,
    cipher: Cipher,
    _: PresenceRateLimit,
) -> JSONResponse:
    """Say you are viewing or replying to the ticket (repeat every ≤ 30 s while true)."""
    me, others = await presence.announce(
        db,
        cipher,
        ticket_id=id,
        user_id=agent.user.id,
        name=cipher.decrypt(agent.user.name_ciphertext, context="user.name"),
        state=body.state,
        ttl_s=request.app.state.settings.live_presence_ttl_s,
    )
    return JSONResponse(ok({"me": me.view(id), "others": [o.view(id) for o in others]}))
