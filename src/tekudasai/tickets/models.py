"""Tickets, their conversation and their audit trail."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, deferred, mapped_column

from tekudasai.db.base import Base, Timestamped


class Channel(StrEnum):
    """Where a ticket or comment came from."""

    WEB = "web"
    API = "api"
    EMAIL = "email"


CHANNEL_CHECK = "channel IN ('web', 'api', 'email')"


class TicketStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"


class TicketPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class LogAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    ASSIGN = "assign"
    UNASSIGN = "unassign"
    OPEN_FORM = "open_form"
    COMMENT = "comment"
    DELETE = "delete"


class Ticket(Timestamped, Base):
    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(
            "status IN ('open', 'in_progress', 'pending', 'resolved', 'closed')", name="status"
        ),
        CheckConstraint("length(summary) BETWEEN 1 AND 500", name="summary_length"),
        CheckConstraint(CHANNEL_CHECK, name="channel"),
        CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')", name="priority"),
        CheckConstraint(
            "sla_state IN ('running', 'paused', 'warning', 'breached', 'met')", name="sla_state"
        ),
        ForeignKeyConstraint(
            ["form_id", "form_version"],
            ["form_versions.form_id", "form_versions.version"],
            ondelete="RESTRICT",
            name="fk_tickets_form_version_form_versions",
        ),
        # List paths, newest (highest id) first.
        Index("ix_tickets_reporter_id_id", "reporter_id", "id"),
        Index("ix_tickets_reporter_id_status_id", "reporter_id", "status", "id"),
        Index("ix_tickets_status_id", "status", "id"),
        Index("ix_tickets_assignee_id_id", "assignee_id", "id"),
        Index("ix_tickets_form_id_form_version", "form_id", "form_version"),
        Index(
            "ix_tickets_summary_trgm",
            "summary",
            postgresql_using="gin",
            postgresql_ops={"summary": "gin_trgm_ops"},
        ),
        Index("ix_tickets_search_vector", "search_vector", postgresql_using="gin"),
        Index("ix_tickets_priority_id", "priority", "id"),
        Index("ix_tickets_team_id_id", "team_id", "id"),
        Index("ix_tickets_tags", "tags", postgresql_using="gin"),
        Index("ix_tickets_sla_policy_id", "sla_policy_id"),
        # The queue sorted by due time (cursor pages go by (sla_due_at, id)).
        Index(
            "ix_tickets_sla_due_at_id",
            "sla_due_at",
            "id",
            postgresql_where=text("sla_due_at IS NOT NULL"),
        ),
        # Reports: tickets created and resolved in a period, index-only (the columns a report
        # reads are included; the rows themselves are wide).
        Index(
            "ix_tickets_created_at",
            "created_at",
            postgresql_include=["assignee_id", "team_id", "first_responded_at", "sla_state"],
        ),
        # Reports: a team's backlog, counted index-only (migration 0021).
        Index(
            "ix_tickets_backlog_team_id",
            "team_id",
            postgresql_where=text(
                "team_id IS NOT NULL AND status IN ('open', 'in_progress', 'pending')"
            ),
        ),
        Index(
            "ix_tickets_resolved_at",
            "resolved_at",
            postgresql_include=["created_at", "assignee_id", "team_id"],
            postgresql_where=text("resolved_at IS NOT NULL"),
        ),
    )
    # Fetch updated_at (set by the database clock) with RETURNING instead of a second query.
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    # RESTRICT: people who filed tickets are banned, never deleted, so history stays whole.
    reporter_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    assignee_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    summary: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(
        Text, default=TicketStatus.OPEN.value, server_default="open"
    )
    form_id: Mapped[str] = mapped_column(ForeignKey("forms.id", ondelete="RESTRICT"))
    form_version: Mapped[int] = mapped_column(Integer)
    form_response: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    form_open: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    channel: Mapped[str] = mapped_column(Text, default=Channel.WEB.value, server_default="web")
    # Server-side defaults only: the creation statement (tickets/service.py) is raw SQL.
    priority: Mapped[str] = mapped_column(Text, server_default="normal")
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    # The first public reply by an agent or admin; when the ticket last became resolved
    # (cleared on reopen).
    first_responded_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    # The SLA clock (sla/clock.py keeps it): the policy that applies (none: no SLA), its state,
    # when the resolution clock (re)started, the paused intervals since ([[from, to|null]],
    # pending), both targets, the nearest target still running (what the queue sorts by;
    # null while paused or met), and which warning/breach events fired ("firstResponse.warning" …).
    sla_policy_id: Mapped[str | None] = mapped_column(
        ForeignKey("sla_policies.id", ondelete="SET NULL")
    )
    sla_state: Mapped[str | None] = mapped_column(Text)
    sla_started_at: Mapped[datetime | None]
    sla_paused: Mapped[list[list[str | None]]] = mapped_column(JSONB, server_default="[]")
    sla_first_response_due_at: Mapped[datetime | None]
    sla_resolution_due_at: Mapped[datetime | None]
    sla_due_at: Mapped[datetime | None]
    sla_fired: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    # Kept current by database triggers (summary, text answers, public comments).
    search_vector: Mapped[Any] = deferred(mapped_column(TSVECTOR, nullable=True))


class TicketComment(Base):
    __tablename__ = "ticket_comments"
    __table_args__ = (
        CheckConstraint("length(body) BETWEEN 1 AND 20000", name="body_length"),
        CheckConstraint(CHANNEL_CHECK, name="channel"),
        Index("ix_ticket_comments_ticket_id_id", "ticket_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    author_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    body: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    channel: Mapped[str] = mapped_column(Text, default=Channel.WEB.value, server_default="web")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class TicketLog(Base):
    """The audit trail. ticket_id deliberately has no foreign key: the record of a deleted
    ticket (including its deletion) outlives the ticket."""

    __tablename__ = "ticket_logs"
    __table_args__ = (
        CheckConstraint(
            "action_type IN ('create', 'update', 'assign', 'unassign', 'open_form', 'comment',"
            " 'delete')",
            name="action_type",
        ),
        Index("ix_ticket_logs_ticket_id_id", "ticket_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    action_type: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    # A comment's log row is hidden from the reporter when the comment is an internal note.
    internal: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class TicketCount(Base):
    """Ticket totals per scope ('all', 'reporter', 'assignee'), key and status, kept by statement
    triggers on tickets (migration 0003). Rows are spread over shards (the backend pid
    modulo 16) so concurrent writers rarely wait on the same row; readers sum the shards."""

    __tablename__ = "ticket_counts"

    scope: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str] = mapped_column(Text, primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class TicketEventRow(Base):
    """One change of a ticket as others react to it (notifications, webhooks, live updates),
    recorded in the change's transaction; `tickets/events.py` writes and dispatches them.
    Kept a few days: long enough to replay to live clients and to finish every dispatch."""

    __tablename__ = "ticket_events"
    __table_args__ = (
        Index("ix_ticket_events_ticket_id_id", "ticket_id", "id"),
        Index("ix_ticket_events_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    # Seen by agents only (an internal note): never sent to a customer.
    internal: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Set by the one dispatch that ran the handlers: a second run of the job finds it set.
    dispatched_at: Mapped[datetime | None]


class TicketMailMessage(Base):
    """Every Message-ID we sent or received for a ticket (and each inbound one we processed,
    ticket or not): replies are threaded by them and a message is processed once."""

    __tablename__ = "ticket_mail_messages"
    __table_args__ = (
        CheckConstraint("direction IN ('in', 'out')", name="direction"),
        Index("ix_ticket_mail_messages_ticket_id", "ticket_id"),
    )

    message_id: Mapped[str] = mapped_column(Text, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
