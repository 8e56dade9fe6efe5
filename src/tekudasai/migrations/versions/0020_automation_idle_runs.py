"""automations: idle runs, the rules' generation counter, the idle scan's index (#15)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "automation_idle_runs",
        sa.Column(
            "automation_id",
            sa.Text(),
            sa.ForeignKey(
                "automations.id",
                ondelete="CASCADE",
                name=op.f("fk_automation_idle_runs_automation_id_automations"),
            ),
            primary_key=True,
        ),
        sa.Column(
            "ticket_id",
            sa.Integer(),
            sa.ForeignKey(
                "tickets.id",
                ondelete="CASCADE",
                name=op.f("fk_automation_idle_runs_ticket_id_tickets"),
            ),
            primary_key=True,
        ),
        sa.Column("ticket_updated_at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column(
            "ran_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_index("ix_automation_idle_runs_ticket_id", "automation_idle_runs", ["ticket_id"])
    op.create_table(
        "automation_generation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("value", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_automation_generation_one_row")),
    )
    op.execute("INSERT INTO automation_generation (id, value) VALUES (1, 0)")
    op.create_index(
        "ix_tickets_active_updated_at",
        "tickets",
        ["updated_at"],
        postgresql_where=sa.text("status IN ('open', 'in_progress', 'pending')"),
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_active_updated_at", table_name="tickets")
    op.drop_table("automation_generation")
    op.drop_table("automation_idle_runs")
