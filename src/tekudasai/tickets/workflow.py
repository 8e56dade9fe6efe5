"""The ticket status workflow: one transition table, the only place that decides."""

from __future__ import annotations

from tekudasai.tickets.errors import InvalidTransition
from tekudasai.tickets.models import TicketStatus

OPEN = TicketStatus.OPEN
IN_PROGRESS = TicketStatus.IN_PROGRESS
PENDING = TicketStatus.PENDING
RESOLVED = TicketStatus.RESOLVED
CLOSED = TicketStatus.CLOSED

# Agents: from open, in_progress or pending to any other status; a resolved ticket may be
# closed or reopened (open / in_progress); a closed ticket may only be reopened.
TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    OPEN: frozenset({IN_PROGRESS, PENDING, RESOLVED, CLOSED}),
    IN_PROGRESS: frozenset({OPEN, PENDING, RESOLVED, CLOSED}),
    PENDING: frozenset({OPEN, IN_PROGRESS, RESOLVED, CLOSED}),
    RESOLVED: frozenset({CLOSED, OPEN, IN_PROGRESS}),
    CLOSED: frozenset({OPEN}),
}

# A customer's reply moves a ticket from the key status to the value status.
CUSTOMER_REPLY: dict[TicketStatus, TicketStatus] = {RESOLVED: OPEN}


def check_transition(current: str, target: str) -> bool:
    """True when `target` is a change to make, False for the same status again (a no-op)."""
    source, goal = TicketStatus(current), TicketStatus(target)
    if source == goal:
        return False
    if goal not in TRANSITIONS[source]:
        raise InvalidTransition(f"A ticket cannot go from {source.value} to {goal.value}.")
    return True


def after_customer_reply(current: str) -> str | None:
    """The status a customer's reply moves the ticket to, or None when it stays."""
    target = CUSTOMER_REPLY.get(TicketStatus(current))
    return target.value if target else None


def status_change_text(current: str, target: str) -> str:
    return f"Ticket status updated from {current} to {target}"
