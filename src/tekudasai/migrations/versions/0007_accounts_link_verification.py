"""users.email_verified_at: links made before the address was proven can be recognised

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("email_verified_at", sa.DateTime(timezone=True)))
    # When existing addresses were proven is unknown: count them as proven now, so every
    # existing OAuth link counts as made before that and the next password reset drops it
    # (a genuine link comes back at the next provider sign-in with a verified, equal address).
    op.execute("UPDATE users SET email_verified_at = now() WHERE email_verified")


def downgrade() -> None:
    op.drop_column("users", "email_verified_at")
