"""ticket_events (what notifications, webhooks and live updates react to) and
ticket_mail_messages (Message-IDs that thread mail to tickets)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column(
            "ticket_id",
            sa.Integer(),
            sa.ForeignKey("tickets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("actor_id", sa.Text(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("internal", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("data", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("dispatched_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_ticket_events_ticket_id_id", "ticket_events", ["ticket_id", "id"])
    op.create_index("ix_ticket_events_created_at", "ticket_events", ["created_at"])
    op.create_index("ix_ticket_events_actor_id", "ticket_events", ["actor_id"])
    op.create_table(
        "ticket_mail_messages",
        sa.Column("message_id", sa.Text(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id", ondelete="CASCADE")),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "direction IN ('in', 'out')", name=op.f("ck_ticket_mail_messages_direction")
        ),
    )
    op.create_index("ix_ticket_mail_messages_ticket_id", "ticket_mail_messages", ["ticket_id"])


def downgrade() -> None:
    op.drop_table("ticket_mail_messages")
    op.drop_table("ticket_events")
