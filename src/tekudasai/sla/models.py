"""Business-hours calendars and the SLA policies that use them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tekudasai.core.ids import new_id
from tekudasai.db.base import Base, Timestamped


class BusinessCalendar(Timestamped, Base):
    __tablename__ = "business_calendars"
    # updated_at (database clock) comes back with RETURNING, for the answer to an edit.
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(Text)
    # {"mon": [["09:00", "17:00"]], …}: as the API takes it, validated (sla/calendars.py).
    hours: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # ISO dates.
    holidays: Mapped[list[str]] = mapped_column(JSONB, default=list)
    holiday_country: Mapped[str | None] = mapped_column(Text)


class SlaPolicy(Timestamped, Base):
    """Targets for tickets that match `conditions`; the first match by `position` applies."""

    __tablename__ = "sla_policies"
    __table_args__ = (
        CheckConstraint("first_response_minutes > 0", name="first_response_positive"),
        CheckConstraint("resolution_minutes > 0", name="resolution_positive"),
        Index("ix_sla_policies_position", "position", "created_at"),
    )
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # {"priority": [...], "formId": [...], "teamId": [...]}: every key given must match.
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # RESTRICT: a calendar in use cannot be deleted (the API answers 409).
    calendar_id: Mapped[str] = mapped_column(
        ForeignKey("business_calendars.id", ondelete="RESTRICT"), index=True
    )
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    resolution_minutes: Mapped[int] = mapped_column(Integer)
