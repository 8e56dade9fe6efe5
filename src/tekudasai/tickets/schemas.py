"""Request bodies and the JSON shapes of tickets, comments and log rows (the original's)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tekudasai.accounts.models import User
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.schemas import PathIdInput, StrictInput, iso
from tekudasai.forms import service as forms_service
from tekudasai.tickets.conversation import CommentRow
from tekudasai.tickets.models import Ticket, TicketLog, TicketStatus
from tekudasai.tickets.service import TicketRow

StatusFilter = Literal["all", "open", "in_progress", "pending", "resolved", "closed"]


class CreateTicket(StrictInput):
    form_id: str = Field(min_length=1, max_length=200)
    summary: str
    form_response: dict[str, Any] = Field(default_factory=dict)


class UpdateMyTicket(PathIdInput):
    form_response: dict[str, Any]


class UpdateTicket(PathIdInput):
    summary: str | None = None
    status: TicketStatus | None = None
    form_response: dict[str, Any] | None = None


class AssignTicket(StrictInput):
    assignee_id: str | None = Field(max_length=200)


class Reply(StrictInput):
    body: str
    # Known, not ignored: a reporter asking for an internal note is refused, not posted publicly.
    internal: Literal[False] = False


class AgentComment(StrictInput):
    body: str
    internal: bool = False


def ticket_view(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "reporterId": ticket.reporter_id,
        "assigneeId": ticket.assignee_id,
        "summary": ticket.summary,
        "status": ticket.status,
        "formId": ticket.form_id,
        "formResponse": ticket.form_response,
        "formOpen": ticket.form_open,
        "createdAt": iso(ticket.created_at),
        "updatedAt": iso(ticket.updated_at),
    }


def ticket_with_form(
    row: TicketRow, forms: dict[tuple[str, int], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The ticket and the form definition it was filed with; `forms` shares the views of one
    form version across the rows of a page (a list has many tickets of few forms)."""
    view = ticket_view(row.ticket)
    key = (row.version.form_id, row.version.version)
    form = forms.get(key) if forms is not None else None
    if form is None:
        form = forms_service.form_view(row.form, row.version, has_tickets=True)
        if forms is not None:
            forms[key] = form
    view["form"] = form
    return view


def person_view(user: User | None, cipher: PiiCipher) -> dict[str, Any] | None:
    if user is None:
        return None
    return {
        "id": user.id,
        "userId": user.id,
        "name": cipher.decrypt(user.name_ciphertext, context="user.name"),
        "email": cipher.decrypt(user.email_ciphertext, context="user.email"),
    }


def agent_ticket_view(row: TicketRow, cipher: PiiCipher) -> dict[str, Any]:
    view = ticket_with_form(row)
    view["reporter"] = person_view(row.reporter, cipher)
    view["assignee"] = person_view(row.assignee, cipher)
    return view


def comment_view(row: CommentRow, cipher: PiiCipher) -> dict[str, Any]:
    comment, author = row.comment, row.author
    return {
        "id": comment.id,
        "ticketId": comment.ticket_id,
        "authorId": comment.author_id,
        "author": None
        if author is None
        else {
            "id": author.id,
            "name": cipher.decrypt(author.name_ciphertext, context="user.name"),
            "role": author.role,
        },
        "body": comment.body,
        "internal": comment.internal,
        "createdAt": iso(comment.created_at),
    }


def log_view(row: TicketLog) -> dict[str, Any]:
    return {
        "id": row.id,
        "ticketId": row.ticket_id,
        "userId": row.user_id,
        "actionType": row.action_type,
        "action": row.action,
        "details": row.details,
        "createdAt": iso(row.created_at),
    }
