"""What a notification is about, as preferences and the feed name it."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    # The reporter's receipt for a new ticket.
    TICKET_CREATED = "ticketCreated"
    # A public reply by an agent, to the reporter.
    AGENT_REPLY = "agentReply"
    # A reply or an edit of the answers by the customer, to the assignee (else opted-in agents).
    CUSTOMER_REPLY = "customerReply"
    # pending, resolved or closed, to the reporter.
    STATUS_CHANGED = "statusChanged"
    ASSIGNED = "assigned"
    INTERNAL_NOTE = "internalNote"
    # Agents who opted in hear of every new ticket (and of customer replies nobody is assigned to).
    NEW_TICKET_FOR_AGENTS = "newTicketForAgents"


# What customers are told about (and may switch): agents see every kind.
CUSTOMER_KINDS: tuple[Kind, ...] = (Kind.TICKET_CREATED, Kind.AGENT_REPLY, Kind.STATUS_CHANGED)
ALL_KINDS: tuple[Kind, ...] = tuple(Kind)
# Everything on, except being told of every new ticket: that is an agent's choice.
DEFAULTS: dict[Kind, bool] = {kind: kind is not Kind.NEW_TICKET_FOR_AGENTS for kind in Kind}

LABELS: dict[Kind, str] = {
    Kind.TICKET_CREATED: "Receipt when I file a ticket",
    Kind.AGENT_REPLY: "Replies from agents on my tickets",
    Kind.STATUS_CHANGED: "My ticket is pending, resolved or closed",
    Kind.CUSTOMER_REPLY: "Customer replies and edits on tickets assigned to me",
    Kind.ASSIGNED: "A ticket is assigned to me",
    Kind.INTERNAL_NOTE: "Internal notes on tickets assigned to me",
    Kind.NEW_TICKET_FOR_AGENTS: "Every new ticket (and replies on unassigned tickets)",
}


def column(kind: Kind) -> str:
    """The preferences table's column for a kind: camelCase to snake_case."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in kind.value)


def kinds_for(is_staff: bool) -> tuple[Kind, ...]:
    return ALL_KINDS if is_staff else CUSTOMER_KINDS
