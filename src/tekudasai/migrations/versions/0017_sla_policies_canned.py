"""sla_policies and canned_responses (#15)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "sla_policies",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), server_default="0", nullable=False),
        sa.Column("conditions", postgresql.JSONB(), nullable=False),
        sa.Column(
            "calendar_id",
            sa.Text(),
            sa.ForeignKey("business_calendars.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("first_response_minutes", sa.Integer(), nullable=False),
        sa.Column("resolution_minutes", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "first_response_minutes > 0", name=op.f("ck_sla_policies_first_response_positive")
        ),
        sa.CheckConstraint(
            "resolution_minutes > 0", name=op.f("ck_sla_policies_resolution_positive")
        ),
    )
    op.create_index("ix_sla_policies_position", "sla_policies", ["position", "created_at"])
    op.create_index("ix_sla_policies_calendar_id", "sla_policies", ["calendar_id"])
    op.create_table(
        "canned_responses",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column(
            "owner_id",
            sa.Text(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("shared", sa.Boolean(), server_default="false", nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "length(title) BETWEEN 1 AND 200", name=op.f("ck_canned_responses_title_length")
        ),
        sa.CheckConstraint(
            "length(body) BETWEEN 1 AND 20000", name=op.f("ck_canned_responses_body_length")
        ),
    )
    op.create_index("ix_canned_responses_owner_id", "canned_responses", ["owner_id"])


def downgrade() -> None:
    op.drop_table("canned_responses")
    op.drop_table("sla_policies")
