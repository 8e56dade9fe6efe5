"""Agent pages: the ticket queue and the ticket workbench."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tekudasai.canned import service as canned_service
from tekudasai.core.errors import AppError
from tekudasai.core.state import Cipher
from tekudasai.db.session import DbSession
from tekudasai.forms import service as forms_service
from tekudasai.live import collision, feed
from tekudasai.teams import service as teams_service
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
    field_errors,
    here,
    names_of,
    page_number,
    paging,
    query_builder,
    staff_members,
)
from tekudasai.web.rendering import STATUS_LABELS, render
from tekudasai.web.service_level_views import (
    PRIORITY_LABELS,
    QUEUE_SORTS,
    sla_clock,
    sla_summary,
)

router = APIRouter(prefix="/agent")


@router.get("")
async def queue(request: Request, agent: PageAgent, db: DbSession, cipher: Cipher) -> Response:
    search = request.query_params.get("search", "").strip()[:200]
    status = request.query_params.get("status", "all")
    if status not in STATUSES:
        status = "all"
    assignee = request.query_params.get("assignee", "")[:64]
    assignee_id = {"": None, "me": agent.user.id}.get(assignee, assignee)
    # Service levels (#15): unknown values fall back to "any" / newest, as status does.
    priority = request.query_params.get("priority", "all")
    if priority not in PRIORITY_LABELS:
        priority = "all"
    team = request.query_params.get("team", "")[:64]
    tag = tickets_service.normal_tag(request.query_params.get("tag", "")[:50])
    sort = request.query_params.get("sort", "newest")
    if sort not in QUEUE_SORTS:
        sort = "newest"
    page = page_number(request)
    spec = listing.TicketFilter(
        status=status,
        search=search or None,
        assignee_id=assignee_id,
        priority=None if priority == "all" else priority,
        team_id=team or None,
        tag=tag or None,
        sort=QUEUE_SORTS[sort][1],
    )
    result = await listing.list_tickets(db, spec=spec, page=page, limit=PAGE_SIZE)
    now = datetime.now(UTC)
    tickets = []
    for r in result.rows:
        view = ticket_row_view(r)
        view["priority"] = r.ticket.priority
        view["tags"] = list(r.ticket.tags)
        view["sla"] = sla_summary(r.ticket, now)
        tickets.append(view)
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
            "priority": priority,
            "team": team,
            "tag": tag,
            "sort": sort,
            "sorts": {key: label for key, (label, _) in QUEUE_SORTS.items()},
            "priority_labels": PRIORITY_LABELS,
            "teams": await teams_service.list_teams(db),
            "agents": await staff_members(db, cipher),
            "here": here(request),
        },
    )


@router.get("/tickets/{ticket_id}")
async def workbench(
    request: Request, ticket_id: str, agent: PageAgent, db: DbSession, cipher: Cipher
) -> Response:
    tid = _ticket_id(ticket_id)
    context = await _workbench(db, cipher, tid, agent_id=agent.user.id)
    # Without JavaScript the canned picker is a GET form: the chosen reply comes back filled
    # into the message box.
    chosen = request.query_params.get("canned", "")[:64]
    context["prefill"] = next((c["body"] for c in context["canned"] if c["id"] == chosen), "")
    return render(request, "agent/ticket.html", context)


async def _workbench(
    db: DbSession, cipher: Any, tid: int, *, agent_id: str | None = None
) -> dict[str, Any]:
    row = await tickets_service.get_ticket(db, ticket_id=tid)
    comments = await conversation.list_comments(db, ticket_id=tid, include_internal=True)
    logs = await audit.list_logs(db, ticket_id=tid, include_internal=True)
    reporter = row.reporter
    reporter_view = (
        {
            "name": cipher.decrypt(reporter.name_ciphertext, context="user.name"),
            "email": cipher.decrypt(reporter.email_ciphertext, context="user.email"),
            "role": reporter.role,
        }
        if reporter
        else {"name": "Deleted user", "email": "", "role": None}
    )
    ticket = row.ticket
    teams = await teams_service.list_teams(db)
    return {
        "ticket": ticket,
        "form": forms_service.form_view(row.form, row.version),
        "comments": comment_views(comments, cipher),
        "logs": await log_views(db, cipher, logs),
        "agents": await staff_members(db, cipher),
        "allowed_statuses": {s.value for s in workflow.TRANSITIONS[TicketStatus(ticket.status)]},
        "reporter": reporter_view,
        "priority_labels": PRIORITY_LABELS,
        "teams": teams,
        "team_name": next((t["name"] for t in teams if t["id"] == ticket.team_id), None),
        "sla": await sla_clock(db, ticket),
        "canned": await _canned(db, cipher, ticket, str(reporter_view["name"]), agent_id),
        "fields": {
            "priority": ticket.priority,
            "team_id": ticket.team_id or "",
            "tags": ", ".join(ticket.tags),
        },
        "field_errors": {},
        "prefill": "",
    }


async def _canned(
    db: DbSession, cipher: Any, ticket: Any, reporter_name: str, agent_id: str | None
) -> list[dict[str, str]]:
    """The agent's visible canned replies, their placeholders filled for this ticket."""
    if agent_id is None:
        return []
    rows = await canned_service.list_for(db, user_id=agent_id)
    if not rows:
        return []
    agent_name = (await names_of(db, cipher, [agent_id])).get(agent_id, "")
    values = {
        "ticket.id": str(ticket.id),
        "ticket.summary": ticket.summary,
        "reporter.name": reporter_name,
        "agent.name": agent_name,
    }
    return [
        {"id": row.id, "title": row.title, "body": canned_service.fill(row.body, values)}
        for row in rows
    ]


@router.post("/tickets/{ticket_id}/fields")
async def change_fields(
    request: Request,
    ticket_id: str,
    agent: PageAgent,
    db: DbSession,
    posted: PostedForm,
    cipher: Cipher,
) -> Response:
    """Priority, team and tags in one form; refusals shown next to their fields."""
    tid = _ticket_id(ticket_id)
    priority = str(posted.get("priority", ""))
    team_id = str(posted.get("team_id", "")) or None
    tags_text = str(posted.get("tags", ""))[:5000]
    tags = [t for t in tags_text.split(",") if t.strip()]
    errors: dict[str, str] = {}
    if priority not in PRIORITY_LABELS:
        errors["priority"] = "Pick a priority."
    if not errors:
        try:
            await tickets_service.update_ticket(
                db,
                ticket_id=tid,
                actor_id=agent.user.id,
                priority=priority,
                team_id=team_id,
                tags=tags,
            )
        except AppError as exc:
            if exc.status_code == 404:
                raise
            errors = {
                {"teamId": "team_id"}.get(k, k): v for k, v in field_errors(exc.errors).items()
            } or {"priority": exc.message}
    if errors:
        # Refused before anything changed (the service checks its input first).
        context = await _workbench(db, cipher, tid, agent_id=agent.user.id)
        context["fields"] = {"priority": priority, "team_id": team_id or "", "tags": tags_text}
        context["field_errors"] = errors
        return render(request, "agent/ticket.html", context, status=400)
    redirect = RedirectResponse(f"/agent/tickets/{tid}", status_code=303)
    flash(request, redirect, "Priority, team and tags saved.")
    return redirect


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
            context = await _workbench(db, cipher, tid, agent_id=agent.user.id)
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
