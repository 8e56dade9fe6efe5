"""What the agent pages show of a ticket's service levels: priority, team, tags and the SLA
clock as words (colour is only ever a second signal), from the ticket's own columns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tekudasai.sla.models import SlaPolicy
from tekudasai.tickets.models import Ticket

PRIORITY_LABELS = {"urgent": "Urgent", "high": "High", "normal": "Normal", "low": "Low"}
SLA_STATE_LABELS = {
    "running": "On track",
    "warning": "Due soon",
    "breached": "Breached",
    "paused": "Paused",
    "met": "Met",
}
# The queue's sort select: its value → the API's sort (None: newest first).
QUEUE_SORTS: dict[str, tuple[str, str | None]] = {
    "newest": ("Newest first", None),
    "oldest": ("Oldest first", "createdAt"),
    "due": ("Due soonest", "dueAt"),
    "priority": ("Priority", "priority"),
}


def duration_text(minutes: int) -> str:
    """`2 h 10 min`, `3 d 4 h`, `35 min`: whole minutes, the two largest units."""
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"


def time_left(due: datetime, now: datetime) -> tuple[str, bool]:
    """('2 h 10 min left', False) or ('overdue by 35 min', True)."""
    seconds = (due - now).total_seconds()
    if seconds >= 0:
        return f"{duration_text(int(seconds // 60))} left", False
    return f"overdue by {duration_text(max(1, int(-seconds // 60)))}", True


def sla_summary(ticket: Ticket, now: datetime | None = None) -> dict[str, Any] | None:
    """The queue's SLA cell: the state in words and the time to the nearest running target
    (none while paused or met); None without an SLA."""
    if ticket.sla_policy_id is None:
        return None
    now = now or datetime.now(UTC)
    state = ticket.sla_state or "running"
    view: dict[str, Any] = {
        "state": state,
        "label": SLA_STATE_LABELS.get(state, state),
        "due": None,
        "left": None,
        "overdue": False,
    }
    if ticket.sla_due_at is not None and state not in ("paused", "met"):
        view["due"] = ticket.sla_due_at
        view["left"], view["overdue"] = time_left(ticket.sla_due_at, now)
        if view["overdue"] and state != "breached":
            # The timer job marks the breach a moment later; the page says it already.
            view["state"], view["label"] = "breached", SLA_STATE_LABELS["breached"]
    return view


def _target(
    name: str, due: datetime | None, done_at: datetime | None, paused: bool, now: datetime
) -> dict[str, Any]:
    target: dict[str, Any] = {"name": name, "due": due, "left": None, "state": "none"}
    if due is None:
        return target
    if done_at is not None:
        target["state"] = "met" if done_at <= due else "breached"
        target["label"] = "Met" if done_at <= due else "Missed"
        return target
    if paused:
        target["state"], target["label"] = "paused", "Paused"
        return target
    target["left"], overdue = time_left(due, now)
    target["state"] = "breached" if overdue else "running"
    target["label"] = "Breached" if overdue else "Running"
    return target


async def sla_clock(
    db: AsyncSession, ticket: Ticket, now: datetime | None = None
) -> dict[str, Any] | None:
    """The ticket page's SLA clock: the policy's name, and each target's due time, state and
    time left."""
    if ticket.sla_policy_id is None:
        return None
    now = now or datetime.now(UTC)
    name = await db.scalar(select(SlaPolicy.name).where(SlaPolicy.id == ticket.sla_policy_id))
    paused = ticket.sla_state == "paused"
    state = ticket.sla_state or "running"
    return {
        "policy": name or "SLA policy",
        "state": state,
        "label": SLA_STATE_LABELS.get(state, state),
        "targets": [
            _target(
                "First response",
                ticket.sla_first_response_due_at,
                ticket.first_responded_at,
                paused,
                now,
            ),
            _target("Resolution", ticket.sla_resolution_due_at, ticket.resolved_at, paused, now),
        ],
    }
