"""Request bodies and the JSON shapes of tickets, comments and log rows (the original's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, create_model
from sqlalchemy.orm import InstrumentedAttribute

from tekudasai.accounts.models import User
from tekudasai.core.crypto import PiiCipher
from tekudasai.core.schemas import (
    CamelModel,
    Envelope,
    PageQuery,
    Pagination,
    PathIdInput,
    StrictInput,
    Timestamp,
    iso,
)
from tekudasai.forms import service as forms_service
from tekudasai.forms.responses import FormOut
from tekudasai.tickets.models import (
    Channel,
    LogAction,
    Ticket,
    TicketLog,
    TicketPriority,
    TicketStatus,
)

if TYPE_CHECKING:  # imported for annotations only: those modules import this one's users
    from tekudasai.tickets.conversation import CommentRow
    from tekudasai.tickets.service import TicketRow

StatusFilter = Literal["all", "open", "in_progress", "pending", "resolved", "closed"]


class MyTicketsQuery(PageQuery):
    """The query string of a reporter's ticket list, read by `core.schemas.query_model` in
    one validation instead of FastAPI's one parameter at a time."""

    search: str | None = Field(None, max_length=200, description="summary contains (literal)")
    status: StatusFilter | None = None
    q: str | None = Field(None, max_length=200, description="full-text, ranked")
    cursor: str | None = Field(
        None, max_length=200, description="keyset pages: '' for the first, then nextCursor"
    )


class QueueQuery(MyTicketsQuery):
    """The agents' queue: the reporter's filters and more."""

    assignee_id: str | None = Field(
        None, alias="assigneeId", max_length=200, description="a user id, 'me' or 'none'"
    )
    priority: TicketPriority | None = None
    team_id: str | None = Field(
        None, alias="teamId", max_length=200, description="a team id or 'none'"
    )
    tag: str | None = Field(None, max_length=200, description="has this tag")
    sort: (
        Literal["createdAt", "-createdAt", "updatedAt", "-updatedAt", "dueAt", "priority"] | None
    ) = Field(
        None,
        description="default -createdAt (newest first); dueAt: SLA due soonest first, tickets"
        " without one after; priority: urgent first, newest first within",
    )


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
    priority: TicketPriority | None = None
    # Absent: unchanged; null: no team.
    team_id: str | None = Field(default=None, max_length=200)
    tags: list[str] | None = Field(default=None, max_length=100)


class AssignTicket(StrictInput):
    assignee_id: str | None = Field(max_length=200)


class Reply(StrictInput):
    body: str
    # Known, not ignored: a reporter asking for an internal note is refused, not posted publicly.
    internal: Literal[False] = False


class AgentComment(StrictInput):
    body: str
    internal: bool = False


class SlaOut(CamelModel):
    """The SLA clock of a ticket, straight from its columns (sla/clock.py keeps them)."""

    policy_id: str
    first_response_due_at: Timestamp | None
    resolution_due_at: Timestamp | None
    state: Literal["running", "paused", "warning", "breached", "met"] | None


@dataclass(frozen=True)
class TicketField:
    """One member of the ticket object: its JSON key, the column it shows, its JSON type."""

    key: str
    column: InstrumentedAttribute[Any]
    annotation: Any
    timestamp: bool = False  # written as `core.schemas.iso` writes it (null stays null)
    # A nested object of these members, or null when `column` is null (the SLA clock).
    members: tuple[TicketField, ...] = ()


SLA_FIELDS: tuple[TicketField, ...] = (
    TicketField("policyId", Ticket.sla_policy_id, str),
    TicketField(
        "firstResponseDueAt", Ticket.sla_first_response_due_at, datetime | None, timestamp=True
    ),
    TicketField("resolutionDueAt", Ticket.sla_resolution_due_at, datetime | None, timestamp=True),
    TicketField("state", Ticket.sla_state, str | None),
)

