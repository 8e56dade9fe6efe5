"""Automation rules as admins define them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Index, Integer, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tekudasai.core.ids import new_id
from tekudasai.db.base import Base, Timestamped

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
