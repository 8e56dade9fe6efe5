"""Customer pages: my tickets, pick a form, fill it, view a ticket, reply, edit answers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tekudasai.core.errors import AppError, NotFound, RateLimited, ValidationFailed
from tekudasai.core.state import Cipher
from tekudasai.db.ratelimit import enforce
from tekudasai.db.session import DbSession
from tekudasai.forms import service as forms_service
from tekudasai.forms.markdown import render_markdown
from tekudasai.tickets import audit, conversation, listing
from tekudasai.tickets import service as tickets_service
from tekudasai.tickets.models import TicketStatus
from tekudasai.web.deps import PageRedirect, PageUser, PostedForm
from tekudasai.web.flash import flash
from tekudasai.web.helpers import (
    PAGE_SIZE,
    answers_from,
    field_errors,
    names_of,
    page_number,
    paging,
    query_builder,
)
from tekudasai.web.rendering import render

router = APIRouter()
STATUSES = {s.value for s in TicketStatus}


def ticket_row_view(row: tickets_service.TicketRow) -> dict[str, Any]:
    t = row.ticket
    return {
        "id": t.id,
        "summary": t.summary,
        "status": t.status,
        "form_name": row.version.name,
        "assignee_id": t.assignee_id,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    }


def comment_views(rows: list[conversation.CommentRow], cipher: Any) -> list[dict[str, Any]]:
    views = []
    for row in rows:
        author = row.author
        views.append(
            {
                "id": row.comment.id,
                "body": row.comment.body,
                "internal": row.comment.internal,
                "channel": row.comment.channel,
                "created_at": row.comment.created_at,
                "author_name": cipher.decrypt(author.name_ciphertext, context="user.name")
                if author
                # An internal note from mail nobody here sent (inbound/): not a deleted user.
                else "Unknown sender"
                if row.comment.author_id is None and row.comment.channel == "email"
                else "Deleted user",
                "author_role": author.role if author else "user",
            }
        )
    return views


async def log_views(db: DbSession, cipher: Any, rows: list[Any]) -> list[dict[str, Any]]:
    names = await names_of(db, cipher, (r.user_id for r in rows))
    return [
        {
            "action": r.action,
            "action_type": r.action_type,
            "created_at": r.created_at,
            "actor_name": names.get(r.user_id or "", ""),
        }
        for r in rows
    ]


@router.get("/")
async def my_tickets(request: Request, me: PageUser, db: DbSession) -> Response:
    search = request.query_params.get("search", "").strip()[:200]
    status = request.query_params.get("status", "all")
    if status not in STATUSES:
        status = "all"
    page = page_number(request)
    spec = listing.TicketFilter(reporter_id=me.user.id, status=status, search=search or None)
    result = await listing.list_tickets(db, spec=spec, page=page, limit=PAGE_SIZE)
    return render(
        request,
        "customer/my_tickets.html",
        {
            "tickets": [ticket_row_view(r) for r in result.rows],
            "p": paging(page, result.total),
            "query": query_builder(request),
            "search": search,
            "status": status,
        },
    )


@router.get("/new-ticket")
async def pick_form(request: Request, me: PageUser, db: DbSession) -> Response:
    forms, _ = await forms_service.list_forms(db, enabled_only=True, page=1, limit=100)
    return render(request, "customer/pick_form.html", {"forms": forms})


async def _enabled_form(db: DbSession, form_id: str | None) -> dict[str, Any]:
    if not form_id:
        raise PageRedirect("/new-ticket", "Pick a form first.", "info")
    return await forms_service.get_form_view(db, form_id=form_id, enabled_only=True)


def _ticket_form_page(
    request: Request,
    form: dict[str, Any],
    *,
    values: dict[str, Any],
    errors: dict[str, str],
    summary: str = "",
    status: int = 200,
) -> Response:
    return render(
        request,
        "customer/ticket_form.html",
        {
            "form": form,
            "heading": form["name"],
            "action": f"/new-ticket-form?formId={form['id']}",
            "with_summary": True,
            "summary": summary,
            "values": values,
            "errors": errors,
            "markdown": render_markdown,
            "submit_label": "Submit ticket",
            "back_href": "/new-ticket",
            "back_label": "Choose another form",
            "form_error": (errors.get("") or "Please correct the marked fields.")
            if errors
            else None,
        },
        status=status,
    )


@router.get("/new-ticket-form")
async def ticket_form(request: Request, me: PageUser, db: DbSession) -> Response:
    form = await _enabled_form(db, request.query_params.get("formId"))
    return _ticket_form_page(request, form, values={}, errors={})


@router.post("/new-ticket-form")
async def file_ticket(
    request: Request, me: PageUser, db: DbSession, posted: PostedForm
) -> Response:
    form = await _enabled_form(db, request.query_params.get("formId"))
    summary = str(posted.get("summary", ""))
    response = answers_from(posted, form["elements"])
    errors: dict[str, str] = {}
    try:
        await limit_tickets(request, me.user.id)
    except RateLimited as exc:
        return _ticket_form_page(
            request, form, values=response, errors={"": exc.message}, summary=summary, status=429
        )
    try:
        tickets_service.clean_summary(summary)
    except ValidationFailed as exc:
        errors.update(field_errors(exc.errors))
        # Show the answers' problems in the same round trip.
        version = await forms_service.get_form_version(
            db, form_id=form["id"], version=form["version"]
        )
        try:
            await forms_service.validate_for_ticket(
                db,
                plan=forms_service.plan_of(version),
                response=response,
                reporter_id=me.user.id,
            )
        except AppError as invalid:
            errors.update(field_errors(invalid.errors))
    else:
        try:
            ticket = await tickets_service.create_ticket(
                db,
                reporter_id=me.user.id,
                form_id=form["id"],
                summary=summary,
                form_response=response,
            )
        except AppError as exc:
            if exc.status_code == 404:
                raise
            errors.update(field_errors(exc.errors) or {"": exc.message})
        else:
            redirect = RedirectResponse(f"/tickets/{ticket.id}", status_code=303)
            flash(request, redirect, f"Ticket #{ticket.id} filed. We will get back to you.")
            return redirect
    return _ticket_form_page(
        request, form, values=response, errors=errors, summary=summary, status=400
    )


async def limit_tickets(request: Request, user_id: str) -> None:
    """The API's `tickets` rate limit applies to the same actions done through pages."""
    await enforce(request, name="tickets", key=f"user:{user_id}")


