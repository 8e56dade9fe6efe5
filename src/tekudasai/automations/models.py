"""Automation rules as admins define them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tekudasai.core.ids import new_id
from tekudasai.db.base import Base, Timestamped
from tekudasai.tickets.models import Ticket

EVENTS = (
    "ticket.created",
    "ticket.updated",
    "comment.created",
    "sla.warning",
    "sla.breached",
    "ticket.idle",
)


class Automation(Timestamped, Base):
    __tablename__ = "automations"
    __table_args__ = (
        CheckConstraint(
            "event IN ('ticket.created', 'ticket.updated', 'comment.created', 'sla.warning',"
            " 'sla.breached', 'ticket.idle')",
            name="event",
        ),
        CheckConstraint(
            "(event = 'ticket.idle') = (idle_hours IS NOT NULL)", name="idle_hours_for_idle"
        ),
        # What an event looks up: its enabled rules in order.
        Index("ix_automations_event_enabled_position", "event", "enabled", "position"),
    )
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    event: Mapped[str] = mapped_column(Text)
    idle_hours: Mapped[int | None] = mapped_column(Integer)
    # [{"field", "op", "value"}] and [{"type", …}], as checked by automations/rules.py.
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)


class AutomationGeneration(Base):
    """One row whose value the automation service bumps in the transaction of every change
    to a rule: how each process knows its cached rules are stale (automations/engine.py)."""

    __tablename__ = "automation_generation"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, server_default="0")


class AutomationIdleRun(Base):
    """An idle automation ran on a ticket as it was at `ticket_updated_at`: it fires once per
    idle period (a change to the ticket moves updated_at and starts the next period). The key
    is what two racing workers collide on."""

    __tablename__ = "automation_idle_runs"

    automation_id: Mapped[str] = mapped_column(
        ForeignKey("automations.id", ondelete="CASCADE"), primary_key=True
    )
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    ticket_updated_at: Mapped[datetime] = mapped_column(primary_key=True)
    ran_at: Mapped[datetime] = mapped_column(server_default=func.now())


# What the idle job scans: tickets still being worked on, by their last change. Declared here
# (the idle job is its only reader) on the tickets table.
Index(
    "ix_tickets_active_updated_at",
    Ticket.updated_at,
    postgresql_where=text("status IN ('open', 'in_progress', 'pending')"),
)
