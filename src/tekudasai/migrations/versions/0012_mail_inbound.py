"""tickets.channel and ticket_comments.channel: where each came from (web, api, email)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNELS = "channel IN ('web', 'api', 'email')"


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    for table in ("tickets", "ticket_comments"):
        op.add_column(table, sa.Column("channel", sa.Text(), server_default="web", nullable=False))
        op.create_check_constraint(op.f(f"ck_{table}_channel"), table, CHANNELS)


def downgrade() -> None:
    for table in ("ticket_comments", "tickets"):
        op.drop_constraint(op.f(f"ck_{table}_channel"), table, type_="check")
        op.drop_column(table, "channel")
