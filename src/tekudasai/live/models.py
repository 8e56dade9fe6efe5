"""Who is on a ticket right now: one row per (ticket, agent), gone when `expires_at` passes.

UNLOGGED: presence is worth nothing after a crash (it expires within a minute anyway), so it
skips the WAL; every node sees it, which a per-process dict would not.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from tekudasai.db.base import Base


class TicketPresence(Base):
    __tablename__ = "ticket_presence"
    __table_args__ = (
        Index("ix_ticket_presence_user_id", "user_id"),
        {"prefixes": ["UNLOGGED"]},
    )

    ticket_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        Text, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime]
