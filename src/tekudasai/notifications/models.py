"""Notification preferences (one row per user who changed any) and the in-app feed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tekudasai.db.base import Base

KIND_CHECK = (
    "kind IN ('ticketCreated', 'agentReply', 'customerReply', 'statusChanged', 'assigned',"
    " 'internalNote', 'newTicketForAgents')"
)


class NotificationPreference(Base):
    """E-mail switches per kind (`kinds.Kind`); a user without a row has the defaults."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    ticket_created: Mapped[bool] = mapped_column(Boolean, server_default="true")
    agent_reply: Mapped[bool] = mapped_column(Boolean, server_default="true")
    customer_reply: Mapped[bool] = mapped_column(Boolean, server_default="true")
    status_changed: Mapped[bool] = mapped_column(Boolean, server_default="true")
    assigned: Mapped[bool] = mapped_column(Boolean, server_default="true")
    internal_note: Mapped[bool] = mapped_column(Boolean, server_default="true")
    new_ticket_for_agents: Mapped[bool] = mapped_column(Boolean, server_default="false")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Notification(Base):
    """One line of a user's in-app feed. The text names no person: names are personal data,
    stored only encrypted."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(KIND_CHECK, name="kind"),
        # The feed, newest first.
        Index("ix_notifications_user_id_id", "user_id", "id"),
        # The unread badge: a count over this user's unread rows only.
        Index("ix_notifications_unread", "user_id", postgresql_where=text("read_at IS NULL")),
        Index("ix_notifications_ticket_id", "ticket_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    # The ticket event it came from (events are pruned after a few days: no foreign key).
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    read_at: Mapped[datetime | None]
