"""Notification mails: subject, text and HTML parts from the templates in templates/mail/, and
the headers that thread them, mark them automatic and let people unsubscribe.

Customer-facing content is built only from public data: an internal note's text goes into a
mail only when the kind is `internalNote` and the recipient is staff.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from tekudasai.config import Settings
from tekudasai.notifications.kinds import Kind
from tekudasai.notifications.recipients import Plan, Recipient
from tekudasai.tickets.events import EventType

TEMPLATES = Path(__file__).parent / "templates"
SETTINGS_PATH = "/settings/notifications"
UNSUBSCRIBE_PATH = "/settings/notifications/unsubscribe"
SUMMARY_IN_TEXT = 200
STATUS_LABELS = {
    "open": "Open",
    "in_progress": "In progress",
    "pending": "Pending",
    "resolved": "Resolved",
    "closed": "Closed",
}


def _lines(value: str) -> Markup:
    """Escaped text with its line breaks kept (the reply as written, never as HTML)."""
    return Markup("<br>\n").join(escape(line) for line in value.splitlines())


_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_env.filters["lines"] = _lines


@dataclass(frozen=True)
class Composed:
    subject: str
    text: str
    html: str


def subject_for(ticket_id: int, summary: str) -> str:
    return f"[TK #{ticket_id}] {' '.join(summary.split())}"


def ticket_url(settings: Settings, ticket_id: int, *, as_reporter: bool) -> str:
    path = f"/tickets/{ticket_id}" if as_reporter else f"/agent/tickets/{ticket_id}"
    return f"{settings.base_url}{path}"


def unsubscribe_url(settings: Settings, token: str) -> str:
    return f"{settings.base_url}{UNSUBSCRIBE_PATH}?token={token}"


def _short(summary: str) -> str:
    summary = " ".join(summary.split())
    return summary if len(summary) <= SUMMARY_IN_TEXT else summary[: SUMMARY_IN_TEXT - 1] + "…"


def _status(plan: Plan) -> str:
    to = ((plan.event.data.get("changes") or {}).get("status") or {}).get("to")
    return STATUS_LABELS.get(str(to), str(to))


def feed_text(plan: Plan, kind: Kind) -> str:
    """The feed's line: no names (they are personal data, stored only encrypted)."""
    n, summary = plan.ticket.id, _short(plan.ticket.summary)
    if kind is Kind.TICKET_CREATED:
        return f"Ticket #{n} received: {summary}"
    if kind is Kind.NEW_TICKET_FOR_AGENTS:
        return f"New ticket #{n}: {summary}"
    if kind is Kind.AGENT_REPLY:
        return f"New reply on #{n}: {summary}"
    if kind is Kind.CUSTOMER_REPLY:
        if plan.event.type is EventType.TICKET_UPDATED:
            return f"The customer changed the answers of #{n}: {summary}"
        return f"The customer replied on #{n}: {summary}"
    if kind is Kind.STATUS_CHANGED:
        return f"#{n} is now {_status(plan)}: {summary}"
    if kind is Kind.ASSIGNED:
        return f"#{n} was assigned to you: {summary}"
    return f"Internal note on #{n}: {summary}"


