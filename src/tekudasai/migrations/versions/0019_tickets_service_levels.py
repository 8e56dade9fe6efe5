"""tickets: priority, team, tags, first response and resolution times, SLA clock (#15)

Existing tickets get priority normal; firstRespondedAt from their first public comment by an
agent or admin; resolvedAt, for resolved and closed ones, from the last change to resolved in
their audit trail (or their last update when the trail has none). No SLA: policies apply to
tickets filed after one exists.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "tickets", sa.Column("priority", sa.Text(), server_default="normal", nullable=False)
    )
    op.add_column("tickets", sa.Column("team_id", sa.Text()))
    op.create_foreign_key(
        "fk_tickets_team_id_teams", "tickets", "teams", ["team_id"], ["id"], ondelete="SET NULL"
    )
    op.add_column(
        "tickets",
        sa.Column(
            "tags", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
        ),
    )
    op.add_column("tickets", sa.Column("first_responded_at", TIMESTAMP))
    op.add_column("tickets", sa.Column("resolved_at", TIMESTAMP))
    op.add_column("tickets", sa.Column("sla_policy_id", sa.Text()))
    op.create_foreign_key(
        "fk_tickets_sla_policy_id_sla_policies",
        "tickets",
        "sla_policies",
        ["sla_policy_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.add_column("tickets", sa.Column("sla_state", sa.Text()))
    op.add_column("tickets", sa.Column("sla_started_at", TIMESTAMP))
    op.add_column(
        "tickets",
        sa.Column("sla_paused", postgresql.JSONB(), server_default=sa.text("'[]'"), nullable=False),
    )
    op.add_column("tickets", sa.Column("sla_first_response_due_at", TIMESTAMP))
    op.add_column("tickets", sa.Column("sla_resolution_due_at", TIMESTAMP))
    op.add_column("tickets", sa.Column("sla_due_at", TIMESTAMP))
    op.add_column(
        "tickets",
        sa.Column(
            "sla_fired",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )
    op.create_check_constraint(
        op.f("ck_tickets_priority"), "tickets", "priority IN ('low', 'normal', 'high', 'urgent')"
    )
    op.create_check_constraint(
        op.f("ck_tickets_sla_state"),
        "tickets",
        "sla_state IN ('running', 'paused', 'warning', 'breached', 'met')",
    )
    op.create_index("ix_tickets_priority_id", "tickets", ["priority", "id"])
    op.create_index("ix_tickets_team_id_id", "tickets", ["team_id", "id"])
    op.create_index("ix_tickets_tags", "tickets", ["tags"], postgresql_using="gin")
    op.create_index("ix_tickets_sla_policy_id", "tickets", ["sla_policy_id"])
    op.create_index(
        "ix_tickets_sla_due_at_id",
        "tickets",
        ["sla_due_at", "id"],
        postgresql_where=sa.text("sla_due_at IS NOT NULL"),
    )
    # Reports scan a period by these; the few columns they read ride along in the index
    # (INCLUDE), so a year of tickets is an index-only scan, not a read of the wide rows.
    op.create_index(
        "ix_tickets_created_at",
        "tickets",
        ["created_at"],
        postgresql_include=["assignee_id", "team_id", "first_responded_at", "sla_state"],
    )
    op.create_index(
        "ix_tickets_resolved_at",
        "tickets",
        ["resolved_at"],
        postgresql_include=["created_at", "assignee_id", "team_id"],
        postgresql_where=sa.text("resolved_at IS NOT NULL"),
    )
    op.execute(
        """
        UPDATE tickets t SET first_responded_at = first.at
        FROM (
            SELECT c.ticket_id, min(c.created_at) AS at
            FROM ticket_comments c JOIN users u ON u.id = c.author_id
            WHERE NOT c.internal AND u.role IN ('agent', 'admin')
            GROUP BY c.ticket_id
        ) first
        WHERE first.ticket_id = t.id
        """
    )
    op.execute(
        """
        UPDATE tickets t SET resolved_at = coalesce(
            (SELECT max(l.created_at) FROM ticket_logs l
             WHERE l.ticket_id = t.id AND l.details -> 'status' ->> 'to' = 'resolved'),
            t.updated_at)
        WHERE t.status IN ('resolved', 'closed')
        """
    )


def downgrade() -> None:
    for index in (
        "ix_tickets_resolved_at",
        "ix_tickets_created_at",
        "ix_tickets_sla_due_at_id",
        "ix_tickets_sla_policy_id",
        "ix_tickets_tags",
        "ix_tickets_team_id_id",
        "ix_tickets_priority_id",
    ):
        op.drop_index(index, table_name="tickets")
    op.drop_constraint("fk_tickets_sla_policy_id_sla_policies", "tickets", type_="foreignkey")
    op.drop_constraint("fk_tickets_team_id_teams", "tickets", type_="foreignkey")
    op.drop_constraint(op.f("ck_tickets_sla_state"), "tickets", type_="check")
    op.drop_constraint(op.f("ck_tickets_priority"), "tickets", type_="check")
    for column in (
        "sla_fired",
        "sla_due_at",
        "sla_resolution_due_at",
        "sla_first_response_due_at",
        "sla_paused",
        "sla_started_at",
        "sla_state",
        "sla_policy_id",
        "resolved_at",
        "first_responded_at",
        "tags",
        "team_id",
        "priority",
    ):
        op.drop_column("tickets", column)
