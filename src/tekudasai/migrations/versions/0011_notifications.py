"""notification_preferences (e-mail switches per user) and notifications (the in-app feed)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KIND_CHECK = (
    "kind IN ('ticketCreated', 'agentReply', 'customerReply', 'statusChanged', 'assigned',"
    " 'internalNote', 'newTicketForAgents')"
)


def upgrade() -> None:
    op.create_table(
        "notification_preferences",
        sa.Column(
            "user_id",
            sa.Text(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("ticket_created", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("agent_reply", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("customer_reply", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("status_changed", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("assigned", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("internal_note", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("new_ticket_for_agents", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column(
            "user_id",
            sa.Text(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "ticket_id",
            sa.Integer(),
            sa.ForeignKey("tickets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_id", sa.BigInteger()),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("read_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(KIND_CHECK, name=op.f("ck_notifications_kind")),
    )
    op.create_index("ix_notifications_user_id_id", "notifications", ["user_id", "id"])
    op.create_index(
        "ix_notifications_unread",
        "notifications",
        ["user_id"],
        postgresql_where=sa.text("read_at IS NULL"),
    )
    op.create_index("ix_notifications_ticket_id", "notifications", ["ticket_id"])


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("notification_preferences")
