"""Business-hours calendars (SLA policies build on them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text
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
