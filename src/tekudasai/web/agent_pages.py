"""Agent pages: the ticket queue and the ticket workbench."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tekudasai.core.errors import AppError
from tekudasai.core.state import Cipher
from tekudasai.db.session import DbSession
from tekudasai.forms import service as forms_service
from tekudasai.live import collision, feed
from tekudasai.tickets import audit, conversation, listing, workflow
from tekudasai.tickets import service as tickets_service
from tekudasai.tickets.models import TicketStatus
from tekudasai.web.customer_pages import (
    STATUSES,
    _ticket_id,
    comment_views,
    log_views,
    ticket_row_view,
)
from tekudasai.web.deps import PageAgent, PageRedirect, PostedForm, safe_next
from tekudasai.web.flash import flash
from tekudasai.web.helpers import (
    PAGE_SIZE,
    here,
    names_of,
    page_number,
    paging,
    query_builder,
    staff_members,
)
from tekudasai.web.rendering import STATUS_LABELS, render

router = APIRouter(prefix="/agent")


@router.get("")
async def queue(request: Request, agent: PageAgent, db: DbSession, cipher: Cipher) -> Response:
    search = request.query_params.get("search", "").strip()[:200]
    status = request.query_params.get("status", "all")
    if status not in STATUSES:
        status = "all"
    assignee = request.query_params.get("assignee", "")[:64]
    assignee_id = {"": None, "me": agent.user.id}.get(assignee, assignee)
    page = page_number(request)
    spec = listing.TicketFilter(status=status, search=search or None, assignee_id=assignee_id)
    result = await listing.list_tickets(db, spec=spec, page=page, limit=PAGE_SIZE)
    tickets = [ticket_row_view(r) for r in result.rows]
    names = await names_of(db, cipher, (t["assignee_id"] for t in tickets))
    for t in tickets:
        t["assignee_name"] = names.get(t["assignee_id"] or "")
    return render(
        request,
        "agent/tickets.html",
        {
            "tickets": tickets,
            "p": paging(page, result.total),
            "query": query_builder(request),
            "search": search,
            "status": status,
            "assignee": assignee,
            "agents": await staff_members(db, cipher),
            "here": here(request),
        },
    )


@router.get("/tickets/{ticket_id}")
async def workbench(
    request: Request, ticket_id: str, agent: PageAgent, db: DbSession, cipher: Cipher
) -> Response:
    tid = _ticket_id(ticket_id)
    return render(request, "agent/ticket.html", await _workbench(db, cipher, tid))


async def _workbench(db: DbSession, cipher: Any, tid: int) -> dict[str, Any]:
    row = await tickets_service.get_ticket(db, ticket_id=tid)
    comments = await conversation.list_comments(db, ticket_id=tid, include_internal=True)
    logs = await audit.list_logs(db, ticket_id=tid, include_internal=True)
    reporter = row.reporter
    return {
        "ticket": row.ticket,
        "form": forms_service.form_view(row.form, row.version),
        "comments": comment_views(comments, cipher),
        "logs": await log_views(db, cipher, logs),
        "agents": await staff_members(db, cipher),
        "allowed_statuses": {
            s.value for s in workflow.TRANSITIONS[TicketStatus(row.ticket.status)]
        },
        "reporter": {
            "name": cipher.decrypt(reporter.name_ciphertext, context="user.name"),
            "email": cipher.decrypt(reporter.email_ciphertext, context="user.email"),
            "role": reporter.role,
        }
        if reporter
        else {"name": "Deleted user", "email": "", "role": None},
    }


async def _act(
    request: Request, back: str, action: Awaitable[Any], success: str
) -> RedirectResponse:
    """Run a service call; success → flash and back; a domain error → flash the reason."""
    try:
        await action
    except AppError as exc:
        if exc.status_code == 404:
            raise
        raise PageRedirect(back, exc.message, "error") from exc
    redirect = RedirectResponse(back, status_code=303)
    flash(request, redirect, success)
    return redirect


@router.post("/tickets/{ticket_id}/status")
async def change_status(
    request: Request, ticket_id: str, agent: PageAgent, db: DbSession, posted: PostedForm
) -> Response:
    tid = _ticket_id(ticket_id)
    status = str(posted.get("status", ""))
    if status not in STATUSES:
        raise PageRedirect(f"/agent/tickets/{tid}", "Pick a valid status.", "error")
    return await _act(
        request,
        f"/agent/tickets/{tid}",
        tickets_service.update_ticket(db, ticket_id=tid, actor_id=agent.user.id, status=status),
        f"Status set to {STATUS_LABELS[status]}.",
    )


@router.post("/tickets/{ticket_id}/assign")
async def assign(
    request: Request, ticket_id: str, agent: PageAgent, db: DbSession, posted: PostedForm
) -> Response:
    tid = _ticket_id(ticket_id)
    assignee = str(posted.get("assignee_id", "")) or None
    return await _act(
        request,
        f"/agent/tickets/{tid}",
        tickets_service.assign(db, ticket_id=tid, actor_id=agent.user.id, assignee_id=assignee),
        "Ticket assigned." if assignee else "Ticket unassigned.",
    )


@router.post("/tickets/{ticket_id}/assign-to-me")
async def assign_to_me(
    request: Request, ticket_id: str, agent: PageAgent, db: DbSession, posted: PostedForm
) -> Response:
    tid = _ticket_id(ticket_id)
    back = safe_next(str(posted.get("next", "")), default="/agent")
    return await _act(
        request,
        back,
        tickets_service.assign(
            db, ticket_id=tid, actor_id=agent.user.id, assignee_id=agent.user.id
        ),
        f"Ticket #{tid} is yours.",
    )


@router.post("/tickets/{ticket_id}/open-form")
async def open_form(
    request: Request, ticket_id: str, agent: PageAgent, db: DbSession, posted: PostedForm
) -> Response:
    tid = _ticket_id(ticket_id)
    return await _act(
        request,
        f"/agent/tickets/{tid}",
        tickets_service.open_form(db, ticket_id=tid, actor_id=agent.user.id),
        "The customer can now edit the answers.",
    )


@router.post("/tickets/{ticket_id}/comment")
async def comment(
    request: Request,
    ticket_id: str,
    agent: PageAgent,
    db: DbSession,
    posted: PostedForm,
    cipher: Cipher,
) -> Response:
    tid = _ticket_id(ticket_id)
    internal = posted.get("internal") == "true"
    body = str(posted.get("body", ""))
    if not internal and posted.get("confirm") != "1":
        # Collision: someone else replied to the customer since this page was rendered (the
        # form carries the last comment id it showed). Show their reply and ask first.
        seen = feed.parse_last_event_id(str(posted.get("seen", "")))
        newer = (
            await collision.newer_public_replies(db, ticket_id=tid, seen=seen, me=agent.user.id)
            if seen is not None
            else []
        )
        if newer:
            context = await _workbench(db, cipher, tid)
            context["collision"] = {"comments": comment_views(newer, cipher), "body": body}
            return render(request, "agent/ticket.html", context, status=409)
    return await _act(
        request,
        f"/agent/tickets/{tid}",
        conversation.add_comment(
            db,
            ticket_id=tid,
            author=agent.user,
            body=body,
            internal=internal,
        ),
        "Internal note added." if internal else "Reply sent to the customer.",
    )