# The contract's ticket object, declared once. The Python view (`ticket_view`), the JSON that
# PostgreSQL writes for the lists (`rendering.ticket_json`), the OpenAPI model
# (`responses.TicketOut`) and the audit snapshot (`audit.snapshot`) all come from here.
TICKET_FIELDS: tuple[TicketField, ...] = (
    TicketField("id", Ticket.id, int),
    TicketField("reporterId", Ticket.reporter_id, str),
    TicketField("assigneeId", Ticket.assignee_id, str | None),
    TicketField("summary", Ticket.summary, str),
    TicketField("status", Ticket.status, TicketStatus),
    TicketField("formId", Ticket.form_id, str),
    TicketField("formResponse", Ticket.form_response, dict[str, Any]),
    TicketField("formOpen", Ticket.form_open, bool),
    TicketField("createdAt", Ticket.created_at, datetime, timestamp=True),
    TicketField("updatedAt", Ticket.updated_at, datetime, timestamp=True),
    # Where it was filed: web (a browser session), api (a personal access token), email.
    TicketField("channel", Ticket.channel, Channel),
    # Service levels (#15).
    TicketField("priority", Ticket.priority, TicketPriority),
    TicketField("teamId", Ticket.team_id, str | None),
    TicketField("tags", Ticket.tags, list[str]),
    TicketField("firstRespondedAt", Ticket.first_responded_at, datetime | None, timestamp=True),
    TicketField("resolvedAt", Ticket.resolved_at, datetime | None, timestamp=True),
    TicketField("sla", Ticket.sla_policy_id, SlaOut | None, members=SLA_FIELDS),
)


def _view_of(fields: tuple[TicketField, ...]) -> tuple[tuple[str, str, bool, Any], ...]:
    return tuple(
        (f.key, f.column.key, f.timestamp, _view_of(f.members) if f.members else None)
        for f in fields
    )


_VIEW = _view_of(TICKET_FIELDS)


def _build(ticket: Ticket, view: tuple[tuple[str, str, bool, Any], ...]) -> dict[str, Any]:
    built: dict[str, Any] = {}
    for key, attribute, timestamp, members in view:
        value = getattr(ticket, attribute)
        if value is None:
            built[key] = None
        elif members is not None:
            built[key] = _build(ticket, members)
        elif timestamp:
            built[key] = iso(value)
        elif isinstance(value, list):
            built[key] = list(value)  # a copy: the view outlives later changes of the row
        else:
            built[key] = value
    return built


def ticket_view(ticket: Ticket) -> dict[str, Any]:
    return _build(ticket, _VIEW)


# -- response models (the OpenAPI document; the ticket routes return prebuilt Responses, so
# these document without validating) -----------------------------------------------------------


def _annotation(field: TicketField) -> Any:
    if not field.timestamp:
        return field.annotation
    return Timestamp | None if field.annotation != datetime else Timestamp


_TICKET_MEMBERS: dict[str, Any] = {f.key: (_annotation(f), ...) for f in TICKET_FIELDS}
TicketOut: type[BaseModel] = create_model("Ticket", __base__=CamelModel, **_TICKET_MEMBERS)
TicketWithForm: type[BaseModel] = create_model(
    "TicketWithForm", __base__=TicketOut, form=(FormOut, ...)
)


class PersonOut(CamelModel):
    id: str
    user_id: str
    name: str
    email: str


AgentTicket: type[BaseModel] = create_model(
    "AgentTicket",
    __base__=TicketWithForm,
    reporter=(PersonOut | None, ...),
    assignee=(PersonOut | None, ...),
)


def enveloped(model: Any) -> Any:
    """`Envelope[model]` for the models built above (not types to a type checker)."""
    return Envelope[model]


OneTicket = enveloped(TicketOut)
OneTicketWithForm = enveloped(TicketWithForm)
OneAgentTicket = enveloped(AgentTicket)


class TicketPagination(Pagination):
    total_capped: bool | None = Field(
        default=None, description="present (true) when the total is counted only so far"
    )


class TicketPageMeta(CamelModel):
    pagination: TicketPagination
    next_cursor: str | None


class TicketPage(CamelModel):
    """A page of tickets, each with its form; `meta.nextCursor` for keyset pages."""

    status: Literal["success"] = "success"
    data: list[TicketWithForm]  # type: ignore[valid-type]  # built by create_model
    meta: TicketPageMeta


class CommentAuthor(CamelModel):
    id: str
    name: str
    role: str


class CommentOut(CamelModel):
    id: int
    ticket_id: int
    author_id: str | None
    author: CommentAuthor | None
    body: str
    internal: bool
    channel: Channel
    created_at: Timestamp


class LogOut(CamelModel):
    id: int
    ticket_id: int
    user_id: str | None
    action_type: LogAction
    action: str
    details: dict[str, Any]
    created_at: Timestamp


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
        "channel": comment.channel,
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
