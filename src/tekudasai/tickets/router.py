"""HTTP routes for tickets: thin, the rules live in the services."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.accounts.dependencies import Agent, CheckedWithRead, CurrentUser, Principal, scopes
from tekudasai.core.direct_routes import DirectRoute
from tekudasai.core.schemas import (
    ERROR_RESPONSES,
    Envelope,
    ok,
    ok_text,
    page_meta,
    page_text,
    query_model,
    query_parameters,
)
from tekudasai.core.state import Cipher
from tekudasai.db.session import DbSession, ReadDb, read_only
from tekudasai.tickets import audit, conversation, listing, service
from tekudasai.tickets.dependencies import TicketId, TicketsRateLimit
from tekudasai.tickets.errors import TicketNotFound
from tekudasai.tickets.models import Channel
from tekudasai.tickets.schemas import (
    AgentComment,
    AssignTicket,
    CommentOut,
    CreateTicket,
    LogOut,
    MyTicketsQuery,
    OneAgentTicket,
    OneTicket,
    OneTicketWithForm,
    QueueQuery,
    Reply,
    TicketPage,
    UpdateMyTicket,
    UpdateTicket,
    agent_ticket_view,
    comment_view,
    log_view,
    ticket_view,
)

# DirectRoute: the dependencies of these, the hottest routes, are solved from a plan made once
# (core/direct_routes.py).
router = APIRouter(
    prefix="/tickets", tags=["tickets"], responses=ERROR_RESPONSES, route_class=DirectRoute
)
my_tickets_query = query_model(MyTicketsQuery)
queue_query = query_model(QueueQuery)


def _channel(principal: Principal) -> Channel:
    """A personal access token is the API channel; a browser session is the web."""
    return Channel.API if principal.session is None else Channel.WEB


def _json(data: Any) -> JSONResponse:
    # A ready Response skips FastAPI's generic encoder: the views are plain JSON already.
    return JSONResponse(ok(data))


def _json_text(text: str) -> Response:
    return Response(text, media_type="application/json")


async def _list(db: AsyncSession, spec: listing.TicketFilter, query: MyTicketsQuery) -> Response:
    result = await listing.list_rendered(
        db, spec=spec, page=query.page, limit=query.limit, cursor=query.cursor
    )
    return _page_response(result, query)


def _page_response(result: listing.TicketPage[str], query: MyTicketsQuery) -> Response:
    cursor_mode = query.cursor is not None
    meta = page_meta(page=1 if cursor_mode else query.page, limit=query.limit, total=result.total)
    meta["nextCursor"] = result.next_cursor
    if result.total_capped:
        meta["pagination"]["totalCapped"] = True
    return _json_text(page_text(result.rows, meta))


# Every route returns a prebuilt Response: `response_model` documents it without FastAPI
# validating or encoding it again.

# -- the reporter's side (declared before /{id} so "my" is never read as an id) --------------


@router.get(
    "/my",
    openapi_extra=scopes("tickets:read") | query_parameters(MyTicketsQuery),
    response_model=TicketPage,
)
@read_only
async def list_my_tickets(
    caller: CheckedWithRead,
    db: ReadDb,
    query: Annotated[MyTicketsQuery, Depends(my_tickets_query)],
) -> Response:
    result = await listing.list_mine_rendered(
        db,
        caller,
        status=query.status,
        search=query.search,
        q=query.q,
        page=query.page,
        limit=query.limit,
        cursor=query.cursor,
    )
    return _page_response(result, query)


@router.post("/my", openapi_extra=scopes("tickets:write"), response_model=OneTicket)
async def create_ticket(
    body: CreateTicket, db: DbSession, me: CurrentUser, _: TicketsRateLimit
) -> JSONResponse:
    ticket = await service.create_ticket(
        db,
        reporter_id=me.user.id,
        form_id=body.form_id,
        summary=body.summary,
        form_response=body.form_response,
        channel=_channel(me),
    )
    return _json(ticket_view(ticket))


@router.get("/my/{id}", openapi_extra=scopes("tickets:read"), response_model=OneTicketWithForm)
@read_only
async def get_my_ticket(id: TicketId, caller: CheckedWithRead, db: ReadDb) -> Response:
    text = await service.get_callers_ticket_rendered(db, caller, ticket_id=id)
    return _json_text(ok_text(text))


@router.patch("/my/{id}", openapi_extra=scopes("tickets:write"), response_model=OneTicket)
async def update_my_ticket(
    id: TicketId, body: UpdateMyTicket, db: DbSession, me: CurrentUser, _: TicketsRateLimit
) -> JSONResponse:
    body.check_path_id(id)
    ticket = await service.reporter_update_response(
        db, ticket_id=id, reporter_id=me.user.id, form_response=body.form_response
    )
    return _json(ticket_view(ticket))


@router.get(
    "/my/{id}/logs", openapi_extra=scopes("tickets:read"), response_model=Envelope[list[LogOut]]
)
@read_only
async def my_ticket_logs(id: TicketId, db: DbSession, me: CurrentUser) -> JSONResponse:
    await service.ensure_ticket(db, ticket_id=id, reporter_id=me.user.id)
    rows = await audit.list_logs(db, ticket_id=id, include_internal=False)
    return _json([log_view(row) for row in rows])


@router.get(
    "/my/{id}/comments",
    openapi_extra=scopes("tickets:read"),
    response_model=Envelope[list[CommentOut]],
)
@read_only
async def my_ticket_comments(
    id: TicketId, db: DbSession, me: CurrentUser, cipher: Cipher
) -> JSONResponse:
    await service.ensure_ticket(db, ticket_id=id, reporter_id=me.user.id)
    rows = await conversation.list_comments(db, ticket_id=id, include_internal=False)
    return _json([comment_view(row, cipher) for row in rows])


@router.post(
    "/my/{id}/comments", openapi_extra=scopes("tickets:write"), response_model=Envelope[CommentOut]
)
async def reply_to_my_ticket(
    id: TicketId,
    body: Reply,
    db: DbSession,
    me: CurrentUser,
    cipher: Cipher,
    _: TicketsRateLimit,
) -> JSONResponse:
    row = await conversation.add_comment(
        db,
        ticket_id=id,
        author=me.user,
        body=body.body,
        as_reporter=True,
        channel=_channel(me),
    )
    return _json(comment_view(row, cipher))


# -- agents and admins ------------------------------------------------------------------------


@router.get(
    "",
    openapi_extra=scopes("tickets:read") | query_parameters(QueueQuery),
    response_model=TicketPage,
)
@read_only
async def list_tickets(
    agent: Agent, db: ReadDb, query: Annotated[QueueQuery, Depends(queue_query)]
) -> Response:
    assignee_id = agent.user.id if query.assignee_id == "me" else query.assignee_id
    tag = query.tag
    spec = listing.TicketFilter(
        status=query.status,
        search=query.search,
        q=query.q,
        assignee_id=assignee_id,
        priority=query.priority.value if query.priority else None,
        # Empty values filter nothing (an emptied search form sends them).
        team_id=query.team_id or None,
        tag=service.normal_tag(tag) or None if tag is not None else None,
        sort=query.sort,
    )
    return await _list(db, spec, query)


@router.get("/{id}", openapi_extra=scopes("tickets:read"), response_model=OneAgentTicket)
@read_only
async def get_ticket(id: TicketId, db: DbSession, _: Agent, cipher: Cipher) -> JSONResponse:
    row = await service.get_ticket(db, ticket_id=id)
    return _json(agent_ticket_view(row, cipher))


@router.patch("/{id}", openapi_extra=scopes("tickets:write"), response_model=OneTicket)
async def update_ticket(
    id: TicketId, body: UpdateTicket, db: DbSession, agent: Agent
) -> JSONResponse:
    body.check_path_id(id)
    ticket = await service.update_ticket(
        db,
        ticket_id=id,
        actor_id=agent.user.id,
        summary=body.summary,
        status=body.status.value if body.status else None,
        form_response=body.form_response,
        priority=body.priority.value if body.priority else None,
        team_id=body.team_id if "team_id" in body.model_fields_set else service.UNCHANGED,
        tags=body.tags,
    )
    return _json(ticket_view(ticket))


@router.delete("/{id}", openapi_extra=scopes("tickets:write"), response_model=OneTicket)
async def delete_ticket(id: TicketId, db: DbSession, agent: Agent) -> JSONResponse:
    ticket = await service.delete_ticket(db, ticket_id=id, actor_id=agent.user.id)
    return _json(ticket_view(ticket))


@router.post("/{id}/assign-toggle", openapi_extra=scopes("tickets:write"), response_model=OneTicket)
async def toggle_assignment(id: TicketId, db: DbSession, agent: Agent) -> JSONResponse:
    ticket = await service.toggle_assignment(db, ticket_id=id, actor_id=agent.user.id)
    return _json(ticket_view(ticket))


@router.post("/{id}/assign", openapi_extra=scopes("tickets:write"), response_model=OneTicket)
async def assign_ticket(
    id: TicketId, body: AssignTicket, db: DbSession, agent: Agent
) -> JSONResponse:
    ticket = await service.assign(
        db, ticket_id=id, actor_id=agent.user.id, assignee_id=body.assignee_id
    )
    return _json(ticket_view(ticket))


@router.post("/{id}/open-form", openapi_extra=scopes("tickets:write"), response_model=OneTicket)
async def open_form(id: TicketId, db: DbSession, agent: Agent) -> JSONResponse:
    ticket = await service.open_form(db, ticket_id=id, actor_id=agent.user.id)
    return _json(ticket_view(ticket))


@router.get(
    "/{id}/logs", openapi_extra=scopes("tickets:read"), response_model=Envelope[list[LogOut]]
)
@read_only
async def ticket_logs(id: TicketId, db: DbSession, _: Agent) -> JSONResponse:
    rows = await audit.list_logs(db, ticket_id=id, include_internal=True)
    if not rows:
        # No trail at all: the ticket never existed. A deleted ticket keeps its trail.
        raise TicketNotFound()
    return _json([log_view(row) for row in rows])


@router.get(
    "/{id}/comments",
    openapi_extra=scopes("tickets:read"),
    response_model=Envelope[list[CommentOut]],
)
@read_only
async def ticket_comments(id: TicketId, db: DbSession, _: Agent, cipher: Cipher) -> JSONResponse:
    await service.ensure_ticket(db, ticket_id=id)
    rows = await conversation.list_comments(db, ticket_id=id, include_internal=True)
    return _json([comment_view(row, cipher) for row in rows])


@router.post(
    "/{id}/comments", openapi_extra=scopes("tickets:write"), response_model=Envelope[CommentOut]
)
async def comment_on_ticket(
    id: TicketId, body: AgentComment, db: DbSession, agent: Agent, cipher: Cipher
) -> JSONResponse:
    row = await conversation.add_comment(
        db,
        ticket_id=id,
        author=agent.user,
        body=body.body,
        internal=body.internal,
        channel=_channel(agent),
    )
    return _json(comment_view(row, cipher))