def _ticket_id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 10:
        raise NotFound()
    return int(raw)


@router.get("/tickets/{ticket_id}")
async def my_ticket(
    request: Request, ticket_id: str, me: PageUser, db: DbSession, cipher: Cipher
) -> Response:
    tid = _ticket_id(ticket_id)
    row = await tickets_service.get_my_ticket(db, ticket_id=tid, reporter_id=me.user.id)
    comments = await conversation.list_comments(db, ticket_id=tid, include_internal=False)
    logs = await audit.list_logs(db, ticket_id=tid, include_internal=False)
    assignee = await names_of(db, cipher, [row.ticket.assignee_id])
    return render(
        request,
        "customer/ticket.html",
        {
            "ticket": row.ticket,
            "form": forms_service.form_view(row.form, row.version),
            "comments": comment_views(comments, cipher),
            "logs": await log_views(db, cipher, logs),
            "assignee_name": assignee.get(row.ticket.assignee_id or ""),
        },
    )


@router.post("/tickets/{ticket_id}/reply")
async def reply(
    request: Request, ticket_id: str, me: PageUser, db: DbSession, posted: PostedForm
) -> Response:
    tid = _ticket_id(ticket_id)
    back = f"/tickets/{tid}"
    try:
        await limit_tickets(request, me.user.id)
        await conversation.add_comment(
            db, ticket_id=tid, author=me.user, body=str(posted.get("body", "")), as_reporter=True
        )
    except AppError as exc:
        if exc.status_code == 404:
            raise
        raise PageRedirect(back, exc.message, "error") from exc
    redirect = RedirectResponse(back + "#conv-h", status_code=303)
    flash(request, redirect, "Reply sent.")
    return redirect


def _edit_page(
    request: Request,
    row: tickets_service.TicketRow,
    *,
    values: dict[str, Any],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    form = forms_service.form_view(row.form, row.version)
    tid = row.ticket.id
    return render(
        request,
        "customer/ticket_form.html",
        {
            "form": form,
            "heading": f"Update your answers for #{tid}",
            "action": f"/tickets/{tid}/edit",
            "with_summary": False,
            "values": values,
            "errors": errors,
            "markdown": render_markdown,
            "submit_label": "Save answers",
            "back_href": f"/tickets/{tid}",
            "back_label": f"Back to ticket #{tid}",
            "form_error": (errors.get("") or "Please correct the marked fields.")
            if errors
            else None,
        },
        status=status,
    )


@router.get("/tickets/{ticket_id}/edit")
async def edit_answers(request: Request, ticket_id: str, me: PageUser, db: DbSession) -> Response:
    tid = _ticket_id(ticket_id)
    row = await tickets_service.get_my_ticket(db, ticket_id=tid, reporter_id=me.user.id)
    if not row.ticket.form_open:
        raise PageRedirect(f"/tickets/{tid}", "The answers can no longer be edited.", "info")
    return _edit_page(request, row, values=dict(row.ticket.form_response), errors={})


@router.post("/tickets/{ticket_id}/edit")
async def save_answers(
    request: Request, ticket_id: str, me: PageUser, db: DbSession, posted: PostedForm
) -> Response:
    tid = _ticket_id(ticket_id)
    row = await tickets_service.get_my_ticket(db, ticket_id=tid, reporter_id=me.user.id)
    response = answers_from(posted, row.version.elements)
    try:
        await limit_tickets(request, me.user.id)
        await tickets_service.reporter_update_response(
            db, ticket_id=tid, reporter_id=me.user.id, form_response=response
        )
    except AppError as exc:
        if exc.code == "FORM_CLOSED":
            raise PageRedirect(f"/tickets/{tid}", exc.message, "error") from exc
        if exc.status_code == 404:
            raise
        errors = field_errors(exc.errors) or {"": exc.message}
        return _edit_page(request, row, values=response, errors=errors, status=400)
    redirect = RedirectResponse(f"/tickets/{tid}", status_code=303)
    flash(request, redirect, "Your answers were updated.")
    return redirect