def _content(plan: Plan, recipient: Recipient, actor_name: str) -> dict[str, Any]:
    """Heading, intro and the quoted text for one recipient."""
    kind, n = recipient.kind, plan.ticket.id
    summary = " ".join(plan.ticket.summary.split())
    comment = plan.comment
    body: str | None = None
    internal = False
    if comment is not None and (not comment.internal or recipient.is_staff):
        if kind in (Kind.AGENT_REPLY, Kind.CUSTOMER_REPLY) and not comment.internal:
            body = comment.body
        elif kind is Kind.INTERNAL_NOTE and recipient.is_staff:
            body, internal = comment.body, True
    if kind is Kind.TICKET_CREATED:
        heading = f"We received your request #{n}"
        intro = f"Your ticket “{summary}” is filed. We will be in touch."
    elif kind is Kind.NEW_TICKET_FOR_AGENTS:
        heading = f"New ticket #{n}"
        intro = f"{actor_name} filed “{summary}”."
    elif kind is Kind.AGENT_REPLY:
        heading = f"New reply on your ticket #{n}"
        intro = f"{actor_name} replied to “{summary}”."
    elif kind is Kind.CUSTOMER_REPLY and plan.event.type is EventType.TICKET_UPDATED:
        heading = f"Answers changed on #{n}"
        intro = f"{actor_name} changed the answers of “{summary}”."
    elif kind is Kind.CUSTOMER_REPLY:
        heading = f"The customer replied on #{n}"
        intro = f"{actor_name} replied to “{summary}”."
    elif kind is Kind.STATUS_CHANGED:
        status = _status(plan)
        heading = f"Your ticket #{n} is {status.lower()}"
        intro = f"“{summary}” is now {status}."
        if status == STATUS_LABELS["resolved"]:
            intro += " If the problem is still there, reply and the ticket opens again."
    elif kind is Kind.ASSIGNED:
        heading = f"Ticket #{n} is assigned to you"
        intro = f"{actor_name} assigned “{summary}” to you."
    else:
        heading = f"Internal note on #{n}"
        intro = f"{actor_name} added a note to “{summary}”."
    label = "Internal note (not shown to the customer)" if internal else "Reply"
    return {
        "heading": heading,
        "intro": intro,
        "body": body,
        "body_label": label,
        "internal": internal,
    }


REASONS = {
    Kind.TICKET_CREATED: "You filed this ticket.",
    Kind.AGENT_REPLY: "You filed this ticket.",
    Kind.STATUS_CHANGED: "You filed this ticket.",
    Kind.CUSTOMER_REPLY: "You are assigned to this ticket, or you follow new tickets.",
    Kind.ASSIGNED: "You are the new assignee.",
    Kind.INTERNAL_NOTE: "You are assigned to this ticket.",
    Kind.NEW_TICKET_FOR_AGENTS: "You asked to hear of every new ticket.",
}


def compose(
    settings: Settings, plan: Plan, recipient: Recipient, *, actor_name: str, token: str
) -> Composed:
    subject = subject_for(plan.ticket.id, plan.ticket.summary)
    context = {
        "subject": subject,
        "ticket_id": plan.ticket.id,
        **_content(plan, recipient, actor_name),
        "link_url": ticket_url(settings, plan.ticket.id, as_reporter=recipient.as_reporter),
        "link_label": f"View ticket #{plan.ticket.id}",
        "reply_hint": (
            "Reply to this e-mail to answer on the ticket." if settings.support_address else ""
        ),
        "reason": REASONS[recipient.kind],
        "settings_url": f"{settings.base_url}{SETTINGS_PATH}",
        "unsubscribe_url": unsubscribe_url(settings, token),
    }
    text = _env.get_template("mail/notification.txt").render(context)
    html = _env.get_template("mail/notification.html").render(context)
    return Composed(subject, text, html)


def headers(
    settings: Settings,
    *,
    message_id: str,
    in_reply_to: str,
    references: list[str],
    unsubscribe: str,
) -> dict[str, str]:
    """Threading, automatic-mail markers and one-click unsubscribe (RFC 8058: exactly one
    https URI in List-Unsubscribe, which takes the POST)."""
    out = {
        "Message-ID": message_id,
        "In-Reply-To": in_reply_to,
        "References": " ".join(references),
        "Auto-Submitted": "auto-generated",
        # Exchange/Outlook: no out-of-office or other automatic answers to this.
        "X-Auto-Response-Suppress": "All",
        "List-Unsubscribe": f"<{unsubscribe}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    if settings.support_address:
        out["Reply-To"] = settings.support_address
    return out
