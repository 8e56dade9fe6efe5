"""automations (#15)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "automations",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("position", sa.Integer(), server_default="0", nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("idle_hours", sa.Integer()),
        sa.Column("conditions", postgresql.JSONB(), nullable=False),
        sa.Column("actions", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "event IN ('ticket.created', 'ticket.updated', 'comment.created', 'sla.warning',"
            " 'sla.breached', 'ticket.idle')",
            name=op.f("ck_automations_event"),
        ),
        sa.CheckConstraint(
            "(event = 'ticket.idle') = (idle_hours IS NOT NULL)",
            name=op.f("ck_automations_idle_hours_for_idle"),
        ),
    )
    op.create_index(
        "ix_automations_event_enabled_position", "automations", ["event", "enabled", "position"]
    )


def downgrade() -> None:
    op.drop_table("automations")
